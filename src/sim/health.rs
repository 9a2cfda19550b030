//! Simulator of the provincial health commission (省卫生健康委), serving its
//! proposed contract (`contracts/health/`): `GET /api/v1/institutions`, the
//! registry of medical institutions (医疗机构执业登记), paged as the `poll`
//! connector reads it ([`super::registry`]: bearer token, page-size limit,
//! `updated_since` cursor, page tokens, `500` share, outages, records that
//! change: `POST /_sim/touch`, or on their own with a churn interval).
//!
//! The registry is generated from a seed ([`institutions`]): hospitals,
//! community and township health centres (some designated medical-waste
//! transit points), clinics, and village clinics, most of them run by the
//! township health centre of their county without a credit code of their own.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::registry::{Mutator, Registry, RegistryConfig, RegistrySpec};
use super::synth::{County, Gen, STREETS, TOWNS, VILLAGES, beijing_ms, counties, rfc3339_ms};

/// The institution record schema of the contract.
pub const INSTITUTION_SCHEMA: &str = include_str!("../../contracts/health/institution.schema.json");
/// The paged path.
pub const INSTITUTIONS_PATH: &str = "/api/v1/institutions";

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// Paging, token, failures.
    pub registry: RegistryConfig,
    /// Institutions in the registry.
    pub records: usize,
    /// Seed of the generated registry.
    pub seed: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            registry: RegistryConfig::default(),
            records: 300,
            seed: 841,
        }
    }
}

/// A running simulator.
#[derive(Clone)]
pub struct HealthSim {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The institution registry.
    pub registry: Registry,
}

impl HealthSim {
    /// Generates the registry and serves it on `listener` until `stop`.
    pub fn start(listener: TcpListener, cfg: HealthConfig, stop: CancellationToken) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let mutate: Mutator = Arc::new(mutate_institution);
        let registry = Registry::new(
            RegistryConfig {
                seed: cfg.seed,
                ..cfg.registry.clone()
            },
            RegistrySpec {
                path: INSTITUTIONS_PATH,
                id_field: "institutionId",
                version_field: "revision",
                updated_field: "updatedAt",
                records: institutions(cfg.seed, cfg.records)?,
                mutate,
            },
        )?;
        super::serve(listener, registry.router(), stop);
        Ok(Self { addr, registry })
    }

    /// A URL on the simulator.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Institution categories: (code, name, share in per mille, cumulative).
const CATEGORIES: [(&str, &str, u32); 12] = [
    ("A100", "综合医院", 50),
    ("A210", "中医医院", 70),
    ("A500", "专科医院", 100),
    ("G100", "妇幼保健院（所、站）", 115),
    ("E100", "急救中心（站）", 120),
    ("B100", "社区卫生服务中心", 180),
    ("B200", "社区卫生服务站", 230),
    ("C200", "乡镇卫生院", 380),
    ("D100", "门诊部", 430),
    ("D200", "诊所", 580),
    ("D300", "卫生所（室）", 620),
    ("D600", "村卫生室", 1000),
];
const BRANDS: [&str; 10] = ["康恩", "仁和", "博爱", "同心", "惠民", "健安", "德济", "益康", "和美", "春晖"];
const SPECIALTIES: [&str; 5] = ["妇产", "口腔", "眼科", "骨科", "精神病"];
const CLINIC_KINDS: [&str; 4] = ["口腔", "中医", "内科", ""];

/// A township health centre a village clinic can be run by.
struct Centre {
    county: String,
    usci: String,
    name: String,
}

/// Generates `n` institution records from `seed`, valid against the
/// contract's institution schema. A tenth share one update time (the day
/// the registry was migrated).
pub fn institutions(seed: u64, n: usize) -> anyhow::Result<Vec<Value>> {
    let counties = counties()?;
    let mut g = Gen::new(seed);
    let mut names = std::collections::HashSet::new();
    let mut centres: Vec<Centre> = Vec::new();
    let mut out = Vec::with_capacity(n);
    let migrated = beijing_ms(2025, 1, 1, 8, 0, 0);
    let span = beijing_ms(2026, 10, 31, 0, 0, 0) - beijing_ms(2025, 1, 2, 0, 0, 0);
    for i in 0..n {
        let county = g.pick(&counties).clone();
        let roll = g.rng.u32(0..1000);
        let (category, category_name, _) = CATEGORIES.iter().find(|c| roll < c.2).copied().unwrap_or(CATEGORIES[0]);
        let name = loop {
            let candidate = name_for(&mut g, &county, category);
            if names.insert(candidate.clone()) {
                break candidate;
            }
            if names.len() > 10 * n {
                break format!("{candidate}（{i}）");
            }
        };
        let updated = if i.is_multiple_of(10) {
            migrated
        } else {
            beijing_ms(2025, 1, 2, 0, 0, 0) + g.rng.i64(0..span) / 1000 * 1000 + g.rng.i64(0..1000)
        };
        let r = institution(&mut g, &county, &mut centres, i, (category, category_name), name, updated);
        out.push(r);
    }
    Ok(out)
}

fn name_for(g: &mut Gen, county: &County, category: &str) -> String {
    let (county_name, city) = (county.name.as_str(), county.city_stem());
    match category {
        "A100" => match g.rng.u8(0..3) {
            0 => format!("{county_name}医院"),
            1 => format!("{county_name}第二医院"),
            _ => format!("{city}市第{}医院", g.pick(&["一", "二", "三", "四", "五", "六", "七"])),
        },
        "A210" => format!("{county_name}中医院"),
        "A500" => format!("{city}{}医院", g.pick(&SPECIALTIES)),
        "G100" => format!("{county_name}妇幼保健院"),
        "E100" => format!("{city}市{}急救站", county.stem()),
        "B100" => format!("{county_name}{}街道社区卫生服务中心", g.pick(&STREETS)),
        "B200" => format!("{county_name}{}社区卫生服务站", g.pick(&STREETS)),
        "C200" => format!("{county_name}{}镇{}卫生院", g.pick(&TOWNS), if g.rng.bool() { "中心" } else { "" }),
        "D100" => format!("{city}{}{}门诊部", county.stem(), g.pick(&BRANDS)),
        "D200" => format!("{city}{}{}{}诊所", county.stem(), g.pick(&BRANDS), g.pick(&CLINIC_KINDS)),
        "D300" => format!("{county_name}{}镇{}卫生所", g.pick(&TOWNS), g.pick(&BRANDS)),
        _ => format!("{county_name}{}镇{}村卫生室", g.pick(&TOWNS), g.pick(&VILLAGES)),
    }
}

fn institution(
    g: &mut Gen,
    county: &County,
    centres: &mut Vec<Centre>,
    i: usize,
    (category, category_name): (&str, &str),
    name: String,
    updated: i64,
) -> Value {
    let public = matches!(&category[..1], "A" | "B" | "C" | "E" | "G");
    // Most village clinics are run by a township health centre of their county.
    let host = (category == "D600" && g.chance(0.7))
        .then(|| centres.iter().rev().find(|c| c.county == county.code))
        .flatten();
    let (usci, org9, ownership) = match host {
        Some(_) => (None, format!("PDY{:06}", g.rng.u32(0..1_000_000)), "12"),
        None => {
            let (prefix, org) = if public {
                ("12", g.org8_public())
            } else {
                let prefix = *g.pick(&["52", "92", "91"]);
                (prefix, g.org8_new())
            };
            let u = g.usci(prefix, county, &org);
            let org9 = u[8..17].to_string();
            (Some(u), org9, if public { "11" } else { "51" })
        }
    };
    let status_roll = g.rng.u8(0..100);
    let (status, status_name) = match status_roll {
        0..90 => ("1", "执业"),
        90..95 => ("2", "停业"),
        95..99 => ("3", "注销"),
        _ => ("4", "吊销"),
    };
    let town_road = format!("{}{}{}号", g.pick(&TOWNS), g.pick(&super::synth::ROADS), g.rng.u32(1..900));
    let mut r = json!({
        "institutionId": format!("YL{}{:06}", county.code, i + 1),
        "revision": g.rng.i64(1..8),
        "updatedAt": rfc3339_ms(updated),
        "name": name,
        "licenceRegNo": format!("{org9}{}{ownership}{category}1", county.code),
        "categoryCode": category,
        "categoryName": category_name,
        "areaCode": county.code,
        "address": format!("{}{}{town_road}", county.city, county.name),
        "legalRepresentative": g.person(),
        "contactPhone": if category == "D600" { g.mobile() } else { g.landline(county) },
        "practiceStatus": status,
        "practiceStatusName": status_name,
        "wasteTransitPoint": matches!(category, "C200" | "B100") && g.chance(0.6),
    });
    match (&usci, host) {
        (Some(u), _) => r["creditCode"] = json!(u),
        (None, Some(c)) => r["host"] = json!({"creditCode": c.usci, "name": c.name}),
        (None, None) => {}
    }
    if category == "C200"
        && let Some(u) = &usci
    {
        centres.push(Centre {
            county: county.code.clone(),
            usci: u.clone(),
            name: r["name"].as_str().unwrap_or_default().to_string(),
        });
    }
    if status != "1" && g.chance(0.5) {
        r["statusReason"] = json!(*g.pick(&[
            "房屋装修改造，暂停执业",
            "主要负责人变更，停业整改",
            "机构合并，原址不再执业",
            "执业许可证有效期届满未校验"
        ]));
    }
    if g.chance(0.9) {
        r["licenceValidTo"] = json!(g.date(2026, 2031));
    }
    if g.chance(0.6) {
        let (lat, lon) = g.near(county.centre, 0.15);
        r["latitude"] = json!(lat);
        r["longitude"] = json!(lon);
    }
    if public && g.chance(0.7) || g.chance(0.2) {
        r["wasteContact"] = json!({"name": g.person(), "phone": g.mobile()});
    }
    let beds = match &category[..1] {
        "A" => Some(g.rng.u32(100..1500)),
        "C" => Some(g.rng.u32(10..100)),
        "B" | "G" => Some(g.rng.u32(0..60)),
        _ => None,
    };
    if let Some(b) = beds {
        r["beds"] = json!(b);
    }
    r
}

/// One change of an institution, as the department's clerks make them.
fn mutate_institution(r: &mut Value, rng: &mut fastrand::Rng) {
    let mut g = Gen { rng: rng.fork() };
    match g.rng.u8(0..4) {
        0 => {
            // A landline keeps its area code; a mobile stays a mobile.
            let phone = match r["contactPhone"].as_str().and_then(|p| p.split_once('-')) {
                Some((area, _)) => format!("{area}-{}", g.rng.u32(2_000_000..8_999_999)),
                None => g.mobile(),
            };
            r["contactPhone"] = json!(phone);
        }
        1 => {
            if r["practiceStatus"] == "1" {
                r["practiceStatus"] = json!("2");
                r["practiceStatusName"] = json!("停业");
                r["statusReason"] = json!("房屋装修改造，暂停执业");
            } else {
                r["practiceStatus"] = json!("1");
                r["practiceStatusName"] = json!("执业");
                if let Some(o) = r.as_object_mut() {
                    o.remove("statusReason");
                }
            }
        }
        2 => r["wasteContact"] = json!({"name": g.person(), "phone": g.mobile()}),
        _ => {
            r["licenceValidTo"] = json!(g.date(2027, 2032));
            if matches!(r["categoryCode"].as_str(), Some("C200" | "B100")) {
                let flag = r["wasteTransitPoint"].as_bool().unwrap_or(false);
                r["wasteTransitPoint"] = json!(!flag);
            }
        }
    }
}

//! The demo's third journey: cross-province transfer negotiation. Three
//! neighbouring provinces' hubs are simulated (Jiangxi signing with SM2,
//! Guangdong with Ed25519, Zhejiang with ECDSA P-256), each with fresh keys
//! made for this run; the hub's province connectors are enabled with them.
//! Playing the provincial department, the demo then runs
//!
//! - the consultation path: an application to send waste to Jiangxi is
//!   received and accepted, the consultation letter goes out signed, Jiangxi
//!   agrees with a signed reply, and the department decides;
//! - the whitelist path: Zhejiang sends a signed whitelist entry for one of
//!   its facilities, and an application to send waste there is decided by
//!   the hub at once, without consultation, and Zhejiang is notified;
//!
//! and prints each negotiation's steps, deadlines and the receipts kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::letters::keys::{PartnerKeys, pem_encode};
use crate::letters::{Algorithm, PrivateKey};
use crate::sim::province::{ProvinceConfig, ProvinceSim};

/// The provinces: connector slug, code, algorithm.
const PROVINCES: &[(&str, &str, Algorithm)] = &[
    ("jiangxi", "36", Algorithm::Sm2Sm3),
    ("guangdong", "44", Algorithm::Ed25519),
    ("zhejiang", "33", Algorithm::EcdsaP256Sha256),
];

/// The simulated provinces and the key folder the connectors read.
pub struct Provinces {
    sims: Vec<(String, ProvinceSim)>,
    keys: PathBuf,
    _dir: tempfile::TempDir,
}

impl Provinces {
    /// Makes a key pair per side and province and starts the simulators.
    pub async fn start(stop: &CancellationToken) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a folder for this run's letter keys")?;
        let mut sims = Vec::new();
        for (slug, code, alg) in PROVINCES {
            let (hub_key, hub_der) = PrivateKey::generate(*alg)?;
            write_private(
                &dir.path().join(format!("fujian-for-{slug}.key.pem")),
                &pem_encode("PRIVATE KEY", &hub_der),
            )?;
            let (own, _) = PrivateKey::generate(*alg)?;
            std::fs::write(dir.path().join(format!("{slug}.pub.pem")), own.public().to_pem())?;
            let cfg = ProvinceConfig::new(code, own, PartnerKeys::new(vec![hub_key.public().clone()])?);
            let sim = ProvinceSim::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, cfg, stop.clone())?;
            sims.push(((*slug).to_string(), sim));
        }
        Ok(Self {
            keys: dir.path().to_path_buf(),
            sims,
            _dir: dir,
        })
    }

    /// The environment the province connector files read.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("WASTEHUB_XP_ENABLED".to_string(), "true".to_string()),
            ("WASTEHUB_XP_KEYS".to_string(), self.keys.display().to_string()),
        ];
        for (slug, sim) in &self.sims {
            let up = slug.to_ascii_uppercase();
            env.push((format!("PROVINCE_{up}_URL"), sim.url("/letters")));
            env.push((format!("PROVINCE_{up}_RETRY_SCHEDULE"), "0s 1s 2s 4s 8s".into()));
        }
        env
    }

    fn sim(&self, slug: &str) -> Option<&ProvinceSim> {
        self.sims.iter().find(|(s, _)| s == slug).map(|(_, sim)| sim)
    }

    /// Prints where they listen.
    pub fn print(&self) {
        for (slug, sim) in &self.sims {
            println!(
                "  province {slug:<10}    {}  (letters, signed; replies on a script)",
                sim.url("/letters")
            );
        }
    }
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// What one path came to.
pub struct Outcome {
    path: &'static str,
    application_no: String,
    record: Value,
    error: Option<String>,
}

fn now() -> String {
    chrono::Utc::now()
        .with_timezone(&crate::xp::rules::beijing())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

struct Department<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    key: &'a str,
    operator: &'a str,
}

impl Department<'_> {
    async fn send(&self, ty: &str, id: &str, data: Value) -> anyhow::Result<()> {
        let application_no = data["application_no"].as_str().unwrap_or_default().to_string();
        let event = json!({"specversion": "1.0", "id": id, "source": "urn:fj:provincial-swms", "type": ty,
            "subject": format!("xp:{application_no}"), "time": now(), "jurisdiction": "350000", "data": data});
        let r = self
            .client
            .post(format!("{}/api/v1/messages", self.base))
            .bearer_auth(self.key)
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string())
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            anyhow::bail!("the hub answered {status} to the {ty}: {}", r.text().await.unwrap_or_default());
        }
        Ok(())
    }

    async fn record(&self, application_no: &str) -> Value {
        let r = self
            .client
            .get(format!("{}/api/v1/xp/{application_no}", self.base))
            .bearer_auth(self.operator)
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    async fn wait(&self, application_no: &str, state: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let v = self.record(application_no).await;
            if v["negotiation"]["state"] == state {
                return Ok(v);
            }
            if started.elapsed() > Duration::from_secs(30) {
                anyhow::bail!(
                    "{application_no} did not reach {state} within 30 s (it is {})",
                    v["negotiation"]["state"].as_str().unwrap_or("unknown")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn request(application_no: &str, receiver: Value, quantity: &str) -> Value {
    let today = chrono::Utc::now().with_timezone(&crate::xp::rules::beijing()).date_naive();
    json!({
        "application_no": application_no, "sending_province": "35",
        "consignor": {"usci": "91350181MA2Y4KD6XT", "name": "福清融通汽车服务有限公司", "site_id": "S350181-0102"},
        "receiver": receiver,
        "lines": [{"waste_code": "900-052-31", "category": "HW31",
                   "name": "废铅蓄电池及废铅蓄电池拆解过程中产生的废铅板、废铅膏和酸液", "quantity_t": quantity, "method_code": "R4"}],
        "requested_period": {"from": today.to_string(), "to": (today + chrono::Duration::days(180)).to_string()},
        "documents": [{"kind": "APPLICATION_FORM", "file": {"name": "跨省转移申请表.pdf", "media_type": "application/pdf",
            "sha256": "5d41402abc4b2a76b9719d911017c592ae0e8d2c7a8b1f3e9d0c6a4b2e1f3a5c", "size": 231004}}], "submitted_at": now()
    })
}

async fn consultation_path(d: &Department<'_>) -> anyhow::Result<Value> {
    let app_no = "KSZY-350181-2026-0012";
    let receiver = json!({"usci": "91360121MA35GH2W54", "name": "南昌恒泰再生铅业有限公司", "province": "36",
        "site_id": "S360121-0001", "licence_no": "赣危废经字〔2024〕第031号", "licence_valid_to": "2029-06-30"});
    d.send("xp-request", "demo-xp-req-0012", request(app_no, receiver.clone(), "180"))
        .await?;
    let at = now();
    d.send(
        "xp-acceptance",
        "demo-xp-acc-0012",
        json!({"application_no": app_no, "authority_division": "350000", "outcome": "ACCEPTED", "received_at": at, "accepted_at": at}),
    )
    .await?;
    d.send("xp-consultation", "demo-xp-con-0012", json!({"letter_no": "闽环固商〔2026〕15号", "application_no": app_no,
        "from_province": "35", "to_province": "36", "preliminary_opinion": "经初审，申请材料齐全，拟同意转移，特此商请。", "sent_at": now()}))
        .await?;
    let v = d.wait(app_no, "REPLIED").await?;
    let today = chrono::Utc::now().with_timezone(&crate::xp::rules::beijing()).date_naive();
    d.send(
        "xp-decision",
        "demo-xp-dec-0012",
        json!({
            "decision_no": "闽环固转〔2026〕0087号", "application_no": app_no, "basis": "CONSULTATION",
            "reply_letter_no": v["negotiation"]["reply"]["letter"]["letter_no"],
            "consignor": {"usci": "91350181MA2Y4KD6XT", "name": "福清融通汽车服务有限公司", "site_id": "S350181-0102"},
            "receiver": receiver,
            "lines": [{"waste_code": "900-052-31", "category": "HW31",
                       "name": "废铅蓄电池及废铅蓄电池拆解过程中产生的废铅板、废铅膏和酸液", "quantity_t": "180", "method_code": "R4"}],
            "valid_from": today.to_string(), "valid_to": (today + chrono::Duration::days(180)).to_string(),
            "decided_at": now(),
            "notified_parties": [{"kind": "RECEIVING_ENVIRONMENT_DEPT", "name": "江西省生态环境厅", "province": "36"}]
        }),
    )
    .await?;
    d.wait(app_no, "DECIDED").await
}

async fn whitelist_path(d: &Department<'_>, provinces: &Provinces) -> anyhow::Result<Value> {
    let zhejiang = provinces.sim("zhejiang").context("the Zhejiang simulator")?;
    let year = chrono::Utc::now().format("%Y").to_string();
    let entry = json!({"type": "whitelist-entry", "subject": "whitelist:ZHE-MIN-2024:ZM-2026-004", "data": {
        "whitelist_id": "ZM-2026-004", "scheme": "ZHE-MIN-2024", "scheme_name": "浙闽危险废物跨省转移白名单合作",
        "direction": "OUTBOUND_FROM_FUJIAN", "partner_province": "33",
        "facility": {"usci": "91330110MAJL6B3H1J", "name": "杭州余杭绿洲资源再生有限公司", "licence_no": "浙危废经第3301000123号", "facility_id": "ZJ-330110-0088"},
        "waste_types": [{"whole_category": "HW31"}, {"waste_code": "900-045-49", "category": "HW49"}],
        "max_quantity_t_per_year": "500",
        "conditions": {"text": "批准之日起30日内完成转移，接收量计入年度限额。", "completion_days": 30},
        "valid_from": format!("{year}-01-01"), "valid_to": format!("{year}-12-31"), "status": "ACTIVE"}});
    let sent = zhejiang.send_letter(entry, false).await?;
    if sent.status != 200 {
        anyhow::bail!("the hub answered {} to Zhejiang's whitelist entry: {:?}", sent.status, sent.error);
    }
    let app_no = "KSZY-350582-2026-0031";
    let receiver = json!({"usci": "91330110MAJL6B3H1J", "name": "杭州余杭绿洲资源再生有限公司", "province": "33",
        "site_id": "ZJ-330110-0088", "licence_no": "浙危废经第3301000123号", "licence_valid_to": "2028-12-31"});
    // Give the workflow a moment to store the entry before the request.
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.send("xp-request", "demo-xp-req-0031", request(app_no, receiver, "30")).await?;
    let at = now();
    d.send(
        "xp-acceptance",
        "demo-xp-acc-0031",
        json!({"application_no": app_no, "authority_division": "350000", "outcome": "ACCEPTED", "received_at": at, "accepted_at": at}),
    )
    .await?;
    d.wait(app_no, "DECIDED").await
}

/// Runs both paths; the hub must already run with [`Provinces::env`].
pub async fn run(client: &reqwest::Client, base: &str, department_key: &str, operator: &str, provinces: &Provinces) -> Vec<Outcome> {
    for (_, sim) in &provinces.sims {
        sim.set_hub(base);
    }
    let d = Department {
        client,
        base,
        key: department_key,
        operator,
    };
    println!("\nJourney 3: cross-province transfer negotiation (the demo plays Fujian's department)");
    let mut out = Vec::new();
    for (path, app_no) in [
        ("consultation with Jiangxi", "KSZY-350181-2026-0012"),
        ("whitelist with Zhejiang", "KSZY-350582-2026-0031"),
    ] {
        let r = if app_no.ends_with("0012") {
            consultation_path(&d).await
        } else {
            whitelist_path(&d, provinces).await
        };
        let (record, error) = match r {
            Ok(v) => (v, None),
            Err(e) => (d.record(app_no).await, Some(format!("{e:#}"))),
        };
        out.push(Outcome {
            path,
            application_no: app_no.to_string(),
            record,
            error,
        });
    }
    out
}

/// Prints each path's steps, deadlines and letters.
pub fn print_summary(outcomes: &[Outcome]) {
    for o in outcomes {
        let n = &o.record["negotiation"];
        println!(
            "\n  {} — application {}: {}",
            o.path,
            o.application_no,
            n["state"].as_str().unwrap_or("unknown")
        );
        for h in o.record["history"].as_array().into_iter().flatten() {
            println!(
                "    {:<16} {:<9} {}",
                h["type"].as_str().unwrap_or(""),
                h["outcome"].as_str().unwrap_or(""),
                h["note"].as_str().unwrap_or("")
            );
        }
        for dl in n["deadlines"].as_array().into_iter().flatten() {
            println!(
                "    deadline {:<12} due {} (responsible {}) {}",
                dl["kind"].as_str().unwrap_or(""),
                dl["due"].as_str().unwrap_or(""),
                dl["responsible"].as_str().unwrap_or(""),
                if dl["met_at"].is_null() {
                    "running".to_string()
                } else {
                    format!("met, {} working days late", dl["late_by"])
                }
            );
        }
        if let Some(dec) = n["decision"].as_object() {
            println!(
                "    decision {} ({}), valid {} to {}",
                dec.get("decision_no").and_then(Value::as_str).unwrap_or(""),
                dec.get("basis").and_then(Value::as_str).unwrap_or(""),
                dec.get("valid_from").and_then(Value::as_str).unwrap_or(""),
                dec.get("valid_to").and_then(Value::as_str).unwrap_or("")
            );
        }
        for l in o.record["letters"].as_array().into_iter().flatten() {
            println!(
                "    letter {:<3} {:<16} {} · receipt {}",
                l["direction"].as_str().unwrap_or(""),
                l["type"].as_str().unwrap_or(""),
                l["connector"].as_str().unwrap_or(""),
                l["verdict"].as_str().unwrap_or("")
            );
        }
        if let Some(e) = &o.error {
            println!("    did not finish: {e}");
        }
    }
}

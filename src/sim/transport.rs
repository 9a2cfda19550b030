//! Simulator of the provincial transport department (省交通运输厅), serving
//! its proposed contract (`contracts/transport/`):
//!
//! - `GET /api/v1/carriers`: the registry of road dangerous-goods transport
//!   operators with their vehicles and crew, paged as the `poll` connector
//!   reads it ([`super::registry`]: bearer token, page-size limit,
//!   `updated_since` cursor, page tokens, `500` share, outages, records that
//!   change: `POST /_sim/touch`, or on their own with a churn interval);
//! - with a broker (`--mqtt`), vehicle positions as the department's
//!   monitoring platform publishes them: one JT/T 809-style JSON batch per
//!   vehicle on `fj/transport/positions/<platformId>`, on demand
//!   (`POST /_sim/tracks {"vehicles": n, "points": m}`) or on an interval.
//!
//! The registry is generated from a seed ([`carriers`]): the same seed
//! gives the same carriers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::registry::{Mutator, Registry, RegistryConfig, RegistrySpec};
use super::synth::{County, Gen, PlateStyle, beijing, beijing_ms, counties, rfc3339_ms};

/// The carrier record schema of the contract.
pub const CARRIER_SCHEMA: &str = include_str!("../../contracts/transport/carrier.schema.json");
/// The position batch schema of the contract.
pub const TRACK_BATCH_SCHEMA: &str = include_str!("../../contracts/transport/track-batch.schema.json");
/// The paged path.
pub const CARRIERS_PATH: &str = "/api/v1/carriers";
/// The topic prefix the monitoring platform publishes under.
pub const TOPIC_PREFIX: &str = "fj/transport/positions";

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Paging, token, failures.
    pub registry: RegistryConfig,
    /// Carriers in the registry.
    pub records: usize,
    /// Seed of the generated registry.
    pub seed: u64,
    /// Broker to publish positions to (`mqtt://host:port`), if any.
    pub mqtt: Option<String>,
    /// The monitoring platform's access code (下级平台接入码).
    pub platform_id: String,
    /// Topics are `<topic_prefix>/<platform_id>` (tests use their own prefix).
    pub topic_prefix: String,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            registry: RegistryConfig::default(),
            records: 120,
            seed: 809,
            mqtt: None,
            platform_id: "35000011".into(),
            topic_prefix: TOPIC_PREFIX.into(),
        }
    }
}

/// A running simulator.
#[derive(Clone)]
pub struct TransportSim {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The carrier registry.
    pub registry: Registry,
    tracks: Arc<Tracks>,
}

impl TransportSim {
    /// Generates the registry and serves it on `listener` until `stop`.
    pub fn start(listener: TcpListener, cfg: TransportConfig, stop: CancellationToken) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let counties = counties()?;
        let mutate_counties = counties.clone();
        let mutate: Mutator = Arc::new(move |r: &mut Value, rng: &mut fastrand::Rng| mutate_carrier(r, rng, &mutate_counties));
        let registry = Registry::new(
            RegistryConfig {
                seed: cfg.seed,
                ..cfg.registry.clone()
            },
            RegistrySpec {
                path: CARRIERS_PATH,
                id_field: "recordId",
                version_field: "version",
                updated_field: "updatedAt",
                records: carriers(cfg.seed, cfg.records)?,
                mutate,
            },
        )?;
        let tracks = Arc::new(Tracks {
            registry: registry.clone(),
            counties,
            mqtt: cfg.mqtt.clone(),
            platform_id: cfg.platform_id.clone(),
            topic: format!("{}/{}", cfg.topic_prefix, cfg.platform_id),
            state: Mutex::new(TrackState {
                seq: HashMap::new(),
                rng: fastrand::Rng::with_seed(cfg.seed ^ 0x809),
                msg_sn: 0,
            }),
        });
        let app = registry
            .router()
            .merge(Router::new().route("/_sim/tracks", post(publish)).with_state(tracks.clone()));
        super::serve(listener, app, stop);
        Ok(Self { addr, registry, tracks })
    }

    /// A URL on the simulator.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Position batches for `vehicles` vehicles of operating carriers,
    /// `points` positions each, ending now: (topic, payload).
    pub fn track_batches(&self, vehicles: usize, points: usize) -> Vec<(String, Value)> {
        self.tracks.batches(vehicles, points)
    }

    /// Publishes that many batches to the broker (QoS 1, each acknowledged);
    /// returns how many were published.
    pub async fn publish_tracks(&self, vehicles: usize, points: usize) -> anyhow::Result<usize> {
        self.tracks.publish(vehicles, points).await
    }

    /// Publishes `vehicles` batches every `every` until `stop` (needs a broker).
    pub fn publish_every(&self, every: Duration, vehicles: usize, stop: CancellationToken) {
        let sim = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = sim.publish_tracks(vehicles, 10).await {
                            tracing::warn!(error = %e, "The transport simulator could not publish positions.");
                        }
                    }
                }
            }
        });
    }
}

const WORDS: [&str; 20] = [
    "顺安", "恒通", "鑫达", "宏运", "安捷", "通达", "环宇", "畅达", "众诚", "捷顺", "安达", "汇通", "祥运", "盛通", "永顺", "诚信", "金运",
    "远航", "吉顺", "联运",
];
const KINDS: [&str; 4] = ["危险货物运输有限公司", "危险品运输有限公司", "物流有限公司", "环保运输有限公司"];
const CLASSES: [&str; 8] = [
    "危险货物运输（2类1项）",
    "危险货物运输（3类）",
    "危险货物运输（4类1项）",
    "危险货物运输（5类1项）",
    "危险货物运输（6类1项）",
    "危险货物运输（8类）",
    "危险货物运输（9类）",
    "剧毒化学品运输",
];
/// (vehicle type, body type, least and most rated load in kg, plate style).
const VEHICLE_TYPES: [(&str, &str, u32, u32, PlateStyle); 7] = [
    ("重型罐式货车", "罐式", 8_000, 18_000, PlateStyle::Truck),
    ("重型厢式货车", "厢式", 8_000, 15_000, PlateStyle::Truck),
    ("中型厢式货车", "厢式", 4_000, 8_000, PlateStyle::Truck),
    ("轻型厢式货车", "厢式", 1_000, 1_495, PlateStyle::Truck),
    ("重型仓栅式货车", "仓栅", 8_000, 14_000, PlateStyle::Truck),
    ("重型罐式半挂车", "罐式", 25_000, 33_000, PlateStyle::Trailer),
    ("纯电动厢式货车", "厢式", 1_000, 4_495, PlateStyle::NewEnergy),
];
/// (code, name, share in per mille, cumulative).
const STATUSES: [(&str, &str, u32); 4] = [
    ("10", "营业", 850),
    ("20", "停业整顿", 930),
    ("30", "吊销", 970),
    ("40", "注销", 1000),
];

/// Generates `n` carrier records from `seed`, valid against the
/// contract's carrier schema. A tenth of them share one update time (the
/// day the registry was migrated), to exercise paging over equal times.
pub fn carriers(seed: u64, n: usize) -> anyhow::Result<Vec<Value>> {
    let counties = counties()?;
    let mut g = Gen::new(seed);
    let mut names = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    let migrated = beijing_ms(2025, 1, 1, 8, 0, 0);
    let span = beijing_ms(2026, 10, 31, 0, 0, 0) - beijing_ms(2025, 1, 2, 0, 0, 0);
    for i in 0..n {
        let county = g.pick(&counties).clone();
        let name = loop {
            let candidate = format!("{}{}{}{}", county.city_stem(), county.stem(), g.pick(&WORDS), g.pick(&KINDS));
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
        out.push(carrier(&mut g, &county, i, name, updated));
    }
    Ok(out)
}

fn carrier(g: &mut Gen, county: &County, i: usize, name: String, updated: i64) -> Value {
    let usci = {
        let org = g.org8_new();
        g.usci("91", county, &org)
    };
    let short = county.city_short();
    let roll = g.rng.u32(0..1000);
    let (status, status_name, _) = STATUSES.iter().find(|s| roll < s.2).copied().unwrap_or(STATUSES[0]);
    let classes = g.rng.usize(1..4);
    let mut scope: Vec<&str> = g.rng.choose_multiple(CLASSES.iter().copied(), classes);
    scope.sort_unstable();
    scope.push("危险废物");
    let vehicles: Vec<Value> = (0..g.rng.usize(1..7)).map(|_| vehicle(g, county)).collect();
    let personnel: Vec<Value> = (0..g.rng.usize(1..6)).enumerate().map(|(k, _)| person(g, county, k)).collect();
    let mut record = json!({
        "recordId": format!("DG{}{:06}", county.code, i + 1),
        "version": g.rng.i64(1..10),
        "updatedAt": rfc3339_ms(updated),
        "enterpriseName": name,
        "creditCode": usci,
        "areaCode": county.code,
        "licence": {
            "licenceNo": format!("闽交运管许可{short}字{}300{:03}号", county.code, g.rng.u32(1..1000)),
            "businessScope": scope,
        },
        "operatingStatus": status,
        "operatingStatusName": status_name,
        "vehicles": vehicles,
        "personnel": personnel,
    });
    if g.chance(0.8) {
        record["address"] = json!(format!(
            "{}{}{}{}号",
            county.city,
            county.name,
            g.pick(&super::synth::ROADS),
            g.rng.u32(1..2000)
        ));
    }
    if g.chance(0.85) {
        record["licence"]["validTo"] = json!(g.date(2026, 2030));
        record["licence"]["issuer"] = json!(format!("{}交通运输局", county.city));
    }
    if g.chance(0.8) {
        record["monitoringPlatform"] = json!(format!("{}道路运输车辆卫星定位监控平台", county.city));
    }
    record
}

fn vehicle(g: &mut Gen, county: &County) -> Value {
    let (vtype, body, least, most, style) = *g.pick(&VEHICLE_TYPES);
    let dot = g.chance(0.2);
    let load = g.rng.u32(least / 5..=most / 5) * 5;
    let mut v = json!({
        "plateNo": g.plate(county, style, dot),
        "plateColor": if style == PlateStyle::NewEnergy { 5 } else { 2 },
        "transportCertNo": format!("闽交运管{}字{}{:06}号", county.city_short(), county.code, g.rng.u32(0..1_000_000)),
        "vehicleType": vtype,
        "bodyType": body,
        "approvedLoadKg": load,
    });
    if g.chance(0.8) {
        v["certValidTo"] = json!(g.date(2026, 2029));
    }
    // Trailers carry no positioning terminal; their tractor does.
    if style != PlateStyle::Trailer && g.chance(0.9) {
        v["terminalId"] = json!(format!("0{}", g.mobile()));
    }
    v
}

fn person(g: &mut Gen, county: &County, k: usize) -> Value {
    json!({
        "name": g.person(),
        "post": if k.is_multiple_of(2) { "驾驶员" } else { "押运员" },
        "qualificationNo": format!("{}{}{:06}", county.code, g.rng.u32(2010..2025), g.rng.u32(0..1_000_000)),
        "qualificationValidTo": g.date(2026, 2031),
    })
}

/// One change of a carrier, as the department's clerks make them.
fn mutate_carrier(r: &mut Value, rng: &mut fastrand::Rng, counties: &[County]) {
    let mut g = Gen { rng: rng.fork() };
    let county = r["areaCode"]
        .as_str()
        .and_then(|c| counties.iter().find(|k| k.code == c))
        .or_else(|| counties.first())
        .cloned();
    let Some(county) = county else { return };
    match g.rng.u8(0..5) {
        0 => r["licence"]["validTo"] = json!(g.date(2027, 2031)),
        1 => {
            let (code, name) = if r["operatingStatus"] == "10" {
                ("20", "停业整顿")
            } else {
                ("10", "营业")
            };
            r["operatingStatus"] = json!(code);
            r["operatingStatusName"] = json!(name);
        }
        2 => {
            if let Some(list) = r["vehicles"].as_array_mut() {
                if list.len() < 12 {
                    list.push(vehicle(&mut g, &county));
                } else {
                    list.remove(0);
                }
            }
        }
        3 => {
            if let Some(list) = r["vehicles"].as_array_mut()
                && list.len() > 1
            {
                list.pop();
            }
        }
        _ => {
            if let Some(p) = r["personnel"].as_array_mut().and_then(|l| l.first_mut()) {
                p["qualificationValidTo"] = json!(g.date(2028, 2032));
            }
        }
    }
}

struct TrackState {
    /// Next batch number per plate.
    seq: HashMap<String, u64>,
    rng: fastrand::Rng,
    msg_sn: u64,
}

struct Tracks {
    registry: Registry,
    counties: Vec<County>,
    mqtt: Option<String>,
    platform_id: String,
    /// Where batches are published.
    topic: String,
    state: Mutex<TrackState>,
}

impl Tracks {
    fn batches(&self, vehicles: usize, points: usize) -> Vec<(String, Value)> {
        let points = points.clamp(1, 1000);
        // Vehicles that drive: of operating carriers, with a terminal.
        let fleet: Vec<(String, Value)> = self
            .registry
            .records()
            .into_iter()
            .filter(|r| r["operatingStatus"] == "10")
            .flat_map(|r| {
                let area = r["areaCode"].as_str().unwrap_or_default().to_string();
                r["vehicles"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|v| v.get("terminalId").is_some())
                    .map(move |v| (area.clone(), v))
            })
            .collect();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let chosen = st.rng.choose_multiple(fleet, vehicles);
        let now = chrono::Utc::now().timestamp();
        chosen
            .into_iter()
            .map(|(area, v)| {
                let centre = self.counties.iter().find(|c| c.code == area).map_or((26.07, 119.30), |c| c.centre);
                let plate = v["plateNo"].as_str().unwrap_or_default().to_string();
                let seq = {
                    let s = st.seq.entry(plate.clone()).or_insert(0);
                    *s += 1;
                    *s - 1
                };
                st.msg_sn += 1;
                let msg_sn = st.msg_sn;
                let gnss = path(&mut st.rng, centre, points, now);
                let batch = json!({
                    "dataType": if points == 1 { "UP_EXG_MSG_REAL_LOCATION" } else { "UP_EXG_MSG_HISTORY_LOCATION" },
                    "msgSn": msg_sn,
                    "msgTime": now,
                    "platformId": self.platform_id,
                    "vehicleNo": plate,
                    "vehicleColor": v["plateColor"],
                    "terminalId": v["terminalId"],
                    "batchSeq": seq,
                    "gnss": gnss,
                });
                (self.topic.clone(), batch)
            })
            .collect()
    }

    async fn publish(&self, vehicles: usize, points: usize) -> anyhow::Result<usize> {
        let Some(url) = &self.mqtt else {
            anyhow::bail!("no broker: start the simulator with --mqtt mqtt://host:port");
        };
        let batches = self.batches(vehicles, points);
        publish_all(url, &batches).await?;
        Ok(batches.len())
    }
}

/// `points` fixes 30 s apart ending at `now` (epoch seconds), driving away
/// from near `centre`: WGS-84 micro-degrees, km/h, Beijing time.
fn path(rng: &mut fastrand::Rng, centre: (f64, f64), points: usize, now: i64) -> Vec<Value> {
    let (mut lat, mut lon) = (centre.0 + (rng.f64() - 0.5) * 0.2, centre.1 + (rng.f64() - 0.5) * 0.2);
    let mut heading = rng.u32(0..360);
    let mut odometer = rng.u32(10_000..500_000);
    let first = now - 30 * (points as i64 - 1);
    (0..points)
        .map(|k| {
            let speed = rng.u32(20..=90);
            let km = f64::from(speed) * 30.0 / 3600.0;
            let h = f64::from(heading).to_radians();
            lat += km * h.cos() / 111.0;
            lon += km * h.sin() / (111.0 * lat.to_radians().cos());
            heading = (heading + 345 + rng.u32(0..=30)) % 360;
            odometer += u32::from(!k.is_multiple_of(2));
            let t = chrono::DateTime::from_timestamp(first + 30 * k as i64, 0)
                .unwrap_or_default()
                .with_timezone(&beijing());
            json!({
                "encrypt": 0,
                "time": t.format("%Y-%m-%d %H:%M:%S").to_string(),
                "lon": (lon * 1e6).round() as i64,
                "lat": (lat * 1e6).round() as i64,
                "vec1": speed,
                "vec2": speed.saturating_sub(rng.u32(0..3)),
                "vec3": odometer,
                "direction": heading,
                "altitude": rng.u32(2..120),
                "state": 3,
                "alarm": if rng.u8(0..20) == 0 { 2 } else { 0 },
            })
        })
        .collect()
}

/// Publishes each (topic, payload) with QoS 1 over one connection and
/// waits for every PUBACK (10 s at most).
async fn publish_all(url: &str, batches: &[(String, Value)]) -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (host, port) = crate::config::mqtt::broker_address(url).map_err(anyhow::Error::msg)?;
    let id = format!("wastehub-sim-transport-{}", ulid::Ulid::generate().to_string().to_lowercase());
    let mut options = MqttOptions::new(id, host, port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, batches.len() + 10);
    for (topic, payload) in batches {
        client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, serde_json::to_vec(payload)?)
            .await?;
    }
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        let mut acks = 0;
        while acks < batches.len() {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acks += 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publishing to {url}: {e}")),
            }
        }
        Ok(())
    })
    .await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), events.poll()).await;
    match acked {
        Ok(r) => r,
        Err(_) => anyhow::bail!("the broker at {url} did not acknowledge every publish within 10 s"),
    }
}

#[derive(Deserialize)]
struct PublishBody {
    #[serde(default = "one")]
    vehicles: usize,
    #[serde(default = "ten")]
    points: usize,
}

fn one() -> usize {
    1
}
fn ten() -> usize {
    10
}

/// Most vehicles one request publishes for.
const MAX_VEHICLES: usize = 1000;

async fn publish(State(tracks): State<Arc<Tracks>>, body: Option<axum::Json<PublishBody>>) -> Response {
    let b = body.map_or(PublishBody { vehicles: 1, points: 10 }, |b| b.0);
    if tracks.mqtt.is_none() {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"code": "NO_BROKER", "message": "start the simulator with --mqtt mqtt://host:port"})),
        )
            .into_response();
    }
    match tracks.publish(b.vehicles.min(MAX_VEHICLES), b.points).await {
        Ok(n) => axum::Json(json!({ "published": n, "topic": tracks.topic })).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({"code": "BROKER_FAILED", "message": e.to_string()})),
        )
            .into_response(),
    }
}

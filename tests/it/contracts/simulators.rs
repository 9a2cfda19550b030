//! The partners the contract tests play, one simulator per contract
//! (`wastehub::sim`): what each needs to be reached by the shipped connector
//! files (`${VAR}`s), how to reset it, where its request record is, and how
//! to send it a request directly with valid credentials, as the hub would.
//!
//! To add a partner: start its simulator in [`Simulators::start`], give its
//! variables in [`Simulators::env`], and name it in [`Simulators::reset`],
//! [`Simulators::base`], [`Simulators::exchanges`] (when it receives from
//! the hub) and [`Simulators::send`] (when an answer-only example sends it a
//! bare body).
//!
//! The province hubs (`letters` connectors, contract `province`) are played
//! by one simulator per province the examples need ([`PROVINCES`]), each
//! with fresh keys per run: the hub's key for the province and the
//! province's own, written where the shipped connector files look for them
//! (`WASTEHUB_XP_KEYS`).

use std::collections::BTreeMap;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wastehub::config::Secret;
use wastehub::config::connector::SignatureConfig;
use wastehub::connectors::signature::Signer;
use wastehub::letters::keys::{PartnerKeys, pem_encode};
use wastehub::letters::{Algorithm, PrivateKey};
use wastehub::sim::Exchange;
use wastehub::sim::health::{HealthConfig, HealthSim};
use wastehub::sim::national::{NationalConfig, NationalSim};
use wastehub::sim::province::{LETTERS_PATH, ProvinceConfig, ProvinceSim};
use wastehub::sim::provincial::{ProvincialConfig, ProvincialSim};
use wastehub::sim::qinqing::{DEV_SECRET, NOTICES_PATH, QinqingConfig, QinqingSim};
use wastehub::sim::registry::RegistryConfig;
use wastehub::sim::transport::{TransportConfig, TransportSim};

/// The bearer token the provincial simulator expects in these tests.
const PROVINCIAL_TOKEN: &str = "contract-test-provincial-token";
/// The department simulators' tokens: those of `wastehub simulate`, which
/// the raw HTTP examples carry in their `Authorization` lines.
const TRANSPORT_TOKEN: &str = "transport-sim-token";
const HEALTH_TOKEN: &str = "health-sim-token";

/// The provinces played for contract `province`: connector, province
/// code, the key file stem its connector file names, and the algorithm agreed.
pub(super) const PROVINCES: &[(&str, &str, &str, Algorithm)] = &[("province-jiangxi", "36", "jiangxi", Algorithm::Sm2Sm3)];

/// The keys of one letters partner, as PKCS#8 DER (a key is not `Clone`).
pub(super) struct LetterPair {
    /// The hub's signing key for this partner.
    hub: Vec<u8>,
    /// The partner's own signing key.
    partner: Vec<u8>,
}

impl LetterPair {
    pub fn generate(alg: Algorithm) -> Self {
        let (_, hub) = PrivateKey::generate(alg).expect("the hub's key");
        let (_, partner) = PrivateKey::generate(alg).expect("the partner's key");
        Self { hub, partner }
    }

    /// The hub's key for this partner, as PKCS#8 DER.
    pub fn hub_der(&self) -> &[u8] {
        &self.hub
    }

    /// The hub's key for this partner.
    pub fn hub(&self) -> PrivateKey {
        PrivateKey::from_pkcs8_der(&self.hub).expect("the hub's key reads")
    }

    /// The partner's key.
    pub fn partner(&self) -> PrivateKey {
        PrivateKey::from_pkcs8_der(&self.partner).expect("the partner's key reads")
    }

    /// Writes the files a shipped `letters` connector reads:
    /// `fujian-for-<stem>.key.pem` and `<stem>.pub.pem`.
    fn write(&self, dir: &std::path::Path, stem: &str) {
        std::fs::write(dir.join(format!("fujian-for-{stem}.key.pem")), pem_encode("PRIVATE KEY", &self.hub)).expect("write key");
        std::fs::write(dir.join(format!("{stem}.pub.pem")), self.partner().public().to_pem()).expect("write public key");
    }
}

/// One province hub simulator with its keys.
struct Province {
    connector: &'static str,
    sim: ProvinceSim,
    keys: LetterPair,
}

/// The simulators, by contract name.
pub(super) struct Simulators {
    provinces: Vec<Province>,
    /// Where the letters keys are (`WASTEHUB_XP_KEYS`).
    letter_keys: tempfile::TempDir,
    national: NationalSim,
    provincial: ProvincialSim,
    qinqing: QinqingSim,
    transport: TransportSim,
    health: HealthSim,
    stop: CancellationToken,
}

/// An answer: status, headers (names in lower case) and body.
pub(super) struct Answered {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answered {
    /// Reads a response whole.
    pub async fn read(r: reqwest::Response) -> Result<Self, String> {
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = r.text().await.map_err(|e| e.to_string())?;
        Ok(Self { status, headers, body })
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Simulators {
    pub async fn start() -> Self {
        let stop = CancellationToken::new();
        let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind") };
        let national = NationalSim::start(bind().await, NationalConfig::default(), stop.clone()).expect("national simulator");
        let provincial = ProvincialSim::start(
            bind().await,
            ProvincialConfig {
                token: PROVINCIAL_TOKEN.into(),
                fail_share: 0.0,
            },
            stop.clone(),
        )
        .expect("provincial simulator");
        let qinqing = QinqingSim::start(bind().await, QinqingConfig::default(), stop.clone()).expect("qinqing simulator");
        let registry = |token: &str| RegistryConfig {
            token: token.into(),
            ..RegistryConfig::default()
        };
        let transport = TransportSim::start(
            bind().await,
            TransportConfig {
                registry: registry(TRANSPORT_TOKEN),
                ..TransportConfig::default()
            },
            stop.clone(),
        )
        .expect("transport simulator");
        let health = HealthSim::start(
            bind().await,
            HealthConfig {
                registry: registry(HEALTH_TOKEN),
                ..HealthConfig::default()
            },
            stop.clone(),
        )
        .expect("health simulator");
        let letter_keys = tempfile::tempdir().expect("a folder for the letters keys");
        let mut provinces = Vec::new();
        for &(connector, code, stem, alg) in PROVINCES {
            let keys = LetterPair::generate(alg);
            keys.write(letter_keys.path(), stem);
            let hub = PartnerKeys::new(vec![keys.hub().public().clone()]).expect("the hub's public key");
            let sim =
                ProvinceSim::start(bind().await, ProvinceConfig::new(code, keys.partner(), hub), stop.clone()).expect("province simulator");
            provinces.push(Province { connector, sim, keys });
        }
        Self {
            provinces,
            letter_keys,
            national,
            provincial,
            qinqing,
            transport,
            health,
            stop,
        }
    }

    /// The variables that point the shipped connector files at the
    /// simulators. The retry schedules are long after the first attempt, so
    /// that a retried delivery is seen retrying, not already dead. (The
    /// `poll` connectors are pointed at the harness's page servers, and the
    /// `mqtt` ones at the test broker, by the stage.)
    pub fn env(&self) -> BTreeMap<String, String> {
        let national = NationalConfig::default();
        [
            ("NATIONAL_URL", self.national.url("/exchange")),
            ("NATIONAL_TOKEN_URL", self.national.url("/oauth/token")),
            ("NATIONAL_CLIENT_ID", national.client_id),
            ("NATIONAL_CLIENT_SECRET", national.client_secret),
            ("NATIONAL_RETRY_SCHEDULE", "0s 1m".into()),
            ("PROVINCIAL_URL", self.provincial.url("/events")),
            ("PROVINCIAL_TOKEN", PROVINCIAL_TOKEN.into()),
            ("PROVINCIAL_RETRY_SCHEDULE", "0s 1m".into()),
            ("QINQING_URL", self.qinqing.url(NOTICES_PATH)),
            ("QINQING_SIGNING_SECRET", DEV_SECRET.into()),
            ("QINQING_RETRY_SCHEDULE", "0s 1m".into()),
            ("WASTEHUB_XP_ENABLED", "true".into()),
            ("WASTEHUB_XP_KEYS", self.letters_dir().display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(self.provinces.iter().flat_map(|p| {
            let var = p.connector.trim_start_matches("province-").to_uppercase();
            [
                (format!("PROVINCE_{var}_URL"), p.sim.url(LETTERS_PATH)),
                (format!("PROVINCE_{var}_RETRY_SCHEDULE"), "0s 1m".into()),
            ]
        }))
        .collect()
    }

    /// Where the `letters` connectors' key files are.
    pub fn letters_dir(&self) -> &std::path::Path {
        self.letter_keys.path()
    }

    /// The keys of `letters` connector `connector`, when a simulator plays it.
    pub fn letter_keys(&self, connector: &str) -> Option<&LetterPair> {
        self.provinces.iter().find(|p| p.connector == connector).map(|p| &p.keys)
    }

    /// The connector of contract `partner` its simulator plays, when the
    /// contract has several of the same kind (the province hubs).
    pub fn plays(&self, partner: &str) -> Option<&'static str> {
        match partner {
            "province" => self.provinces.first().map(|p| p.connector),
            _ => None,
        }
    }

    /// Tells the province simulators where the hub is (they reply to it).
    pub fn set_hub(&self, base: &str) {
        for p in &self.provinces {
            p.sim.set_hub(base);
        }
    }

    fn province(&self) -> Option<&ProvinceSim> {
        self.provinces.first().map(|p| &p.sim)
    }

    /// Makes every simulator forget what it accepted (receipt numbers start
    /// afresh) and end any outage.
    pub fn reset(&self) {
        self.national.reset();
        self.provincial.reset();
        self.qinqing.reset();
        self.transport.registry.set_outage(false);
        self.health.registry.set_outage(false);
        for p in &self.provinces {
            p.sim.reset();
        }
    }

    /// The base URL of contract `partner`'s simulator: where `[[setup]]`
    /// calls and raw HTTP requests go.
    pub fn base(&self, partner: &str) -> Option<String> {
        Some(match partner {
            "national" => self.national.url(""),
            "provincial" => self.provincial.url(""),
            "qinqing" => self.qinqing.url(""),
            "transport" => self.transport.url(""),
            "health" => self.health.url(""),
            "province" => self.province()?.url(""),
            _ => return None,
        })
    }

    /// Every request the partner's endpoint received, with the answer given.
    pub fn exchanges(&self, partner: &str) -> Option<Vec<Exchange>> {
        match partner {
            "national" => Some(self.national.exchanges()),
            "provincial" => Some(self.provincial.exchanges()),
            "qinqing" => Some(self.qinqing.exchanges()),
            "province" => self.province().map(ProvinceSim::exchanges),
            _ => None,
        }
    }

    /// Sends `body` to the partner's endpoint with valid credentials, as
    /// the hub would; returns the answer.
    pub async fn send(&self, partner: &str, body: Vec<u8>, content_type: &str) -> Result<Answered, String> {
        let client = reqwest::Client::new();
        let request = match partner {
            "national" => {
                let cfg = NationalConfig::default();
                let token: Value = client
                    .post(self.national.url("/oauth/token"))
                    .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let token = token["access_token"].as_str().ok_or("the simulator issued no token")?.to_string();
                client.post(self.national.url("/exchange")).bearer_auth(token)
            }
            "provincial" => client.post(self.provincial.url("/events")).bearer_auth(PROVINCIAL_TOKEN),
            // A letter carries its own credentials: its signature.
            "province" => client.post(self.province().ok_or("no province simulator")?.url(LETTERS_PATH)),
            "qinqing" => {
                // Signed as the hub signs: timestamp, message id and body.
                let signer = Signer::new(&SignatureConfig {
                    algorithm: "hmac-sm3".into(),
                    secret: Secret::new(DEV_SECRET),
                    key_id: None,
                });
                let id = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["requestId"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "msg_contract_example".into());
                let ts = chrono::Utc::now().timestamp();
                client
                    .post(self.qinqing.url(NOTICES_PATH))
                    .header("ce-id", &id)
                    .header("x-wastehub-timestamp", ts.to_string())
                    .header("x-wastehub-signature", signer.header(ts, &id, &body))
            }
            other => {
                return Err(format!(
                    "no simulator takes a bare body for {other} (write the request as raw HTTP)"
                ));
            }
        };
        let r = request
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Answered::read(r).await
    }
}

impl Drop for Simulators {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

//! The hub a contract's examples run against: every shipped connector file
//! and the shipped mappings, with only what is address or schedule (not
//! contract) changed, and the partners played by the simulators.
//!
//! - `[outbound] maintenance` windows are removed (examples must pass at
//!   any hour);
//! - `${VAR}`s point the senders' partners at the simulators
//!   ([`Simulators::env`]), and every connector whose `api_key_sha256` is a
//!   `${VAR}` gets a generated key;
//! - every `poll` connector is pointed at a page server of its own (its
//!   `url`'s path and query kept), runs every [`poll::INTERVAL`], and sends
//!   a generated bearer token when its `bearer_token` is a `${VAR}`;
//! - the `mqtt` connectors of the stage's contract are enabled on the test
//!   broker (`WASTEHUB_TEST_MQTT`) under their own client id and topic
//!   prefix; every other `mqtt` connector is disabled.
//! - the `letters` connectors (the province hubs) are enabled with fresh
//!   keys ([`Simulators::letter_keys`]); one the examples need no simulator
//!   for gets keys of its own and an address nothing listens on (nothing
//!   is routed to it).
//!
//! A connector belongs to the contract `contracts/<name>/`, or, for a
//! partner with several connectors (a department's registry and its
//! positions), to `contracts/<prefix>/` where its name is
//! `<prefix>-<interface>`: [`contract_of`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use wastehub::config::{ConnectorConfig, ConnectorKind};
use wastehub::connectors::http_json::HttpJsonConnector;
use wastehub::connectors::{DeliveryError, Receipt};
use wastehub::ingest::auth::generate_key;
use wastehub::letters::Algorithm;
use wastehub::letters::keys::{PartnerKeys, pem_encode};

use super::mqtt::Broker;
use super::poll::{self, PageServer};
use super::simulators::{LetterPair, Simulators};
use crate::support::exchange::{Channel, Example};
use crate::support::{HubSpec, TestApp, repo};

/// How long one exchange may take to settle (a drop folder waits for its
/// file to settle, then polls: seconds).
pub(super) const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// One shipped connector file, read.
pub(super) struct Shipped {
    /// The file's name without `.toml`.
    pub stem: String,
    /// The connector's `name`.
    pub name: String,
    pub table: toml::Table,
}

/// Every file in `connectors/`, by file name.
pub(super) fn shipped_connectors() -> Vec<Shipped> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("connectors"))
        .expect("connectors/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("connector file");
            let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = table.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            Shipped { stem, name, table }
        })
        .collect()
}

/// The contract folder (`contracts/<folder>/`) of connector `name`: the
/// folder named like it, else the longest folder `f` with `name` =
/// `f-<interface>`.
pub(super) fn contract_of(name: &str) -> Option<String> {
    let folders: BTreeSet<String> = std::fs::read_dir(repo().join("contracts"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if folders.contains(name) {
        return Some(name.to_string());
    }
    folders
        .into_iter()
        .filter(|f| name.strip_prefix(f.as_str()).is_some_and(|rest| rest.starts_with('-')))
        .max_by_key(String::len)
}

/// `VAR` of a `${VAR}` or `${VAR:-default}` reference.
pub(super) fn env_var(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix("${")?.strip_suffix('}')?;
    Some(inner.split(":-").next().unwrap_or(inner).to_string())
}

/// The value a `${VAR:-default}` falls back to, or the text itself when it
/// is no reference; `None` for a `${VAR}` without a default.
fn shipped_value(text: &str) -> Option<&str> {
    match text.trim().strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
        Some(inner) => inner.split_once(":-").map(|(_, d)| d),
        None => Some(text),
    }
}

/// A contract's hub, simulators, page servers and keys.
pub(super) struct Stage {
    pub app: TestApp,
    pub sims: Simulators,
    /// Connector name → its API key.
    pub keys: BTreeMap<String, String>,
    /// `poll` connector name → the server it polls.
    pub pages: BTreeMap<String, PageServer>,
    /// The broker the contract's `mqtt` connectors use, when there is one.
    pub broker: Option<Broker>,
    /// The contract (`contracts/<contract>/`).
    pub contract: String,
}

impl Stage {
    /// A fresh hub for the examples of `contract`.
    pub async fn start(contract: &str) -> Self {
        let sims = Simulators::start().await;
        let mut spec = HubSpec::new()
            .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
            // The shipped national connector waits up to 15 s per attempt.
            .config("[delivery]\nlease = \"2m\"")
            // A receiver still connecting must not hold the stop for long.
            .config("[server]\nshutdown_grace = \"3s\"");
        spec.env = sims.env();
        let tag = ulid::Ulid::generate().to_string().to_lowercase();
        let mut broker = crate::mqtt::broker().map(|url| Broker {
            url,
            prefix: format!("wh-test/{tag}"),
            client_ids: Vec::new(),
        });
        let mut keys = BTreeMap::new();
        let mut pages = BTreeMap::new();
        let mut mqtt_used = false;
        for Shipped { stem, name, mut table } in shipped_connectors() {
            if let Some(toml::Value::Table(out)) = table.get_mut("outbound") {
                out.remove("maintenance");
            }
            let digests = table
                .get("inbound")
                .and_then(|i| i.get("api_key_sha256"))
                .and_then(|d| d.as_array())
                .cloned()
                .unwrap_or_default();
            if let Some(var) = digests.iter().filter_map(|d| d.as_str()).find_map(env_var) {
                let (key, digest) = generate_key();
                spec.env.insert(var, digest);
                keys.insert(name.clone(), key);
            }
            match table.get("kind").and_then(|k| k.as_str()) {
                Some("poll") => {
                    let server = poll_at_page_server(&name, &mut table, &mut spec.env).await;
                    pages.insert(name.clone(), server);
                }
                Some("letters") => {
                    letters_without_simulator(&name, &table, &sims, &mut spec.env);
                }
                Some("mqtt") => {
                    let ours = contract_of(&name).as_deref() == Some(contract);
                    match broker.as_mut().filter(|_| ours) {
                        Some(b) => {
                            mqtt_on_test_broker(&name, &mut table, b, &tag);
                            mqtt_used = true;
                        }
                        None => {
                            table.insert("enabled".into(), toml::Value::Boolean(false));
                        }
                    }
                }
                _ => {}
            }
            spec.connectors.push((stem, toml::to_string(&table).expect("serialise")));
        }
        let app = TestApp::spawn(spec).await;
        sims.set_hub(&app.base);
        keys.extend(register_parks(&app).await);
        Self {
            app,
            sims,
            keys,
            pages,
            broker: broker.filter(|_| mqtt_used),
            contract: contract.to_string(),
        }
    }

    pub fn connector(&self, name: &str) -> Option<&ConnectorConfig> {
        self.app.connectors.iter().find(|c| c.name == name)
    }

    /// The connectors of this stage's contract.
    fn ours(&self) -> impl Iterator<Item = &ConnectorConfig> {
        self.app
            .connectors
            .iter()
            .filter(|c| contract_of(&c.name).as_deref() == Some(self.contract.as_str()))
    }

    /// The contract's connector the hub sends to.
    pub fn destination(&self) -> Result<&ConnectorConfig, String> {
        let played = self.sims.plays(&self.contract);
        self.ours()
            .find(|c| c.outbound.is_some() && played.is_none_or(|p| p == c.name))
            .ok_or_else(|| format!("no shipped connector of contract {} has [outbound]", self.contract))
    }

    /// The contract's connector that receives a from-partner example: of the
    /// kind its channel needs, taking its type.
    pub fn receiver(&self, ex: &Example) -> Result<&ConnectorConfig, String> {
        let ty = ex.message_type.as_deref().unwrap_or_default();
        let fits = |c: &&ConnectorConfig| match ex.channel {
            Channel::Http => matches!(c.kind, ConnectorKind::HttpJson | ConnectorKind::HttpXml) && c.inbound.is_some(),
            Channel::File => c.kind == ConnectorKind::File,
            Channel::Poll => c.kind == ConnectorKind::Poll,
            Channel::Mqtt => c.kind == ConnectorKind::Mqtt,
        };
        let takes = |c: &&ConnectorConfig| {
            c.inbound.as_ref().is_some_and(|i| i.mappings.contains_key(ty))
                || c.poll.as_ref().is_some_and(|p| p.message_type == ty)
                || c.mqtt
                    .as_ref()
                    .is_some_and(|m| m.topics.iter().any(|t| t.message_type.as_deref() == Some(ty)))
        };
        let candidates: Vec<&ConnectorConfig> = self.ours().filter(fits).collect();
        candidates.iter().find(|c| takes(c)).or(candidates.first()).copied().ok_or_else(|| {
            format!(
                "no shipped connector of contract {} receives over channel {}",
                self.contract,
                ex.channel.name()
            )
        })
    }

    /// The contract's connector that sends requests to `path` (its
    /// `[outbound] url` or `[poll] url` has that path).
    pub fn caller_of(&self, path: &str) -> Result<&ConnectorConfig, String> {
        let path_of = |url: &str| reqwest::Url::parse(url).ok().map(|u| u.path().to_string());
        self.ours()
            .find(|c| {
                let url = c
                    .outbound
                    .as_ref()
                    .map(|o| o.url.as_str())
                    .or(c.poll.as_ref().map(|p| p.url.as_str()));
                url.and_then(path_of).as_deref() == Some(path)
            })
            .ok_or_else(|| format!("no shipped connector of contract {} calls {path}", self.contract))
    }

    /// The connector that may send events with `source`.
    pub fn owner_of(&self, source: &str) -> Option<&ConnectorConfig> {
        self.app
            .connectors
            .iter()
            .find(|c| c.inbound.as_ref().is_some_and(|i| i.sources.iter().any(|s| s == source)))
    }

    /// POSTs `body` to `path` as connector `sender`; returns the status and answer.
    pub async fn post_as(&self, sender: &str, path: &str, content_type: &str, body: Vec<u8>) -> Result<(u16, Value), String> {
        let key = self
            .keys
            .get(sender)
            .ok_or_else(|| format!("connector {sender} has no `api_key_sha256 = [\"${{VAR}}\"]` the harness can give a key"))?;
        let r = self
            .app
            .client
            .post(format!("{}{path}", self.app.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// Makes the `[[setup]]` calls of `ex` on its contract's simulator.
    pub async fn setup(&self, ex: &Example) -> Result<(), String> {
        if ex.setup.is_empty() {
            return Ok(());
        }
        let base = self
            .sims
            .base(&ex.partner)
            .ok_or_else(|| format!("setup: no simulator plays {}", ex.partner))?;
        for s in &ex.setup {
            let body = s.body.clone().unwrap_or_else(|| Value::Object(Default::default()));
            let r = self
                .app
                .client
                .post(format!("{base}{}", s.post))
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("setup post {}: {e}", s.post))?;
            if !r.status().is_success() {
                let status = r.status();
                return Err(format!(
                    "setup post {} answered {status}: {}",
                    s.post,
                    r.text().await.unwrap_or_default()
                ));
            }
        }
        Ok(())
    }

    /// Waits until every delivery of `id` has ended (or waits for a retry),
    /// so the next example starts on quiet simulators.
    pub async fn settle(&self, id: &str) -> Result<Value, String> {
        let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
        loop {
            let trace = self.app.trace(id).await;
            let quiet = trace["deliveries"].as_array().into_iter().flatten().all(|d| {
                let attempted = d["attempts"].as_array().is_some_and(|a| !a.is_empty());
                matches!(d["status"].as_str(), Some("delivered" | "dead")) || (d["status"] == "retrying" && attempted)
            });
            if quiet {
                return Ok(trace);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "deliveries did not settle within {SETTLE_WITHIN:?}: {}",
                    trace["deliveries"]
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What connector `c`'s ack rules make of an answer to `sent` (the
    /// request body: a `letters` connector checks that the receipt names it).
    pub fn assess(&self, c: &ConnectorConfig, status: u16, body: &str, sent: &[u8]) -> Result<Result<Receipt, DeliveryError>, String> {
        if c.kind == ConnectorKind::Letters {
            let keys = self
                .sims
                .letter_keys(&c.name)
                .ok_or_else(|| format!("no simulator plays letters connector {}", c.name))?;
            let letter: Value = serde_json::from_slice(sent).map_err(|e| format!("the letter sent is not JSON: {e}"))?;
            let partner = PartnerKeys::new(vec![keys.partner().public().clone()]).map_err(|e| e.to_string())?;
            return Ok(wastehub::connectors::letters::assess(&c.name, status, None, body, &letter, &partner).0);
        }
        let out = c
            .outbound
            .as_ref()
            .ok_or_else(|| format!("connector {} has no [outbound]: nothing is sent to it", c.name))?;
        let connector = match c.kind {
            ConnectorKind::HttpXml => HttpJsonConnector::xml(&c.name, out, Path::new(".")),
            _ => HttpJsonConnector::new(&c.name, out, Path::new(".")),
        }
        .map_err(|e| e.to_string())?;
        Ok(connector.assess(status, None, body))
    }

    /// Ids of the messages from `source` of type `ty` (newest first).
    pub async fn messages(&self, source: &str, ty: &str) -> Vec<String> {
        let (status, page) = self
            .app
            .op_get(&format!("/api/v1/messages?source={source}&type={ty}&limit=500"))
            .await;
        assert_eq!(status, 200, "{page}");
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Ids of the messages of type `ty` from any source (newest first).
    pub async fn messages_of_type(&self, ty: &str) -> Vec<String> {
        let (status, page) = self.app.op_get(&format!("/api/v1/messages?type={ty}&limit=500")).await;
        assert_eq!(status, 200, "{page}");
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Stops the hub, then the simulators, and ends the broker sessions the
    /// stage opened.
    pub async fn stop(self) {
        let Stage { app, sims, broker, .. } = self;
        app.stop().await.expect("the hub stops cleanly");
        drop(sims);
        if let Some(b) = broker {
            for id in &b.client_ids {
                crate::mqtt::forget_session(&b.url, id).await;
            }
        }
    }
}

/// Points `poll` connector `name` at a new page server: the same path and
/// query as shipped, the harness's interval, a generated token for a
/// `${VAR}` token.
async fn poll_at_page_server(name: &str, table: &mut toml::Table, env: &mut BTreeMap<String, String>) -> PageServer {
    let Some(toml::Value::Table(p)) = table.get_mut("poll") else {
        panic!("connectors: {name} is of kind poll without [poll]");
    };
    let shipped_url = p.get("url").and_then(|u| u.as_str()).and_then(shipped_value).unwrap_or_default();
    let target = reqwest::Url::parse(shipped_url)
        .map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        })
        .unwrap_or_else(|_| "/".into());
    let token = match p.get("bearer_token").and_then(|t| t.as_str()) {
        Some(t) => match env_var(t) {
            Some(var) => {
                let token = format!("contract-test-{name}-token");
                env.insert(var, token.clone());
                Some(token)
            }
            None => Some(t.to_string()).filter(|t| !t.is_empty()),
        },
        None => None,
    };
    let items = p.get("items").and_then(|i| i.as_str()).unwrap_or("/items").to_string();
    let server = PageServer::start(&items, token).await;
    p.insert("url".into(), toml::Value::String(server.url(&target)));
    p.insert("interval".into(), toml::Value::String(poll::INTERVAL.into()));
    server
}

/// Gives `letters` connector `name` that no simulator plays its key files
/// (fresh, in the simulators' key folder, under the names its file gives)
/// and an address nothing listens on.
fn letters_without_simulator(name: &str, table: &toml::Table, sims: &Simulators, env: &mut BTreeMap<String, String>) {
    if sims.letter_keys(name).is_some() {
        return;
    }
    let file_of = |v: Option<&toml::Value>| {
        v.and_then(|v| v.as_str())
            .and_then(|p| p.rsplit('/').next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("connectors: {name}'s [letters] names no key file"))
    };
    let letters = table.get("letters");
    let own = file_of(letters.and_then(|l| l.get("signing_key")));
    let partner = file_of(letters.and_then(|l| l.get("public_keys")).and_then(|k| k.get(0)));
    let keys = LetterPair::generate(Algorithm::Sm2Sm3);
    std::fs::write(sims.letters_dir().join(own), pem_encode("PRIVATE KEY", keys.hub_der())).expect("write key");
    std::fs::write(sims.letters_dir().join(partner), keys.partner().public().to_pem()).expect("write public key");
    let url = table
        .get("outbound")
        .and_then(|o| o.get("url"))
        .and_then(|u| u.as_str())
        .and_then(env_var);
    if let Some(var) = url {
        // Port 9 (discard): closed here; nothing is routed to this partner.
        env.entry(var).or_insert_with(|| "http://127.0.0.1:9/letters".into());
    }
}

/// Enables `mqtt` connector `name` on the test broker, with a client id and
/// topic prefix of the stage's own.
fn mqtt_on_test_broker(name: &str, table: &mut toml::Table, broker: &mut Broker, tag: &str) {
    table.insert("enabled".into(), toml::Value::Boolean(true));
    let Some(toml::Value::Table(m)) = table.get_mut("mqtt") else {
        panic!("connectors: {name} is of kind mqtt without [mqtt]");
    };
    let client_id = format!("wh-test-contracts-{tag}-{name}");
    m.insert("url".into(), toml::Value::String(broker.url.clone()));
    m.insert("client_id".into(), toml::Value::String(client_id.clone()));
    broker.client_ids.push(client_id);
    if let Some(toml::Value::Array(topics)) = m.get_mut("topics") {
        for t in topics.iter_mut().filter_map(|t| t.as_table_mut()) {
            if let Some(f) = t.get("filter").and_then(|f| f.as_str()).map(str::to_string) {
                t.insert("filter".into(), toml::Value::String(format!("{}/{f}", broker.prefix)));
            }
        }
    }
}

/// The example parks (`connectors/parks/<id>.json`) are cell platforms
/// registered at run time, not connector files: each is registered from its
/// file and taken live (an audited override: these examples are what its
/// conformance would be judged on), so that its contract's examples post
/// with its key and reach the stored, routed message like any partner's.
/// Returns partner id → API key.
async fn register_parks(app: &TestApp) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("connectors/parks"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "json"));
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let (status, created) = app.op_post("/api/v1/partners", &body).await;
        assert_eq!(status, 201, "{}: {created}", file.display());
        let id = created["partner"]["id"].as_str().unwrap_or_default().to_string();
        let (status, live) = app
            .op_post(
                &format!("/api/v1/partners/{id}/go-live"),
                &serde_json::json!({"override_reason": "contract examples replayed"}),
            )
            .await;
        assert_eq!(status, 200, "{id} go-live: {live}");
        keys.insert(id, created["api_key"].as_str().unwrap_or_default().to_string());
    }
    keys
}

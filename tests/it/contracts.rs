//! Contract tests: every example exchange in `contracts/*/examples/` is
//! replayed against the hub running with the shipped connector files and
//! mappings, its partners played by their simulators (`wastehub::sim`), and
//! checked both ways (format and procedure: `docs/contracts.md`).
//!
//! - to-partner: the canonical event is posted as the partner that owns its
//!   source; the body the simulator received must be the example's wire, its
//!   answer the example's answer, and the hub's outcome and receipt what the
//!   shipped connector's ack rules make of that answer;
//! - answer-only: the wire goes to the simulator directly (with valid
//!   credentials); its answer must be the example's, and the connector's ack
//!   rules must make the example's outcome of it;
//! - from-partner: the wire arrives as the partner sends it (HTTP with its
//!   key, or a file in its drop folder) and the stored events must be the
//!   example's canonical events.
//!
//! Each contract gets its own hub (a fresh database), so examples of one
//! contract never see another's messages; simulators forget what they
//! accepted before each example, so receipt numbers start afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wastehub::config::{ConnectorConfig, ConnectorKind};
use wastehub::connectors::http_json::HttpJsonConnector;
use wastehub::connectors::{DeliveryError, Receipt, Retry};
use wastehub::ingest::auth::generate_key;
use wastehub::sim::Exchange;
use wastehub::sim::national::{NationalConfig, NationalSim};
use wastehub::sim::provincial::{ProvincialConfig, ProvincialSim};

use crate::support::exchange::{self, Channel, Direction, Example, Outcome};
use crate::support::normalise::{self, Format};
use crate::support::{HubSpec, TestApp, eventually, repo};

/// The bearer token the provincial simulator expects in these tests.
const PROVINCIAL_TOKEN: &str = "contract-test-provincial-token";
/// How long one exchange may take to settle (a drop folder waits for its
/// file to settle, then polls: seconds).
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// The receiving partners the harness plays, by connector name.
struct Simulators {
    national: NationalSim,
    provincial: ProvincialSim,
    stop: CancellationToken,
}

impl Simulators {
    async fn start() -> Self {
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
        Self {
            national,
            provincial,
            stop,
        }
    }

    /// The variables that point the shipped connector files at the
    /// simulators. The retry schedules are long after the first attempt, so
    /// that a retried delivery is seen retrying, not already dead.
    fn env(&self) -> BTreeMap<String, String> {
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
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn reset(&self) {
        self.national.reset();
        self.provincial.reset();
    }

    fn exchanges(&self, partner: &str) -> Option<Vec<Exchange>> {
        match partner {
            "national" => Some(self.national.exchanges()),
            "provincial" => Some(self.provincial.exchanges()),
            _ => None,
        }
    }

    /// Sends `body` to the partner's endpoint with valid credentials, as
    /// the hub would; returns the status and answer.
    async fn send(&self, partner: &str, body: Vec<u8>, content_type: &str) -> Result<(u16, String), String> {
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
            other => return Err(format!("no simulator plays {other}")),
        };
        let r = request
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.map_err(|e| e.to_string())?))
    }
}

impl Drop for Simulators {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The hub with every shipped connector file (pointed at the simulators)
/// and the shipped mappings, plus a key for each partner that sends.
struct Stage {
    app: TestApp,
    sims: Simulators,
    /// Connector name → its API key.
    keys: BTreeMap<String, String>,
}

/// The shipped connector files as the harness runs them: unchanged but for
/// their maintenance windows, which are schedule, not contract, and would
/// make the examples fail at those hours. Returns (file stem, text) and the
/// `${VAR}` that holds each connector's key digest.
fn shipped_connectors() -> (Vec<(String, String)>, BTreeMap<String, String>) {
    let mut files = Vec::new();
    let mut key_vars = BTreeMap::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("connectors"))
        .expect("connectors/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("connector file");
        let mut table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(toml::Value::Table(out)) = table.get_mut("outbound") {
            out.remove("maintenance");
        }
        let name = table.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let digests = table
            .get("inbound")
            .and_then(|i| i.get("api_key_sha256"))
            .and_then(|d| d.as_array())
            .cloned()
            .unwrap_or_default();
        if let Some(var) = digests.iter().filter_map(|d| d.as_str()).find_map(env_var) {
            key_vars.insert(name, var);
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        files.push((stem, toml::to_string(&table).expect("serialise")));
    }
    (files, key_vars)
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
        let body: Value = read_json(&file).unwrap_or_else(|e| panic!("{e}"));
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

/// `VAR` of a `${VAR}` or `${VAR:-default}` reference.
fn env_var(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix("${")?.strip_suffix('}')?;
    Some(inner.split(":-").next().unwrap_or(inner).to_string())
}

impl Stage {
    async fn start() -> Self {
        let sims = Simulators::start().await;
        let (files, key_vars) = shipped_connectors();
        let mut spec = HubSpec::new()
            .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
            // The shipped national connector waits up to 15 s per attempt.
            .config("[delivery]\nlease = \"2m\"");
        spec.connectors.extend(files);
        spec.env = sims.env();
        let mut keys = BTreeMap::new();
        for (connector, var) in key_vars {
            let (key, digest) = generate_key();
            spec.env.insert(var, digest);
            keys.insert(connector, key);
        }
        let app = TestApp::spawn(spec).await;
        keys.extend(register_parks(&app).await);
        Self { app, sims, keys }
    }

    fn connector(&self, name: &str) -> Option<&ConnectorConfig> {
        self.app.connectors.iter().find(|c| c.name == name)
    }

    /// The connector that may send events with `source`.
    fn owner_of(&self, source: &str) -> Option<&ConnectorConfig> {
        self.app
            .connectors
            .iter()
            .find(|c| c.inbound.as_ref().is_some_and(|i| i.sources.iter().any(|s| s == source)))
    }

    /// POSTs `body` to `path` as connector `sender`; returns the status and answer.
    async fn post_as(&self, sender: &str, path: &str, content_type: &str, body: Vec<u8>) -> Result<(u16, Value), String> {
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

    /// Waits until every delivery of `id` has ended (or waits for a retry),
    /// so the next example starts on quiet simulators.
    async fn settle(&self, id: &str) -> Result<Value, String> {
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

    /// What connector `name`'s ack rules make of an answer.
    fn assess(&self, name: &str, status: u16, body: &str) -> Result<Result<Receipt, DeliveryError>, String> {
        let c = self.connector(name).ok_or_else(|| format!("no shipped connector {name}"))?;
        let out = c
            .outbound
            .as_ref()
            .ok_or_else(|| format!("connector {name} has no [outbound]: nothing is sent to it"))?;
        let connector = match c.kind {
            ConnectorKind::HttpXml => HttpJsonConnector::xml(name, out, Path::new(".")),
            _ => HttpJsonConnector::new(name, out, Path::new(".")),
        }
        .map_err(|e| e.to_string())?;
        Ok(connector.assess(status, None, body))
    }

    async fn stop(self) {
        let Stage { app, sims, .. } = self;
        app.stop().await.expect("the hub stops cleanly");
        drop(sims);
    }
}

fn outcome_of(r: &Result<Receipt, DeliveryError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Delivered,
        Err(e) if e.retry == Retry::Never => Outcome::Dead,
        Err(_) => Outcome::Retried,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_json(path: &Path) -> Result<Value, String> {
    serde_json::from_slice(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn format_of(path: &Path) -> Result<Format, String> {
    Format::of(path).ok_or_else(|| format!("{}: compare .json or .xml files", path.display()))
}

fn content_type_of(path: &Path) -> &'static str {
    match Format::of(path) {
        Some(Format::Xml) => "application/xml; charset=utf-8",
        Some(Format::Json) => "application/json",
        None => "application/octet-stream",
    }
}

/// Replays one example; `Err` says everything that did not match.
async fn replay(stage: &Stage, ex: &Example) -> Result<(), String> {
    match (ex.direction, ex.is_answer_only()) {
        (Direction::ToPartner, true) => answer_only(stage, ex).await,
        (Direction::ToPartner, false) => to_partner(stage, ex).await,
        (Direction::FromPartner, _) => match ex.channel {
            Channel::Http => from_partner_http(stage, ex).await,
            Channel::File => from_partner_file(stage, ex).await,
            Channel::Poll => from_partner_poll(stage, ex).await,
            Channel::Mqtt => from_partner_mqtt(stage, ex).await,
        },
    }
}

/// Checks `answer`, `outcome` and (delivered) the receipt of one exchange.
fn check_answer(
    stage: &Stage,
    ex: &Example,
    status: u16,
    answer: &str,
    problems: &mut Vec<String>,
) -> Option<Result<Receipt, DeliveryError>> {
    if let Some(expected) = &ex.answer {
        match read(expected).and_then(|e| Ok((e, format_of(expected)?))) {
            Ok((e, format)) => {
                if let Err(d) = normalise::compare(format, &e, answer.as_bytes(), &[]) {
                    problems.push(format!("the answer differs from {}:\n      {d}", file_name(expected)));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    match stage.assess(&ex.partner, status, answer) {
        Ok(judged) => {
            let got = outcome_of(&judged);
            if Some(got) != ex.outcome {
                problems.push(format!(
                    "the connector's ack rules make {got:?} of the answer (HTTP {status}), the example says {:?}",
                    ex.outcome
                ));
            }
            Some(judged)
        }
        Err(e) => {
            problems.push(e);
            None
        }
    }
}

async fn answer_only(stage: &Stage, ex: &Example) -> Result<(), String> {
    let (status, answer) = stage.sims.send(&ex.partner, read(&ex.wire)?, content_type_of(&ex.wire)).await?;
    let mut problems = Vec::new();
    check_answer(stage, ex, status, &answer, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

async fn to_partner(stage: &Stage, ex: &Example) -> Result<(), String> {
    let canonical_path = ex.canonical.as_ref().ok_or("no canonical event")?;
    let event = read_json(canonical_path)?;
    let source = event["source"].as_str().unwrap_or_default();
    let sender = stage
        .owner_of(source)
        .ok_or_else(|| format!("no shipped connector sends as source {source:?}"))?;
    if sender.name == ex.partner {
        return Err(format!(
            "the event's source {source:?} is the partner's own: the hub never sends a partner its own messages"
        ));
    }
    let (status, body) = stage
        .post_as(
            &sender.name,
            "/api/v1/messages",
            "application/cloudevents+json",
            event.to_string().into_bytes(),
        )
        .await?;
    if status != 202 {
        return Err(format!("the hub answered {status} to the canonical event (202 expected): {body}"));
    }
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let trace = stage.settle(&id).await?;
    let Some(delivery) = trace["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["destination"] == ex.partner.as_str())
    else {
        return Err(format!(
            "the hub did not route the event to {} (deliveries: {})",
            ex.partner, trace["deliveries"]
        ));
    };
    let exchanges = stage
        .sims
        .exchanges(&ex.partner)
        .ok_or_else(|| format!("no simulator plays {}", ex.partner))?;
    let Some(got) = exchanges.iter().find(|x| x.ce_id == id) else {
        return Err(format!(
            "{}'s simulator received nothing for message {id}; last error: {}",
            ex.partner, delivery["last_error"]
        ));
    };
    let mut problems = Vec::new();
    match read(&ex.wire).and_then(|w| Ok((w, format_of(&ex.wire)?))) {
        Ok((wire, format)) => {
            if let Err(d) = normalise::compare(format, &wire, got.body.as_bytes(), &ex.ignore) {
                problems.push(format!(
                    "the body the partner received differs from {}:\n      {d}",
                    file_name(&ex.wire)
                ));
            }
        }
        Err(e) => problems.push(e),
    }
    let judged = check_answer(stage, ex, got.status, &got.answer, &mut problems);
    let recorded = match delivery["status"].as_str() {
        Some("delivered") => Some(Outcome::Delivered),
        Some("dead") => Some(Outcome::Dead),
        Some("retrying") => Some(Outcome::Retried),
        _ => None,
    };
    if recorded != ex.outcome {
        problems.push(format!(
            "the hub recorded {} (last error {}), the example says {:?}",
            delivery["status"], delivery["last_error"], ex.outcome
        ));
    }
    if let (Some(Ok(receipt)), Some(Outcome::Delivered)) = (judged, recorded) {
        let r = &delivery["receipt"];
        let same = r["http_status"] == receipt.http_status
            && r["ack_code"].as_str() == receipt.ack_code.as_deref()
            && r["reference"].as_str() == receipt.reference.as_deref();
        if !same {
            problems.push(format!(
                "the stored receipt {r} is not the answer's (status {}, ack code {:?}, reference {:?})",
                receipt.http_status, receipt.ack_code, receipt.reference
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

async fn from_partner_http(stage: &Stage, ex: &Example) -> Result<(), String> {
    let wire = read(&ex.wire)?;
    let ty = ex.message_type.as_deref().unwrap_or_default();
    let is_cloudevent =
        Format::of(&ex.wire) == Some(Format::Json) && serde_json::from_slice::<Value>(&wire).is_ok_and(|v| v.get("specversion").is_some());
    let (path, content_type) = if is_cloudevent {
        ("/api/v1/messages".to_string(), "application/cloudevents+json")
    } else {
        (format!("/api/v1/documents/{ty}"), content_type_of(&ex.wire))
    };
    let (status, body) = stage.post_as(&ex.partner, &path, content_type, wire).await?;
    if status != 202 {
        return Err(format!("the hub answered {status} to POST {path} (202 expected): {body}"));
    }
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let trace = stage.settle(&id).await?;
    let expected = read_json(ex.canonical.as_ref().ok_or("no canonical event")?)?;
    normalise::compare_json(expected, trace["event"].clone(), &ex.ignore)
        .map_err(|d| format!("the stored event differs from {}:\n      {d}", canonical_name(ex)))
}

async fn from_partner_file(stage: &Stage, ex: &Example) -> Result<(), String> {
    let c = stage
        .connector(&ex.partner)
        .ok_or_else(|| format!("no shipped connector {}", ex.partner))?;
    let drop = c
        .file_drop
        .as_ref()
        .ok_or_else(|| format!("connector {} has no [file] drop folder", ex.partner))?;
    let source = c.inbound.as_ref().and_then(|i| i.sources.first()).cloned().unwrap_or_default();
    let ty = ex.message_type.clone().unwrap_or_default();
    let before: BTreeSet<String> = stage_messages(stage, &source, &ty).await.into_iter().collect();
    let name = file_name(&ex.wire);
    let dir = &drop.resolved_dir;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // Written aside and renamed, as a department's export job should.
    let part = dir.join(format!(".{name}.part"));
    std::fs::write(&part, read(&ex.wire)?).map_err(|e| e.to_string())?;
    std::fs::rename(&part, dir.join(&name)).map_err(|e| e.to_string())?;
    let (done, failed) = (dir.join("done").join(&name), dir.join("failed").join(&name));
    if !eventually(SETTLE_WITHIN, || async { done.exists() || failed.exists() }).await {
        return Err(format!("{name} was neither done nor failed within {SETTLE_WITHIN:?}"));
    }
    if failed.exists() {
        let reason = std::fs::read_to_string(dir.join("failed").join(format!("{name}.reason.txt"))).unwrap_or_default();
        return Err(format!("{name} went to failed/:\n{reason}"));
    }
    // Newest first from the API: oldest first is file order.
    let mut new: Vec<String> = stage_messages(stage, &source, &ty)
        .await
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    new.reverse();
    let mut events = Vec::new();
    for id in &new {
        events.push(stage.settle(id).await?["event"].clone());
    }
    let expected = read_json(ex.canonical.as_ref().ok_or("no canonical event")?)?;
    let got = match (&expected, events.len()) {
        (Value::Object(_), 1) => events.remove(0),
        _ => Value::Array(events),
    };
    normalise::compare_json(expected, got, &ex.ignore)
        .map_err(|d| format!("the stored events differ from {}:\n      {d}", canonical_name(ex)))
}

/// Ids of the messages from `source` of type `ty` (newest first).
async fn stage_messages(stage: &Stage, source: &str, ty: &str) -> Vec<String> {
    let (status, page) = stage
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

async fn from_partner_poll(_stage: &Stage, ex: &Example) -> Result<(), String> {
    Err(unsupported(ex))
}

async fn from_partner_mqtt(_stage: &Stage, ex: &Example) -> Result<(), String> {
    Err(unsupported(ex))
}

fn unsupported(ex: &Example) -> String {
    format!("channel {} not supported by the harness yet", ex.channel.name())
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn canonical_name(ex: &Example) -> String {
    ex.canonical.as_deref().map(file_name).unwrap_or_default()
}

#[tokio::test]
async fn every_contract_example_replays_against_the_hub_and_the_simulators() {
    let examples = exchange::discover(&repo().join("contracts"))
        .unwrap_or_else(|errors| panic!("contract examples do not read:\n  {}", errors.join("\n  ")));
    assert!(examples.len() >= 10, "only {} examples found", examples.len());
    let mut by_partner: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    for e in examples {
        by_partner.entry(e.partner.clone()).or_default().push(e);
    }
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for group in by_partner.values() {
        let stage = Stage::start().await;
        for ex in group {
            stage.sims.reset();
            match replay(&stage, ex).await {
                Ok(()) => lines.push(format!("ok    {}", ex.id())),
                Err(why) => {
                    lines.push(format!("FAIL  {}", ex.id()));
                    failures.push(format!("{}  ({})\n    {why}", ex.id(), ex.description));
                }
            }
        }
        stage.stop().await;
    }
    println!("contract examples:\n  {}", lines.join("\n  "));
    assert!(
        failures.is_empty(),
        "{} of {} example exchanges failed:\n\n{}\n\nall:\n  {}",
        failures.len(),
        lines.len(),
        failures.join("\n\n"),
        lines.join("\n  ")
    );
}

/// Every shipped partner (every file in `connectors/`) has a contract: a
/// folder `contracts/<connector name>/` with a README and at least one
/// example exchange.
#[test]
fn every_shipped_partner_has_a_contract_with_examples() {
    let (files, _) = shipped_connectors();
    assert!(!files.is_empty());
    let mut missing = Vec::new();
    for (stem, text) in files {
        let table: toml::Table = text.parse().expect("connector");
        let name = table.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let folder = repo().join("contracts").join(&name);
        if !folder.join("README.md").is_file() {
            missing.push(format!("connectors/{stem}.toml: contracts/{name}/README.md is missing"));
        }
        let examples = exchange::sorted_dirs(&folder.join("examples"))
            .into_iter()
            .filter(|d| d.join("exchange.toml").is_file())
            .count();
        if examples == 0 {
            missing.push(format!(
                "connectors/{stem}.toml: contracts/{name}/examples/ has no example exchange"
            ));
        }
    }
    assert!(missing.is_empty(), "partners without a contract:\n  {}", missing.join("\n  "));
}

#[test]
fn a_malformed_exchange_file_is_named_in_the_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let example = tmp.path().join("acme/examples/01-broken");
    std::fs::create_dir_all(&example).expect("mkdir");
    let file = example.join("exchange.toml");
    let write = |text: &str| std::fs::write(&file, text).expect("write");
    let errors = || exchange::discover(tmp.path()).expect_err("refused").join("\n");

    write("description = \"x\"\ndirection = \"sideways\"\nwire = \"w.json\"\n");
    let e = errors();
    assert!(e.contains("01-broken/exchange.toml:2:") && e.contains("sideways"), "{e}");

    write("description = \"x\"\ndirection = \"to-partner\"\nwire = \"w.json\"\ncanonical = \"../../secret.json\"\n");
    let e = errors();
    assert!(e.contains("01-broken/exchange.toml: canonical"), "{e}");
    assert!(e.contains("wire = \"w.json\": there is no such file"), "{e}");
    assert!(e.contains("needs outcome"), "{e}");

    std::fs::write(example.join("w.json"), "{}").expect("write");
    write("description = \"x\"\ndirection = \"from-partner\"\nwire = \"w.json\"\nchannel = \"pigeon\"\n");
    assert!(errors().contains("pigeon"), "{}", errors());

    write("description = \"x\"\ndirection = \"from-partner\"\ntype = \"ledger-entry\"\nwire = \"w.json\"\n");
    assert!(errors().contains("needs canonical"), "{}", errors());

    std::fs::create_dir_all(tmp.path().join("acme/examples/02-empty")).expect("mkdir");
    assert!(
        errors().contains("02-empty: an example folder without exchange.toml"),
        "{}",
        errors()
    );
}

#[tokio::test]
async fn the_channels_the_harness_cannot_replay_yet_fail_clearly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("acme/examples/01-poll");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("page.json"), "{\"items\": []}").expect("write");
    std::fs::write(dir.join("event.json"), "{}").expect("write");
    std::fs::write(
        dir.join("exchange.toml"),
        "description = \"a page\"\ndirection = \"from-partner\"\ntype = \"transporter-record\"\nchannel = \"poll\"\nwire = \"page.json\"\ncanonical = \"event.json\"\n",
    )
    .expect("write");
    let ex = exchange::discover(tmp.path()).expect("reads").remove(0);
    assert_eq!(unsupported(&ex), "channel poll not supported by the harness yet");
    let stage = Stage::start().await;
    assert_eq!(
        replay(&stage, &ex).await,
        Err("channel poll not supported by the harness yet".to_string())
    );
    stage.stop().await;
}

/// The simulators of partners that send produce what their contracts allow:
/// the park's records are accepted, the registry extracts are taken whole.
#[tokio::test]
async fn the_sending_partners_simulators_produce_documents_the_hub_accepts() {
    let stage = Stage::start().await;
    let key = stage.keys.get("park-xiamen-haicang").expect("the park's key").clone();
    let sent = wastehub::sim::park::run(
        wastehub::sim::park::ParkConfig {
            hub: stage.app.base.clone(),
            key,
            interval: Duration::from_millis(10),
            count: Some(3),
        },
        CancellationToken::new(),
        |_| {},
    )
    .await
    .expect("park simulator");
    assert_eq!(sent.len(), 3);
    for s in &sent {
        assert_eq!(s.status, 202, "{} answered {}: {}", s.batch, s.status, s.answer);
    }

    let drop = stage
        .connector("market-regulation")
        .and_then(|c| c.file_drop.as_ref())
        .map(|f| f.resolved_dir.clone())
        .expect("the registry's drop folder");
    let written = wastehub::sim::market_regulation::run(
        wastehub::sim::market_regulation::DropConfig {
            dir: drop.clone(),
            interval: Duration::from_millis(10),
            rows: 6,
            count: Some(1),
        },
        CancellationToken::new(),
        |_| {},
    )
    .await
    .expect("registry simulator");
    let name = file_name(&written[0]);
    let done = drop.join("done").join(&name);
    let failed = drop.join("failed").join(&name);
    assert!(
        eventually(SETTLE_WITHIN, || async { done.exists() || failed.exists() }).await,
        "{name} not taken"
    );
    let reason = std::fs::read_to_string(drop.join("failed").join(format!("{name}.reason.txt"))).unwrap_or_default();
    assert!(done.exists(), "{name} failed:\n{reason}");
    assert_eq!(
        stage_messages(&stage, "urn:fj:samr:registry", "enterprise-registration")
            .await
            .len(),
        6
    );
    stage.stop().await;
}

/// The park's records, as its examples, its simulator and the mapping's
/// valid cases send them, are what its contract schema describes; a record
/// the mapping refuses for an unknown unit is not.
#[test]
fn the_park_records_match_the_park_contract_schema() {
    let dir = repo().join("contracts/park-xiamen-haicang");
    let schema: Value = read_json(&dir.join("ledger-record.schema.json")).expect("schema");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .expect("the schema compiles");
    let ns = [("hc".to_string(), wastehub::sim::park::NAMESPACE.to_string())];
    let prefixes = wastehub::mapping::xml_in::Prefixes::new(ns.iter().map(|(p, u)| (p, u)));
    let check = |what: &str, bytes: &[u8]| -> Vec<String> {
        let (root, tree) = wastehub::mapping::xml_in::read(bytes, &prefixes).unwrap_or_else(|e| panic!("{what}: {}", e.message));
        assert_eq!(root, "hc:TZJL", "{what}");
        validator
            .iter_errors(&tree)
            .map(|e| format!("{what}: {}: {e}", e.instance_path()))
            .collect()
    };
    let mut records: Vec<(String, Vec<u8>)> = exchange::sorted_dirs(&dir.join("examples"))
        .into_iter()
        .map(|d| d.join("record.xml"))
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("record")))
        .collect();
    let cases = repo().join("mappings/park-xiamen-haicang/cases/ledger-entry-in");
    for case in ["generation-gbk", "storage-in-utf8"] {
        let p = cases.join(case).join("input.xml");
        records.push((p.display().to_string(), std::fs::read(&p).expect("case")));
    }
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T21:37:00+08:00").expect("time");
    for n in 1..=2 {
        let xml = wastehub::sim::park::record(n, at);
        records.push((format!("simulator record {n}"), wastehub::sim::park::gbk(&xml)));
    }
    assert!(records.len() >= 6, "{}", records.len());
    let errors: Vec<String> = records.iter().flat_map(|(what, bytes)| check(what, bytes)).collect();
    assert!(errors.is_empty(), "records the contract schema refuses:\n  {}", errors.join("\n  "));
    let unknown = std::fs::read(cases.join("unknown-unit/input.xml")).expect("case");
    let refused = check("unknown-unit", &unknown);
    assert!(refused.iter().any(|e| e.contains("/hc:SL/@dw")), "{refused:?}");
}

//! Contract tests: every example exchange in `contracts/*/examples/` is
//! replayed against the hub running with the shipped connector files and
//! mappings, its partners played by their simulators (`wastehub::sim`), and
//! checked both ways (format and procedure: `docs/contracts.md`).
//!
//! - to-partner: the canonical event is posted as the partner that owns its
//!   source; the body the simulator received must be the example's wire, its
//!   answer the example's answer, and the hub's outcome and receipt what the
//!   shipped connector's ack rules make of that answer;
//! - answer-only: the wire goes to the simulator directly (a bare body with
//!   valid credentials, or a raw HTTP request as written); its answer must
//!   be the example's, and the connector's rules must make the example's
//!   outcome of it;
//! - from-partner: the wire arrives as the partner sends it (HTTP with its
//!   key, a signed letter, a file in its drop folder, a page the hub polls,
//!   an MQTT payload) and the stored events must be the example's canonical
//!   events.
//!
//! Letters between provincial hubs are signed at replay with keys made for
//! the run ([`letters`]), and an example may post earlier workflow steps
//! first (`before`).
//!
//! Each contract gets its own hub (a fresh database, [`stage`]), so examples
//! of one contract never see another's messages; simulators forget what
//! they accepted before each example, so receipt numbers start afresh, and
//! an example's `[[setup]]` calls are made after that.

mod letters;
mod mqtt;
mod poll;
mod raw_http;
mod simulators;
mod stage;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wastehub::config::{ConnectorConfig, ConnectorKind};
use wastehub::connectors::{DeliveryError, Receipt, Retry};

use self::stage::{SETTLE_WITHIN, Stage, contract_of, shipped_connectors};
use crate::support::exchange::{self, Channel, Direction, Example, Outcome, is_raw_http};
use crate::support::normalise::{self, Format};
use crate::support::{eventually, repo};

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
    read_json_bytes(path, read(path)?)
}

/// `bytes` (of file `path`) as JSON.
fn read_json_bytes(path: &Path, bytes: Vec<u8>) -> Result<Value, String> {
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
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

/// The media type connector `c` sends its bodies with.
fn sent_as(c: &ConnectorConfig) -> &'static str {
    match c.kind {
        ConnectorKind::HttpXml => "application/xml; charset=utf-8",
        ConnectorKind::Letters => "application/cloudevents+json",
        _ => "application/json",
    }
}

/// The source a receiving connector's messages carry (its first).
fn source_of(c: &ConnectorConfig) -> String {
    c.inbound.as_ref().and_then(|i| i.sources.first()).cloned().unwrap_or_default()
}

/// The events of the messages from `source` of type `ty` not in `before`,
/// oldest first: one object when `expected` is one, else an array.
async fn new_events(stage: &Stage, source: &str, ty: &str, before: &[String], expected: &Value) -> Result<Value, String> {
    // Newest first from the API: oldest first is arrival order.
    let mut new: Vec<String> = stage
        .messages(source, ty)
        .await
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    new.reverse();
    let mut events = Vec::new();
    for id in &new {
        events.push(stage.settle(id).await?["event"].clone());
    }
    Ok(match (expected, events.len()) {
        (Value::Object(_), 1) => events.remove(0),
        _ => Value::Array(events),
    })
}

/// How one example went, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
enum Replayed {
    /// Replayed and matched.
    Matched,
    /// Not replayed: what it needs is not configured (said loudly).
    Skipped(String),
}

/// Replays one example; `Err` says everything that did not match.
async fn replay(stage: &Stage, ex: &Example) -> Result<Replayed, String> {
    stage.setup(ex).await?;
    let done = match (ex.direction, ex.is_answer_only()) {
        (Direction::ToPartner, true) => answer_only(stage, ex).await,
        (Direction::ToPartner, false) => to_partner(stage, ex).await,
        (Direction::FromPartner, _) => match ex.channel {
            Channel::Http => from_partner_http(stage, ex).await,
            Channel::File => from_partner_file(stage, ex).await,
            Channel::Poll => poll::replay(stage, ex).await,
            Channel::Mqtt => {
                return match mqtt::replay(stage, ex).await? {
                    true => Ok(Replayed::Matched),
                    false => Ok(Replayed::Skipped(
                        "set WASTEHUB_TEST_MQTT=mqtt://127.0.0.1:1883 to replay it (.ci/run does)".into(),
                    )),
                };
            }
        },
    };
    done.map(|()| Replayed::Matched)
}

/// Checks the outcome the rules of connector `c` make of an answer, and
/// (for an outbound connector) returns what its ack rules read in it.
fn check_outcome(
    stage: &Stage,
    ex: &Example,
    c: &ConnectorConfig,
    status: u16,
    answer: &str,
    sent: &[u8],
    problems: &mut Vec<String>,
) -> Option<Result<Receipt, DeliveryError>> {
    let (got, judged) = if c.kind == ConnectorKind::Poll {
        match poll::judge(c, status, answer) {
            Ok(o) => (o, None),
            Err(e) => {
                problems.push(e);
                return None;
            }
        }
    } else {
        match stage.assess(c, status, answer, sent) {
            Ok(j) => (outcome_of(&j), Some(j)),
            Err(e) => {
                problems.push(e);
                return None;
            }
        }
    };
    if Some(got) != ex.outcome {
        problems.push(format!(
            "connector {}'s rules make {got:?} of the answer (HTTP {status}), the example says {:?}",
            c.name, ex.outcome
        ));
    }
    judged
}

/// Checks a bare-body `answer` against the example's (its `answer_ignore`
/// paths present, not compared).
fn check_answer_body(stage: &Stage, ex: &Example, answer: &str, problems: &mut Vec<String>) {
    if let Some(expected) = &ex.answer {
        if is_raw_http(expected) {
            problems.push(format!(
                "{}: a raw HTTP answer needs a raw HTTP request as its wire",
                file_name(expected)
            ));
            return;
        }
        match read(expected).and_then(|e| Ok((letters::expected(stage, ex, e), format_of(expected)?))) {
            Ok((e, format)) => {
                if let Err(d) = normalise::compare(format, &e, answer.as_bytes(), &ex.answer_ignore) {
                    problems.push(format!("the answer differs from {}:\n      {d}", file_name(expected)));
                }
            }
            Err(e) => problems.push(e),
        }
    }
}

fn verdict(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

async fn answer_only(stage: &Stage, ex: &Example) -> Result<(), String> {
    let mut problems = Vec::new();
    if is_raw_http(&ex.wire) {
        let request = raw_http::Message::read(&ex.wire)?;
        let (_, target) = request.request_line()?;
        let path = target.split('?').next().unwrap_or(target).to_string();
        let base = stage
            .sims
            .base(&ex.partner)
            .ok_or_else(|| format!("no simulator plays {}", ex.partner))?;
        let got = request.send(&base).await?;
        let answer_path = ex.answer.as_ref().ok_or("no answer")?;
        if is_raw_http(answer_path) {
            let expected = raw_http::Message::read(answer_path)?;
            problems.extend(
                expected
                    .differences(&got)
                    .into_iter()
                    .map(|d| format!("the answer differs from {}: {d}", file_name(answer_path))),
            );
        } else {
            check_answer_body(stage, ex, &got.body, &mut problems);
        }
        let caller = stage.caller_of(&path)?;
        check_outcome(stage, ex, caller, got.status, &got.body, &request.body, &mut problems);
    } else {
        let dest = stage.destination()?;
        let wire = letters::prepare(stage, ex, read(&ex.wire)?, letters::Signer::Hub)?;
        let got = stage.sims.send(&ex.partner, wire.clone(), sent_as(dest)).await?;
        check_answer_body(stage, ex, &got.body, &mut problems);
        check_outcome(stage, ex, dest, got.status, &got.body, &wire, &mut problems);
    }
    verdict(problems)
}

/// Posts canonical event `path` as the connector that owns its source and
/// waits for its deliveries to settle; returns its message id.
async fn post_event(stage: &Stage, path: &Path, not_to: &str) -> Result<String, String> {
    let event = read_json(path)?;
    let source = event["source"].as_str().unwrap_or_default();
    let sender = stage
        .owner_of(source)
        .ok_or_else(|| format!("{}: no shipped connector sends as source {source:?}", file_name(path)))?;
    if sender.name == not_to {
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
        return Err(format!("the hub answered {status} to {} (202 expected): {body}", file_name(path)));
    }
    let id = body["id"].as_str().unwrap_or_default().to_string();
    stage.settle(&id).await?;
    Ok(id)
}

async fn to_partner(stage: &Stage, ex: &Example) -> Result<(), String> {
    let canonical_path = ex.canonical.as_ref().ok_or("no canonical event")?;
    let dest = stage.destination()?;
    for earlier in &ex.before {
        post_event(stage, earlier, &dest.name).await?;
    }
    let ty = ex.message_type.clone().unwrap_or_default();
    let known = stage.messages_of_type(&ty).await;
    let posted = post_event(stage, canonical_path, &dest.name).await?;
    let mut id = posted.clone();
    let mut trace = stage.settle(&id).await?;
    let to_dest = |t: &Value| {
        t["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["destination"] == dest.name.as_str())
    };
    if !to_dest(&trace) {
        // Taken by a workflow (a negotiation letter goes to xp-workflow
        // only): what reaches the partner is the message the workflow made
        // of it, a new message of the same type.
        let made: Vec<String> = stage
            .messages_of_type(&ty)
            .await
            .into_iter()
            .filter(|m| *m != posted && !known.contains(m))
            .collect();
        if let [one] = made.as_slice() {
            id = one.clone();
            trace = stage.settle(&id).await?;
        }
    }
    let Some(delivery) = trace["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["destination"] == dest.name.as_str())
    else {
        return Err(format!(
            "the hub did not route the event to {} (deliveries: {})",
            dest.name, trace["deliveries"]
        ));
    };
    let exchanges = stage
        .sims
        .exchanges(&ex.partner)
        .ok_or_else(|| format!("no simulator records what {} receives", ex.partner))?;
    let Some(got) = exchanges.iter().find(|x| x.ce_id == id) else {
        return Err(format!(
            "{}'s simulator received nothing for message {id}; last error: {}",
            ex.partner, delivery["last_error"]
        ));
    };
    let mut problems = Vec::new();
    match read(&ex.wire).and_then(|w| Ok((letters::expected(stage, ex, w), format_of(&ex.wire)?))) {
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
    if dest.kind == ConnectorKind::Letters
        && let Err(e) = letters::check_signed_by_hub(stage, ex, &got.body)
    {
        problems.push(e);
    }
    check_answer_body(stage, ex, &got.answer, &mut problems);
    let judged = check_outcome(stage, ex, dest, got.status, &got.answer, got.body.as_bytes(), &mut problems);
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
    verdict(problems)
}

async fn from_partner_http(stage: &Stage, ex: &Example) -> Result<(), String> {
    for earlier in &ex.before {
        post_event(stage, earlier, "").await?;
    }
    if letters::is_letter(&read(&ex.wire)?) {
        return letters::from_partner(stage, ex).await;
    }
    // A registered park has no connector file: it posts with the key it was
    // registered with (see `stage::register_parks`).
    let sender = match stage.receiver(ex) {
        Ok(c) => c.name.clone(),
        Err(_) if stage.keys.contains_key(&stage.contract) => stage.contract.clone(),
        Err(e) => return Err(e),
    };
    let wire = read(&ex.wire)?;
    let ty = ex.message_type.as_deref().unwrap_or_default();
    let is_cloudevent =
        Format::of(&ex.wire) == Some(Format::Json) && serde_json::from_slice::<Value>(&wire).is_ok_and(|v| v.get("specversion").is_some());
    let (path, content_type) = if is_cloudevent {
        ("/api/v1/messages".to_string(), "application/cloudevents+json")
    } else {
        (format!("/api/v1/documents/{ty}"), content_type_of(&ex.wire))
    };
    let (status, body) = stage.post_as(&sender, &path, content_type, wire).await?;
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
    let c = stage.receiver(ex)?;
    let drop = c
        .file_drop
        .as_ref()
        .ok_or_else(|| format!("connector {} has no [file] drop folder", c.name))?;
    let source = source_of(c);
    let ty = ex.message_type.clone().unwrap_or_default();
    let before = stage.messages(&source, &ty).await;
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
    let expected = read_json(ex.canonical.as_ref().ok_or("no canonical event")?)?;
    let got = new_events(stage, &source, &ty, &before, &expected).await?;
    normalise::compare_json(expected, got, &ex.ignore)
        .map_err(|d| format!("the stored events differ from {}:\n      {d}", canonical_name(ex)))
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn canonical_name(ex: &Example) -> String {
    ex.canonical.as_deref().map(file_name).unwrap_or_default()
}

/// Replays `examples` (of one or several contracts), one stage per
/// contract; returns the report lines and the failures.
async fn replay_all(examples: Vec<Example>) -> (Vec<String>, Vec<String>) {
    let mut by_partner: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    for e in examples {
        by_partner.entry(e.partner.clone()).or_default().push(e);
    }
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for (contract, group) in &by_partner {
        let stage = Stage::start(contract).await;
        for ex in group {
            stage.sims.reset();
            match replay(&stage, ex).await {
                Ok(Replayed::Matched) => lines.push(format!("ok    {}", ex.id())),
                Ok(Replayed::Skipped(why)) => {
                    // The real stderr: the harness captures `eprintln!` of passing tests.
                    use std::io::Write;
                    let _ = writeln!(std::io::stderr(), "SKIPPED contract example {}: {why}", ex.id());
                    lines.push(format!("SKIP  {}  ({why})", ex.id()));
                }
                Err(why) => {
                    lines.push(format!("FAIL  {}", ex.id()));
                    failures.push(format!("{}  ({})\n    {why}", ex.id(), ex.description));
                }
            }
        }
        stage.stop().await;
    }
    (lines, failures)
}

#[tokio::test]
async fn every_contract_example_replays_against_the_hub_and_the_simulators() {
    let examples = exchange::discover(&repo().join("contracts"))
        .unwrap_or_else(|errors| panic!("contract examples do not read:\n  {}", errors.join("\n  ")));
    assert!(examples.len() >= 36, "only {} examples found", examples.len());
    let (lines, failures) = replay_all(examples).await;
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
/// folder `contracts/<name>/` (or `contracts/<prefix>/` for a partner's
/// connector named `<prefix>-<interface>`) with a README and at least one
/// example exchange.
#[test]
fn every_shipped_partner_has_a_contract_with_examples() {
    let files = shipped_connectors();
    assert!(!files.is_empty());
    let mut missing = Vec::new();
    for s in files {
        let Some(contract) = contract_of(&s.name) else {
            missing.push(format!(
                "connectors/{}.toml: no contracts/{}/ (nor contracts/<prefix>/ for a name <prefix>-…)",
                s.stem, s.name
            ));
            continue;
        };
        let folder = repo().join("contracts").join(&contract);
        if !folder.join("README.md").is_file() {
            missing.push(format!("connectors/{}.toml: contracts/{contract}/README.md is missing", s.stem));
        }
        let examples = exchange::sorted_dirs(&folder.join("examples"))
            .into_iter()
            .filter(|d| d.join("exchange.toml").is_file())
            .count();
        if examples == 0 {
            missing.push(format!(
                "connectors/{}.toml: contracts/{contract}/examples/ has no example exchange",
                s.stem
            ));
        }
    }
    assert!(missing.is_empty(), "partners without a contract:\n  {}", missing.join("\n  "));
}

/// Every contract with examples belongs to a shipped connector (named like
/// it, or `<contract>-<interface>`) or to an example park registered from
/// `connectors/parks/<contract>.json`: examples no hub could replay are
/// caught here.
#[test]
fn every_contract_with_examples_belongs_to_a_shipped_connector() {
    let examples = exchange::discover(&repo().join("contracts")).expect("examples read");
    let contracts: std::collections::BTreeSet<String> = shipped_connectors().iter().filter_map(|s| contract_of(&s.name)).collect();
    let is_park = |p: &str| repo().join("connectors/parks").join(format!("{p}.json")).is_file();
    let orphans: std::collections::BTreeSet<&str> = examples
        .iter()
        .map(|e| e.partner.as_str())
        .filter(|p| !contracts.contains(*p) && !is_park(p))
        .collect();
    assert!(
        orphans.is_empty(),
        "contracts with examples but no shipped connector or example park: {orphans:?}"
    );
    assert_eq!(contract_of("transport-carriers").as_deref(), Some("transport"));
    assert_eq!(contract_of("park-xiamen-haicang").as_deref(), Some("park-xiamen-haicang"));
    assert_eq!(contract_of("transportation"), None);
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

    write(
        "description = \"x\"\ndirection = \"from-partner\"\ntype = \"t\"\nchannel = \"mqtt\"\nwire = \"w.json\"\ncanonical = \"w.json\"\n",
    );
    assert!(errors().contains("needs topic"), "{}", errors());
    write(
        "description = \"x\"\ndirection = \"from-partner\"\ntype = \"t\"\nchannel = \"poll\"\ntopic = \"a/+\"\nwire = \"w.json\"\ncanonical = \"w.json\"\n",
    );
    let e = errors();
    assert!(e.contains("topic is for channel") && e.contains("without wildcards"), "{e}");

    write(
        "description = \"x\"\ndirection = \"to-partner\"\nwire = \"w.json\"\nanswer = \"w.json\"\noutcome = \"dead\"\n\
         [[setup]]\npost = \"_sim/outage\"\n[[setup]]\npost = \"/_sim/outage\"\nbody = 3\n",
    );
    let e = errors();
    assert!(
        e.contains("setup post \"_sim/outage\" must be a path") && e.contains("body must be a table"),
        "{e}"
    );
    write(
        "description = \"x\"\ndirection = \"to-partner\"\nwire = \"w.json\"\nanswer = \"w.json\"\noutcome = \"dead\"\n[[setup]]\nget = \"/x\"\n",
    );
    assert!(errors().contains("get"), "{}", errors());

    write(
        "description = \"x\"\ndirection = \"to-partner\"\nwire = \"w.json\"\nanswer = \"w.json\"\noutcome = \"dead\"\nbefore = [\"w.json\"]\n",
    );
    assert!(errors().contains("before is for exchanges through the hub"), "{}", errors());
    write(
        "description = \"x\"\ndirection = \"from-partner\"\ntype = \"t\"\nwire = \"w.json\"\ncanonical = \"w.json\"\nanswer_ignore = [\"/id\"]\n",
    );
    assert!(errors().contains("answer_ignore names paths in the answer"), "{}", errors());

    std::fs::write(example.join("w.http"), "GET / HTTP/1.1\n\n").expect("write");
    write("description = \"x\"\ndirection = \"from-partner\"\ntype = \"t\"\nwire = \"w.http\"\ncanonical = \"w.json\"\n");
    assert!(errors().contains("raw HTTP wire"), "{}", errors());

    std::fs::create_dir_all(tmp.path().join("acme/examples/02-empty")).expect("mkdir");
    assert!(
        errors().contains("02-empty: an example folder without exchange.toml"),
        "{}",
        errors()
    );
}

/// The harness fails an example that does not hold, saying what differed:
/// a poll page whose stored event is not the example's, a raw HTTP answer
/// with another code, a setup call the simulator refuses, and (with a
/// broker) a payload published on a topic no filter takes.
#[tokio::test]
async fn an_example_that_does_not_hold_fails_with_what_differed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let examples = tmp.path().join("transport/examples");
    let shipped = repo().join("contracts/transport/examples");
    let copy = |from: &str, to: &str| {
        let (src, dst) = (shipped.join(from), examples.join(to));
        std::fs::create_dir_all(&dst).expect("mkdir");
        for f in std::fs::read_dir(&src).expect("example").filter_map(Result::ok) {
            std::fs::copy(f.path(), dst.join(f.file_name())).expect("copy");
        }
        dst
    };
    // A page whose first carrier the example says is ACTIVE.
    let page = copy("01-carriers-first-page", "01-wrong-status");
    let mut events = read_json(&page.join("events.json")).expect("events");
    events[0]["data"]["status"] = Value::String("ACTIVE".into());
    std::fs::write(page.join("events.json"), events.to_string()).expect("write");
    // A refusal the example says is INVALID_PAGE_TOKEN.
    let answer = copy("05-limit-above-200", "02-wrong-code");
    let text = std::fs::read_to_string(answer.join("answer.http")).expect("answer");
    std::fs::write(answer.join("answer.http"), text.replace("INVALID_PARAMETER", "INVALID_PAGE_TOKEN")).expect("write");
    // A setup call to a path the simulator does not have.
    let setup = copy("06-unknown-page-token", "03-bad-setup");
    let toml = std::fs::read_to_string(setup.join("exchange.toml")).expect("exchange");
    std::fs::write(
        setup.join("exchange.toml"),
        format!("{toml}\n[[setup]]\npost = \"/_sim/nothing-here\"\n"),
    )
    .expect("write");
    // A payload on a topic of no filter.
    let mqtt = copy("03-positions-over-mqtt", "04-wrong-topic");
    let toml = std::fs::read_to_string(mqtt.join("exchange.toml")).expect("exchange");
    let topic = toml.lines().find(|l| l.starts_with("topic")).expect("a topic line").to_string();
    std::fs::write(
        mqtt.join("exchange.toml"),
        toml.replace(&topic, "topic = \"fj/transport/elsewhere/1\""),
    )
    .expect("write");

    let found = exchange::discover(tmp.path()).expect("the examples read");
    assert_eq!(found.len(), 4);
    let (lines, failures) = replay_all(found).await;
    let all = failures.join("\n");
    assert!(lines[0].starts_with("FAIL  transport/01-wrong-status"), "{lines:?}");
    assert!(
        all.contains("the stored events differ from events.json") && all.contains("/0/data/status"),
        "{all}"
    );
    assert!(lines[1].starts_with("FAIL  transport/02-wrong-code"), "{lines:?}");
    assert!(
        all.contains("the answer differs from answer.http") && all.contains("/code"),
        "{all}"
    );
    assert!(lines[2].starts_with("FAIL  transport/03-bad-setup"), "{lines:?}");
    assert!(all.contains("setup post /_sim/nothing-here answered 404"), "{all}");
    if crate::mqtt::broker().is_some() {
        assert!(lines[3].starts_with("FAIL  transport/04-wrong-topic"), "{lines:?}");
        assert!(all.contains("matches none of connector transport-tracks's filters"), "{all}");
    } else {
        assert!(lines[3].starts_with("SKIP  transport/04-wrong-topic"), "{lines:?}");
    }
}

/// The same for signed letters: a consultation letter the partner received
/// that is not the example's, a refusal with another reason, and a stored
/// whitelist entry that is not the example's each fail, naming the path.
#[tokio::test]
async fn a_province_example_that_does_not_hold_fails_with_what_differed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let examples = tmp.path().join("province/examples");
    let shipped = repo().join("contracts/province/examples");
    let copy = |from: &str, to: &str| {
        let (src, dst) = (shipped.join(from), examples.join(to));
        std::fs::create_dir_all(&dst).expect("mkdir");
        for f in std::fs::read_dir(&src).expect("example").filter_map(Result::ok) {
            std::fs::copy(f.path(), dst.join(f.file_name())).expect("copy");
        }
        dst
    };
    let alter = |file: &Path, pointer: &str, value: &str| {
        let mut v = read_json(file).expect("a JSON file");
        *v.pointer_mut(pointer).expect("the value to alter") = Value::String(value.into());
        std::fs::write(file, v.to_string()).expect("write");
    };
    let letter = copy("01-consultation-to-jiangxi", "01-wrong-letter-no");
    alter(&letter.join("letter.json"), "/data/letter_no", "闽环固商〔2026〕999号");
    let refusal = copy("02-signature-does-not-verify", "02-wrong-reason");
    alter(&refusal.join("receipt.json"), "/data/reason", "unknown key id");
    let entry = copy("03-whitelist-entry-from-jiangxi", "03-wrong-quantity");
    alter(&entry.join("event.json"), "/data/max_quantity_t_per_year", "600");

    let found = exchange::discover(tmp.path()).expect("the examples read");
    assert_eq!(found.len(), 3);
    let (lines, failures) = replay_all(found).await;
    let all = failures.join("\n");
    assert!(lines[0].starts_with("FAIL  province/01-wrong-letter-no"), "{lines:?}\n{all}");
    assert!(
        all.contains("the body the partner received differs from letter.json") && all.contains("/data/letter_no"),
        "{all}"
    );
    assert!(lines[1].starts_with("FAIL  province/02-wrong-reason"), "{lines:?}\n{all}");
    assert!(
        all.contains("the answer differs from receipt.json") && all.contains("/data/reason"),
        "{all}"
    );
    assert!(lines[2].starts_with("FAIL  province/03-wrong-quantity"), "{lines:?}\n{all}");
    assert!(
        all.contains("the stored event differs from event.json") && all.contains("/data/max_quantity_t_per_year"),
        "{all}"
    );
}

/// The simulators of partners that send produce what their contracts allow:
/// the park's records are accepted, the registry extracts are taken whole.
#[tokio::test]
async fn the_sending_partners_simulators_produce_documents_the_hub_accepts() {
    let stage = Stage::start("market-regulation").await;
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
    assert_eq!(stage.messages("urn:fj:samr:registry", "enterprise-registration").await.len(), 6);
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

/// The province contract's schemas describe the letters of its examples,
/// signed, and the receipts made for them (accepted and refused); a letter
/// without its signature and an accepted receipt giving a reason are not.
#[test]
fn the_province_letters_and_receipts_match_the_contract_schemas() {
    use wastehub::letters::{Algorithm, PrivateKey, Receipt as LetterReceipt, Verdict};
    let dir = repo().join("contracts/province");
    let compile = |name: &str| {
        let schema = read_json(&dir.join(name)).expect("schema");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{name} does not compile: {e}"))
    };
    let (letter_schema, receipt_schema) = (compile("letter.schema.json"), compile("receipt.schema.json"));
    let errors = |v: &jsonschema::Validator, what: &str, doc: &Value| -> Vec<String> {
        v.iter_errors(doc).map(|e| format!("{what}: {}: {e}", e.instance_path())).collect()
    };
    let (key, _) = PrivateKey::generate(Algorithm::Sm2Sm3).expect("key");
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:05+08:00").expect("time");
    let mut problems = Vec::new();
    let mut letters = 0;
    for example in exchange::sorted_dirs(&dir.join("examples")) {
        let path = example.join("letter.json");
        if !path.is_file() {
            continue;
        }
        // Signed afresh, as at replay (the example's signature is a placeholder).
        let mut letter = read_json(&path).expect("letter");
        if let Some(o) = letter.as_object_mut() {
            for k in ["sigalg", "sigkeyid", "sigvalue"] {
                o.remove(k);
            }
        }
        let signed = wastehub::letters::sign_letter(&letter, &key).expect("signed");
        let what = path.display().to_string();
        problems.extend(errors(&letter_schema, &what, &signed));
        for (verdict, reason) in [(Verdict::Accepted, None), (Verdict::Refused, Some("来函非致本省".to_string()))] {
            let receipt = LetterReceipt::for_letter(&signed, at, verdict, reason)
                .and_then(|r| r.sign("receipt-1", "urn:wastehub:province:36", &key))
                .expect("receipt");
            problems.extend(errors(&receipt_schema, &format!("receipt for {what}"), &receipt));
        }
        letters += 1;
    }
    assert!(letters >= 3, "{letters} example letters");
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let unsigned = serde_json::json!({"specversion": "1.0", "id": "a", "source": "urn:wastehub:province:36",
        "type": "xp-reply", "time": "2026-11-29T10:00:00+08:00", "datacontenttype": "application/json", "data": {}});
    assert!(errors(&letter_schema, "unsigned", &unsigned).iter().any(|e| e.contains("sigvalue")));
    let letter = wastehub::letters::sign_letter(&unsigned, &key).expect("signed");
    let mut receipt = LetterReceipt::for_letter(&letter, at, Verdict::Accepted, None)
        .and_then(|r| r.sign("receipt-2", "urn:wastehub:province:35", &key))
        .expect("receipt");
    receipt["data"]["reason"] = Value::String("accepted, yet a reason".into());
    assert!(!errors(&receipt_schema, "accepted with a reason", &receipt).is_empty());
}

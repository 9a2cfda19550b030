//! Journey 2: a park connects its own cell platform. Each example park
//! shipped in `connectors/parks/` (one JSON platform, one XML platform) walks
//! the whole way against the hub running the shipped connector files, with
//! the provincial and national simulators as receivers:
//!
//! registration from its file → sandbox traffic in its own format with a
//! realistic error (422 with the exact errors, kept in the sandbox log) →
//! the fixed documents accepted in sandbox → a passing conformance run that
//! covers its types → go-live → production traffic delivered to the
//! provincial system as JSON and to the national system as XML, receipts
//! stored. Nothing sent in sandbox reaches either simulator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wastehub::sim::national::{NationalConfig, NationalSim};
use wastehub::sim::provincial::{ProvincialConfig, ProvincialSim};

use crate::support::exchange::{self, Example};
use crate::support::{HubSpec, TestApp, eventually, repo};

const PROVINCIAL_TOKEN: &str = "journey-park-provincial-token";
const DELIVERED_WITHIN: Duration = Duration::from_secs(20);

/// The hub with every shipped connector file, national and provincial
/// pointed at their simulators, and the shipped mappings.
struct World {
    app: TestApp,
    national: NationalSim,
    provincial: ProvincialSim,
    stop: CancellationToken,
}

impl World {
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
        let mut spec = HubSpec::new()
            .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
            // The shipped national connector waits up to 15 s per attempt.
            .config("[delivery]\nlease = \"2m\"");
        spec.connectors.extend(shipped_connectors());
        let cfg = NationalConfig::default();
        spec.env = [
            ("NATIONAL_URL", national.url("/exchange")),
            ("NATIONAL_TOKEN_URL", national.url("/oauth/token")),
            ("NATIONAL_CLIENT_ID", cfg.client_id),
            ("NATIONAL_CLIENT_SECRET", cfg.client_secret),
            ("NATIONAL_RETRY_SCHEDULE", "0s 500ms 1s".into()),
            ("PROVINCIAL_URL", provincial.url("/events")),
            ("PROVINCIAL_TOKEN", PROVINCIAL_TOKEN.into()),
            ("PROVINCIAL_RETRY_SCHEDULE", "0s 500ms 1s".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let app = TestApp::spawn(spec).await;
        Self {
            app,
            national,
            provincial,
            stop,
        }
    }

    /// Posts a document in the park's own format; returns status and answer.
    async fn post_document(&self, key: &str, message_type: &str, doc: &Doc) -> (u16, Value) {
        let r = self
            .app
            .client
            .post(format!("{}/api/v1/documents/{message_type}", self.app.base))
            .bearer_auth(key)
            .header("content-type", doc.content_type)
            .body(doc.bytes.clone())
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The shipped connector files, unchanged but for their maintenance
/// windows (schedule, not behaviour: they would make the journey fail at
/// those hours).
fn shipped_connectors() -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("connectors"))
        .expect("connectors/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("connector file");
            let mut table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Some(toml::Value::Table(out)) = table.get_mut("outbound") {
                out.remove("maintenance");
            }
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            (stem, toml::to_string(&table).expect("serialise"))
        })
        .collect()
}

/// A document as the park sends it.
#[derive(Clone)]
struct Doc {
    name: String,
    message_type: String,
    bytes: Vec<u8>,
    content_type: &'static str,
}

/// The park's documents: its contract's example exchanges.
fn documents(park: &str) -> Vec<Doc> {
    let dirs = exchange::sorted_dirs(&repo().join("contracts").join(park).join("examples"));
    let docs: Vec<Doc> = dirs
        .iter()
        .map(|d| {
            exchange::parse(&d.join("exchange.toml"), park)
                .unwrap_or_else(|errors| panic!("{park}'s examples do not read:\n  {}", errors.join("\n  ")))
        })
        .map(|e: Example| Doc {
            name: e.name.clone(),
            message_type: e.message_type.clone().expect("from-partner examples have a type"),
            bytes: std::fs::read(&e.wire).expect("wire"),
            content_type: if e.wire.extension().is_some_and(|x| x == "xml") {
                "application/xml"
            } else {
                "application/json"
            },
        })
        .collect();
    assert!(docs.len() >= 3, "{park} has {} example documents", docs.len());
    docs
}

/// How a park's first sandbox attempt goes wrong and how the hub says so.
struct Mistake {
    /// Which example document the vendor got wrong.
    example: &'static str,
    /// The wrong document made from it.
    break_it: fn(&[u8]) -> Vec<u8>,
    code: &'static str,
    /// Every field error: (path, text the message contains).
    errors: &'static [(&'static str, &'static str)],
}

struct Park {
    id: &'static str,
    mistake: Mistake,
    /// Message type → destinations its production messages reach.
    routes: &'static [(&'static str, &'static [&'static str])],
}

fn parks() -> Vec<Park> {
    vec![
        Park {
            id: "park-quanzhou-quangang",
            // A clerk swaps the last two digits of the catalyst's waste code.
            mistake: Mistake {
                example: "01-ledger-entry-generation",
                break_it: |b| String::from_utf8_lossy(b).replace("\"251-016-50\"", "\"251-016-05\"").into_bytes(),
                code: "validation_failed",
                errors: &[(
                    "/data/waste_code",
                    "waste code 251-016-05 is not in the 2021 edition of the National Hazardous Waste List",
                )],
            },
            routes: &[("ledger-entry", &["national", "provincial"]), ("weighing", &[])],
        },
        Park {
            id: "park-zhangzhou-gulei",
            // The platform's form offers bags (DAI), a unit the canonical form
            // does not have: the catalyst must go by weight.
            mistake: Mistake {
                example: "01-manifest-created",
                break_it: |b| {
                    String::from_utf8_lossy(b)
                        .replace(
                            "<gl:Quantity unit=\"T\">12.36</gl:Quantity>",
                            "<gl:Quantity unit=\"DAI\" massKg=\"12360\">14</gl:Quantity>",
                        )
                        .into_bytes()
                },
                code: "mapping_failed",
                // Inside a repeated element the path names the field within the line.
                errors: &[("/quantity/unit", "\"DAI\" is not in code table units")],
            },
            routes: &[
                ("manifest-created", &["national", "provincial"]),
                ("ledger-entry", &["national", "provincial"]),
            ],
        },
    ]
}

/// Registers a park from its file with `wastehub partner add --file`, the
/// way an operator does; returns its API key.
async fn register_with_the_cli(w: &World, id: &str) -> String {
    let file = repo().join("connectors/parks").join(format!("{id}.json"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wastehub"))
        .args(["partner", "--json", "--hub", &w.app.base, "add", "--file"])
        .arg(&file)
        .env("WASTEHUB_OPERATOR_TOKEN", &w.app.operator)
        .output()
        .await
        .expect("run wastehub partner add");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_str(&stdout).expect("--json prints the answer");
    let registration: Value = serde_json::from_slice(&std::fs::read(&file).expect("file")).expect("JSON");
    assert_eq!(created["partner"]["id"], registration["id"]);
    assert_eq!(created["partner"]["status"], "sandbox");
    assert_eq!(created["partner"]["division_code"], registration["division_code"]);
    assert_eq!(created["partner"]["mappings"], registration["mappings"]);
    created["api_key"].as_str().expect("api key shown once").to_string()
}

async fn production_messages(w: &World, id: &str) -> Vec<Value> {
    let (s, page) = w
        .app
        .op_get(&format!("/api/v1/messages?source=urn:wastehub:partner:{id}&limit=100"))
        .await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// The sandbox part: the mistake, the fix, conformance. Nothing may leave the hub.
async fn sandbox(w: &World, park: &Park, key: &str, docs: &[Doc]) {
    let id = park.id;
    let m = &park.mistake;
    let original = docs
        .iter()
        .find(|d| d.name == m.example)
        .expect("the example the mistake is made in");
    let bad = Doc {
        bytes: (m.break_it)(&original.bytes),
        ..original.clone()
    };
    assert_ne!(bad.bytes, original.bytes, "{id}: the mistake changed nothing");
    let (status, answer) = w.post_document(key, &bad.message_type, &bad).await;
    assert_eq!((status, answer["code"].as_str()), (422, Some(m.code)), "{id}: {answer}");
    let errors = answer["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), m.errors.len(), "{id}: exactly the expected errors: {answer}");
    for (path, text) in m.errors {
        assert!(
            errors
                .iter()
                .any(|e| e["path"] == *path && e["message"].as_str().is_some_and(|s| s.contains(text))),
            "{id}: no error at {path} saying {text:?}: {answer}"
        );
    }
    // The refusal is in the sandbox log with its errors.
    let (_, log) = w.app.op_get(&format!("/api/v1/partners/{id}/sandbox")).await;
    let refused = log
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["outcome"] == "rejected"))
        .cloned()
        .unwrap_or_else(|| panic!("{id}: no refusal in the sandbox log: {log}"));
    assert_eq!(refused["http_status"], 422, "{refused}");
    assert_eq!(refused["error_code"], m.code, "{refused}");
    assert_eq!(refused["message_type"], bad.message_type.as_str(), "{refused}");
    assert!(refused["errors"].as_str().unwrap_or("").contains(m.errors[0].0), "{refused}");
    // The fix comes later than the refusal (conformance judges the latest
    // exchange per type by its time).
    let refused_at = refused["received_at"].as_i64().unwrap_or(i64::MAX);
    assert!(
        eventually(Duration::from_secs(1), || async { wastehub::model::now_millis() > refused_at }).await,
        "the clock does not move"
    );

    // Go-live is refused until conformance passes.
    let (s, body) = w.app.op_post(&format!("/api/v1/partners/{id}/go-live"), &json!({})).await;
    assert_eq!((s, body["code"].as_str()), (409, Some("conformance_required")), "{body}");

    // The fixed documents: every example, each answered 202 in sandbox.
    for doc in docs {
        let (status, answer) = w.post_document(key, &doc.message_type, doc).await;
        assert_eq!(status, 202, "{id} {}: {answer}", doc.name);
        assert_eq!(answer["sandbox"], true, "{answer}");
        assert_eq!(answer["deliveries"].as_array().map(Vec::len), Some(0), "{answer}");
    }
    let (_, log) = w.app.op_get(&format!("/api/v1/partners/{id}/sandbox")).await;
    let rows = log.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), docs.len() + 1, "{log}");
    assert_eq!(rows.iter().filter(|r| r["outcome"] == "accepted").count(), docs.len(), "{log}");

    // Conformance passes, covering every type the park may send; the fixed
    // refusal is listed, not held against it.
    let (s, report) = w.app.op_post(&format!("/api/v1/partners/{id}/conformance"), &json!({})).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["verdict"], "pass", "{id}: {report}");
    let types: BTreeSet<&str> = park.routes.iter().map(|(t, _)| *t).collect();
    let coverage = report["coverage"].as_array().cloned().unwrap_or_default();
    let covered: BTreeSet<&str> = coverage
        .iter()
        .filter(|c| c["covered"] == true && c["latest_sandbox_accepted"] == true)
        .filter_map(|c| c["message_type"].as_str())
        .collect();
    assert_eq!(covered, types, "{report}");
    assert!(
        report["examples"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x["passed"] == false && x["code"] == m.code)),
        "{report}"
    );

    // Nothing of it is a production message.
    assert!(
        production_messages(w, id).await.is_empty(),
        "{id}: sandbox traffic was stored for routing"
    );
}

/// The live part: production traffic delivered with receipts, duplicates
/// answered 200. Returns how many of its documents were routed.
async fn production(w: &World, park: &Park, key: &str, docs: &[Doc]) -> usize {
    let id = park.id;
    let (s, live) = w.app.op_post(&format!("/api/v1/partners/{id}/go-live"), &json!({})).await;
    assert_eq!((s, live["status"].as_str()), (200, Some("live")), "{live}");
    let routes: BTreeMap<&str, &[&str]> = park.routes.iter().copied().collect();
    let mut routed = 0;
    let mut accepted = Vec::new();
    for doc in docs {
        let (status, answer) = w.post_document(key, &doc.message_type, doc).await;
        assert_eq!(status, 202, "{id} {}: {answer}", doc.name);
        assert!(answer.get("sandbox").is_none(), "{answer}");
        let want: BTreeSet<&str> = routes[doc.message_type.as_str()].iter().copied().collect();
        let got: BTreeSet<&str> = answer["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["destination"].as_str())
            .collect();
        assert_eq!(got, want, "{id} {}: routed to {answer}", doc.name);
        if !want.is_empty() {
            routed += 1;
        }
        accepted.push((doc, answer["id"].as_str().expect("message id").to_string(), want));
    }
    for (doc, msg, want) in &accepted {
        for dest in want {
            assert!(
                w.app.wait_status(msg, dest, "delivered", DELIVERED_WITHIN).await,
                "{id} {} to {dest}: {}",
                doc.name,
                w.app.trace(msg).await
            );
        }
        let trace = w.app.trace(msg).await;
        assert_eq!(trace["event"]["source"], format!("urn:wastehub:partner:{id}"));
        for d in trace["deliveries"].as_array().into_iter().flatten() {
            assert!(!d["receipt"].is_null(), "{id} {}: no receipt stored: {d}", doc.name);
            if d["destination"] == "national" {
                assert_eq!(d["receipt"]["ack_code"], "0000", "{d}");
                assert!(d["receipt"]["reference"].as_str().is_some_and(|r| r.starts_with("GF")), "{d}");
            }
        }
    }
    // The same document again is a duplicate with the original receipt.
    let (doc, first, _) = &accepted[0];
    let (status, again) = w.post_document(key, &doc.message_type, doc).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)), "{again}");
    assert_eq!(again["id"].as_str(), Some(first.as_str()));
    assert_eq!(production_messages(w, id).await.len(), docs.len());
    routed
}

#[tokio::test]
async fn each_example_park_walks_from_registration_to_delivered_production_traffic() {
    let w = World::start().await;
    let mut routed = 0;
    for (n, park) in parks().iter().enumerate() {
        let docs = documents(park.id);
        let key = if n == 0 {
            register_with_the_cli(&w, park.id).await
        } else {
            let body: Value =
                serde_json::from_slice(&std::fs::read(repo().join("connectors/parks").join(format!("{}.json", park.id))).expect("file"))
                    .expect("JSON");
            let (s, created) = w.app.op_post("/api/v1/partners", &body).await;
            assert_eq!(s, 201, "{created}");
            created["api_key"].as_str().expect("key").to_string()
        };
        let (national, provincial) = (w.national.accepted().len(), w.provincial.accepted().len());
        sandbox(&w, park, &key, &docs).await;
        // Sandbox answers are given once the traffic is recorded; a routed
        // message would be on its way to the simulators by now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            w.national.accepted().len(),
            national,
            "{}: sandbox traffic reached the national system",
            park.id
        );
        assert_eq!(
            w.provincial.accepted().len(),
            provincial,
            "{}: sandbox traffic reached the provincial system",
            park.id
        );
        routed += production(&w, park, &key, &docs).await;
    }
    // Each routed production document reached each system exactly once, in
    // its format and valid by its contract; nothing else arrived.
    let national = w.national.accepted();
    let provincial = w.provincial.accepted();
    assert_eq!(national.len(), routed, "{national:?}");
    assert_eq!(provincial.len(), routed, "{provincial:?}");
    assert_eq!((w.national.counts().refused, w.provincial.refused()), (0, 0));
    let national_docs: BTreeSet<(String, String)> = national.iter().map(|a| (a.document.clone(), a.key.clone())).collect();
    for expected in [
        ("nx:LedgerEntry", "HWCS20261128003"),
        ("nx:LedgerEntry", "HWRK20261128002"),
        ("nx:Manifest", "20263506000187"),
        ("nx:LedgerEntry", "HWCS20261128021"),
        ("nx:LedgerEntry", "HWCK20261129001"),
    ] {
        assert!(
            national_docs.contains(&(expected.0.to_string(), expected.1.to_string())),
            "national has no {expected:?}: {national:?}"
        );
    }
    let kinds: Vec<&str> = provincial.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "LEDGER_ENTRY").count(), 4, "{provincial:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "MANIFEST_CREATE").count(), 1, "{provincial:?}");
    // The provincial system received its JSON, the national system its XML.
    for e in w.provincial.exchanges() {
        assert!(e.content_type.starts_with("application/json"), "{}", e.content_type);
    }
    for e in w.national.exchanges() {
        assert!(e.content_type.contains("xml"), "{}", e.content_type);
    }
}

/// Every example park ships the three parts: a registration file, the
/// mappings it names (with cases), and a contract with examples.
#[test]
fn every_example_park_ships_its_registration_mappings_and_contract() {
    let dir = repo().join("connectors/parks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("connectors/parks/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    for file in files {
        assert_eq!(file.extension().and_then(|x| x.to_str()), Some("json"), "{}", file.display());
        let reg: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("JSON");
        let id = reg["id"].as_str().expect("id");
        assert_eq!(
            file.file_stem().and_then(|s| s.to_str()),
            Some(id),
            "the file is named after the partner"
        );
        for (t, mapping) in reg["mappings"].as_object().expect("mappings") {
            let mapping = mapping.as_str().expect("mapping name");
            assert!(mapping.starts_with(&format!("{id}/")), "{id}: {mapping}");
            assert!(repo().join("mappings").join(format!("{mapping}.toml")).is_file(), "{mapping}");
            let stem = mapping.rsplit('/').next().unwrap_or_default();
            let cases = repo().join("mappings").join(id).join("cases").join(stem);
            assert!(std::fs::read_dir(&cases).is_ok_and(|d| d.count() >= 2), "{}", cases.display());
            assert!(reg["message_types"].as_array().expect("types").iter().any(|x| x == t));
        }
        let contract = repo().join("contracts").join(id);
        let readme = std::fs::read_to_string(contract.join("README.md")).expect("contract README");
        assert!(readme.contains("PROPOSED"), "{id}");
        assert!(exchange::sorted_dirs(&contract.join("examples")).len() >= 3, "{id}");
    }
}

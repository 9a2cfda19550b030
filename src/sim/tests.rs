//! The department simulators against their contracts and the shipped
//! mappings: every page item a simulator serves validates against the
//! contract's schema and maps to a canonical event that passes the
//! catalogue and the reference checks. (The contracts' example exchanges,
//! `contracts/<partner>/examples/`, are replayed against the hub and the
//! simulators by the contract tests, `tests/it/contracts.rs`.)

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::health::{HealthConfig, HealthSim, INSTITUTION_SCHEMA, INSTITUTIONS_PATH};
use super::registry::RegistryConfig;
use super::transport::{CARRIER_SCHEMA, CARRIERS_PATH, TRACK_BATCH_SCHEMA, TransportConfig, TransportSim};
use crate::mapping::{LoadContext, Mapping, MappingSet};
use crate::reference::{Checker, ReferenceData};
use crate::schema::Catalogue;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped catalogue, reference checks and mappings.
struct Hub {
    catalogue: Catalogue,
    checker: Checker,
    mappings: MappingSet,
}

impl Hub {
    fn load() -> Self {
        let catalogue = Catalogue::load(&root().join("schemas/canonical")).expect("catalogue");
        let reference = root().join("schemas/reference");
        let mappings = MappingSet::load(
            &root().join("mappings"),
            &LoadContext {
                catalogue: &catalogue,
                reference_dir: &reference,
            },
        )
        .unwrap_or_else(|e| panic!("{}", e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")));
        let checker = Checker::new(&catalogue, ReferenceData::load(&reference).expect("reference data"));
        Self {
            catalogue,
            checker,
            mappings,
        }
    }

    fn mapping(&self, name: &str) -> &Mapping {
        self.mappings.versions(name).last().unwrap_or_else(|| panic!("no mapping {name}"))
    }

    /// Maps one partner record and checks the event as ingest would:
    /// envelope fields, catalogue schema, reference checks.
    fn map_checked(&self, mapping: &str, record: &Value) -> Value {
        let m = self.mapping(mapping);
        let out = m
            .apply_json(record)
            .unwrap_or_else(|e| panic!("{mapping} refused {record}:\n{e}"))
            .json
            .expect("JSON output");
        for field in ["id", "subject", "time", "jurisdiction"] {
            assert!(out[field].as_str().is_some_and(|s| !s.is_empty()), "{mapping}: no {field} in {out}");
        }
        let time = chrono::DateTime::parse_from_rfc3339(out["time"].as_str().unwrap_or_default()).expect("time");
        let ty = m.message_type();
        if let Err(errs) = self.catalogue.validate(ty, &out["data"], "/data") {
            panic!("{mapping}: {ty} invalid: {errs:?}\nfrom {record}");
        }
        let errs = self.checker.check(ty, &out["data"], time, "/data");
        assert!(errs.is_empty(), "{mapping}: reference checks: {errs:?}\nfrom {record}");
        out
    }
}

fn validator(schema: &str) -> jsonschema::Validator {
    super::contract_schema(schema, "department").expect("contract schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, item: &Value) {
    let errs: Vec<String> = v.iter_errors(item).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errs.is_empty(), "{errs:?}\n{item}");
}

/// Every item of a full run (token `token`, `limit` per page) from `since`,
/// and the run's final cursor.
async fn fetch_all(url: &str, token: &str, limit: usize, since: Option<&str>) -> (Vec<Value>, Option<String>) {
    let client = reqwest::Client::new();
    let mut items = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(s) = since {
            q.push(("updated_since", s.to_string()));
        }
        if let Some(t) = &page_token {
            q.push(("page_token", t.clone()));
        }
        let page: Value = client
            .get(reqwest::Url::parse_with_params(url, &q).expect("url"))
            .bearer_auth(token)
            .send()
            .await
            .expect("page")
            .error_for_status()
            .expect("200")
            .json()
            .await
            .expect("JSON page");
        let got = page["items"].as_array().expect("items").clone();
        assert!(got.len() <= limit, "page larger than the limit");
        items.extend(got);
        page_token = page["next_page_token"].as_str().map(str::to_string);
        if page_token.is_none() {
            return (items, page["next_cursor"].as_str().map(str::to_string));
        }
    }
}

fn registry_cfg(token: &str) -> RegistryConfig {
    RegistryConfig {
        token: token.into(),
        max_page: 25,
        ..RegistryConfig::default()
    }
}

#[tokio::test]
async fn transport_pages_follow_the_contract_and_map_to_valid_transporter_records() {
    let hub = Hub::load();
    let schema = validator(CARRIER_SCHEMA);
    let cfg = TransportConfig {
        registry: registry_cfg("t0ken"),
        records: 80,
        ..TransportConfig::default()
    };
    let sim = TransportSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        cfg,
        CancellationToken::new(),
    )
    .unwrap();
    let (items, cursor) = fetch_all(&sim.url(CARRIERS_PATH), "t0ken", 25, None).await;
    assert_eq!(items.len(), 80);
    let mut statuses = std::collections::BTreeSet::new();
    for item in &items {
        assert_valid(&schema, item);
        let event = hub.map_checked("transport/transporter-record-in", item);
        assert_eq!(
            event["id"],
            json!(format!("{}:{}", item["recordId"].as_str().unwrap(), item["version"]))
        );
        assert_eq!(event["jurisdiction"], item["areaCode"]);
        assert_eq!(
            event["data"]["vehicles"].as_array().map(Vec::len),
            item["vehicles"].as_array().map(Vec::len)
        );
        statuses.insert(event["data"]["status"].as_str().unwrap().to_string());
    }
    assert!(statuses.contains("ACTIVE") && statuses.len() >= 2, "{statuses:?}");
    // Changed records come after the cursor, valid and with new ids.
    let touched = sim.registry.touch(12);
    let (changed, _) = fetch_all(&sim.url(CARRIERS_PATH), "t0ken", 25, cursor.as_deref()).await;
    assert_eq!(changed.len(), 12);
    for (item, t) in changed.iter().zip(&touched) {
        assert_valid(&schema, item);
        let event = hub.map_checked("transport/transporter-record-in", item);
        assert_eq!(event["id"], json!(format!("{}:{}", t.id, t.version)));
    }
}

#[tokio::test]
async fn health_pages_follow_the_contract_and_map_to_valid_registrations() {
    let hub = Hub::load();
    let schema = validator(INSTITUTION_SCHEMA);
    let cfg = HealthConfig {
        registry: registry_cfg("h0ken"),
        records: 200,
        ..HealthConfig::default()
    };
    let sim = HealthSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        cfg,
        CancellationToken::new(),
    )
    .unwrap();
    let (items, cursor) = fetch_all(&sim.url(INSTITUTIONS_PATH), "h0ken", 25, None).await;
    assert_eq!(items.len(), 200);
    let (mut hosted, mut transit) = (0, 0);
    for item in &items {
        assert_valid(&schema, item);
        let event = hub.map_checked("health/enterprise-registration-in", item);
        let data = &event["data"];
        assert_eq!(data["medical_licence_no"], item["licenceRegNo"]);
        assert!(data["roles"].as_array().unwrap().contains(&json!("MEDICAL_INSTITUTION")));
        if item.get("creditCode").is_none() {
            hosted += 1;
            assert_eq!(data["usci"], item["host"]["creditCode"]);
            assert_eq!(data["site_name"], item["name"]);
        }
        if data["roles"].as_array().unwrap().contains(&json!("MEDICAL_TRANSIT_POINT")) {
            transit += 1;
        }
    }
    assert!(
        hosted > 0 && transit > 0,
        "hosted village clinics {hosted}, transit points {transit}"
    );
    sim.registry.touch(20);
    let (changed, _) = fetch_all(&sim.url(INSTITUTIONS_PATH), "h0ken", 25, cursor.as_deref()).await;
    assert_eq!(changed.len(), 20);
    for item in &changed {
        assert_valid(&schema, item);
        hub.map_checked("health/enterprise-registration-in", item);
    }
}

#[tokio::test]
async fn track_batches_follow_the_contract_and_map_to_valid_track_points() {
    let hub = Hub::load();
    let schema = validator(TRACK_BATCH_SCHEMA);
    let sim = TransportSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TransportConfig::default(),
        CancellationToken::new(),
    )
    .unwrap();
    let first = sim.track_batches(8, 40);
    let second = sim.track_batches(8, 1);
    assert_eq!((first.len(), second.len()), (8, 8));
    for (topic, batch) in first.iter().chain(&second) {
        assert_eq!(topic, "fj/transport/positions/35000011");
        assert_valid(&schema, batch);
        let event = hub.map_checked("transport/track-points-in", batch);
        assert_eq!(
            event["data"]["points"].as_array().map(Vec::len),
            batch["gnss"].as_array().map(Vec::len)
        );
    }
    // A vehicle's batches are numbered 0, 1, …: the same vehicle again gets the next number.
    let seqs: Vec<u64> = first.iter().chain(&second).filter_map(|(_, b)| b["batchSeq"].as_u64()).collect();
    assert!(seqs.contains(&0));
}

#[test]
fn generated_registries_are_the_same_for_the_same_seed() {
    let a = super::transport::carriers(5, 30).unwrap();
    assert_eq!(a, super::transport::carriers(5, 30).unwrap());
    assert_ne!(a, super::transport::carriers(6, 30).unwrap());
    let b = super::health::institutions(5, 30).unwrap();
    assert_eq!(b, super::health::institutions(5, 30).unwrap());
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The OpenAPI documents are OpenAPI 3.1 and every `$ref` in them resolves
/// (to a place in the document or in a schema file beside it).
#[test]
fn department_openapi_documents_resolve() {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    for partner in ["transport", "health"] {
        let dir = root().join("contracts").join(partner);
        let doc = read_json(&dir.join("openapi.json"));
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{partner}");
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let (file, pointer) = r.split_once('#').unwrap_or((&r, ""));
            let target = if file.is_empty() { doc.clone() } else { read_json(&dir.join(file)) };
            assert!(target.pointer(pointer).is_some(), "{partner}: $ref {r} does not resolve");
        }
    }
}

//! Mapping files in the pipeline: partner documents in at
//! `/api/v1/documents/{type}`, partner formats out at delivery, versions by
//! effective date on replay, and hostile documents refused while the hub
//! keeps serving.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_partner::FakePartner;
use crate::support::samples;
use crate::support::{HubSpec, TestApp, repo};

use crate::support::samples::{PARK_NS, gbk, park_record};

/// The test partner `cell` posts ledger entries in the Haicang park format.
fn park_spec() -> HubSpec {
    let mut spec = HubSpec::new().config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()));
    spec.connectors[0]
        .1
        .push_str("[inbound.mappings]\n\"ledger-entry\" = \"park-xiamen-haicang/ledger-entry-in\"\n");
    spec
}

async fn post_document(app: &TestApp, ty: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/api/v1/documents/{ty}", app.base))
        .bearer_auth(&app.key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_park_document_in_gbk_is_mapped_checked_and_delivered() {
    let partner = FakePartner::start().await;
    let app = TestApp::spawn(park_spec().destination("prov", &partner.url, "\"ledger-entry\"", "")).await;
    let (status, body) = post_document(&app, "ledger-entry", "application/xml", gbk(&park_record("HWCS20260302001"))).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    assert!(app.wait_status(&id, "prov", "delivered", Duration::from_secs(10)).await);
    let sent = &partner.accepted()[0].body;
    assert_eq!(sent["type"], "ledger-entry");
    assert_eq!(sent["source"], "urn:test:cell");
    assert_eq!(sent["sourceid"], "HC-HWCS20260302001");
    assert_eq!(sent["subject"], "ledger:HWCS20260302001");
    assert_eq!(sent["mapping"], "park-xiamen-haicang/ledger-entry-in@v1");
    assert_eq!(
        sent["data"]["unit"]["usci"], "91350206MA2XK7P16K",
        "full-width input made half-width"
    );
    assert_eq!(sent["data"]["quantity"], json!({"value": "940", "unit": "kg"}));
    assert_eq!(sent["data"]["time"], "2026-03-02T10:15:00+08:00");
    // The same document again is a duplicate, not a second message.
    let (status, again) = post_document(&app, "ledger-entry", "application/xml", gbk(&park_record("HWCS20260302001"))).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)), "{again}");
}

#[tokio::test]
async fn broken_and_hostile_documents_get_clear_errors_and_the_hub_keeps_serving() {
    let app = TestApp::spawn(park_spec().config("[ingest]\nmax_body = \"64KiB\"")).await;
    let good = park_record("HWCS20260302009");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed", b"<TZJL><JLID>x</TZJL>".to_vec(), 400, "line 1"),
        (
            "doctype",
            format!("<!DOCTYPE TZJL [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><TZJL xmlns=\"{PARK_NS}\"><JLID>&e;</JLID></TZJL>")
                .into_bytes(),
            400,
            "DOCTYPE declarations are refused",
        ),
        (
            "entity",
            format!("<TZJL xmlns=\"{PARK_NS}\"><JLID>&lol;</JLID></TZJL>").into_bytes(),
            400,
            "entity &lol;",
        ),
        ("deep", ("<a>".repeat(200) + &"</a>".repeat(200)).into_bytes(), 400, "nested deeper"),
        ("wrong encoding", good.clone().into_bytes(), 400, "not valid GBK"),
        (
            "invalid utf-8",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><TZJL>\xff\xfe</TZJL>".to_vec(),
            400,
            "invalid UTF-8",
        ),
        (
            "oversized",
            format!("<TZJL xmlns=\"{PARK_NS}\"><QX>{}</QX></TZJL>", "x".repeat(70_000)).into_bytes(),
            413,
            "larger than",
        ),
        (
            "wrong root",
            format!("<Other xmlns=\"{PARK_NS}\"/>").into_bytes(),
            400,
            "root element is",
        ),
        (
            "missing fields",
            gbk(&good
                .replace("<PCBM>HWCS20260302009</PCBM>", "")
                .replace("<FWDM>398-004-22</FWDM>", "")),
            422,
            "required, but the input has no hc:PCBM",
        ),
        (
            "unknown waste code",
            gbk(&good.replace("398-004-22", "398-004-29")),
            422,
            "waste code",
        ),
    ];
    for (what, body, want_status, want_text) in cases {
        let (status, answer) = post_document(&app, "ledger-entry", "application/xml", body).await;
        assert_eq!(status, want_status, "{what}: {answer}");
        assert!(answer.to_string().contains(want_text), "{what}: wanted {want_text:?} in {answer}");
    }
    // Line and column point into the document.
    let (_, answer) = post_document(&app, "ledger-entry", "application/xml", b"<TZJL>\n  <a>\n</TZJL>".to_vec()).await;
    assert!(
        answer["errors"][0]["message"].as_str().unwrap_or("").starts_with("line 3, column"),
        "{answer}"
    );
    // Every failing rule is named with its output path.
    let (_, answer) = post_document(
        &app,
        "ledger-entry",
        "application/xml",
        gbk(&good.replace("<PCBM>HWCS20260302009</PCBM>", "").replace("<SSDM>MF0021</SSDM>", "")),
    )
    .await;
    let paths: Vec<&str> = answer["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/data/batch_code") && paths.contains(&"/data/facility_code"),
        "{answer}"
    );
    // Wrong media type, a type without a mapping.
    assert_eq!(post_document(&app, "ledger-entry", "application/json", b"{}".to_vec()).await.0, 415);
    assert_eq!(
        post_document(&app, "manifest-created", "application/xml", b"<a/>".to_vec()).await.0,
        404
    );
    // The hub still serves.
    let (status, body) = post_document(&app, "ledger-entry", "application/xml", gbk(&good)).await;
    assert_eq!(status, 202, "{body}");
}

/// A national destination gets XML rendered by its outbound mapping, and the
/// trace shows the rendered body.
#[tokio::test]
async fn a_destination_with_a_mapping_receives_its_own_format() {
    let partner = FakePartner::start().await;
    let spec = HubSpec::new()
        .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
        .destination(
            "nat",
            &partner.url,
            "\"manifest-created\"",
            "[outbound.mappings]\n\"manifest-created\" = \"national/manifest-out\"",
        );
    let app = TestApp::spawn(spec).await;
    let id = app.accept(&samples::manifest(7, "m-7")).await;
    assert!(app.wait_status(&id, "nat", "delivered", Duration::from_secs(10)).await);
    let req = &partner.accepted()[0];
    assert!(req.content_type.starts_with("application/xml"), "{}", req.content_type);
    assert!(req.raw.contains("<nx:ManifestNo>20263502000007</nx:ManifestNo>"), "{}", req.raw);
    assert!(req.raw.contains("<nx:WeightT>8.46</nx:WeightT>"), "{}", req.raw);
    assert_eq!(req.ce_id, id, "the hub's message id still travels in ce-id");
    let trace = app.trace(&id).await;
    let rendered = &trace["deliveries"][0]["rendered"];
    assert_eq!(rendered["mapping"], "national/manifest-out v1");
    assert_eq!(rendered["body"].as_str(), Some(req.raw.as_str()));
}

const OUT_V1: &str = r#"
[mapping]
message_type = "manifest-created"
direction = "outbound"
version = VERSION
effective_from = "EFFECTIVE"

[input]
format = "json"

[output]
format = "json"

[[rule]]
to = "no"
from = "/data/manifest_no"
required = true

[[rule]]
to = "approval"
from = "SOURCE"
required = true
"#;

fn write_mapping(dir: &std::path::Path, file: &str, version: u32, effective: &str, source: &str) {
    std::fs::create_dir_all(dir.join("p")).expect("mkdir");
    let text = OUT_V1
        .replace("VERSION", &version.to_string())
        .replace("EFFECTIVE", effective)
        .replace("SOURCE", source);
    std::fs::write(dir.join("p").join(file), text).expect("write mapping");
}

/// A mapping error dead-letters that message only; after a fix (a new
/// version), a replay with the accepted version fails again and a replay
/// with the current version goes through.
#[tokio::test]
async fn a_mapping_error_dead_letters_one_message_and_a_replay_uses_the_fixed_version() {
    let partner = FakePartner::start().await;
    let mappings = tempfile::tempdir().expect("tempdir");
    // v1 wants the approval number, which in-city manifests lack.
    write_mapping(mappings.path(), "out.toml", 1, "2026-01-01", "/data/cross_province_approval_no");
    let spec = |db: Option<String>| {
        let mut s = HubSpec::new()
            .config(&format!("[mappings]\ndir = \"{}\"", mappings.path().display()))
            .destination(
                "p",
                &partner.url,
                "\"manifest-created\"",
                "[outbound.mappings]\n\"manifest-created\" = \"p/out\"",
            );
        s.database = db;
        s
    };
    // The database outlives the first hub (a hub's own temp folder does not).
    let db_dir = tempfile::tempdir().expect("tempdir");
    let database = crate::support::fresh_database(db_dir.path()).await;
    let app = TestApp::spawn(spec(Some(database.clone()))).await;
    let broken = app.accept(&samples::manifest(1, "a")).await;
    let mut fine = samples::manifest(2, "b");
    fine["data"]["cross_province_approval_no"] = json!("闽环固转〔2026〕0001号");
    fine["data"]["transfer_type"] = json!("CROSS_PROVINCE");
    let fine = app.accept(&fine).await;
    assert!(app.wait_status(&broken, "p", "dead", Duration::from_secs(10)).await);
    assert!(app.wait_status(&fine, "p", "delivered", Duration::from_secs(10)).await);
    let trace = app.trace(&broken).await;
    let error = trace["deliveries"][0]["last_error"].as_str().unwrap_or("");
    assert!(error.contains("mapping p/out v1 failed") && error.contains("/approval"), "{trace}");
    assert!(trace["deliveries"][0]["rendered"]["error"].is_string(), "{trace}");
    app.stop().await.expect("stop");

    // The fix: version 2 falls back to the plan filing number, in force from now.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::fs::write(
        mappings.path().join("p/out.v2.toml"),
        OUT_V1.replace("VERSION", "2").replace("EFFECTIVE", &now).replace(
            "from = \"SOURCE\"",
            "from = [\"/data/cross_province_approval_no\", \"/data/plan_filing_no\"]",
        ),
    )
    .expect("write v2");
    let app = TestApp::spawn(spec(Some(database))).await;
    let delivery = trace["deliveries"][0]["id"].as_str().expect("delivery id").to_string();
    let (status, _) = app.op_post(&format!("/api/v1/deliveries/{delivery}/replay"), &json!({})).await;
    assert_eq!(status, 200);
    assert!(
        app.wait_status(&broken, "p", "dead", Duration::from_secs(10)).await,
        "the accepted version still fails"
    );
    let (status, _) = app
        .op_post(&format!("/api/v1/deliveries/{delivery}/replay?mappings=current"), &json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(app.wait_status(&broken, "p", "delivered", Duration::from_secs(10)).await);
    let last = partner.accepted().into_iter().last().expect("delivered");
    assert_eq!(last.body["approval"], "HWGLJH-350206-2026-0045");
    assert_eq!(app.trace(&broken).await["deliveries"][0]["rendered"]["mapping"], "p/out v2");
}

/// The hub refuses to start on a broken mapping and names file and line.
#[tokio::test]
async fn the_hub_refuses_to_start_on_a_broken_mapping() {
    let mappings = tempfile::tempdir().expect("tempdir");
    write_mapping(mappings.path(), "out.toml", 1, "2026-01-01", "/data/no_such_field");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = HubSpec::new().config(&format!("[mappings]\ndir = \"{}\"", mappings.path().display()));
    let digest = "0".repeat(64);
    crate::support::write_config_dir(dir.path(), "sqlite://unused.db", &digest, &digest, &spec);
    let loaded = wastehub::config::load_with(dir.path(), &Default::default()).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let err = wastehub::run(loaded, listener, Default::default())
        .await
        .expect_err("must not start");
    let text = err.to_string();
    assert!(text.contains("out.toml:21:") && text.contains("no_such_field"), "{text}");
}

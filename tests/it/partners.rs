//! The partner registry: lifecycle through the admin API, sandbox isolation,
//! conformance runs, go-live, suspension, key rotation, signatures and the
//! audit trail.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_partner::FakePartner;
use crate::support::registry::{self, post_as};
use crate::support::{HubSpec, TestApp, eventually, samples};

const PARK: &str = "park-xiamen-huli";
const SOURCE: &str = "urn:wastehub:partner:park-xiamen-huli";

async fn hub_with_destination(partner: &FakePartner) -> TestApp {
    TestApp::spawn(HubSpec::new().destination("provincial-test", &partner.url, "\"ledger-entry\", \"manifest-created\"", "")).await
}

fn register_body() -> Value {
    json!({
        "id": PARK,
        "name": "厦门湖里园区细胞平台",
        "division_code": "350206",
        "message_types": ["ledger-entry", "manifest-created"],
    })
}

/// A canonical event as the registered park sends it.
fn park_event(mut event: Value, id: &str) -> Value {
    event["source"] = json!(SOURCE);
    event["id"] = json!(id);
    event
}

async fn register(app: &TestApp) -> String {
    let (s, created) = app.op_post("/api/v1/partners", &register_body()).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["partner"]["status"], "sandbox");
    assert_eq!(created["partner"]["source"], SOURCE);
    created["api_key"].as_str().expect("api key shown once").to_string()
}

async fn production_messages(app: &TestApp) -> usize {
    registry::messages_from(app, SOURCE).await.len()
}

#[tokio::test]
async fn registration_refuses_bad_requests_with_every_field_error() {
    let partner = FakePartner::start().await;
    let app = hub_with_destination(&partner).await;
    let (s, body) = app
        .op_post(
            "/api/v1/partners",
            &json!({
                "id": "Bad_Id",
                "name": "",
                "division_code": "359999",
                "message_types": ["ledger-entry", "no-such-type"],
                "mappings": {"manifest-created": "park-xiamen-haicang/ledger-entry-in"},
                "signing": "md5",
                "callback_url": "ftp://x",
            }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    for p in [
        "/id",
        "/name",
        "/division_code",
        "/message_types/1",
        "/mappings/manifest-created",
        "/signing",
        "/callback_url",
    ] {
        assert!(paths.contains(&p), "missing error at {p}: {body}");
    }
    // A connector's name is not free, and an id is registered once.
    let mut taken = register_body();
    taken["id"] = json!("cell");
    assert_eq!(app.op_post("/api/v1/partners", &taken).await.0, 422);
    register(&app).await;
    assert_eq!(app.op_post("/api/v1/partners", &register_body()).await.0, 409);
    // The operator token is required.
    let r = app
        .client
        .get(format!("{}/api/v1/partners", app.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn sandbox_traffic_is_checked_like_production_and_never_forwarded() {
    let partner = FakePartner::start().await;
    let app = hub_with_destination(&partner).await;
    let key = register(&app).await;

    // Valid: answered 202 with `sandbox`, kept, not routed.
    let good = park_event(samples::ledger("L-1"), "L-1");
    let (s, body) = post_as(&app, &key, &good).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["sandbox"], true);
    assert!(body["deliveries"].as_array().expect("a list").is_empty());

    // Invalid: the same detailed errors as production.
    let mut bad = park_event(samples::ledger("L-2"), "L-2");
    bad["data"]["quantity"] = json!("lots");
    let (s, body) = post_as(&app, &key, &bad).await;
    assert_eq!(s, 422, "{body}");
    assert!(!body["errors"].as_array().expect("a list").is_empty());

    // Not one of its types, outside its jurisdiction, a foreign source: 403.
    let mut other_type = park_event(samples::envelope("weighing", "W-1", "x", json!({})), "W-1");
    other_type["source"] = json!(SOURCE);
    assert_eq!(post_as(&app, &key, &other_type).await.0, 403);
    let mut elsewhere = park_event(samples::ledger("L-3"), "L-3");
    elsewhere["jurisdiction"] = json!("350102");
    let (s, body) = post_as(&app, &key, &elsewhere).await;
    assert_eq!((s, body["code"].as_str()), (403, Some("jurisdiction_not_allowed")), "{body}");
    let foreign = samples::ledger("L-4");
    assert_eq!(post_as(&app, &key, &foreign).await.0, 403);

    // Everything is in the sandbox log, with its errors…
    let (_, log) = app.op_get(&format!("/api/v1/partners/{PARK}/sandbox")).await;
    let rows = log.as_array().expect("a list");
    assert_eq!(rows.len(), 5, "{log}");
    assert_eq!(rows.iter().filter(|r| r["outcome"] == "accepted").count(), 1);
    let refused = rows.iter().find(|r| r["source_event_id"] == "L-2").expect("L-2 recorded");
    assert_eq!(refused["http_status"], 422);
    assert!(
        refused["errors"].as_str().expect("a string").contains("/data/quantity"),
        "{refused}"
    );

    // …and nothing reached production: no message, no delivery.
    assert_eq!(production_messages(&app).await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(partner.requests().is_empty(), "a sandbox message was forwarded");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_journey_from_sandbox_through_conformance_to_live_delivery() {
    let partner = FakePartner::start().await;
    let app = hub_with_destination(&partner).await;
    let key = register(&app).await;

    // Go-live needs a conformance run.
    let (s, body) = app.op_post(&format!("/api/v1/partners/{PARK}/go-live"), &json!({})).await;
    assert_eq!((s, body["code"].as_str()), (409, Some("conformance_required")), "{body}");

    // Sandbox traffic with an error; the conformance run fails and says why.
    let mut bad = park_event(samples::ledger("L-1"), "L-1");
    bad["data"]["waste_code"] = json!("999-999-99");
    assert_eq!(post_as(&app, &key, &bad).await.0, 422);
    let (s, report) = app.op_post(&format!("/api/v1/partners/{PARK}/conformance"), &json!({})).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["verdict"], "fail");
    let failing = report["examples"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["passed"] == false)
        .expect("a failing example");
    assert!(
        !failing["errors"].as_array().expect("a list").is_empty(),
        "per-example errors: {report}"
    );
    assert!(
        report["findings"]
            .as_array()
            .expect("a list")
            .iter()
            .any(|f| f.as_str().expect("a string").starts_with("manifest-created: no passing example")),
        "{report}"
    );
    // The HTML page shows the same errors, escaped.
    let run = report["id"].as_str().expect("a string");
    let html = app
        .client
        .get(format!("{}/api/v1/conformance/{run}/report.html", app.base))
        .bearer_auth(&app.operator)
        .send()
        .await
        .expect("request");
    assert_eq!(html.status().as_u16(), 200);
    let page = html.text().await.expect("text");
    assert!(page.contains("FAIL") && page.contains("/data/waste_code"), "{page}");

    // Fixed: both types pass in sandbox (one sent, one as a sample file).
    let good = park_event(samples::ledger("L-1"), "L-1");
    assert_eq!(post_as(&app, &key, &good).await.0, 202);
    let sample = park_event(samples::manifest(7, "M-7"), "M-7");
    let b64 = base64_encode(sample.to_string().as_bytes());
    let (_, report) = app
        .op_post(
            &format!("/api/v1/partners/{PARK}/conformance"),
            &json!({"samples": [{"name": "manifest-7.json", "body_base64": b64}]}),
        )
        .await;
    assert_eq!(report["verdict"], "pass", "{report}");

    // Live: the same event id again is new in production (the sandbox
    // never shared its dedupe), routed and delivered.
    let (s, live) = app.op_post(&format!("/api/v1/partners/{PARK}/go-live"), &json!({})).await;
    assert_eq!((s, live["status"].as_str()), (200, Some("live")), "{live}");
    let (s, body) = post_as(&app, &key, &good).await;
    assert_eq!(s, 202, "{body}");
    assert!(body.get("sandbox").is_none() && body.get("duplicate").is_none(), "{body}");
    let id = body["id"].as_str().expect("a string").to_string();
    assert!(app.wait_status(&id, "provincial-test", "delivered", Duration::from_secs(10)).await);
    assert_eq!(partner.accepted().len(), 1);

    // The audit trail names who did what.
    let (_, audit) = app.op_get(&format!("/api/v1/partners/{PARK}/audit")).await;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(actions, ["partner.go_live", "partner.add"], "{audit}");
    assert!(audit.as_array().expect("a list").iter().all(|a| a["actor"] == "operator"));
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn go_live_override_needs_a_reason_and_is_audited() {
    let partner = FakePartner::start().await;
    let app = hub_with_destination(&partner).await;
    register(&app).await;
    let path = format!("/api/v1/partners/{PARK}/go-live");
    assert_eq!(app.op_post(&path, &json!({"override_reason": " "})).await.0, 422);
    let (s, _) = app.op_post(&path, &json!({"override_reason": "监管部门书面同意先行上线"})).await;
    assert_eq!(s, 200);
    let (_, audit) = app.op_get(&format!("/api/v1/partners/{PARK}/audit")).await;
    let detail: Value = serde_json::from_str(audit[0]["detail"].as_str().expect("a string")).expect("JSON detail");
    assert_eq!(detail["override"], true);
    assert_eq!(detail["reason"], "监管部门书面同意先行上线");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_suspended_partner_is_refused_until_resumed() {
    let partner = FakePartner::start().await;
    let app = hub_with_destination(&partner).await;
    let key = register(&app).await;
    let ev = park_event(samples::ledger("L-1"), "L-1");
    assert_eq!(post_as(&app, &key, &ev).await.0, 202);
    let (s, v) = app
        .op_post(&format!("/api/v1/partners/{PARK}/suspend"), &json!({"reason": "密钥疑似泄露"}))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("suspended")), "{v}");
    let (s, body) = post_as(&app, &key, &ev).await;
    assert_eq!((s, body["code"].as_str()), (403, Some("partner_suspended")), "{body}");
    // Suspending twice is a conflict; resuming restores sandbox.
    assert_eq!(
        app.op_post(&format!("/api/v1/partners/{PARK}/suspend"), &json!({"reason": "x"}))
            .await
            .0,
        409
    );
    let (s, v) = app.op_post(&format!("/api/v1/partners/{PARK}/resume"), &json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("sandbox")), "{v}");
    assert_eq!(post_as(&app, &key, &ev).await.0, 202);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_rotated_key_keeps_working_for_the_overlap_only() {
    let partner = FakePartner::start().await;
    let app = hub_with_destination(&partner).await;
    let old = register(&app).await;
    let (s, rotated) = app
        .op_post(&format!("/api/v1/partners/{PARK}/keys"), &json!({"overlap": "2s"}))
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["api_key"].as_str().expect("a string").to_string();
    assert_ne!(new, old);
    let ev = park_event(samples::ledger("L-1"), "L-1");
    assert_eq!(post_as(&app, &old, &ev).await.0, 202, "old key inside the overlap");
    assert_eq!(post_as(&app, &new, &ev).await.0, 202);
    assert!(
        eventually(Duration::from_secs(10), || async { post_as(&app, &old, &ev).await.0 == 401 }).await,
        "the old key outlived its overlap"
    );
    assert_eq!(post_as(&app, &new, &ev).await.0, 202);
    // Overlaps are bounded.
    assert_eq!(
        app.op_post(&format!("/api/v1/partners/{PARK}/keys"), &json!({"overlap": "365d"}))
            .await
            .0,
        422
    );
    let (_, detail) = app.op_get(&format!("/api/v1/partners/{PARK}")).await;
    assert_eq!(detail["keys"].as_array().expect("a list").len(), 2);
    assert!(detail["keys"][0].get("key_sha256").is_none(), "digests are never shown");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_signing_partner_must_sign_each_request() {
    let partner = FakePartner::start().await;
    let app = hub_with_destination(&partner).await;
    let mut body = register_body();
    body["signing"] = json!("hmac-sm3");
    let (s, created) = app.op_post("/api/v1/partners", &body).await;
    assert_eq!(s, 201, "{created}");
    let key = created["api_key"].as_str().expect("a string");
    let secret = created["signing_secret"].as_str().expect("secret shown once");
    let (_, shown) = app.op_get(&format!("/api/v1/partners/{PARK}")).await;
    assert!(!shown.to_string().contains(secret), "the secret is never shown again");

    let ev = park_event(samples::ledger("L-1"), "L-1").to_string();
    let send = |sig: Option<(i64, String)>| {
        let mut r = app
            .client
            .post(format!("{}/api/v1/messages", app.base))
            .bearer_auth(key)
            .header("content-type", "application/cloudevents+json")
            .body(ev.clone());
        if let Some((ts, s)) = sig {
            r = r.header("x-wastehub-timestamp", ts.to_string()).header("x-wastehub-signature", s);
        }
        async move { r.send().await.expect("request").status().as_u16() }
    };
    assert_eq!(send(None).await, 401);
    let signer = wastehub::connectors::signature::Signer::new(&wastehub::config::connector::SignatureConfig {
        algorithm: "hmac-sm3".into(),
        secret: wastehub::config::Secret::new(secret),
        key_id: None,
    });
    let now = chrono::Utc::now().timestamp();
    assert_eq!(send(Some((now, signer.header(now, "/api/v1/messages", ev.as_bytes())))).await, 202);
    assert_eq!(send(Some((now, signer.header(now, "/api/v1/messages", b"{}")))).await, 401);
    assert_eq!(
        send(Some((now - 3600, signer.header(now - 3600, "/api/v1/messages", ev.as_bytes())))).await,
        401
    );
    app.stop().await.expect("clean stop");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

//! Operations API: operator auth, trace, list with filters and cursors,
//! probes, metrics, and the OpenAPI document kept in step with the code.

use std::time::Duration;

use crate::support::samples::{ledger, manifest};
use crate::support::{FakePartner, HubSpec, TestApp, repo};

#[tokio::test]
async fn operator_endpoints_need_the_operator_token() {
    let p = FakePartner::start().await;
    let app = TestApp::spawn(HubSpec::new().destination("prov", &p.url, "\"manifest-*\"", "")).await;
    for path in ["/api/v1/messages", "/api/v1/messages/msg_x", "/metrics"] {
        let r = app.client.get(format!("{}{path}", app.base)).send().await.expect("send");
        assert_eq!(r.status(), 401, "{path} without a token");
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&app.key)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "{path} with a partner key");
    }
    let r = app
        .client
        .post(format!("{}/api/v1/deliveries/replay", app.base))
        .json(&serde_json::json!({"destination": "prov"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    for path in ["/healthz", "/readyz"] {
        let r = app.client.get(format!("{}{path}", app.base)).send().await.expect("send");
        assert_eq!(r.status(), 200, "{path} is open to probes");
    }
}

#[tokio::test]
async fn lists_with_filters_and_cursor_pagination() {
    let p = FakePartner::start().await;
    let app = TestApp::spawn(HubSpec::new().destination("prov", &p.url, "\"manifest-*\"", "")).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.accept(&manifest(n, &format!("m{n}"))).await);
    }
    app.accept(&ledger("l1")).await;
    let (s, page1) = app.op_get("/api/v1/messages?type=manifest-created&limit=2").await;
    assert_eq!(s, 200);
    let got: Vec<&str> = page1["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()], "newest first");
    let cursor = page1["next_cursor"].as_str().expect("cursor");
    let (_, page2) = app
        .op_get(&format!("/api/v1/messages?type=manifest-created&limit=2&cursor={cursor}"))
        .await;
    let got: Vec<&str> = page2["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let (_, by_subject) = app.op_get("/api/v1/messages?subject=manifest:20263502000003").await;
    assert_eq!(by_subject["items"].as_array().map(Vec::len), Some(1));
    let (_, by_source) = app.op_get("/api/v1/messages?source=urn:test:cell&limit=100").await;
    assert_eq!(by_source["items"].as_array().map(Vec::len), Some(6));
    let (s, _) = app.op_get("/api/v1/messages?status=bogus").await;
    assert_eq!(s, 400);
    let (s, _) = app.op_get("/api/v1/messages?since=yesterday").await;
    assert_eq!(s, 400);
    let (_, future) = app.op_get("/api/v1/messages?since=2099-01-01T00:00:00Z").await;
    assert_eq!(future["items"].as_array().map(Vec::len), Some(0));
    let (s, _) = app.op_get("/api/v1/messages/msg_nope").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn metrics_report_ingest_and_delivery_outcomes() {
    let p = FakePartner::start().await;
    let app = TestApp::spawn(HubSpec::new().destination("metricsdest", &p.url, "\"manifest-*\"", "")).await;
    let id = app.accept(&manifest(1, "e1")).await;
    assert!(app.wait_status(&id, "metricsdest", "delivered", Duration::from_secs(10)).await);
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&app.operator)
        .send()
        .await
        .expect("send");
    let text = r.text().await.expect("text");
    assert!(text.contains("wastehub_ingest_events_total"), "{text}");
    assert!(
        text.contains("wastehub_delivery_attempts_total{destination=\"metricsdest\",outcome=\"delivered\"}"),
        "{text}"
    );
    assert!(
        text.contains("wastehub_delivery_duration_seconds_bucket{destination=\"metricsdest\""),
        "{text}"
    );
}

#[test]
fn committed_openapi_document_matches_the_code() {
    let committed = std::fs::read_to_string(repo().join("contracts/hub-api/openapi.json")).unwrap_or_default();
    let generated = wastehub::admin::openapi::document();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "contracts/hub-api/openapi.json is out of date; regenerate it with `cargo run -- openapi --output contracts/hub-api/openapi.json`"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).expect("json");
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
    for path in [
        "/api/v1/messages",
        "/api/v1/messages/{id}",
        "/api/v1/deliveries/{id}/replay",
        "/api/v1/deliveries/replay",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the document");
    }
}

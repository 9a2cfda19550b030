//! Ingest: authentication, limits, validation, duplicates, batches, unrouted.

use serde_json::{Value, json};

use crate::support::samples::{envelope, ledger, manifest};
use crate::support::{FakePartner, HubSpec, TestApp};

async fn hub() -> (TestApp, FakePartner) {
    let p = FakePartner::start().await;
    let app = TestApp::spawn(
        HubSpec::new()
            .destination("prov", &p.url, "\"manifest-*\"", "")
            .config("[ingest]\nmax_body = \"64KiB\"\nmax_batch_events = 3"),
    )
    .await;
    (app, p)
}

async fn post_raw(app: &TestApp, key: Option<&str>, ct: &str, body: String) -> (u16, Value) {
    let mut r = app
        .client
        .post(format!("{}/api/v1/messages", app.base))
        .header("content-type", ct)
        .body(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let resp = r.send().await.expect("send");
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rejects_missing_and_unknown_keys_with_401() {
    let (app, _) = hub().await;
    let ev = manifest(1, "e1").to_string();
    let (s, b) = post_raw(&app, None, "application/cloudevents+json", ev.clone()).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("unauthorized")));
    let (s, _) = post_raw(&app, Some("whk_wrong"), "application/cloudevents+json", ev).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn rejects_oversized_bodies_and_batches_with_413() {
    let (app, _) = hub().await;
    let mut ev = manifest(1, "e1");
    ev["data"]["emergency_measures"] = json!("x".repeat(70 * 1024));
    let (s, b) = post_raw(&app, Some(&app.key), "application/cloudevents+json", ev.to_string()).await;
    assert_eq!((s, b["code"].as_str()), (413, Some("payload_too_large")));
    let batch = json!([manifest(1, "a"), manifest(2, "b"), manifest(3, "c"), manifest(4, "d")]);
    let (s, _) = post_raw(&app, Some(&app.key), "application/cloudevents-batch+json", batch.to_string()).await;
    assert_eq!(s, 413);
    let (list_status, list) = app.op_get("/api/v1/messages").await;
    assert_eq!(list_status, 200);
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "nothing accepted from refused requests"
    );
}

#[tokio::test]
async fn answers_malformed_json_and_wrong_media_types_clearly() {
    let (app, _) = hub().await;
    let (s, b) = post_raw(&app, Some(&app.key), "application/cloudevents+json", "{\"specversion\": ".into()).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("malformed_json")));
    assert!(b["detail"].as_str().unwrap_or("").contains("line 1"), "{b}");
    let (s, _) = post_raw(&app, Some(&app.key), "text/xml", "<a/>".into()).await;
    assert_eq!(s, 415);
}

#[tokio::test]
async fn lists_every_validation_error_with_its_json_pointer() {
    let (app, _) = hub().await;
    let mut ev = manifest(1, "e1");
    ev.as_object_mut().expect("obj").remove("subject");
    ev["jurisdiction"] = json!("35");
    ev["data"]["lines"][0]["waste_code"] = json!("90004149");
    ev["data"].as_object_mut().expect("obj").remove("emergency_measures");
    let r = app.post(&ev).await;
    assert_eq!(r.status(), 422);
    let b: Value = r.json().await.expect("json");
    let paths = error_paths(&b);
    assert!(paths.contains(&"/subject"), "{paths:?}");
    assert!(paths.contains(&"/jurisdiction"), "{paths:?}");
    // Envelope errors are reported first; fix them to see body errors.
    ev["subject"] = json!("manifest:1");
    ev["jurisdiction"] = json!("350206");
    let b: Value = app.post(&ev).await.json().await.expect("json");
    let paths = error_paths(&b);
    assert!(paths.contains(&"/data/lines/0/waste_code"), "{paths:?}");
    assert!(
        paths.contains(&"/data"),
        "missing emergency_measures is reported on /data: {paths:?}"
    );
}

#[tokio::test]
async fn refuses_an_unknown_type_and_another_partners_source() {
    let (app, _) = hub().await;
    let r = app.post(&envelope("no-such-type", "e1", "x:1", json!({}))).await;
    assert_eq!(r.status(), 422);
    let mut ev = manifest(1, "e2");
    ev["source"] = json!("urn:fj:provincial-swms");
    let r = app.post(&ev).await;
    assert_eq!(r.status(), 403);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["code"], "source_not_allowed");
}

#[tokio::test]
async fn answers_a_duplicate_with_the_original_receipt() {
    let (app, _) = hub().await;
    let first = app.post(&manifest(1, "dup-1")).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["deliveries"][0]["destination"], "prov");
    let again = app.post(&manifest(1, "dup-1")).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["received_at"], first["received_at"]);
    assert_eq!(again["deliveries"], first["deliveries"]);
}

#[tokio::test]
async fn batch_gives_one_result_per_event() {
    let (app, _) = hub().await;
    let mut bad = manifest(2, "b2");
    bad["time"] = json!("not a time");
    let batch = json!([manifest(1, "b1"), bad, manifest(1, "b1")]);
    let (s, b) = post_raw(&app, Some(&app.key), "application/cloudevents-batch+json", batch.to_string()).await;
    assert_eq!(s, 200);
    let results = b["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["status"], 202);
    assert_eq!(results[1]["status"], 422);
    assert_eq!(results[1]["error"]["errors"][0]["path"], "/time");
    assert_eq!(results[2]["status"], 200, "same id in one batch is a duplicate");
    assert_eq!(results[2]["receipt"]["id"], results[0]["receipt"]["id"]);
}

#[tokio::test]
async fn keeps_an_unrouted_message_and_marks_it() {
    let (app, _) = hub().await;
    let id = app.accept(&ledger("l1")).await;
    let t = app.trace(&id).await;
    assert_eq!(t["routed"], false);
    assert_eq!(t["deliveries"].as_array().map(Vec::len), Some(0));
    let (_, list) = app.op_get("/api/v1/messages?status=unrouted").await;
    assert_eq!(list["items"][0]["id"], id.as_str());
}

/// The `path` of every field error in a 422 body.
fn error_paths(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect()
}

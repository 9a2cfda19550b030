//! Bounded resources: a full backlog answers 429 with Retry-After and
//! accepts nothing.

use serde_json::Value;

use crate::support::samples::manifest;
use crate::support::{FakePartner, HubSpec, Reply, TestApp};

#[tokio::test]
async fn full_backlog_answers_429_with_retry_after_and_keeps_nothing() {
    let p = FakePartner::scripted(|_, _| Reply::status(503)).await;
    let app = TestApp::spawn(
        HubSpec::new()
            .destination("down", &p.url, "\"manifest-*\"", "retry_schedule = \"0s 1h\"")
            .config("[ingest]\nmax_backlog = 3\nbacklog_retry_after = \"7s\""),
    )
    .await;
    for n in 0..3 {
        app.accept(&manifest(n, &format!("e{n}"))).await;
    }
    let r = app.post(&manifest(9, "e9")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["code"], "backlog_full");
    let (_, list) = app.op_get("/api/v1/messages?limit=100").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3), "the refused event was not stored");
    // Once the backlog drains (here: an operator would replay later; the
    // partner recovers and the deliveries finish), ingest accepts again.
    p.set_script(|_, _| Reply::status(200));
}

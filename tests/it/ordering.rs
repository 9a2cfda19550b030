//! Per-subject order: one failing subject holds only itself.

use std::time::Duration;

use crate::support::samples::manifest;
use crate::support::{FakePartner, HubSpec, Reply, TestApp, eventually};

#[tokio::test]
async fn a_failing_subject_holds_only_itself_and_order_is_kept() {
    // Manifest 1 fails until the script changes; manifest 2 always succeeds.
    let p = FakePartner::scripted(|req, _| {
        if req.subject().ends_with("000001") {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    })
    .await;
    // A long schedule keeps the failing head in `retrying`, once a second.
    let app = TestApp::spawn(HubSpec::new().destination(
        "prov",
        &p.url,
        "\"manifest-*\"",
        "retry_schedule = \"0s 300ms 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s\"",
    ))
    .await;
    let mut stuck = Vec::new();
    let mut flowing = Vec::new();
    for i in 0..4 {
        stuck.push(app.accept(&manifest(1, &format!("s{i}"))).await);
        flowing.push(app.accept(&manifest(2, &format!("f{i}"))).await);
    }
    for id in &flowing {
        assert!(
            app.wait_status(id, "prov", "delivered", Duration::from_secs(10)).await,
            "other subjects flow"
        );
    }
    assert!(app.wait_status(&stuck[0], "prov", "retrying", Duration::from_secs(5)).await);
    for id in &stuck[1..] {
        let st = app.delivery_status(id, "prov").await;
        assert_eq!(st, "held", "behind a failing head");
    }
    let (_, held) = app.op_get("/api/v1/messages?status=held").await;
    assert!(!held["items"].as_array().expect("items").is_empty(), "held deliveries are visible");
    // The partner recovers: the head's next retry succeeds, then the rest follow in order.
    p.set_script(|_, _| Reply::status(200));
    for id in &stuck {
        assert!(app.wait_status(id, "prov", "delivered", Duration::from_secs(10)).await);
    }
    let order: Vec<String> = p
        .accepted()
        .iter()
        .filter(|r| r.subject().ends_with("000001"))
        .map(|r| r.ce_id.clone())
        .collect();
    assert_eq!(order, stuck, "subject order equals acceptance order");
}

#[tokio::test]
async fn many_subjects_keep_their_order_under_concurrency() {
    let p = FakePartner::scripted(|_, i| if i % 7 == 3 { Reply::status(503) } else { Reply::status(200) }).await;
    let app = TestApp::spawn(HubSpec::new().destination(
        "prov",
        &p.url,
        "\"manifest-*\"",
        "concurrency = 16\nretry_schedule = \"0s 100ms 100ms 100ms 100ms 100ms 100ms 100ms\"",
    ))
    .await;
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for round in 0..10 {
        for subject in 0..10u32 {
            let id = app.accept(&manifest(subject, &format!("m{round}-{subject}"))).await;
            expected.entry(format!("manifest:20263502{subject:06}")).or_default().push(id);
        }
    }
    let ok = eventually(Duration::from_secs(30), || async {
        let got: std::collections::BTreeSet<String> = p.accepted().into_iter().map(|r| r.ce_id).collect();
        got.len() == 100
    })
    .await;
    assert!(ok, "all 100 delivered");
    for (subject, ids) in expected {
        let mut seen: Vec<String> = p
            .accepted()
            .iter()
            .filter(|r| r.subject() == subject)
            .map(|r| r.ce_id.clone())
            .collect();
        seen.dedup();
        assert_eq!(seen, ids, "order for {subject}");
    }
}

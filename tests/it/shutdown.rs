//! Graceful shutdown: attempts in flight finish, then `run` returns Ok.

use std::time::Duration;

use crate::support::samples::manifest;
use crate::support::{FakePartner, HubSpec, Reply, TestApp};

#[tokio::test]
async fn shutdown_finishes_attempts_in_flight_then_returns() {
    let p = FakePartner::scripted(|_, _| Reply::status(200).delay(Duration::from_millis(800))).await;
    // The store outlives the first hub, so a second one can look at it.
    let dir = tempfile::tempdir().expect("dir");
    let db = crate::support::fresh_database(dir.path()).await;
    let spec = HubSpec {
        database: Some(db.clone()),
        ..HubSpec::new()
            .destination("slow", &p.url, "\"manifest-*\"", "")
            .config("[server]\nshutdown_grace = \"10s\"")
    };
    let app = TestApp::spawn(spec).await;
    let id = app.accept(&manifest(1, "e1")).await;
    // Wait until the attempt is under way, then stop.
    let started = crate::support::eventually(Duration::from_secs(5), || async {
        app.delivery_status(&id, "slow").await == "in_flight"
    })
    .await;
    assert!(started, "attempt started");
    let t0 = std::time::Instant::now();
    app.stop().await.expect("run returned Ok");
    assert!(t0.elapsed() < Duration::from_secs(9), "stopped within the grace period");
    assert_eq!(p.accepted().len(), 1, "the attempt in flight completed");
    // The outcome was recorded before exit: a new hub on the same store sees it delivered.
    let spec = HubSpec {
        database: Some(db),
        ..HubSpec::new().destination("slow", &p.url, "\"manifest-*\"", "")
    };
    let again = TestApp::spawn(spec).await;
    assert_eq!(again.delivery_status(&id, "slow").await, "delivered");
    assert_eq!(p.requests().len(), 1, "not sent again after restart");
    drop(dir);
}

//! Several hub processes on one PostgreSQL database share the work: each
//! delivery goes out once (no failures, so no retries), order per subject holds.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::support::samples::manifest;
use crate::support::{FakePartner, HubSpec, Reply, TestApp, eventually, skip_without_postgres};

#[tokio::test]
async fn two_processes_share_deliveries_without_doubles_and_keep_order() {
    if skip_without_postgres("two_processes_share_deliveries_without_doubles_and_keep_order") {
        return;
    }
    let p = FakePartner::scripted(|_, _| Reply::status(200).delay(Duration::from_millis(10))).await;
    let spec = || HubSpec::new().destination("prov", &p.url, "\"manifest-*\"", "concurrency = 4");
    let a = TestApp::spawn(spec()).await;
    let b = a.sibling(&spec()).await;
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..20 {
        for subject in 0..10u32 {
            // Alternate the hub that accepts; a subject's events are sent one
            // after another, so acceptance order is the order sent.
            let hub = if (round + subject) % 2 == 0 { &a } else { &b };
            let id = hub.accept(&manifest(subject, &format!("pg{round}-{subject}"))).await;
            expected.entry(format!("manifest:20263502{subject:06}")).or_default().push(id);
        }
    }
    let done = eventually(Duration::from_secs(60), || async { p.accepted().len() >= 200 }).await;
    assert!(done, "all 200 delivered ({} so far)", p.accepted().len());
    let reqs = p.accepted();
    let ids: HashSet<&str> = reqs.iter().map(|r| r.ce_id.as_str()).collect();
    assert_eq!(ids.len(), 200, "200 distinct messages");
    assert_eq!(reqs.len(), 200, "no delivery was sent twice");
    for (subject, want) in &expected {
        let got: Vec<String> = reqs.iter().filter(|r| r.subject() == subject).map(|r| r.ce_id.clone()).collect();
        assert_eq!(&got, want, "order for {subject}");
    }
    let mut nodes = HashSet::new();
    for id in expected.values().flatten().take(200) {
        let t = a.trace(id).await;
        if let Some(n) = t["deliveries"][0]["attempts"][0]["node"].as_str() {
            nodes.insert(n.to_string());
        }
    }
    assert_eq!(nodes.len(), 2, "both processes delivered: {nodes:?}");
}

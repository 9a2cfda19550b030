//! Journey 1, national reporting: a cell platform posts manifest events and
//! ledger entries; the provincial system receives JSON and the national
//! system (its simulator) receives XML through OAuth2 at its rate limit,
//! each acknowledged with a stored receipt; an outage builds a backlog that
//! drains after recovery with order per manifest kept and nothing lost.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use wastehub::sim::national::{NationalConfig, NationalSim};
use wastehub::sim::provincial::{ProvincialConfig, ProvincialSim};

use crate::support::{HubSpec, TestApp, eventually, repo, samples};

fn national_connector(sim: &NationalSim, secret: &str, schedule: &str) -> String {
    format!(
        r#"name = "national"
kind = "http_xml"
[outbound]
url = "{url}"
timeout = "2s"
concurrency = 8
rate_limit = {{ per_second = 50, burst = 10 }}
retry_schedule = "{schedule}"
jitter = 0.0
[outbound.oauth2]
token_url = "{token}"
client_id = "wastehub-fj"
client_secret = "{secret}"
[outbound.ack]
success_statuses = [200]
namespaces = {{ nx = "urn:wastehub:proposed:national:v1" }}
body_field = "/nx:Code"
ack_codes = ["0000"]
receipt_field = "/nx:ReceiptId"
[outbound.mappings]
"manifest-created" = "national/manifest-out"
"manifest-updated" = "national/manifest-out"
"ledger-entry" = "national/ledger-entry-out"
[[routes]]
types = ["manifest-created", "manifest-updated", "ledger-entry"]
"#,
        url = sim.url("/exchange"),
        token = sim.url("/oauth/token"),
    )
}

async fn setup(schedule: &str) -> (TestApp, NationalSim, ProvincialSim, CancellationToken) {
    let stop = CancellationToken::new();
    let sim = NationalSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        NationalConfig::default(),
        stop.clone(),
    )
    .expect("simulator");
    let provincial = ProvincialSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        ProvincialConfig::default(),
        stop.clone(),
    )
    .expect("provincial simulator");
    let mut spec = HubSpec::new()
        .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
        .destination(
            "provincial",
            &provincial.url("/events"),
            "\"manifest-created\", \"manifest-updated\", \"ledger-entry\"",
            "[outbound.mappings]\n\"manifest-created\" = \"provincial/manifest-out\"\n\"manifest-updated\" = \"provincial/manifest-out\"\n\"ledger-entry\" = \"provincial/ledger-entry-out\"",
        );
    spec.connectors.push((
        "national".into(),
        national_connector(&sim, &NationalConfig::default().client_secret, schedule),
    ));
    let app = TestApp::spawn(spec).await;
    (app, sim, provincial, stop)
}

#[tokio::test]
async fn manifests_and_ledger_entries_reach_both_systems_in_their_formats() {
    let (app, sim, provincial, stop) = setup("0s 200ms 400ms").await;
    let created = app.accept(&samples::manifest(11, "m-11")).await;
    let mut update = samples::manifest(11, "m-11-v2");
    update["type"] = json!("manifest-updated");
    update["data"]["version"] = json!(2);
    let updated = app.accept(&update).await;
    let ledger = app.accept(&samples::ledger("l-1")).await;
    for id in [&created, &updated, &ledger] {
        for dest in ["national", "provincial"] {
            assert!(
                app.wait_status(id, dest, "delivered", Duration::from_secs(10)).await,
                "{id} to {dest}"
            );
        }
    }
    let accepted = sim.accepted();
    assert_eq!(accepted.len(), 3, "{accepted:?}");
    assert_eq!(
        accepted
            .iter()
            .filter(|a| a.key == "20263502000011")
            .map(|a| a.action.clone())
            .collect::<Vec<_>>(),
        vec![Some("CREATE".to_string()), Some("UPDATE".to_string())],
        "created before updated"
    );
    assert!(accepted.iter().any(|a| a.document == "nx:LedgerEntry"));
    assert_eq!(sim.counts().tokens, 1, "one token serves every delivery");
    // Receipts: the national receipt id is stored with the delivery.
    let trace = app.trace(&created).await;
    let national = trace["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .find(|d| d["destination"] == "national")
        .cloned()
        .expect("national");
    assert_eq!(national["receipt"]["ack_code"], "0000");
    assert!(
        national["receipt"]["reference"].as_str().is_some_and(|r| r.starts_with("GF")),
        "{national}"
    );
    // The provincial system got its JSON, valid by its contract; the
    // manifest's two events in order (order is per subject).
    let got = provincial.accepted();
    assert_eq!(provincial.refused(), 0);
    let manifest: Vec<&str> = got
        .iter()
        .filter(|a| a.key.as_deref() == Some("20263502000011"))
        .map(|a| a.kind.as_str())
        .collect();
    assert_eq!(manifest, vec!["MANIFEST_CREATE", "MANIFEST_UPDATE"], "{got:?}");
    assert!(got.iter().any(|a| a.kind == "LEDGER_ENTRY"), "{got:?}");
    stop.cancel();
}

#[tokio::test]
async fn a_national_outage_builds_a_backlog_that_drains_in_order_at_the_rate_limit() {
    let (app, sim, _provincial, stop) = setup("0s 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms").await;
    sim.set_outage(true);
    // 40 manifests, each created then updated: 80 national deliveries.
    let mut ids = Vec::new();
    for n in 0..40u32 {
        ids.push(app.accept(&samples::manifest(100 + n, &format!("c-{n}"))).await);
        let mut update = samples::manifest(100 + n, &format!("u-{n}"));
        update["type"] = json!("manifest-updated");
        update["data"]["version"] = json!(2);
        ids.push(app.accept(&update).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(sim.accepted().is_empty(), "nothing gets through an outage");
    assert!(sim.counts().unavailable > 0);
    sim.set_outage(false);
    let drained = eventually(Duration::from_secs(30), || async { sim.accepted().len() >= 80 }).await;
    assert!(drained, "only {} of 80 arrived", sim.accepted().len());
    for id in &ids {
        assert_eq!(app.delivery_status(id, "national").await, "delivered", "{id}");
    }
    let accepted = sim.accepted();
    assert_eq!(accepted.len(), 80, "nothing lost, nothing twice");
    // Order per manifest: CREATE before UPDATE for every manifest number.
    for n in 0..40u32 {
        let key = format!("20263502{:06}", 100 + n);
        let actions: Vec<_> = accepted.iter().filter(|a| a.key == key).filter_map(|a| a.action.clone()).collect();
        assert_eq!(actions, vec!["CREATE", "UPDATE"], "{key}");
    }
    // The drain respects 50/s: 80 documents take at least (80 - burst 10) / 50 s.
    let first = accepted.first().map(|a| a.at_ms).unwrap_or(0);
    let last = accepted.last().map(|a| a.at_ms).unwrap_or(0);
    assert!(last - first >= 1_300, "80 documents in {} ms is faster than 50/s", last - first);
    assert_eq!(
        sim.counts().rate_limited,
        0,
        "the hub paces itself; the simulator never had to refuse"
    );
    stop.cancel();
}

/// Tokens are cached and refreshed ahead of expiry, one fetch at a time; a
/// wrong secret keeps deliveries waiting (retrying), never dead.
#[tokio::test]
async fn oauth2_tokens_are_shared_refreshed_and_a_wrong_secret_retries() {
    let stop = CancellationToken::new();
    let sim = NationalSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        NationalConfig {
            token_lifetime: Duration::from_secs(3),
            ..NationalConfig::default()
        },
        stop.clone(),
    )
    .expect("simulator");
    let mut spec = HubSpec::new().config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()));
    spec.connectors.push((
        "national".into(),
        national_connector(&sim, &NationalConfig::default().client_secret, "0s 200ms 400ms").replace(
            "client_id = \"wastehub-fj\"",
            "client_id = \"wastehub-fj\"\nrefresh_before = \"2s\"",
        ),
    ));
    let app = TestApp::spawn(spec).await;
    let first: Vec<String> = futures::future::join_all((0..20u32).map(|n| {
        let app = &app;
        async move { app.accept(&samples::manifest(300 + n, &format!("t-{n}"))).await }
    }))
    .await;
    for id in &first {
        assert!(app.wait_status(id, "national", "delivered", Duration::from_secs(10)).await);
    }
    assert_eq!(sim.counts().tokens, 1, "twenty concurrent deliveries, one token fetch");
    // 3 s lifetime, refreshed 2 s ahead: after a second a new token is due.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = app.accept(&samples::manifest(399, "t-late")).await;
    assert!(app.wait_status(&later, "national", "delivered", Duration::from_secs(10)).await);
    assert_eq!(sim.counts().tokens, 2, "refreshed before expiry");
    assert_eq!(sim.counts().unauthorized, 0, "no request went out with an expired token");
    app.stop().await.expect("stop");

    // A wrong secret: the delivery waits and retries; it is not dead-lettered.
    let mut spec = HubSpec::new().config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()));
    spec.connectors.push((
        "national".into(),
        national_connector(&sim, "wrong", "0s 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms"),
    ));
    let app = TestApp::spawn(spec).await;
    let id = app.accept(&samples::manifest(400, "t-wrong")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let trace = app.trace(&id).await;
    let d = &trace["deliveries"][0];
    assert_ne!(d["status"], "dead", "{trace}");
    assert!(
        d["last_error"].as_str().unwrap_or("").contains("token endpoint answered HTTP 401"),
        "{trace}"
    );
    stop.cancel();
}

/// During the partner's maintenance window nothing is attempted; after it,
/// the waiting delivery goes out with its first attempt.
#[tokio::test]
async fn deliveries_wait_out_a_maintenance_window_without_burning_retries() {
    let stop = CancellationToken::new();
    let sim = NationalSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        NationalConfig::default(),
        stop.clone(),
    )
    .expect("simulator");
    // A window from a second ago to eight seconds ahead (Beijing time): long
    // enough for a hub to start on a slow database and a message to wait in it.
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    let now = chrono::Utc::now();
    let end = now + chrono::Duration::seconds(8);
    let from = (now - chrono::Duration::seconds(1))
        .with_timezone(&beijing)
        .format("%H:%M:%S")
        .to_string();
    let to = end.with_timezone(&beijing).format("%H:%M:%S").to_string();
    let mut spec = HubSpec::new().config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()));
    spec.connectors.push((
        "national".into(),
        national_connector(&sim, &NationalConfig::default().client_secret, "0s 100ms").replace(
            "jitter = 0.0",
            &format!("jitter = 0.0\nmaintenance = [{{ from = \"{from}\", to = \"{to}\" }}]"),
        ),
    ));
    let app = TestApp::spawn(spec).await;
    let id = app.accept(&samples::manifest(500, "w-1")).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(chrono::Utc::now() < end, "the hub took the whole window to start; nothing is shown");
    let trace = app.trace(&id).await;
    assert_eq!(trace["deliveries"][0]["status"], "pending", "{trace}");
    assert_eq!(trace["deliveries"][0]["attempts"].as_array().map(Vec::len), Some(0), "{trace}");
    assert!(app.wait_status(&id, "national", "delivered", Duration::from_secs(20)).await);
    let trace = app.trace(&id).await;
    let attempts = trace["deliveries"][0]["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 1, "one attempt, after the window: {trace}");
    let started = chrono::DateTime::parse_from_rfc3339(attempts[0]["started_at"].as_str().unwrap_or_default()).expect("time");
    // The window ends on a whole second.
    assert!(
        started.with_timezone(&chrono::Utc) >= end - chrono::Duration::seconds(1),
        "attempted at {started}, window ends {end}"
    );
    stop.cancel();
}

//! The provincial departments with the shipped connector files, mappings
//! and simulators: the transport department's vehicle positions over MQTT
//! (`transport-tracks`, needs `WASTEHUB_TEST_MQTT`), its carrier registry
//! and the health commission's institution registry polled page by page
//! (`transport-carriers`, `health-institutions`, kind `poll`).
//!
//! The connector files are the repository's, with only their addresses,
//! tokens, client id, topic prefix and timings replaced, so these tests
//! break when a shipped file stops fitting its contract.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wastehub::sim::health::{HealthConfig, HealthSim, INSTITUTIONS_PATH};
use wastehub::sim::registry::RegistryConfig;
use wastehub::sim::transport::{CARRIERS_PATH, TOPIC_PREFIX, TransportConfig, TransportSim};

use crate::mqtt::{broker, forget_session, skip_without_mqtt};
use crate::support::{HubSpec, TestApp, eventually, repo};

/// A shipped connector file with `(from, to)` replacements, each of which
/// must apply (so a changed shipped file fails loudly here).
fn shipped(name: &str, replacements: &[(&str, &str)]) -> (String, String) {
    let mut text = std::fs::read_to_string(repo().join("connectors").join(format!("{name}.toml"))).expect("shipped connector");
    for (from, to) in replacements {
        assert!(text.contains(from), "connectors/{name}.toml no longer contains {from:?}");
        text = text.replace(from, to);
    }
    (name.to_string(), text)
}

/// A hub with the repository's mappings and the given connectors.
fn spec(connectors: Vec<(String, String)>) -> HubSpec {
    let mut spec = HubSpec::new()
        .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
        .config("[server]\nshutdown_grace = \"3s\"");
    spec.connectors.extend(connectors);
    spec
}

/// Messages of `type` from `source` the hub stored (up to 500).
async fn stored(app: &TestApp, ty: &str, source: &str) -> Vec<Value> {
    let (status, page) = app.op_get(&format!("/api/v1/messages?type={ty}&source={source}&limit=500")).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

fn unique() -> String {
    ulid::Ulid::generate().to_string().to_lowercase()
}

/// The transport-tracks connector enabled on `url`, on its own topic prefix
/// and client id.
fn tracks_connector(url: &str, prefix: &str, client_id: &str) -> (String, String) {
    shipped(
        "transport-tracks",
        &[
            ("enabled = false", "enabled = true"),
            ("${TRANSPORT_MQTT_URL:-mqtt://127.0.0.1:1883}", url),
            ("${TRANSPORT_MQTT_CLIENT_ID:-wastehub-transport-tracks}", client_id),
            ("fj/transport/positions/+", &format!("{prefix}/+")),
            ("keep_alive = \"30s\"", "keep_alive = \"5s\""),
        ],
    )
}

/// Enabled with no broker to reach, the mqtt connector only retries in the
/// background: the hub starts, serves and stops as usual.
#[tokio::test]
async fn transport_tracks_without_a_reachable_broker_does_not_stop_the_hub() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("mqtt://127.0.0.1:{closed}");
    let app = TestApp::spawn(spec(vec![tracks_connector(&url, "wh-test/none", "wh-test-no-broker")])).await;
    let event = crate::support::samples::manifest(1, "no-broker-1");
    app.accept(&event).await;
    let (status, _) = app.op_get("/api/v1/destinations").await;
    assert_eq!(status, 200);
    app.stop().await.expect("a clean stop while the receiver is still retrying");
}

/// Batches the simulator publishes for registered vehicles are stored, one
/// message per batch, subject per vehicle.
#[tokio::test]
async fn simulator_positions_over_mqtt_are_stored() {
    if skip_without_mqtt("simulator_positions_over_mqtt_are_stored") {
        return;
    }
    let url = broker().expect("broker");
    let u = unique();
    let (prefix, client_id) = (format!("wh-test/{u}/positions"), format!("wh-test-simtracks-{u}"));
    let app = TestApp::spawn(spec(vec![tracks_connector(&url, &prefix, &client_id)])).await;
    let sim = TransportSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        TransportConfig {
            mqtt: Some(url.clone()),
            topic_prefix: prefix.clone(),
            ..TransportConfig::default()
        },
        CancellationToken::new(),
    )
    .expect("simulator");
    assert_ne!(prefix, TOPIC_PREFIX);
    let source = "urn:fj:transport:vehicle-platform";
    // Wait for the subscription with one batch, then send five more.
    let subscribed = async {
        for _ in 0..20 {
            sim.publish_tracks(1, 3).await.expect("publish");
            if eventually(Duration::from_secs(1), || async {
                !stored(&app, "track-points", source).await.is_empty()
            })
            .await
            {
                return true;
            }
        }
        false
    };
    assert!(subscribed.await, "the hub never stored a batch");
    let before = stored(&app, "track-points", source).await.len();
    assert_eq!(sim.publish_tracks(5, 20).await.expect("publish"), 5);
    assert!(
        eventually(Duration::from_secs(15), || async {
            stored(&app, "track-points", source).await.len() == before + 5
        })
        .await,
        "five more batches stored"
    );
    let messages = stored(&app, "track-points", source).await;
    assert!(
        messages
            .iter()
            .all(|m| m["subject"].as_str().is_some_and(|s| s.starts_with("vehicle:闽")))
    );
    app.stop().await.expect("stopped");
    forget_session(&url, &client_id).await;
}

/// The transport-carriers connector (shipped file) against the simulator.
fn carriers_connector(sim: &TransportSim, token: &str) -> (String, String) {
    shipped(
        "transport-carriers",
        &[
            ("${TRANSPORT_URL:-http://127.0.0.1:9103/api/v1/carriers}", &sim.url(CARRIERS_PATH)),
            ("${TRANSPORT_TOKEN:-}", token),
            ("${TRANSPORT_POLL_INTERVAL:-5m}", "1s"),
            ("retry_schedule = \"5s 30s 2m 10m\"", "retry_schedule = \"200ms 500ms\""),
        ],
    )
}

fn institutions_connector(sim: &HealthSim, token: &str) -> (String, String) {
    shipped(
        "health-institutions",
        &[
            (
                "${HEALTH_URL:-http://127.0.0.1:9104/api/v1/institutions}",
                &sim.url(INSTITUTIONS_PATH),
            ),
            ("${HEALTH_TOKEN:-}", token),
            ("${HEALTH_POLL_INTERVAL:-15m}", "1s"),
            ("retry_schedule = \"5s 30s 2m 10m\"", "retry_schedule = \"200ms 500ms\""),
        ],
    )
}

async fn count_is(app: &TestApp, ty: &str, source: &str, n: usize, within: Duration) -> bool {
    eventually(within, || async { stored(app, ty, source).await.len() == n }).await
}

/// Every carrier of the registry is stored once as a transporter-record;
/// changed carriers are stored again (new versions), pages fetched again are
/// duplicates, and an outage delays but loses nothing.
#[tokio::test]
async fn transport_registry_is_polled_into_transporter_records() {
    let cfg = RegistryConfig {
        token: "t-carriers".into(),
        max_page: 200,
        fail_share: 0.2,
        ..RegistryConfig::default()
    };
    let sim = TransportSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        TransportConfig {
            registry: cfg,
            records: 250,
            ..TransportConfig::default()
        },
        CancellationToken::new(),
    )
    .expect("simulator");
    let app = TestApp::spawn(spec(vec![carriers_connector(&sim, "t-carriers")])).await;
    let source = "urn:fj:transport:carriers";
    assert!(
        count_is(&app, "transporter-record", source, 250, Duration::from_secs(60)).await,
        "all 250 carriers stored, despite 20 % failed pages: {:?}",
        sim.registry.counts()
    );
    assert!(sim.registry.counts().pages >= 3, "three pages of 100 at least");

    sim.registry.touch(7);
    assert!(count_is(&app, "transporter-record", source, 257, Duration::from_secs(30)).await);
    let subjects: std::collections::BTreeSet<String> = stored(&app, "transporter-record", source)
        .await
        .iter()
        .filter_map(|m| m["subject"].as_str().map(str::to_string))
        .collect();
    assert!(subjects.iter().all(|s| s.starts_with("carrier:9135")), "{subjects:?}");

    sim.registry.set_outage(true);
    sim.registry.touch(3);
    assert!(
        eventually(Duration::from_secs(10), || async { sim.registry.counts().unavailable >= 2 }).await,
        "the poller kept asking during the outage"
    );
    assert_eq!(stored(&app, "transporter-record", source).await.len(), 257);
    sim.registry.set_outage(false);
    assert!(count_is(&app, "transporter-record", source, 260, Duration::from_secs(30)).await);
    app.stop().await.expect("stopped");
}

/// Every institution is stored once as an enterprise-registration; a wrong
/// token stores nothing and keeps asking.
#[tokio::test]
async fn health_registry_is_polled_into_registrations() {
    let sim = HealthSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        HealthConfig {
            registry: RegistryConfig {
                token: "h-institutions".into(),
                ..RegistryConfig::default()
            },
            records: 150,
            ..HealthConfig::default()
        },
        CancellationToken::new(),
    )
    .expect("simulator");
    let source = "urn:fj:health:institutions";
    let wrong = TestApp::spawn(spec(vec![institutions_connector(&sim, "not-the-token")])).await;
    assert!(
        eventually(Duration::from_secs(10), || async { sim.registry.counts().unauthorized >= 2 }).await,
        "a refused page is asked for again"
    );
    assert!(stored(&wrong, "enterprise-registration", source).await.is_empty());
    wrong.stop().await.expect("stopped");

    let app = TestApp::spawn(spec(vec![institutions_connector(&sim, "h-institutions")])).await;
    assert!(count_is(&app, "enterprise-registration", source, 150, Duration::from_secs(60)).await);
    sim.registry.touch(5);
    assert!(count_is(&app, "enterprise-registration", source, 155, Duration::from_secs(30)).await);
    app.stop().await.expect("stopped");
}

//! Connector health: `GET /api/v1/connectors` and `/api/v1/connectors/{name}`
//! with the operator token; outbound partners probed periodically and on
//! demand (bounded by the connector's timeout, not inside a maintenance
//! window), receivers reporting their own state, and the gauge
//! `wastehub_connector_up`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{FakePartner, HubSpec, Reply, TestApp, eventually, repo};

/// An outbound connector `name` to `url` with a `timeout`, and extra `[outbound]` lines.
fn partner(name: &str, url: &str, timeout: &str, extra: &str) -> (String, String) {
    (
        name.to_string(),
        format!(
            "name = \"{name}\"\nkind = \"http_json\"\ndescription = \"a partner\"\n[outbound]\nurl = \"{url}\"\ntimeout = \"{timeout}\"\n{extra}\n[[routes]]\ntypes = [\"manifest-created\"]\n"
        ),
    )
}

async fn connector(app: &TestApp, name: &str, probe: bool) -> Value {
    let q = if probe { "?probe=true" } else { "" };
    let (status, body) = app.op_get(&format!("/api/v1/connectors/{name}{q}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn status_of(app: &TestApp, name: &str) -> String {
    connector(app, name, false).await["health"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The value of `wastehub_connector_up` for `name` on `/metrics`.
async fn gauge(app: &TestApp, name: &str) -> Option<f64> {
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&app.operator)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let prefix = format!("wastehub_connector_up{{connector=\"{name}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn the_connector_list_needs_the_operator_token_and_shows_every_connector() {
    let p = FakePartner::scripted(|_, _| Reply::status(405)).await;
    let mut spec = HubSpec::new();
    spec.connectors.push(partner("health-list", &p.url, "2s", ""));
    let app = TestApp::spawn(spec).await;
    let url = format!("{}/api/v1/connectors", app.base);
    let anonymous = app.client.get(&url).send().await.expect("get");
    assert_eq!(anonymous.status(), 401);
    let wrong = app.client.get(&url).bearer_auth(&app.key).send().await.expect("get");
    assert_eq!(wrong.status(), 401, "a partner key is not the operator token");
    let one = app.client.get(format!("{url}/health-list")).send().await.expect("get");
    assert_eq!(one.status(), 401);

    let (status, list) = app.op_get("/api/v1/connectors").await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list.as_array().expect("list").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["cell", "health-list"]);
    let cell = &list[0];
    assert_eq!(cell["kind"], "http_json");
    assert_eq!(cell["directions"], serde_json::json!(["inbound"]));
    assert_eq!(cell["health"]["status"], "unknown");
    assert!(
        cell["health"]["detail"].as_str().unwrap_or("").contains("nothing to probe"),
        "{cell}"
    );
    let dest = &list[1];
    assert_eq!(
        (dest["enabled"].as_bool(), dest["description"].as_str()),
        (Some(true), Some("a partner"))
    );
    assert_eq!(dest["directions"], serde_json::json!(["outbound"]));
    assert_eq!(dest["health"]["status"], "unknown", "not probed: the interval is 0 in tests");
    assert!(dest["health"]["checked_at"].is_null());
    assert!(p.requests().is_empty(), "nothing was sent to the partner");

    let probed = connector(&app, "health-list", true).await;
    assert_eq!(probed["health"]["status"], "up", "{probed}");
    assert!(probed["health"]["checked_at"].is_string(), "{probed}");
    assert_eq!(p.requests().len(), 1, "one probe");
    assert_eq!(p.requests()[0].body, Value::Null, "the probe carries no message");
    assert_eq!(p.requests()[0].ce_id, "", "the probe is no delivery");
    assert_eq!(gauge(&app, "health-list").await, Some(1.0));

    let (status, _) = app.op_get("/api/v1/connectors/nobody").await;
    assert_eq!(status, 404);
    let (status, _) = app.op_get("/api/v1/connectors/health-list?probe=maybe").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_down_partner_is_reported_down_and_up_again_after_it_recovers() {
    let p = FakePartner::scripted(|_, _| Reply::status(503)).await;
    let refused = format!("http://127.0.0.1:{}/in", closed_port().await);
    let mut spec = HubSpec::new().config("[health]\ninterval = \"200ms\"");
    spec.connectors.push(partner("health-flaky", &p.url, "2s", ""));
    spec.connectors.push(partner("health-gone", &refused, "2s", ""));
    let app = TestApp::spawn(spec).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            status_of(&app, "health-flaky").await == "down"
        })
        .await,
        "{}",
        connector(&app, "health-flaky", false).await
    );
    let down = connector(&app, "health-flaky", false).await;
    assert!(down["health"]["detail"].as_str().unwrap_or("").contains("503"), "{down}");
    assert_eq!(gauge(&app, "health-flaky").await, Some(0.0));
    let gone = connector(&app, "health-gone", true).await;
    assert_eq!(gone["health"]["status"], "down", "{gone}");
    assert!(gone["health"]["detail"].as_str().unwrap_or("").contains("connect"), "{gone}");

    // The partner recovers; the next periodic probe says so.
    p.set_script(|_, _| Reply::status(405));
    assert!(
        eventually(Duration::from_secs(10), || async { status_of(&app, "health-flaky").await == "up" }).await,
        "{}",
        connector(&app, "health-flaky", false).await
    );
    assert_eq!(gauge(&app, "health-flaky").await, Some(1.0));
}

#[tokio::test]
async fn a_partner_in_its_maintenance_window_is_reported_so_and_not_probed() {
    let p = FakePartner::scripted(|_, _| Reply::status(503)).await;
    // Two windows that touch cover every hour of every day.
    let windows = "maintenance = [{ from = \"00:00\", to = \"12:00\" }, { from = \"12:00\", to = \"00:00\" }]";
    let mut spec = HubSpec::new().config("[health]\ninterval = \"200ms\"");
    spec.connectors.push(partner("health-resting", &p.url, "2s", windows));
    let app = TestApp::spawn(spec).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            status_of(&app, "health-resting").await == "maintenance"
        })
        .await
    );
    let on_demand = connector(&app, "health-resting", true).await;
    assert_eq!(on_demand["health"]["status"], "maintenance", "{on_demand}");
    assert!(
        on_demand["health"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("maintenance window until"),
        "{on_demand}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(p.requests().is_empty(), "a partner in maintenance is not probed");
    assert_ne!(gauge(&app, "health-resting").await, Some(0.0), "maintenance is not down");
}

#[tokio::test]
async fn an_on_demand_probe_ends_at_the_connector_timeout() {
    let p = FakePartner::scripted(|_, _| Reply::status(200).delay(Duration::from_secs(30))).await;
    let mut spec = HubSpec::new();
    spec.connectors.push(partner("health-slow", &p.url, "300ms", ""));
    let app = TestApp::spawn(spec).await;
    let started = Instant::now();
    let slow = connector(&app, "health-slow", true).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the probe waited {:?} for a partner that answers after 30 s",
        started.elapsed()
    );
    assert_eq!(slow["health"]["status"], "down", "{slow}");
    assert!(slow["health"]["detail"].as_str().unwrap_or("").contains("timeout"), "{slow}");
}

#[tokio::test]
async fn receivers_report_their_own_health() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drop = tmp.path().join("drop");
    let file = format!(
        "name = \"health-folder\"\nkind = \"file\"\n[inbound]\nsources = [\"urn:test:registry\"]\n[inbound.mappings]\n\
         \"enterprise-registration\" = \"market-regulation/enterprise-registration-in\"\n[file]\ndir = \"{}\"\n\
         type = \"enterprise-registration\"\nformat = \"csv\"\npoll_interval = \"100ms\"\n",
        drop.display()
    );
    let broker = format!("mqtt://127.0.0.1:{}", closed_port().await);
    let mqtt = format!(
        "name = \"health-broker\"\nkind = \"mqtt\"\n[inbound]\nsources = [\"urn:test:broker\"]\n[mqtt]\nurl = \"{broker}\"\n\
         client_id = \"health-{}\"\n[[mqtt.topics]]\nfilter = \"wh-test/health\"\nformat = \"cloudevent\"\n",
        ulid::Ulid::generate()
    );
    let mut spec = HubSpec::new()
        .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
        .config("[server]\nshutdown_grace = \"3s\"");
    spec.connectors.push(("health-folder".into(), file));
    spec.connectors.push(("health-broker".into(), mqtt));
    let app = TestApp::spawn(spec).await;
    assert!(eventually(Duration::from_secs(10), || async { status_of(&app, "health-folder").await == "up" }).await);
    assert!(
        eventually(Duration::from_secs(10), || async {
            status_of(&app, "health-broker").await == "down"
        })
        .await,
        "{}",
        connector(&app, "health-broker", false).await
    );
    let broker_view = connector(&app, "health-broker", true).await;
    assert!(
        broker_view["health"]["detail"].as_str().unwrap_or("").contains("not connected"),
        "{broker_view}"
    );
    assert_eq!(broker_view["directions"], serde_json::json!(["inbound"]));
    // The drop folder replaced by a file: down; the folder back: up.
    std::fs::remove_dir_all(&drop).expect("rm");
    std::fs::write(&drop, b"not a folder").expect("write");
    assert!(
        eventually(Duration::from_secs(10), || async {
            status_of(&app, "health-folder").await == "down"
        })
        .await
    );
    assert_eq!(gauge(&app, "health-folder").await, Some(0.0));
    std::fs::remove_file(&drop).expect("rm");
    assert!(eventually(Duration::from_secs(10), || async { status_of(&app, "health-folder").await == "up" }).await);
    app.stop().await.expect("stop");
}

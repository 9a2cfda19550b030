//! The `poll` connector kind against a paged partner API served by the
//! test: every page committed and the cursor stored; a restart resuming the
//! stored position; a failing page retried with nothing after it fetched;
//! one poller among two hubs on one database, and a takeover; bearer
//! token, request signature, `max_response`, a refused item skipped and
//! counted, and page answers that cannot send the hub elsewhere.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use wastehub::store::Store;

use crate::support::{HubSpec, TestApp, eventually, fresh_database};

/// A test mapping from the partner's carrier record to `transporter-record`.
/// The id is the record's own id and version, so a page fetched twice gives
/// duplicates, never new messages.
const MAPPING: &str = r#"
[mapping]
message_type = "transporter-record"
direction = "inbound"
version = 1
effective_from = "2026-01-01"
description = "Carrier records of the poll tests"

[input]
format = "json"

[output]
format = "json"

[[rule]]
to = "/id"
from = ["id", "version"]
join = ":"
required = true

[[rule]]
to = "/subject"
from = "id"
ops = [{ prefix = "carrier:" }]
required = true

[[rule]]
to = "/time"
from = "updated_at"
required = true

[[rule]]
to = "/jurisdiction"
from = "division"
required = true

[[rule]]
to = "/data/carrier_usci"
from = "usci"
required = true

[[rule]]
to = "/data/carrier_name"
from = "name"
required = true

[[rule]]
to = "/data/road_transport_licence_no"
from = "licence"
required = true

[[rule]]
to = "/data/status"
from = "status"
required = true

[[rule]]
to = "/data/vehicles"
each = "vehicles"

  [[rule.rule]]
  to = "plate"
  from = "plate"

  [[rule.rule]]
  to = "vehicle_cert_no"
  from = "cert"

  [[rule.rule]]
  to = "body_type"
  from = "body"

  [[rule.rule]]
  to = "max_load_kg"
  from = "load"

[[rule]]
to = "/data/personnel"
each = "crew"

  [[rule.rule]]
  to = "name"
  from = "name"

  [[rule.rule]]
  to = "role"
  from = "role"

  [[rule.rule]]
  to = "qualification_no"
  from = "cert"

  [[rule.rule]]
  to = "valid_to"
  from = "valid_to"
"#;

/// The partner's record number `seq` (its position in the collection).
fn record(seq: u64) -> Value {
    json!({
        "seq": seq,
        "id": format!("C{seq:04}"),
        "version": 1,
        "updated_at": format!("2026-11-29T10:{:02}:{:02}+08:00", (seq / 60) % 60, seq % 60),
        "division": "350206",
        "usci": "91350206MA2XK7P16K",
        "name": "厦门鹭江危险货物运输有限公司",
        "licence": "闽交运管许可厦字350206300125号",
        "status": "ACTIVE",
        "vehicles": [{"plate": "闽D3K712", "cert": "闽交运管厦字350206012345号", "body": "BOX", "load": "9800"}],
        "crew": [{"name": "黄建华", "role": "DRIVER", "cert": "3502112016000451", "valid_to": "2029-03-15"}]
    })
}

/// How the partner misbehaves on one request.
#[derive(Clone, Debug)]
enum Fault {
    /// This status (and `Retry-After`, when given).
    Status(u16, Option<&'static str>),
    /// Answer only after this long.
    Hang(Duration),
    /// A body that is not JSON.
    Malformed,
    /// A valid page far larger than any `max_response` of the tests.
    Huge,
    /// This body.
    Body(String),
}

/// One request the partner saw.
#[derive(Clone, Debug)]
struct Seen {
    query: HashMap<String, String>,
    auth: String,
    signature: (String, String),
    target: String,
    at: Instant,
    status: u16,
}

impl Seen {
    fn param(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    fn page(&self) -> &str {
        self.param("page_token").unwrap_or("first")
    }
}

#[derive(Default)]
struct Inner {
    records: Mutex<Vec<Value>>,
    seen: Mutex<Vec<Seen>>,
    /// Per page (its token, or `first`): faults answered in order before the page.
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    /// Pages that answer 503 until released.
    stuck: Mutex<HashSet<String>>,
}

/// A paged partner API: `GET /api/v1/carriers?updated_since=&limit=&page_token=`.
/// The cursor is the last record number seen (records after it are
/// returned); a page token is the offset in that query's result.
#[derive(Clone)]
struct Partner {
    url: String,
    inner: Arc<Inner>,
}

impl Partner {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/api/v1/carriers", listener.local_addr().expect("addr"));
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/api/v1/carriers", get(serve_page))
            .fallback(get(serve_page))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner }
    }

    /// Adds records `from..=to`.
    fn add(&self, from: u64, to: u64) {
        self.inner.records.lock().expect("lock").extend((from..=to).map(record));
    }

    fn add_record(&self, v: Value) {
        self.inner.records.lock().expect("lock").push(v);
    }

    fn fault(&self, page: &str, faults: &[Fault]) {
        self.inner
            .faults
            .lock()
            .expect("lock")
            .entry(page.to_string())
            .or_default()
            .extend(faults.iter().cloned());
    }

    fn stick(&self, page: &str, stuck: bool) {
        let mut s = self.inner.stuck.lock().expect("lock");
        if stuck {
            s.insert(page.to_string());
        } else {
            s.remove(page);
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().expect("lock").clone()
    }
}

async fn serve_page(
    State(st): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let seen = Seen {
        auth: h("authorization"),
        signature: (h("x-wastehub-signature"), h("x-wastehub-timestamp")),
        target: uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default(),
        query: query.clone(),
        at: Instant::now(),
        // Set when answered; a request the hub gave up on (timeout) stays 0.
        status: 0,
    };
    let index = {
        let mut log = st.seen.lock().expect("lock");
        log.push(seen);
        log.len() - 1
    };
    let page = query.get("page_token").cloned().unwrap_or_else(|| "first".into());
    let fault = st.faults.lock().expect("lock").get_mut(&page).and_then(VecDeque::pop_front);
    let stuck = st.stuck.lock().expect("lock").contains(&page);
    let answer = if stuck {
        (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
    } else {
        match fault {
            Some(Fault::Status(s, retry_after)) => {
                let mut r = (StatusCode::from_u16(s).unwrap_or(StatusCode::OK), "{}").into_response();
                if let Some(ra) = retry_after {
                    r.headers_mut().insert("retry-after", ra.parse().expect("header"));
                }
                r
            }
            Some(Fault::Hang(d)) => {
                tokio::time::sleep(d).await;
                page_answer(&st, &query).into_response()
            }
            Some(Fault::Malformed) => (StatusCode::OK, "{\"items\": [").into_response(),
            Some(Fault::Huge) => {
                let filler = "x".repeat(64 * 1024);
                (StatusCode::OK, json!({"items": [], "filler": filler}).to_string()).into_response()
            }
            Some(Fault::Body(b)) => (StatusCode::OK, b).into_response(),
            None => page_answer(&st, &query).into_response(),
        }
    };
    st.seen.lock().expect("lock")[index].status = answer.status().as_u16();
    answer
}

fn page_answer(st: &Inner, query: &HashMap<String, String>) -> (StatusCode, String) {
    let since: u64 = query.get("updated_since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit: usize = query.get("limit").and_then(|s| s.parse().ok()).unwrap_or(10);
    let offset: usize = query
        .get("page_token")
        .and_then(|t| t.strip_prefix('o'))
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let records = st.records.lock().expect("lock");
    let matching: Vec<&Value> = records.iter().filter(|r| r["seq"].as_u64().unwrap_or(0) > since).collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).map(|v| (*v).clone()).collect();
    let next_page_token = (offset + limit < matching.len()).then(|| format!("o{}", offset + limit));
    let next_cursor = page.last().and_then(|r| r["seq"].as_u64()).unwrap_or(since);
    let body = json!({"items": page, "next_page_token": next_page_token, "next_cursor": next_cursor.to_string()});
    (StatusCode::OK, body.to_string())
}

/// A connector file for `partner`: the test defaults, with `keys` replacing
/// or adding `[poll]` keys.
fn connector(name: &str, partner: &Partner, keys: &[(&str, &str)]) -> String {
    let mut poll: BTreeMap<&str, String> = [
        ("url", format!("{:?}", partner.url)),
        ("type", "\"transporter-record\"".into()),
        ("interval", "\"1s\"".into()),
        ("timeout", "\"2s\"".into()),
        ("connect_timeout", "\"1s\"".into()),
        ("page_size", "2".into()),
        ("retry_schedule", "\"100ms\"".into()),
        ("lease", "\"3s\"".into()),
        ("bearer_token", "\"poll-token\"".into()),
    ]
    .into_iter()
    .collect();
    for (k, v) in keys {
        poll.insert(k, (*v).to_string());
    }
    let lines: String = poll.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    format!(
        "name = \"{name}\"\nkind = \"poll\"\n[inbound]\nsources = [\"urn:test:carriers\"]\n[inbound.mappings]\n\
         \"transporter-record\" = \"test/carrier-in\"\n[poll]\n{lines}[poll.cursor]\nparam = \"updated_since\"\n\
         initial = \"0\"\nnext = \"/next_cursor\"\n[poll.pages]\nparam = \"page_token\"\nnext = \"/next_page_token\"\n"
    )
}

/// The test mapping in a folder of its own.
fn mappings() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(d.path().join("test")).expect("mkdir");
    std::fs::write(d.path().join("test/carrier-in.toml"), MAPPING).expect("write mapping");
    d
}

fn spec(mappings: &Path, connectors: &[(&str, String)], database: Option<&str>) -> HubSpec {
    let mut s = HubSpec::new().config(&format!("[mappings]\ndir = \"{}\"", mappings.display()));
    for (name, text) in connectors {
        s.connectors.push(((*name).to_string(), text.clone()));
    }
    s.database = database.map(str::to_string);
    s
}

async fn store(database: &str) -> Store {
    let db = wastehub::config::DatabaseConfig {
        url: wastehub::config::Secret::new(database.to_string()),
        max_connections: 1,
        sqlite_synchronous: wastehub::config::SqliteSynchronous::Normal,
    };
    Store::connect(&db).await.expect("store")
}

/// The subjects of the messages the hub holds.
async fn subjects(app: &TestApp) -> Vec<String> {
    let (_, list) = app.op_get("/api/v1/messages?limit=500").await;
    let mut v: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["subject"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

fn expected(from: u64, to: u64) -> Vec<String> {
    (from..=to).map(|s| format!("carrier:C{s:04}")).collect()
}

async fn wait_messages(app: &TestApp, n: usize) -> bool {
    eventually(Duration::from_secs(20), || async { subjects(app).await.len() >= n }).await
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&app.operator)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn polls_every_page_stores_the_cursor_and_asks_with_it_next_time() {
    let partner = Partner::start().await;
    partner.add(1, 5);
    let maps = mappings();
    let app = TestApp::spawn(spec(maps.path(), &[("carriers", connector("carriers", &partner, &[]))], None)).await;
    assert!(wait_messages(&app, 5).await, "five records committed: {:?}", subjects(&app).await);
    let s = store(&app.database).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.poll_cursor("carriers")
                .await
                .expect("cursor")
                .is_some_and(|c| c.last_run_finished_at.is_some())
        })
        .await
    );
    let c = s.poll_cursor("carriers").await.expect("cursor").expect("row");
    assert_eq!((c.cursor.as_deref(), c.page_token.as_deref()), (Some("5"), None));
    assert_eq!((c.last_run_pages, c.last_run_items, c.last_run_refused), (3, 5, 0));
    // The first run: three pages of one query, each after the one before.
    let first: Vec<(Option<String>, String)> = partner
        .seen()
        .iter()
        .take(3)
        .map(|r| (r.param("updated_since").map(str::to_string), r.page().to_string()))
        .collect();
    assert_eq!(
        first,
        [(Some("0"), "first"), (Some("0"), "o2"), (Some("0"), "o4")].map(|(c, p)| (c.map(str::to_string), p.to_string()))
    );
    assert!(
        partner
            .seen()
            .iter()
            .all(|r| r.auth == "Bearer poll-token" && r.param("limit") == Some("2"))
    );
    // New records: the next run asks from the stored cursor, and only they come.
    let before = partner.seen().len();
    partner.add(6, 7);
    assert!(wait_messages(&app, 7).await, "seven records: {:?}", subjects(&app).await);
    let later = partner.seen()[before..].to_vec();
    assert!(
        later.iter().all(|r| r.param("updated_since") != Some("0")),
        "no run starts over: {later:?}"
    );
    assert!(later.iter().any(|r| r.param("updated_since") == Some("5")), "{later:?}");
    assert_eq!(subjects(&app).await, expected(1, 7));
    let m = metrics(&app).await;
    assert!(
        m.contains("wastehub_poll_runs_total{connector=\"carriers\",outcome=\"completed\"}"),
        "{m}"
    );
    assert!(
        m.contains("wastehub_poll_items_total{connector=\"carriers\",outcome=\"committed\"}"),
        "{m}"
    );
    assert!(
        m.contains("wastehub_poll_last_success_timestamp_seconds{connector=\"carriers\"}"),
        "{m}"
    );
    s.close().await;
}

#[tokio::test]
async fn a_restart_resumes_the_stored_page_and_then_the_stored_cursor() {
    let partner = Partner::start().await;
    partner.add(1, 8);
    // The fourth page (offset 6) is down: the first hub commits three pages and waits on it.
    partner.stick("o6", true);
    let maps = mappings();
    let db_dir = tempfile::tempdir().expect("tempdir");
    let db = fresh_database(db_dir.path()).await;
    let text = connector("carriers", &partner, &[]);
    let a = TestApp::spawn(spec(maps.path(), &[("carriers", text.clone())], Some(&db))).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            partner.seen().iter().filter(|r| r.page() == "o6").count() >= 2
        })
        .await,
        "the down page is retried"
    );
    assert_eq!(subjects(&a).await, expected(1, 6));
    a.stop().await.expect("clean stop");
    let s = store(&db).await;
    let c = s.poll_cursor("carriers").await.expect("cursor").expect("row");
    assert_eq!(
        (c.cursor.as_deref(), c.page_token.as_deref(), c.next_cursor.as_deref()),
        (Some("0"), Some("o6"), Some("6"))
    );
    assert_eq!(
        s.lease_holder("poll:carriers").await.expect("lease"),
        None,
        "released on a clean stop"
    );
    // The page is back; a new hub resumes at it, not at the start.
    partner.stick("o6", false);
    let before = partner.seen().len();
    let b = TestApp::spawn(spec(maps.path(), &[("carriers", text.clone())], Some(&db))).await;
    assert!(wait_messages(&b, 8).await, "{:?}", subjects(&b).await);
    let resumed = partner.seen()[before].clone();
    assert_eq!((resumed.param("updated_since"), resumed.page()), (Some("0"), "o6"), "{resumed:?}");
    assert!(
        partner.seen()[before..]
            .iter()
            .all(|r| r.page() != "first" || r.param("updated_since") == Some("8")),
        "nothing imported again from the start"
    );
    assert_eq!(subjects(&b).await, expected(1, 8));
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.poll_cursor("carriers")
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c.cursor.as_deref() == Some("8"))
        })
        .await
    );
    b.stop().await.expect("clean stop");
    // A record added while no hub runs: the next hub asks from the stored cursor.
    partner.add(9, 9);
    let before = partner.seen().len();
    let c = TestApp::spawn(spec(maps.path(), &[("carriers", text)], Some(&db))).await;
    assert!(wait_messages(&c, 9).await);
    assert_eq!(partner.seen()[before].param("updated_since"), Some("8"));
    c.stop().await.expect("clean stop");
    s.close().await;
}

#[tokio::test]
async fn a_failing_page_is_retried_and_nothing_after_it_is_fetched_first() {
    let partner = Partner::start().await;
    partner.add(1, 6);
    partner.fault(
        "o2",
        &[
            Fault::Status(500, None),
            Fault::Hang(Duration::from_secs(3)),
            Fault::Malformed,
            Fault::Status(429, Some("1")),
        ],
    );
    let maps = mappings();
    let text = connector(
        "carriers-retry",
        &partner,
        &[("timeout", "\"500ms\""), ("connect_timeout", "\"500ms\"")],
    );
    let app = TestApp::spawn(spec(maps.path(), &[("carriers-retry", text)], None)).await;
    assert!(wait_messages(&app, 6).await, "{:?}", subjects(&app).await);
    assert_eq!(subjects(&app).await, expected(1, 6), "no item lost");
    let seen = partner.seen();
    let pages: Vec<(&str, u16)> = seen.iter().map(|r| (r.page(), r.status)).collect();
    let o2: Vec<u16> = pages.iter().filter(|(p, _)| *p == "o2").map(|(_, s)| *s).collect();
    // The request the hub gave up on (timeout) was never answered.
    assert_eq!(
        o2,
        [500, 0, 200, 429, 200],
        "500, timeout, malformed, 429, then the page: {pages:?}"
    );
    let o2_last = seen.iter().filter(|r| r.page() == "o2").map(|r| r.at).max().expect("o2 asked");
    let o4_first = seen.iter().filter(|r| r.page() == "o4").map(|r| r.at).min().expect("o4 asked");
    assert!(o4_first > o2_last, "the next page only after the failed one: {pages:?}");
    // Retry-After: 1 was waited out.
    let at_429 = seen.iter().find(|r| r.status == 429).expect("429 answered").at;
    let next = seen.iter().find(|r| r.page() == "o2" && r.at > at_429).expect("retried after 429");
    assert!(next.at.duration_since(at_429) >= Duration::from_millis(900));
    let m = metrics(&app).await;
    for outcome in ["status", "timeout", "malformed", "fetched"] {
        assert!(
            m.contains(&format!(
                "wastehub_poll_pages_total{{connector=\"carriers-retry\",outcome=\"{outcome}\"}}"
            )),
            "{outcome}: {m}"
        );
    }
}

#[tokio::test]
async fn an_answer_over_max_response_is_a_failed_page() {
    let partner = Partner::start().await;
    partner.add(1, 2);
    partner.fault("first", &[Fault::Huge]);
    let maps = mappings();
    let text = connector("carriers-big", &partner, &[("max_response", "\"16KiB\"")]);
    let app = TestApp::spawn(spec(maps.path(), &[("carriers-big", text)], None)).await;
    assert!(wait_messages(&app, 2).await);
    let firsts: Vec<u16> = partner.seen().iter().filter(|r| r.page() == "first").map(|r| r.status).collect();
    assert_eq!(&firsts[..2], &[200, 200], "the huge page, then the same page again");
    let m = metrics(&app).await;
    assert!(
        m.contains("wastehub_poll_pages_total{connector=\"carriers-big\",outcome=\"too_large\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn a_refused_item_is_skipped_and_counted_while_the_page_is_committed() {
    let partner = Partner::start().await;
    partner.add(1, 1);
    let mut bad = record(2);
    bad["status"] = json!("UNKNOWN");
    partner.add_record(bad);
    partner.add(3, 3);
    let maps = mappings();
    let text = connector("carriers-bad", &partner, &[("page_size", "10")]);
    let app = TestApp::spawn(spec(maps.path(), &[("carriers-bad", text)], None)).await;
    let s = store(&app.database).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            s.poll_cursor("carriers-bad")
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c.last_run_finished_at.is_some())
        })
        .await
    );
    assert_eq!(subjects(&app).await, ["carrier:C0001", "carrier:C0003"]);
    let c = s.poll_cursor("carriers-bad").await.expect("cursor").expect("row");
    assert_eq!((c.cursor.as_deref(), c.last_run_items, c.last_run_refused), (Some("3"), 3, 1));
    let why = c.last_refusal.unwrap_or_default();
    assert!(
        why.contains("item 1 ") && why.contains("validation_failed") && why.contains("/data/status"),
        "{why}"
    );
    assert!(!why.contains("厦门鹭江"), "the record itself is not kept: {why}");
    let m = metrics(&app).await;
    assert!(
        m.contains("wastehub_poll_items_total{connector=\"carriers-bad\",outcome=\"refused\"} 1"),
        "{m}"
    );
    s.close().await;
}

#[tokio::test]
async fn a_page_answer_cannot_make_the_hub_call_another_host() {
    let partner = Partner::start().await;
    let elsewhere = Partner::start().await;
    partner.add(1, 1);
    let evil = format!("{}?steal=1", elsewhere.url);
    partner.fault(
        "first",
        &[Fault::Body(
            json!({"items": [record(1)], "next_page_token": evil, "next_cursor": evil}).to_string(),
        )],
    );
    let maps = mappings();
    let text = connector("carriers-redirect", &partner, &[]);
    let app = TestApp::spawn(spec(maps.path(), &[("carriers-redirect", text)], None)).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            partner.seen().iter().any(|r| r.page() == evil)
        })
        .await,
        "the token is sent back to the partner as a parameter"
    );
    assert!(wait_messages(&app, 1).await);
    assert!(partner.seen().iter().all(|r| r.target.starts_with("/api/v1/carriers?")));
    assert!(elsewhere.seen().is_empty(), "the other host saw nothing");
}

#[tokio::test]
async fn one_of_two_hubs_polls_and_the_other_takes_over_when_it_stops() {
    let partner = Partner::start().await;
    partner.add(1, 4);
    let maps = mappings();
    let with_token = |t: &str| {
        let token = format!("\"{t}\"");
        connector("carriers", &partner, &[("bearer_token", &token), ("lease", "\"1500ms\"")])
    };
    let a = TestApp::spawn(spec(maps.path(), &[("carriers", with_token("node-a"))], None)).await;
    assert!(wait_messages(&a, 4).await);
    let b = a.sibling(&spec(maps.path(), &[("carriers", with_token("node-b"))], None)).await;
    let by = |node: &str| partner.seen().iter().filter(|r| r.auth == format!("Bearer {node}")).count();
    // Two more runs of the leader (a run each second) while both are up.
    let runs_of_a = by("node-a");
    assert!(eventually(Duration::from_secs(20), || async { by("node-a") >= runs_of_a + 2 }).await);
    assert_eq!(by("node-b"), 0, "the standby never polls while the leader runs");
    let s = store(&a.database).await;
    let lease = s.lease_holder("poll:carriers").await.expect("lease").expect("held");
    a.stop().await.expect("clean stop");
    let stopped = partner.seen().len();
    partner.add(5, 5);
    assert!(
        eventually(Duration::from_secs(20), || async { by("node-b") > 0 }).await,
        "the standby takes over"
    );
    assert!(wait_messages(&b, 5).await);
    assert!(partner.seen()[stopped..].iter().all(|r| r.auth == "Bearer node-b"));
    let now = s.lease_holder("poll:carriers").await.expect("lease").expect("held");
    assert_ne!(now.holder, lease.holder);
    let m = metrics(&b).await;
    assert!(m.contains("wastehub_poll_leader{connector=\"carriers\"}"), "{m}");
    b.stop().await.expect("clean stop");
    s.close().await;
}

#[tokio::test]
async fn a_lease_left_by_a_dead_process_is_taken_once_it_runs_out() {
    let partner = Partner::start().await;
    partner.add(1, 2);
    let maps = mappings();
    let db_dir = tempfile::tempdir().expect("tempdir");
    let db = fresh_database(db_dir.path()).await;
    let s = store(&db).await;
    // A process that died holding the lease for two more seconds.
    let now = wastehub::model::now_millis();
    assert!(s.acquire_lease("poll:carriers", "dead-node", now, now + 2000).await.expect("lease"));
    let until = Instant::now() + Duration::from_millis(2000);
    let app = TestApp::spawn(spec(
        maps.path(),
        &[("carriers", connector("carriers", &partner, &[("lease", "\"1s\"")]))],
        Some(&db),
    ))
    .await;
    assert!(wait_messages(&app, 2).await);
    let first = partner.seen()[0].at;
    assert!(
        first >= until - Duration::from_millis(50),
        "nothing polled before the dead holder's lease ran out"
    );
    app.stop().await.expect("clean stop");
    s.close().await;
}

#[tokio::test]
async fn the_healthcheck_asks_for_one_item_signed_and_authenticated() {
    let partner = Partner::start().await;
    partner.add(1, 3);
    let secret = "0123456789abcdef0123";
    let text = format!(
        "url = {:?}\ntype = \"transporter-record\"\nbearer_token = \"t0k\"\n[signature]\nalgorithm = \"hmac-sha256\"\nsecret = \"{secret}\"\n\
         [cursor]\nparam = \"updated_since\"\nnext = \"/next_cursor\"\n[pages]\nparam = \"page_token\"\nnext = \"/next_page_token\"\n",
        partner.url
    );
    let cfg: wastehub::config::poll::PollConfig = toml::from_str(&text).expect("poll config");
    let client = wastehub::connectors::poll::PageClient::new("carriers", &cfg, Path::new(".")).expect("client");
    assert_eq!(client.healthcheck(Some("1")).await.expect("healthy"), 1);
    let r = partner.seen()[0].clone();
    assert_eq!(
        (r.param("limit"), r.param("updated_since"), r.param("page_token")),
        (Some("1"), Some("1"), None)
    );
    assert_eq!(r.auth, "Bearer t0k");
    // The signature covers timestamp, request target and the empty body.
    let signer = wastehub::connectors::signature::Signer::new(&wastehub::config::connector::SignatureConfig {
        algorithm: "hmac-sha256".into(),
        secret: wastehub::config::Secret::new(secret),
        key_id: None,
    });
    let ts: i64 = r.signature.1.parse().expect("timestamp");
    assert_eq!(r.signature.0, signer.header(ts, &r.target, b""));
    partner.stick("first", true);
    let e = client.healthcheck(None).await.expect_err("down");
    assert_eq!((e.class, e.status), ("status", Some(503)));
}

#[tokio::test]
async fn canonical_events_are_taken_as_they_are_and_only_of_the_configured_type() {
    let partner = Partner::start().await;
    let with_source = |mut e: Value| {
        e["source"] = json!("urn:test:carriers");
        e
    };
    let good = with_source(crate::support::samples::manifest(7, "ev-1"));
    let other_type = with_source(crate::support::samples::ledger("ev-2"));
    partner.fault(
        "first",
        &[Fault::Body(json!({"items": [good, other_type], "next_cursor": "1"}).to_string())],
    );
    let maps = mappings();
    let text = connector(
        "carriers-events",
        &partner,
        &[("format", "\"cloudevent\""), ("type", "\"manifest-created\"")],
    );
    let app = TestApp::spawn(spec(maps.path(), &[("carriers-events", text)], None)).await;
    let s = store(&app.database).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            s.poll_cursor("carriers-events")
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c.last_run_finished_at.is_some())
        })
        .await
    );
    assert_eq!(subjects(&app).await, ["manifest:20263502000007"]);
    let c = s.poll_cursor("carriers-events").await.expect("cursor").expect("row");
    assert_eq!((c.cursor.as_deref(), c.last_run_refused), (Some("1"), 1));
    assert!(c.last_refusal.unwrap_or_default().contains("type_not_allowed"));
    s.close().await;
}

/// The connector's health as the operations API shows it.
async fn health(app: &TestApp, name: &str) -> Value {
    let (status, view) = app.op_get(&format!("/api/v1/connectors/{name}")).await;
    assert_eq!(status, 200, "{view}");
    view["health"].clone()
}

/// The poller reports to the health board: `up` once a page is fetched,
/// `down` with the reason (no token, no query) while a page fails, `up`
/// again when it is had; a second process without the lease reports that it
/// stands by (`unknown`: it knows nothing of the partner), and `up` once it
/// has taken over.
#[tokio::test]
async fn the_poller_reports_its_health_and_a_standby_says_it_stands_by() {
    let partner = Partner::start().await;
    partner.add(1, 2);
    let maps = mappings();
    let text = connector("carriers-health", &partner, &[("lease", "\"1500ms\"")]);
    let a = TestApp::spawn(spec(maps.path(), &[("carriers-health", text.clone())], None)).await;
    assert!(wait_messages(&a, 2).await);
    let h = health(&a, "carriers-health").await;
    assert_eq!(h["status"], "up", "{h}");
    let detail = h["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with(&format!("a page was fetched from {}", partner.url)), "{h}");
    assert!(h["checked_at"].is_string(), "{h}");

    // The next run's first page fails until released.
    partner.stick("first", true);
    assert!(
        eventually(Duration::from_secs(20), || async {
            health(&a, "carriers-health").await["status"] == "down"
        })
        .await,
        "a failed page is reported"
    );
    let h = health(&a, "carriers-health").await;
    let detail = h["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("HTTP 503") && detail.contains(&partner.url), "{h}");
    assert!(
        !detail.contains("poll-token") && !detail.contains("updated_since"),
        "no token, no query: {h}"
    );
    partner.stick("first", false);
    assert!(
        eventually(Duration::from_secs(20), || async {
            health(&a, "carriers-health").await["status"] == "up"
        })
        .await,
        "up again once the page is had"
    );

    let b = a.sibling(&spec(maps.path(), &[("carriers-health", text)], None)).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            let h = health(&b, "carriers-health").await;
            h["status"] == "unknown" && h["detail"].as_str().is_some_and(|d| d.starts_with("standby"))
        })
        .await,
        "the standby says so: {}",
        health(&b, "carriers-health").await
    );
    assert_eq!(health(&a, "carriers-health").await["status"], "up");
    a.stop().await.expect("clean stop");
    assert!(
        eventually(Duration::from_secs(20), || async {
            health(&b, "carriers-health").await["status"] == "up"
        })
        .await,
        "the standby reports up once it has taken over and fetched: {}",
        health(&b, "carriers-health").await
    );
    b.stop().await.expect("clean stop");
}

//! Prompts back: a refused message of a live registered partner raises a
//! canonical rejection prompt, delivered to the partner's callback address
//! (a fake partner server here), signed with its secret when it signs, and,
//! when the refused data names a unit, to the Qinqing platform (its
//! simulator with the shipped connector). A sandbox partner gets none; a
//! partner without a callback has the prompt stored and sent nowhere; a
//! prompt is never raised about a prompt, nor about a failed callback.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wastehub::config::Secret;
use wastehub::config::connector::SignatureConfig;
use wastehub::connectors::signature::Signer;
use wastehub::sim::qinqing::{NOTICES_PATH, QinqingConfig, QinqingSim};

use crate::support::fake_partner::Request;
use crate::support::registry::{live_partner, messages_from, post_as, register, source};
use crate::support::{FakePartner, HubSpec, Reply, TestApp, eventually, repo, samples};

const PARK: &str = "park-xiamen-huli";
const HUB: &str = "urn:wastehub:hub";

/// The prompts configuration of these tests: quick retries, no jitter.
fn spec() -> HubSpec {
    HubSpec::new()
        .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
        .config("[prompts]\ncallback_retry_schedule = \"0s 200ms 400ms\"\ncallback_jitter = 0.0\ncallback_timeout = \"2s\"")
}

/// A ledger entry of the registered park whose quantity is not a quantity.
fn bad_ledger(id: &str) -> Value {
    let mut e = samples::ledger(id);
    e["source"] = json!(source(PARK));
    e["data"]["quantity"] = json!("lots");
    e
}

/// The prompts the hub raised.
async fn prompts(app: &TestApp) -> Vec<Value> {
    messages_from(app, HUB).await
}

/// The callback requests that carried a prompt.
fn callbacks(partner: &FakePartner) -> Vec<Request> {
    partner.requests().into_iter().filter(|r| r.body["type"] == "prompt").collect()
}

struct Qinqing {
    sim: QinqingSim,
    stop: CancellationToken,
}

impl Drop for Qinqing {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The Qinqing simulator, and the shipped connector pointed at it.
async fn qinqing(spec: HubSpec) -> (HubSpec, Qinqing) {
    let stop = CancellationToken::new();
    let sim = QinqingSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        QinqingConfig::default(),
        stop.clone(),
    )
    .expect("simulator");
    let shipped = std::fs::read_to_string(repo().join("connectors/qinqing.toml")).expect("shipped connector");
    let vars: BTreeMap<&str, String> = [
        ("QINQING_URL", sim.url(NOTICES_PATH)),
        ("QINQING_SIGNING_SECRET", wastehub::sim::qinqing::DEV_SECRET.to_string()),
        ("QINQING_RETRY_SCHEDULE", "0s 200ms 400ms".to_string()),
    ]
    .into();
    // The shipped timeout and rate limit need a longer lease than the harness's.
    let mut spec = spec.config("[delivery]\nlease = \"30s\"");
    spec.connectors.push(("qinqing".into(), crate::qinqing::fill(&shipped, &vars)));
    (spec, Qinqing { sim, stop })
}

#[tokio::test]
async fn a_refused_message_is_prompted_back_to_the_partner_and_to_the_unit_on_qinqing() {
    let callback = FakePartner::start().await;
    let (spec, qq) = qinqing(spec()).await;
    let app = TestApp::spawn(spec).await;
    let key = live_partner(&app, PARK, &["ledger-entry"], json!({"callback_url": callback.url})).await;

    let (s, refusal) = post_as(&app, &key, &bad_ledger("L-2")).await;
    assert_eq!((s, refusal["code"].as_str()), (422, Some("validation_failed")), "{refusal}");

    // The partner's callback receives the canonical rejection.
    assert!(
        eventually(Duration::from_secs(10), || async { !callbacks(&callback).is_empty() }).await,
        "no prompt reached the callback"
    );
    let got = &callbacks(&callback)[0];
    assert_eq!(got.content_type, "application/cloudevents+json");
    let ev = &got.body;
    assert_eq!(ev["source"], HUB);
    assert_eq!(ev["subject"], "ledger:HWCS20260304002", "ordered with the refused record");
    assert_eq!(ev["data"]["kind"], "REJECTION");
    assert_eq!(ev["data"]["rule_id"], "HUB_VALIDATION_FAILED");
    assert_eq!(ev["data"]["reply_to"]["event_id"], "L-2");
    assert_eq!(ev["data"]["reply_to"]["event_source"], source(PARK));
    assert_eq!(ev["data"]["subject"], json!({"type": "ledger-entry", "id": "HWCS20260304002"}));
    let paths: Vec<&str> = ev["data"]["field_errors"]
        .as_array()
        .expect("field errors")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(paths.contains(&"/quantity"), "{ev}");
    assert!(
        got.signature.0.is_empty(),
        "a partner without a signing secret gets unsigned callbacks"
    );
    assert_eq!(got.ce_id, ev["id"].as_str().expect("a string"));

    // The unit the ledger belongs to hears of it on Qinqing, as a data return (03).
    let sim = qq.sim.clone();
    assert!(eventually(Duration::from_secs(10), || async { !sim.accepted().is_empty() }).await);
    let notice = &qq.sim.accepted()[0];
    assert_eq!(notice.notice_type, "03");
    assert_eq!(notice.notice["receivers"], json!([{"usci": "91350206MA2XK7P16K"}]));
    assert_eq!(notice.notice["problems"][0]["field"], "/quantity");

    // One prompt, delivered both ways, traced like any message.
    let raised = prompts(&app).await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    let id = raised[0]["id"].as_str().expect("a string");
    assert!(app.wait_status(id, "partner-callbacks", "delivered", Duration::from_secs(10)).await);
    assert!(app.wait_status(id, "qinqing", "delivered", Duration::from_secs(10)).await);
    assert_eq!(app.trace(id).await["partner"], "hub");

    // The same refusal again: answered the same, but no second prompt.
    assert_eq!(post_as(&app, &key, &bad_ledger("L-2")).await.0, 422);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(prompts(&app).await.len(), 1);
    assert_eq!(callbacks(&callback).len(), 1);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn callbacks_are_signed_with_the_partners_own_secret() {
    let callback = FakePartner::start().await;
    let app = TestApp::spawn(spec()).await;
    let created = register(
        &app,
        PARK,
        &["ledger-entry"],
        json!({"callback_url": callback.url, "signing": "hmac-sm3"}),
    )
    .await;
    crate::support::registry::go_live(&app, PARK).await;
    let key = created["api_key"].as_str().expect("a string");
    let secret = created["signing_secret"].as_str().expect("a string");
    let signer = Signer::new(&SignatureConfig {
        algorithm: "hmac-sm3".into(),
        secret: Secret::new(secret),
        key_id: None,
    });
    // The partner signs what it sends…
    let body = bad_ledger("L-9").to_string();
    let now = chrono::Utc::now().timestamp();
    let r = app
        .client
        .post(format!("{}/api/v1/messages", app.base))
        .bearer_auth(key)
        .header("content-type", "application/cloudevents+json")
        .header("x-wastehub-timestamp", now.to_string())
        .header("x-wastehub-signature", signer.header(now, "/api/v1/messages", body.as_bytes()))
        .body(body)
        .send()
        .await
        .expect("the hub answers");
    assert_eq!(r.status().as_u16(), 422);
    // …and checks what the hub sends back with the same secret.
    assert!(eventually(Duration::from_secs(10), || async { !callbacks(&callback).is_empty() }).await);
    let got = &callbacks(&callback)[0];
    let (sig, ts) = &got.signature;
    let ts: i64 = ts.parse().expect("a timestamp");
    assert!((now - ts).abs() < 60);
    assert_eq!(sig, &signer.header(ts, &got.ce_id, got.raw.as_bytes()));
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_sandbox_partner_gets_no_prompt() {
    let callback = FakePartner::start().await;
    let app = TestApp::spawn(spec()).await;
    let created = register(&app, PARK, &["ledger-entry"], json!({"callback_url": callback.url})).await;
    let key = created["api_key"].as_str().expect("a string");
    let (s, body) = post_as(&app, key, &bad_ledger("L-2")).await;
    assert_eq!(s, 422, "{body}");
    assert!(
        !body["errors"].as_array().expect("an array").is_empty(),
        "its answer carries the errors"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(prompts(&app).await.is_empty());
    assert!(callback.requests().is_empty());
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn without_a_callback_the_prompt_is_stored_and_sent_nowhere_and_prompts_never_beget_prompts() {
    let app = TestApp::spawn(spec()).await;
    let key = live_partner(
        &app,
        PARK,
        &["ledger-entry", "prompt"],
        json!({"mappings": {"ledger-entry": "park-xiamen-haicang/ledger-entry-in"}}),
    )
    .await;

    // A refused event: one prompt, stored, with no delivery at all.
    assert_eq!(post_as(&app, &key, &bad_ledger("L-2")).await.0, 422);
    let raised = prompts(&app).await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    let t = app.trace(raised[0]["id"].as_str().expect("a string")).await;
    assert_eq!(
        (t["routed"].as_bool(), t["deliveries"].as_array().map(Vec::len)),
        (Some(false), Some(0)),
        "{t}"
    );
    assert_eq!(
        t["event"]["data"]["recipients"].as_array().expect("an array").len(),
        2,
        "the partner and the unit"
    );

    // A document that cannot be read: named by its digest.
    let doc = b"<?xml version=\"1.0\"?><TZJL><JLID>HC-1</JLID>".to_vec();
    let r = app
        .client
        .post(format!("{}/api/v1/documents/ledger-entry", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/xml")
        .body(doc.clone())
        .send()
        .await
        .expect("the hub answers");
    assert_eq!(r.status().as_u16(), 400);
    let raised = prompts(&app).await;
    assert_eq!(raised.len(), 2, "{raised:?}");
    let t = app.trace(raised[0]["id"].as_str().expect("a string")).await;
    assert_eq!(t["event"]["data"]["rule_id"], "HUB_MALFORMED_DOCUMENT");
    assert_eq!(
        t["event"]["data"]["reply_to"]["document_sha256"],
        wastehub::ingest::auth::sha256_bytes_hex(&doc)
    );

    // A refused prompt from the partner raises nothing: no prompt about a prompt.
    let mut bad_prompt = samples::envelope("prompt", "P-1", "prompt:P-1", json!({"kind": "PROMPT"}));
    bad_prompt["source"] = json!(source(PARK));
    assert_eq!(post_as(&app, &key, &bad_prompt).await.0, 422);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(prompts(&app).await.len(), 2);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_failing_callback_ends_dead_and_raises_nothing_more() {
    let callback = FakePartner::scripted(|_, _| Reply::status(500)).await;
    let app = TestApp::spawn(spec()).await;
    let key = live_partner(&app, PARK, &["ledger-entry"], json!({"callback_url": callback.url})).await;
    assert_eq!(post_as(&app, &key, &bad_ledger("L-2")).await.0, 422);
    let raised = prompts(&app).await;
    assert_eq!(raised.len(), 1);
    let id = raised[0]["id"].as_str().expect("a string");
    assert!(app.wait_status(id, "partner-callbacks", "dead", Duration::from_secs(10)).await);
    assert_eq!(callback.requests().len(), 3, "the retry schedule, then dead");
    // A callback refused for good (4xx) is dead at once.
    callback.set_script(|_, _| Reply::status(400));
    assert_eq!(post_as(&app, &key, &bad_ledger("L-3")).await.0, 422);
    let raised = prompts(&app).await;
    assert_eq!(raised.len(), 2, "one per refusal, none about the failed callbacks");
    let second = raised[0]["id"].as_str().expect("a string");
    assert!(app.wait_status(second, "partner-callbacks", "dead", Duration::from_secs(10)).await);
    assert_eq!(callback.requests().len(), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(prompts(&app).await.len(), 2);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_registered_partner_may_not_address_a_prompt_to_another_system() {
    let app = TestApp::spawn(spec()).await;
    let key = live_partner(&app, PARK, &["prompt"], json!({})).await;
    let prompt = |system: &str| {
        let mut p = samples::envelope(
            "prompt",
            &format!("P-{system}"),
            "prompt:P-1",
            json!({"notification_id": "NT-1", "kind": "PROMPT", "rule_id": "PARK-1", "severity": "INFO",
                   "subject": {"type": "ledger-entry", "id": "L-1"}, "recipients": [{"system": system}],
                   "message_zh": "请核对台账。", "created_at": "2026-11-29T10:00:00+08:00"}),
        );
        p["source"] = json!(source(PARK));
        p["jurisdiction"] = json!("350206");
        p
    };
    let (s, v) = post_as(&app, &key, &prompt(&source("park-other"))).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("recipient_not_allowed")), "{v}");
    let (s, v) = post_as(&app, &key, &prompt(&source(PARK))).await;
    assert_eq!(s, 202, "addressing itself is fine: {v}");
    app.stop().await.expect("a clean stop");
}

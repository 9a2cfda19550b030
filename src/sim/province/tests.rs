//! The province simulator against the wire protocol: receipts, repeats,
//! refusals, outages, and scripted replies reaching a small fake hub that
//! checks their signatures and answers with signed receipts.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::letters::keys::PartnerKeys;
use crate::letters::{Algorithm, PrivateKey, Receipt, Verdict, sign_letter, verify_letter};
use crate::schema::Catalogue;

use super::*;

const CONSULTATION: &str = include_str!("../../../schemas/canonical/xp-consultation/examples/valid/fujian-to-jiangxi.json");
const DECISION: &str = include_str!("../../../schemas/canonical/xp-decision/examples/valid/consultation-jiangxi.json");

/// Longest a test waits for something that should happen in well under a second.
const PATIENCE: Duration = Duration::from_secs(10);

fn keys_of(k: &PrivateKey) -> PartnerKeys {
    PartnerKeys::new(vec![k.public().clone()]).expect("one key")
}

/// The Fujian hub's key and a Jiangxi simulator trusting it.
struct Setup {
    hub_key: Arc<PrivateKey>,
    sim: ProvinceSim,
    sim_keys: PartnerKeys,
    stop: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn setup(tune: impl FnOnce(&mut ProvinceConfig)) -> Setup {
    let (hub_key, _) = PrivateKey::generate(Algorithm::Ed25519).expect("hub key");
    let (sim_key, _) = PrivateKey::generate(Algorithm::Sm2Sm3).expect("province key");
    let sim_keys = keys_of(&sim_key);
    let mut cfg = ProvinceConfig::new("36", sim_key, keys_of(&hub_key));
    cfg.reply_delay = Duration::from_millis(50);
    cfg.late_after = Duration::from_millis(600);
    tune(&mut cfg);
    let stop = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sim = ProvinceSim::start(listener, cfg, stop.clone()).expect("start");
    Setup {
        hub_key: Arc::new(hub_key),
        sim,
        sim_keys,
        stop,
    }
}

/// A consultation letter from Fujian for `application_no`, addressed to `to`, unsigned.
fn consultation(application_no: &str, n: u32, to: &str) -> Value {
    let mut data: Value = serde_json::from_str(CONSULTATION).expect("example JSON");
    data["application_no"] = json!(application_no);
    data["letter_no"] = json!(format!("闽环固商〔2026〕{n}号"));
    data["to_province"] = json!(to);
    json!({
        "specversion": "1.0",
        "id": format!("xp-{application_no}-{n}"),
        "source": "urn:wastehub:province:35",
        "type": "xp-consultation",
        "subject": format!("xp:{application_no}"),
        "time": "2026-01-26T15:00:00+08:00",
        "datacontenttype": "application/json",
        "data": data,
    })
}

fn signed(event: &Value, key: &PrivateKey) -> Value {
    sign_letter(event, key).expect("sign")
}

async fn post(sim: &ProvinceSim, body: Vec<u8>) -> (u16, HeaderMap, Value) {
    let r = reqwest::Client::new()
        .post(sim.url(LETTERS_PATH))
        .header("content-type", "application/cloudevents+json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

async fn post_letter(sim: &ProvinceSim, letter: &Value) -> (u16, Value) {
    let (status, _, body) = post(sim, serde_json::to_vec(letter).expect("json")).await;
    (status, body)
}

/// A stand-in for the Fujian hub's letters endpoint: verifies each letter
/// with the province's keys and answers with a receipt signed by the hub.
struct FakeHub {
    key: Arc<PrivateKey>,
    province_keys: PartnerKeys,
    /// Raw bodies of the letters that verified, in arrival order.
    got: Mutex<Vec<String>>,
    count: tokio::sync::watch::Sender<usize>,
    /// Answer this many requests with 503 first.
    fail_first: AtomicU32,
}

impl FakeHub {
    async fn start(setup: &Setup, fail_first: u32) -> Arc<Self> {
        let hub = Arc::new(Self {
            key: setup.hub_key.clone(),
            province_keys: setup.sim_keys.clone(),
            got: Mutex::new(Vec::new()),
            count: tokio::sync::watch::channel(0).0,
            fail_first: AtomicU32::new(fail_first),
        });
        let app = axum::Router::new()
            .route(HUB_LETTERS_PATH, axum::routing::post(fake_hub_letters))
            .with_state(hub.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hub");
        let url = format!("http://{}", listener.local_addr().expect("hub addr"));
        crate::sim::serve(listener, app, setup.stop.clone());
        setup.sim.set_hub(&url);
        hub
    }

    fn letters(&self) -> Vec<Value> {
        self.got
            .lock()
            .expect("hub log")
            .iter()
            .map(|b| serde_json::from_str(b).expect("letter JSON"))
            .collect()
    }

    fn raw(&self) -> Vec<String> {
        self.got.lock().expect("hub log").clone()
    }

    /// Waits until at least `n` letters arrived; returns them.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let mut rx = self.count.subscribe();
        tokio::time::timeout(PATIENCE, rx.wait_for(|c| *c >= n))
            .await
            .expect("letters arrive at the hub in time")
            .expect("hub still running");
        self.letters()
    }
}

async fn fake_hub_letters(State(hub): State<Arc<FakeHub>>, body: Bytes) -> axum::response::Response {
    if hub
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    let letter: Value = serde_json::from_slice(&body).expect("the province sends JSON");
    let at = super::beijing_now();
    let (status, verdict, reason) = match verify_letter(&letter, &hub.province_keys) {
        Ok(_) => {
            hub.got.lock().expect("hub log").push(String::from_utf8_lossy(&body).into_owned());
            hub.count.send_modify(|c| *c += 1);
            (StatusCode::OK, Verdict::Accepted, None)
        }
        Err(e) => (StatusCode::UNAUTHORIZED, Verdict::Refused, Some(e.to_string())),
    };
    let receipt = Receipt::for_letter(&letter, at, verdict, reason)
        .expect("receipt")
        .sign("hub-receipt-1", "urn:wastehub:province:35", &hub.key)
        .expect("sign receipt");
    (status, axum::Json(receipt)).into_response()
}

/// Waits until the simulator has recorded `n` sent letters.
async fn wait_sent(sim: &ProvinceSim, n: usize) -> Vec<SentLetter> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let sent = sim.sent();
        if sent.len() >= n {
            return sent;
        }
        assert!(
            Instant::now() < deadline,
            "{n} letters recorded as sent in time, got {}",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn catalogue() -> Catalogue {
    Catalogue::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/canonical")).expect("shipped schemas")
}

fn replies_for(letters: &[Value], application_no: &str) -> usize {
    letters
        .iter()
        .filter(|l| l["data"]["application_no"] == json!(application_no))
        .count()
}

#[tokio::test]
async fn a_signed_consultation_gets_a_receipt_that_verifies() {
    let s = setup(|_| {}).await;
    let letter = signed(&consultation("KSZY-350181-2026-0012", 15, "36"), &s.hub_key);
    let (status, receipt) = post_letter(&s.sim, &letter).await;
    assert_eq!(status, 200);
    let r = Receipt::check(&receipt, &letter, &s.sim_keys).expect("receipt signed by the province for this letter");
    assert_eq!(r.verdict, Verdict::Accepted);
    assert_eq!(r.digest_alg, "sha256", "the hub signs with Ed25519 here");
    assert_eq!(receipt["source"], json!("urn:wastehub:province:36"));
    let letters = s.sim.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].letter, letter);
    let ex = s.sim.exchanges();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].status, 200);
    assert_eq!(ex[0].content_type, "application/cloudevents+json");
}

#[tokio::test]
async fn a_repeat_gets_the_same_receipt_and_no_second_reply() {
    let s = setup(|_| {}).await;
    let hub = FakeHub::start(&s, 0).await;
    let first = signed(&consultation("APP-A", 1, "36"), &s.hub_key);
    let (st1, r1) = post_letter(&s.sim, &first).await;
    // The same letter serialized differently (pretty) is still the same source + id.
    let (st2, _, r2) = post(&s.sim, serde_json::to_vec_pretty(&first).expect("json")).await;
    assert_eq!((st1, st2), (200, 200));
    assert_eq!(r1, r2, "a repeat gets the stored receipt");
    assert_eq!(s.sim.letters().len(), 1);
    // A later consultation with the same delay: its reply comes after any
    // reply the repeat would have scheduled.
    let second = signed(&consultation("APP-B", 2, "36"), &s.hub_key);
    assert_eq!(post_letter(&s.sim, &second).await.0, 200);
    let mut letters = hub.wait_for(2).await;
    while replies_for(&letters, "APP-B") == 0 {
        letters = hub.wait_for(letters.len() + 1).await;
    }
    assert_eq!(replies_for(&letters, "APP-A"), 1, "one reply for the consultation sent twice");
}

#[tokio::test]
async fn forged_unsigned_and_unknown_key_letters_get_401_with_a_refused_receipt() {
    let s = setup(|_| {}).await;
    let mut forged = signed(&consultation("APP-F", 3, "36"), &s.hub_key);
    forged["data"]["preliminary_opinion"] = json!("同意转移。");
    let (other, _) = PrivateKey::generate(Algorithm::Ed25519).expect("key");
    let by_other = signed(&consultation("APP-F", 3, "36"), &other);
    let unsigned = consultation("APP-F", 3, "36");
    for (letter, says) in [
        (&forged, "does not verify"),
        (&by_other, "unknown key id"),
        (&unsigned, "not signed"),
    ] {
        let (status, receipt) = post_letter(&s.sim, letter).await;
        assert_eq!(status, 401, "{says}");
        let r = Receipt::check(&receipt, letter, &s.sim_keys).expect("refused receipt verifies");
        assert_eq!(r.verdict, Verdict::Refused);
        let reason = r.reason.expect("a reason");
        assert!(reason.contains(says), "{reason}");
    }
    assert!(s.sim.letters().is_empty());
    // A forged letter reusing an accepted letter's id is still refused.
    let good = signed(&consultation("APP-F", 3, "36"), &s.hub_key);
    assert_eq!(post_letter(&s.sim, &good).await.0, 200);
    assert_eq!(post_letter(&s.sim, &forged).await.0, 401);
}

#[tokio::test]
async fn letters_for_another_province_get_422() {
    let s = setup(|_| {}).await;
    let to_guangdong = signed(&consultation("APP-G", 4, "44"), &s.hub_key);
    let (status, receipt) = post_letter(&s.sim, &to_guangdong).await;
    assert_eq!(status, 422);
    let r = Receipt::check(&receipt, &to_guangdong, &s.sim_keys).expect("refused receipt verifies");
    assert_eq!(r.verdict, Verdict::Refused);
    assert!(r.reason.expect("reason").contains("44"));

    let mut data: Value = serde_json::from_str(DECISION).expect("example");
    let decision = |data: &Value| {
        signed(
            &json!({"specversion": "1.0", "id": "dec-1", "source": "urn:wastehub:province:35", "type": "xp-decision",
                    "subject": "xp:KSZY-350181-2026-0012", "time": "2026-02-09T15:00:00+08:00",
                    "datacontenttype": "application/json", "data": data}),
            &s.hub_key,
        )
    };
    data["receiver"]["province"] = json!("33");
    assert_eq!(post_letter(&s.sim, &decision(&data)).await.0, 422);
    data["receiver"]["province"] = json!("36");
    assert_eq!(post_letter(&s.sim, &decision(&data)).await.0, 200);
    assert_eq!(s.sim.letters().len(), 1);
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_400_and_413() {
    let s = setup(|_| {}).await;
    let (status, _, body) = post(&s.sim, b"not json".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], json!("malformed"));
    let (status, _, body) = post(&s.sim, br#"{"id": "x", "data": {}}"#.to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], json!("not_a_cloudevent"));
    let (status, _, _) = post(&s.sim, vec![b' '; receive::MAX_BODY + 1]).await;
    assert_eq!(status, 413);
    let statuses: Vec<u16> = s.sim.exchanges().iter().map(|e| e.status).collect();
    assert_eq!(statuses, [400, 400, 413]);
}

#[tokio::test]
async fn an_outage_answers_503_until_it_ends() {
    let s = setup(|_| {}).await;
    let letter = signed(&consultation("APP-O", 5, "36"), &s.hub_key);
    s.sim.set_outage(Some(Duration::from_secs(60)));
    let (status, headers, _) = post(&s.sim, serde_json::to_vec(&letter).expect("json")).await;
    assert_eq!(status, 503);
    assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert!(s.sim.letters().is_empty());
    let r = reqwest::Client::new()
        .post(s.sim.url("/_sim/outage"))
        .json(&json!({"off": true}))
        .send()
        .await
        .expect("outage off");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(post_letter(&s.sim, &letter).await.0, 200);
}

/// Checks a reply against the consultation it answers and the catalogue.
fn check_reply(reply: &Value, consultation: &Value, decision: &str) {
    assert_eq!(reply["type"], json!("xp-reply"));
    assert_eq!(reply["source"], json!("urn:wastehub:province:36"));
    let app = consultation["data"]["application_no"].as_str().expect("application_no");
    assert_eq!(reply["subject"], json!(format!("xp:{app}")));
    let letter_no = consultation["data"]["letter_no"].as_str().expect("letter_no");
    assert_eq!(reply["id"], json!(reply::reply_id(letter_no)));
    let data = &reply["data"];
    assert_eq!(data["reply_to"], consultation["data"]["letter_no"]);
    assert_eq!(data["from_province"], json!("36"));
    assert_eq!(data["to_province"], json!("35"));
    assert_eq!(data["decision"], json!(decision));
    assert_eq!(data["replied_at"], reply["time"]);
    let no = data["letter_no"].as_str().expect("letter_no");
    assert!(no.starts_with("赣环固函〔") && no.ends_with("号"), "{no}");
    let time = reply["time"].as_str().expect("time");
    assert!(time.ends_with("+08:00") && !time.contains('.'), "{time}");
    catalogue()
        .validate("xp-reply", data, "/data")
        .unwrap_or_else(|e| panic!("reply data is canonical: {e:?}"));
}

#[tokio::test]
async fn scripted_agree_and_disagree_replies_reach_the_hub_and_its_receipts_verify() {
    let s = setup(|_| {}).await;
    let hub = FakeHub::start(&s, 0).await;
    s.sim.set_script("APP-NO", Script::new(Answer::Disagree));
    let agree = signed(&consultation("APP-YES", 6, "36"), &s.hub_key);
    let disagree = signed(&consultation("APP-NO", 7, "36"), &s.hub_key);
    assert_eq!(post_letter(&s.sim, &agree).await.0, 200);
    assert_eq!(post_letter(&s.sim, &disagree).await.0, 200);
    let letters = hub.wait_for(2).await;
    let find = |app: &str| {
        letters
            .iter()
            .find(|l| l["data"]["application_no"] == json!(app))
            .cloned()
            .expect("a reply for the application")
    };
    let yes = find("APP-YES");
    let no = find("APP-NO");
    check_reply(&yes, &agree, "AGREE");
    check_reply(&no, &disagree, "DISAGREE");
    assert!(no["data"]["reasons"].as_str().is_some_and(|r| !r.is_empty()));
    assert_ne!(yes["data"]["letter_no"], no["data"]["letter_no"], "each reply has its own number");

    let sent = wait_sent(&s.sim, 2).await;
    for one in &sent {
        assert_eq!(one.status, 200);
        assert!(one.receipt_verified, "{one:?}");
        assert_eq!(one.error, None);
        let r = Receipt::check(one.receipt.as_ref().expect("receipt"), &one.letter, &keys_of(&s.hub_key)).expect("verifies");
        assert_eq!(r.verdict, Verdict::Accepted);
    }
}

#[tokio::test]
async fn the_script_endpoint_sets_the_answer() {
    let s = setup(|_| {}).await;
    let hub = FakeHub::start(&s, 0).await;
    let r = reqwest::Client::new()
        .post(s.sim.url("/_sim/script"))
        .json(&json!({"application_no": "APP-HTTP", "answer": "disagree", "delay_ms": 10}))
        .send()
        .await
        .expect("script");
    assert_eq!(r.status().as_u16(), 204);
    let c = signed(&consultation("APP-HTTP", 8, "36"), &s.hub_key);
    assert_eq!(post_letter(&s.sim, &c).await.0, 200);
    let letters = hub.wait_for(1).await;
    check_reply(&letters[0], &c, "DISAGREE");
    wait_sent(&s.sim, 1).await;
    let sent: Vec<Value> = reqwest::get(s.sim.url("/_sim/sent"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("sent JSON");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["letter"], letters[0]);
    assert_eq!(sent[0]["receipt_verified"], json!(true));
}

#[tokio::test]
async fn a_silent_province_sends_nothing() {
    let s = setup(|_| {}).await;
    let hub = FakeHub::start(&s, 0).await;
    s.sim.set_script("APP-QUIET", Script::new(Answer::Silent));
    let quiet = signed(&consultation("APP-QUIET", 9, "36"), &s.hub_key);
    let loud = signed(&consultation("APP-LOUD", 10, "36"), &s.hub_key);
    assert_eq!(post_letter(&s.sim, &quiet).await.0, 200);
    assert_eq!(post_letter(&s.sim, &loud).await.0, 200);
    // Same delay, scheduled later: once the loud reply is in, a quiet one
    // would have been sent already.
    let letters = hub.wait_for(1).await;
    assert_eq!(replies_for(&letters, "APP-LOUD"), 1);
    // And a bounded extra wait, for good measure.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(replies_for(&hub.letters(), "APP-QUIET"), 0);
}

#[tokio::test]
async fn a_late_reply_comes_only_after_late_after() {
    let s = setup(|c| c.default_answer = Answer::Late).await;
    let hub = FakeHub::start(&s, 0).await;
    s.sim.set_script("APP-ONTIME", Script::new(Answer::Agree));
    let late = signed(&consultation("APP-LATE", 11, "36"), &s.hub_key);
    let on_time = signed(&consultation("APP-ONTIME", 12, "36"), &s.hub_key);
    let start = Instant::now();
    assert_eq!(post_letter(&s.sim, &late).await.0, 200);
    assert_eq!(post_letter(&s.sim, &on_time).await.0, 200);
    let letters = hub.wait_for(2).await;
    assert!(start.elapsed() >= Duration::from_millis(600), "late reply after late_after");
    assert_eq!(
        letters[0]["data"]["application_no"],
        json!("APP-ONTIME"),
        "the on-time reply comes first"
    );
    check_reply(&letters[1], &late, "AGREE");
}

#[tokio::test]
async fn replies_are_retried_after_5xx() {
    let s = setup(|_| {}).await;
    let hub = FakeHub::start(&s, 2).await;
    let c = signed(&consultation("APP-RETRY", 13, "36"), &s.hub_key);
    assert_eq!(post_letter(&s.sim, &c).await.0, 200);
    hub.wait_for(1).await;
    let sent = wait_sent(&s.sim, 1).await;
    assert_eq!(sent[0].attempts, 3);
    assert_eq!(sent[0].status, 200);
    assert!(sent[0].receipt_verified);
}

#[tokio::test]
async fn forged_and_repeated_letters_can_be_sent_by_hand() {
    let s = setup(|_| {}).await;
    let hub = FakeHub::start(&s, 0).await;
    let event = json!({"type": "whitelist-entry", "subject": "xp:none", "data": {"note": "白名单条目"}});
    let forged = s.sim.send_letter(event.clone(), true).await.expect("sent");
    assert_eq!(forged.status, 401);
    assert!(forged.receipt_verified, "the hub's refused receipt verifies");
    assert!(forged.error.as_deref().is_some_and(|e| e.contains("refused")), "{forged:?}");
    assert!(hub.letters().is_empty());

    let good = s.sim.send_letter(event, false).await.expect("sent");
    assert_eq!((good.status, good.error.as_deref()), (200, None));
    assert_eq!(good.letter["source"], json!("urn:wastehub:province:36"));
    let again = s.sim.resend_last().await.expect("resent");
    assert_eq!(again.status, 200);
    let raw = hub.raw();
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[0], raw[1], "the resend is byte-identical");
    assert_eq!(s.sim.sent().len(), 3);
}

#[tokio::test]
async fn a_reset_drops_replies_not_yet_sent() {
    let s = setup(|_| {}).await;
    let hub = FakeHub::start(&s, 0).await;
    s.sim.set_script(
        "APP-DROPPED",
        Script {
            answer: Answer::Agree,
            delay: Some(Duration::from_millis(100)),
        },
    );
    let dropped = signed(&consultation("APP-DROPPED", 14, "36"), &s.hub_key);
    assert_eq!(post_letter(&s.sim, &dropped).await.0, 200);
    s.sim.reset();
    assert!(s.sim.letters().is_empty() && s.sim.exchanges().is_empty());
    s.sim.set_script(
        "APP-KEPT",
        Script {
            answer: Answer::Agree,
            delay: Some(Duration::from_millis(300)),
        },
    );
    let kept = signed(&consultation("APP-KEPT", 15, "36"), &s.hub_key);
    assert_eq!(post_letter(&s.sim, &kept).await.0, 200);
    let letters = hub.wait_for(1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["data"]["application_no"], json!("APP-KEPT"));
}

#[tokio::test]
async fn fujian_and_bad_codes_are_refused_at_start() {
    for code in ["35", "3", "x6", "99"] {
        let (key, _) = PrivateKey::generate(Algorithm::Ed25519).expect("key");
        let cfg = ProvinceConfig::new(code, key, PartnerKeys::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        assert!(ProvinceSim::start(listener, cfg, CancellationToken::new()).is_err(), "{code}");
    }
    assert_eq!(abbreviation("44"), Some("粤"));
    assert_eq!(abbreviation("33"), Some("浙"));
}

//! Delivery: acks, retries, dead letters, Retry-After, rate limits, replay.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::samples::manifest;
use crate::support::{FakePartner, HubSpec, Reply, TestApp};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn delivers_with_the_message_id_as_ce_id_and_idempotency_key() {
    let p = FakePartner::start().await;
    let app = TestApp::spawn(HubSpec::new().destination("prov", &p.url, "\"manifest-*\"", "")).await;
    let id = app.accept(&manifest(7, "e-7")).await;
    assert!(app.wait_status(&id, "prov", "delivered", WAIT).await);
    let reqs = p.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].ce_id, id);
    assert_eq!(reqs[0].idempotency_key, id);
    assert_eq!(reqs[0].body["id"], id.as_str());
    assert_eq!(reqs[0].body["sourceid"], "e-7");
    assert_eq!(reqs[0].body["data"]["manifest_no"], "20263502000007");
    let t = app.trace(&id).await;
    let d = &t["deliveries"][0];
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(d["attempts"][0]["http_status"], 200);
    assert_eq!(d["receipt"]["http_status"], 200);
}

#[tokio::test]
async fn retries_503_then_succeeds_with_the_same_id() {
    let p = FakePartner::scripted(|_, i| if i < 2 { Reply::status(503) } else { Reply::status(200) }).await;
    let app = TestApp::spawn(HubSpec::new().destination("prov", &p.url, "\"manifest-*\"", "")).await;
    let id = app.accept(&manifest(1, "e1")).await;
    assert!(app.wait_status(&id, "prov", "delivered", WAIT).await);
    let reqs = p.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.ce_id == id && r.idempotency_key == id));
    // Schedule 0s 200ms 400ms, no jitter: the gaps follow it.
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(190),
        "{:?}",
        reqs[1].at - reqs[0].at
    );
    assert!(
        reqs[2].at - reqs[1].at >= Duration::from_millis(390),
        "{:?}",
        reqs[2].at - reqs[1].at
    );
    let t = app.trace(&id).await;
    let outcomes: Vec<&str> = t["deliveries"][0]["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, vec!["retrying", "retrying", "delivered"]);
}

#[tokio::test]
async fn permanent_4xx_goes_dead_at_once_and_exhausted_retries_go_dead() {
    let bad = FakePartner::scripted(|_, _| Reply::status(400).body("{\"error\":\"no\"}")).await;
    let down = FakePartner::scripted(|_, _| Reply::status(500)).await;
    let app = TestApp::spawn(HubSpec::new().destination("bad", &bad.url, "\"manifest-*\"", "").destination(
        "down",
        &down.url,
        "\"manifest-*\"",
        "",
    ))
    .await;
    let id = app.accept(&manifest(1, "e1")).await;
    assert!(app.wait_status(&id, "bad", "dead", WAIT).await);
    assert!(app.wait_status(&id, "down", "dead", WAIT).await);
    assert_eq!(bad.requests().len(), 1, "a 400 is not retried");
    assert_eq!(down.requests().len(), 3, "the whole schedule (3 steps) is used");
    let t = app.trace(&id).await;
    let bad_d = t["deliveries"]
        .as_array()
        .expect("d")
        .iter()
        .find(|d| d["destination"] == "bad")
        .cloned()
        .unwrap_or_default();
    assert!(bad_d["last_error"].as_str().unwrap_or("").contains("400"), "{bad_d}");
    assert!(bad_d["attempts"][0]["response_excerpt"].as_str().unwrap_or("").contains("no"));
}

#[tokio::test]
async fn honours_retry_after() {
    let p = FakePartner::scripted(|_, i| {
        if i == 0 {
            Reply::status(429).retry_after("2")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let app = TestApp::spawn(HubSpec::new().destination("prov", &p.url, "\"manifest-*\"", "")).await;
    let id = app.accept(&manifest(1, "e1")).await;
    assert!(app.wait_status(&id, "prov", "delivered", WAIT).await);
    let reqs = p.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After: 2 was not honoured (gap {gap:?}; schedule alone says 200ms)"
    );
}

#[tokio::test]
async fn wrong_ack_code_is_permanent_and_listed_codes_retry() {
    let p = FakePartner::scripted(|req, _| {
        if req.body["sourceid"] == "refused" {
            Reply::status(200).body("{\"code\":\"E100\"}")
        } else {
            Reply::status(200).body("{\"code\":\"0000\",\"receipt_id\":\"NR-1\"}")
        }
    })
    .await;
    let ack = "[outbound.ack]\nbody_field = \"/code\"\nack_codes = [\"0000\"]\nreceipt_field = \"/receipt_id\"\n";
    let app = TestApp::spawn(HubSpec::new().destination("nat", &p.url, "\"manifest-*\"", ack)).await;
    let ok = app.accept(&manifest(1, "fine")).await;
    let refused = app.accept(&manifest(2, "refused")).await;
    assert!(app.wait_status(&ok, "nat", "delivered", WAIT).await);
    assert!(app.wait_status(&refused, "nat", "dead", WAIT).await);
    let t = app.trace(&ok).await;
    assert_eq!(t["deliveries"][0]["receipt"]["reference"], "NR-1");
    assert_eq!(t["deliveries"][0]["receipt"]["ack_code"], "0000");
}

#[tokio::test]
async fn rate_limit_paces_deliveries_within_tolerance() {
    let p = FakePartner::start().await;
    let app = TestApp::spawn(HubSpec::new().destination(
        "slow",
        &p.url,
        "\"manifest-*\"",
        "rate_limit = { per_second = 20, burst = 1 }\nconcurrency = 8",
    ))
    .await;
    let mut ids = Vec::new();
    for n in 0..41 {
        ids.push(app.accept(&manifest(n, &format!("r{n}"))).await);
    }
    let done = crate::support::eventually(Duration::from_secs(20), || async { p.accepted().len() == 41 }).await;
    assert!(done, "all 41 delivered");
    let reqs = p.requests();
    let first = reqs.iter().map(|r| r.at).min().expect("some");
    let last = reqs.iter().map(|r| r.at).max().expect("some");
    let span = last - first;
    // 41 requests at 20/s with a burst of 1 need at least 2.0 s; allow 10 % for timer slack.
    assert!(span >= Duration::from_millis(1800), "41 requests took only {span:?} at 20/s");
    assert!(span <= Duration::from_secs(6), "pacing far slower than the limit: {span:?}");
}

#[tokio::test]
async fn replay_revives_dead_deliveries_one_or_by_filter() {
    let p = FakePartner::scripted(|_, _| Reply::status(422)).await;
    let app = TestApp::spawn(HubSpec::new().destination("prov", &p.url, "\"manifest-*\"", "")).await;
    let a = app.accept(&manifest(1, "a")).await;
    let b = app.accept(&manifest(2, "b")).await;
    assert!(app.wait_status(&a, "prov", "dead", WAIT).await);
    assert!(app.wait_status(&b, "prov", "dead", WAIT).await);
    let (_, dead) = app.op_get("/api/v1/messages?status=dead").await;
    assert_eq!(dead["items"].as_array().map(Vec::len), Some(2));
    // The partner is fixed.
    p.set_script(|_, _| Reply::status(200));
    let dlv = app.trace(&a).await["deliveries"][0]["id"].as_str().expect("id").to_string();
    let (s, v) = app.op_post(&format!("/api/v1/deliveries/{dlv}/replay"), &Value::Null).await;
    assert_eq!((s, v["replayed"].as_u64()), (200, Some(1)));
    assert!(app.wait_status(&a, "prov", "delivered", WAIT).await);
    let (s, _) = app.op_post(&format!("/api/v1/deliveries/{dlv}/replay"), &Value::Null).await;
    assert_eq!(s, 200, "a delivered delivery can be sent again on purpose");
    let (s, _) = app.op_post("/api/v1/deliveries/replay", &json!({})).await;
    assert_eq!(s, 400, "bulk replay needs a filter");
    let (s, v) = app.op_post("/api/v1/deliveries/replay", &json!({"destination": "prov"})).await;
    assert_eq!((s, v["replayed"].as_u64()), (200, Some(1)));
    assert!(app.wait_status(&b, "prov", "delivered", WAIT).await);
    let (s, _) = app
        .op_post("/api/v1/deliveries/dlv_01JDZ8Q4K6T5VQ4Z9M3R2X7N1C/replay", &Value::Null)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn concurrency_cap_bounds_requests_in_flight() {
    let p = FakePartner::scripted(|_, _| Reply::status(200).delay(Duration::from_millis(150))).await;
    let app = TestApp::spawn(HubSpec::new().destination("capped", &p.url, "\"manifest-*\"", "concurrency = 2")).await;
    for n in 0..8 {
        app.accept(&manifest(n, &format!("c{n}"))).await;
    }
    let done = crate::support::eventually(Duration::from_secs(15), || async { p.accepted().len() == 8 }).await;
    assert!(done, "all 8 delivered");
    assert_eq!(
        p.max_concurrent(),
        2,
        "8 subjects were ready at once, but at most 2 requests may be in flight"
    );
}

/// With `[outbound.signature]` every request carries an HMAC (here SM3)
/// over timestamp, message id and the exact body sent.
#[tokio::test]
async fn requests_are_signed_over_timestamp_id_and_body() {
    let partner = FakePartner::start().await;
    let spec = HubSpec::new().destination(
        "signed",
        &partner.url,
        "\"ledger-entry\"",
        "[outbound.signature]\nalgorithm = \"hmac-sm3\"\nsecret = \"a-shared-secret-of-32-characters\"\nkey_id = \"fj-hub-1\"",
    );
    let app = TestApp::spawn(spec).await;
    let id = app.accept(&crate::support::samples::ledger("sig-1")).await;
    assert!(app.wait_status(&id, "signed", "delivered", Duration::from_secs(10)).await);
    let req = &partner.accepted()[0];
    let (header, timestamp) = &req.signature;
    let ts: i64 = timestamp.parse().expect("timestamp");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    let signer = wastehub::connectors::signature::Signer::new(&wastehub::config::connector::SignatureConfig {
        algorithm: "hmac-sm3".into(),
        secret: wastehub::config::Secret::new("a-shared-secret-of-32-characters"),
        key_id: Some("fj-hub-1".into()),
    });
    assert_eq!(header, &signer.header(ts, &id, req.raw.as_bytes()));
    assert_ne!(header, &signer.header(ts, &id, b"tampered"));
}

//! The simulator against its contract: signatures, codes, idempotency,
//! outages and replies.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::reply::{ReplyError, ReplyRequest};
use super::*;

const NOTICE: &str = include_str!("../../../mappings/qinqing/cases/prompt-out/receiver-confirmation-due/expected.json");

async fn sim(cfg: QinqingConfig) -> (QinqingSim, CancellationToken) {
    let stop = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    (QinqingSim::start(listener, cfg, stop.clone()).expect("start"), stop)
}

fn notice() -> Value {
    serde_json::from_str(NOTICE).expect("case JSON")
}

/// Posts `body` signed with `secret` at `ts` (now when `None`).
async fn post(sim: &QinqingSim, body: &[u8], secret: &str, ts: Option<i64>) -> (u16, HeaderMap, Value) {
    let ts = ts.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let id = "msg_01JPB6W3N8Q4R2T5V7X9Y1Z3A5";
    let signer = Signer::new(&SignatureConfig {
        algorithm: "hmac-sm3".into(),
        secret: Secret::new(secret),
        key_id: None,
    });
    let r = reqwest::Client::new()
        .post(sim.url(NOTICES_PATH))
        .header("content-type", "application/json")
        .header("ce-id", id)
        .header("x-wastehub-timestamp", ts.to_string())
        .header("x-wastehub-signature", signer.header(ts, id, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn accepts_a_signed_notice_once_and_answers_a_repeat_alike() {
    let (sim, stop) = sim(QinqingConfig::default()).await;
    let body = serde_json::to_vec(&notice()).expect("json");
    let (status, _, first) = post(&sim, &body, DEV_SECRET, None).await;
    assert_eq!(status, 200);
    assert_eq!(first, json!({"code": "0000", "message": "接收成功", "receiptNo": "QQTZ00000001"}));
    let (_, _, again) = post(&sim, &body, DEV_SECRET, None).await;
    assert_eq!(again, first, "a repeat gets the first answer");
    let accepted = sim.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].notice_id, "NT-2026-0316-000871");
    assert_eq!(accepted[0].notice, notice());
    let c = sim.counts();
    assert_eq!((c.accepted, c.duplicates), (1, 1));
    stop.cancel();
}

#[tokio::test]
async fn refuses_wrong_signatures_and_stale_timestamps_with_401() {
    let (sim, stop) = sim(QinqingConfig::default()).await;
    let body = serde_json::to_vec(&notice()).expect("json");
    let (status, _, a) = post(&sim, &body, "another-secret-of-some-length", None).await;
    assert_eq!((status, a["code"].as_str()), (401, Some("4010")));
    let stale = chrono::Utc::now().timestamp() - MAX_SKEW_SECS - 60;
    let (status, _, a) = post(&sim, &body, DEV_SECRET, Some(stale)).await;
    assert_eq!((status, a["code"].as_str()), (401, Some("4011")));
    let r = reqwest::Client::new()
        .post(sim.url(NOTICES_PATH))
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401, "unsigned");
    assert_eq!(sim.counts().unauthorized, 3);
    assert!(sim.accepted().is_empty());
    stop.cancel();
}

#[tokio::test]
async fn an_empty_secret_accepts_nothing() {
    let (sim, stop) = sim(QinqingConfig {
        signing_secret: Secret::default(),
        ..QinqingConfig::default()
    })
    .await;
    let body = serde_json::to_vec(&notice()).expect("json");
    let (status, _, _) = post(&sim, &body, "", None).await;
    assert_eq!(status, 401);
    stop.cancel();
}

#[tokio::test]
async fn refuses_malformed_and_invalid_notices_permanently() {
    let (sim, stop) = sim(QinqingConfig::default()).await;
    let (status, _, a) = post(&sim, b"{\"requestId\": ", DEV_SECRET, None).await;
    assert_eq!(status, 200);
    assert_eq!(a["code"], "4001");
    assert!(a["message"].as_str().is_some_and(|m| m.contains("第1行")), "{a}");
    let mut bad = notice();
    bad["receivers"][0]["usci"] = json!("91350181MA31X2K5");
    bad["level"] = json!("4");
    let (_, _, a) = post(&sim, &serde_json::to_vec(&bad).expect("json"), DEV_SECRET, None).await;
    assert_eq!(
        a,
        json!({"code": "4002", "message": "报文不符合接口规范", "errors": ["/level", "/receivers/0/usci"]})
    );
    assert_eq!(sim.counts().refused, 2);
    stop.cancel();
}

#[tokio::test]
async fn outages_answer_maintenance_or_busy_until_they_end() {
    let (sim, stop) = sim(QinqingConfig::default()).await;
    let body = serde_json::to_vec(&notice()).expect("json");
    sim.set_outage(Some(Outage::Maintenance));
    let (status, headers, a) = post(&sim, &body, DEV_SECRET, None).await;
    assert_eq!((status, a["code"].as_str()), (503, Some("5030")));
    assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let r = reqwest::Client::new()
        .post(sim.url("/_sim/outage"))
        .json(&json!({"down": true, "answer": "busy"}))
        .send()
        .await
        .expect("outage");
    assert_eq!(r.status(), 204);
    let (status, _, a) = post(&sim, &body, DEV_SECRET, None).await;
    assert_eq!((status, a["code"].as_str()), (200, Some("5001")));
    sim.set_outage(None);
    let (_, _, a) = post(&sim, &body, DEV_SECRET, None).await;
    assert_eq!(a["code"], "0000");
    let counts: Value = reqwest::get(sim.url("/_sim/counts"))
        .await
        .expect("counts")
        .json()
        .await
        .expect("json");
    assert_eq!((counts["unavailable"].as_u64(), counts["busy"].as_u64()), (Some(1), Some(1)));
    stop.cancel();
}

/// A stand-in for the hub's document endpoint: records the key and body.
async fn fake_hub() -> (String, Arc<Mutex<Vec<(String, Value)>>>, CancellationToken) {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/api/v1/documents/prompt",
        axum::routing::post(move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let record = record.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                record.lock().expect("lock").push((auth.to_string(), body));
                (StatusCode::ACCEPTED, axum::Json(json!({"id": "msg_1", "status": "accepted"})))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    crate::sim::serve(listener, app, stop.clone());
    (url, seen, stop)
}

#[tokio::test]
async fn replies_to_an_accepted_notice_reach_the_hub_in_the_contract_format() {
    let (hub, seen, hub_stop) = fake_hub().await;
    let (sim, stop) = sim(QinqingConfig {
        hub_url: Some(hub),
        hub_key: Secret::new("qq-key"),
        ..QinqingConfig::default()
    })
    .await;
    let unknown = sim
        .send_reply(ReplyRequest {
            notice_id: "NT-nope".into(),
            ..ReplyRequest::default()
        })
        .await;
    assert!(matches!(unknown, Err(ReplyError::UnknownNotice(_))), "{unknown:?}");
    post(&sim, &serde_json::to_vec(&notice()).expect("json"), DEV_SECRET, None).await;
    let no_date = sim
        .send_reply(ReplyRequest {
            notice_id: "NT-2026-0316-000871".into(),
            reply_type: Some("03".into()),
            ..ReplyRequest::default()
        })
        .await;
    assert!(matches!(no_date, Err(ReplyError::Invalid(_))), "{no_date:?}");
    let sent = sim
        .send_reply(ReplyRequest {
            notice_id: "NT-2026-0316-000871".into(),
            reply_type: Some("02".into()),
            user_name: Some("郑丽华".into()),
            ..ReplyRequest::default()
        })
        .await
        .expect("sent");
    assert_eq!(sent.status, 202);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "Bearer qq-key");
    let reply = &seen[0].1;
    assert_eq!(reply, &sent.reply);
    assert_eq!(reply["noticeId"], "NT-2026-0316-000871");
    assert_eq!(reply["replier"]["usci"], "91350181MA31X2K5N8");
    assert_eq!(reply["notice"]["bizObject"]["objId"], "20263501000517");
    assert_eq!(reply["toDepts"], json!([{"regionCode": "350181", "regionName": "福清市"}]));
    assert_eq!(sim.counts().replies, 1);
    stop.cancel();
    hub_stop.cancel();
}

#[tokio::test]
async fn without_a_hub_no_reply_is_sent() {
    let (sim, stop) = sim(QinqingConfig::default()).await;
    let r = sim
        .send_reply(ReplyRequest {
            notice_id: "NT-2026-0316-000871".into(),
            ..ReplyRequest::default()
        })
        .await;
    assert!(matches!(r, Err(ReplyError::NoHub)), "{r:?}");
    stop.cancel();
}

//! Simulator of the Qinqing service platform (亲清服务平台), serving its
//! proposed contract (`contracts/qinqing/`):
//!
//! - `POST /openapi/v1/notices`: verifies the HMAC-SM3 signature and its
//!   timestamp, validates the notice against the contract schema, answers
//!   with the contract's JSON codes, and is idempotent by `requestId` (a
//!   repeat gets the first answer again);
//! - `POST /_sim/outage` (`{"down": true, "answer": "maintenance" | "busy"}`),
//!   a failure share answered `5001`, `GET /_sim/accepted`, `GET /_sim/counts`,
//!   `GET /_sim/exchanges` (every request to the notices endpoint with the
//!   answer given), `POST /_sim/reset` (forget every notice, request, count
//!   and outage);
//! - `POST /_sim/reply`: an enterprise's reply to an accepted notice, posted
//!   to the hub configured at start ([`reply`]).
//!
//! What it must not do: reach any address but the hub it was started with.

pub mod reply;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::config::connector::SignatureConfig;
use crate::connectors::signature::Signer;

use super::{Answer, Exchange, ExchangeLog};

const NOTICE_SCHEMA: &str = include_str!("../../../contracts/qinqing/notice.schema.json");
const REPLY_SCHEMA: &str = include_str!("../../../contracts/qinqing/reply.schema.json");

/// The path the hub posts notices to.
pub const NOTICES_PATH: &str = "/openapi/v1/notices";
/// The signing secret the simulator uses when none is given (development only).
pub const DEV_SECRET: &str = "qinqing-sim-signing-secret";
/// How far a request's timestamp may be from the simulator's clock.
pub const MAX_SKEW_SECS: i64 = 300;
/// Largest request body read (notices are a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct QinqingConfig {
    /// The HMAC-SM3 secret shared with the hub; every notice must be signed with it.
    pub signing_secret: Secret,
    /// Share of notices answered `5001` (busy, 0.0-1.0).
    pub fail_share: f64,
    /// The hub's base URL, where replies are posted (`/api/v1/documents/prompt`).
    pub hub_url: Option<String>,
    /// The platform's API key at the hub.
    pub hub_key: Secret,
}

impl Default for QinqingConfig {
    fn default() -> Self {
        Self {
            signing_secret: Secret::new(DEV_SECRET),
            fail_share: 0.0,
            hub_url: None,
            hub_key: Secret::default(),
        }
    }
}

/// One accepted notice document.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Accepted {
    /// `requestId` (the hub's message id).
    pub request_id: String,
    /// `noticeId`.
    pub notice_id: String,
    /// `noticeType` (01, 02, 03).
    pub notice_type: String,
    /// The receipt given.
    pub receipt_no: String,
    /// The notice as received.
    pub notice: Value,
    /// The answer given.
    pub answer: Value,
}

/// What the simulator counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Notices accepted (code 0000), repeats not counted again.
    pub accepted: u64,
    /// Repeats answered with the first answer.
    pub duplicates: u64,
    /// Refused by the contract (4001, 4002).
    pub refused: u64,
    /// Refused for the signature or its timestamp (401).
    pub unauthorized: u64,
    /// Answered 5001 (busy: failure share or busy outage).
    pub busy: u64,
    /// Answered 503 (maintenance outage).
    pub unavailable: u64,
    /// Replies posted to the hub.
    pub replies: u64,
}

/// Which temporary failure an outage shows.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outage {
    /// `503` with code 5030 and `Retry-After: 1`.
    #[default]
    Maintenance,
    /// `200` with code 5001.
    Busy,
}

#[derive(Default)]
struct Book {
    accepted: Vec<Accepted>,
    exchanges: ExchangeLog,
    by_request: HashMap<String, Value>,
    outage: Option<Outage>,
    counts: Counts,
    reply_seq: u64,
    hub: Hub,
}

/// Where replies go: set at start, or later by a test that starts the hub
/// after the simulator.
#[derive(Clone, Default)]
struct Hub {
    url: Option<String>,
    key: Secret,
}

struct Inner {
    cfg: QinqingConfig,
    signer: Signer,
    book: Mutex<Book>,
    notice: jsonschema::Validator,
    reply: jsonschema::Validator,
    client: reqwest::Client,
}

/// A running simulator.
#[derive(Clone)]
pub struct QinqingSim {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    inner: Arc<Inner>,
}

impl QinqingSim {
    /// Starts on `listener` until `stop`.
    pub fn start(listener: TcpListener, cfg: QinqingConfig, stop: CancellationToken) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let signer = Signer::new(&SignatureConfig {
            algorithm: "hmac-sm3".into(),
            secret: cfg.signing_secret.clone(),
            key_id: None,
        });
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let inner = Arc::new(Inner {
            notice: super::contract_schema(NOTICE_SCHEMA, "qinqing notice")?,
            reply: super::contract_schema(REPLY_SCHEMA, "qinqing reply")?,
            signer,
            book: Mutex::new(Book {
                hub: Hub {
                    url: cfg.hub_url.clone(),
                    key: cfg.hub_key.clone(),
                },
                ..Book::default()
            }),
            cfg,
            client,
        });
        let app = Router::new()
            .route(NOTICES_PATH, post(notices))
            .route("/_sim/accepted", get(accepted))
            .route("/_sim/counts", get(counts))
            .route("/_sim/exchanges", get(exchanges))
            .route("/_sim/outage", post(outage))
            .route("/_sim/reset", post(reset))
            .route("/_sim/reply", post(reply::handler))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(inner.clone());
        super::serve(listener, app, stop);
        Ok(Self { addr, inner })
    }

    /// A URL on the simulator.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What it accepted, in order.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.inner.book().accepted.clone()
    }

    /// Every request to the notices endpoint with the answer given, oldest
    /// first (the last ones only; see [`super::Exchange`]).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.inner.book().exchanges.all()
    }

    /// Its counters.
    pub fn counts(&self) -> Counts {
        self.inner.book().counts.clone()
    }

    /// Starts (`Some`) or ends (`None`) an outage.
    pub fn set_outage(&self, outage: Option<Outage>) {
        self.inner.book().outage = outage;
    }

    /// Sets the hub replies are posted to (its base URL) and the platform's key there.
    pub fn set_hub(&self, url: &str, key: Secret) {
        self.inner.book().hub = Hub {
            url: Some(url.to_string()),
            key,
        };
    }

    /// Forgets every notice, request, answer, count and outage (the hub stays).
    pub fn reset(&self) {
        let mut book = self.inner.book();
        let hub = book.hub.clone();
        *book = Book { hub, ..Book::default() };
    }

    /// Posts an enterprise's reply to an accepted notice to the hub; see
    /// [`reply::ReplyRequest`]. Returns the hub's status, the reply sent
    /// and the hub's answer.
    pub async fn send_reply(&self, req: reply::ReplyRequest) -> Result<reply::Sent, reply::ReplyError> {
        reply::send(&self.inner, req).await
    }
}

impl Inner {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Checks `X-Wastehub-Timestamp` and `X-Wastehub-Signature` over
/// `timestamp "\n" ce-id "\n" body`; the error is the contract's code and message.
fn verify(st: &Inner, headers: &HeaderMap, body: &[u8]) -> Result<(), (&'static str, &'static str)> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sig), Some(id)) = (text("x-wastehub-timestamp"), text("x-wastehub-signature"), text("ce-id")) else {
        return Err(("4010", "签名校验失败：缺少签名、时间戳或请求编号"));
    };
    let Ok(ts) = ts.trim().parse::<i64>() else {
        return Err(("4010", "签名校验失败：时间戳格式错误"));
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > MAX_SKEW_SECS {
        return Err(("4011", "时间戳超出有效期"));
    }
    // `hmac-sm3=<hex>[; keyId=<id>]`; only SM3 is accepted.
    let Some(given) = sig.split(';').next().and_then(|v| v.trim().strip_prefix("hmac-sm3=")) else {
        return Err(("4010", "签名校验失败：仅支持hmac-sm3"));
    };
    if !st.signer.has_secret() || !constant_time_eq(given.as_bytes(), st.signer.sign(ts, id, body).as_bytes()) {
        return Err(("4010", "签名校验失败"));
    }
    Ok(())
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a forged signature was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn notices(State(st): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Answer {
    let answer = answer_notice(&st, &headers, &body);
    let record = answer.record(&headers, &body);
    st.book().exchanges.push(record);
    answer
}

/// The contract's answer to one request on the notices endpoint.
fn answer_notice(st: &Inner, headers: &HeaderMap, body: &[u8]) -> Answer {
    {
        let mut book = st.book();
        match book.outage {
            Some(Outage::Maintenance) => {
                book.counts.unavailable += 1;
                return Answer::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"code": "5030", "message": "系统维护中，请稍后重试"}),
                )
                .retry_after("1");
            }
            Some(Outage::Busy) => {
                book.counts.busy += 1;
                return Answer::json(StatusCode::OK, &busy());
            }
            None => {}
        }
    }
    if let Err((code, message)) = verify(st, headers, body) {
        st.book().counts.unauthorized += 1;
        return Answer::json(StatusCode::UNAUTHORIZED, &json!({"code": code, "message": message}));
    }
    if st.cfg.fail_share > 0.0 && fastrand::f64() < st.cfg.fail_share {
        st.book().counts.busy += 1;
        return Answer::json(StatusCode::OK, &busy());
    }
    let (status, body) = judge_notice(st, body);
    Answer::json(status, &body)
}

fn busy() -> Value {
    json!({"code": "5001", "message": "系统繁忙，请稍后重试"})
}

/// Validates and records one signed notice; the answer by the contract.
fn judge_notice(st: &Inner, body: &[u8]) -> (StatusCode, Value) {
    let notice: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            st.book().counts.refused += 1;
            let message = format!("报文不是合法的JSON：第{}行第{}列", e.line(), e.column());
            return (StatusCode::OK, json!({"code": "4001", "message": message}));
        }
    };
    let mut fields: Vec<String> = st.notice.iter_errors(&notice).map(|e| e.instance_path().to_string()).collect();
    if !fields.is_empty() {
        fields.sort();
        fields.dedup();
        st.book().counts.refused += 1;
        return (
            StatusCode::OK,
            json!({"code": "4002", "message": "报文不符合接口规范", "errors": fields}),
        );
    }
    // The schema guarantees these strings.
    let text = |p: &str| notice.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let request_id = text("/requestId");
    let mut book = st.book();
    if let Some(first) = book.by_request.get(&request_id).cloned() {
        book.counts.duplicates += 1;
        return (StatusCode::OK, first);
    }
    let receipt_no = format!("QQTZ{:08}", book.accepted.len() + 1);
    let answer = json!({"code": "0000", "message": "接收成功", "receiptNo": receipt_no});
    book.by_request.insert(request_id.clone(), answer.clone());
    book.counts.accepted += 1;
    book.accepted.push(Accepted {
        request_id,
        notice_id: text("/noticeId"),
        notice_type: text("/noticeType"),
        receipt_no,
        notice,
        answer: answer.clone(),
    });
    (StatusCode::OK, answer)
}

async fn accepted(State(st): State<Arc<Inner>>) -> axum::Json<Vec<Accepted>> {
    axum::Json(st.book().accepted.clone())
}

async fn counts(State(st): State<Arc<Inner>>) -> axum::Json<Counts> {
    axum::Json(st.book().counts.clone())
}

async fn exchanges(State(st): State<Arc<Inner>>) -> axum::Json<Vec<Exchange>> {
    axum::Json(st.book().exchanges.all())
}

#[derive(Deserialize)]
struct OutageBody {
    down: bool,
    #[serde(default)]
    answer: Outage,
}

async fn outage(State(st): State<Arc<Inner>>, axum::Json(b): axum::Json<OutageBody>) -> StatusCode {
    st.book().outage = b.down.then_some(b.answer);
    StatusCode::NO_CONTENT
}

async fn reset(State(st): State<Arc<Inner>>) -> StatusCode {
    let mut book = st.book();
    let hub = book.hub.clone();
    *book = Book { hub, ..Book::default() };
    StatusCode::NO_CONTENT
}

//! A fake partner: an axum server on port 0 that records every request and
//! answers as the test scripts it (Svix `TestReceiver` style).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::Value;

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Request {
    /// `ce-id` header.
    pub ce_id: String,
    /// `Idempotency-Key` header.
    pub idempotency_key: String,
    /// Parsed body (JSON bodies; `Null` otherwise).
    pub body: Value,
    /// The body as text.
    pub raw: String,
    /// `Content-Type` header.
    pub content_type: String,
    /// `X-Wastehub-Signature` and `X-Wastehub-Timestamp` headers.
    pub signature: (String, String),
    /// Arrival time.
    pub at: Instant,
    /// The answer given.
    pub status: u16,
}

impl Request {
    /// The event's subject.
    pub fn subject(&self) -> &str {
        self.body["subject"].as_str().unwrap_or("")
    }
}

/// An answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Retry-After header.
    pub retry_after: Option<String>,
    /// Delay before answering.
    pub delay: Duration,
}

impl Reply {
    /// A plain answer.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: "{\"code\":\"0000\"}".into(),
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
    /// With a body.
    pub fn body(mut self, b: &str) -> Self {
        self.body = b.into();
        self
    }
    /// With Retry-After.
    pub fn retry_after(mut self, v: &str) -> Self {
        self.retry_after = Some(v.into());
        self
    }
    /// Answer after a delay.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Script = Arc<dyn Fn(&Request, usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct St {
    log: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Script>>,
    inflight: Arc<AtomicUsize>,
    max_inflight: Arc<AtomicUsize>,
}

/// A running fake partner.
#[derive(Clone)]
pub struct FakePartner {
    /// Its URL.
    pub url: String,
    log: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Script>>,
    max_inflight: Arc<AtomicUsize>,
}

impl FakePartner {
    /// The most requests this partner was answering at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.max_inflight.load(Ordering::SeqCst)
    }

    /// Starts a partner that answers 200 `{"code":"0000"}` to everything.
    pub async fn start() -> Self {
        Self::scripted(|_, _| Reply::status(200)).await
    }

    /// Starts a partner whose answers come from `script(request, index)`.
    pub async fn scripted(script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/in", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Arc::new(script)));
        let max_inflight = Arc::new(AtomicUsize::new(0));
        let st = St {
            log: log.clone(),
            script: script.clone(),
            inflight: Arc::default(),
            max_inflight: max_inflight.clone(),
        };
        let app = Router::new().route("/in", any(handle)).with_state(st);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            log,
            script,
            max_inflight,
        }
    }

    /// Replaces the script (e.g. end an outage).
    pub fn set_script(&self, script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) {
        *self.script.lock().expect("lock") = Arc::new(script);
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("lock").clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Request> {
        self.requests().into_iter().filter(|r| (200..300).contains(&r.status)).collect()
    }
}

async fn handle(State(st): State<St>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut req = Request {
        ce_id: h("ce-id"),
        idempotency_key: h("idempotency-key"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: String::from_utf8_lossy(&body).into_owned(),
        content_type: h("content-type"),
        signature: (h("x-wastehub-signature"), h("x-wastehub-timestamp")),
        at: Instant::now(),
        status: 0,
    };
    let index = st.log.lock().expect("lock").len();
    let script = st.script.lock().expect("lock").clone();
    let reply = script(&req, index);
    let now = st.inflight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_inflight.fetch_max(now, Ordering::SeqCst);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    st.inflight.fetch_sub(1, Ordering::SeqCst);
    req.status = reply.status;
    st.log.lock().expect("lock").push(req);
    let mut resp = (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK), reply.body).into_response();
    if let Some(ra) = reply.retry_after
        && let Ok(v) = ra.parse()
    {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

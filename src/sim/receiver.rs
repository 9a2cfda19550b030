//! A CloudEvents receiver that acknowledges deliveries, optionally failing a
//! share of them with 503, and records each accepted event: message id,
//! subject, arrival time. Used as the stand-in for partners in the demo and
//! as the "fast local receiver" of the benchmark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One accepted delivery.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `ce-id` (hub message id).
    pub message_id: String,
    /// The request path (one receiver can stand in for several destinations).
    pub path: String,
    /// The event's subject.
    pub subject: String,
    /// The `benchseq` extension, when the sender numbered its events.
    pub seq: Option<u64>,
    /// When it arrived.
    pub at: Instant,
}

/// What the receiver has seen so far.
#[derive(Debug, Default)]
pub struct Record {
    /// Accepted deliveries, in arrival order.
    pub accepted: Vec<Seen>,
    /// Requests answered with a failure.
    pub failed: u64,
    /// How many times each path + message id arrived (duplicates > 1).
    pub per_id: HashMap<String, u32>,
}

/// How the receiver behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Behaviour {
    /// Share of requests answered 503 (0.0-1.0).
    pub fail_share: f64,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    /// What it recorded.
    pub record: Arc<Mutex<Record>>,
}

#[derive(Clone)]
struct St {
    record: Arc<Mutex<Record>>,
    behaviour: Behaviour,
}

impl Receiver {
    /// Starts on `listener`; stops on `stop`.
    pub fn start(listener: TcpListener, behaviour: Behaviour, stop: CancellationToken) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let record = Arc::new(Mutex::new(Record::default()));
        let app = Router::new()
            .route("/", post(accept))
            .route("/{*path}", post(accept))
            .with_state(St {
                record: record.clone(),
                behaviour,
            });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        Ok(Self { addr, record })
    }

    /// The URL to configure as a connector's `outbound.url`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

async fn accept(State(st): State<St>, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let at = Instant::now();
    let id = headers.get("ce-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if st.behaviour.fail_share > 0.0 && fastrand::f64() < st.behaviour.fail_share {
        st.record.lock().unwrap_or_else(|p| p.into_inner()).failed += 1;
        return (StatusCode::SERVICE_UNAVAILABLE, r#"{"code":"BUSY"}"#.to_string());
    }
    // Parse outside the lock: the receiver must not be the bottleneck.
    let event = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let subject = event.get("subject").and_then(|s| s.as_str()).unwrap_or_default().to_string();
    let seq = event.get("benchseq").and_then(serde_json::Value::as_u64);
    let path = uri.path().to_string();
    let mut rec = st.record.lock().unwrap_or_else(|p| p.into_inner());
    *rec.per_id.entry(format!("{path} {id}")).or_default() += 1;
    let receipt = rec.accepted.len() + 1;
    rec.accepted.push(Seen {
        message_id: id,
        path,
        subject,
        seq,
        at,
    });
    (StatusCode::OK, format!(r#"{{"code":"0000","receipt_id":"R{receipt:08}"}}"#))
}

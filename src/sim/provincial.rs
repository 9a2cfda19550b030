//! Simulator of the Fujian provincial solid-waste system, serving its
//! proposed contract (`contracts/provincial/`): `POST /events` with a
//! bearer token; manifests and ledger entries in the provincial JSON are
//! validated against the contract schemas (other types arrive as canonical
//! CloudEvents and are accepted as such); a configurable share of requests
//! fails with `503`; an outage answers `503` to every request, whatever its
//! method; what was accepted is recorded (`GET /_sim/accepted`), and every
//! request with the answer given (`GET /_sim/exchanges`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Answer, Exchange, ExchangeLog};

const MANIFEST_SCHEMA: &str = include_str!("../../contracts/provincial/manifest.schema.json");
const LEDGER_SCHEMA: &str = include_str!("../../contracts/provincial/ledger-entry.schema.json");

/// How the simulator behaves.
#[derive(Clone, Debug, Default)]
pub struct ProvincialConfig {
    /// The bearer token the hub must send; empty accepts any.
    pub token: String,
    /// Share of requests answered `503` (0.0-1.0).
    pub fail_share: f64,
}

/// One accepted document.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Accepted {
    /// `eventId` (provincial formats) or `id` (CloudEvents).
    pub event_id: String,
    /// `bizType`, or the CloudEvent `type`.
    pub kind: String,
    /// Manifest number or batch code, when the document has one.
    pub key: Option<String>,
    /// The receipt given.
    pub receipt_id: String,
}

#[derive(Default)]
struct Book {
    accepted: Vec<Accepted>,
    by_event: HashMap<String, String>,
    refused: u64,
    unavailable: u64,
    outage: bool,
    exchanges: ExchangeLog,
}

struct Inner {
    cfg: ProvincialConfig,
    book: Mutex<Book>,
    manifest: jsonschema::Validator,
    ledger: jsonschema::Validator,
}

/// A running simulator.
#[derive(Clone)]
pub struct ProvincialSim {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    inner: Arc<Inner>,
}

impl ProvincialSim {
    /// Starts on `listener` until `stop`.
    pub fn start(listener: TcpListener, cfg: ProvincialConfig, stop: CancellationToken) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            manifest: super::contract_schema(MANIFEST_SCHEMA, "provincial")?,
            ledger: super::contract_schema(LEDGER_SCHEMA, "provincial")?,
            cfg,
            book: Mutex::new(Book::default()),
        });
        let partner = Router::new()
            .route("/events", post(events))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), guard));
        let app = Router::new()
            .merge(partner)
            .route("/_sim/accepted", get(accepted))
            .route("/_sim/exchanges", get(exchanges))
            .route("/_sim/outage", post(outage))
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

    /// Documents refused by the contract.
    pub fn refused(&self) -> u64 {
        self.inner.book().refused
    }

    /// Every request to `/events` (the last 1024) with the answer given, oldest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.inner.book().exchanges.all()
    }

    /// Starts or ends an outage.
    pub fn set_outage(&self, down: bool) {
        self.inner.book().outage = down;
    }

    /// Forgets what was accepted, refused and exchanged (receipt numbers
    /// start again at `P0000000001`).
    pub fn reset(&self) {
        let mut book = self.inner.book();
        *book = Book {
            outage: book.outage,
            ..Book::default()
        };
    }
}

impl Inner {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// During an outage every request to `/events`, whatever its method (a
/// healthcheck's `OPTIONS` too), is answered `503`.
async fn guard(State(st): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    {
        let mut book = st.book();
        if book.outage {
            book.unavailable += 1;
            return Answer::text(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                .retry_after("1")
                .into_response();
        }
    }
    next.run(req).await
}

async fn events(State(st): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = answer_event(&st, &headers, &body);
    let record = answer.record(&headers, &body);
    st.book().exchanges.push(record);
    answer.into_response()
}

fn answer_event(st: &Inner, headers: &HeaderMap, body: &[u8]) -> Answer {
    if st.cfg.fail_share > 0.0 && fastrand::f64() < st.cfg.fail_share {
        st.book().unavailable += 1;
        return Answer::text(StatusCode::SERVICE_UNAVAILABLE, "unavailable").retry_after("1");
    }
    if !st.cfg.token.is_empty() {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(st.cfg.token.as_str()) {
            return Answer::json(StatusCode::UNAUTHORIZED, &json!({"code": "E401", "message": "bad token"}));
        }
    }
    let refuse = |message: String| {
        st.book().refused += 1;
        Answer::json(StatusCode::BAD_REQUEST, &json!({"code": "E400", "message": message}))
    };
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return refuse(format!("not JSON: {e}")),
    };
    let text = |p: &str| doc.pointer(p).and_then(Value::as_str).map(str::to_string);
    let (event_id, kind, key, validator) = match (text("/bizType"), text("/specversion")) {
        (Some(biz), _) if biz.starts_with("MANIFEST_") => (text("/eventId"), biz, text("/manifest/ldbh"), Some(&st.manifest)),
        (Some(biz), _) if biz == "LEDGER_ENTRY" => (text("/eventId"), biz, text("/tz/pcbm"), Some(&st.ledger)),
        (Some(biz), _) => return refuse(format!("unknown bizType {biz}")),
        (None, Some(_)) => (text("/id"), text("/type").unwrap_or_default(), text("/subject"), None),
        (None, None) => return refuse("neither a provincial document nor a CloudEvent".into()),
    };
    if let Some(v) = validator {
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path())).collect();
        if !errors.is_empty() {
            return refuse(errors.join("; "));
        }
    }
    let Some(event_id) = event_id else {
        return refuse("no event id".into());
    };
    let mut book = st.book();
    if let Some(receipt) = book.by_event.get(&event_id).cloned() {
        return Answer::json(StatusCode::OK, &json!({"code": "0000", "receipt_id": receipt, "duplicate": true}));
    }
    let receipt_id = format!("P{:010}", book.accepted.len() + 1);
    book.by_event.insert(event_id.clone(), receipt_id.clone());
    book.accepted.push(Accepted {
        event_id,
        kind,
        key,
        receipt_id: receipt_id.clone(),
    });
    Answer::json(StatusCode::OK, &json!({"code": "0000", "receipt_id": receipt_id}))
}

async fn accepted(State(st): State<Arc<Inner>>) -> axum::Json<Vec<Accepted>> {
    axum::Json(st.book().accepted.clone())
}

async fn exchanges(State(st): State<Arc<Inner>>) -> axum::Json<Vec<Exchange>> {
    axum::Json(st.book().exchanges.all())
}

#[derive(serde::Deserialize)]
struct OutageBody {
    down: bool,
}

async fn outage(State(st): State<Arc<Inner>>, axum::Json(b): axum::Json<OutageBody>) -> StatusCode {
    st.book().outage = b.down;
    StatusCode::NO_CONTENT
}

//! Simulator of the national solid waste management information system,
//! serving its proposed contract (`contracts/national/`): an OAuth2 token
//! endpoint (client credentials), the XML exchange endpoint that checks the
//! token, enforces the published rate limit with `429`, fails a configurable
//! share of requests with `503`, answers `503` during an outage or a
//! maintenance period (every request, whatever its method), validates each
//! document against the contract schema and answers with an XML ack code,
//! and records what it accepted (`GET /_sim/accepted`) and every exchange
//! request with its answer (`GET /_sim/exchanges`) so a test or the demo can
//! compare. A valid document whose `nx:Header/nx:MessageId` starts with
//! `SIM-E500` is answered `E500` (a temporary failure on demand, as payment
//! sandboxes do with test card numbers).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Answer, Exchange, ExchangeLog};
use crate::mapping::xml_in::{self, Prefixes};

/// The national contract's namespace.
pub const NAMESPACE: &str = "urn:wastehub:proposed:national:v1";
/// Message ids starting with this are answered `E500` (see the module docs).
pub const E500_TRIGGER: &str = "SIM-E500";
const MANIFEST_SCHEMA: &str = include_str!("../../contracts/national/manifest.schema.json");
const LEDGER_SCHEMA: &str = include_str!("../../contracts/national/ledger-entry.schema.json");

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct NationalConfig {
    /// The client id the hub must present.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// Published rate limit, requests per second (burst of the same size).
    pub rate_per_second: u32,
    /// Share of exchange requests answered `503` (0.0-1.0).
    pub fail_share: f64,
}

impl Default for NationalConfig {
    fn default() -> Self {
        Self {
            client_id: "wastehub-fj".into(),
            client_secret: "national-sim-secret".into(),
            token_lifetime: Duration::from_secs(3600),
            rate_per_second: 50,
            fail_share: 0.0,
        }
    }
}

/// One accepted document.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Accepted {
    /// `nx:Header/nx:MessageId` (the hub's message id).
    pub message_id: String,
    /// Root element: `nx:Manifest` or `nx:LedgerEntry`.
    pub document: String,
    /// Manifest number or ledger batch code.
    pub key: String,
    /// `nx:Header/nx:Action` for manifests (CREATE, UPDATE).
    pub action: Option<String>,
    /// `nx:Version` for manifests.
    pub version: Option<String>,
    /// The receipt id given.
    pub receipt_id: String,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
}

/// What the simulator counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Documents accepted (code 0000), duplicates not counted again.
    pub accepted: u64,
    /// Duplicates answered with the original receipt.
    pub duplicates: u64,
    /// Refused by the contract (code E101).
    pub refused: u64,
    /// Answered 429.
    pub rate_limited: u64,
    /// Answered 503 (failure share, outage).
    pub unavailable: u64,
    /// Answered 401.
    pub unauthorized: u64,
    /// Tokens issued.
    pub tokens: u64,
}

#[derive(Default)]
struct Book {
    accepted: Vec<Accepted>,
    by_message: HashMap<String, String>,
    tokens: HashMap<String, Instant>,
    counts: Counts,
    outage: bool,
    exchanges: ExchangeLog,
}

struct Inner {
    cfg: NationalConfig,
    book: Mutex<Book>,
    limiter: DefaultDirectRateLimiter,
    manifest: jsonschema::Validator,
    ledger: jsonschema::Validator,
    prefixes: Prefixes,
    started: Instant,
}

/// A running simulator.
#[derive(Clone)]
pub struct NationalSim {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    inner: Arc<Inner>,
}

impl NationalSim {
    /// Starts on `listener` until `stop`.
    pub fn start(listener: TcpListener, cfg: NationalConfig, stop: CancellationToken) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let rate = NonZeroU32::new(cfg.rate_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let ns = [("nx".to_string(), NAMESPACE.to_string())];
        let inner = Arc::new(Inner {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(rate)),
            manifest: super::contract_schema(MANIFEST_SCHEMA, "national")?,
            ledger: super::contract_schema(LEDGER_SCHEMA, "national")?,
            prefixes: Prefixes::new(ns.iter().map(|(p, u)| (p, u))),
            cfg,
            book: Mutex::new(Book::default()),
            started: Instant::now(),
        });
        let partner = Router::new()
            .route("/oauth/token", post(token))
            .route("/exchange", post(exchange))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), guard));
        let app = Router::new()
            .merge(partner)
            .route("/_sim/accepted", get(accepted))
            .route("/_sim/exchanges", get(exchanges))
            .route("/_sim/counts", get(counts))
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

    /// Its counters.
    pub fn counts(&self) -> Counts {
        self.inner.book().counts.clone()
    }

    /// Every exchange request (the last 1024) with the answer given, oldest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.inner.book().exchanges.all()
    }

    /// Starts or ends an outage (every request answered `503`).
    pub fn set_outage(&self, down: bool) {
        self.inner.book().outage = down;
    }

    /// Forgets what was accepted, counted and exchanged (receipt numbers
    /// start again at `GF0000000001`); issued tokens stay valid.
    pub fn reset(&self) {
        let mut book = self.inner.book();
        let tokens = std::mem::take(&mut book.tokens);
        *book = Book {
            tokens,
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

fn unavailable(book: &mut Book, why: &str) -> Answer {
    book.counts.unavailable += 1;
    Answer::text(StatusCode::SERVICE_UNAVAILABLE, why).retry_after("1")
}

/// During an outage every request to the partner endpoints, whatever its
/// method (a healthcheck's `OPTIONS` too), is answered `503`.
async fn guard(State(st): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    {
        let mut book = st.book();
        if book.outage {
            return unavailable(&mut book, "maintenance").into_response();
        }
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
}

async fn token(State(st): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut book = st.book();
    let form: Option<TokenForm> = serde_urlencoded_form(&body);
    if form.as_ref().is_none_or(|f| f.grant_type != "client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let expected = format!("{}:{}", st.cfg.client_id, st.cfg.client_secret);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64_decode(b.trim()));
    if presented.as_deref() != Some(expected.as_bytes()) {
        book.counts.unauthorized += 1;
        return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "invalid_client"}))).into_response();
    }
    let token = format!("nt-{}", ulid::Ulid::generate());
    book.tokens.insert(token.clone(), Instant::now() + st.cfg.token_lifetime);
    book.counts.tokens += 1;
    axum::Json(serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": st.cfg.token_lifetime.as_secs(),
    }))
    .into_response()
}

/// An XML ack: `code`, and either a receipt id or a message (text, escaped).
fn ack(code: &str, element: &str, text: &str) -> Answer {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    Answer::new(
        StatusCode::OK,
        "application/xml; charset=utf-8",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><nx:Ack xmlns:nx=\"{NAMESPACE}\"><nx:Code>{code}</nx:Code><nx:{element}>{escaped}</nx:{element}></nx:Ack>"
        ),
    )
}

async fn exchange(State(st): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = answer_exchange(&st, &headers, &body);
    let record = answer.record(&headers, &body);
    st.book().exchanges.push(record);
    answer.into_response()
}

fn answer_exchange(st: &Inner, headers: &HeaderMap, body: &[u8]) -> Answer {
    {
        let mut book = st.book();
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if book.tokens.get(token).is_none_or(|exp| *exp < Instant::now()) {
            book.counts.unauthorized += 1;
            return Answer::text(StatusCode::UNAUTHORIZED, "invalid or expired token");
        }
        if st.limiter.check().is_err() {
            book.counts.rate_limited += 1;
            return Answer::text(StatusCode::TOO_MANY_REQUESTS, "rate limit 50/s").retry_after("1");
        }
        if st.cfg.fail_share > 0.0 && fastrand::f64() < st.cfg.fail_share {
            return unavailable(&mut book, "busy");
        }
    }
    let (root, tree) = match xml_in::read(body, &st.prefixes) {
        Ok(r) => r,
        Err(e) => {
            st.book().counts.refused += 1;
            return ack("E100", "Message", &format!("line {}, column {}: {}", e.line, e.column, e.message));
        }
    };
    let (validator, key_path) = match root.as_str() {
        "nx:Manifest" => (&st.manifest, "/nx:ManifestNo"),
        "nx:LedgerEntry" => (&st.ledger, "/nx:BatchCode"),
        other => {
            st.book().counts.refused += 1;
            return ack("E102", "Message", &format!("unknown document {other}"));
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(&tree)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if !errors.is_empty() {
        st.book().counts.refused += 1;
        return ack("E101", "Message", &errors.join("; "));
    }
    let text = |p: &str| tree.pointer(p).and_then(Value::as_str).map(str::to_string);
    let message_id = text("/nx:Header/nx:MessageId").unwrap_or_default();
    if message_id.starts_with(E500_TRIGGER) {
        return ack("E500", "Message", "temporary failure, try again later");
    }
    let mut book = st.book();
    if let Some(receipt) = book.by_message.get(&message_id).cloned() {
        book.counts.duplicates += 1;
        return ack("0000", "ReceiptId", &receipt);
    }
    let receipt_id = format!("GF{:010}", book.accepted.len() + 1);
    book.by_message.insert(message_id.clone(), receipt_id.clone());
    book.counts.accepted += 1;
    book.accepted.push(Accepted {
        message_id,
        document: root,
        key: text(key_path).unwrap_or_default(),
        action: text("/nx:Header/nx:Action"),
        version: text("/nx:Version"),
        receipt_id: receipt_id.clone(),
        at_ms: u64::try_from(st.started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    ack("0000", "ReceiptId", &receipt_id)
}

async fn accepted(State(st): State<Arc<Inner>>) -> axum::Json<Vec<Accepted>> {
    axum::Json(st.book().accepted.clone())
}

async fn exchanges(State(st): State<Arc<Inner>>) -> axum::Json<Vec<Exchange>> {
    axum::Json(st.book().exchanges.all())
}

async fn counts(State(st): State<Arc<Inner>>) -> axum::Json<Counts> {
    axum::Json(st.book().counts.clone())
}

#[derive(Deserialize)]
struct OutageBody {
    down: bool,
}

async fn outage(State(st): State<Arc<Inner>>, axum::Json(b): axum::Json<OutageBody>) -> StatusCode {
    st.book().outage = b.down;
    StatusCode::NO_CONTENT
}

/// `grant_type=client_credentials&scope=...` without another dependency.
fn serde_urlencoded_form(body: &[u8]) -> Option<TokenForm> {
    let text = std::str::from_utf8(body).ok()?;
    let grant = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "grant_type")?
        .1;
    Some(TokenForm {
        grant_type: grant.to_string(),
    })
}

/// Standard base64 (RFC 4648) decoding for the Basic credentials.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(base64_decode("d2FzdGVodWI6czNjcmV0").unwrap(), b"wastehub:s3cret");
        assert!(base64_decode("not*base64").is_none());
    }
}

//! Simulator of a neighbouring province's hub (Jiangxi 36, Guangdong 44,
//! Zhejiang 33, ...) for the cross-province transfer negotiation, speaking
//! the letters wire protocol with signed CloudEvents (`src/letters/`):
//!
//! - `POST /letters`: receives the Fujian hub's signed letters and answers
//!   with a receipt signed by the province's key ([`receive`]): accepted,
//!   the stored receipt again for a repeat, refused for a bad signature
//!   (401) or a letter addressed to another province (422), 400 when it is
//!   no CloudEvent, 413 when too large, 503 during a simulated outage;
//! - on an accepted consultation it replies as scripted ([`reply`]): agree,
//!   disagree, agree late, or never, posting a signed `xp-reply` to the hub
//!   and checking the hub's receipt ([`send`]);
//! - control endpoints under `/_sim/`: `exchanges`, `letters`, `sent`,
//!   `script`, `outage`, `reset`, `send` (any letter, optionally forged by a
//!   change after signing) and `resend-last` (a true duplicate).
//!
//! What it must not do: reach any address but the hub it was configured
//! with (a request can choose what is sent, never where).

pub mod receive;
pub mod reply;
pub mod send;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::letters::PrivateKey;
use crate::letters::keys::PartnerKeys;

use super::{Exchange, ExchangeLog};

pub use reply::Script;
pub use send::{SendError, SentLetter};

/// The path the Fujian hub posts letters to.
pub const LETTERS_PATH: &str = "/letters";
/// Where the hub receives letters from provinces (appended to its base URL).
pub const HUB_LETTERS_PATH: &str = "/api/v1/xp/letters";
/// Fujian's province code: the hub the simulator talks to.
pub const FUJIAN: &str = "35";

/// How the province answers a consultation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// Agrees, after the reply delay.
    #[default]
    Agree,
    /// Disagrees (with reasons), after the reply delay.
    Disagree,
    /// Agrees, but only after `late_after` (past a deadline the hub watches).
    Late,
    /// Never replies.
    Silent,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Agree => "agree",
            Self::Disagree => "disagree",
            Self::Late => "late",
            Self::Silent => "silent",
        })
    }
}

impl std::str::FromStr for Answer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "agree" => Ok(Self::Agree),
            "disagree" => Ok(Self::Disagree),
            "late" => Ok(Self::Late),
            "silent" => Ok(Self::Silent),
            other => Err(format!("unknown answer {other:?} (use agree, disagree, late or silent)")),
        }
    }
}

/// How the simulator behaves.
#[derive(Debug)]
pub struct ProvinceConfig {
    /// The province's 2-digit code (36 Jiangxi, 44 Guangdong, 33 Zhejiang, ...).
    pub code: String,
    /// The province hub's own signing key (letters and receipts).
    pub key: PrivateKey,
    /// The Fujian hub's public keys: its letters and receipts must verify with one.
    pub hub_keys: PartnerKeys,
    /// The Fujian hub's base URL; replies go to `<hub_url>/api/v1/xp/letters`.
    pub hub_url: Option<String>,
    /// The answer to a consultation without a script of its own.
    pub default_answer: Answer,
    /// How long after accepting a consultation the reply is sent.
    pub reply_delay: Duration,
    /// How long a `Late` reply waits.
    pub late_after: Duration,
    /// The province's abbreviation in letter numbers (赣 in 赣环固函〔2026〕3号).
    pub abbreviation: String,
}

impl ProvinceConfig {
    /// The defaults for `code`: 200 ms reply delay, 3 s for a late reply,
    /// agreeing, the abbreviation of the province (`?` when unknown).
    pub fn new(code: &str, key: PrivateKey, hub_keys: PartnerKeys) -> Self {
        Self {
            code: code.to_string(),
            key,
            hub_keys,
            hub_url: None,
            default_answer: Answer::Agree,
            reply_delay: Duration::from_millis(200),
            late_after: Duration::from_secs(3),
            abbreviation: abbreviation(code).unwrap_or("?").to_string(),
        }
    }
}

/// The one-character abbreviation a province's letter numbers carry.
pub fn abbreviation(code: &str) -> Option<&'static str> {
    Some(match code {
        "11" => "京",
        "12" => "津",
        "13" => "冀",
        "14" => "晋",
        "15" => "蒙",
        "21" => "辽",
        "22" => "吉",
        "23" => "黑",
        "31" => "沪",
        "32" => "苏",
        "33" => "浙",
        "34" => "皖",
        "35" => "闽",
        "36" => "赣",
        "37" => "鲁",
        "41" => "豫",
        "42" => "鄂",
        "43" => "湘",
        "44" => "粤",
        "45" => "桂",
        "46" => "琼",
        "50" => "渝",
        "51" => "川",
        "52" => "黔",
        "53" => "云",
        "54" => "藏",
        "61" => "陕",
        "62" => "甘",
        "63" => "青",
        "64" => "宁",
        "65" => "新",
        _ => return None,
    })
}

/// The CloudEvents `source` of a province hub.
pub fn province_source(code: &str) -> String {
    format!("urn:wastehub:province:{code}")
}

/// A letter the simulator accepted on `/letters`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Received {
    /// The letter as received.
    pub letter: Value,
    /// The signed receipt given (the same for every repeat).
    pub receipt: Value,
}

#[derive(Default)]
struct Book {
    exchanges: ExchangeLog,
    received: Vec<Received>,
    /// Receipts by (source, id), for repeats.
    receipts: HashMap<(String, String), Value>,
    sent: Vec<SentLetter>,
    /// The bytes of the last letter sent, for a byte-identical resend.
    last_sent: Option<(Value, Vec<u8>)>,
    scripts: HashMap<String, Script>,
    outage_until: Option<Instant>,
    /// Number of the next reply letter (赣环固函〔2026〕<n>号).
    reply_seq: u64,
    /// Bumped by a reset, so replies scheduled before it are dropped.
    generation: u64,
    hub_url: Option<String>,
}

pub(crate) struct Inner {
    cfg: ProvinceConfig,
    source: String,
    book: Mutex<Book>,
    client: reqwest::Client,
    stop: CancellationToken,
}

impl Inner {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running province hub simulator.
#[derive(Clone)]
pub struct ProvinceSim {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    inner: Arc<Inner>,
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The code is not two digits 10-89.
    #[error("province code {0:?} must be two digits (e.g. 36 Jiangxi, 44 Guangdong, 33 Zhejiang)")]
    BadCode(String),
    /// The simulator plays another province, not Fujian itself.
    #[error("province code 35 is Fujian, the hub itself; simulate a neighbouring province")]
    Fujian,
    /// No abbreviation known or given.
    #[error("no letter-number abbreviation for province {0}: set one")]
    NoAbbreviation(String),
}

impl ProvinceSim {
    /// Starts on `listener` until `stop`.
    pub fn start(listener: TcpListener, cfg: ProvinceConfig, stop: CancellationToken) -> anyhow::Result<Self> {
        let code_ok = cfg.code.len() == 2 && cfg.code.bytes().all(|b| b.is_ascii_digit()) && !cfg.code.starts_with(['0', '9']);
        if !code_ok {
            return Err(ConfigError::BadCode(cfg.code.clone()).into());
        }
        if cfg.code == FUJIAN {
            return Err(ConfigError::Fujian.into());
        }
        if cfg.abbreviation.trim().is_empty() || cfg.abbreviation == "?" {
            return Err(ConfigError::NoAbbreviation(cfg.code.clone()).into());
        }
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let inner = Arc::new(Inner {
            source: province_source(&cfg.code),
            book: Mutex::new(Book {
                hub_url: cfg.hub_url.clone(),
                ..Book::default()
            }),
            cfg,
            client,
            stop: stop.clone(),
        });
        let app = Router::new()
            .route(LETTERS_PATH, post(receive::handler))
            .route("/_sim/exchanges", get(exchanges))
            .route("/_sim/letters", get(letters))
            .route("/_sim/sent", get(sent))
            .route("/_sim/script", post(script))
            .route("/_sim/outage", post(outage))
            .route("/_sim/reset", post(reset))
            .route("/_sim/send", post(send::send_handler))
            .route("/_sim/resend-last", post(send::resend_handler))
            .with_state(inner.clone());
        super::serve(listener, app, stop);
        Ok(Self { addr, inner })
    }

    /// A URL on the simulator.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The province's code.
    pub fn code(&self) -> &str {
        &self.inner.cfg.code
    }

    /// Its CloudEvents source, `urn:wastehub:province:<code>`.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Its public key (what the hub registers for it).
    pub fn public_key(&self) -> &crate::letters::PublicKey {
        self.inner.cfg.key.public()
    }

    /// Every request to `/letters` with the answer given, oldest first (the
    /// last ones only; see [`super::Exchange`]).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.inner.book().exchanges.all()
    }

    /// The letters accepted, in order (repeats once).
    pub fn letters(&self) -> Vec<Received> {
        self.inner.book().received.clone()
    }

    /// The letters sent to the hub, with its answers, in order.
    pub fn sent(&self) -> Vec<SentLetter> {
        self.inner.book().sent.clone()
    }

    /// How the consultation for `application_no` is answered from now on.
    pub fn set_script(&self, application_no: &str, script: Script) {
        self.inner.book().scripts.insert(application_no.to_string(), script);
    }

    /// Starts an outage for `duration` (`None` ends it).
    pub fn set_outage(&self, duration: Option<Duration>) {
        self.inner.book().outage_until = duration.map(|d| Instant::now() + d);
    }

    /// Sets the hub's base URL (a test starts the hub after the simulator).
    pub fn set_hub(&self, url: &str) {
        self.inner.book().hub_url = Some(url.to_string());
    }

    /// Forgets every letter, request, script and outage; replies not yet
    /// sent are dropped (the hub stays).
    pub fn reset(&self) {
        reset_book(&self.inner);
    }

    /// Signs `event` (filling in missing `specversion`, `id`, `source`,
    /// `time`, `datacontenttype`) and posts it to the hub once; with
    /// `tamper`, a data value is changed after signing (a forged letter).
    pub async fn send_letter(&self, event: Value, tamper: bool) -> Result<SentLetter, SendError> {
        send::send_letter(&self.inner, event, tamper).await
    }

    /// Posts the last letter sent again, byte for byte (a duplicate).
    pub async fn resend_last(&self) -> Result<SentLetter, SendError> {
        send::resend_last(&self.inner).await
    }
}

fn reset_book(st: &Inner) {
    let mut book = st.book();
    let hub_url = book.hub_url.clone();
    let generation = book.generation + 1;
    *book = Book {
        hub_url,
        generation,
        ..Book::default()
    };
}

/// Now in Beijing time, whole seconds (letters carry `+08:00`).
pub(crate) fn beijing_now() -> chrono::DateTime<chrono::FixedOffset> {
    use chrono::Timelike as _;
    let now = match chrono::FixedOffset::east_opt(8 * 3600) {
        Some(beijing) => chrono::Utc::now().with_timezone(&beijing),
        None => chrono::Utc::now().fixed_offset(),
    };
    now.with_nanosecond(0).unwrap_or(now)
}

/// RFC 3339 with the offset, seconds precision (`2026-11-29T10:00:05+08:00`).
pub(crate) fn rfc3339(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A JSON error body as the wire protocol writes it.
pub(crate) fn error_body(error: &str, message: impl Into<String>) -> Value {
    json!({"error": error, "message": message.into()})
}

async fn exchanges(State(st): State<Arc<Inner>>) -> axum::Json<Vec<Exchange>> {
    axum::Json(st.book().exchanges.all())
}

async fn letters(State(st): State<Arc<Inner>>) -> axum::Json<Vec<Received>> {
    axum::Json(st.book().received.clone())
}

async fn sent(State(st): State<Arc<Inner>>) -> axum::Json<Vec<SentLetter>> {
    axum::Json(st.book().sent.clone())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptBody {
    application_no: String,
    answer: Answer,
    #[serde(default)]
    delay_ms: Option<u64>,
}

async fn script(State(st): State<Arc<Inner>>, axum::Json(b): axum::Json<ScriptBody>) -> Response {
    if b.application_no.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(error_body("bad_script", "application_no must not be empty")),
        )
            .into_response();
    }
    st.book().scripts.insert(
        b.application_no,
        Script {
            answer: b.answer,
            delay: b.delay_ms.map(Duration::from_millis),
        },
    );
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutageBody {
    #[serde(default)]
    for_ms: Option<u64>,
    #[serde(default)]
    off: bool,
}

async fn outage(State(st): State<Arc<Inner>>, axum::Json(b): axum::Json<OutageBody>) -> Response {
    match (b.off, b.for_ms) {
        (true, None) => st.book().outage_until = None,
        (false, Some(ms)) => st.book().outage_until = Some(Instant::now() + Duration::from_millis(ms)),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(error_body("bad_outage", "give either {\"for_ms\": n} or {\"off\": true}")),
            )
                .into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn reset(State(st): State<Arc<Inner>>) -> StatusCode {
    reset_book(&st);
    StatusCode::NO_CONTENT
}

//! The `poll` channel: a from-partner example whose `wire` is a page answer
//! the hub fetches. Each shipped `poll` connector is pointed at a page
//! server of its own ([`PageServer`]) that answers every request with an
//! empty last page, except the next request after an example is armed,
//! which gets the example's page byte for byte. The request after that one
//! shows that the hub has committed the page (a poller asks for the next
//! page, or starts its next run, only then); the connector's new messages
//! are then compared with `canonical`, one event per item in page order.
//!
//! The server asks for the bearer token the stage gave the connector, as
//! the department does, so a connector file that stops sending it fails
//! here.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::stage::{SETTLE_WITHIN, Stage};
use super::{canonical_name, read, read_json};
use crate::support::eventually;
use crate::support::exchange::Example;
use crate::support::normalise;

/// One request a page server answered.
#[derive(Clone, Debug)]
struct Served {
    target: String,
    status: u16,
    /// Whether it got the armed example page.
    example: bool,
}

struct Inner {
    /// `Authorization` value required, if any.
    auth: Option<String>,
    /// The answer when nothing is armed.
    idle: String,
    armed: Mutex<Option<Vec<u8>>>,
    served: Mutex<Vec<Served>>,
}

/// A partner API for one `poll` connector, serving the examples' pages
/// until dropped.
pub(super) struct PageServer {
    base: String,
    inner: Arc<Inner>,
    stop: CancellationToken,
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl PageServer {
    /// Serves on a port of its own until dropped. `items` is
    /// the connector's pointer to the item list (its idle page is an empty
    /// list there); `token` the bearer token it must send.
    pub async fn start(items: &str, token: Option<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let inner = Arc::new(Inner {
            auth: token.map(|t| format!("Bearer {t}")),
            idle: empty_page(items).to_string(),
            armed: Mutex::new(None),
            served: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped).await;
        });
        Self { base, inner, stop }
    }

    /// The server's address with `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    fn arm(&self, page: Vec<u8>) {
        *self.inner.armed.lock().expect("lock") = Some(page);
    }

    fn served(&self) -> Vec<Served> {
        self.inner.served.lock().expect("lock").clone()
    }
}

/// `{}` with an empty list at `pointer` (`""`: the list itself).
fn empty_page(pointer: &str) -> Value {
    let mut v = Value::Array(Vec::new());
    for key in pointer.rsplit('/').filter(|k| !k.is_empty()) {
        let key = key.replace("~1", "/").replace("~0", "~");
        v = Value::Object([(key, v)].into_iter().collect());
    }
    v
}

async fn answer(State(st): State<Arc<Inner>>, uri: Uri, headers: HeaderMap) -> Response {
    let target = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let (status, body, example) = if st.auth.is_some() && given != st.auth.as_deref() {
        let body = r#"{"code": "UNAUTHORIZED", "message": "missing or wrong bearer token"}"#;
        (StatusCode::UNAUTHORIZED, body.as_bytes().to_vec(), false)
    } else {
        match st.armed.lock().expect("lock").take() {
            Some(page) => (StatusCode::OK, page, true),
            None => (StatusCode::OK, st.idle.clone().into_bytes(), false),
        }
    };
    st.served.lock().expect("lock").push(Served {
        target,
        status: status.as_u16(),
        example,
    });
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Replays one `channel = "poll"` example.
pub(super) async fn replay(stage: &Stage, ex: &Example) -> Result<(), String> {
    let c = stage.receiver(ex)?;
    let server = stage
        .pages
        .get(&c.name)
        .ok_or_else(|| format!("connector {} has no page server", c.name))?;
    let source = super::source_of(c);
    let ty = ex.message_type.clone().unwrap_or_default();
    let before = stage.messages(&source, &ty).await;
    let from = server.served().len();
    server.arm(read(&ex.wire)?);
    let committed = eventually(SETTLE_WITHIN, || async {
        let s = server.served();
        s[from.min(s.len())..]
            .iter()
            .position(|r| r.example)
            .is_some_and(|i| s.len() > from + i + 1)
    })
    .await;
    if !committed {
        let seen: Vec<String> = server.served()[from..]
            .iter()
            .map(|r| format!("{} {}{}", r.status, r.target, if r.example { " (the example page)" } else { "" }))
            .collect();
        return Err(format!(
            "the hub did not fetch and commit the page within {SETTLE_WITHIN:?}; requests since it was armed: {seen:?}"
        ));
    }
    let expected = read_json(ex.canonical.as_ref().ok_or("no canonical event")?)?;
    let got = super::new_events(stage, &source, &ty, &before, &expected).await?;
    normalise::compare_json(expected, got, &ex.ignore).map_err(|d| {
        format!(
            "the stored events differ from {} (an item the hub refused is not stored: see the log, or the poll cursor's last refusal):\n      {d}",
            canonical_name(ex)
        )
    })
}

/// How long the harness lets a poll connector rest between runs: its
/// `interval`, which is schedule, not contract.
pub(super) const INTERVAL: &str = "1s";

/// The answer-only rule of a `poll` connector: a page it reads is taken
/// (`delivered`); anything else is tried again (`retried`): a page is never
/// skipped, so never `dead`.
pub(super) fn judge(c: &wastehub::config::ConnectorConfig, status: u16, body: &str) -> Result<super::Outcome, String> {
    let p = c.poll.as_ref().ok_or_else(|| format!("connector {} has no [poll]", c.name))?;
    let client = wastehub::connectors::poll::PageClient::new(&c.name, p, std::path::Path::new(".")).map_err(|e| e.to_string())?;
    let read = (200..300).contains(&status) && client.read(body.as_bytes()).is_ok();
    Ok(if read { super::Outcome::Delivered } else { super::Outcome::Retried })
}

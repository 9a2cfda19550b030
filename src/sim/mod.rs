//! Partner stand-ins: small servers (or, for partners that send, small
//! senders) that play a partner's part where the real system cannot be
//! reached (the demo, the benchmark, the contract tests). The receiving ones
//! record what they accepted, and every request with the answer they gave,
//! so a run can be checked afterwards; the department ones (`transport`,
//! `health`) serve a generated registry page by page for the `poll`
//! connector.

pub mod health;
pub mod market_regulation;
pub mod national;
pub mod park;
pub mod province;
pub mod provincial;
pub mod qinqing;
pub mod receiver;
pub mod registry;
pub mod synth;
pub mod transport;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// How many requests a simulator remembers (the oldest are forgotten): the
/// demo runs for a long time and must not grow without bound.
const REMEMBERED_REQUESTS: usize = 1024;

/// Compiles a contract schema embedded in a simulator.
pub(crate) fn contract_schema(text: &str, what: &str) -> anyhow::Result<jsonschema::Validator> {
    let doc: serde_json::Value = serde_json::from_str(text)?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&doc)
        .map_err(|e| anyhow::anyhow!("{what} contract schema: {e}"))
}

/// Serves `app` on `listener` until `stop`, in the background.
pub(crate) fn serve(listener: tokio::net::TcpListener, app: axum::Router, stop: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    });
}

/// One request a simulator received on its partner endpoint, with the
/// answer it gave: what a contract test compares with an example exchange.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Exchange {
    /// The `ce-id` header (the hub's message id), empty when absent.
    pub ce_id: String,
    /// The `Content-Type` of the request.
    pub content_type: String,
    /// The request body as received (UTF-8; other bytes replaced).
    pub body: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The answer body.
    pub answer: String,
}

/// The last requests, oldest first, bounded by [`REMEMBERED_REQUESTS`].
#[derive(Debug, Default)]
pub(crate) struct ExchangeLog(VecDeque<Exchange>);

impl ExchangeLog {
    pub(crate) fn push(&mut self, e: Exchange) {
        if self.0.len() == REMEMBERED_REQUESTS {
            self.0.pop_front();
        }
        self.0.push_back(e);
    }

    pub(crate) fn all(&self) -> Vec<Exchange> {
        self.0.iter().cloned().collect()
    }
}

/// A simulator's answer before it becomes a response, so that it can be
/// recorded as sent.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) retry_after: Option<&'static str>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn new(status: StatusCode, content_type: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type,
            retry_after: None,
            body: body.into(),
        }
    }

    pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        Self::new(status, "application/json", body.to_string())
    }

    pub(crate) fn retry_after(mut self, seconds: &'static str) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The record of this answer to a request with `headers` and `body`.
    pub(crate) fn record(&self, headers: &HeaderMap, body: &[u8]) -> Exchange {
        let h = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Exchange {
            ce_id: headers.get("ce-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
            content_type: h(header::CONTENT_TYPE),
            body: String::from_utf8_lossy(body).into_owned(),
            status: self.status.as_u16(),
            answer: self.body.clone(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut resp = (self.status, [(header::CONTENT_TYPE, self.content_type)], self.body).into_response();
        if let Some(ra) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static(ra));
        }
        resp
    }
}

#[cfg(test)]
mod exchange_log_tests {
    use super::*;

    #[test]
    fn the_exchange_log_forgets_the_oldest_requests() {
        let mut log = ExchangeLog::default();
        for n in 0..REMEMBERED_REQUESTS + 3 {
            log.push(Answer::text(StatusCode::OK, n.to_string()).record(&HeaderMap::new(), b""));
        }
        let all = log.all();
        assert_eq!(all.len(), REMEMBERED_REQUESTS);
        assert_eq!(all[0].answer, "3");
    }
}

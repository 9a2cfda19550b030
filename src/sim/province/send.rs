//! Letters from the province to the Fujian hub (`POST <hub>/api/v1/xp/letters`):
//! scheduled replies, retried on network errors and 5xx with a short
//! backoff, and letters an operator or a test sends by hand (`/_sim/send`,
//! `/_sim/resend-last`), posted once so the hub's own answer is seen.
//!
//! Every letter sent is kept with the hub's status and receipt; the
//! receipt is checked against the hub's keys and the letter it names
//! (`Receipt::check`), as a real province keeps it as evidence.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::letters::{LetterError, Receipt, Verdict, sign_letter};

use super::{HUB_LETTERS_PATH, Inner, error_body};

/// Waits before each retry of a scheduled reply (network error or 5xx).
pub const BACKOFF: [Duration; 5] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// Largest hub answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// A letter sent to the hub, with what came back.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SentLetter {
    /// The letter as sent (signed; a forged one as changed after signing).
    pub letter: Value,
    /// The hub's HTTP status of the last attempt; 0 when none answered.
    pub status: u16,
    /// The hub's answer when it was a receipt (accepted or refused).
    pub receipt: Option<Value>,
    /// Whether the receipt is signed by the hub and names this very letter.
    pub receipt_verified: bool,
    /// What went wrong: no answer, a refusal, an answer that did not verify.
    pub error: Option<String>,
    /// How many times it was posted.
    pub attempts: u32,
}

/// Why a letter could not be sent at all.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No hub URL is configured.
    #[error("no hub to send to: start the simulator with --hub or set it")]
    NoHub,
    /// The letter is not a JSON object or could not be signed.
    #[error("the letter cannot be signed: {0}")]
    Sign(#[from] LetterError),
    /// `resend-last` before anything was sent.
    #[error("nothing has been sent yet")]
    NothingSent,
}

/// Signs `event` with defaults filled in, forges it when `tamper`, posts it once.
pub(super) async fn send_letter(st: &Inner, event: Value, tamper: bool) -> Result<SentLetter, SendError> {
    let hub = hub_url(st).ok_or(SendError::NoHub)?;
    let Value::Object(mut members) = event else {
        return Err(LetterError::Malformed("a letter must be a JSON object (a CloudEvent)".into()).into());
    };
    let now = super::rfc3339(super::beijing_now());
    let defaults = [
        ("specversion", Value::from("1.0")),
        ("id", Value::from(ulid::Ulid::generate().to_string())),
        ("source", Value::from(st.source.clone())),
        ("time", Value::from(now)),
    ];
    for (name, value) in defaults {
        members.entry(name).or_insert(value);
    }
    if members.contains_key("data") {
        members.entry("datacontenttype").or_insert_with(|| Value::from("application/json"));
    }
    let mut letter = sign_letter(&Value::Object(members), &st.cfg.key)?;
    if tamper {
        forge(&mut letter);
    }
    let bytes = serde_json::to_vec(&letter).map_err(|e| LetterError::Malformed(e.to_string()))?;
    Ok(post(st, &hub, letter, bytes, false).await)
}

/// Posts the last letter sent again, byte for byte, once.
pub(super) async fn resend_last(st: &Inner) -> Result<SentLetter, SendError> {
    let hub = hub_url(st).ok_or(SendError::NoHub)?;
    let (letter, bytes) = st.book().last_sent.clone().ok_or(SendError::NothingSent)?;
    Ok(post(st, &hub, letter, bytes, false).await)
}

/// Posts a scheduled letter (with retries when `retry`); without a hub it
/// is kept as not sent.
pub(super) async fn deliver(st: &Inner, letter: Value, retry: bool) {
    let Some(hub) = hub_url(st) else {
        st.book().sent.push(SentLetter {
            letter,
            status: 0,
            receipt: None,
            receipt_verified: false,
            error: Some(SendError::NoHub.to_string()),
            attempts: 0,
        });
        return;
    };
    match serde_json::to_vec(&letter) {
        Ok(bytes) => {
            post(st, &hub, letter, bytes, retry).await;
        }
        Err(e) => tracing::warn!(error = %e, "province simulator could not serialize its letter"),
    }
}

fn hub_url(st: &Inner) -> Option<String> {
    st.book().hub_url.clone()
}

/// Changes a data value after signing (the first string, or adds a
/// member), so the signature no longer verifies.
fn forge(letter: &mut Value) {
    let Some(obj) = letter.as_object_mut() else {
        return;
    };
    let data = obj.entry("data").or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Some(members) = data.as_object_mut() {
        if let Some(Value::String(s)) = members.values_mut().find(|v| v.is_string()) {
            s.push_str("（改）");
        } else {
            members.insert("forged".into(), Value::Bool(true));
        }
    } else {
        *data = Value::String(format!("forged {data}"));
    }
}

/// Posts `bytes` (the text of `letter`) to the hub, records the outcome
/// in the sent list, and returns it.
async fn post(st: &Inner, hub: &str, letter: Value, bytes: Vec<u8>, retry: bool) -> SentLetter {
    let url = format!("{}{HUB_LETTERS_PATH}", hub.trim_end_matches('/'));
    st.book().last_sent = Some((letter.clone(), bytes.clone()));
    let mut waits = BACKOFF.iter();
    let mut attempts = 0;
    let (status, answer, error) = loop {
        attempts += 1;
        let outcome = attempt(st, &url, &bytes).await;
        let again = match &outcome {
            Err(_) => true,
            Ok((status, _)) => *status >= 500,
        };
        let wait = if retry && again { waits.next() } else { None };
        let Some(wait) = wait else {
            break match outcome {
                Ok((status, body)) => (status, Some(body), None),
                Err(e) => (0, None, Some(e)),
            };
        };
        tokio::select! {
            () = st.stop.cancelled() => {
                break match outcome {
                    Ok((status, body)) => (status, Some(body), None),
                    Err(e) => (0, None, Some(e)),
                };
            }
            () = tokio::time::sleep(*wait) => {}
        }
    };
    let mut sent = SentLetter {
        letter,
        status,
        receipt: None,
        receipt_verified: false,
        error,
        attempts,
    };
    if let Some(body) = answer {
        judge_answer(st, &mut sent, body);
    }
    st.book().sent.push(sent.clone());
    sent
}

/// One POST; the status and the answer (JSON, or the text as a string).
async fn attempt(st: &Inner, url: &str, bytes: &[u8]) -> Result<(u16, Value), String> {
    let resp = st
        .client
        .post(url)
        .header("content-type", "application/cloudevents+json")
        .body(bytes.to_vec())
        .send()
        .await
        .map_err(|e| format!("the hub could not be reached: {}", e.without_url()))?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading the hub's answer: {}", e.without_url()))?;
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER - body.len())]);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    let answer = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, answer))
}

/// Reads the hub's answer into `sent`: a receipt is checked and kept; any
/// other answer to a non-2xx status becomes the error.
fn judge_answer(st: &Inner, sent: &mut SentLetter, body: Value) {
    let is_receipt = body.get("type").and_then(Value::as_str) == Some(crate::letters::receipt::RECEIPT_TYPE);
    if !is_receipt {
        if !(200..300).contains(&sent.status) {
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| body.to_string(), str::to_string);
            sent.error = Some(format!("the hub answered {}: {message}", sent.status));
        } else {
            sent.error = Some(format!("the hub answered {} without a receipt", sent.status));
        }
        sent.receipt = None;
        return;
    }
    match Receipt::check(&body, &sent.letter, &st.cfg.hub_keys) {
        Ok(r) => {
            sent.receipt_verified = true;
            if r.verdict == Verdict::Refused {
                let reason = r.reason.unwrap_or_default();
                sent.error = Some(format!("the hub refused the letter ({}): {reason}", sent.status));
            } else if sent.status != 200 {
                sent.error = Some(format!("the hub answered {} with an accepted receipt", sent.status));
            }
        }
        Err(e) => sent.error = Some(format!("the hub's receipt does not verify: {e}")),
    }
    sent.receipt = Some(body);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendBody {
    letter: Value,
    #[serde(default)]
    tamper: bool,
}

fn outcome(result: Result<SentLetter, SendError>) -> Response {
    match result {
        Ok(sent) => (StatusCode::OK, axum::Json(sent)).into_response(),
        Err(e) => {
            let status = match e {
                SendError::NoHub => StatusCode::CONFLICT,
                SendError::Sign(_) => StatusCode::BAD_REQUEST,
                SendError::NothingSent => StatusCode::NOT_FOUND,
            };
            (status, axum::Json(error_body("sim_send_failed", e.to_string()))).into_response()
        }
    }
}

/// `POST /_sim/send` `{"letter": <unsigned CloudEvent>, "tamper": bool}`.
pub(super) async fn send_handler(State(st): State<Arc<Inner>>, axum::Json(b): axum::Json<SendBody>) -> Response {
    outcome(send_letter(&st, b.letter, b.tamper).await)
}

/// `POST /_sim/resend-last`.
pub(super) async fn resend_handler(State(st): State<Arc<Inner>>) -> Response {
    outcome(resend_last(&st).await)
}

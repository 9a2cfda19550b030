//! `POST /letters`: the province receiving the Fujian hub's letters. Each
//! request is answered per the wire protocol and recorded with its answer:
//! a signed receipt for every letter that could be read (accepted, or
//! refused with the reason), a JSON error when it was no CloudEvent at all.
//!
//! The order of the checks matters: the signature is checked before the
//! repeat lookup, so a forged letter reusing an accepted letter's id gets a
//! refusal, never the stored receipt; addressing is checked after it, so a
//! repeat of an accepted letter is answered alike whatever changed since.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::letters::{Receipt, Verdict, verify_letter};

use super::super::Answer as HttpAnswer;
use super::{Inner, Received, error_body, reply};

/// Largest letter read (a consultation is a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// Content type of a signed receipt (a CloudEvent in structured mode).
const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// `POST /letters`.
pub(super) async fn handler(State(st): State<Arc<Inner>>, headers: HeaderMap, body: Body) -> HttpAnswer {
    let (bytes, answer) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            let answer = answer_letter(&st, &bytes);
            (bytes, answer)
        }
        Err(_) => (
            Bytes::new(),
            HttpAnswer::json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &error_body("too_large", format!("a letter may have at most {MAX_BODY} bytes")),
            ),
        ),
    };
    let record = answer.record(&headers, &bytes);
    st.book().exchanges.push(record);
    answer
}

/// The answer to one letter, per the wire protocol.
fn answer_letter(st: &Arc<Inner>, body: &[u8]) -> HttpAnswer {
    let outage = st.book().outage_until.is_some_and(|until| Instant::now() < until);
    if outage {
        return HttpAnswer::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &error_body("unavailable", "省级平台维护中，请稍后重试 (simulated outage)"),
        )
        .retry_after("1");
    }
    let letter = match crate::letters::parse_letter(body) {
        Ok(v) => v,
        Err(e) => return HttpAnswer::json(StatusCode::BAD_REQUEST, &error_body("malformed", e.to_string())),
    };
    if let Err(what) = check_cloudevent(&letter) {
        return HttpAnswer::json(StatusCode::BAD_REQUEST, &error_body("not_a_cloudevent", what));
    }
    if let Err(e) = verify_letter(&letter, &st.cfg.hub_keys) {
        return receipt_answer(st, &letter, StatusCode::UNAUTHORIZED, Verdict::Refused, Some(e.to_string()));
    }
    let key = (text(&letter, "source"), text(&letter, "id"));
    if let Some(stored) = st.book().receipts.get(&key).cloned() {
        return HttpAnswer::new(StatusCode::OK, CLOUDEVENTS_JSON, stored.to_string());
    }
    if let Err(reason) = check_addressed(&letter, &st.cfg.code) {
        return receipt_answer(st, &letter, StatusCode::UNPROCESSABLE_ENTITY, Verdict::Refused, Some(reason));
    }
    let receipt = match signed_receipt(st, &letter, Verdict::Accepted, None) {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let consultation = {
        let mut book = st.book();
        // Two identical letters racing: the first one stored wins, both get its receipt.
        if let Some(stored) = book.receipts.get(&key).cloned() {
            return HttpAnswer::new(StatusCode::OK, CLOUDEVENTS_JSON, stored.to_string());
        }
        book.receipts.insert(key, receipt.clone());
        book.received.push(Received {
            letter: letter.clone(),
            receipt: receipt.clone(),
        });
        letter.get("type").and_then(Value::as_str) == Some("xp-consultation")
    };
    if consultation {
        reply::schedule(st.clone(), letter);
    }
    HttpAnswer::new(StatusCode::OK, CLOUDEVENTS_JSON, receipt.to_string())
}

fn text(v: &Value, name: &str) -> String {
    v.get(name).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The CloudEvents attributes every letter needs.
fn check_cloudevent(letter: &Value) -> Result<(), String> {
    if letter.get("specversion").and_then(Value::as_str) != Some("1.0") {
        return Err("`specversion` must be \"1.0\"".into());
    }
    for name in ["id", "source", "type"] {
        match letter.get(name).and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() => {}
            _ => return Err(format!("`{name}` must be a non-empty string")),
        }
    }
    Ok(())
}

/// Whether the letter is for this province: a consultation names it in
/// `data.to_province`, a decision in `data.receiver.province`; other types
/// carry no addressee to check. A consultation must also name its letter
/// and application, which the reply refers to.
fn check_addressed(letter: &Value, code: &str) -> Result<(), String> {
    let data = letter.get("data").unwrap_or(&Value::Null);
    let addressee = match letter.get("type").and_then(Value::as_str) {
        Some("xp-consultation") => {
            for field in ["letter_no", "application_no", "from_province"] {
                if data.get(field).and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
                    return Err(format!("商请函缺少 data.{field}: a consultation must carry it"));
                }
            }
            ("data.to_province", data.get("to_province"))
        }
        Some("xp-decision") => ("data.receiver.province", data.pointer("/receiver/province")),
        _ => return Ok(()),
    };
    match addressee {
        (_, Some(Value::String(to))) if to == code => Ok(()),
        (field, Some(Value::String(to))) => Err(format!("来函非致本省：{field} is {to}, this is province {code}")),
        (field, _) => Err(format!("来函未写明收函省份：{field} is missing")),
    }
}

/// A receipt for `letter`, signed with the province's key; on failure the
/// answer to give instead.
fn signed_receipt(st: &Inner, letter: &Value, verdict: Verdict, reason: Option<String>) -> Result<Value, HttpAnswer> {
    Receipt::for_letter(letter, super::beijing_now(), verdict, reason)
        .and_then(|r| r.sign(&format!("receipt-{}", ulid::Ulid::generate()), &st.source, &st.cfg.key))
        .map_err(|e| match e {
            crate::letters::LetterError::Malformed(m) => HttpAnswer::json(StatusCode::BAD_REQUEST, &error_body("malformed", m)),
            other => HttpAnswer::json(StatusCode::INTERNAL_SERVER_ERROR, &error_body("receipt_failed", other.to_string())),
        })
}

fn receipt_answer(st: &Inner, letter: &Value, status: StatusCode, verdict: Verdict, reason: Option<String>) -> HttpAnswer {
    match signed_receipt(st, letter, verdict, reason) {
        Ok(r) => HttpAnswer::new(status, CLOUDEVENTS_JSON, r.to_string()),
        Err(answer) => answer,
    }
}

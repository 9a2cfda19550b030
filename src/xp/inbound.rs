//! `POST /api/v1/xp/letters`: where other provinces' hubs deliver signed
//! letters: replies to this province's consultations, their own
//! consultations and decisions when waste comes into this province, and
//! whitelist entries. The signature is
//! the authentication: the sender is found by the letter's `source` among
//! the `letters` connectors, and the letter must verify against that
//! province's registered keys. The hub stores it durably (the letter
//! exactly as received, and the hub message the workflow applies) before it
//! answers with a receipt signed with the key it uses for that province.
//!
//! Answers (bodies are signed receipts where one can be made):
//! - 200: accepted; a repeat of a stored letter (same source and id) gets
//!   the stored receipt again, byte for byte;
//! - 401: the signature is missing or does not verify (refused receipt);
//! - 403: no `letters` connector has this source (JSON error);
//! - 400: not a JSON CloudEvent; 413: larger than `[xp] max_letter`;
//! - 422: verified but refused for its content (refused receipt);
//! - 503: the hub cannot store it now; send again.
//!
//! Every refusal after the sender is known is written to the audit log.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::WORKFLOW_DESTINATION;
use crate::app::AppState;
use crate::config::ConnectorConfig;
use crate::config::connector::ConnectorKind;
use crate::config::letters::LetterKeys;
use crate::error::{ApiError, ErrorBody};
use crate::ingest::cloudevent;
use crate::letters::canonical::SIGVALUE;
use crate::letters::sign::{SIGALG, SIGKEYID};
use crate::letters::{Receipt, Verdict, parse_letter, verify_letter};
use crate::model::now_millis;
use crate::store::InsertOutcome;
use crate::store::xp::LetterRow;

/// The CloudEvents extension attribute the hub adds to a letter it takes
/// in: when it arrived (RFC 3339, Beijing time). Deadlines count from it,
/// not from the time the sender wrote.
pub const RECEIVED_AT_ATTRIBUTE: &str = "xpreceivedat";

/// The types another province may send.
const TAKEN: &[&str] = &["xp-consultation", "xp-reply", "xp-decision", "whitelist-entry"];

/// One province hub the hub exchanges letters with.
#[derive(Clone)]
pub struct Province {
    /// The `letters` connector.
    pub connector: String,
    /// Its province code.
    pub province: String,
    /// The keys.
    pub keys: LetterKeys,
    /// Letters taken from it per second (`[xp] letters_per_second`).
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for Province {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Province")
            .field("connector", &self.connector)
            .field("province", &self.province)
            .finish_non_exhaustive()
    }
}

/// The provinces, by the source their letters carry.
#[derive(Clone, Debug, Default)]
pub struct Provinces {
    by_source: Arc<BTreeMap<String, Province>>,
}

impl Provinces {
    /// From the enabled `letters` connectors (their keys were read at load),
    /// each taking `per_second` letters a second.
    pub fn new(connectors: &[ConnectorConfig], per_second: u32) -> Result<Self, crate::connectors::BuildError> {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let mut by_source = BTreeMap::new();
        for c in connectors.iter().filter(|c| c.enabled && c.kind == ConnectorKind::Letters) {
            let Some(l) = &c.letters else { continue };
            let keys = l
                .keys(crate::connectors::config_dir(c))
                .map_err(|e| crate::connectors::BuildError::Config {
                    name: c.name.clone(),
                    message: e.to_string(),
                })?;
            by_source.insert(
                l.source.clone(),
                Province {
                    connector: c.name.clone(),
                    province: l.province.clone(),
                    keys,
                    limiter: Arc::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))),
                },
            );
        }
        Ok(Self {
            by_source: Arc::new(by_source),
        })
    }

    /// The province sending as `source`.
    pub fn get(&self, source: &str) -> Option<&Province> {
        self.by_source.get(source)
    }
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_letter))
}

/// A signed letter from another province's hub.
#[utoipa::path(
    post, path = "/api/v1/xp/letters", tag = "cross-province",
    request_body(content = Object, content_type = "application/cloudevents+json",
        description = "A signed letter (docs/cross-province.md): xp-reply or whitelist-entry."),
    responses(
        (status = 200, description = "Accepted: the hub's signed receipt (a repeat gets the same one).", body = Object),
        (status = 400, body = ErrorBody), (status = 401, description = "Signature missing or invalid: a signed refused receipt.", body = Object),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 422, description = "Refused for its content: a signed refused receipt.", body = Object),
        (status = 503, body = ErrorBody),
    )
)]
async fn receive_letter(State(app): State<AppState>, body: Bytes) -> Response {
    let r = match receive(&app, &body).await {
        Ok(r) | Err(r) => r,
    };
    let outcome = match r.status().as_u16() {
        200 => "accepted",
        401 | 422 => "refused",
        403 => "unknown_sender",
        400 | 413 => "malformed",
        429 => "throttled",
        _ => "unavailable",
    };
    metrics::counter!(crate::telemetry::XP_LETTERS_IN_TOTAL, crate::telemetry::LABEL_OUTCOME => outcome).increment(1);
    r
}

fn receipt_response(status: StatusCode, receipt: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/cloudevents+json")],
        receipt.to_string(),
    )
        .into_response()
}

fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now().with_timezone(&super::rules::beijing())
}

/// A signed receipt with `verdict` for `letter`, as text.
fn sign_receipt(app: &AppState, p: &Province, letter: &Value, verdict: Verdict, reason: Option<String>) -> Result<String, ApiError> {
    let r = Receipt::for_letter(letter, now(), verdict, reason)
        .and_then(|r| r.sign(&format!("rcpt-{}", ulid::Ulid::generate()), &app.config.xp.source, &p.keys.own))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(r.to_string())
}

async fn refuse(app: &AppState, p: &Province, letter: &Value, status: StatusCode, reason: String) -> Response {
    let text = |k: &str| letter.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    tracing::warn!(connector = %p.connector, letter_id = %text("id"), r#type = %text("type"), %reason, "A letter from another province was refused.");
    let detail =
        json!({"letter_id": text("id"), "type": text("type"), "subject": text("subject"), "status": status.as_u16(), "reason": reason});
    if let Err(e) = app
        .store
        .xp_audit(&text("source"), "xp_letter_refused", Some(&p.connector), &detail, now_millis())
        .await
    {
        tracing::warn!(error = %e, "The refusal could not be audited.");
    }
    match sign_receipt(app, p, letter, Verdict::Refused, Some(reason)) {
        Ok(r) => receipt_response(status, &r),
        Err(e) => e.into_response(),
    }
}

async fn receive(app: &AppState, body: &[u8]) -> Result<Response, Response> {
    if body.len() > app.config.xp.max_letter.as_usize() {
        return Err(ApiError::too_large(format!("a letter is at most {} bytes", app.config.xp.max_letter.as_usize())).into_response());
    }
    let letter = parse_letter(body).map_err(|e| ApiError::bad_request("malformed_letter", e.to_string()).into_response())?;
    let source = letter.get("source").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(p) = app.xp_provinces.get(&source).cloned() else {
        return Err(ApiError::forbidden("unknown_sender", format!("no province sends as source {source:?}")).into_response());
    };
    // Before any signature is checked or refusal audited: a flood costs
    // the hub neither.
    if p.limiter.check().is_err() {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_letters",
            format!(
                "more than {} letters a second from {source}; send again shortly",
                app.config.xp.letters_per_second
            ),
        );
        e.retry_after = Some(std::time::Duration::from_secs(1));
        return Err(e.into_response());
    }
    if let Err(e) = verify_letter(&letter, &p.keys.partner) {
        return Err(refuse(app, &p, &letter, StatusCode::UNAUTHORIZED, e.to_string()).await);
    }
    let id = letter.get("id").and_then(Value::as_str).unwrap_or("").to_string();
    let stored = app
        .store
        .xp_letter(&source, &id)
        .await
        .map_err(|_| ApiError::unavailable("the hub cannot store letters right now; send again shortly").into_response())?;
    if let Some(row) = stored {
        // The same letter again: the same receipt. Another letter reusing the
        // id is refused: an id names one letter.
        // Only accepted letters are stored (refusals go to the audit log).
        if serde_json::from_str::<Value>(&row.letter).ok().as_ref() == Some(&letter)
            && let Some(r) = row.receipt
        {
            return Ok(receipt_response(StatusCode::OK, &r));
        }
        return Err(refuse(
            app,
            &p,
            &letter,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("letter id {id} was used for another letter"),
        )
        .await);
    }
    let ty = letter.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    if !TAKEN.contains(&ty.as_str()) {
        return Err(refuse(
            app,
            &p,
            &letter,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("this hub takes {} from other provinces, not {ty:?}", TAKEN.join(", ")),
        )
        .await);
    }
    let received_at = now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let mut event = letter.clone();
    if let Some(o) = event.as_object_mut() {
        for k in [SIGALG, SIGKEYID, SIGVALUE] {
            o.remove(k);
        }
        o.entry("jurisdiction").or_insert_with(|| json!(format!("{}0000", p.province)));
        o.insert(RECEIVED_AT_ATTRIBUTE.into(), json!(received_at));
    }
    let env = match cloudevent::parse(event) {
        Ok(env) => env,
        Err(errors) => return Err(refuse(app, &p, &letter, StatusCode::UNPROCESSABLE_ENTITY, describe(&errors)).await),
    };
    if let Err(errors) = app.catalogue.validate(&env.r#type, env.data(), "/data") {
        return Err(refuse(app, &p, &letter, StatusCode::UNPROCESSABLE_ENTITY, describe(&errors)).await);
    }
    let time = chrono::DateTime::parse_from_rfc3339(&env.time).unwrap_or_else(|_| now());
    let errors = app.reference.check(&env.r#type, env.data(), time, "/data");
    if !errors.is_empty() {
        return Err(refuse(app, &p, &letter, StatusCode::UNPROCESSABLE_ENTITY, describe(&errors)).await);
    }
    let msg = crate::ingest::commit::new_message(&env, &p.connector, vec![WORKFLOW_DESTINATION.to_string()], None);
    let committed = match app.committer.submit(msg).await {
        Ok(InsertOutcome::Accepted(r) | InsertOutcome::Duplicate(r) | InsertOutcome::Folded(r)) => r.id,
        Err(_) => return Err(ApiError::unavailable("the hub cannot store letters right now; send again shortly").into_response()),
    };
    let receipt = sign_receipt(app, &p, &letter, Verdict::Accepted, None).map_err(IntoResponse::into_response)?;
    let row = LetterRow {
        letter_source: source.clone(),
        letter_id: id.clone(),
        direction: "in".into(),
        connector: p.connector.clone(),
        r#type: ty,
        subject: env.subject.clone(),
        letter: String::from_utf8_lossy(body).into_owned(),
        receipt: Some(receipt.clone()),
        verdict: "accepted".into(),
        reason: None,
        message_id: Some(committed.as_str().to_string()),
        at: now_millis(),
    };
    match app.store.xp_letter_put(&row).await {
        Ok(true) => Ok(receipt_response(StatusCode::OK, &receipt)),
        // The same letter arrived twice at once: the first one's receipt.
        Ok(false) => match app.store.xp_letter(&source, &id).await {
            Ok(Some(LetterRow { receipt: Some(r), .. })) => Ok(receipt_response(StatusCode::OK, &r)),
            _ => Err(ApiError::unavailable("send again shortly").into_response()),
        },
        Err(_) => Err(ApiError::unavailable("the hub cannot store letters right now; send again shortly").into_response()),
    }
}

fn describe(errors: &[crate::error::FieldError]) -> String {
    errors
        .iter()
        .take(20)
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

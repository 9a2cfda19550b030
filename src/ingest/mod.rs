//! Ingest: `POST /api/v1/messages`. Authenticate the partner, refuse when the
//! backlog is full, read the body within limits, check each CloudEvent
//! (envelope, source ownership, canonical schema, reference data), link a
//! device message's subject, route it, and answer 202 only after the
//! message and its deliveries are committed. A refusal of a live registered
//! partner's event raises a rejection prompt ([`crate::prompts::rejection`]).

pub mod auth;
pub mod burst;
pub mod cloudevent;
pub mod commit;
pub mod document;
pub mod sandbox;
pub mod sink;
pub mod subject;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::store::{InsertOutcome, Receipt};
use crate::telemetry;

/// The ingest routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_messages)).merge(document::router())
}

/// The answer for one accepted (or duplicate) event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The receipt.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// True when the event was accepted before (same source and id), or is
    /// a video-AI alert folded into an earlier one of its burst.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// For an alert folded into an earlier one of its burst: that alert's
    /// hub message id (also the receipt's `id`). The folded alert is not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded_into: Option<String>,
    /// True when the partner is in sandbox: the event passed every check
    /// and was kept as sandbox traffic; it goes nowhere.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
}

/// One result of a batch, in the order of the events sent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// Position of the event in the batch.
    pub index: usize,
    /// The status this event would have had on its own (202, 200, 4xx, 5xx).
    pub status: u16,
    /// Receipt, for 202 and 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// True for a duplicate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Error, for 4xx and 5xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The answer to a batch.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// One entry per event.
    pub results: Vec<BatchResult>,
}

/// Submit one CloudEvent (`application/cloudevents+json`) or a batch
/// (`application/cloudevents-batch+json`).
#[utoipa::path(
    post,
    path = "/api/v1/messages",
    tag = "ingest",
    security(("partner_key" = [])),
    request_body(content = Object, description = "A CloudEvents 1.0 event in structured JSON mode, or a JSON array of them",
        content_type = "application/cloudevents+json"),
    responses(
        (status = 202, description = "Committed; deliveries will follow", body = Accepted),
        (status = 200, description = "A duplicate (the original receipt, `duplicate: true`), a video-AI alert folded into an earlier one of its burst (that one's receipt, `duplicate: true`, `folded_into`), or a batch's results", body = BatchResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "The event's source belongs to another partner", body = ErrorBody),
        (status = 413, description = "Body or batch too large", body = ErrorBody),
        (status = 415, description = "Unsupported content type", body = ErrorBody),
        (status = 422, description = "The event is invalid; one entry per error", body = ErrorBody),
        (status = 429, description = "Backlog full; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
async fn post_messages(State(app): State<AppState>, req: Request) -> Response {
    answer(ingest(&app, req).await)
}

/// The response of an ingest handler; a refusal is counted as
/// `backpressure` (429) or `rejected` before it is answered.
pub(crate) fn answer(result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => {
            let outcome = if e.status == StatusCode::TOO_MANY_REQUESTS {
                "backpressure"
            } else {
                "rejected"
            };
            metrics::counter!(telemetry::INGEST_EVENTS_TOTAL, telemetry::LABEL_OUTCOME => outcome).increment(1);
            e.into_response()
        }
    }
}

enum Shape {
    Single,
    Batch,
}

async fn ingest(app: &AppState, req: Request) -> Result<Response, ApiError> {
    let partner = auth::authenticate(app, req.headers()).await?;
    let result = ingest_as(app, &partner, req).await;
    if let Err(e) = &result {
        sandbox::note_refusal(app, &partner, None, e).await;
    }
    result
}

async fn ingest_as(app: &AppState, partner: &auth::Partner, req: Request) -> Result<Response, ApiError> {
    let cfg = &app.config.ingest;
    refuse_when_full(app)?;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim().to_string();
    let shape = match media.as_str() {
        "application/cloudevents+json" | "application/json" => Shape::Single,
        "application/cloudevents-batch+json" => Shape::Batch,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/cloudevents+json (one event) or application/cloudevents-batch+json (an array)",
            ));
        }
    };
    let (parts, body) = req.into_parts();
    let body = read_body(body, cfg.max_body.as_usize()).await?;
    partner.check_signature(&parts.headers, parts.uri.path(), &body)?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {e} (line {}, column {})", e.line(), e.column()),
        )
    })?;
    match shape {
        Shape::Single => {
            let (status, accepted) = one(app, partner, value).await?;
            Ok((status, Json(accepted)).into_response())
        }
        Shape::Batch => {
            let Value::Array(events) = value else {
                return Err(ApiError::bad_request("not_a_batch", "a batch must be a JSON array of events"));
            };
            if events.len() > cfg.max_batch_events {
                return Err(ApiError::too_large(format!(
                    "a batch may hold at most {} events; this one has {}",
                    cfg.max_batch_events,
                    events.len()
                )));
            }
            let futures = events.into_iter().map(|ev| one(app, partner, ev));
            let results = futures::future::join_all(futures)
                .await
                .into_iter()
                .enumerate()
                .map(|(index, r)| match r {
                    Ok((status, a)) => BatchResult {
                        index,
                        status: status.as_u16(),
                        receipt: Some(a.receipt),
                        duplicate: a.duplicate,
                        error: None,
                    },
                    Err(e) => {
                        metrics::counter!(telemetry::INGEST_EVENTS_TOTAL, telemetry::LABEL_OUTCOME => "rejected").increment(1);
                        BatchResult {
                            index,
                            status: e.status.as_u16(),
                            receipt: None,
                            duplicate: false,
                            error: Some(e.body()),
                        }
                    }
                })
                .collect();
            Ok((StatusCode::OK, Json(BatchResponse { results })).into_response())
        }
    }
}

/// 429 while the delivery backlog is at its limit.
pub(crate) fn refuse_when_full(app: &AppState) -> Result<(), ApiError> {
    let cfg = &app.config.ingest;
    if app.backlog.get() >= i64::try_from(cfg.max_backlog).unwrap_or(i64::MAX) {
        return Err(ApiError::backpressure(
            cfg.backlog_retry_after.0,
            "the hub's delivery backlog is full; nothing was accepted, send again later",
        ));
    }
    Ok(())
}

pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // http-body-util's limit error is only visible through the source
        // chain; its text is stable ("length limit exceeded").
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        let mut too_big = false;
        while let Some(c) = cause {
            too_big |= c.to_string().contains("length limit exceeded");
            cause = c.source();
        }
        if too_big {
            ApiError::too_large(format!("the body is larger than {limit} bytes"))
        } else {
            ApiError::bad_request("unreadable_body", "the request body could not be read")
        }
    })
}

/// Checks, routes and commits one event; for a partner in sandbox, checks
/// it the same way and keeps it as sandbox traffic instead ([`sandbox`]).
pub(crate) async fn one(app: &AppState, partner: &crate::ingest::auth::Partner, value: Value) -> Result<(StatusCode, Accepted), ApiError> {
    one_from(app, partner, value, None).await
}

/// [`one`], for an event mapped from a document whose SHA-256 is
/// `document_sha256` (named in a rejection prompt beside the event id).
pub(crate) async fn one_from(
    app: &AppState,
    partner: &crate::ingest::auth::Partner,
    value: Value,
    document_sha256: Option<&str>,
) -> Result<(StatusCode, Accepted), ApiError> {
    if partner.status == crate::partners::Status::Sandbox {
        return sandbox::one(app, partner, value).await;
    }
    // What a rejection prompt needs, read before `check` takes the event.
    let refused =
        crate::prompts::rejection::watches(app, partner).then(|| crate::prompts::rejection::Refused::event(&value, document_sha256));
    let env = match check(app, partner, value) {
        Ok(env) => env,
        Err(e) => {
            if let Some(r) = refused {
                crate::prompts::rejection::raise(app, partner, r, &e).await;
            }
            return Err(e);
        }
    };
    commit_checked(app, partner, env).await
}

/// Every check an event passes before it is committed: envelope, source,
/// what the partner may send, schema and reference data. Sandbox traffic
/// goes through exactly this.
pub(crate) fn check(app: &AppState, partner: &crate::ingest::auth::Partner, value: Value) -> Result<crate::model::Envelope, ApiError> {
    let mut env = cloudevent::parse(value).map_err(ApiError::validation)?;
    if !partner.sources.contains(&env.source) {
        return Err(ApiError::forbidden(
            "source_not_allowed",
            format!("partner {} may not send as source {:?}", partner.name, env.source),
        ));
    }
    partner.check_allowed(&env.r#type, &env.jurisdiction)?;
    if partner.registered
        && let Some(other) = foreign_system_recipient(&env, &partner.sources)
    {
        // A registered partner's prompts may name units, accounts and
        // jurisdictions, and itself; another connected system never: it would
        // reach that partner's callback as if the hub had sent it.
        return Err(ApiError::forbidden(
            "recipient_not_allowed",
            format!("partner {} may not address a prompt to another system ({other})", partner.name),
        ));
    }
    let mut errors: Vec<FieldError> = Vec::new();
    if let Err(e) = app.catalogue.validate(&env.r#type, env.data(), "/data") {
        errors.extend(e);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // Identifier checks that need data or arithmetic, on a body the schema
    // accepted. `time` is required by the envelope; the accept time stands in
    // only if it ever fails to parse.
    let time = chrono::DateTime::parse_from_rfc3339(&env.time).unwrap_or_else(|_| chrono::Utc::now().fixed_offset());
    let errors = app.reference.check(&env.r#type, env.data(), time, "/data");
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    subject::apply(&mut env);
    Ok(env)
}

/// The first `system` recipient of a prompt that is not one of `own` sources.
fn foreign_system_recipient(env: &crate::model::Envelope, own: &[String]) -> Option<String> {
    if env.r#type != "prompt" {
        return None;
    }
    env.data()
        .get("recipients")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("system").and_then(Value::as_str))
        .find(|s| !own.iter().any(|o| o == s))
        .map(str::to_string)
}

/// Routes and commits an event that passed [`check`].
async fn commit_checked(
    app: &AppState,
    partner: &crate::ingest::auth::Partner,
    env: crate::model::Envelope,
) -> Result<(StatusCode, Accepted), ApiError> {
    let mut destinations = crate::xp::destinations(&env, &app.config.xp.source, || app.routes.route(&env, &partner.name));
    if let Some(d) = crate::prompts::route::callback(app, &env).await.map_err(|e| {
        tracing::warn!(error = %e, "Partner lookup for a prompt failed: the store does not answer.");
        ApiError::unavailable("the hub cannot route this prompt right now; send again shortly")
    })? {
        destinations.push(d.to_string());
    }
    let burst = burst::of(&app.config.ingest.alerts, &partner.name, &env);
    let msg = commit::new_message(&env, &partner.name, destinations, burst);
    match app.committer.submit(msg).await {
        Ok(InsertOutcome::Accepted(receipt)) => {
            metrics::counter!(telemetry::INGEST_EVENTS_TOTAL, telemetry::LABEL_OUTCOME => "accepted").increment(1);
            if receipt.deliveries.is_empty() {
                metrics::counter!(telemetry::INGEST_UNROUTED_TOTAL).increment(1);
                tracing::info!(message_id = %receipt.id, r#type = %env.r#type, "Message matched no route; kept as unrouted.");
            }
            Ok((
                StatusCode::ACCEPTED,
                Accepted {
                    receipt,
                    duplicate: false,
                    folded_into: None,
                    sandbox: false,
                },
            ))
        }
        Ok(InsertOutcome::Duplicate(receipt)) => {
            metrics::counter!(telemetry::INGEST_EVENTS_TOTAL, telemetry::LABEL_OUTCOME => "duplicate").increment(1);
            Ok((
                StatusCode::OK,
                Accepted {
                    receipt,
                    duplicate: true,
                    folded_into: None,
                    sandbox: false,
                },
            ))
        }
        Ok(InsertOutcome::Folded(receipt)) => {
            metrics::counter!(telemetry::INGEST_EVENTS_TOTAL, telemetry::LABEL_OUTCOME => "folded").increment(1);
            Ok((
                StatusCode::OK,
                Accepted {
                    folded_into: Some(receipt.id.as_str().to_string()),
                    receipt,
                    duplicate: true,
                    sandbox: false,
                },
            ))
        }
        Err(commit::CommitError::Closed) => Err(ApiError::unavailable("the hub is shutting down; send again shortly")),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

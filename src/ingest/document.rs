//! Ingest of a partner's own format: `POST /api/v1/documents/{type}`.
//!
//! The partner's inbound mapping for the type (named in its connector file)
//! translates the body (JSON, or XML in UTF-8, GBK or GB18030) into the
//! canonical event; the hub adds `specversion`, `type`, the partner's
//! `source` and a `mapping` attribute naming the version used, and the event
//! then takes exactly the path of `POST /api/v1/messages`: schema, reference
//! checks, routing, commit, 202.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Partner;
use super::{Accepted, answer, one_from, read_body, refuse_when_full};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::mapping::{MapError, Mapping};

/// The document route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_document))
}

/// Submit one document in the partner's own format (XML or JSON, per its
/// inbound mapping for the type).
#[utoipa::path(
    post,
    path = "/api/v1/documents/{type}",
    tag = "ingest",
    security(("partner_key" = [])),
    params(("type" = String, Path, description = "Canonical message type, e.g. ledger-entry")),
    request_body(content = String, description = "The document, as the partner's mapping reads it", content_type = "application/xml"),
    responses(
        (status = 202, description = "Mapped, checked and committed", body = Accepted),
        (status = 200, description = "A duplicate (same source and mapped id), or a video-AI alert folded into an earlier one of its burst (`folded_into`)", body = Accepted),
        (status = 400, description = "The document is not well-formed: `errors[0].message` starts with `line L, column C`", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "The partner has no inbound mapping for this type", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Content type does not match the mapping's input format", body = ErrorBody),
        (status = 422, description = "`mapping_failed` (one entry per failing rule) or `validation_failed` (the mapped event)", body = ErrorBody),
        (status = 429, description = "Backlog full; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
async fn post_document(State(app): State<AppState>, Path(message_type): Path<String>, req: Request) -> Response {
    answer(document(&app, &message_type, req).await)
}

async fn document(app: &AppState, message_type: &str, req: Request) -> Result<Response, ApiError> {
    let partner = crate::ingest::auth::authenticate(app, req.headers()).await?;
    let result = document_as(app, &partner, message_type, req).await;
    if let Err(e) = &result {
        crate::ingest::sandbox::note_refusal(app, &partner, Some(message_type), e).await;
    }
    result
}

async fn document_as(app: &AppState, partner: &Partner, message_type: &str, req: Request) -> Result<Response, ApiError> {
    refuse_when_full(app)?;
    let mapping = inbound_mapping(app, partner, message_type)?;
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_xml = media == "application/xml" || media == "text/xml" || media.ends_with("+xml");
    let is_json = media == "application/json" || media.ends_with("+json");
    if (mapping.reads_xml() && !is_xml) || (!mapping.reads_xml() && !is_json) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "{message_type} documents from {} are {}; send Content-Type {}",
                partner.name,
                if mapping.reads_xml() { "XML" } else { "JSON" },
                if mapping.reads_xml() {
                    "application/xml"
                } else {
                    "application/json"
                }
            ),
        ));
    }
    let (parts, body) = req.into_parts();
    let body = read_body(body, app.config.ingest.max_body.as_usize()).await?;
    partner.check_signature(&parts.headers, parts.uri.path(), &body)?;
    let (status, accepted) = submit_document(app, partner, &mapping, message_type, &body).await?;
    Ok((status, Json(accepted)).into_response())
}

/// The partner's inbound mapping for `message_type`, in the version in force now.
pub(crate) fn inbound_mapping(app: &AppState, partner: &Partner, message_type: &str) -> Result<Arc<Mapping>, ApiError> {
    let Some(name) = partner.mappings.get(message_type) else {
        return Err(ApiError::not_found(format!(
            "partner {} has no inbound mapping for {message_type:?}; send canonical CloudEvents to /api/v1/messages",
            partner.name
        )));
    };
    app.mappings
        .in_force(name, Utc::now())
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no version of mapping {name} is in force yet")))
}

/// Maps one document with `mapping`, completes the envelope and submits it
/// like a CloudEvent: the shared path of the HTTP endpoint and of inbound
/// connector kinds (MQTT, file drop, poll).
pub(crate) async fn submit_document(
    app: &AppState,
    partner: &Partner,
    mapping: &Mapping,
    message_type: &str,
    body: &[u8],
) -> Result<(StatusCode, Accepted), ApiError> {
    let watched = crate::prompts::rejection::watches(app, partner);
    let digest = watched.then(|| crate::ingest::auth::sha256_bytes_hex(body));
    let event = match map_document(partner, mapping, message_type, body) {
        Ok(event) => event,
        Err(e) => {
            if let Some(d) = &digest {
                let refused = crate::prompts::rejection::Refused::document(message_type, d);
                crate::prompts::rejection::raise(app, partner, refused, &e).await;
            }
            return Err(e);
        }
    };
    one_from(app, partner, event, digest.as_deref()).await
}

/// Maps one document to the CloudEvent the partner would have sent, with
/// the same errors as the endpoint; nothing is checked further or stored
/// (conformance runs use this on sample files).
pub(crate) fn map_document(partner: &Partner, mapping: &Mapping, message_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let mapped = mapping.apply(body).map_err(|e| match e {
        MapError::Input(i) => {
            let mut err = ApiError::bad_request("malformed_document", format!("the document cannot be read: {}", i.message));
            err.errors = vec![FieldError {
                path: String::new(),
                message: format!("line {}, column {}: {}", i.line, i.column, i.message),
            }];
            err
        }
        MapError::Rules(rules) => {
            let mut err = ApiError::validation(
                rules
                    .into_iter()
                    .map(|r| FieldError {
                        path: r.output,
                        message: format!("{} (mapping rule {})", r.message, r.rule),
                    })
                    .collect(),
            );
            err.code = "mapping_failed";
            err.detail = format!(
                "the document does not map to {message_type} with {} v{}",
                mapping.name, mapping.version
            );
            err
        }
    })?;
    let Some(Value::Object(mut event)) = mapped.json else {
        return Err(ApiError::internal(&std::io::Error::other(
            "an inbound mapping produced no JSON object",
        )));
    };
    let source = partner.sources.first().cloned().ok_or_else(|| {
        ApiError::forbidden(
            "source_not_allowed",
            format!("partner {} has no source configured to send as", partner.name),
        )
    })?;
    event.insert("specversion".into(), Value::from("1.0"));
    event.insert("type".into(), Value::from(message_type));
    event.insert("source".into(), Value::from(source));
    event.insert("datacontenttype".into(), Value::from("application/json"));
    event.insert("mapping".into(), Value::from(format!("{}@v{}", mapping.name, mapping.version)));
    Ok(Value::Object(event))
}

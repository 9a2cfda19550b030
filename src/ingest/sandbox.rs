//! Sandbox ingest: a partner in sandbox is authenticated and its messages
//! checked exactly as in production (the same [`super::check`], the same
//! mappings), answered with the same errors, and kept in
//! `sandbox_messages`, a table nothing routes or delivers from. Its
//! accepted events never reach the message store, so they cannot leak into
//! production routes or collide with its later production ids.

use axum::http::StatusCode;
use serde_json::Value;

use super::Accepted;
use super::auth::Partner;
use crate::app::AppState;
use crate::error::ApiError;
use crate::model::{MessageId, now_millis};
use crate::partners::Status;
use crate::store::Receipt;
use crate::store::sandbox::SandboxRow;

/// Checks one event of a sandbox partner and records the outcome.
pub(crate) async fn one(app: &AppState, partner: &Partner, value: Value) -> Result<(StatusCode, Accepted), ApiError> {
    let message_type = value.get("type").and_then(Value::as_str).map(str::to_string);
    let event_id = value.get("id").and_then(Value::as_str).map(str::to_string);
    match super::check(app, partner, value) {
        Ok(env) => {
            let id = MessageId::generate();
            let event = super::cloudevent::canonical(&env, id.as_str());
            let now = now_millis();
            let row = SandboxRow {
                id: id.as_str().to_string(),
                partner_id: partner.name.clone(),
                received_at: now,
                message_type: Some(env.r#type.clone()),
                source_event_id: Some(env.id.clone()),
                http_status: 202,
                outcome: "accepted".into(),
                error_code: None,
                errors: "[]".into(),
                event: Some(event.to_string()),
            };
            app.store.insert_sandbox(&row).await.map_err(|e| ApiError::internal(&e))?;
            metrics::counter!(crate::telemetry::SANDBOX_MESSAGES_TOTAL, crate::telemetry::LABEL_OUTCOME => "accepted").increment(1);
            let received_at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().to_rfc3339();
            Ok((
                StatusCode::ACCEPTED,
                Accepted {
                    receipt: Receipt {
                        id,
                        received_at,
                        deliveries: Vec::new(),
                    },
                    duplicate: false,
                    folded_into: None,
                    sandbox: true,
                },
            ))
        }
        Err(e) => {
            record_refusal(app, partner, message_type, event_id, &e).await;
            Err(e)
        }
    }
}

/// The codes [`super::check`] answers with, recorded by [`one`] already.
const EVENT_CODES: &[&str] = &[
    "validation_failed",
    "source_not_allowed",
    "type_not_allowed",
    "jurisdiction_not_allowed",
];

/// Records a refusal of a whole request (unreadable body, bad signature,
/// mapping failure) from a sandbox partner; a no-op for other partners and
/// for refusals already recorded per event.
pub(crate) async fn note_refusal(app: &AppState, partner: &Partner, message_type: Option<&str>, e: &ApiError) {
    // Refusals made by `check` were recorded per event by `one`; busy and
    // broken answers (429, 5xx) say nothing about the partner's data.
    if partner.status != Status::Sandbox
        || e.status == StatusCode::TOO_MANY_REQUESTS
        || e.status.is_server_error()
        || EVENT_CODES.contains(&e.code)
    {
        return;
    }
    record_refusal(app, partner, message_type.map(str::to_string), None, e).await;
}

async fn record_refusal(app: &AppState, partner: &Partner, message_type: Option<String>, event_id: Option<String>, e: &ApiError) {
    let row = SandboxRow {
        id: MessageId::generate().as_str().to_string(),
        partner_id: partner.name.clone(),
        received_at: now_millis(),
        message_type,
        source_event_id: event_id,
        http_status: i32::from(e.status.as_u16()),
        outcome: "rejected".into(),
        error_code: Some(e.code.to_string()),
        errors: serde_json::to_string(&e.body()).unwrap_or_else(|_| "{}".into()),
        event: None,
    };
    if let Err(err) = app.store.insert_sandbox(&row).await {
        // The partner still gets its answer; only the record is missing.
        tracing::warn!(partner = %partner.name, error = %err, "Could not record a sandbox refusal.");
    }
    metrics::counter!(crate::telemetry::SANDBOX_MESSAGES_TOTAL, crate::telemetry::LABEL_OUTCOME => "rejected").increment(1);
}

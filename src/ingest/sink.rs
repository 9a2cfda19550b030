//! The way in for connector kinds that receive on their own (an MQTT
//! subscription, a drop folder, a poller): the same checks, mapping and
//! commit as the HTTP endpoints. Both calls return only after the commit, so
//! the caller acknowledges its source (the broker, the file move, the
//! cursor) afterwards and nothing is lost between the two.
//!
//! How to read a refusal: `429` (backlog full) and `503` (shutting down)
//! mean "keep it and try again later"; any other `4xx` is permanent for
//! that document (park it where an operator sees it); `5xx` is the hub's
//! own failure (try again).

use axum::http::StatusCode;
use serde_json::Value;

use super::auth::Partner;
use super::document::{inbound_mapping, submit_document};
use super::{one, refuse_when_full};
use crate::app::AppState;
use crate::connectors::health::HealthReporter;
use crate::error::ApiError;

/// Hands received messages to the ingest pipeline as one partner.
#[derive(Clone)]
pub struct Sink {
    app: AppState,
    partner: Partner,
    health: HealthReporter,
}

/// The result of a committed submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The hub's message id (the original one for a duplicate).
    pub message_id: String,
    /// True when the same (source, id) was accepted before.
    pub duplicate: bool,
}

impl Sink {
    /// A sink for connector `name`; `None` when it has no enabled `[inbound]`.
    pub fn new(app: AppState, name: &str) -> Option<Self> {
        let partner = app.partners.named(name)?.clone();
        let health = app.health.reporter(name);
        Some(Self { app, partner, health })
    }

    /// Where the receiver reports whether its source can be used (shown by
    /// `GET /api/v1/connectors`, gauge `wastehub_connector_up`).
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// The partner's connector name.
    pub fn partner(&self) -> &str {
        &self.partner.name
    }

    /// Submits a canonical CloudEvent (its `source` must be the partner's).
    pub async fn event(&self, event: Value) -> Result<Submitted, ApiError> {
        refuse_when_full(&self.app)?;
        let (status, accepted) = one(&self.app, &self.partner, event).await?;
        Ok(submitted(status, accepted))
    }

    /// Submits a document in the partner's own format through its inbound
    /// mapping for `message_type`.
    pub async fn document(&self, message_type: &str, body: &[u8]) -> Result<Submitted, ApiError> {
        refuse_when_full(&self.app)?;
        let mapping = inbound_mapping(&self.app, &self.partner, message_type)?;
        if body.len() > self.app.config.ingest.max_body.as_usize() {
            return Err(ApiError::too_large(format!(
                "the document is larger than {} bytes",
                self.app.config.ingest.max_body.as_usize()
            )));
        }
        let (status, accepted) = submit_document(&self.app, &self.partner, &mapping, message_type, body).await?;
        Ok(submitted(status, accepted))
    }
}

fn submitted(status: StatusCode, accepted: super::Accepted) -> Submitted {
    Submitted {
        message_id: accepted.receipt.id.as_str().to_string(),
        duplicate: status == StatusCode::OK || accepted.duplicate,
    }
}

/// A refusal as one line per problem, for logs and reason files: status,
/// code and detail, then each field error on a line of its own. It holds
/// what the hub found wrong, never the submitted body.
pub fn describe(e: &ApiError) -> String {
    use std::fmt::Write as _;
    let mut s = format!("{} {}: {}", e.status.as_u16(), e.code, e.detail);
    for f in &e.errors {
        if f.path.is_empty() {
            let _ = write!(s, "\n    {}", f.message);
        } else {
            let _ = write!(s, "\n    {}: {}", f.path, f.message);
        }
    }
    s
}

/// Whether a refusal should be retried later (the document kept) rather
/// than parked as permanently bad.
pub fn is_transient(e: &ApiError) -> bool {
    e.status == StatusCode::TOO_MANY_REQUESTS || e.status == StatusCode::SERVICE_UNAVAILABLE || e.status.is_server_error()
}

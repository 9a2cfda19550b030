//! The operations API: trace, list, replay, per-destination counts,
//! connectors and their health, readiness and metrics. Everything but the health probes needs the operator
//! token (separate from partner keys).

pub mod connectors;
pub mod destinations;
pub mod health;
pub mod messages;
pub mod openapi;
pub mod partners;
pub mod replay;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::ApiError;
use crate::ingest::auth::{bearer, digest_eq, sha256_hex};

/// The admin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(messages::router())
        .merge(destinations::router())
        .merge(connectors::router())
        .merge(replay::router())
        .merge(partners::router())
        .merge(health::router())
}

/// Proof that the request carries an operator token, and whose it is.
pub struct Operator {
    /// The operator's name (`operator` for the shared token), for the audit log.
    pub name: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let admin = &state.config.admin;
        let shared = admin.operator_token_sha256.expose();
        if shared.is_empty() && admin.operators.is_empty() {
            return Err(ApiError::unauthorized(
                "operator endpoints are disabled: set admin.operator_token_sha256 or admin.operators",
            ));
        }
        let token =
            bearer(&parts.headers).ok_or_else(|| ApiError::unauthorized("send the operator token as `Authorization: Bearer <token>`"))?;
        let digest = sha256_hex(token);
        // Every digest is compared (no early exit), so timing says nothing
        // about which operator a token nearly matched.
        let mut found: Option<&str> = None;
        if !shared.is_empty() && digest_eq(&digest, shared) {
            found = Some("operator");
        }
        for (name, want) in &admin.operators {
            if digest_eq(&digest, want.expose()) && found.is_none() {
                found = Some(name);
            }
        }
        found
            .map(|n| Operator { name: n.to_string() })
            .ok_or_else(|| ApiError::unauthorized("wrong operator token"))
    }
}

//! The operations API: trace, list, replay, per-destination counts,
//! connectors and their health, readiness and metrics. Everything but the health probes needs the operator
//! token (separate from partner keys).

pub mod connectors;
pub mod destinations;
pub mod health;
pub mod messages;
pub mod openapi;
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
        .merge(health::router())
}

/// Proof that the request carries the operator token.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let want = state.config.admin.operator_token_sha256.expose();
        if want.is_empty() {
            return Err(ApiError::unauthorized(
                "operator endpoints are disabled: set admin.operator_token_sha256",
            ));
        }
        let token =
            bearer(&parts.headers).ok_or_else(|| ApiError::unauthorized("send the operator token as `Authorization: Bearer <token>`"))?;
        if digest_eq(&sha256_hex(token), want) {
            Ok(Operator)
        } else {
            Err(ApiError::unauthorized("wrong operator token"))
        }
    }
}

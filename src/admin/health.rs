//! `/healthz` (the process answers), `/readyz` (the store answers) and
//! `/metrics` (Prometheus text; operator token required).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Operator;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Liveness: the process is up. No authentication (it says nothing else).
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "ok", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers. No authentication.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready", body = String), (status = 503, body = ErrorBody)))]
async fn readyz(State(app): State<AppState>) -> Result<&'static str, ApiError> {
    if app.shutting_down() {
        return Err(ApiError::unavailable("shutting down"));
    }
    app.store.ping().await.map(|_| "ready").map_err(|e| {
        tracing::warn!(error = %e, "Readiness probe failed: the store does not answer.");
        ApiError::unavailable("the store does not answer")
    })
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", security(("operator_token" = [])),
    responses((status = 200, description = "Prometheus text format", body = String), (status = 401, body = ErrorBody)))]
async fn metrics(_: Operator) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::prometheus().render(),
    )
}

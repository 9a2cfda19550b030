//! `GET /api/v1/destinations`: per destination, its deliveries by status and
//! its attempts: the backlog and health of each partner at a glance.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Operator;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::store::DestinationStats;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_destinations))
}

/// Delivery counts per destination.
#[utoipa::path(
    get, path = "/api/v1/destinations", tag = "operations",
    security(("operator_token" = [])),
    responses((status = 200, body = Vec<DestinationStats>), (status = 401, body = ErrorBody))
)]
async fn list_destinations(_: Operator, State(app): State<AppState>) -> ApiResult<Json<Vec<DestinationStats>>> {
    app.store.destination_stats().await.map(Json).map_err(|e| ApiError::internal(&e))
}

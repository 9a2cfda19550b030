//! `GET /api/v1/connectors` and `GET /api/v1/connectors/{name}`: every
//! connector with its kind, directions and health, as the health board
//! ([`crate::connectors::health`]) knows it; `?probe=true` probes an
//! outbound connector's partner now, bounded by its timeout.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Operator;
use crate::app::AppState;
use crate::connectors::health::ConnectorView;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_connectors)).routes(routes!(get_connector))
}

/// Every connector, by name, with its health.
#[utoipa::path(
    get, path = "/api/v1/connectors", tag = "operations",
    security(("operator_token" = [])),
    responses((status = 200, body = Vec<ConnectorView>), (status = 401, body = ErrorBody))
)]
async fn list_connectors(_: Operator, State(app): State<AppState>) -> Json<Vec<ConnectorView>> {
    Json(app.health.views())
}

/// Whether to probe now.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProbeQuery {
    /// `true`: probe an outbound connector's partner now (at most the
    /// connector's timeout; not inside a maintenance window) instead of
    /// showing the last result. Receivers report on their own and are shown
    /// as last reported.
    #[serde(default)]
    pub probe: bool,
}

/// One connector with its health.
#[utoipa::path(
    get, path = "/api/v1/connectors/{name}", tag = "operations",
    security(("operator_token" = [])),
    params(("name" = String, Path, description = "Connector name"), ProbeQuery),
    responses(
        (status = 200, body = ConnectorView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
async fn get_connector(
    _: Operator,
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ProbeQuery>,
) -> ApiResult<Json<ConnectorView>> {
    if app.health.view(&name).is_none() {
        return Err(ApiError::not_found(format!("no connector {name}")));
    }
    if q.probe && app.prober.knows(&name) {
        app.prober.probe(&name).await;
    }
    app.health
        .view(&name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no connector {name}")))
}

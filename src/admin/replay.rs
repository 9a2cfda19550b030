//! Replay: `POST /api/v1/deliveries/{id}/replay` revives one dead (or
//! delivered) delivery; `POST /api/v1/deliveries/replay` revives every dead
//! delivery matching a filter. Replayed deliveries keep their place in their
//! subject's order and run their retry schedule again.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Operator;
use super::messages::parse_time;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::{DeliveryId, now_millis};
use crate::store::{MappingChoice, ReplayFilter};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(replay_one)).routes(routes!(replay_bulk))
}

/// How many deliveries were revived.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Replayed {
    /// Count.
    pub replayed: u64,
}

/// Replay one delivery.
#[utoipa::path(
    post, path = "/api/v1/deliveries/{id}/replay", tag = "operations",
    security(("operator_token" = [])),
    params(
        ("id" = String, Path, description = "Delivery id (dlv_…)"),
        ReplayQuery,
    ),
    responses(
        (status = 200, body = Replayed),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The delivery is still active", body = ErrorBody),
    )
)]
async fn replay_one(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ReplayQuery>,
) -> ApiResult<Json<Replayed>> {
    let id = DeliveryId::parse(&id).ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))?;
    match app.store.replay_delivery(&id, now_millis(), q.mappings).await {
        Ok(Some(true)) => {
            tracing::info!(delivery_id = %id, mappings = ?q.mappings, "Operator replayed a delivery.");
            app.after_replay(1).await;
            Ok(Json(Replayed { replayed: 1 }))
        }
        Ok(Some(false)) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "still_active",
            "the delivery has not finished; only dead or delivered ones can be replayed",
        )),
        Ok(None) => Err(ApiError::not_found(format!("no delivery {id}"))),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// How a single replay renders the body.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// `accepted` (default): the mapping versions in force when the message
    /// was accepted; `current`: the versions in force now, after a fix.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub mappings: MappingChoice,
}

/// Which dead deliveries to replay (all fields optional; at least one required).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReplay {
    /// Only this destination.
    pub destination: Option<String>,
    /// Only messages of this type.
    #[serde(rename = "type")]
    pub r#type: Option<String>,
    /// Only this subject.
    pub subject: Option<String>,
    /// Only deliveries created at or after (RFC 3339).
    pub since: Option<String>,
    /// Only deliveries created before (RFC 3339).
    pub until: Option<String>,
    /// `accepted` (default) or `current` mapping versions.
    #[serde(default)]
    pub mappings: MappingChoice,
}

/// Replay every dead delivery matching the filter.
#[utoipa::path(
    post, path = "/api/v1/deliveries/replay", tag = "operations",
    security(("operator_token" = [])),
    request_body = BulkReplay,
    responses((status = 200, body = Replayed), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
async fn replay_bulk(_: Operator, State(app): State<AppState>, Json(b): Json<BulkReplay>) -> ApiResult<Json<Replayed>> {
    if b.destination.is_none() && b.r#type.is_none() && b.subject.is_none() && b.since.is_none() && b.until.is_none() {
        return Err(ApiError::bad_request(
            "filter_required",
            "name at least one of destination, type, subject, since, until",
        ));
    }
    let filter = ReplayFilter {
        destination: b.destination,
        r#type: b.r#type,
        subject: b.subject,
        since: parse_time("since", b.since.as_deref())?,
        until: parse_time("until", b.until.as_deref())?,
    };
    let n = app
        .store
        .replay_dead(&filter, now_millis(), b.mappings)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    tracing::info!(replayed = n, ?filter, "Operator replayed dead deliveries.");
    app.after_replay(n).await;
    Ok(Json(Replayed { replayed: n }))
}

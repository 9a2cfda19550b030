//! `GET /api/v1/xp`, `GET /api/v1/xp/{application_no}` and
//! `GET /api/v1/xp/whitelist`: the negotiations with their state, running
//! deadline, history and letters (with the receipts kept as evidence), and
//! the whitelist entries the hub holds. Operator token required.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::model::Negotiation;
use crate::admin::Operator;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::millis_to_rfc3339;
use crate::store::xp::{HistoryRow, LetterRow};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(whitelist))
        .routes(routes!(one))
}

/// Which negotiations to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only those in this state (`CONSULTING`, …).
    pub state: Option<String>,
    /// Application numbers after this one (paging).
    #[serde(default)]
    pub after: String,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// One negotiation in a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// The application number.
    pub application_no: String,
    /// Its state.
    pub state: String,
    /// The running deadline's kind and due date, if any.
    pub due: Option<String>,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// Negotiations by application number.
#[utoipa::path(
    get, path = "/api/v1/xp", tag = "cross-province",
    security(("operator_token" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<Summary>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
async fn list(_: Operator, State(app): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<Vec<Summary>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("bad_limit", "limit must be 1 to 500"));
    }
    let rows = app
        .store
        .xp_negotiations(q.state.as_deref(), &q.after, limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(
        rows.into_iter()
            .map(|r| {
                let n: Option<Negotiation> = serde_json::from_str(&r.doc).ok();
                Summary {
                    due: n.as_ref().and_then(|n| n.running()).map(|d| format!("{:?} {}", d.kind, d.due)),
                    application_no: r.application_no,
                    state: r.state,
                    updated_at: millis_to_rfc3339(r.updated_at),
                }
            })
            .collect(),
    ))
}

/// A negotiation with its history and letters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Detail {
    /// The record.
    pub negotiation: Negotiation,
    /// Every letter and deadline step applied, parked, refused or repeated, oldest first.
    pub history: Vec<HistoryRow>,
    /// Letters exchanged with the other province, with the signed receipts.
    pub letters: Vec<LetterRow>,
}

/// One negotiation.
#[utoipa::path(
    get, path = "/api/v1/xp/{application_no}", tag = "cross-province",
    security(("operator_token" = [])),
    params(("application_no" = String, Path, description = "Application number")),
    responses((status = 200, body = Detail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn one(_: Operator, State(app): State<AppState>, Path(application_no): Path<String>) -> ApiResult<Json<Detail>> {
    let row = app
        .store
        .xp_negotiation(&application_no)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::not_found(format!("no negotiation for application {application_no}")))?;
    let negotiation: Negotiation = serde_json::from_str(&row.doc).map_err(|e| ApiError::internal(&e))?;
    let history = app.store.xp_history(&application_no).await.map_err(|e| ApiError::internal(&e))?;
    let letters = app
        .store
        .xp_letters(&super::emit::subject(&application_no))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(Detail {
        negotiation,
        history,
        letters,
    }))
}

/// A whitelist entry as held.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhitelistView {
    /// The scheme.
    pub scheme: String,
    /// The entry id.
    pub whitelist_id: String,
    /// The entry (`whitelist-entry` data).
    #[schema(value_type = Object)]
    pub entry: Value,
    /// The time of the event that carried this version.
    pub event_time: String,
}

/// The whitelist entries the hub holds.
#[utoipa::path(
    get, path = "/api/v1/xp/whitelist", tag = "cross-province",
    security(("operator_token" = [])),
    responses((status = 200, body = Vec<WhitelistView>), (status = 401, body = ErrorBody))
)]
async fn whitelist(_: Operator, State(app): State<AppState>) -> ApiResult<Json<Vec<WhitelistView>>> {
    let rows = app.store.xp_whitelist_all(10_000).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(
        rows.into_iter()
            .map(|r| WhitelistView {
                entry: serde_json::from_str(&r.entry).unwrap_or(Value::Null),
                scheme: r.scheme,
                whitelist_id: r.whitelist_id,
                event_time: r.event_time,
            })
            .collect(),
    ))
}

//! `GET /api/v1/messages/{id}` (the full trace of one message) and
//! `GET /api/v1/messages` (filtered list, newest first, cursor pagination).

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Operator;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::DeliveryStatus;
use crate::store::{MessageFilter, MessagePage, MessageView, RenderedView};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_message)).routes(routes!(list_messages))
}

/// The trace of one message: envelope, body, and per destination its status
/// and every attempt.
#[utoipa::path(
    get, path = "/api/v1/messages/{id}", tag = "operations",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Hub message id (msg_…)")),
    responses(
        (status = 200, body = MessageView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
async fn get_message(_: Operator, State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<MessageView>> {
    match app.store.message(&id).await {
        Ok(Some(mut m)) => {
            render_deliveries(&app, &mut m);
            Ok(Json(m))
        }
        Ok(None) => Err(ApiError::not_found(format!("no message {id}"))),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// List filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Exact message type.
    #[serde(rename = "type")]
    pub r#type: Option<String>,
    /// Exact CloudEvents source.
    pub source: Option<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// A delivery status (`pending`, `in_flight`, `held`, `retrying`, `delivered`, `dead`) or `unrouted`.
    pub status: Option<String>,
    /// Received at or after (RFC 3339).
    pub since: Option<String>,
    /// Received before (RFC 3339).
    pub until: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<i64>,
}

/// Messages matching the filters, newest first.
#[utoipa::path(
    get, path = "/api/v1/messages", tag = "operations",
    security(("operator_token" = [])),
    params(ListQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
async fn list_messages(_: Operator, State(app): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<MessagePage>> {
    if let Some(s) = &q.status
        && s != "unrouted"
        && DeliveryStatus::parse(s).is_none()
    {
        return Err(ApiError::bad_request("bad_filter", format!("unknown status {s:?}")));
    }
    let filter = MessageFilter {
        r#type: q.r#type,
        source: q.source,
        subject: q.subject,
        status: q.status,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        cursor: match q.cursor.as_deref() {
            None => None,
            Some(c) => Some(
                c.parse::<i64>()
                    .map_err(|_| ApiError::bad_request("bad_cursor", "cursor must come from next_cursor"))?,
            ),
        },
        limit: q.limit.unwrap_or(50),
    };
    app.store.messages(&filter).await.map(Json).map_err(|e| ApiError::internal(&e))
}

/// RFC 3339 text to milliseconds, or a 400 naming the parameter.
pub(super) fn parse_time(name: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    v.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp_millis())
            .map_err(|_| ApiError::bad_request("bad_filter", format!("{name} must be an RFC 3339 timestamp")))
    })
    .transpose()
}

/// Fills in each delivery's body as its destination's mapping renders it.
fn render_deliveries(app: &AppState, m: &mut MessageView) {
    for d in &mut m.deliveries {
        let Some(renderer) = app.renderers.get(&d.destination) else {
            continue;
        };
        let Some(name) = renderer.mapping_for(&m.r#type) else { continue };
        d.rendered = Some(match renderer.render_value(name, &m.event, d.mapping_at) {
            Ok(r) => RenderedView {
                mapping: r.mapping.as_ref().map(|(n, v)| format!("{n} v{v}")).unwrap_or_default(),
                content_type: r.content_type.clone(),
                body: Some(r.text()),
                error: None,
            },
            Err(e) => RenderedView {
                mapping: name.to_string(),
                content_type: String::new(),
                body: None,
                error: Some(e.message),
            },
        });
    }
}

//! The partner lifecycle API (operator token): register a cell platform,
//! show and list partners, rotate keys, suspend, resume, go live, and read
//! a partner's audit trail and sandbox traffic. The CLI's `wastehub partner`
//! commands call these endpoints.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Operator;
use crate::app::AppState;
use crate::config::units::HumanDuration;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::partners::PartnerView;
use crate::partners::conformance::{self, Report, Sample};
use crate::partners::lifecycle::{self, Created, Rotated};
use crate::partners::request::NewPartner;
use crate::store::partners::{AuditRow, KeyRow};
use crate::store::sandbox::SandboxRow;

/// Largest request body these endpoints read.
const MAX_BODY: usize = 64 * 1024;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_partner, list_partners))
        .routes(routes!(show_partner))
        .routes(routes!(rotate_key))
        .routes(routes!(suspend))
        .routes(routes!(resume))
        .routes(routes!(go_live))
        .routes(routes!(audit))
        .routes(routes!(sandbox))
        .routes(routes!(run_conformance))
        .routes(routes!(conformance_report))
        .routes(routes!(conformance_html))
}

/// Largest conformance request (samples included).
const MAX_CONFORMANCE_BODY: usize = 16 * 1024 * 1024;

/// Reads a JSON body with field-level errors instead of axum's plain text.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    json_body_max(body, MAX_BODY)
}

fn json_body_max<T: serde::de::DeserializeOwned>(body: &Bytes, max: usize) -> Result<T, ApiError> {
    if body.len() > max {
        return Err(ApiError::too_large(format!("the body is larger than {max} bytes")));
    }
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(text).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!(
                "the body does not match the request: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// A partner with its keys (prefixes only) and latest conformance verdict.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PartnerDetail {
    /// The partner.
    #[serde(flatten)]
    pub partner: PartnerView,
    /// Its API keys, newest first (prefixes only).
    pub keys: Vec<KeyRow>,
    /// Its latest conformance run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conformance: Option<ConformanceSummary>,
}

/// The latest conformance run, in short.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConformanceSummary {
    /// Run id.
    pub id: String,
    /// When (Unix ms).
    pub at: i64,
    /// Whether it passed.
    pub passed: bool,
}

/// Register a cell-platform partner. It starts in sandbox; the API key (and
/// signing secret) in the answer are shown this once.
#[utoipa::path(
    post, path = "/api/v1/partners", tag = "partners",
    security(("operator_token" = [])),
    request_body = NewPartner,
    responses(
        (status = 201, body = Created),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "The id or source is taken", body = ErrorBody),
        (status = 422, description = "Field errors, one per problem", body = ErrorBody),
    )
)]
async fn add_partner(op: Operator, State(app): State<AppState>, body: Bytes) -> ApiResult<(StatusCode, Json<Created>)> {
    let req: NewPartner = json_body(&body)?;
    let created = lifecycle::add(&app, &op.name, &req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Every registered partner.
#[utoipa::path(
    get, path = "/api/v1/partners", tag = "partners",
    security(("operator_token" = [])),
    responses((status = 200, body = Vec<PartnerView>), (status = 401, body = ErrorBody))
)]
async fn list_partners(_: Operator, State(app): State<AppState>) -> ApiResult<Json<Vec<PartnerView>>> {
    let rows = app.store.partners().await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(rows.iter().map(PartnerView::from).collect()))
}

/// One partner.
#[utoipa::path(
    get, path = "/api/v1/partners/{id}", tag = "partners",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Partner id")),
    responses((status = 200, body = PartnerDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn show_partner(_: Operator, State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<PartnerDetail>> {
    let row = lifecycle::get(&app, &id).await?;
    let keys = app.store.partner_keys(&id).await.map_err(|e| ApiError::internal(&e))?;
    let latest = app.store.latest_conformance(&id).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(PartnerDetail {
        partner: PartnerView::from(&row),
        keys,
        conformance: latest.map(|r| ConformanceSummary {
            id: r.id,
            at: r.at,
            passed: r.passed,
        }),
    }))
}

/// `POST …/keys`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the partner's current keys keep working (`"24h"`, `"7d"`);
    /// `[partners] key_overlap` when absent, at most 90 days.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub overlap: Option<HumanDuration>,
}

/// Issue a new API key (shown once); the current keys keep working for the overlap.
#[utoipa::path(
    post, path = "/api/v1/partners/{id}/keys", tag = "partners",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Partner id")),
    request_body = RotateRequest,
    responses((status = 200, body = Rotated), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn rotate_key(op: Operator, State(app): State<AppState>, Path(id): Path<String>, body: Bytes) -> ApiResult<Json<Rotated>> {
    let req: RotateRequest = json_body(&body)?;
    let overlap = req.overlap.map_or(app.config.partners.key_overlap.0, |d| d.0);
    Ok(Json(lifecycle::rotate_key(&app, &op.name, &id, overlap).await?))
}

/// `POST …/suspend`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// Why (kept in the audit log).
    pub reason: String,
}

/// Suspend a partner: it gets 403 and nothing it sends is accepted.
#[utoipa::path(
    post, path = "/api/v1/partners/{id}/suspend", tag = "partners",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Partner id")),
    request_body = SuspendRequest,
    responses((status = 200, body = PartnerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn suspend(op: Operator, State(app): State<AppState>, Path(id): Path<String>, body: Bytes) -> ApiResult<Json<PartnerView>> {
    let req: SuspendRequest = json_body(&body)?;
    Ok(Json(lifecycle::suspend(&app, &op.name, &id, &req.reason).await?))
}

/// Resume a suspended partner in the status it had.
#[utoipa::path(
    post, path = "/api/v1/partners/{id}/resume", tag = "partners",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Partner id")),
    responses((status = 200, body = PartnerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
async fn resume(op: Operator, State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<PartnerView>> {
    Ok(Json(lifecycle::resume(&app, &op.name, &id).await?))
}

/// `POST …/go-live`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoLiveRequest {
    /// Go live without a passing conformance run, for this reason (audited).
    #[serde(default)]
    pub override_reason: Option<String>,
}

/// Take a sandbox partner live. Needs a passing latest conformance run, or
/// an override with a reason.
#[utoipa::path(
    post, path = "/api/v1/partners/{id}/go-live", tag = "partners",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Partner id")),
    request_body = GoLiveRequest,
    responses(
        (status = 200, body = PartnerView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`conformance_required` or `not_in_sandbox`", body = ErrorBody),
    )
)]
async fn go_live(op: Operator, State(app): State<AppState>, Path(id): Path<String>, body: Bytes) -> ApiResult<Json<PartnerView>> {
    let req: GoLiveRequest = json_body(&body)?;
    Ok(Json(lifecycle::go_live(&app, &op.name, &id, req.override_reason.as_deref()).await?))
}

/// How many rows to return.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

impl Limit {
    fn get(&self) -> i64 {
        i64::from(self.limit.unwrap_or(100).clamp(1, 1000))
    }
}

/// A partner's audit trail, newest first.
#[utoipa::path(
    get, path = "/api/v1/partners/{id}/audit", tag = "partners",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Partner id"), Limit),
    responses((status = 200, body = Vec<AuditRow>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn audit(_: Operator, State(app): State<AppState>, Path(id): Path<String>, Query(l): Query<Limit>) -> ApiResult<Json<Vec<AuditRow>>> {
    lifecycle::get(&app, &id).await?;
    let rows = app.store.audit_log(Some(&id), l.get()).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(rows))
}

/// A partner's sandbox traffic, newest first: what it sent and how it was answered.
#[utoipa::path(
    get, path = "/api/v1/partners/{id}/sandbox", tag = "partners",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Partner id"), Limit),
    responses((status = 200, body = Vec<SandboxRow>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn sandbox(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(l): Query<Limit>,
) -> ApiResult<Json<Vec<SandboxRow>>> {
    lifecycle::get(&app, &id).await?;
    let rows = app
        .store
        .sandbox_messages(&id, 0, l.get())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(rows))
}

/// `POST …/conformance`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConformanceRequest {
    /// Sample messages to check besides the recent sandbox traffic.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

/// Run a conformance check on a partner's recent sandbox traffic and the
/// samples sent; the report is stored, and go-live reads its verdict.
#[utoipa::path(
    post, path = "/api/v1/partners/{id}/conformance", tag = "partners",
    security(("operator_token" = [])),
    params(("id" = String, Path, description = "Partner id")),
    request_body = ConformanceRequest,
    responses((status = 200, body = Report), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody))
)]
async fn run_conformance(
    op: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: axum::extract::Request,
) -> ApiResult<Json<Report>> {
    let bytes = crate::ingest::read_body(body.into_body(), MAX_CONFORMANCE_BODY).await?;
    let req: ConformanceRequest = json_body_max(&bytes, MAX_CONFORMANCE_BODY)?;
    let row = lifecycle::get(&app, &id).await?;
    Ok(Json(conformance::run(&app, &op.name, &row, &req.samples).await?))
}

async fn stored_report(app: &AppState, run: &str) -> Result<Report, ApiError> {
    let row = app
        .store
        .conformance(run)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::not_found(format!("no conformance run {run}")))?;
    serde_json::from_str(&row.report).map_err(|e| ApiError::internal(&e))
}

/// A stored conformance report (JSON).
#[utoipa::path(
    get, path = "/api/v1/conformance/{run}", tag = "partners",
    security(("operator_token" = [])),
    params(("run" = String, Path, description = "Run id (cfr_…)")),
    responses((status = 200, body = Report), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn conformance_report(_: Operator, State(app): State<AppState>, Path(run): Path<String>) -> ApiResult<Json<Report>> {
    Ok(Json(stored_report(&app, &run).await?))
}

/// A stored conformance report as a readable HTML page.
#[utoipa::path(
    get, path = "/api/v1/conformance/{run}/report.html", tag = "partners",
    security(("operator_token" = [])),
    params(("run" = String, Path, description = "Run id (cfr_…)")),
    responses((status = 200, description = "HTML page", body = String, content_type = "text/html"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn conformance_html(_: Operator, State(app): State<AppState>, Path(run): Path<String>) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let report = stored_report(&app, &run).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        conformance::render_html(&report),
    )
        .into_response())
}

//! Replies: the simulator plays an enterprise answering a notice it has
//! accepted, and posts the reply in the contract's format to the hub it was
//! started with (`POST <hub>/api/v1/documents/prompt`, `Authorization:
//! Bearer <platform key>`), as the real platform would. The reply echoes the
//! notice's rule, level and record and is addressed to its issuer.
//!
//! The hub address comes only from the simulator's configuration, never
//! from a request, so `/_sim/reply` cannot be used to reach anything else.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Inner;

/// Largest hub answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// What the enterprise answers (`POST /_sim/reply` body, camelCase). Only
/// `noticeId` is required; the rest defaults to an acknowledgement by the
/// notice's first receiving unit, now.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplyRequest {
    /// The notice answered (it must have been accepted).
    pub notice_id: String,
    /// `01` acknowledged (default), `02` rectified, `03` extension requested, `04` objection.
    pub reply_type: Option<String>,
    /// The enterprise's text; a stock sentence per reply type by default.
    pub content: Option<String>,
    /// The new due date asked for (`yyyy-MM-dd HH:mm:ss`), with `03`.
    pub extend_to: Option<String>,
    /// Attachments as the contract writes them.
    pub attachments: Option<Vec<Value>>,
    /// The reply's id; `QQHF-<date>-<n>` by default.
    pub reply_id: Option<String>,
    /// When it was made (`yyyy-MM-dd HH:mm:ss`); now by default.
    pub replied_at: Option<String>,
    /// The enterprise account; `qq-u-<division>-00001` by default.
    pub user_id: Option<String>,
    /// The person.
    pub user_name: Option<String>,
}

/// A reply posted to the hub.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sent {
    /// The hub's HTTP status (202 new, 200 duplicate, 4xx refused).
    pub status: u16,
    /// The reply document sent.
    pub reply: Value,
    /// The hub's answer (JSON; text when it was not JSON).
    pub answer: Value,
}

/// Why no reply was posted.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The simulator has not accepted a notice with that id.
    #[error("no accepted notice {0:?}")]
    UnknownNotice(String),
    /// Started without a hub URL or key.
    #[error("no hub to reply to: start the simulator with --hub-url and --hub-key")]
    NoHub,
    /// The reply built does not match the contract (e.g. `03` without `extendTo`).
    #[error("the reply does not match the contract at {0}")]
    Invalid(String),
    /// The hub could not be reached or its answer not read.
    #[error("the hub could not be reached: {0}")]
    Hub(String),
}

/// Builds the reply, checks it against the contract and posts it to the hub.
pub(super) async fn send(st: &Inner, req: ReplyRequest) -> Result<Sent, ReplyError> {
    let hub = st.book().hub.clone();
    let (Some(url), false) = (hub.url.as_deref(), hub.key.is_empty()) else {
        return Err(ReplyError::NoHub);
    };
    let reply = build(st, &req)?;
    let mut errors: Vec<String> = st.reply.iter_errors(&reply).map(|e| e.instance_path().to_string()).collect();
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        return Err(ReplyError::Invalid(errors.join(", ")));
    }
    let resp = st
        .client
        .post(format!("{}/api/v1/documents/prompt", url.trim_end_matches('/')))
        .bearer_auth(hub.key.expose())
        .json(&reply)
        .send()
        .await
        .map_err(|e| ReplyError::Hub(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReplyError::Hub(e.without_url().to_string()))?;
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER - body.len())]);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    let answer = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if (200..300).contains(&status) {
        st.book().counts.replies += 1;
    }
    Ok(Sent { status, reply, answer })
}

/// The reply document for the latest accepted version of the notice.
fn build(st: &Inner, req: &ReplyRequest) -> Result<Value, ReplyError> {
    let (accepted, seq) = {
        let mut book = st.book();
        let found = book.accepted.iter().rev().find(|a| a.notice_id == req.notice_id).cloned();
        book.reply_seq += 1;
        (found, book.reply_seq)
    };
    let accepted = accepted.ok_or_else(|| ReplyError::UnknownNotice(req.notice_id.clone()))?;
    let notice = &accepted.notice;
    let get = |p: &str| notice.pointer(p).cloned().unwrap_or(Value::Null);
    let region = notice.pointer("/issuer/regionCode").and_then(Value::as_str).unwrap_or("000000");
    let now = beijing_now();
    let reply_type = req.reply_type.clone().unwrap_or_else(|| "01".into());
    let content = req.content.clone().unwrap_or_else(|| stock_text(&reply_type).into());
    let mut replier = Map::new();
    replier.insert("usci".into(), get("/receivers/0/usci"));
    replier.insert(
        "userId".into(),
        Value::from(req.user_id.clone().unwrap_or_else(|| format!("qq-u-{region}-00001"))),
    );
    if let Some(name) = &req.user_name {
        replier.insert("userName".into(), Value::from(name.clone()));
    }
    let mut reply = json!({
        "replyId": req.reply_id.clone().unwrap_or_else(|| format!("QQHF-{}-{seq:06}", now.format("%Y%m%d"))),
        "noticeId": accepted.notice_id,
        "requestId": accepted.request_id,
        "replyType": reply_type,
        "content": content,
        "replier": replier,
        "repliedAt": req.replied_at.clone().unwrap_or_else(|| now.format("%Y-%m-%d %H:%M:%S").to_string()),
        "notice": {
            "ruleCode": get("/ruleCode"),
            "level": get("/level"),
            "bizObject": get("/bizObject"),
        },
        "toDepts": [{"regionCode": get("/issuer/regionCode"), "regionName": get("/issuer/regionName")}],
    });
    if let Some(obj) = reply.as_object_mut() {
        if let Some(to) = &req.extend_to {
            obj.insert("extendTo".into(), Value::from(to.clone()));
        }
        if let Some(files) = &req.attachments {
            obj.insert("attachments".into(), Value::Array(files.clone()));
        }
    }
    Ok(reply)
}

/// The platform's clock, Beijing time.
fn beijing_now() -> chrono::DateTime<chrono::FixedOffset> {
    match chrono::FixedOffset::east_opt(8 * 3600) {
        Some(beijing) => chrono::Utc::now().with_timezone(&beijing),
        None => chrono::Utc::now().fixed_offset(),
    }
}

fn stock_text(reply_type: &str) -> &'static str {
    match reply_type {
        "02" => "已按通知要求完成整改，请审核。",
        "03" => "因客观原因无法按期办理，申请延期。",
        "04" => "对通知所列问题有异议：相关数据已按规定如实报送，请核实。",
        _ => "已知悉，将按要求办理。",
    }
}

/// `POST /_sim/reply`.
pub(super) async fn handler(State(st): State<Arc<Inner>>, axum::Json(req): axum::Json<ReplyRequest>) -> Response {
    match send(&st, req).await {
        Ok(sent) => {
            let status = if (200..300).contains(&sent.status) {
                StatusCode::OK
            } else {
                StatusCode::BAD_GATEWAY
            };
            (status, axum::Json(sent)).into_response()
        }
        Err(e) => {
            let status = match e {
                ReplyError::UnknownNotice(_) => StatusCode::NOT_FOUND,
                ReplyError::NoHub => StatusCode::CONFLICT,
                ReplyError::Invalid(_) => StatusCode::BAD_REQUEST,
                ReplyError::Hub(_) => StatusCode::BAD_GATEWAY,
            };
            (status, axum::Json(json!({"code": "sim_reply_failed", "message": e.to_string()}))).into_response()
        }
    }
}

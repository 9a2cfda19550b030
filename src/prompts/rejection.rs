//! Rejections (数据退回): when the hub refuses a live registered partner's
//! message for its content, it tells the partner, and the unit the refused
//! data belongs to, with a `prompt` of kind `REJECTION`: the hub's error
//! code as the rule, its field errors as `field_errors` (pointers into the
//! refused body), the refused event's id (or the document's SHA-256) as
//! `reply_to`, its subject as the prompt's subject.
//!
//! Not for: sandbox partners (their answers and the sandbox log already
//! carry every error), connector-file partners (system partners, whose
//! refusals are answered and logged), refusals that say nothing about the
//! data (authentication, size, media type, busy, the hub's own failures),
//! and a refused `prompt`: a prompt about a prompt is never raised.

use serde_json::Value;

use super::{About, Finding, Kind, PartnerPrompt, ReplyTo, Severity, text};
use crate::app::AppState;
use crate::error::ApiError;
use crate::ingest::auth::Partner;
use crate::partners::Status;

/// The refusal codes that raise a rejection: the partner's data is wrong.
pub const PROMPTED_CODES: [&str; 6] = [
    "validation_failed",
    "mapping_failed",
    "malformed_document",
    "type_not_allowed",
    "jurisdiction_not_allowed",
    "source_not_allowed",
];

/// Where a record names the unit it belongs to, by type: the first valid
/// USCI found wins (the unit itself, a ledger's or plan's unit, a
/// manifest's consignor, a licence holder, a carrier, an approval's
/// generator, a handover's sender).
const UNIT_POINTERS: [&str; 7] = [
    "/data/usci",
    "/data/unit/usci",
    "/data/consignor/usci",
    "/data/holder_usci",
    "/data/carrier_usci",
    "/data/generator/usci",
    "/data/from/usci",
];

/// Longest CloudEvents attribute the prompt repeats (bytes), as ingest allows.
const ATTRIBUTE_MAX: usize = 256;

/// What a rejection needs to know of the refused message, read before the
/// checks consume it. Only short attributes are kept, never the body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refused {
    /// The event's `id`.
    pub event_id: Option<String>,
    /// The event's `source`.
    pub source: Option<String>,
    /// The event's `type` (or the document's type from the URL).
    pub message_type: Option<String>,
    /// The event's `subject`.
    pub subject: Option<String>,
    /// The event's `jurisdiction`.
    pub jurisdiction: Option<String>,
    /// The unit the data names (a valid USCI).
    pub unit_usci: Option<String>,
    /// SHA-256 of the document, when the event came from one.
    pub document_sha256: Option<String>,
}

impl Refused {
    /// From a submitted (or mapped) CloudEvent.
    pub fn event(value: &Value, document_sha256: Option<&str>) -> Self {
        let attr = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= ATTRIBUTE_MAX)
                .map(str::to_string)
        };
        let unit_usci = UNIT_POINTERS
            .iter()
            .filter_map(|p| value.pointer(p).and_then(Value::as_str))
            .find(|u| crate::reference::usci::verify(u).is_ok())
            .map(str::to_string);
        Self {
            event_id: attr("id"),
            source: attr("source").filter(|s| !s.chars().any(char::is_whitespace)),
            message_type: attr("type"),
            subject: attr("subject"),
            jurisdiction: attr("jurisdiction"),
            unit_usci,
            document_sha256: document_sha256.map(str::to_string),
        }
    }

    /// From a document that could not be mapped to an event.
    pub fn document(message_type: &str, sha256: &str) -> Self {
        Self {
            message_type: Some(message_type.to_string()),
            document_sha256: Some(sha256.to_string()),
            ..Self::default()
        }
    }
}

/// Whether refusals of `partner` raise rejections at all: a live registered
/// partner, with `prompts.rejections` on. Checked before anything is read.
pub fn watches(app: &AppState, partner: &Partner) -> bool {
    app.config.prompts.rejections && partner.registered && partner.status == Status::Live
}

/// The rejection for refusal `e` of `refused` from `partner`, if one is due.
/// Pure.
pub fn prompt_for(partner: &Partner, refused: &Refused, e: &ApiError) -> Option<PartnerPrompt> {
    if !PROMPTED_CODES.contains(&e.code) || refused.message_type.as_deref() == Some("prompt") {
        return None;
    }
    // A rejection must name what it refuses; a batch element without an
    // id cannot be named (its answer, in the batch's results, is all there is).
    if refused.event_id.is_none() && refused.document_sha256.is_none() {
        return None;
    }
    let partner_source = partner.sources.first()?.clone();
    let record_type = refused
        .message_type
        .as_deref()
        .filter(|t| t.len() <= 64 && is_type_name(t))
        .unwrap_or("message")
        .to_string();
    let record_id = refused
        .subject
        .as_deref()
        .and_then(|s| s.split_once(':'))
        .and_then(|(_, id)| text::code(id))
        .or_else(|| refused.event_id.as_deref().and_then(text::code))
        .or_else(|| {
            refused
                .document_sha256
                .as_ref()
                .map(|d| format!("sha256-{}", &d[..16.min(d.len())]))
        })
        .unwrap_or_else(|| "unknown".into());
    let jurisdiction = refused
        .jurisdiction
        .clone()
        .filter(|j| j.len() == 6 && j.bytes().all(|b| b.is_ascii_digit()))
        .filter(|j| partner.jurisdiction.as_deref().is_none_or(|p| j.starts_with(p)))
        .or_else(|| partner.division_code.clone())
        .unwrap_or_else(|| "350000".into());
    let subject = refused.subject.clone().unwrap_or_else(|| format!("partner:{}", partner.name));
    let what = match (&refused.message_type, &refused.event_id) {
        (Some(t), Some(id)) => format!("{t} 消息（编号 {id}）"),
        (Some(t), None) => format!("{t} 文档"),
        (None, Some(id)) => format!("消息（编号 {id}）"),
        (None, None) => "消息".into(),
    };
    let message_zh = format!(
        "数据退回：{} 发送的{what}未被枢纽接收：{}（{}）。请按问题字段更正后重新发送。",
        partner.name,
        reason_zh(e.code),
        e.code
    );
    let mut findings: Vec<Finding> = e
        .errors
        .iter()
        .map(|f| match text::body_pointer(&f.path) {
            Some(path) => Finding {
                path,
                message: f.message.clone(),
            },
            None if f.path.is_empty() => Finding {
                path: String::new(),
                message: f.message.clone(),
            },
            None => Finding {
                path: String::new(),
                message: format!("{}: {}", f.path, f.message),
            },
        })
        .collect();
    if findings.is_empty() {
        findings.push(Finding {
            path: String::new(),
            message: e.detail.clone(),
        });
    }
    Some(PartnerPrompt {
        partner_source: partner_source.clone(),
        kind: Kind::Rejection,
        rule_id: format!("HUB_{}", e.code.to_ascii_uppercase()),
        severity: Severity::Warn,
        message_zh,
        findings,
        about: About {
            record_type,
            record_id,
            subject,
            jurisdiction,
            unit_usci: refused.unit_usci.clone(),
            reply_to: Some(ReplyTo {
                event_source: refused.source.clone().unwrap_or(partner_source),
                event_id: refused.event_id.clone(),
                document_sha256: refused.document_sha256.clone(),
            }),
        },
    })
}

/// Raises the rejection for refusal `e`, if one is due. The partner's
/// answer does not wait on its success: a failure is logged, never turned
/// into another answer (or another prompt).
pub async fn raise(app: &AppState, partner: &Partner, refused: Refused, e: &ApiError) {
    let Some(prompt) = prompt_for(partner, &refused, e) else { return };
    match super::raise(app, &prompt).await {
        Ok(r) => tracing::debug!(
            partner = %partner.name, code = e.code, prompt = %r.message_id, duplicate = r.duplicate,
            "Raised a rejection prompt for the partner."
        ),
        Err(err) => tracing::warn!(
            partner = %partner.name, code = e.code, error = %err,
            "Could not raise a rejection prompt; the partner still got its answer."
        ),
    }
}

/// Why, in the words the partner's staff and the unit read.
fn reason_zh(code: &str) -> &'static str {
    match code {
        "validation_failed" => "未通过格式或数据校验",
        "mapping_failed" => "无法按映射转换为标准格式",
        "malformed_document" => "文档无法读取",
        "type_not_allowed" => "该平台未获准发送此类消息",
        "jurisdiction_not_allowed" => "行政区划超出该平台的范围",
        "source_not_allowed" => "来源标识不属于该平台",
        _ => "被拒绝",
    }
}

/// `^[a-z][a-z0-9]*(-[a-z0-9]+)*$`: a catalogue type name.
fn is_type_name(t: &str) -> bool {
    t.split('-').enumerate().all(|(i, part)| {
        let mut chars = part.chars();
        match chars.next() {
            None => false,
            Some(c) if i == 0 && !c.is_ascii_lowercase() => false,
            Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => false,
            Some(_) => chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        }
    })
}

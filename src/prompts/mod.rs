//! Prompts the hub raises itself, for a partner about its data: a canonical
//! `prompt` event with source `urn:wastehub:hub`, addressed to the partner
//! (recipient `system` = the partner's source) and, when the data names
//! one, to the unit it belongs to (recipient `usci`, which the Qinqing
//! route takes). It is checked against the catalogue and committed like any
//! message, so it is stored, traced, ordered with the record it is about
//! (its subject) and delivered by the routes.
//!
//! [`PartnerPrompt`] is the one way to say it: findings about a partner's
//! record in, a prompt out ([`event`], pure) and committed ([`raise`]). The
//! hub's refusals use it ([`rejection`]); business rules, when they come,
//! raise their findings through it as well. [`route`] sends prompts
//! addressed to one registered partner to the built-in destination
//! [`CALLBACK_DESTINATION`] (`crate::connectors::partner_callback`).
//!
//! No prompt is ever raised about a prompt, and nothing here runs on the
//! delivery path, so a prompt cannot set off another.

pub mod rejection;
pub mod route;
mod text;

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::FieldError;
use crate::ingest::cloudevent;
use crate::model::MessageId;
use crate::store::InsertOutcome;
use crate::telemetry;

/// The CloudEvents source of prompts the hub raises.
pub const HUB_SOURCE: &str = "urn:wastehub:hub";
/// The sender recorded on them (`messages.partner`); routes never send a
/// message back to its sender, so no connector may take this name.
pub const HUB_SENDER: &str = "hub";
/// The built-in destination that delivers prompts to partner callbacks; no
/// connector may take this name.
pub const CALLBACK_DESTINATION: &str = "partner-callbacks";
/// The source prefix of registered partners (`urn:wastehub:partner:<id>`).
pub const PARTNER_SOURCE_PREFIX: &str = "urn:wastehub:partner:";
/// Most findings listed in one prompt (the Qinqing notice takes 100); the
/// rest are summed up in the last.
pub const MAX_FINDINGS: usize = 100;

/// The prompt kinds the hub raises (a `REPLY` is only ever a partner's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 提示/预警.
    Prompt,
    /// 整改通知.
    RectificationRequest,
    /// 数据退回: the partner's message was refused.
    Rejection,
}

impl Kind {
    /// The schema's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prompt => "PROMPT",
            Self::RectificationRequest => "RECTIFICATION_REQUEST",
            Self::Rejection => "REJECTION",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Self::Prompt => "NT",
            Self::RectificationRequest => "RR",
            Self::Rejection => "RJ",
        }
    }
}

/// How urgent a prompt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// 提示.
    Info,
    /// 警告.
    Warn,
    /// 预警.
    Alert,
}

impl Severity {
    /// The schema's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Alert => "ALERT",
        }
    }
}

/// One thing found wrong with a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// JSON Pointer into the record's body (`/quantity`); empty for the
    /// whole record.
    pub path: String,
    /// What is wrong (one line; cut to 200 characters).
    pub message: String,
}

/// The event a prompt answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// Its CloudEvents source.
    pub event_source: String,
    /// Its CloudEvents id, when one could be read.
    pub event_id: Option<String>,
    /// SHA-256 of the document sent, for a document in the partner's format.
    pub document_sha256: Option<String>,
}

/// The record a prompt is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct About {
    /// Catalogue type of the record (`ledger-entry`), or `message`.
    pub record_type: String,
    /// Its id: manifest number, batch code, … (an identifier without white space).
    pub record_id: String,
    /// The ordering key the prompt takes (the record's subject).
    pub subject: String,
    /// Division code the prompt is issued for.
    pub jurisdiction: String,
    /// The unit the record belongs to, when known (a valid USCI).
    pub unit_usci: Option<String>,
    /// The event answered, for a rejection.
    pub reply_to: Option<ReplyTo>,
}

/// Findings about one partner's record, to be told to that partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerPrompt {
    /// The partner's source (`urn:wastehub:partner:<id>` for a registered one).
    pub partner_source: String,
    /// What kind of prompt.
    pub kind: Kind,
    /// The rule (or hub check) that raised it, e.g. `R11` or `HUB_VALIDATION_FAILED`.
    pub rule_id: String,
    /// How urgent.
    pub severity: Severity,
    /// The text shown to recipients, in Chinese.
    pub message_zh: String,
    /// What was found; may be empty for a prompt that is not a rejection.
    pub findings: Vec<Finding>,
    /// The record concerned.
    pub about: About,
}

/// Why a prompt was not committed.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The prompt the hub built fails its own checks (a bug, never the partner's).
    #[error("the prompt does not pass the catalogue: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// The store could not be asked where it goes.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The group commit failed or is closed.
    #[error(transparent)]
    Commit(#[from] crate::ingest::commit::CommitError),
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What became of a raised prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raised {
    /// The hub message id of the prompt (the first one, for a repeat).
    pub message_id: MessageId,
    /// The same prompt was raised before (same partner, rule, record and findings).
    pub duplicate: bool,
    /// Where it goes.
    pub destinations: Vec<String>,
}

impl PartnerPrompt {
    /// A stable id: the same findings about the same record of the same
    /// partner give the same prompt, so a partner resending a refused
    /// message does not collect a new prompt each time.
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        let reply = self.about.reply_to.as_ref();
        for part in [
            self.partner_source.as_str(),
            self.kind.as_str(),
            self.rule_id.as_str(),
            self.about.record_type.as_str(),
            self.about.record_id.as_str(),
            reply.map_or("", |r| r.event_source.as_str()),
            reply.and_then(|r| r.event_id.as_deref()).unwrap_or(""),
            reply.and_then(|r| r.document_sha256.as_deref()).unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for f in &self.findings {
            h.update(f.path.as_bytes());
            h.update([0]);
            h.update(f.message.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

/// The canonical `prompt` CloudEvent for `p`, raised at `now`. Pure.
pub fn event(p: &PartnerPrompt, now: DateTime<FixedOffset>) -> Value {
    let digest = p.digest();
    let notification_id = format!("{}-{}", p.kind.id_prefix(), digest[..24].to_ascii_uppercase());
    let created_at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let mut recipients = vec![json!({"system": p.partner_source})];
    if let Some(usci) = &p.about.unit_usci {
        recipients.push(json!({"usci": usci}));
    }
    let mut data = json!({
        "notification_id": notification_id,
        "kind": p.kind.as_str(),
        "rule_id": text::code(&p.rule_id).unwrap_or_else(|| "HUB".into()),
        "severity": p.severity.as_str(),
        "subject": {"type": p.about.record_type, "id": p.about.record_id},
        "recipients": recipients,
        "message_zh": text::long(&p.message_zh),
        "created_at": created_at,
    });
    let findings = text::findings(&p.findings, MAX_FINDINGS);
    if !findings.is_empty() {
        data["field_errors"] = Value::Array(findings);
    }
    if let Some(r) = &p.about.reply_to {
        let mut reply = json!({"event_source": r.event_source});
        if let Some(id) = &r.event_id {
            reply["event_id"] = json!(id);
        }
        if let Some(d) = &r.document_sha256 {
            reply["document_sha256"] = json!(d);
        }
        data["reply_to"] = reply;
    }
    json!({
        "specversion": "1.0",
        "id": format!("hub-{}", &digest[..32]),
        "source": HUB_SOURCE,
        "type": "prompt",
        "subject": p.about.subject,
        "time": created_at,
        "jurisdiction": p.about.jurisdiction,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// Beijing time now: prompts are read by people in Fujian.
pub fn now_beijing() -> DateTime<FixedOffset> {
    let now = chrono::Utc::now();
    FixedOffset::east_opt(8 * 3600).map_or_else(|| now.fixed_offset(), |o| now.with_timezone(&o))
}

/// Builds, checks and commits the prompt: the catalogue and the reference
/// checks as for any message, the connector routes (never back to the hub),
/// and the partner's callback ([`route::callback`]). Returns only after the
/// commit.
pub async fn raise(app: &AppState, p: &PartnerPrompt) -> Result<Raised, PromptError> {
    let kind = match p.kind {
        Kind::Prompt => "prompt",
        Kind::RectificationRequest => "rectification_request",
        Kind::Rejection => "rejection",
    };
    let result = commit(app, event(p, now_beijing())).await;
    let outcome = match &result {
        Ok(r) if r.duplicate => "duplicate",
        Ok(_) => "committed",
        Err(_) => "failed",
    };
    metrics::counter!(telemetry::PROMPTS_RAISED_TOTAL, telemetry::LABEL_KIND => kind, telemetry::LABEL_OUTCOME => outcome).increment(1);
    result
}

async fn commit(app: &AppState, value: Value) -> Result<Raised, PromptError> {
    let env = parse_checked(app, value)?;
    let time = chrono::DateTime::parse_from_rfc3339(&env.time).unwrap_or_else(|_| now_beijing());
    let errors = app.reference.check(&env.r#type, env.data(), time, "/data");
    if !errors.is_empty() {
        return Err(PromptError::Invalid(errors));
    }
    let mut destinations = app.routes.route(&env, HUB_SENDER);
    if let Some(d) = route::callback(app, &env).await? {
        destinations.push(d.to_string());
    }
    submit(app, &env, HUB_SENDER, destinations).await
}

/// An event the hub raises itself, read as a CloudEvent and checked against
/// the catalogue: a failure is a bug in the hub, never a partner's.
pub(crate) fn parse_checked(app: &AppState, value: Value) -> Result<crate::model::Envelope, PromptError> {
    let env = cloudevent::parse(value).map_err(PromptError::Invalid)?;
    app.catalogue
        .validate(&env.r#type, env.data(), "/data")
        .map_err(PromptError::Invalid)?;
    Ok(env)
}

/// Commits an event the hub raises itself to `destinations`, as sent by
/// `sender` (`messages.partner`); returns after the commit.
pub(crate) async fn submit(
    app: &AppState,
    env: &crate::model::Envelope,
    sender: &str,
    destinations: Vec<String>,
) -> Result<Raised, PromptError> {
    let msg = crate::ingest::commit::new_message(env, sender, destinations, None);
    let (receipt, duplicate) = match app.committer.submit(msg).await? {
        InsertOutcome::Accepted(r) => (r, false),
        InsertOutcome::Duplicate(r) | InsertOutcome::Folded(r) => (r, true),
    };
    Ok(Raised {
        destinations: receipt.deliveries.iter().map(|d| d.destination.clone()).collect(),
        message_id: receipt.id,
        duplicate,
    })
}

#[cfg(test)]
mod tests;

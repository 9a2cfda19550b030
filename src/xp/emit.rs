//! What the workflow sends: each step's messages committed as hub
//! messages with the hub's province as source (`[xp] source`), routed by
//! the connector routes (a `letters` connector signs them for its
//! province), and the deadline prompts. Ids are derived from the step, so
//! doing a step again (after a crash, or a retried delivery) commits
//! nothing new: the store answers "duplicate".

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::machine::Emit;
use super::model::{Deadline, Negotiation};
use super::rules::Standing;
use crate::app::AppState;
use crate::prompts::{self, PromptError};

/// The subject of an application's messages.
pub fn subject(application_no: &str) -> String {
    format!("xp:{application_no}")
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// The CloudEvent of `e` about `subject`, sent at `now`.
pub fn event(app: &AppState, e: &Emit, subject: &str, now: &str) -> Value {
    let xp = &app.config.xp;
    json!({
        "specversion": "1.0",
        "id": format!("xp-{}", &digest(&[&e.key, &e.r#type])[..32]),
        "source": xp.source,
        "type": e.r#type,
        "subject": subject,
        "time": now,
        "jurisdiction": format!("{}0000", xp.province),
        "datacontenttype": "application/json",
        "data": e.data,
    })
}

/// Commits `e` (checked against the catalogue first: a failure is a bug in
/// the hub, never the partner's). True when it was new.
pub async fn commit(app: &AppState, e: &Emit, subject: &str, now: &str) -> Result<bool, PromptError> {
    commit_event(app, event(app, e, subject, now), &e.sender).await
}

/// Checks, routes and commits an event the hub raises, as sent by `sender`
/// (routes never send it back there). No reference-data checks: the data
/// came through them at ingest, and other provinces' division codes are
/// not in Fujian's table.
pub async fn commit_event(app: &AppState, value: Value, sender: &str) -> Result<bool, PromptError> {
    let env = prompts::parse_checked(app, value)?;
    let destinations = app.routes.route(&env, sender);
    Ok(!prompts::submit(app, &env, sender, destinations).await?.duplicate)
}

/// The prompt about `d` of `n` standing as `s`: to the responsible
/// department's jurisdiction and, when another province must act, to this
/// province's department too (it chases the reply).
pub fn deadline_prompt(app: &AppState, n: &Negotiation, d: &Deadline, s: Standing, now: &str) -> Option<Emit> {
    let own = format!("{}0000", app.config.xp.province);
    let (overdue, severity, text) = match s {
        Standing::InTime => return None,
        Standing::DueSoon { left } => (
            false,
            "WARN",
            format!(
                "跨省转移申请{}：{}的期限为{}（{}，{}个工作日），尚余{}个工作日。",
                n.application_no,
                d.kind.zh(),
                d.due,
                d.kind.basis(),
                d.kind.working_days(),
                left
            ),
        ),
        Standing::Overdue { by } => (
            true,
            "ALERT",
            format!(
                "跨省转移申请{}：{}的期限{}已过{}个工作日（{}，{}个工作日），请尽快处理。",
                n.application_no,
                d.kind.zh(),
                d.due,
                by,
                d.kind.basis(),
                d.kind.working_days()
            ),
        ),
    };
    let mut recipients = vec![json!({"jurisdiction": d.responsible})];
    if d.responsible != own {
        recipients.push(json!({"jurisdiction": own}));
    }
    let rule = d.kind.rule_id(overdue);
    let key = format!("{}:{rule}:{}", n.application_no, d.due);
    let id = digest(&[&key]);
    let data = json!({
        "notification_id": format!("XP-{}", id[..20].to_ascii_uppercase()),
        "kind": "PROMPT",
        "rule_id": rule,
        "severity": severity,
        "subject": {"type": "xp-request", "id": n.application_no},
        "recipients": recipients,
        "message_zh": text,
        "created_at": now,
    });
    Some(Emit {
        r#type: "prompt".into(),
        data,
        sender: super::HUB_SENDER.into(),
        key,
    })
}

//! The built-in destination `xp-workflow`: every negotiation letter and
//! whitelist entry that another system sends is delivered here (and only
//! here, `super::destinations`), in order per application like any
//! delivery, with retries when the store does not answer.
//!
//! A delivery loads the record, applies the letter ([`super::machine`]),
//! applies parked letters that now fit, and saves the record with one
//! history row per letter in one transaction, conditional on the version it
//! loaded (another step in between makes it load and apply again). Only
//! then are the step's messages committed. A letter whose history row
//! exists was applied already: its stored messages are committed again,
//! which the store answers as duplicates, so a crash between the save and
//! the sends loses nothing and sends nothing twice.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use chrono::Datelike;
use serde_json::Value;

use super::emit;
use super::machine::{self, Ctx, Emit, Input, Outcome};
use super::model::{Basis, Negotiation};
use super::rules::{beijing_date, micro_tonnes};
use super::whitelist::{self, Candidate};
use crate::app::AppState;
use crate::config::ConnectorConfig;
use crate::config::connector::ConnectorKind;
use crate::connectors::async_trait_shim::BoxFuture;
use crate::connectors::{DeliveryError, Outbound, Outgoing, Receipt};
use crate::model::now_millis;
use crate::store::xp::{HistoryRow, NegotiationIndex};

/// Who may send what: the connector of each source the workflow accepts.
#[derive(Clone, Debug, Default)]
pub struct Senders {
    by_source: BTreeMap<String, (String, Option<String>)>,
}

impl Senders {
    /// Departments (`[xp] departments`, by their inbound sources) and the
    /// `letters` connectors (by their province's source).
    pub fn new(connectors: &[ConnectorConfig], departments: &[String]) -> Self {
        let mut by_source = BTreeMap::new();
        for c in connectors.iter().filter(|c| c.enabled) {
            if c.kind == ConnectorKind::Letters
                && let Some(l) = &c.letters
            {
                by_source.insert(l.source.clone(), (c.name.clone(), Some(l.province.clone())));
            } else if departments.contains(&c.name) {
                for s in c.inbound.iter().flat_map(|i| &i.sources) {
                    by_source.insert(s.clone(), (c.name.clone(), None));
                }
            }
        }
        Self { by_source }
    }

    /// The connector and, for a province, its code.
    pub fn of(&self, source: &str) -> Option<&(String, Option<String>)> {
        self.by_source.get(source)
    }
}

/// The workflow destination; the hub's state is handed over once it exists
/// (the dispatchers start before it).
pub struct Workflow {
    app: Arc<OnceLock<AppState>>,
    senders: Senders,
}

impl Workflow {
    /// A workflow that waits for `app` to be set.
    pub fn new(app: Arc<OnceLock<AppState>>, senders: Senders) -> Self {
        Self { app, senders }
    }

    async fn run(&self, msg: Outgoing<'_>) -> Result<Receipt, DeliveryError> {
        let Some(app) = self.app.get() else {
            return Err(DeliveryError::backoff("starting", "the hub is still starting"));
        };
        let event: Value =
            serde_json::from_slice(msg.body).map_err(|_| DeliveryError::never("body", "the message is not a JSON CloudEvent"))?;
        let source = event.get("source").and_then(Value::as_str).unwrap_or("");
        let ty = event.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        let data = event.get("data").cloned().unwrap_or(Value::Null);
        let Some((sender, province)) = self.senders.of(source).cloned() else {
            return Err(DeliveryError::never(
                "sender",
                format!("source {source} is neither a department ([xp] departments) nor a province's letters connector"),
            ));
        };
        let arrived_at = event
            .get(super::inbound::RECEIVED_AT_ATTRIBUTE)
            .or_else(|| event.get("time"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let input = Input {
            message_id: msg.message_id.as_str().to_string(),
            r#type: ty.clone(),
            data,
            sender,
            sender_province: province,
            arrived_at,
        };
        let note = if ty == "whitelist-entry" {
            whitelist_entry(app, &input, &event).await?
        } else {
            letter(app, &input).await?
        };
        Ok(Receipt {
            http_status: 200,
            ack_code: None,
            reference: None,
            excerpt: note,
        })
    }
}

impl Outbound for Workflow {
    fn kind(&self) -> &'static str {
        "xp_workflow"
    }

    fn deliver<'a>(&'a self, msg: Outgoing<'a>) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.run(msg))
    }

    fn healthcheck(&self) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async { Ok(()) })
    }
}

fn store_err(e: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::backoff("store", format!("the store does not answer: {e}"))
}

/// Now, Beijing time, to the second.
pub fn now_beijing() -> String {
    chrono::Utc::now()
        .with_timezone(&super::rules::beijing())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Whitelist entries naming the receiver of `request`, with what each has
/// approved in the year of `today`.
pub async fn candidates(app: &AppState, request: Option<&Value>, now: &str) -> Result<Vec<Candidate>, DeliveryError> {
    let Some(usci) = request.and_then(|r| r.pointer("/receiver/usci")).and_then(Value::as_str) else {
        return Ok(Vec::new());
    };
    let year = beijing_date(now).map_or(1970, |d| d.year());
    let mut out = Vec::new();
    for row in app.store.xp_whitelist_for(usci).await.map_err(store_err)? {
        let Ok(entry) = serde_json::from_str::<Value>(&row.entry) else {
            continue;
        };
        let used = app
            .store
            .xp_whitelist_used(&whitelist::key(&entry), year)
            .await
            .map_err(store_err)?;
        out.push(Candidate { entry, used });
    }
    Ok(out)
}

fn index(n: &Negotiation) -> NegotiationIndex {
    let whitelist = n.decision.as_ref().filter(|d| d.basis == Basis::Whitelist);
    NegotiationIndex {
        state: n.state.as_str().to_string(),
        receiver_usci: n
            .request
            .as_ref()
            .and_then(|r| r.pointer("/receiver/usci"))
            .and_then(Value::as_str)
            .map(str::to_string),
        whitelist_key: whitelist.and_then(|d| d.whitelist.clone()),
        decision_year: whitelist.map(|d| d.valid_from.year()),
        approved_micro: whitelist.and_then(|d| micro_tonnes(&d.quantity_t)),
    }
}

fn row(message_id: &str, ty: &str, outcome: &Outcome, n: &Negotiation, now: i64) -> HistoryRow {
    let (name, note, emits) = match outcome {
        Outcome::Applied { note, emits } => ("applied", note.clone(), emits.clone()),
        Outcome::Parked { reason } => ("parked", reason.clone(), Vec::new()),
        Outcome::Duplicate { note } => ("duplicate", note.clone(), Vec::new()),
        Outcome::Refused { reason } => ("refused", reason.clone(), Vec::new()),
    };
    HistoryRow {
        message_id: message_id.to_string(),
        r#type: ty.to_string(),
        outcome: name.to_string(),
        note,
        state: n.state.as_str().to_string(),
        emits: serde_json::to_string(&emits).unwrap_or_else(|_| "[]".into()),
        at: now,
    }
}

/// Applies one letter to its record; the history note.
async fn letter(app: &AppState, input: &Input) -> Result<String, DeliveryError> {
    let application_no = input.data.get("application_no").and_then(Value::as_str).unwrap_or("").to_string();
    let request = (input.r#type == "xp-request").then_some(&input.data);
    step(app, &application_no, &input.message_id, request, |n, ctx| {
        let outcome = machine::apply(n, input, ctx);
        let mut done = vec![(input.message_id.clone(), input.r#type.clone(), outcome.clone())];
        if matches!(outcome, Outcome::Applied { .. }) {
            for (i, o) in machine::drain_parked(n, ctx) {
                done.push((i.message_id, i.r#type, o));
            }
        }
        done
    })
    .await
}

/// The steps one call of `f` took: (message id, type, outcome).
pub type Steps = Vec<(String, String, Outcome)>;

/// Loads `application_no`'s record, runs `f` on it, saves it with a
/// history row per step, and commits what the steps send. `key` is the id
/// of the first step: when its row exists, the step was taken already and
/// only its messages are committed again. `request` is the request the
/// step brings, if it brings one: the whitelist is looked up for its
/// receiver (a parked acceptance may be applied right behind it), else for
/// the record's.
pub async fn step(
    app: &AppState,
    application_no: &str,
    key: &str,
    request: Option<&Value>,
    f: impl Fn(&mut Negotiation, &Ctx<'_>) -> Steps,
) -> Result<String, DeliveryError> {
    let subject = emit::subject(application_no);
    for _ in 0..8 {
        if let Some(done) = app.store.xp_history_of(application_no, key).await.map_err(store_err)? {
            let emits: Vec<Emit> = serde_json::from_str(&done.emits).unwrap_or_default();
            send(app, &emits, &subject).await?;
            return Ok(format!("{}: {}", done.outcome, done.note));
        }
        let stored = app.store.xp_negotiation(application_no).await.map_err(store_err)?;
        let (mut n, version) = match &stored {
            Some(r) => (
                serde_json::from_str::<Negotiation>(&r.doc)
                    .map_err(|e| DeliveryError::never("record", format!("the stored record does not read: {e}")))?,
                Some(r.version),
            ),
            None => (Negotiation::new(application_no), None),
        };
        let before = n.clone();
        let now = now_beijing();
        let wl = candidates(app, request.or(n.request.as_ref()), &now).await?;
        let cfg = &app.config.xp;
        let ctx = Ctx {
            own_province: &cfg.province,
            calendar: &app.reference.data().calendar,
            whitelist: &wl,
            decision_prefix: &cfg.whitelist_decision_prefix,
            now: &now,
        };
        let steps = f(&mut n, &ctx);
        let at = now_millis();
        let rows: Vec<HistoryRow> = steps.iter().map(|(id, t, o)| row(id, t, o, &n, at)).collect();
        let note = rows.first().map(|r| r.note.clone()).unwrap_or_default();
        let changed = n != before;
        let saved = if changed {
            let doc = serde_json::to_string(&n).map_err(|e| DeliveryError::never("record", e.to_string()))?;
            app.store
                .xp_save(application_no, &doc, &index(&n), version, &rows, at)
                .await
                .map_err(store_err)?
        } else {
            // Nothing changed (a duplicate or a refusal): the history only.
            for r in &rows {
                app.store.xp_note(application_no, r).await.map_err(store_err)?;
            }
            true
        };
        if !saved {
            continue;
        }
        let emits: Vec<Emit> = steps
            .into_iter()
            .flat_map(|(_, _, o)| match o {
                Outcome::Applied { emits, .. } => emits,
                _ => Vec::new(),
            })
            .collect();
        send(app, &emits, &subject).await?;
        log(application_no, &rows);
        return Ok(note);
    }
    Err(DeliveryError::backoff(
        "conflict",
        format!("application {application_no} kept changing under this step"),
    ))
}

fn log(application_no: &str, rows: &[HistoryRow]) {
    for r in rows {
        metrics::counter!(crate::telemetry::XP_STEPS_TOTAL,
            crate::telemetry::LABEL_KIND => r.r#type.clone(), crate::telemetry::LABEL_OUTCOME => r.outcome.clone())
        .increment(1);
        if r.outcome == "refused" {
            tracing::warn!(application_no, r#type = %r.r#type, reason = %r.note, "A negotiation letter was refused.");
        } else {
            tracing::info!(application_no, r#type = %r.r#type, outcome = %r.outcome, state = %r.state, note = %r.note, "Negotiation step.");
        }
    }
}

async fn send(app: &AppState, emits: &[Emit], subject: &str) -> Result<(), DeliveryError> {
    let now = now_beijing();
    for e in emits {
        emit::commit(app, e, subject, &now)
            .await
            .map_err(|err| DeliveryError::backoff("commit", format!("could not send {}: {err}", e.r#type)))?;
    }
    Ok(())
}

/// Stores a whitelist entry (a later version replaces an earlier one, by
/// event time) and passes it on: a department's entry to the partner
/// province, a province's entry to the departments.
async fn whitelist_entry(app: &AppState, input: &Input, event: &Value) -> Result<String, DeliveryError> {
    let d = &input.data;
    let s = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let partner = s("/partner_province");
    if let Some(p) = &input.sender_province
        && *p != partner
    {
        return Err(DeliveryError::never(
            "whitelist",
            format!("province {p} sent an entry for province {partner}"),
        ));
    }
    let time = event.get("time").and_then(Value::as_str).unwrap_or("");
    let millis = chrono::DateTime::parse_from_rfc3339(time).map_or(0, |t| t.timestamp_millis());
    let (scheme, id, usci, entry) = (s("/scheme"), s("/whitelist_id"), s("/facility/usci"), d.to_string());
    let put = crate::store::xp::WhitelistPut {
        scheme: &scheme,
        whitelist_id: &id,
        facility_usci: &usci,
        entry: &entry,
        event_time: time,
        event_millis: millis,
        message_id: &input.message_id,
    };
    let stored = app.store.xp_whitelist_put(&put, now_millis()).await.map_err(store_err)?;
    if !stored {
        return Ok(format!("whitelist entry {} not newer than the stored one; kept", whitelist::key(d)));
    }
    let e = Emit {
        r#type: "whitelist-entry".into(),
        data: d.clone(),
        sender: input.sender.clone(),
        key: input.message_id.clone(),
    };
    let subject = format!("whitelist:{}:{}", s("/scheme"), s("/whitelist_id"));
    send(app, &[e], &subject).await?;
    Ok(format!("whitelist entry {} stored ({})", whitelist::key(d), s("/status")))
}

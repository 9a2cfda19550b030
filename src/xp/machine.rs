//! The negotiation as a state machine, pure: a record and one input (a
//! letter of the process) in, the changed record, what to send and a note
//! for the history out. The workflow (`super::workflow`) loads and stores
//! the record around it; nothing here touches the store or the clock (the
//! arrival time comes with the input), so every path is a unit test.
//!
//! Letters that come before their step are parked (kept in the record and
//! applied when the step is reached, [`drain_parked`]); a letter the record
//! already reflects is a duplicate and changes nothing; a letter that
//! contradicts the record is refused with the reason.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{Basis, DeadlineKind, DecisionRef, LetterRef, Negotiation, Parked, ReplyRef, Role, State};
use super::rules::{beijing_date, date, deadline, meet, micro_tonnes, tonnes, total, validity_cap};
use super::whitelist::{self, Candidate};
use crate::reference::calendar::WorkCalendar;

/// Most letters parked on one negotiation; more are refused.
pub const MAX_PARKED: usize = 16;

/// One letter of the process as the workflow hands it in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The hub message that carried it.
    pub message_id: String,
    /// Its catalogue type (`xp-request`, …).
    pub r#type: String,
    /// Its `data`.
    pub data: Value,
    /// The connector it came from.
    pub sender: String,
    /// For a letter from another province: that province (2 digits).
    pub sender_province: Option<String>,
    /// When the hub received it (RFC 3339).
    pub arrived_at: String,
}

/// What the machine works with besides the record.
pub struct Ctx<'a> {
    /// This hub's province (`35`).
    pub own_province: &'a str,
    /// The working-day calendar.
    pub calendar: &'a WorkCalendar,
    /// Whitelist entries naming the request's receiver, with this year's use.
    pub whitelist: &'a [Candidate],
    /// Prefix of the numbers of decisions the hub issues on a whitelist.
    pub decision_prefix: &'a str,
    /// Now (RFC 3339, Beijing time).
    pub now: &'a str,
}

impl Ctx<'_> {
    pub(super) fn today(&self) -> NaiveDate {
        beijing_date(self.now).unwrap_or_default()
    }

    pub(super) fn department(&self) -> String {
        format!("{}0000", self.own_province)
    }
}

/// A message the hub sends because of a step: committed with source the
/// hub's province and routed by the connector routes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Emit {
    /// Catalogue type.
    pub r#type: String,
    /// Its `data`.
    pub data: Value,
    /// The connector it counts as coming from: routes never send a message
    /// back to it (the department does not get its own letter back).
    pub sender: String,
    /// A key that makes the message id: the same step gives the same
    /// message, so doing a step again after a crash sends nothing twice.
    pub key: String,
}

/// The outcome of one input.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The record changed; send `emits`.
    Applied {
        /// For the history.
        note: String,
        /// What to send.
        emits: Vec<Emit>,
    },
    /// Kept for later (the record holds it).
    Parked {
        /// Why it waits.
        reason: String,
    },
    /// Already reflected; nothing changes.
    Duplicate {
        /// Why it is a repeat.
        note: String,
    },
    /// Contradicts the record; nothing changes.
    Refused {
        /// Why.
        reason: String,
    },
}

pub(super) fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn refused(reason: impl Into<String>) -> Outcome {
    Outcome::Refused { reason: reason.into() }
}

pub(super) fn applied(note: impl Into<String>, emits: Vec<Emit>) -> Outcome {
    Outcome::Applied { note: note.into(), emits }
}

/// Applies `input` to `n`. `n` changes only when the outcome is
/// `Applied` or `Parked`.
pub fn apply(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>) -> Outcome {
    if s(&input.data, "/application_no") != n.application_no {
        return refused(format!(
            "the letter is for application {:?}, not {:?}",
            s(&input.data, "/application_no"),
            n.application_no
        ));
    }
    if n.role == Role::Receiving
        && input.sender_province.is_none()
        && matches!(input.r#type.as_str(), "xp-request" | "xp-acceptance" | "xp-consultation")
    {
        return refused(format!(
            "application {} is province {}'s: this province is consulted on it and replies",
            n.application_no,
            n.sending_province.as_deref().unwrap_or("?")
        ));
    }
    match input.r#type.as_str() {
        "xp-request" => request(n, input, ctx),
        "xp-acceptance" => acceptance(n, input, ctx),
        "xp-consultation" => consultation(n, input, ctx),
        "xp-reply" => reply(n, input, ctx),
        "xp-decision" => decision(n, input, ctx),
        other => refused(format!("{other} is not a letter of the negotiation")),
    }
}

fn park(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>, reason: &str) -> Outcome {
    if n.parked.iter().any(|p| p.message_id == input.message_id) {
        return Outcome::Duplicate {
            note: "already parked".into(),
        };
    }
    if n.parked.len() >= MAX_PARKED {
        return refused(format!("{reason}, and {MAX_PARKED} letters already wait on this application"));
    }
    n.parked.push(Parked {
        message_id: input.message_id.clone(),
        r#type: input.r#type.clone(),
        reason: reason.to_string(),
        parked_at: ctx.now.to_string(),
        input: serde_json::to_value(input).unwrap_or(Value::Null),
    });
    Outcome::Parked {
        reason: reason.to_string(),
    }
}

/// The letter passed on as it came, counted as sent by its sender (routes
/// never send it back there); its id follows from the input's.
pub(super) fn forward(input: &Input) -> Vec<Emit> {
    vec![Emit {
        r#type: input.r#type.clone(),
        data: input.data.clone(),
        sender: input.sender.clone(),
        key: input.message_id.clone(),
    }]
}

/// Meets the running deadline at `at`; for the history, how late (` (2
/// working days late)`), or nothing when in time or none was running.
pub(super) fn meet_running(n: &mut Negotiation, ctx: &Ctx<'_>, at: &str) -> String {
    match n.running_mut() {
        Some(dl) => {
            meet(ctx.calendar, dl, at);
            if dl.late_by > 0 {
                format!(" ({} working days late)", dl.late_by)
            } else {
                String::new()
            }
        }
        None => String::new(),
    }
}

/// The record's view of a reply letter.
pub(super) fn reply_ref(input: &Input) -> ReplyRef {
    let d = &input.data;
    ReplyRef {
        letter: LetterRef {
            letter_no: s(d, "/letter_no").to_string(),
            sent_at: s(d, "/replied_at").to_string(),
            message_id: input.message_id.clone(),
        },
        decision: s(d, "/decision").to_string(),
        reasons: d.get("reasons").and_then(Value::as_str).map(str::to_string),
    }
}

fn from_department(input: &Input) -> Result<(), Outcome> {
    match &input.sender_province {
        None => Ok(()),
        Some(p) => Err(refused(format!(
            "{} is the sending department's letter; province {p} may not send it",
            input.r#type
        ))),
    }
}

fn request(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>) -> Outcome {
    if let Err(o) = from_department(input) {
        return o;
    }
    let d = &input.data;
    if n.request.as_ref() == Some(d) {
        return Outcome::Duplicate {
            note: "the same application again".into(),
        };
    }
    if !matches!(n.state, State::AwaitingRequest | State::Received | State::CorrectionRequired) {
        return refused(format!(
            "the application is {} already; a changed application needs a new application number (Order No. 23 Art. 28)",
            n.state.as_str()
        ));
    }
    if s(d, "/sending_province") != ctx.own_province {
        return refused(format!(
            "the hub negotiates for province {}; this application sends from {}",
            ctx.own_province,
            s(d, "/sending_province")
        ));
    }
    let receiver = s(d, "/receiver/province");
    if receiver == ctx.own_province {
        return refused("the receiver is in this province: that is not a cross-province transfer");
    }
    let (Some(from), Some(to)) = (date(d.pointer("/requested_period/from")), date(d.pointer("/requested_period/to"))) else {
        return refused("requested_period needs a readable from and to");
    };
    if to < from {
        return refused("requested_period ends before it starts");
    }
    if to > validity_cap(from, to, None, &[]) {
        return refused(format!(
            "the requested period {from} to {to} is longer than 12 months (Order No. 23 Art. 27)"
        ));
    }
    if date(d.pointer("/receiver/licence_valid_to")).is_none() {
        return refused(
            "receiver.licence_valid_to is missing: a decision may not outlast the receiver's licence (Order No. 23 Art. 27), so the hub needs its expiry",
        );
    }
    let received_at = s(d, "/submitted_at").to_string();
    let Some(day) = beijing_date(&received_at) else {
        return refused("submitted_at is not a readable time");
    };
    let again = n.state != State::AwaitingRequest;
    n.request = Some(d.clone());
    n.receiver_province = Some(receiver.to_string());
    n.received_at = Some(received_at);
    n.state = State::Received;
    // A corrected application is received anew: the acceptance period
    // starts again (Art. 23).
    n.deadlines.retain(|x| x.met_at.is_some());
    n.deadlines
        .push(deadline(ctx.calendar, DeadlineKind::Acceptance, day, &ctx.department()));
    applied(
        if again {
            "corrected application received; acceptance due again"
        } else {
            "application received"
        },
        Vec::new(),
    )
}

fn acceptance(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>) -> Outcome {
    if let Err(o) = from_department(input) {
        return o;
    }
    let d = &input.data;
    let outcome = s(d, "/outcome");
    match n.state {
        State::AwaitingRequest => park(n, input, ctx, "the application has not arrived"),
        State::Received => {
            if outcome == "CORRECTION_REQUIRED" {
                if let Some(dl) = n.running_mut() {
                    meet(ctx.calendar, dl, &input.arrived_at);
                }
                n.state = State::CorrectionRequired;
                return applied("deficiency notice: a corrected application is awaited", Vec::new());
            }
            let accepted_at = match s(d, "/accepted_at") {
                "" => input.arrived_at.clone(),
                t => t.to_string(),
            };
            if let Some(dl) = n.running_mut() {
                meet(ctx.calendar, dl, &accepted_at);
            }
            n.accepted_at = Some(accepted_at);
            n.deemed_accepted = d.get("deemed_accepted") == Some(&Value::Bool(true));
            n.state = State::Accepted;
            let emits = after_acceptance(n, ctx);
            applied(note_after_acceptance(n, "accepted"), emits)
        }
        State::CorrectionRequired => refused("a corrected application is awaited; an acceptance must follow it"),
        _ if n.deemed_accepted => {
            if outcome == "ACCEPTED" {
                Outcome::Duplicate {
                    note: format!(
                        "deemed accepted already on {}; the late notice changes nothing",
                        n.accepted_at.as_deref().unwrap_or("receipt")
                    ),
                }
            } else {
                refused(format!(
                    "the application was deemed accepted (no notice within 5 working days of receipt, Order No. 23 Art. 23) on {}; a later deficiency notice has no effect",
                    n.accepted_at.as_deref().unwrap_or("receipt")
                ))
            }
        }
        _ if outcome == "ACCEPTED" => Outcome::Duplicate {
            note: "accepted already".into(),
        },
        state => refused(format!("the application is {} already", state.as_str())),
    }
}

/// After acceptance: the whitelist short-cut when an entry covers the
/// request, else the consultation deadline.
fn after_acceptance(n: &mut Negotiation, ctx: &Ctx<'_>) -> Vec<Emit> {
    let Some(req) = n.request.clone() else { return Vec::new() };
    let today = ctx.today();
    match whitelist::find(&req, ctx.whitelist, ctx.own_province, today) {
        Ok(m) => match whitelist_decision(n, &req, &m, ctx) {
            Ok(emit) => vec![emit],
            Err(why) => {
                n.whitelist_note = Some(format!("{}: {why}; consultation needed", m.key));
                consultation_due(n, ctx);
                Vec::new()
            }
        },
        Err(why) => {
            n.whitelist_note = Some(why);
            consultation_due(n, ctx);
            Vec::new()
        }
    }
}

fn note_after_acceptance(n: &Negotiation, what: &str) -> String {
    match (&n.decision, &n.whitelist_note) {
        (Some(d), _) => format!(
            "{what}; whitelist entry {} covers it: decision {} issued",
            d.whitelist.as_deref().unwrap_or(""),
            d.decision_no
        ),
        (None, Some(why)) => format!("{what}; consultation letter due (whitelist: {why})"),
        (None, None) => format!("{what}; consultation letter due"),
    }
}

fn consultation_due(n: &mut Negotiation, ctx: &Ctx<'_>) {
    let from = n.accepted_at.as_deref().and_then(beijing_date).unwrap_or_else(|| ctx.today());
    n.deadlines
        .push(deadline(ctx.calendar, DeadlineKind::Consultation, from, &ctx.department()));
}

fn whitelist_decision(n: &mut Negotiation, req: &Value, m: &whitelist::Matched, ctx: &Ctx<'_>) -> Result<Emit, String> {
    let today = ctx.today();
    let requested_from = date(req.pointer("/requested_period/from")).unwrap_or(today);
    let requested_to = date(req.pointer("/requested_period/to")).unwrap_or(today);
    let licence_to = date(req.pointer("/receiver/licence_valid_to"));
    let valid_from = requested_from.max(today);
    let mut extra = vec![m.valid_to];
    if let Some(days) = m.completion_days
        && days > 0
        && let Some(end) = valid_from.checked_add_days(Days::new(days - 1))
    {
        extra.push(end);
    }
    let valid_to = validity_cap(valid_from, requested_to, licence_to, &extra);
    if valid_to < valid_from {
        return Err(format!("no validity is left (would be {valid_from} to {valid_to})"));
    }
    let lines: Vec<Value> = req
        .get("lines")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|l| {
            json!({"waste_code": l["waste_code"], "category": l["category"], "name": l["name"],
                   "quantity_t": l["quantity_t"], "method_code": l["method_code"]})
        })
        .collect();
    let quantity = total(&lines).ok_or("a line has an unreadable quantity")?;
    let receiver_province = s(req, "/receiver/province");
    let decision_no = format!("{}{}", ctx.decision_prefix, n.application_no);
    let mut notified = vec![json!({"kind": "RECEIVING_ENVIRONMENT_DEPT",
        "name": super::provinces::environment_department(receiver_province).unwrap_or_else(|| format!("{receiver_province} 省级生态环境主管部门")),
        "province": receiver_province, "notified_at": ctx.now})];
    if let Some(own) = super::provinces::name(ctx.own_province) {
        notified.push(json!({"kind": "SENDING_TRANSPORT_DEPT", "name": format!("{own}交通运输厅"), "province": ctx.own_province}));
    }
    let data = json!({
        "decision_no": decision_no,
        "application_no": n.application_no,
        "basis": "WHITELIST",
        "whitelist_id": m.whitelist_id,
        "consignor": req["consignor"],
        "receiver": req["receiver"],
        "lines": lines,
        "valid_from": valid_from.to_string(),
        "valid_to": valid_to.to_string(),
        "decided_at": ctx.now,
        "notified_parties": notified,
    });
    n.state = State::Decided;
    n.decision = Some(DecisionRef {
        decision_no,
        basis: Basis::Whitelist,
        whitelist: Some(m.key.clone()),
        valid_from,
        valid_to,
        quantity_t: tonnes(quantity),
        decided_at: ctx.now.to_string(),
        issued_by: "hub".into(),
        message_id: String::new(),
    });
    n.whitelist_note = None;
    Ok(Emit {
        r#type: "xp-decision".into(),
        data,
        sender: super::HUB_SENDER.into(),
        key: format!("whitelist-decision:{}", n.application_no),
    })
}

/// The acceptance period ran out without a notice: the application counts
/// as accepted on receipt (Order No. 23 Art. 23). The hub tells the
/// department with an `xp-acceptance` marked `deemed_accepted`.
pub fn deem_accepted(n: &mut Negotiation, ctx: &Ctx<'_>) -> Outcome {
    if n.state != State::Received {
        return Outcome::Duplicate {
            note: format!("the application is {}", n.state.as_str()),
        };
    }
    let received_at = n.received_at.clone().unwrap_or_else(|| ctx.now.to_string());
    if let Some(dl) = n.running_mut() {
        dl.met_at = Some(ctx.now.to_string());
    }
    n.accepted_at = Some(received_at.clone());
    n.deemed_accepted = true;
    n.state = State::Accepted;
    let notice = Emit {
        r#type: "xp-acceptance".into(),
        data: json!({
            "application_no": n.application_no,
            "authority_division": ctx.department(),
            "outcome": "ACCEPTED",
            "received_at": received_at,
            "accepted_at": received_at,
            "deemed_accepted": true,
        }),
        sender: super::HUB_SENDER.into(),
        key: format!("deemed-acceptance:{}", n.application_no),
    };
    let mut emits = vec![notice];
    emits.extend(after_acceptance(n, ctx));
    applied(
        note_after_acceptance(n, "deemed accepted: no notice within 5 working days (Order No. 23 Art. 23)"),
        emits,
    )
}

fn consultation(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>) -> Outcome {
    if let Some(p) = input.sender_province.clone() {
        return super::receiving::consultation(n, input, ctx, &p);
    }
    let d = &input.data;
    let letter_no = s(d, "/letter_no");
    match n.state {
        State::AwaitingRequest | State::Received => park(n, input, ctx, "the application is not accepted yet"),
        State::CorrectionRequired => refused("the application awaits corrections; it cannot be consulted on"),
        State::Accepted => {
            if s(d, "/from_province") != ctx.own_province {
                return refused(format!("from_province must be {}", ctx.own_province));
            }
            let to = n.receiver_province.clone().unwrap_or_default();
            if s(d, "/to_province") != to {
                return refused(format!(
                    "the letter goes to province {}, but the receiver is in {to}",
                    s(d, "/to_province")
                ));
            }
            let sent_at = s(d, "/sent_at").to_string();
            let Some(day) = beijing_date(&sent_at) else {
                return refused("sent_at is not a readable time");
            };
            if let Some(dl) = n.running_mut() {
                meet(ctx.calendar, dl, &sent_at);
            }
            n.consultation = Some(LetterRef {
                letter_no: letter_no.to_string(),
                sent_at,
                message_id: input.message_id.clone(),
            });
            n.state = State::Consulting;
            n.deadlines
                .push(deadline(ctx.calendar, DeadlineKind::Reply, day, &format!("{to}0000")));
            applied(format!("consultation letter {letter_no} sent to province {to}"), forward(input))
        }
        _ if n.consultation.as_ref().is_some_and(|c| c.letter_no == letter_no) => Outcome::Duplicate {
            note: format!("consultation letter {letter_no} was sent already"),
        },
        State::Decided if n.decision.as_ref().is_some_and(|x| x.basis == Basis::Whitelist) => {
            refused("decided on a whitelist entry: no consultation is needed")
        }
        state => refused(format!(
            "the application is {}; consultation letter {} was sent already",
            state.as_str(),
            n.consultation.as_ref().map_or("", |c| c.letter_no.as_str())
        )),
    }
}

fn reply(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>) -> Outcome {
    if input.sender_province.is_none() && n.role == Role::Receiving {
        return super::receiving::reply(n, input, ctx);
    }
    let d = &input.data;
    let from = s(d, "/from_province");
    match &input.sender_province {
        Some(p) if p == from => {}
        Some(p) => return refused(format!("province {p} sent a reply that says it is from {from}")),
        None => return refused("a reply comes from the receiving province, not from a domestic system"),
    }
    if s(d, "/to_province") != ctx.own_province {
        return refused(format!("the reply is addressed to province {}", s(d, "/to_province")));
    }
    let letter_no = s(d, "/letter_no");
    if let Some(r) = &n.reply {
        return if r.letter.letter_no == letter_no {
            Outcome::Duplicate {
                note: format!("reply {letter_no} was received already"),
            }
        } else {
            refused(format!(
                "reply {} was received already; a second reply is not taken",
                r.letter.letter_no
            ))
        };
    }
    match n.state {
        State::Accepted => park(n, input, ctx, "the consultation letter has not gone out yet"),
        State::Consulting => {
            let consultation = n.consultation.clone();
            let expected = consultation.as_ref().map_or("", |c| c.letter_no.as_str());
            if s(d, "/reply_to") != expected {
                return refused(format!(
                    "the reply answers letter {}, but the consultation letter is {expected}",
                    s(d, "/reply_to")
                ));
            }
            if n.receiver_province.as_deref() != Some(from) {
                return refused(format!(
                    "the consultation went to province {}",
                    n.receiver_province.as_deref().unwrap_or("")
                ));
            }
            let late = meet_running(n, ctx, &input.arrived_at);
            let decision = s(d, "/decision").to_string();
            n.reply = Some(reply_ref(input));
            let emits = forward(input);
            if decision == "AGREE" {
                n.state = State::Replied;
                let day = beijing_date(&input.arrived_at).unwrap_or_else(|| ctx.today());
                n.deadlines
                    .push(deadline(ctx.calendar, DeadlineKind::Decision, day, &ctx.department()));
                applied(format!("province {from} agrees ({letter_no}){late}; decision due"), emits)
            } else {
                n.state = State::Refused;
                applied(
                    format!(
                        "province {from} disagrees ({letter_no}){late}: {}; no approval can be issued",
                        s(d, "/reasons")
                    ),
                    emits,
                )
            }
        }
        State::AwaitingRequest | State::Received | State::CorrectionRequired => {
            refused("no consultation letter was sent for this application")
        }
        state => refused(format!("the application is {}", state.as_str())),
    }
}

fn decision(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>) -> Outcome {
    if let Some(p) = input.sender_province.clone() {
        return super::receiving::decision(n, input, ctx, &p);
    }
    if n.role == Role::Receiving {
        return refused("the sending province decides; this province's department replies");
    }
    let d = &input.data;
    let decision_no = s(d, "/decision_no");
    if let Some(x) = &n.decision {
        return if x.decision_no == decision_no {
            Outcome::Duplicate {
                note: format!("decision {decision_no} was issued already"),
            }
        } else {
            refused(format!("decision {} was issued already", x.decision_no))
        };
    }
    let basis = s(d, "/basis");
    match (n.state, basis) {
        (State::Refused, _) => refused(format!(
            "the receiving province disagreed ({}); no approval can be issued",
            n.reply.as_ref().map_or("", |r| r.letter.letter_no.as_str())
        )),
        (State::Replied, "CONSULTATION") => {
            let reply_no = n.reply.as_ref().map_or("", |r| r.letter.letter_no.as_str()).to_string();
            if s(d, "/reply_letter_no") != reply_no {
                return refused(format!(
                    "the decision cites reply {}, but the reply received is {reply_no}",
                    s(d, "/reply_letter_no")
                ));
            }
            decide(n, input, ctx, Basis::Consultation, None)
        }
        (State::Accepted, "WHITELIST") => {
            let req = n.request.clone().unwrap_or(Value::Null);
            match whitelist::find(&req, ctx.whitelist, ctx.own_province, ctx.today()) {
                Ok(m) if m.whitelist_id == s(d, "/whitelist_id") => {
                    let extra = m.valid_to;
                    decide(n, input, ctx, Basis::Whitelist, Some((m.key, extra)))
                }
                Ok(m) => refused(format!(
                    "the decision cites whitelist entry {}, but {} covers the request",
                    s(d, "/whitelist_id"),
                    m.key
                )),
                Err(why) => refused(format!("no whitelist entry covers the request: {why}")),
            }
        }
        (State::AwaitingRequest | State::Received | State::Accepted | State::Consulting, "CONSULTATION") => {
            park(n, input, ctx, "the receiving province has not replied yet")
        }
        (State::AwaitingRequest | State::Received, "WHITELIST") => park(n, input, ctx, "the application is not accepted yet"),
        (state, basis) => refused(format!("a {basis} decision does not fit an application that is {}", state.as_str())),
    }
}

fn decide(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>, basis: Basis, whitelist: Option<(String, NaiveDate)>) -> Outcome {
    let d = &input.data;
    let req = n.request.clone().unwrap_or(Value::Null);
    if let Err(why) = check_lines(&req, d) {
        return refused(why);
    }
    let (Some(from), Some(to)) = (date(d.get("valid_from")), date(d.get("valid_to"))) else {
        return refused("valid_from and valid_to must be dates");
    };
    let requested_from = date(req.pointer("/requested_period/from")).unwrap_or(from);
    let requested_to = date(req.pointer("/requested_period/to")).unwrap_or(to);
    let licence_to = date(req.pointer("/receiver/licence_valid_to"));
    if to < from {
        return refused("valid_to is before valid_from");
    }
    if from < requested_from {
        return refused(format!("validity starts {from}, before the requested period ({requested_from})"));
    }
    let extra: Vec<NaiveDate> = whitelist.iter().map(|(_, t)| *t).collect();
    let cap = validity_cap(from, requested_to, licence_to, &extra);
    if to > cap {
        return refused(format!(
            "valid_to {to} is beyond {cap}: 12 months from {from}, the requested period's end {requested_to}{}{} (Order No. 23 Art. 27)",
            licence_to
                .map(|l| format!(", the receiver's licence expiry {l}"))
                .unwrap_or_default(),
            whitelist
                .as_ref()
                .map(|(k, t)| format!(", whitelist entry {k} ending {t}"))
                .unwrap_or_default()
        ));
    }
    let decided_at = s(d, "/decided_at").to_string();
    let late = meet_running(n, ctx, &decided_at);
    let lines = d.get("lines").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    n.decision = Some(DecisionRef {
        decision_no: s(d, "/decision_no").to_string(),
        basis,
        whitelist: whitelist.map(|(k, _)| k),
        valid_from: from,
        valid_to: to,
        quantity_t: tonnes(total(lines).unwrap_or(0)),
        decided_at,
        issued_by: "department".into(),
        message_id: input.message_id.clone(),
    });
    n.state = State::Decided;
    applied(
        format!("decision {} issued, valid {from} to {to}{late}", s(d, "/decision_no")),
        forward(input),
    )
}

/// Every approved line must be a requested waste, at most the requested quantity.
fn check_lines(req: &Value, decision: &Value) -> Result<(), String> {
    let requested = req.get("lines").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    for line in decision.get("lines").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        let code = s(line, "/waste_code");
        let asked: i64 = requested
            .iter()
            .filter(|r| s(r, "/waste_code") == code)
            .filter_map(|r| micro_tonnes(s(r, "/quantity_t")))
            .sum();
        if asked == 0 {
            return Err(format!("waste code {code} was not requested"));
        }
        let approved = micro_tonnes(s(line, "/quantity_t")).ok_or(format!("the quantity of {code} is unreadable"))?;
        if approved > asked {
            return Err(format!(
                "{} t of {code} approved, but {} t were requested",
                tonnes(approved),
                tonnes(asked)
            ));
        }
    }
    Ok(())
}

/// Applies parked letters that now fit, until none does; returns each
/// one's input and outcome (for the history and what to send).
pub fn drain_parked(n: &mut Negotiation, ctx: &Ctx<'_>) -> Vec<(Input, Outcome)> {
    let mut done = Vec::new();
    loop {
        let mut progressed = false;
        let waiting = std::mem::take(&mut n.parked);
        for p in waiting {
            let Ok(input) = serde_json::from_value::<Input>(p.input.clone()) else {
                // Never dropped unseen: it stays parked, visible in the API.
                n.parked.push(p);
                continue;
            };
            match apply(n, &input, ctx) {
                Outcome::Parked { .. } => {
                    // `apply` parked it again with a fresh time; keep the first.
                    if let Some(last) = n.parked.last_mut()
                        && last.message_id == p.message_id
                    {
                        *last = p;
                    }
                }
                Outcome::Duplicate { note } if note == "already parked" => n.parked.push(p),
                outcome => {
                    progressed |= matches!(outcome, Outcome::Applied { .. });
                    done.push((input, outcome));
                }
            }
        }
        if !progressed {
            return done;
        }
    }
}

#[cfg(test)]
mod tests;

//! The receiving side of the negotiation, pure like [`super::machine`]:
//! another province sends waste into this one and consults this province's
//! department (Order No. 23 Art. 25). Its consultation letter opens a
//! record (state `CONSULTED`, the reply due within 10 working days of its
//! arrival); the department's reply goes back to that province signed
//! (`ANSWERED` when it agrees, `REFUSED` when it does not); the sending
//! province's decision then closes it (`DECIDED`). A decision the sending
//! province takes on a whitelist entry (no consultation) is recorded as it
//! comes.

use serde_json::Value;

use super::machine::{Ctx, Input, Outcome, applied, forward, meet_running, refused, reply_ref, s};
use super::model::{Basis, DeadlineKind, DecisionRef, LetterRef, Negotiation, Role, State};
use super::rules::{beijing_date, date, deadline, tonnes, total};

fn is_fresh(n: &Negotiation) -> bool {
    n.state == State::AwaitingRequest && n.request.is_none() && n.parked.is_empty() && n.consultation.is_none()
}

/// Province `p` consults this province.
pub fn consultation(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>, p: &str) -> Outcome {
    let d = &input.data;
    let letter_no = s(d, "/letter_no");
    if s(d, "/from_province") != p {
        return refused(format!(
            "province {p} sent a letter that says it is from {}",
            s(d, "/from_province")
        ));
    }
    if s(d, "/to_province") != ctx.own_province {
        return refused(format!("the letter is addressed to province {}", s(d, "/to_province")));
    }
    if n.role == Role::Receiving {
        return match &n.consultation {
            Some(c) if c.letter_no == letter_no => Outcome::Duplicate {
                note: format!("consultation letter {letter_no} was received already"),
            },
            Some(c) => refused(format!(
                "consultation letter {} was received already for this application",
                c.letter_no
            )),
            None => refused("the record is not a consultation"),
        };
    }
    if !is_fresh(n) {
        return refused(format!(
            "application {} is this province's own ({}); another province cannot consult on it",
            n.application_no,
            n.state.as_str()
        ));
    }
    let day = beijing_date(&input.arrived_at).unwrap_or_else(|| ctx.today());
    n.role = Role::Receiving;
    n.sending_province = Some(p.to_string());
    n.receiver_province = Some(ctx.own_province.to_string());
    n.received_at = Some(input.arrived_at.clone());
    n.consultation = Some(LetterRef {
        letter_no: letter_no.to_string(),
        sent_at: s(d, "/sent_at").to_string(),
        message_id: input.message_id.clone(),
    });
    n.state = State::Consulted;
    n.deadlines
        .push(deadline(ctx.calendar, DeadlineKind::Reply, day, &ctx.department()));
    applied(
        format!("province {p} consults this province ({letter_no}); the reply is due"),
        forward(input),
    )
}

/// The department replies to the sending province.
pub fn reply(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>) -> Outcome {
    let d = &input.data;
    let letter_no = s(d, "/letter_no");
    if let Some(r) = &n.reply {
        return if r.letter.letter_no == letter_no {
            Outcome::Duplicate {
                note: format!("reply {letter_no} was sent already"),
            }
        } else {
            refused(format!("reply {} was sent already; a second reply is not sent", r.letter.letter_no))
        };
    }
    if n.state != State::Consulted {
        return refused(format!("the application is {}", n.state.as_str()));
    }
    let sending = n.sending_province.clone().unwrap_or_default();
    if s(d, "/from_province") != ctx.own_province || s(d, "/to_province") != sending {
        return refused(format!("the reply must go from {} to province {sending}", ctx.own_province));
    }
    let expected = n.consultation.as_ref().map_or("", |c| c.letter_no.as_str());
    if s(d, "/reply_to") != expected {
        return refused(format!(
            "the reply answers letter {}, but the consultation letter is {expected}",
            s(d, "/reply_to")
        ));
    }
    let late = meet_running(n, ctx, &input.arrived_at);
    let decision = s(d, "/decision").to_string();
    n.reply = Some(reply_ref(input));
    n.state = if decision == "AGREE" { State::Answered } else { State::Refused };
    applied(
        format!("reply {letter_no} ({decision}) sent to province {sending}{late}"),
        forward(input),
    )
}

/// The sending province `p` tells this province of its decision.
pub fn decision(n: &mut Negotiation, input: &Input, ctx: &Ctx<'_>, p: &str) -> Outcome {
    let d = &input.data;
    let decision_no = s(d, "/decision_no");
    if s(d, "/receiver/province") != ctx.own_province {
        return refused(format!("the decision's receiver is in province {}", s(d, "/receiver/province")));
    }
    if let Some(x) = &n.decision {
        return if x.decision_no == decision_no {
            Outcome::Duplicate {
                note: format!("decision {decision_no} was received already"),
            }
        } else {
            refused(format!("decision {} was received already", x.decision_no))
        };
    }
    let basis = s(d, "/basis");
    match (n.state, basis) {
        (State::Answered, "CONSULTATION") if n.sending_province.as_deref() == Some(p) => {
            let reply_no = n.reply.as_ref().map_or("", |r| r.letter.letter_no.as_str());
            if s(d, "/reply_letter_no") != reply_no {
                return refused(format!(
                    "the decision cites reply {}, but this province's reply is {reply_no}",
                    s(d, "/reply_letter_no")
                ));
            }
        }
        (State::AwaitingRequest, "WHITELIST") if is_fresh(n) => {
            n.role = Role::Receiving;
            n.sending_province = Some(p.to_string());
            n.receiver_province = Some(ctx.own_province.to_string());
        }
        (State::Refused, _) => {
            return refused("this province disagreed: the sending province may not approve the transfer");
        }
        (State::Consulted, _) => return refused("this province has not replied yet"),
        (state, basis) => {
            return refused(format!(
                "a {basis} decision from province {p} does not fit an application that is {}",
                state.as_str()
            ));
        }
    }
    let (Some(from), Some(to)) = (date(d.get("valid_from")), date(d.get("valid_to"))) else {
        return refused("valid_from and valid_to must be dates");
    };
    let lines = d.get("lines").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    n.decision = Some(DecisionRef {
        decision_no: decision_no.to_string(),
        basis: if basis == "WHITELIST" {
            Basis::Whitelist
        } else {
            Basis::Consultation
        },
        whitelist: d.get("whitelist_id").and_then(Value::as_str).map(str::to_string),
        valid_from: from,
        valid_to: to,
        quantity_t: tonnes(total(lines).unwrap_or(0)),
        decided_at: s(d, "/decided_at").to_string(),
        issued_by: format!("province {p}"),
        message_id: input.message_id.clone(),
    });
    n.state = State::Decided;
    applied(
        format!("province {p} decided ({decision_no}, {basis}), valid {from} to {to}"),
        forward(input),
    )
}

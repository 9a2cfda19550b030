//! Every path of the negotiation on the shipped working-day calendar.

use std::path::Path;

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::*;
use crate::reference::calendar::{CALENDAR_FILE, WorkCalendar};
use crate::xp::model::Role;

const APP: &str = "KSZY-350181-2026-0012";

fn calendar() -> WorkCalendar {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/reference").join(CALENDAR_FILE);
    let mut errors = Vec::new();
    let c = WorkCalendar::load(&path, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    c
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
}

fn ctx<'a>(cal: &'a WorkCalendar, whitelist: &'a [Candidate], now: &'a str) -> Ctx<'a> {
    Ctx {
        own_province: "35",
        calendar: cal,
        whitelist,
        decision_prefix: "闽环固白-",
        now,
    }
}

fn request_data(submitted_at: &str) -> Value {
    json!({
        "application_no": APP, "sending_province": "35",
        "consignor": {"usci": "91350181MA2Y4KD6XT", "name": "福清融通汽车服务有限公司", "site_id": "S350181-0102"},
        "receiver": {"usci": "91360121MA35GH2W54", "name": "南昌恒泰再生铅业有限公司", "province": "36",
                     "site_id": "S360121-0001", "licence_no": "赣危废经字〔2024〕第031号", "licence_valid_to": "2027-06-30"},
        "lines": [{"waste_code": "900-052-31", "category": "HW31", "name": "废铅蓄电池", "quantity_t": "180", "method_code": "R4"}],
        "requested_period": {"from": "2026-03-01", "to": "2027-02-28"},
        "documents": [], "submitted_at": submitted_at
    })
}

fn input(id: &str, ty: &str, data: Value, arrived_at: &str) -> Input {
    Input {
        message_id: id.into(),
        r#type: ty.into(),
        data,
        sender: "provincial".into(),
        sender_province: None,
        arrived_at: arrived_at.into(),
    }
}

fn from_province(mut i: Input, p: &str) -> Input {
    i.sender = format!("province-{p}");
    i.sender_province = Some(p.into());
    i
}

fn accepted(at: &str) -> Value {
    json!({"application_no": APP, "authority_division": "350000", "outcome": "ACCEPTED", "accepted_at": at})
}

fn consultation(sent_at: &str) -> Value {
    json!({"letter_no": "闽环固商〔2026〕15号", "application_no": APP, "from_province": "35", "to_province": "36",
           "preliminary_opinion": "经初审，同意转移。", "sent_at": sent_at})
}

fn reply(decision: &str, replied_at: &str) -> Value {
    let mut r = json!({"letter_no": "赣环固函〔2026〕22号", "reply_to": "闽环固商〔2026〕15号", "application_no": APP,
           "from_province": "36", "to_province": "35", "decision": decision, "replied_at": replied_at});
    if decision == "DISAGREE" {
        r["reasons"] = json!("接收单位处置能力不足。");
    }
    r
}

fn decision_data(valid_from: &str, valid_to: &str, quantity: &str) -> Value {
    json!({"decision_no": "闽环固转〔2026〕0087号", "application_no": APP, "basis": "CONSULTATION",
           "reply_letter_no": "赣环固函〔2026〕22号",
           "consignor": {"usci": "91350181MA2Y4KD6XT", "name": "福清融通汽车服务有限公司", "site_id": "S350181-0102"},
           "receiver": {"usci": "91360121MA35GH2W54", "name": "南昌恒泰再生铅业有限公司", "province": "36", "licence_no": "赣危废经字〔2024〕第031号"},
           "lines": [{"waste_code": "900-052-31", "category": "HW31", "name": "废铅蓄电池", "quantity_t": quantity, "method_code": "R4"}],
           "valid_from": valid_from, "valid_to": valid_to, "decided_at": "2026-02-11T10:00:00+08:00",
           "notified_parties": [{"kind": "RECEIVING_ENVIRONMENT_DEPT", "name": "江西省生态环境厅", "province": "36"}]})
}

fn is_applied(o: &Outcome) -> bool {
    matches!(o, Outcome::Applied { .. })
}

fn emits(o: &Outcome) -> Vec<Emit> {
    match o {
        Outcome::Applied { emits, .. } => emits.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn the_consultation_path_runs_on_working_day_deadlines() {
    let cal = calendar();
    let mut n = Negotiation::new(APP);
    // Tuesday 20 January 2026: acceptance due 5 working days later, Tue 27.
    let now = "2026-01-20T10:00:05+08:00";
    let o = apply(
        &mut n,
        &input("m1", "xp-request", request_data("2026-01-20T10:00:00+08:00"), now),
        &ctx(&cal, &[], now),
    );
    assert!(is_applied(&o), "{o:?}");
    assert_eq!(n.state, State::Received);
    assert_eq!(
        n.running().map(|x| (x.kind, x.due)),
        Some((DeadlineKind::Acceptance, d("2026-01-27")))
    );

    let now = "2026-01-21T09:00:00+08:00";
    let o = apply(&mut n, &input("m2", "xp-acceptance", accepted(now), now), &ctx(&cal, &[], now));
    assert!(is_applied(&o), "{o:?}");
    assert_eq!(n.state, State::Accepted);
    // Consultation due 5 working days after Wed 21 January: Wed 28.
    assert_eq!(
        n.running().map(|x| (x.kind, x.due)),
        Some((DeadlineKind::Consultation, d("2026-01-28")))
    );

    let now = "2026-01-23T09:00:00+08:00";
    let o = apply(
        &mut n,
        &input("m3", "xp-consultation", consultation(now), now),
        &ctx(&cal, &[], now),
    );
    let sent = emits(&o);
    assert_eq!(sent.len(), 1, "{o:?}");
    assert_eq!(sent[0].r#type, "xp-consultation");
    assert_eq!(sent[0].sender, "provincial", "the department does not get its own letter back");
    assert_eq!(n.state, State::Consulting);
    // Reply: 10 working days from Fri 23 January; the Spring Festival break
    // (15-23 February 2026, with make-up days 14 and 28 February) is not
    // in it: Fri 6 February.
    let running = n.running().cloned().expect("reply deadline");
    assert_eq!(
        (running.kind, running.due, running.responsible.as_str()),
        (DeadlineKind::Reply, d("2026-02-06"), "360000")
    );

    let now = "2026-02-05T15:00:00+08:00";
    let o = apply(
        &mut n,
        &from_province(input("m4", "xp-reply", reply("AGREE", now), now), "36"),
        &ctx(&cal, &[], now),
    );
    assert_eq!(emits(&o)[0].sender, "province-36");
    assert_eq!(n.state, State::Replied);
    // Decision: 5 working days from Thu 5 February: Thu 12 February.
    assert_eq!(
        n.running().map(|x| (x.kind, x.due)),
        Some((DeadlineKind::Decision, d("2026-02-12")))
    );

    let now = "2026-02-11T10:00:00+08:00";
    let o = apply(
        &mut n,
        &input("m5", "xp-decision", decision_data("2026-03-01", "2027-02-28", "180"), now),
        &ctx(&cal, &[], now),
    );
    assert!(is_applied(&o), "{o:?}");
    assert_eq!(n.state, State::Decided);
    let dec = n.decision.clone().expect("decision");
    assert_eq!(
        (dec.basis, dec.valid_to, dec.quantity_t.as_str()),
        (Basis::Consultation, d("2027-02-28"), "180")
    );
    assert!(
        n.deadlines.iter().all(|x| x.met_at.is_some() && x.late_by == 0),
        "{:?}",
        n.deadlines
    );
}

fn at_consulting(cal: &WorkCalendar) -> Negotiation {
    let mut n = Negotiation::new(APP);
    let now = "2026-01-20T10:00:05+08:00";
    for i in [
        input("m1", "xp-request", request_data("2026-01-20T10:00:00+08:00"), now),
        input("m2", "xp-acceptance", accepted(now), now),
        input("m3", "xp-consultation", consultation("2026-01-23T09:00:00+08:00"), now),
    ] {
        let o = apply(&mut n, &i, &ctx(cal, &[], now));
        assert!(is_applied(&o), "{o:?}");
    }
    n
}

#[test]
fn a_repeated_letter_is_a_duplicate_and_changes_nothing() {
    let cal = calendar();
    let mut n = at_consulting(&cal);
    let now = "2026-01-24T09:00:00+08:00";
    let before = n.clone();
    let o = apply(
        &mut n,
        &input("m9", "xp-consultation", consultation("2026-01-23T09:00:00+08:00"), now),
        &ctx(&cal, &[], now),
    );
    assert!(matches!(o, Outcome::Duplicate { .. }), "{o:?}");
    assert_eq!(n, before);
    let r = from_province(input("m4", "xp-reply", reply("AGREE", now), now), "36");
    assert!(is_applied(&apply(&mut n, &r, &ctx(&cal, &[], now))));
    let again = from_province(input("m5", "xp-reply", reply("AGREE", now), now), "36");
    assert!(matches!(apply(&mut n, &again, &ctx(&cal, &[], now)), Outcome::Duplicate { .. }));
    let mut other = reply("DISAGREE", now);
    other["letter_no"] = json!("赣环固函〔2026〕23号");
    let o = apply(
        &mut n,
        &from_province(input("m6", "xp-reply", other, now), "36"),
        &ctx(&cal, &[], now),
    );
    assert!(matches!(o, Outcome::Refused { .. }), "{o:?}");
    assert_eq!(n.state, State::Replied);
}

#[test]
fn letters_that_come_early_are_parked_and_applied_in_order() {
    let cal = calendar();
    let mut n = Negotiation::new(APP);
    let now = "2026-01-21T09:00:00+08:00";
    let c = ctx(&cal, &[], now);
    // The consultation and the acceptance come before the request.
    let o = apply(
        &mut n,
        &input("m3", "xp-consultation", consultation("2026-01-23T09:00:00+08:00"), now),
        &c,
    );
    assert!(matches!(o, Outcome::Parked { .. }), "{o:?}");
    let o = apply(&mut n, &input("m2", "xp-acceptance", accepted(now), now), &c);
    assert!(matches!(o, Outcome::Parked { .. }), "{o:?}");
    assert_eq!(n.state, State::AwaitingRequest);
    assert_eq!(n.parked.len(), 2);
    let o = apply(
        &mut n,
        &input("m1", "xp-request", request_data("2026-01-20T10:00:00+08:00"), now),
        &c,
    );
    assert!(is_applied(&o));
    let drained = drain_parked(&mut n, &c);
    let applied: Vec<&str> = drained.iter().map(|(i, _)| i.message_id.as_str()).collect();
    assert_eq!(applied, vec!["m2", "m3"], "the acceptance first, then the letter");
    assert!(drained.iter().all(|(_, o)| is_applied(o)), "{drained:?}");
    assert_eq!(n.state, State::Consulting);
    assert!(n.parked.is_empty());
}

#[test]
fn a_reply_for_an_application_never_consulted_is_refused_not_parked() {
    let cal = calendar();
    let mut n = Negotiation::new(APP);
    let now = "2026-01-21T09:00:00+08:00";
    let o = apply(
        &mut n,
        &from_province(input("x", "xp-reply", reply("AGREE", now), now), "36"),
        &ctx(&cal, &[], now),
    );
    assert!(matches!(o, Outcome::Refused { .. }), "{o:?}");
    assert!(n.parked.is_empty());
}

#[test]
fn silence_for_five_working_days_is_acceptance() {
    let cal = calendar();
    let mut n = Negotiation::new(APP);
    let now = "2026-01-20T10:00:05+08:00";
    apply(
        &mut n,
        &input("m1", "xp-request", request_data("2026-01-20T10:00:00+08:00"), now),
        &ctx(&cal, &[], now),
    );
    let later = "2026-01-28T09:00:00+08:00";
    let o = deem_accepted(&mut n, &ctx(&cal, &[], later));
    let sent = emits(&o);
    assert_eq!(sent[0].r#type, "xp-acceptance");
    assert_eq!(sent[0].data["deemed_accepted"], json!(true));
    assert_eq!(sent[0].data["accepted_at"], json!("2026-01-20T10:00:00+08:00"));
    assert_eq!((n.state, n.deemed_accepted), (State::Accepted, true));
    // A deficiency notice after that has no effect.
    let mut late = accepted(later);
    late["outcome"] = json!("CORRECTION_REQUIRED");
    let o = apply(&mut n, &input("m2", "xp-acceptance", late, later), &ctx(&cal, &[], later));
    assert!(
        matches!(&o, Outcome::Refused { reason } if reason.contains("deemed accepted")),
        "{o:?}"
    );
}

fn whitelist_entry(status: &str, max: &str) -> Value {
    json!({"whitelist_id": "GM-2026-031", "scheme": "GAN-MIN-2019", "direction": "OUTBOUND_FROM_FUJIAN", "partner_province": "36",
           "facility": {"usci": "91360121MA35GH2W54", "licence_no": "赣危废经字〔2024〕第031号", "facility_id": "S360121-0001"},
           "waste_types": [{"whole_category": "HW31"}], "max_quantity_t_per_year": max,
           "conditions": {"completion_days": 30},
           "valid_from": "2026-01-01", "valid_to": "2026-12-31", "status": status})
}

#[test]
fn a_covering_whitelist_entry_decides_at_once() {
    let cal = calendar();
    let wl = [Candidate {
        entry: whitelist_entry("ACTIVE", "1000"),
        used: 0,
    }];
    let mut n = Negotiation::new(APP);
    let now = "2026-03-02T10:00:00+08:00";
    apply(
        &mut n,
        &input("m1", "xp-request", request_data("2026-03-02T09:00:00+08:00"), now),
        &ctx(&cal, &wl, now),
    );
    let o = apply(&mut n, &input("m2", "xp-acceptance", accepted(now), now), &ctx(&cal, &wl, now));
    let sent = emits(&o);
    assert_eq!(sent.len(), 1, "{o:?}");
    assert_eq!(sent[0].r#type, "xp-decision");
    assert_eq!(sent[0].sender, "hub");
    assert_eq!(sent[0].data["basis"], json!("WHITELIST"));
    assert_eq!(sent[0].data["whitelist_id"], json!("GM-2026-031"));
    // Validity from today (after the requested start), capped by the
    // entry's 30-day completion period.
    assert_eq!(sent[0].data["valid_from"], json!("2026-03-02"));
    assert_eq!(sent[0].data["valid_to"], json!("2026-03-31"));
    assert_eq!(n.state, State::Decided);
    assert!(n.running().is_none(), "no consultation deadline on the whitelist path");
    // A consultation letter is then refused.
    let o = apply(
        &mut n,
        &input("m3", "xp-consultation", consultation(now), now),
        &ctx(&cal, &wl, now),
    );
    assert!(matches!(&o, Outcome::Refused { reason } if reason.contains("whitelist")), "{o:?}");
}

#[test]
fn suspended_or_exhausted_entries_fall_back_to_consultation() {
    let cal = calendar();
    let now = "2026-03-02T10:00:00+08:00";
    for (wl, why) in [
        (
            Candidate {
                entry: whitelist_entry("SUSPENDED", "1000"),
                used: 0,
            },
            "SUSPENDED",
        ),
        (
            Candidate {
                entry: whitelist_entry("ACTIVE", "1000"),
                used: 900_000_000,
            },
            "allows 1000 t a year",
        ),
    ] {
        let wl = [wl];
        let mut n = Negotiation::new(APP);
        apply(
            &mut n,
            &input("m1", "xp-request", request_data("2026-03-02T09:00:00+08:00"), now),
            &ctx(&cal, &wl, now),
        );
        let o = apply(&mut n, &input("m2", "xp-acceptance", accepted(now), now), &ctx(&cal, &wl, now));
        assert!(emits(&o).is_empty(), "{o:?}");
        assert_eq!(n.state, State::Accepted);
        assert_eq!(n.running().map(|x| x.kind), Some(DeadlineKind::Consultation));
        assert!(
            n.whitelist_note.as_deref().is_some_and(|w| w.contains(why)),
            "{:?}",
            n.whitelist_note
        );
    }
}

#[test]
fn a_disagreement_ends_it_and_no_decision_is_taken() {
    let cal = calendar();
    let mut n = at_consulting(&cal);
    let now = "2026-01-30T10:00:00+08:00";
    let o = apply(
        &mut n,
        &from_province(input("m4", "xp-reply", reply("DISAGREE", now), now), "36"),
        &ctx(&cal, &[], now),
    );
    assert_eq!(emits(&o).len(), 1, "the department is told");
    assert_eq!(n.state, State::Refused);
    assert!(n.running().is_none());
    let o = apply(
        &mut n,
        &input("m5", "xp-decision", decision_data("2026-03-01", "2027-02-28", "180"), now),
        &ctx(&cal, &[], now),
    );
    assert!(matches!(&o, Outcome::Refused { reason } if reason.contains("disagreed")), "{o:?}");
}

#[test]
fn a_late_reply_is_taken_and_counted_late() {
    let cal = calendar();
    let mut n = at_consulting(&cal);
    // Due Fri 6 February; arrives Tue 10 February: 2 working days late.
    let now = "2026-02-10T10:00:00+08:00";
    let o = apply(
        &mut n,
        &from_province(input("m4", "xp-reply", reply("AGREE", now), now), "36"),
        &ctx(&cal, &[], now),
    );
    assert!(
        matches!(&o, Outcome::Applied { note, .. } if note.contains("2 working days late")),
        "{o:?}"
    );
    let reply_deadline = n.deadlines.iter().find(|x| x.kind == DeadlineKind::Reply).expect("reply deadline");
    assert_eq!(reply_deadline.late_by, 2);
}

#[test]
fn decisions_beyond_the_caps_or_the_request_are_refused() {
    let cal = calendar();
    let mut n = at_consulting(&cal);
    let now = "2026-02-05T10:00:00+08:00";
    apply(
        &mut n,
        &from_province(input("m4", "xp-reply", reply("AGREE", now), now), "36"),
        &ctx(&cal, &[], now),
    );
    let c = ctx(&cal, &[], now);
    for (data, why) in [
        (decision_data("2026-03-01", "2027-03-31", "180"), "beyond 2027-02-28"),
        (decision_data("2026-02-01", "2026-12-31", "180"), "before the requested period"),
        (
            decision_data("2026-03-01", "2026-12-31", "200"),
            "200 t of 900-052-31 approved, but 180 t",
        ),
    ] {
        let o = apply(&mut n, &input("m5", "xp-decision", data, now), &c);
        assert!(matches!(&o, Outcome::Refused { reason } if reason.contains(why)), "{why}: {o:?}");
        assert_eq!(n.state, State::Replied);
    }
    // The licence expiry caps it too.
    let mut req = n.request.clone().expect("request");
    req["receiver"]["licence_valid_to"] = json!("2026-09-30");
    n.request = Some(req);
    let o = apply(
        &mut n,
        &input("m6", "xp-decision", decision_data("2026-03-01", "2026-12-31", "180"), now),
        &c,
    );
    assert!(
        matches!(&o, Outcome::Refused { reason } if reason.contains("licence expiry 2026-09-30")),
        "{o:?}"
    );
}

#[test]
fn a_reply_from_another_province_or_for_another_letter_is_refused() {
    let cal = calendar();
    let now = "2026-02-05T10:00:00+08:00";
    let mut n = at_consulting(&cal);
    let c = ctx(&cal, &[], now);
    let o = apply(&mut n, &from_province(input("m4", "xp-reply", reply("AGREE", now), now), "44"), &c);
    assert!(matches!(o, Outcome::Refused { .. }), "{o:?}");
    let o = apply(&mut n, &input("m4", "xp-reply", reply("AGREE", now), now), &c);
    assert!(matches!(o, Outcome::Refused { .. }), "a domestic system cannot reply: {o:?}");
    let mut wrong = reply("AGREE", now);
    wrong["reply_to"] = json!("闽环固商〔2026〕99号");
    let o = apply(&mut n, &from_province(input("m4", "xp-reply", wrong, now), "36"), &c);
    assert!(matches!(&o, Outcome::Refused { reason } if reason.contains("99号")), "{o:?}");
    assert_eq!(n.state, State::Consulting);
}

#[test]
fn requests_that_cannot_be_negotiated_are_refused_with_the_reason() {
    let cal = calendar();
    let now = "2026-01-20T10:00:05+08:00";
    let c = ctx(&cal, &[], now);
    let mut long = request_data(now);
    long["requested_period"]["to"] = json!("2027-03-01");
    let mut no_licence = request_data(now);
    no_licence["receiver"].as_object_mut().expect("receiver").remove("licence_valid_to");
    let mut inward = request_data(now);
    inward["receiver"]["province"] = json!("35");
    for (data, why) in [
        (long, "longer than 12 months"),
        (no_licence, "licence_valid_to"),
        (inward, "not a cross-province"),
    ] {
        let mut n = Negotiation::new(APP);
        let o = apply(&mut n, &input("m1", "xp-request", data, now), &c);
        assert!(matches!(&o, Outcome::Refused { reason } if reason.contains(why)), "{why}: {o:?}");
        assert_eq!(n.state, State::AwaitingRequest);
    }
}

fn inbound_consultation(letter_no: &str) -> Value {
    json!({"letter_no": letter_no, "application_no": "KSZY-360121-2026-0044", "from_province": "36", "to_province": "35",
           "preliminary_opinion": "经初审，拟同意转入福建。", "sent_at": "2026-03-02T09:00:00+08:00"})
}

fn fujian_reply(decision: &str) -> Value {
    let mut r = json!({"letter_no": "闽环固函〔2026〕7号", "reply_to": "赣环固商〔2026〕9号", "application_no": "KSZY-360121-2026-0044",
           "from_province": "35", "to_province": "36", "decision": decision, "replied_at": "2026-03-09T10:00:00+08:00"});
    if decision == "DISAGREE" {
        r["reasons"] = json!("接收单位处置能力不足。");
    }
    r
}

fn inbound_decision(basis: &str) -> Value {
    let mut d = json!({"decision_no": "赣环固转〔2026〕0031号", "application_no": "KSZY-360121-2026-0044", "basis": basis,
           "consignor": {"usci": "91360121MA35GH2W54", "name": "南昌某公司", "site_id": "S360121-0001"},
           "receiver": {"usci": "91350802MA2J9GFW8L", "name": "龙岩紫荆有色金属资源综合利用有限公司", "province": "35", "licence_no": "闽危废经字〔2024〕第0802-03号"},
           "lines": [{"waste_code": "321-024-48", "category": "HW48", "name": "冶炼废渣", "quantity_t": "500", "method_code": "R4"}],
           "valid_from": "2026-03-20", "valid_to": "2026-12-31", "decided_at": "2026-03-16T10:00:00+08:00",
           "notified_parties": [{"kind": "RECEIVING_ENVIRONMENT_DEPT", "name": "福建省生态环境厅", "province": "35"}]});
    if basis == "CONSULTATION" {
        d["reply_letter_no"] = json!("闽环固函〔2026〕7号");
    } else {
        d["whitelist_id"] = json!("GM-2026-017");
    }
    d
}

#[test]
fn consulted_by_another_province_this_province_replies_within_ten_working_days() {
    let cal = calendar();
    let app = "KSZY-360121-2026-0044";
    let mut n = Negotiation::new(app);
    let now = "2026-03-02T09:00:05+08:00";
    let c = ctx(&cal, &[], now);
    let letter = from_province(
        input("m1", "xp-consultation", inbound_consultation("赣环固商〔2026〕9号"), now),
        "36",
    );
    let o = apply(&mut n, &letter, &c);
    assert_eq!(emits(&o).len(), 1, "the department is told: {o:?}");
    assert_eq!((n.role, n.state), (Role::Receiving, State::Consulted));
    // Mon 2 March 2026 + 10 working days: Mon 16 March; Fujian must act.
    assert_eq!(
        n.running().map(|x| (x.kind, x.due, x.responsible.clone())),
        Some((DeadlineKind::Reply, d("2026-03-16"), "350000".to_string()))
    );
    // The department may not treat it as its own application.
    let o = apply(
        &mut n,
        &input("m2", "xp-acceptance", json!({"application_no": app, "outcome": "ACCEPTED"}), now),
        &c,
    );
    assert!(matches!(o, Outcome::Refused { .. }), "{o:?}");
    // The department's reply goes back, signed by the letters connector.
    let later = "2026-03-09T10:00:00+08:00";
    let o = apply(
        &mut n,
        &input("m3", "xp-reply", fujian_reply("AGREE"), later),
        &ctx(&cal, &[], later),
    );
    let sent = emits(&o);
    assert_eq!((sent.len(), sent[0].sender.as_str()), (1, "provincial"), "{o:?}");
    assert_eq!(n.state, State::Answered);
    assert_eq!(n.deadlines[0].late_by, 0);
    // The same reply again is a duplicate.
    let o = apply(
        &mut n,
        &input("m4", "xp-reply", fujian_reply("AGREE"), later),
        &ctx(&cal, &[], later),
    );
    assert!(matches!(o, Outcome::Duplicate { .. }), "{o:?}");
    // Jiangxi decides.
    let o = apply(
        &mut n,
        &from_province(input("m5", "xp-decision", inbound_decision("CONSULTATION"), later), "36"),
        &ctx(&cal, &[], later),
    );
    assert!(is_applied(&o), "{o:?}");
    assert_eq!(n.state, State::Decided);
    assert_eq!(n.decision.as_ref().map(|x| x.issued_by.as_str()), Some("province 36"));
}

#[test]
fn after_this_province_disagrees_the_sending_province_cannot_decide() {
    let cal = calendar();
    let now = "2026-03-02T09:00:05+08:00";
    let c = ctx(&cal, &[], now);
    let mut n = Negotiation::new("KSZY-360121-2026-0044");
    apply(
        &mut n,
        &from_province(
            input("m1", "xp-consultation", inbound_consultation("赣环固商〔2026〕9号"), now),
            "36",
        ),
        &c,
    );
    apply(&mut n, &input("m2", "xp-reply", fujian_reply("DISAGREE"), now), &c);
    assert_eq!(n.state, State::Refused);
    let o = apply(
        &mut n,
        &from_province(input("m3", "xp-decision", inbound_decision("CONSULTATION"), now), "36"),
        &c,
    );
    assert!(matches!(&o, Outcome::Refused { reason } if reason.contains("disagreed")), "{o:?}");
}

#[test]
fn a_province_cannot_consult_on_this_provinces_own_application_nor_reply_for_another() {
    let cal = calendar();
    let now = "2026-01-24T09:00:00+08:00";
    let mut n = at_consulting(&cal);
    let mut letter = inbound_consultation("赣环固商〔2026〕9号");
    letter["application_no"] = json!(APP);
    let o = apply(
        &mut n,
        &from_province(input("x1", "xp-consultation", letter, now), "36"),
        &ctx(&cal, &[], now),
    );
    assert!(
        matches!(&o, Outcome::Refused { reason } if reason.contains("this province's own")),
        "{o:?}"
    );
    // Guangdong cannot pass off a consultation as Jiangxi's.
    let mut fresh = Negotiation::new("KSZY-360121-2026-0044");
    let o = apply(
        &mut fresh,
        &from_province(
            input("x2", "xp-consultation", inbound_consultation("赣环固商〔2026〕9号"), now),
            "44",
        ),
        &ctx(&cal, &[], now),
    );
    assert!(matches!(o, Outcome::Refused { .. }), "{o:?}");
    assert_eq!(fresh.state, State::AwaitingRequest);
}

#[test]
fn a_whitelist_decision_from_the_sending_province_is_recorded_without_consultation() {
    let cal = calendar();
    let now = "2026-03-16T10:00:05+08:00";
    let mut n = Negotiation::new("KSZY-360121-2026-0044");
    let o = apply(
        &mut n,
        &from_province(input("m1", "xp-decision", inbound_decision("WHITELIST"), now), "36"),
        &ctx(&cal, &[], now),
    );
    assert!(is_applied(&o), "{o:?}");
    assert_eq!((n.role, n.state), (Role::Receiving, State::Decided));
    assert_eq!(n.decision.as_ref().map(|x| x.basis), Some(Basis::Whitelist));
}

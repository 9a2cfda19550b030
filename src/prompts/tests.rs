//! The prompts the hub builds pass its own catalogue, say what was refused
//! and where, and are raised only when due.

use std::path::Path;

use serde_json::{Value, json};

use super::rejection::{Refused, prompt_for};
use super::*;
use crate::error::{ApiError, FieldError};
use crate::ingest::auth::Partner;
use crate::partners::Status;
use crate::schema::Catalogue;

fn catalogue() -> Catalogue {
    Catalogue::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/canonical")).expect("shipped schemas")
}

fn partner() -> Partner {
    Partner {
        name: "park-xiamen-huli".into(),
        sources: vec!["urn:wastehub:partner:park-xiamen-huli".into()],
        mappings: Default::default(),
        status: Status::Live,
        allowed_types: Some(vec!["ledger-entry".into()]),
        jurisdiction: Some("350206".into()),
        signing: None,
        registered: true,
        division_code: Some("350206".into()),
    }
}

fn refused_ledger() -> Value {
    json!({
        "specversion": "1.0", "id": "L-2", "source": "urn:wastehub:partner:park-xiamen-huli",
        "type": "ledger-entry", "subject": "ledger:HWCS20260304002", "time": "2026-03-04T10:00:00+08:00",
        "jurisdiction": "350206",
        "data": {"unit": {"usci": "91350206MA2XK7P16K"}, "quantity": "lots"},
    })
}

fn invalid(errors: &[(&str, &str)]) -> ApiError {
    ApiError::validation(
        errors
            .iter()
            .map(|(p, m)| FieldError {
                path: (*p).into(),
                message: (*m).into(),
            })
            .collect(),
    )
}

fn at() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-03-04T10:20:00+08:00").unwrap()
}

#[test]
fn a_rejection_names_the_partner_the_unit_the_event_and_the_fields() {
    let e = invalid(&[("/data/quantity", "\"lots\" is not of type \"object\""), ("/subject", "too long")]);
    let p = prompt_for(&partner(), &Refused::event(&refused_ledger(), None), &e).expect("a rejection");
    let ev = event(&p, at());
    assert_eq!(catalogue().validate("prompt", &ev["data"], ""), Ok(()), "{ev}");
    assert_eq!(ev["source"], HUB_SOURCE);
    assert_eq!(ev["subject"], "ledger:HWCS20260304002");
    assert_eq!(ev["jurisdiction"], "350206");
    let d = &ev["data"];
    assert_eq!(d["kind"], "REJECTION");
    assert_eq!(d["rule_id"], "HUB_VALIDATION_FAILED");
    assert_eq!(d["subject"], json!({"type": "ledger-entry", "id": "HWCS20260304002"}));
    assert_eq!(
        d["recipients"],
        json!([{"system": "urn:wastehub:partner:park-xiamen-huli"}, {"usci": "91350206MA2XK7P16K"}])
    );
    assert_eq!(
        d["reply_to"],
        json!({"event_source": "urn:wastehub:partner:park-xiamen-huli", "event_id": "L-2"})
    );
    assert_eq!(
        d["field_errors"][0],
        json!({"path": "/quantity", "message_zh": "\"lots\" is not of type \"object\""})
    );
    assert_eq!(d["field_errors"][1], json!({"path": "", "message_zh": "/subject: too long"}));
    assert!(d["notification_id"].as_str().unwrap().starts_with("RJ-"));
}

#[test]
fn the_same_refusal_gives_the_same_prompt_and_another_a_new_one() {
    let refused = Refused::event(&refused_ledger(), None);
    let e = invalid(&[("/data/quantity", "bad")]);
    let a = event(&prompt_for(&partner(), &refused, &e).unwrap(), at());
    let b = event(&prompt_for(&partner(), &refused, &e).unwrap(), at());
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["data"]["notification_id"], b["data"]["notification_id"]);
    let c = event(&prompt_for(&partner(), &refused, &invalid(&[("/data/unit", "bad")])).unwrap(), at());
    assert_ne!(a["id"], c["id"]);
}

#[test]
fn an_unreadable_document_is_named_by_its_digest() {
    let sha = "3f9a1c0b2e4d5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c";
    let mut e = ApiError::bad_request("malformed_document", "the document cannot be read");
    e.errors = vec![FieldError {
        path: String::new(),
        message: "line 3, column 7: unexpected end".into(),
    }];
    let p = prompt_for(&partner(), &Refused::document("ledger-entry", sha), &e).expect("a rejection");
    let ev = event(&p, at());
    assert_eq!(catalogue().validate("prompt", &ev["data"], ""), Ok(()), "{ev}");
    assert_eq!(ev["subject"], "partner:park-xiamen-huli");
    assert_eq!(ev["data"]["subject"]["id"], "sha256-3f9a1c0b2e4d5f6a");
    assert_eq!(ev["data"]["reply_to"]["document_sha256"], sha);
    assert_eq!(ev["data"]["recipients"].as_array().unwrap().len(), 1, "no unit known");
}

#[test]
fn refusals_without_a_data_problem_or_about_prompts_raise_nothing() {
    let refused = Refused::event(&refused_ledger(), None);
    assert!(prompt_for(&partner(), &refused, &ApiError::unauthorized("no key")).is_none());
    assert!(prompt_for(&partner(), &refused, &ApiError::too_large("big")).is_none());
    let mut prompt = refused_ledger();
    prompt["type"] = json!("prompt");
    let e = invalid(&[("/data/recipients", "bad")]);
    assert!(
        prompt_for(&partner(), &Refused::event(&prompt, None), &e).is_none(),
        "never a prompt about a prompt"
    );
    let mut no_id = refused_ledger();
    no_id.as_object_mut().unwrap().remove("id");
    assert!(prompt_for(&partner(), &Refused::event(&no_id, None), &e).is_none());
}

#[test]
fn what_cannot_be_trusted_is_left_out_or_replaced() {
    let mut odd = refused_ledger();
    odd["type"] = json!("Ledger Entry");
    odd["jurisdiction"] = json!("350102");
    odd["data"]["unit"]["usci"] = json!("91350206MA2XK7P16X");
    let e = ApiError::forbidden("jurisdiction_not_allowed", "outside 350206");
    let ev = event(&prompt_for(&partner(), &Refused::event(&odd, None), &e).unwrap(), at());
    assert_eq!(catalogue().validate("prompt", &ev["data"], ""), Ok(()), "{ev}");
    assert_eq!(ev["data"]["subject"]["type"], "message");
    assert_eq!(ev["jurisdiction"], "350206", "the partner's own division, not one outside it");
    assert_eq!(
        ev["data"]["recipients"].as_array().unwrap().len(),
        1,
        "a USCI failing its check is no recipient"
    );
    assert_eq!(ev["data"]["field_errors"][0]["message_zh"], "outside 350206");
}

//! Reading one CloudEvents 1.0 event in structured JSON mode into an
//! [`Envelope`]: required attributes, their syntax, and the hub's limits.
//! Pure; every problem becomes a [`FieldError`] with a JSON Pointer.

use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::model::Envelope;

/// Longest accepted `id`, `source` and `subject` (bytes).
pub const MAX_ATTRIBUTE_LEN: usize = 256;

/// Checks the envelope and returns it, or every problem found.
pub fn parse(value: Value) -> Result<Envelope, Vec<FieldError>> {
    let Value::Object(raw) = value else {
        return Err(vec![err("", "an event must be a JSON object")]);
    };
    let mut errors = Vec::new();
    match raw.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(_) => errors.push(err("/specversion", "specversion must be \"1.0\"")),
        None => errors.push(err("/specversion", "specversion is required")),
    }
    let id = text(&raw, "id", &mut errors);
    let source = text(&raw, "source", &mut errors);
    let ty = text(&raw, "type", &mut errors);
    let subject = text(&raw, "subject", &mut errors);
    let time = text(&raw, "time", &mut errors);
    if !time.is_empty() && chrono::DateTime::parse_from_rfc3339(&time).is_err() {
        errors.push(err(
            "/time",
            "time must be an RFC 3339 timestamp with an offset, e.g. 2026-11-29T08:00:00+08:00",
        ));
    }
    let jurisdiction = text(&raw, "jurisdiction", &mut errors);
    let six_digits = jurisdiction.len() == 6 && jurisdiction.bytes().all(|b| b.is_ascii_digit());
    if !jurisdiction.is_empty() && !six_digits {
        errors.push(err("/jurisdiction", "jurisdiction must be a 6-digit division code (GB/T 2260)"));
    }
    match raw.get("data") {
        Some(Value::Object(_)) => {}
        Some(_) => errors.push(err("/data", "data must be a JSON object")),
        None => errors.push(err("/data", "data is required")),
    }
    if let Some(ct) = raw.get("datacontenttype")
        && ct.as_str().is_none_or(|c| !c.starts_with("application/json"))
    {
        errors.push(err("/datacontenttype", "datacontenttype, when given, must be application/json"));
    }
    if raw.contains_key("data_base64") {
        errors.push(err("/data_base64", "binary data is not accepted; send JSON in data"));
    }
    // `sourceid` keeps the sender's id, `sourcesubject` the sender's subject
    // where the hub links it to another (`super::subject`).
    for reserved in ["sourceid", "sourcesubject"] {
        if raw.contains_key(reserved) {
            errors.push(err(&format!("/{reserved}"), "this attribute is set by the hub"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Envelope {
        id,
        source,
        r#type: ty,
        subject,
        time,
        jurisdiction,
        raw,
    })
}

fn text(raw: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> String {
    match raw.get(key) {
        Some(Value::String(s)) if s.is_empty() => errors.push(err(&format!("/{key}"), &format!("{key} must not be empty"))),
        Some(Value::String(s)) if s.len() > MAX_ATTRIBUTE_LEN => {
            errors.push(err(&format!("/{key}"), &format!("{key} is longer than {MAX_ATTRIBUTE_LEN} bytes")))
        }
        Some(Value::String(s)) => return s.clone(),
        Some(_) => errors.push(err(&format!("/{key}"), &format!("{key} must be a string"))),
        None => errors.push(err(&format!("/{key}"), &format!("{key} is required"))),
    }
    String::new()
}

fn err(path: &str, message: &str) -> FieldError {
    FieldError {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// The canonical form the hub stores and sends: the event as received, with
/// `id` replaced by the hub's message id and the sender's id kept in the
/// `sourceid` extension (so `source` + `sourceid` still identify the original).
pub fn canonical(env: &Envelope, message_id: &str) -> Value {
    let mut obj = env.raw.clone();
    obj.insert("id".into(), Value::String(message_id.to_string()));
    obj.insert("sourceid".into(), Value::String(env.id.clone()));
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"specversion": "1.0", "id": "e-1", "source": "urn:x", "type": "ledger-entry",
               "subject": "ledger:B1", "time": "2026-11-29T08:00:00+08:00", "jurisdiction": "350206", "data": {}})
    }

    #[test]
    fn accepts_a_complete_event() {
        let env = parse(good()).unwrap();
        assert_eq!(env.subject, "ledger:B1");
        assert_eq!(env.jurisdiction, "350206");
    }

    #[test]
    fn names_every_missing_or_bad_attribute() {
        let mut v = good();
        let o = v.as_object_mut().unwrap();
        o.remove("subject");
        o.insert("time".into(), json!("yesterday"));
        o.insert("jurisdiction".into(), json!("35"));
        o.insert("specversion".into(), json!("0.3"));
        let paths: Vec<String> = parse(v).unwrap_err().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, vec!["/specversion", "/subject", "/time", "/jurisdiction"]);
    }

    #[test]
    fn refuses_non_objects_and_hub_attributes() {
        assert_eq!(parse(json!([1])).unwrap_err()[0].path, "");
        let mut v = good();
        v["sourceid"] = json!("x");
        assert_eq!(parse(v).unwrap_err()[0].path, "/sourceid");
    }

    #[test]
    fn canonical_form_keeps_the_sender_id() {
        let env = parse(good()).unwrap();
        let c = canonical(&env, "msg_1");
        assert_eq!(c["id"], "msg_1");
        assert_eq!(c["sourceid"], "e-1");
    }
}

//! Sample canonical events built from the shipped valid examples.

use serde_json::{Value, json};

fn example(ty: &str, file: &str) -> Value {
    let p = super::repo().join("schemas/canonical").join(ty).join("examples/valid").join(file);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("example")).expect("json")
}

/// A `manifest-created` event for manifest serial `n` (subject `manifest:<no>`).
pub fn manifest(n: u32, event_id: &str) -> Value {
    let mut data = example("manifest-created", "in-city-licensed-two-lines.json");
    let no = format!("20263502{:06}", n % 1_000_000);
    data["manifest_no"] = json!(no);
    envelope("manifest-created", event_id, &format!("manifest:{no}"), data)
}

/// A `ledger-entry` event.
pub fn ledger(event_id: &str) -> Value {
    let data = example("ledger-entry", "generation-drums-counted.json");
    envelope("ledger-entry", event_id, "ledger:HWCS20260304002", data)
}

/// A CloudEvent from the test partner.
pub fn envelope(ty: &str, id: &str, subject: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "urn:test:cell",
        "type": ty,
        "subject": subject,
        "time": "2026-11-29T08:00:00+08:00",
        "jurisdiction": "350206",
        "datacontenttype": "application/json",
        "data": data,
    })
}

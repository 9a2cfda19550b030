//! Subject linking for device messages: a weighing record or a video-AI
//! alert that names a manifest or a ledger batch takes that record's
//! subject (`manifest:<no>`, `ledger:<batch code>`, the subjects manifests
//! and ledger entries carry), so it is ordered and routed with it; an alert
//! that names neither is ordered per camera (`camera:<camera_id>`).
//!
//! The hub sets the subject rather than checking the sender's: the ordering
//! key is the hub's (a scale or a camera platform cannot be expected to
//! know it), and a record linked to a manifest must never be ordered apart
//! from it because a sender spelled it otherwise. When the sender's subject
//! differs, it is kept in the `sourcesubject` extension, as `sourceid`
//! keeps the sender's id. Pure.

use serde_json::Value;

use crate::model::Envelope;

/// The message types whose subject the hub derives from the body.
pub const LINKED_TYPES: [&str; 2] = ["weighing", "video-ai-alert"];

/// The subject a body of `message_type` links to, if the type is one the
/// hub links. A manifest wins over a batch: the manifest is the transfer
/// across units that the regulators follow; a batch stays inside one unit.
pub fn linked(message_type: &str, data: &Value) -> Option<String> {
    if !LINKED_TYPES.contains(&message_type) {
        return None;
    }
    let text = |key: &str| data.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(no) = text("manifest_no") {
        return Some(format!("manifest:{no}"));
    }
    if let Some(batch) = text("batch_code") {
        return Some(format!("ledger:{batch}"));
    }
    text("camera_id").map(|c| format!("camera:{c}"))
}

/// Sets the linked subject on a checked event, keeping a different one the
/// sender gave as `sourcesubject`.
pub fn apply(env: &mut Envelope) {
    let Some(subject) = linked(&env.r#type, env.data()) else { return };
    if subject == env.subject {
        return;
    }
    env.raw
        .insert("sourcesubject".into(), Value::String(std::mem::take(&mut env.subject)));
    env.raw.insert("subject".into(), Value::String(subject.clone()));
    env.subject = subject;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manifests_win_over_batches_and_cameras_stand_alone() {
        let both = json!({"manifest_no": "20263502000125", "batch_code": "HWCS1", "camera_id": "c"});
        assert_eq!(linked("video-ai-alert", &both).as_deref(), Some("manifest:20263502000125"));
        assert_eq!(linked("weighing", &json!({"batch_code": "HWCS1"})).as_deref(), Some("ledger:HWCS1"));
        assert_eq!(
            linked("video-ai-alert", &json!({"camera_id": "3502"})).as_deref(),
            Some("camera:3502")
        );
        assert_eq!(
            linked("ledger-entry", &json!({"batch_code": "HWCS1"})),
            None,
            "other types keep theirs"
        );
    }

    #[test]
    fn a_different_sender_subject_is_kept_aside() {
        let raw = json!({"subject": "cam-07", "type": "video-ai-alert", "data": {"camera_id": "c7", "batch_code": "B1"}});
        let mut env = Envelope {
            id: "1".into(),
            source: "s".into(),
            r#type: "video-ai-alert".into(),
            subject: "cam-07".into(),
            time: "t".into(),
            jurisdiction: "350206".into(),
            raw: raw.as_object().cloned().unwrap_or_default(),
        };
        apply(&mut env);
        assert_eq!(env.subject, "ledger:B1");
        assert_eq!(env.raw["subject"], "ledger:B1");
        assert_eq!(env.raw["sourcesubject"], "cam-07");
        // Applying again changes nothing: the subject is already the linked one.
        apply(&mut env);
        assert_eq!(env.raw["sourcesubject"], "cam-07");
    }
}

//! The route to a partner's callback: a `prompt` (not a `REPLY`) addressed
//! to exactly one registered partner (recipient `system` =
//! `urn:wastehub:partner:<id>`) goes to the built-in destination
//! [`super::CALLBACK_DESTINATION`] when that partner is live and registered
//! a `callback_url`. Otherwise it goes to no callback: a sandbox partner
//! gets none (its answers already carry its errors), a partner without a
//! callback has it stored and visible in the trace only. A prompt for
//! several partners is not sent to any of their callbacks (one delivery
//! reaches one address): raise one per partner.
//!
//! Decided when the prompt is committed, from the registry in the store
//! (every hub process sees the same); the address itself is read again at
//! each attempt, so a changed callback takes effect for waiting prompts.

use serde_json::Value;

use super::{CALLBACK_DESTINATION, PARTNER_SOURCE_PREFIX};
use crate::app::AppState;
use crate::model::Envelope;
use crate::partners::Status;
use crate::store::StoreError;

/// The registered partner a prompt body (`data`) is addressed to: the id
/// of its only `system` recipient under `urn:wastehub:partner:`. Pure.
pub fn partner_recipient(data: &Value) -> Option<&str> {
    if data.get("kind").and_then(Value::as_str) == Some("REPLY") {
        return None;
    }
    let mut partners = data
        .get("recipients")?
        .as_array()?
        .iter()
        .filter_map(|r| r.get("system")?.as_str()?.strip_prefix(PARTNER_SOURCE_PREFIX))
        .filter(|id| !id.is_empty());
    let first = partners.next()?;
    partners.next().is_none().then_some(first)
}

/// [`CALLBACK_DESTINATION`] when `env` is a prompt for one live registered
/// partner with a callback address.
pub async fn callback(app: &AppState, env: &Envelope) -> Result<Option<&'static str>, StoreError> {
    if env.r#type != "prompt" {
        return Ok(None);
    }
    let Some(id) = partner_recipient(env.data()) else { return Ok(None) };
    let Some(row) = app.store.partner(id).await? else { return Ok(None) };
    let live = Status::parse(&row.status) == Status::Live;
    let has_callback = row.callback_url.as_deref().is_some_and(|u| !u.is_empty());
    Ok((live && has_callback).then_some(CALLBACK_DESTINATION))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_partner_system_recipient_is_found() {
        let to = |recipients: Value| json!({"kind": "REJECTION", "recipients": recipients});
        let one = to(json!([{"system": "urn:wastehub:partner:park-a"}, {"usci": "91350206MA2XK7P16K"}]));
        assert_eq!(partner_recipient(&one), Some("park-a"));
        let two = to(json!([{"system": "urn:wastehub:partner:park-a"}, {"system": "urn:wastehub:partner:park-b"}]));
        assert_eq!(partner_recipient(&two), None, "one delivery reaches one address");
        let other = to(json!([{"system": "urn:fj:cell:xm-haicang"}]));
        assert_eq!(partner_recipient(&other), None, "connector partners have no registry callback");
        let reply = json!({"kind": "REPLY", "recipients": [{"system": "urn:wastehub:partner:park-a"}]});
        assert_eq!(partner_recipient(&reply), None);
        assert_eq!(partner_recipient(&json!({"recipients": {"system": "x"}})), None);
    }
}

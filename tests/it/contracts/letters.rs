//! Examples of a contract of signed letters (`letters` connectors, the
//! province hubs: `docs/cross-province.md`). Keys are fresh per run, so an
//! example cannot carry a signature: its letters name placeholders that are
//! filled in at replay time with the stage's keys.
//!
//! - In a letter the harness sends (an answer-only wire, with the hub's key
//!   for the partner; a from-partner wire, with the partner's key),
//!   `sigvalue` = [`SIGNED_AT_REPLAY`] makes the harness sign the letter;
//!   `sigalg` or `sigkeyid` = [`SIGNED_AT_REPLAY`] beside a written
//!   `sigvalue` are set from the key and the written value kept: a letter
//!   whose signature does not verify.
//! - In every file compared, [`HUB_KEY_ID`] and [`PARTNER_KEY_ID`] stand
//!   for the key ids of the run (a receipt's `sigkeyid`, a refusal's reason).
//! - A from-partner letter is posted to `POST /api/v1/xp/letters` (no API
//!   key: the signature is the authentication); the hub must answer 200 with
//!   a receipt that verifies with its key for the partner and names the
//!   letter, and store the event the example shows.

use serde_json::Value;
use wastehub::letters::keys::PartnerKeys;
use wastehub::letters::{PrivateKey, Receipt, Verdict, sign_letter};

use super::Stage;
use super::simulators::LetterPair;
use crate::support::exchange::Example;
use crate::support::normalise;

/// Signature attributes with this value are set at replay time.
pub(super) const SIGNED_AT_REPLAY: &str = "<signed at replay>";
/// Stands for the key id of the hub's key for the partner.
pub(super) const HUB_KEY_ID: &str = "<hub key id>";
/// Stands for the key id of the partner's key.
pub(super) const PARTNER_KEY_ID: &str = "<partner key id>";

/// Whether `wire` is a letter (it carries `sigvalue`).
pub(super) fn is_letter(wire: &[u8]) -> bool {
    serde_json::from_slice::<Value>(wire).is_ok_and(|v| v.get("sigvalue").is_some())
}

/// The keys of the `letters` connector that plays the example's partner.
fn keys<'a>(stage: &'a Stage, ex: &Example) -> Option<&'a LetterPair> {
    stage.sims.plays(&ex.partner).and_then(|c| stage.sims.letter_keys(c))
}

/// `bytes` of a file to compare, with the key ids of the run in place of
/// [`HUB_KEY_ID`] and [`PARTNER_KEY_ID`]; as they are for a contract
/// without letters.
pub(super) fn expected(stage: &Stage, ex: &Example, bytes: Vec<u8>) -> Vec<u8> {
    let Some(k) = keys(stage, ex) else { return bytes };
    let Ok(text) = String::from_utf8(bytes.clone()) else {
        return bytes;
    };
    text.replace(HUB_KEY_ID, k.hub().public().key_id())
        .replace(PARTNER_KEY_ID, k.partner().public().key_id())
        .into_bytes()
}

/// Which side signs a letter the harness sends.
#[derive(Clone, Copy)]
pub(super) enum Signer {
    /// The hub, with its key for the partner (a request to the partner).
    Hub,
    /// The partner, with its own key (a letter to the hub).
    Partner,
}

/// The wire as sent: signed (or given its key attributes) where it says
/// [`SIGNED_AT_REPLAY`]; unchanged when it is no letter.
pub(super) fn prepare(stage: &Stage, ex: &Example, wire: Vec<u8>, signer: Signer) -> Result<Vec<u8>, String> {
    if !is_letter(&wire) {
        return Ok(wire);
    }
    let k = keys(stage, ex).ok_or_else(|| format!("no simulator plays a letters partner of contract {}", ex.partner))?;
    let key = match signer {
        Signer::Hub => k.hub(),
        Signer::Partner => k.partner(),
    };
    let letter: Value = serde_json::from_slice(&wire).map_err(|e| format!("{}: {e}", ex.wire.display()))?;
    serde_json::to_vec(&sign(letter, &key)?).map_err(|e| e.to_string())
}

fn sign(mut letter: Value, key: &PrivateKey) -> Result<Value, String> {
    let placeholder = |v: &Value, k: &str| v.get(k).and_then(Value::as_str) == Some(SIGNED_AT_REPLAY);
    if placeholder(&letter, "sigvalue") {
        if let Some(o) = letter.as_object_mut() {
            for k in ["sigalg", "sigkeyid", "sigvalue"] {
                o.remove(k);
            }
        }
        return sign_letter(&letter, key).map_err(|e| format!("the letter cannot be signed: {e}"));
    }
    let values = [("sigalg", key.public().algorithm().id()), ("sigkeyid", key.public().key_id())];
    for (k, v) in values {
        if placeholder(&letter, k) {
            letter[k] = Value::String(v.to_string());
        }
    }
    Ok(letter)
}

/// Checks that a letter the hub sent verifies with its key for the partner.
pub(super) fn check_signed_by_hub(stage: &Stage, ex: &Example, sent: &str) -> Result<(), String> {
    let Some(k) = keys(stage, ex) else { return Ok(()) };
    let letter: Value = serde_json::from_str(sent).map_err(|e| format!("the letter sent is not JSON: {e}"))?;
    let hub = PartnerKeys::new(vec![k.hub().public().clone()]).map_err(|e| e.to_string())?;
    wastehub::letters::verify_letter(&letter, &hub)
        .map(|_| ())
        .map_err(|e| format!("the letter the partner received does not verify: {e}"))
}

/// A from-partner letter: signed by the partner, posted to the letters
/// endpoint, receipted by the hub, stored as the example's event.
pub(super) async fn from_partner(stage: &Stage, ex: &Example) -> Result<(), String> {
    let wire = prepare(stage, ex, super::read(&ex.wire)?, Signer::Partner)?;
    let letter: Value = serde_json::from_slice(&wire).map_err(|e| e.to_string())?;
    let source = letter["source"].as_str().unwrap_or_default().to_string();
    let ty = ex.message_type.clone().unwrap_or_default();
    if letter["type"] != ty.as_str() {
        return Err(format!("the letter's type is {}, the example says {ty}", letter["type"]));
    }
    let before = stage.messages(&source, &ty).await;
    let r = stage
        .app
        .client
        .post(format!("{}{}", stage.app.base, wastehub::sim::province::HUB_LETTERS_PATH))
        .header("content-type", "application/cloudevents+json")
        .body(wire)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let answer = r.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("the hub answered {status} to the letter (200 expected): {answer}"));
    }
    let k = keys(stage, ex).ok_or("no keys for the partner")?;
    let hub = PartnerKeys::new(vec![k.hub().public().clone()]).map_err(|e| e.to_string())?;
    let receipt: Value = serde_json::from_str(&answer).map_err(|e| format!("the hub's answer is not a receipt: {e}: {answer}"))?;
    let checked = Receipt::check(&receipt, &letter, &hub).map_err(|e| format!("the hub's receipt does not hold: {e}"))?;
    if checked.verdict != Verdict::Accepted {
        return Err(format!("the hub's receipt says {:?}: {:?}", checked.verdict, checked.reason));
    }
    let expected_path = ex.canonical.as_ref().ok_or("no canonical event")?;
    let expected = super::read_json_bytes(expected_path, expected(stage, ex, super::read(expected_path)?))?;
    let stored = super::new_events(stage, &source, &ty, &before, &expected).await?;
    normalise::compare_json(expected, stored, &ex.ignore)
        .map_err(|d| format!("the stored event differs from {}:\n      {d}", super::canonical_name(ex)))
}

//! Signed receipts: the receiving hub's answer to a letter, kept by the
//! sender as evidence. A receipt is itself a signed letter (a CloudEvent of
//! type `letter-receipt`) whose `data` names the letter by id, source and
//! the digest of its canonical form, and says when it arrived and whether
//! it was accepted or refused (with the reason).

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::LetterError;
use super::canonical;
use super::keys::{Algorithm, PartnerKeys, PrivateKey};
use super::sign::{SIGALG, letter_digest, sign_letter, verify_letter};

/// CloudEvent `type` of a receipt.
pub const RECEIPT_TYPE: &str = "letter-receipt";

/// Longest refusal reason carried (longer ones are cut).
pub const MAX_REASON_CHARS: usize = 1000;

/// Accepted or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The letter verified and was taken in.
    Accepted,
    /// The letter was refused; `reason` says why.
    Refused,
}

/// The `data` of a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// `id` of the letter.
    pub letter_id: String,
    /// `source` of the letter.
    pub letter_source: String,
    /// `sm3` (for `sm2-sm3` letters) or `sha256`.
    pub digest_alg: String,
    /// Lower-case hex digest of the letter's canonical form.
    pub digest: String,
    /// When the receiving hub received the letter (RFC 3339).
    pub received_at: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it was refused (absent when accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Receipt {
    /// Describes `letter` as received at `received_at`. The digest algorithm
    /// follows the letter's `sigalg` (SHA-256 when absent or unknown, so an
    /// unsigned letter can still be refused with a receipt).
    pub fn for_letter(
        letter: &Value,
        received_at: DateTime<FixedOffset>,
        verdict: Verdict,
        reason: Option<String>,
    ) -> Result<Self, LetterError> {
        let alg = letter.get(SIGALG).and_then(Value::as_str).and_then(|s| Algorithm::parse(s).ok());
        let (digest_alg, digest) = letter_digest(alg.unwrap_or(Algorithm::Ed25519), &canonical::letter_bytes(letter)?);
        let text = |name: &str| letter.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(Self {
            letter_id: text("id"),
            letter_source: text("source"),
            digest_alg: digest_alg.into(),
            digest,
            received_at: received_at.to_rfc3339(),
            verdict,
            reason: reason.map(|r| r.chars().take(MAX_REASON_CHARS).collect()),
        })
    }

    /// The receipt as a CloudEvent from `receiver_source`, signed with `key`.
    pub fn sign(&self, id: &str, receiver_source: &str, key: &PrivateKey) -> Result<Value, LetterError> {
        let data = serde_json::to_value(self).map_err(|e| LetterError::Malformed(e.to_string()))?;
        let event = json!({
            "specversion": "1.0",
            "id": id,
            "source": receiver_source,
            "type": RECEIPT_TYPE,
            "time": self.received_at,
            "datacontenttype": "application/json",
            "data": data,
        });
        sign_letter(&event, key)
    }

    /// Checks a receipt the sender got back for `letter`: the receipt's
    /// signature against the receiver's keys, and that it names this very
    /// letter (id, source, digest). Returns its content.
    pub fn check(receipt: &Value, letter: &Value, receiver_keys: &PartnerKeys) -> Result<Self, LetterError> {
        verify_letter(receipt, receiver_keys)?;
        if receipt.get("type").and_then(Value::as_str) != Some(RECEIPT_TYPE) {
            return Err(LetterError::Malformed(format!("a receipt has type `{RECEIPT_TYPE}`")));
        }
        let data = receipt
            .get("data")
            .cloned()
            .ok_or_else(|| LetterError::Malformed("receipt has no data".into()))?;
        let r: Receipt = serde_json::from_value(data).map_err(|e| LetterError::Malformed(format!("receipt data: {e}")))?;
        let expected = Self::for_letter(letter, Default::default(), r.verdict, None)?;
        if r.letter_id != expected.letter_id || r.letter_source != expected.letter_source {
            return Err(LetterError::ReceiptMismatch(format!(
                "it names letter {} from {}, not {} from {}",
                r.letter_id, r.letter_source, expected.letter_id, expected.letter_source
            )));
        }
        if r.digest_alg != expected.digest_alg || r.digest != expected.digest {
            return Err(LetterError::ReceiptMismatch(format!(
                "digest {}:{} differs from the letter's {}:{}",
                r.digest_alg, r.digest, expected.digest_alg, expected.digest
            )));
        }
        DateTime::parse_from_rfc3339(&r.received_at)
            .map_err(|e| LetterError::Malformed(format!("received_at `{}`: {e}", r.received_at)))?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-29T10:00:05+08:00").unwrap()
    }

    #[test]
    fn accepted_and_refused_receipts_round_trip() {
        let (sender, _) = PrivateKey::generate(Algorithm::Sm2Sm3).unwrap();
        let (receiver, _) = PrivateKey::generate(Algorithm::Ed25519).unwrap();
        let receiver_keys = PartnerKeys::new(vec![receiver.public().clone()]).unwrap();
        let letter = sign_letter(
            &json!({"specversion": "1.0", "id": "L1", "source": "urn:a", "type": "transfer-request", "data": {"q": "1"}}),
            &sender,
        )
        .unwrap();
        let r = Receipt::for_letter(&letter, at(), Verdict::Accepted, None).unwrap();
        assert_eq!(r.digest_alg, "sm3");
        let signed = r.sign("R1", "urn:b", &receiver).unwrap();
        assert_eq!(Receipt::check(&signed, &letter, &receiver_keys).unwrap(), r);

        let refused = Receipt::for_letter(&letter, at(), Verdict::Refused, Some("signature does not verify".into()))
            .unwrap()
            .sign("R2", "urn:b", &receiver)
            .unwrap();
        let back = Receipt::check(&refused, &letter, &receiver_keys).unwrap();
        assert_eq!(back.verdict, Verdict::Refused);
        assert_eq!(back.reason.as_deref(), Some("signature does not verify"));
    }

    #[test]
    fn a_receipt_for_another_letter_or_tampered_is_refused() {
        let (sender, _) = PrivateKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let (receiver, _) = PrivateKey::generate(Algorithm::Sm2Sm3).unwrap();
        let keys = PartnerKeys::new(vec![receiver.public().clone()]).unwrap();
        let letter = sign_letter(&json!({"id": "L1", "source": "urn:a", "data": {"q": "1"}}), &sender).unwrap();
        let other = sign_letter(&json!({"id": "L1", "source": "urn:a", "data": {"q": "2"}}), &sender).unwrap();
        let receipt = Receipt::for_letter(&letter, at(), Verdict::Accepted, None)
            .unwrap()
            .sign("R", "urn:b", &receiver)
            .unwrap();
        assert!(matches!(
            Receipt::check(&receipt, &other, &keys),
            Err(LetterError::ReceiptMismatch(_))
        ));
        let mut t = receipt.clone();
        t["data"]["verdict"] = json!("refused");
        assert!(matches!(Receipt::check(&t, &letter, &keys), Err(LetterError::BadSignature(_))));
        // Signed by someone other than the receiver.
        let forged = Receipt::for_letter(&letter, at(), Verdict::Accepted, None)
            .unwrap()
            .sign("R", "urn:b", &sender)
            .unwrap();
        assert!(matches!(Receipt::check(&forged, &letter, &keys), Err(LetterError::UnknownKeyId(_))));
    }
}

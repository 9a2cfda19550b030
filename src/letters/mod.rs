//! Signed letters between provincial hubs: the canonical byte form of a
//! CloudEvent, SM2/SM3, Ed25519 and ECDSA P-256 signatures carried as
//! CloudEvents extension attributes, partner public keys with rotation, and
//! signed receipts. `docs/cross-province.md` specifies the format for other
//! vendors; the test vectors under `tests/vectors/letters/` pin it.
//!
//! This module is the signing foundation only: the negotiation between
//! provinces (which letters, in which order) builds on it.

pub mod canonical;
pub mod keys;
pub mod receipt;
pub mod sign;

pub use keys::{Algorithm, PrivateKey, PublicKey};
pub use receipt::{Receipt, Verdict};
pub use sign::{sign_letter, verify_letter};

/// Largest letter (JSON text) accepted for signing or verification.
pub const MAX_LETTER_BYTES: usize = 4 * 1024 * 1024;

/// Why a letter, key or receipt was refused.
#[derive(Debug, thiserror::Error)]
pub enum LetterError {
    /// Not a JSON object, a bad attribute, a number JCS cannot carry, too large or too deep.
    #[error("malformed letter: {0}")]
    Malformed(String),
    /// One of `sigalg`, `sigkeyid`, `sigvalue` is absent.
    #[error("letter is not signed: attribute `{0}` is missing")]
    MissingSignature(&'static str),
    /// `sigalg` names no supported algorithm.
    #[error("unknown signature algorithm `{0}` (supported: sm2-sm3, ed25519, ecdsa-p256-sha256)")]
    UnknownAlgorithm(String),
    /// `sigkeyid` names none of the sender's registered keys.
    #[error("unknown key id `{0}`: not among the sender's registered public keys")]
    UnknownKeyId(String),
    /// The key with the letter's key id is for another algorithm.
    #[error("letter says algorithm `{letter}` but key {key_id} is a `{key}` key")]
    AlgorithmMismatch {
        /// `sigalg` of the letter.
        letter: String,
        /// Algorithm of the registered key.
        key: String,
        /// The key id.
        key_id: String,
    },
    /// The signature does not verify.
    #[error("signature does not verify with key {0}: the letter was changed after signing, or signed with another key")]
    BadSignature(String),
    /// A key file could not be read as the expected kind of key.
    #[error("bad key: {0}")]
    Key(String),
    /// A receipt does not refer to the letter it is checked against.
    #[error("receipt does not match the letter: {0}")]
    ReceiptMismatch(String),
}

/// Parses letter text with the size limit.
pub fn parse_letter(text: &[u8]) -> Result<serde_json::Value, LetterError> {
    if text.len() > MAX_LETTER_BYTES {
        return Err(LetterError::Malformed(format!("larger than {MAX_LETTER_BYTES} bytes")));
    }
    let v: serde_json::Value = serde_json::from_slice(text).map_err(|e| LetterError::Malformed(format!("not JSON: {e}")))?;
    if !v.is_object() {
        return Err(LetterError::Malformed("a letter must be a JSON object (a CloudEvent)".into()));
    }
    Ok(v)
}

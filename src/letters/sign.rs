//! Signing and verifying letters. The signature travels in three CloudEvents
//! extension attributes: `sigalg` (algorithm id), `sigkeyid` (key id of the
//! signer's public key) and `sigvalue` (standard base64 with padding of the
//! 64 signature bytes). `sigalg` and `sigkeyid` are set before the canonical
//! form is taken, so they are signed too; only `sigvalue` is left out.
//!
//! What is signed, per algorithm, with `M` = the canonical bytes:
//! - `sm2-sm3`: SM2 over `SM3(Z || M)`, `Z` per GM/T 0003 with the default
//!   distinguishing id; signature `r || s`, 32 bytes each, big-endian.
//! - `ed25519`: Ed25519 (RFC 8032, pure) over `M`.
//! - `ecdsa-p256-sha256`: ECDSA P-256 over `SHA-256(M)`; signature `r || s`.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use sm3::Sm3;

use super::LetterError;
use super::canonical::{self, SIGVALUE};
use super::keys::{Algorithm, PartnerKeys, PrivateKey, PublicKey, SM2_DISTID};

/// Attribute: algorithm id.
pub const SIGALG: &str = "sigalg";
/// Attribute: key id.
pub const SIGKEYID: &str = "sigkeyid";

/// Returns `event` signed with `key`: `sigalg`, `sigkeyid` and `sigvalue`
/// set (any earlier values replaced).
pub fn sign_letter(event: &Value, key: &PrivateKey) -> Result<Value, LetterError> {
    let Value::Object(members) = event else {
        return Err(LetterError::Malformed("a letter must be a JSON object (a CloudEvent)".into()));
    };
    let mut members = members.clone();
    members.remove(SIGVALUE);
    members.insert(SIGALG.into(), Value::String(key.public().algorithm().id().into()));
    members.insert(SIGKEYID.into(), Value::String(key.public().key_id().into()));
    let mut signed = Value::Object(members);
    let message = canonical::letter_bytes(&signed)?;
    let sig = key.sign_raw(&message)?;
    if let Value::Object(m) = &mut signed {
        m.insert(
            SIGVALUE.into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(sig)),
        );
    }
    Ok(signed)
}

/// Verifies `letter` against the sender's registered keys; returns the key
/// that verified it. Every refusal says why (see [`LetterError`]).
pub fn verify_letter<'k>(letter: &Value, keys: &'k PartnerKeys) -> Result<&'k PublicKey, LetterError> {
    let alg = Algorithm::parse(attr(letter, SIGALG)?)?;
    let key_id = attr(letter, SIGKEYID)?;
    let sig_b64 = attr(letter, SIGVALUE)?;
    let key = keys.get(key_id).ok_or_else(|| LetterError::UnknownKeyId(key_id.to_string()))?;
    if key.algorithm() != alg {
        return Err(LetterError::AlgorithmMismatch {
            letter: alg.id().into(),
            key: key.algorithm().id().into(),
            key_id: key_id.to_string(),
        });
    }
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .map_err(|e| LetterError::Malformed(format!("`sigvalue` is not standard base64: {e}")))?;
    let message = canonical::letter_bytes(letter)?;
    if verify_raw(key, &message, &sig) {
        Ok(key)
    } else {
        Err(LetterError::BadSignature(key_id.to_string()))
    }
}

/// True if `sig` is `key`'s signature of `message` (the canonical bytes).
pub fn verify_raw(key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
    match key.algorithm() {
        Algorithm::Ed25519 => UnparsedPublicKey::new(&ED25519, key.raw()).verify(message, sig).is_ok(),
        Algorithm::EcdsaP256Sha256 => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.raw())
            .verify(message, sig)
            .is_ok(),
        Algorithm::Sm2Sm3 => {
            use sm2::dsa::signature::Verifier as _;
            let Ok(vk) = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DISTID, key.raw()) else {
                return false;
            };
            let Ok(s) = sm2::dsa::Signature::from_slice(sig) else {
                return false;
            };
            vk.verify(message, &s).is_ok()
        }
    }
}

fn attr<'a>(letter: &'a Value, name: &'static str) -> Result<&'a str, LetterError> {
    match letter.get(name) {
        None | Some(Value::Null) => Err(LetterError::MissingSignature(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(LetterError::Malformed(format!("`{name}` must be a string"))),
    }
}

/// SM2 curve parameters `a`, `b`, `xG`, `yG` (GM/T 0003.5), as hashed into `Z`.
const SM2_A: &str = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC";
const SM2_B: &str = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93";
const SM2_GX: &str = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7";
const SM2_GY: &str = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";

/// `Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)` for an SM2 public
/// key (65-byte uncompressed point), with the default distinguishing id.
pub fn sm2_z(point: &[u8]) -> Result<[u8; 32], LetterError> {
    if point.len() != 65 || point[0] != 0x04 {
        return Err(LetterError::Key("SM2 point must be 65 bytes, uncompressed".into()));
    }
    let mut h = Sm3::default();
    let entl = (SM2_DISTID.len() * 8) as u16;
    sm3::Digest::update(&mut h, entl.to_be_bytes());
    sm3::Digest::update(&mut h, SM2_DISTID.as_bytes());
    for p in [SM2_A, SM2_B, SM2_GX, SM2_GY] {
        sm3::Digest::update(&mut h, hex::decode(p).map_err(|_| LetterError::Key("curve constant".into()))?);
    }
    sm3::Digest::update(&mut h, &point[1..]);
    Ok(sm3::Digest::finalize(h).into())
}

/// `e = SM3(Z || M)`: the value an SM2 signature is computed over.
pub fn sm2_e(point: &[u8], message: &[u8]) -> Result<[u8; 32], LetterError> {
    let mut h = Sm3::default();
    sm3::Digest::update(&mut h, sm2_z(point)?);
    sm3::Digest::update(&mut h, message);
    Ok(sm3::Digest::finalize(h).into())
}

/// The digest used to name a letter in a receipt: SM3 of the canonical
/// bytes for `sm2-sm3` letters, SHA-256 for the others. Returns
/// (`"sm3"`|`"sha256"`, lower-case hex).
pub fn letter_digest(alg: Algorithm, canonical: &[u8]) -> (&'static str, String) {
    match alg {
        Algorithm::Sm2Sm3 => ("sm3", hex::encode(<Sm3 as sm3::Digest>::digest(canonical))),
        _ => ("sha256", hex::encode(Sha256::digest(canonical))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn letter() -> Value {
        json!({
            "specversion": "1.0",
            "id": "01JDXS0000000000000000TEST",
            "source": "urn:wastehub:province:35",
            "type": "transfer-request",
            "time": "2026-11-29T10:00:00+08:00",
            "datacontenttype": "application/json",
            "data": {"waste_code": "HW08-900-249-08", "quantity": "12.500", "unit": "t", "lines": [1, 2, 3]}
        })
    }

    fn keys_of(k: &PrivateKey) -> PartnerKeys {
        PartnerKeys::new(vec![k.public().clone()]).unwrap()
    }

    #[test]
    fn round_trip_for_every_algorithm() {
        for alg in Algorithm::ALL {
            let (key, _) = PrivateKey::generate(alg).unwrap();
            let signed = sign_letter(&letter(), &key).unwrap();
            assert_eq!(signed["sigalg"], alg.id());
            assert_eq!(signed["sigkeyid"], key.public().key_id());
            let sig = base64::engine::general_purpose::STANDARD
                .decode(signed["sigvalue"].as_str().unwrap())
                .unwrap();
            assert_eq!(sig.len(), 64, "{alg}");
            let keys = keys_of(&key);
            assert_eq!(verify_letter(&signed, &keys).unwrap(), key.public());
            // Member order and whitespace do not matter: re-serialized text verifies.
            let reparsed: Value = serde_json::from_str(&serde_json::to_string_pretty(&signed).unwrap()).unwrap();
            verify_letter(&reparsed, &keys).unwrap();
        }
    }

    #[test]
    fn any_change_is_detected() {
        for alg in Algorithm::ALL {
            let (key, _) = PrivateKey::generate(alg).unwrap();
            let keys = keys_of(&key);
            let signed = sign_letter(&letter(), &key).unwrap();
            let mut tampers: Vec<Value> = Vec::new();
            // Each data field, each attribute (sigalg/sigkeyid fail earlier, also refused).
            for field in ["waste_code", "quantity", "unit"] {
                let mut t = signed.clone();
                let s = t["data"][field].as_str().unwrap().to_string();
                t["data"][field] = Value::String(format!("{s}0"));
                tampers.push(t);
            }
            let mut t = signed.clone();
            t["data"]["lines"][2] = json!(4);
            tampers.push(t);
            for a in ["id", "source", "type", "time", "datacontenttype", "specversion"] {
                let mut t = signed.clone();
                t[a] = Value::String(format!("{}x", t[a].as_str().unwrap()));
                tampers.push(t);
            }
            let mut t = signed.clone();
            t["extra"] = json!("added");
            tampers.push(t);
            for t in &tampers {
                assert!(matches!(verify_letter(t, &keys), Err(LetterError::BadSignature(_))), "{alg}: {t}");
            }
            // Every byte of the signature.
            let sig = base64::engine::general_purpose::STANDARD
                .decode(signed["sigvalue"].as_str().unwrap())
                .unwrap();
            for i in 0..sig.len() {
                let mut bad = sig.clone();
                bad[i] ^= 0x01;
                let mut t = signed.clone();
                t["sigvalue"] = Value::String(base64::engine::general_purpose::STANDARD.encode(bad));
                assert!(verify_letter(&t, &keys).is_err(), "{alg}: byte {i}");
            }
            // Changing the algorithm or the key id is refused too.
            let mut t = signed.clone();
            t["sigkeyid"] = json!("0000000000000000");
            assert!(matches!(verify_letter(&t, &keys), Err(LetterError::UnknownKeyId(_))));
            let other = Algorithm::ALL.into_iter().find(|a| *a != alg).unwrap();
            let mut t = signed.clone();
            t["sigalg"] = json!(other.id());
            assert!(matches!(verify_letter(&t, &keys), Err(LetterError::AlgorithmMismatch { .. })));
        }
    }

    #[test]
    fn wrong_key_unknown_key_and_missing_signature() {
        let (a, _) = PrivateKey::generate(Algorithm::Sm2Sm3).unwrap();
        let (b, _) = PrivateKey::generate(Algorithm::Sm2Sm3).unwrap();
        let signed = sign_letter(&letter(), &a).unwrap();
        // b's keys do not include a's key id.
        assert!(matches!(verify_letter(&signed, &keys_of(&b)), Err(LetterError::UnknownKeyId(_))));
        // A letter claiming b's key id but signed by a.
        let mut forged = sign_letter(&letter(), &a).unwrap();
        forged["sigkeyid"] = json!(b.public().key_id());
        assert!(verify_letter(&forged, &keys_of(&b)).is_err());
        // Unsigned letter.
        let err = verify_letter(&letter(), &keys_of(&a)).unwrap_err();
        assert!(matches!(err, LetterError::MissingSignature("sigalg")), "{err}");
        let mut t = signed.clone();
        t.as_object_mut().unwrap().remove("sigvalue");
        assert!(matches!(
            verify_letter(&t, &keys_of(&a)),
            Err(LetterError::MissingSignature("sigvalue"))
        ));
        let mut t = signed;
        t["sigalg"] = json!("rsa");
        assert!(matches!(verify_letter(&t, &keys_of(&a)), Err(LetterError::UnknownAlgorithm(_))));
    }

    #[test]
    fn rotation_with_two_keys() {
        let (old, _) = PrivateKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let (new, _) = PrivateKey::generate(Algorithm::Ed25519).unwrap();
        let mut keys = keys_of(&old);
        let by_old = sign_letter(&letter(), &old).unwrap();
        let by_new = sign_letter(&letter(), &new).unwrap();
        assert!(verify_letter(&by_new, &keys).is_err());
        keys.add(new.public().clone()).unwrap();
        assert_eq!(verify_letter(&by_old, &keys).unwrap(), old.public());
        assert_eq!(verify_letter(&by_new, &keys).unwrap(), new.public());
        keys.remove(old.public().key_id());
        assert!(matches!(verify_letter(&by_old, &keys), Err(LetterError::UnknownKeyId(_))));
        verify_letter(&by_new, &keys).unwrap();
    }

    #[test]
    fn own_sm2_z_and_e_agree_with_the_sm2_crate() {
        use sm2::dsa::signature::hazmat::PrehashVerifier as _;
        let (key, _) = PrivateKey::generate(Algorithm::Sm2Sm3).unwrap();
        let signed = sign_letter(&letter(), &key).unwrap();
        let m = canonical::letter_bytes(&signed).unwrap();
        let e = sm2_e(key.public().raw(), &m).unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(signed["sigvalue"].as_str().unwrap())
            .unwrap();
        let vk = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DISTID, key.public().raw()).unwrap();
        vk.verify_prehash(&e, &sm2::dsa::Signature::from_slice(&sig).unwrap()).unwrap();
    }
}

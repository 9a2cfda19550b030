//! Letter keys: PKCS#8 private keys and SPKI public keys (PEM) for the three
//! algorithms, key ids, and the set of public keys registered for a partner.
//!
//! Public keys are recognised by their exact SPKI DER prefix (DER is
//! canonical, so each algorithm has exactly one); compressed EC points are
//! refused. Private keys are read with the library of their algorithm:
//! `sm2` for SM2, `aws-lc-rs` for Ed25519 and P-256.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use sm2::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

use super::LetterError;

/// Largest PEM file accepted.
pub const MAX_PEM_BYTES: usize = 16 * 1024;

/// The SM2 distinguishing id (GM/T 0009 default `1234567812345678`).
pub const SM2_DISTID: &str = "1234567812345678";

const SPKI_ED25519: &[u8] = &[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
const SPKI_P256: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
    0x07, 0x03, 0x42, 0x00,
];
const SPKI_SM2: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82,
    0x2d, 0x03, 0x42, 0x00,
];

/// A letter signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// SM2 signature (GM/T 0003) with SM3, distinguishing id [`SM2_DISTID`].
    Sm2Sm3,
    /// Ed25519 (RFC 8032, pure).
    Ed25519,
    /// ECDSA over P-256 with SHA-256.
    EcdsaP256Sha256,
}

impl Algorithm {
    /// All algorithms.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sm2Sm3, Algorithm::Ed25519, Algorithm::EcdsaP256Sha256];

    /// The `sigalg` value.
    pub fn id(self) -> &'static str {
        match self {
            Algorithm::Sm2Sm3 => "sm2-sm3",
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }

    /// Reads a `sigalg` value.
    pub fn parse(s: &str) -> Result<Self, LetterError> {
        Self::ALL
            .into_iter()
            .find(|a| a.id() == s)
            .ok_or_else(|| LetterError::UnknownAlgorithm(s.to_string()))
    }

    fn spki_prefix(self) -> &'static [u8] {
        match self {
            Algorithm::Sm2Sm3 => SPKI_SM2,
            Algorithm::Ed25519 => SPKI_ED25519,
            Algorithm::EcdsaP256Sha256 => SPKI_P256,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A public key registered for a partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    alg: Algorithm,
    spki: Vec<u8>,
    key_id: String,
}

impl PublicKey {
    /// From SPKI DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, LetterError> {
        for alg in Algorithm::ALL {
            let prefix = alg.spki_prefix();
            if let Some(raw) = der.strip_prefix(prefix) {
                let ok = match alg {
                    Algorithm::Ed25519 => raw.len() == 32,
                    Algorithm::EcdsaP256Sha256 => raw.len() == 65 && raw[0] == 0x04,
                    Algorithm::Sm2Sm3 => sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DISTID, raw).is_ok() && raw.len() == 65,
                };
                if !ok {
                    return Err(LetterError::Key(format!(
                        "{alg} public key has a bad point (an uncompressed point is required)"
                    )));
                }
                return Ok(Self {
                    alg,
                    spki: der.to_vec(),
                    key_id: key_id(der),
                });
            }
        }
        Err(LetterError::Key(
            "not an SM2, Ed25519 or P-256 public key (SubjectPublicKeyInfo)".into(),
        ))
    }

    /// From a `PUBLIC KEY` PEM.
    pub fn from_pem(pem: &str) -> Result<Self, LetterError> {
        Self::from_spki_der(&pem_decode(pem, "PUBLIC KEY")?)
    }

    /// As a `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki)
    }

    /// The algorithm the key is for.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id: first 16 hex digits of SHA-256 of the SPKI DER.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// SPKI DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The raw key: 32 bytes (Ed25519) or the 65-byte uncompressed point.
    pub fn raw(&self) -> &[u8] {
        &self.spki[self.alg.spki_prefix().len()..]
    }
}

/// Key id of SPKI DER.
pub fn key_id(spki_der: &[u8]) -> String {
    hex::encode(&Sha256::digest(spki_der)[..8])
}

enum Inner {
    Sm2(Box<sm2::dsa::SigningKey>),
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

/// A private signing key (never printed: `Debug` shows only the key id).
pub struct PrivateKey {
    inner: Inner,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({} {}, redacted)", self.public.alg, self.public.key_id)
    }
}

impl PrivateKey {
    /// Makes a new key; returns it with its PKCS#8 DER (to be written as PEM).
    pub fn generate(alg: Algorithm) -> Result<(Self, Vec<u8>), LetterError> {
        let der = match alg {
            Algorithm::Sm2Sm3 => loop {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| LetterError::Key(format!("no randomness: {e}")))?;
                // A random 256-bit string is a valid scalar except (rarely) zero or ≥ n: draw again.
                if let Ok(sk) = sm2::SecretKey::from_slice(&bytes) {
                    let doc = sk.to_pkcs8_der().map_err(|e| LetterError::Key(format!("encoding SM2 key: {e}")))?;
                    break doc.as_bytes().to_vec();
                }
            },
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| LetterError::Key("Ed25519 key generation failed".into()))?
                .as_ref()
                .to_vec(),
            Algorithm::EcdsaP256Sha256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| LetterError::Key("P-256 key generation failed".into()))?
                .as_ref()
                .to_vec(),
        };
        Ok((Self::from_pkcs8_der(&der)?, der))
    }

    /// From PKCS#8 DER (unencrypted); the algorithm is taken from the key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, LetterError> {
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let spki = [SPKI_ED25519, kp.public_key().as_ref()].concat();
            return Ok(Self {
                public: PublicKey::from_spki_der(&spki)?,
                inner: Inner::Ed25519(kp),
            });
        }
        if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            let spki = [SPKI_P256, kp.public_key().as_ref()].concat();
            return Ok(Self {
                public: PublicKey::from_spki_der(&spki)?,
                inner: Inner::P256(kp),
            });
        }
        if let Ok(sk) = sm2::SecretKey::from_pkcs8_der(der) {
            let signing =
                sm2::dsa::SigningKey::new(SM2_DISTID, &sk).map_err(|_| LetterError::Key("SM2 key is not usable for signing".into()))?;
            let point = signing.verifying_key().to_sec1_bytes();
            let spki = [SPKI_SM2, &point[..]].concat();
            return Ok(Self {
                public: PublicKey::from_spki_der(&spki)?,
                inner: Inner::Sm2(Box::new(signing)),
            });
        }
        Err(LetterError::Key(
            "not an unencrypted PKCS#8 SM2, Ed25519 or P-256 private key".into(),
        ))
    }

    /// From a `PRIVATE KEY` PEM.
    pub fn from_pem(pem: &str) -> Result<Self, LetterError> {
        Self::from_pkcs8_der(&pem_decode(pem, "PRIVATE KEY")?)
    }

    /// The matching public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` (the canonical bytes); the signature bytes as
    /// `docs/cross-province.md` specifies (64 bytes for every algorithm).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, LetterError> {
        match &self.inner {
            Inner::Sm2(k) => {
                use sm2::dsa::signature::Signer as _;
                let sig: sm2::dsa::Signature = k.try_sign(message).map_err(|_| LetterError::Key("SM2 signing failed".into()))?;
                Ok(sig.to_bytes().to_vec())
            }
            Inner::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Inner::P256(kp) => kp
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| LetterError::Key("P-256 signing failed".into())),
        }
    }
}

/// The public keys registered for one partner. Several at once let a
/// partner rotate: it publishes the new key, both verify during the
/// overlap, then the old one is removed.
#[derive(Clone, Debug, Default)]
pub struct PartnerKeys {
    keys: Vec<PublicKey>,
}

impl PartnerKeys {
    /// Most keys one partner may have registered at once.
    pub const MAX_KEYS: usize = 8;

    /// From a list of keys.
    pub fn new(keys: Vec<PublicKey>) -> Result<Self, LetterError> {
        if keys.len() > Self::MAX_KEYS {
            return Err(LetterError::Key(format!("more than {} keys for one partner", Self::MAX_KEYS)));
        }
        Ok(Self { keys })
    }

    /// Adds a key (rotation: the new one is added before the old is removed).
    pub fn add(&mut self, key: PublicKey) -> Result<(), LetterError> {
        if self.keys.len() >= Self::MAX_KEYS {
            return Err(LetterError::Key(format!("more than {} keys for one partner", Self::MAX_KEYS)));
        }
        if !self.keys.iter().any(|k| k.key_id == key.key_id) {
            self.keys.push(key);
        }
        Ok(())
    }

    /// Removes the key with `key_id`; true if it was there.
    pub fn remove(&mut self, key_id: &str) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| k.key_id != key_id);
        before != self.keys.len()
    }

    /// The key with `key_id`.
    pub fn get(&self, key_id: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }

    /// All keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }
}

/// PEM text of `der` with `label`, 64-character lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// DER inside the first `label` block of `pem`.
pub fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, LetterError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(LetterError::Key(format!("PEM larger than {MAX_PEM_BYTES} bytes")));
    }
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = pem.find(&begin) else {
        let found = pem.lines().find(|l| l.starts_with("-----BEGIN ")).unwrap_or("no PEM block");
        return Err(LetterError::Key(format!("expected a `{begin}` block, found `{found}`")));
    };
    let body = &pem[start + begin.len()..];
    let Some(stop) = body.find(&end) else {
        return Err(LetterError::Key(format!("`{end}` missing")));
    };
    let b64: String = body[..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| LetterError::Key(format!("PEM body is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::pkcs8::EncodePublicKey as _;

    #[test]
    fn generated_keys_round_trip_through_pem() {
        for alg in Algorithm::ALL {
            let (key, der) = PrivateKey::generate(alg).unwrap();
            assert_eq!(key.public().algorithm(), alg);
            let again = PrivateKey::from_pem(&pem_encode("PRIVATE KEY", &der)).unwrap();
            assert_eq!(again.public(), key.public());
            let public = PublicKey::from_pem(&key.public().to_pem()).unwrap();
            assert_eq!(&public, key.public());
            assert_eq!(public.key_id().len(), 16);
        }
    }

    #[test]
    fn sm2_spki_matches_the_sm2_crate_encoding() {
        let (key, der) = PrivateKey::generate(Algorithm::Sm2Sm3).unwrap();
        let sk = sm2::SecretKey::from_pkcs8_der(&der).unwrap();
        let theirs = sk.public_key().to_public_key_der().unwrap();
        assert_eq!(theirs.as_bytes(), key.public().spki_der());
    }

    #[test]
    fn wrong_pem_kinds_are_refused_clearly() {
        let (key, _) = PrivateKey::generate(Algorithm::Ed25519).unwrap();
        let err = PrivateKey::from_pem(&key.public().to_pem()).unwrap_err().to_string();
        assert!(err.contains("expected a `-----BEGIN PRIVATE KEY-----` block"), "{err}");
        assert!(PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
        assert!(PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    }

    #[test]
    fn partner_keys_hold_several_for_rotation() {
        let a = PrivateKey::generate(Algorithm::Ed25519).unwrap().0.public().clone();
        let b = PrivateKey::generate(Algorithm::Sm2Sm3).unwrap().0.public().clone();
        let mut keys = PartnerKeys::default();
        keys.add(a.clone()).unwrap();
        keys.add(b.clone()).unwrap();
        assert!(keys.get(a.key_id()).is_some() && keys.get(b.key_id()).is_some());
        assert!(keys.remove(a.key_id()));
        assert!(keys.get(a.key_id()).is_none());
    }
}

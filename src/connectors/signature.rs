//! HMAC request signatures: made for outbound connectors (`[outbound.signature]`)
//! and checked on requests from registered partners that sign ([`Verifier`]),
//! with SHA-256 or SM3 (GB/T 32905, for partners that require national
//! algorithms).
//!
//! The signed text is `timestamp "\n" message id "\n" body`, where the
//! timestamp is Unix seconds: a partner recomputes it from the request and
//! refuses stale timestamps (replay) and mismatches (tampering). Headers:
//! `X-Wastehub-Timestamp: <seconds>` and
//! `X-Wastehub-Signature: <algorithm>=<lower-case hex>[; keyId=<key id>]`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sm3::Sm3;

use crate::config::connector::SignatureConfig;

/// A request signer for one connector.
#[derive(Clone)]
pub struct Signer {
    sm3: bool,
    secret: Vec<u8>,
    key_id: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("sm3", &self.sm3)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// From config (the algorithm was checked at load).
    pub fn new(cfg: &SignatureConfig) -> Self {
        Self {
            sm3: cfg.algorithm == "hmac-sm3",
            secret: cfg.secret.expose().as_bytes().to_vec(),
            key_id: cfg.key_id.clone(),
        }
    }

    /// Whether a secret is configured. A connector whose secret is still
    /// empty (an unset `${VAR:-}`) must not send: an HMAC with an empty key
    /// is one anybody can compute.
    pub fn has_secret(&self) -> bool {
        !self.secret.is_empty()
    }

    /// The hex HMAC of `timestamp "\n" message_id "\n" body`.
    pub fn sign(&self, timestamp: i64, message_id: &str, body: &[u8]) -> String {
        let prefix = format!("{timestamp}\n{message_id}\n");
        if self.sm3 {
            mac::<Hmac<Sm3>>(&self.secret, prefix.as_bytes(), body)
        } else {
            mac::<Hmac<Sha256>>(&self.secret, prefix.as_bytes(), body)
        }
    }

    /// The `X-Wastehub-Signature` header value.
    pub fn header(&self, timestamp: i64, message_id: &str, body: &[u8]) -> String {
        let algorithm = if self.sm3 { "hmac-sm3" } else { "hmac-sha256" };
        let mut v = format!("{algorithm}={}", self.sign(timestamp, message_id, body));
        if let Some(k) = &self.key_id {
            v.push_str("; keyId=");
            v.push_str(k);
        }
        v
    }
}

/// Checks the signature a registered partner puts on its requests to the
/// hub: the same headers and algorithms, over `timestamp "\n" request path
/// "\n" body`. The comparison is constant-time.
#[derive(Clone)]
pub struct Verifier {
    sm3: bool,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("sm3", &self.sm3).finish_non_exhaustive()
    }
}

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureProblem {
    /// A header is missing or unreadable.
    Missing,
    /// The timestamp is further from now than the allowed skew.
    Stale,
    /// The algorithm named in the header is not the partner's.
    Algorithm,
    /// The MAC does not match.
    Mismatch,
}

impl Verifier {
    /// For `algorithm` (`hmac-sha256` or `hmac-sm3`) and the shared secret.
    pub fn new(algorithm: &str, secret: &str) -> Self {
        Self {
            sm3: algorithm == "hmac-sm3",
            secret: secret.as_bytes().to_vec(),
        }
    }

    /// Verifies `X-Wastehub-Timestamp` and `X-Wastehub-Signature` values
    /// against `path` and `body`, allowing `skew_secs` between clocks.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        path: &str,
        body: &[u8],
        now_secs: i64,
        skew_secs: i64,
    ) -> Result<(), SignatureProblem> {
        let ts: i64 = timestamp.and_then(|t| t.trim().parse().ok()).ok_or(SignatureProblem::Missing)?;
        let sig = signature.ok_or(SignatureProblem::Missing)?;
        if (now_secs - ts).abs() > skew_secs {
            return Err(SignatureProblem::Stale);
        }
        let value = sig.split(';').next().unwrap_or("").trim();
        let (algorithm, hex_mac) = value.split_once('=').ok_or(SignatureProblem::Missing)?;
        let want = if self.sm3 { "hmac-sm3" } else { "hmac-sha256" };
        if !algorithm.trim().eq_ignore_ascii_case(want) {
            return Err(SignatureProblem::Algorithm);
        }
        let given = hex::decode(hex_mac.trim()).map_err(|_| SignatureProblem::Mismatch)?;
        let prefix = format!("{ts}\n{path}\n");
        let ok = if self.sm3 {
            verify_mac::<Hmac<Sm3>>(&self.secret, prefix.as_bytes(), body, &given)
        } else {
            verify_mac::<Hmac<Sha256>>(&self.secret, prefix.as_bytes(), body, &given)
        };
        if ok { Ok(()) } else { Err(SignatureProblem::Mismatch) }
    }
}

fn verify_mac<M: Mac + KeyInit>(secret: &[u8], prefix: &[u8], body: &[u8], given: &[u8]) -> bool {
    let Ok(mut m) = <M as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    m.update(prefix);
    m.update(body);
    m.verify_slice(given).is_ok()
}

fn mac<M: Mac + KeyInit>(secret: &[u8], prefix: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut m) = <M as KeyInit>::new_from_slice(secret) else {
        return String::new();
    };
    m.update(prefix);
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn signer(algorithm: &str, secret: &str) -> Signer {
        Signer::new(&SignatureConfig {
            algorithm: algorithm.into(),
            secret: Secret::new(secret),
            key_id: Some("fj-hub-1".into()),
        })
    }

    /// RFC 4231 test case 2 ("Jefe" / "what do ya want for nothing?"), with
    /// the signed text split across prefix and body as the hub does.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let s = signer("hmac-sha256", "Jefe");
        assert_eq!(
            mac::<Hmac<Sha256>>(&s.secret, b"what do ya ", b"want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifier_accepts_the_signers_text_and_refuses_changes() {
        let secret = "whs_0123";
        let s = signer("hmac-sm3", secret);
        let v = Verifier::new("hmac-sm3", secret);
        let now = 1_764_400_000;
        let good = s.header(now, "/api/v1/messages", b"{}");
        assert_eq!(
            v.verify(Some("1764400000"), Some(&good), "/api/v1/messages", b"{}", now + 10, 300),
            Ok(())
        );
        assert_eq!(
            v.verify(Some("1764400000"), Some(&good), "/api/v1/messages", b"{ }", now, 300),
            Err(SignatureProblem::Mismatch)
        );
        assert_eq!(
            v.verify(Some("1764400000"), Some(&good), "/api/v1/other", b"{}", now, 300),
            Err(SignatureProblem::Mismatch)
        );
        assert_eq!(
            v.verify(Some("1764400000"), Some(&good), "/api/v1/messages", b"{}", now + 301, 300),
            Err(SignatureProblem::Stale)
        );
        assert_eq!(
            v.verify(None, Some(&good), "/api/v1/messages", b"{}", now, 300),
            Err(SignatureProblem::Missing)
        );
        let sha = signer("hmac-sha256", secret).header(now, "/api/v1/messages", b"{}");
        assert_eq!(
            v.verify(Some("1764400000"), Some(&sha), "/api/v1/messages", b"{}", now, 300),
            Err(SignatureProblem::Algorithm)
        );
    }

    #[test]
    fn sm3_signatures_differ_from_sha256_and_depend_on_every_part() {
        let sm3 = signer("hmac-sm3", "0123456789abcdef");
        let sha = signer("hmac-sha256", "0123456789abcdef");
        let a = sm3.sign(1_764_400_000, "msg_1", b"<x/>");
        assert_eq!(a.len(), 64);
        assert_ne!(a, sha.sign(1_764_400_000, "msg_1", b"<x/>"));
        assert_ne!(a, sm3.sign(1_764_400_001, "msg_1", b"<x/>"));
        assert_ne!(a, sm3.sign(1_764_400_000, "msg_2", b"<x/>"));
        assert_ne!(a, sm3.sign(1_764_400_000, "msg_1", b"<y/>"));
        assert!(sm3.header(1, "m", b"").starts_with("hmac-sm3=") && sm3.header(1, "m", b"").ends_with("; keyId=fj-hub-1"));
    }
}

//! Partner authentication: `Authorization: Bearer <key>`, matched by the
//! SHA-256 of the key against the digests in connector files. Keys are
//! random high-entropy tokens, so a plain digest is the right tool (as for
//! API tokens generally); they are never stored or logged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::ConnectorConfig;
use crate::error::ApiError;

/// A partner that may send to the hub.
#[derive(Clone, Debug)]
pub struct Partner {
    /// Its connector name.
    pub name: String,
    /// The `source` values it may use.
    pub sources: Vec<String>,
    /// Message type → inbound mapping, for documents in its own format.
    pub mappings: std::collections::BTreeMap<String, String>,
}

/// Key digest → partner.
#[derive(Clone, Debug, Default)]
pub struct Partners {
    by_digest: Arc<HashMap<String, Partner>>,
    /// Every enabled connector with an `[inbound]` side, keys or not
    /// (connector kinds that receive on their own need no key).
    by_name: Arc<HashMap<String, Partner>>,
}

impl Partners {
    /// Collects the inbound side of every enabled connector.
    pub fn new(connectors: &[ConnectorConfig]) -> Self {
        let mut map = HashMap::new();
        let mut by_name = HashMap::new();
        for c in connectors.iter().filter(|c| c.enabled) {
            let Some(inb) = &c.inbound else { continue };
            by_name.insert(
                c.name.clone(),
                Partner {
                    name: c.name.clone(),
                    sources: inb.sources.clone(),
                    mappings: inb.mappings.clone(),
                },
            );
            let keys: Vec<&str> = inb.api_key_sha256.iter().map(|k| k.expose()).filter(|k| !k.is_empty()).collect();
            // Kinds that receive on their own (mqtt) need no key.
            if keys.is_empty() && c.kind == crate::config::ConnectorKind::HttpJson {
                tracing::warn!(partner = %c.name, "Partner has no API key configured; it cannot send until one is set.");
            }
            for k in keys {
                map.insert(
                    k.to_ascii_lowercase(),
                    Partner {
                        name: c.name.clone(),
                        sources: inb.sources.clone(),
                        mappings: inb.mappings.clone(),
                    },
                );
            }
        }
        Self {
            by_digest: Arc::new(map),
            by_name: Arc::new(by_name),
        }
    }

    /// The partner of connector `name`, if it may send.
    pub fn named(&self, name: &str) -> Option<&Partner> {
        self.by_name.get(name)
    }

    /// The partner presenting these headers, or 401.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Partner, ApiError> {
        let token = bearer(headers).ok_or_else(|| ApiError::unauthorized("send the partner API key as `Authorization: Bearer <key>`"))?;
        self.by_digest
            .get(&sha256_hex(token))
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Compares two digests without an early exit.
pub fn digest_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase()))
            == 0
}

/// A new random API key (32 bytes from the operating system's CSPRNG, hex)
/// and its digest.
///
/// # Panics
/// If the operating system has no random source (a broken host).
pub fn generate_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    let key = format!("whk_{}", hex::encode(bytes));
    let digest = sha256_hex(&key);
    (key, digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_bearer_tokens_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn digests_compare_in_full() {
        let d = sha256_hex("k");
        assert!(digest_eq(&d, &d.to_uppercase()));
        assert!(!digest_eq(&d, &sha256_hex("j")));
        assert!(!digest_eq(&d, ""));
    }

    #[test]
    fn generated_keys_are_distinct_and_match_their_digest() {
        let (k1, d1) = generate_key();
        let (k2, _) = generate_key();
        assert_ne!(k1, k2);
        assert_eq!(sha256_hex(&k1), d1);
    }
}

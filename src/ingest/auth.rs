//! Partner authentication: `Authorization: Bearer <key>`, matched by the
//! SHA-256 of the key against the digests in connector files and in the
//! partner registry; then what the partner may send (types, jurisdiction)
//! and, for partners that sign, the request signature. Keys are
//! random high-entropy tokens, so a plain digest is the right tool (as for
//! API tokens generally); they are never stored or logged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::config::ConnectorConfig;
use crate::connectors::signature::{SignatureProblem, Verifier};
use crate::error::ApiError;
use crate::partners::Status;
use crate::store::partners::PartnerRow;

/// A partner that may send to the hub: a connector file's `[inbound]`, or a
/// partner registered at run time (`crate::partners`).
#[derive(Clone, Debug)]
pub struct Partner {
    /// Its connector name or registered id.
    pub name: String,
    /// The `source` values it may use.
    pub sources: Vec<String>,
    /// Message type → inbound mapping, for documents in its own format.
    pub mappings: std::collections::BTreeMap<String, String>,
    /// Lifecycle status; connector-file partners are always live.
    pub status: Status,
    /// The message types it may send; `None` for any (connector files).
    pub allowed_types: Option<Vec<String>>,
    /// Division-code prefix every event's `jurisdiction` must start with.
    pub jurisdiction: Option<String>,
    /// The signature its requests must carry, if it signs.
    pub signing: Option<Verifier>,
    /// True for a partner of the registry (false for a connector file).
    pub registered: bool,
    /// A registered partner's own division code (6 digits).
    pub division_code: Option<String>,
}

impl Partner {
    /// A connector file's partner.
    fn configured(name: &str, sources: &[String], mappings: &std::collections::BTreeMap<String, String>) -> Self {
        Self {
            name: name.to_string(),
            sources: sources.to_vec(),
            mappings: mappings.clone(),
            status: Status::Live,
            allowed_types: None,
            jurisdiction: None,
            signing: None,
            registered: false,
            division_code: None,
        }
    }

    /// A registered partner as its row says.
    pub fn registered(row: &PartnerRow) -> Self {
        Self {
            name: row.id.clone(),
            sources: vec![row.source.clone()],
            mappings: serde_json::from_str(&row.mappings).unwrap_or_default(),
            status: Status::parse(&row.status),
            allowed_types: Some(serde_json::from_str(&row.message_types).unwrap_or_default()),
            jurisdiction: Some(crate::partners::jurisdiction_prefix(&row.division_code).to_string()),
            signing: match (&row.signing, &row.signing_secret) {
                (Some(alg), Some(secret)) => Some(Verifier::new(alg, secret)),
                _ => None,
            },
            registered: true,
            division_code: Some(row.division_code.clone()),
        }
    }

    /// Checks the request signature of a partner that signs (a no-op for
    /// the others): 401 when it is missing, stale or wrong.
    pub fn check_signature(&self, headers: &HeaderMap, path: &str, body: &[u8]) -> Result<(), ApiError> {
        let Some(v) = &self.signing else { return Ok(()) };
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        v.verify(
            h("x-wastehub-timestamp"),
            h("x-wastehub-signature"),
            path,
            body,
            now,
            SIGNATURE_SKEW_SECS,
        )
        .map_err(|p| {
            ApiError::unauthorized(match p {
                SignatureProblem::Missing => "this partner signs its requests: send X-Wastehub-Timestamp and X-Wastehub-Signature",
                SignatureProblem::Stale => "X-Wastehub-Timestamp is more than 5 minutes from the hub's clock",
                SignatureProblem::Algorithm => "X-Wastehub-Signature names another algorithm than the partner's",
                SignatureProblem::Mismatch => "X-Wastehub-Signature does not match the request",
            })
        })
    }

    /// Whether it may send this type, within its jurisdiction: 403 otherwise.
    pub fn check_allowed(&self, message_type: &str, jurisdiction: &str) -> Result<(), ApiError> {
        if let Some(types) = &self.allowed_types
            && !types.iter().any(|t| t == message_type)
        {
            return Err(ApiError::forbidden(
                "type_not_allowed",
                format!("partner {} may not send {message_type} (allowed: {})", self.name, types.join(", ")),
            ));
        }
        if let Some(prefix) = &self.jurisdiction
            && !jurisdiction.starts_with(prefix.as_str())
        {
            return Err(ApiError::forbidden(
                "jurisdiction_not_allowed",
                format!(
                    "partner {} sends for division {prefix}…; this event's jurisdiction is {:?}",
                    self.name, jurisdiction
                ),
            ));
        }
        Ok(())
    }
}

/// Allowed distance between a signer's clock and the hub's.
const SIGNATURE_SKEW_SECS: i64 = 300;

/// Key digest → partner.
#[derive(Clone, Debug, Default)]
pub struct Partners {
    by_digest: Arc<HashMap<String, Partner>>,
    /// Every enabled connector with an `[inbound]` side, keys or not
    /// (connector kinds that receive on their own need no key).
    by_name: Arc<HashMap<String, Partner>>,
    /// Every connector name, enabled or not: registered partners may not take one.
    connector_names: Arc<std::collections::HashSet<String>>,
}

impl Partners {
    /// Collects the inbound side of every enabled connector.
    pub fn new(connectors: &[ConnectorConfig]) -> Self {
        let mut map = HashMap::new();
        let mut by_name = HashMap::new();
        for c in connectors.iter().filter(|c| c.enabled) {
            let Some(inb) = &c.inbound else { continue };
            let partner = Partner::configured(&c.name, &inb.sources, &inb.mappings);
            by_name.insert(c.name.clone(), partner.clone());
            let keys: Vec<&str> = inb.api_key_sha256.iter().map(|k| k.expose()).filter(|k| !k.is_empty()).collect();
            // Kinds that receive on their own (mqtt) need no key.
            if keys.is_empty() && c.kind == crate::config::ConnectorKind::HttpJson {
                tracing::warn!(partner = %c.name, "Partner has no API key configured; it cannot send until one is set.");
            }
            for k in keys {
                map.insert(k.to_ascii_lowercase(), partner.clone());
            }
        }
        Self {
            by_digest: Arc::new(map),
            by_name: Arc::new(by_name),
            connector_names: Arc::new(connectors.iter().map(|c| c.name.clone()).collect()),
        }
    }

    /// The partner of connector `name`, if it may send.
    pub fn named(&self, name: &str) -> Option<&Partner> {
        self.by_name.get(name)
    }

    /// Whether a connector file has this name.
    pub fn is_connector(&self, name: &str) -> bool {
        self.connector_names.contains(name)
    }

    /// The connector-file partner holding the key with this digest.
    fn by_digest(&self, digest: &str) -> Option<&Partner> {
        self.by_digest.get(digest)
    }
}

/// The partner presenting these headers: a connector file's key first, then
/// the registry (keys that have not expired). 401 for no or an unknown key,
/// 403 for a suspended partner.
pub async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Partner, ApiError> {
    let token = bearer(headers).ok_or_else(|| ApiError::unauthorized("send the partner API key as `Authorization: Bearer <key>`"))?;
    let digest = sha256_hex(token);
    if let Some(p) = app.partners.by_digest(&digest) {
        return Ok(p.clone());
    }
    let row = app
        .store
        .partner_by_key(&digest, crate::model::now_millis())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "Partner lookup failed: the store does not answer.");
            ApiError::unavailable("the hub cannot check credentials right now; send again shortly")
        })?
        .ok_or_else(|| ApiError::unauthorized("unknown or expired API key"))?;
    let partner = Partner::registered(&row);
    if partner.status == Status::Suspended {
        return Err(ApiError::forbidden(
            "partner_suspended",
            format!("partner {} is suspended; nothing it sends is accepted", partner.name),
        ));
    }
    Ok(partner)
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    sha256_bytes_hex(text.as_bytes())
}

/// Lower-case hex SHA-256 of bytes.
pub fn sha256_bytes_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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

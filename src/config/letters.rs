//! `[letters]` in a connector file of kind `letters`: another province's
//! hub, to which the hub sends signed negotiation letters (`[outbound]`
//! says where and how often) and from which it takes signed letters at
//! `POST /api/v1/xp/letters`. Which key the hub signs with for this partner
//! (so the algorithm is chosen per partner) and which public keys of the
//! partner are registered (several during a rotation) are named here; the
//! files are read when the connector is built ([`LettersConfig::keys`]).

use serde::Deserialize;

use super::connector::{ConnectorConfig, ConnectorKind};
use super::load::line_of_key;
use crate::letters::keys::PartnerKeys;
use crate::letters::{LetterError, PrivateKey, PublicKey};

/// Most public keys registered for one partner at once.
pub const MAX_PUBLIC_KEYS: usize = 8;

/// `[letters]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LettersConfig {
    /// The partner's province (2 digits).
    pub province: String,
    /// The CloudEvents source its letters carry (`urn:wastehub:province:36`).
    pub source: String,
    /// The hub's private key for letters to and receipts for this partner
    /// (PKCS#8 PEM; relative paths are relative to the config directory).
    pub signing_key: String,
    /// The partner's registered public keys (PEM), 1 to 8.
    pub public_keys: Vec<String>,
}

/// The keys a `letters` connector works with.
#[derive(Clone, Debug)]
pub struct LetterKeys {
    /// The hub's key for this partner.
    pub own: std::sync::Arc<PrivateKey>,
    /// The partner's keys.
    pub partner: PartnerKeys,
}

/// Why the keys could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct KeyFileError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl LettersConfig {
    /// Reads the key files, relative to `base`.
    pub fn keys(&self, base: &std::path::Path) -> Result<LetterKeys, KeyFileError> {
        let read = |p: &str, hint: &str| {
            let path = base.join(p);
            std::fs::read_to_string(&path).map_err(|e| KeyFileError {
                path: p.to_string(),
                message: format!("cannot read it ({e}); {hint}"),
            })
        };
        let own_hint = "make the hub's key pair with `wastehub letter keygen --alg sm2-sm3 --out <folder>` and name its .key.pem here";
        let partner_hint = "put the partner's public key (PEM) here";
        let bad = |p: &str, e: LetterError| KeyFileError {
            path: p.to_string(),
            message: e.to_string(),
        };
        let own = PrivateKey::from_pem(&read(&self.signing_key, own_hint)?).map_err(|e| bad(&self.signing_key, e))?;
        let mut keys = Vec::new();
        for p in &self.public_keys {
            keys.push(PublicKey::from_pem(&read(p, partner_hint)?).map_err(|e| bad(p, e))?);
        }
        let partner = PartnerKeys::new(keys).map_err(|e| bad(&self.public_keys.join(", "), e))?;
        Ok(LetterKeys {
            own: std::sync::Arc::new(own),
            partner,
        })
    }
}

/// Per-file rules for `[letters]`: (line, what is wrong) for each problem.
pub fn check(c: &ConnectorConfig, text: &str) -> Vec<(Option<usize>, String)> {
    let mut errors = Vec::new();
    let l = match (c.kind, &c.letters) {
        (ConnectorKind::Letters, Some(l)) => l,
        (ConnectorKind::Letters, None) => {
            errors.push((
                line_of_key(text, "kind"),
                "kind \"letters\" needs a [letters] section (province, source, signing_key, public_keys)".into(),
            ));
            return errors;
        }
        (_, Some(_)) => {
            errors.push((
                line_of_key(text, "letters"),
                "a [letters] section is only allowed with kind = \"letters\"".into(),
            ));
            return errors;
        }
        (_, None) => return errors,
    };
    if l.province.len() != 2 || !l.province.bytes().all(|b| b.is_ascii_digit()) {
        errors.push((line_of_key(text, "province"), format!("province {:?} must be 2 digits", l.province)));
    }
    if !l.source.starts_with("urn:") && !l.source.starts_with("http") {
        errors.push((
            line_of_key(text, "source"),
            "source must be a URI (urn:wastehub:province:<code>)".into(),
        ));
    }
    if l.public_keys.is_empty() || l.public_keys.len() > MAX_PUBLIC_KEYS {
        errors.push((
            line_of_key(text, "public_keys"),
            format!("public_keys must list 1 to {MAX_PUBLIC_KEYS} key files"),
        ));
    }
    if c.outbound.is_none() {
        errors.push((
            line_of_key(text, "kind"),
            "kind \"letters\" needs an [outbound] section (url)".into(),
        ));
    }
    if c.inbound.is_some() {
        errors.push((
            line_of_key(text, "inbound"),
            "kind \"letters\" receives at /api/v1/xp/letters, authenticated by signature; it has no [inbound] section".into(),
        ));
    }
    // A disabled connector's keys need not exist yet (the shipped ones).
    if c.enabled
        && let Err(e) = l.keys(crate::connectors::config_dir(c))
    {
        errors.push((line_of_key(text, "signing_key"), e.to_string()));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::letters::Algorithm;
    use crate::letters::keys::pem_encode;

    fn connector(dir: &std::path::Path, enabled: &str) -> ConnectorConfig {
        let text = format!(
            "name = \"province-jiangxi\"\nkind = \"letters\"\nenabled = {enabled}\n[letters]\nprovince = \"36\"\n\
             source = \"urn:wastehub:province:36\"\nsigning_key = \"keys/own.key.pem\"\npublic_keys = [\"keys/jx.pub.pem\"]\n\
             [outbound]\nurl = \"http://127.0.0.1:9336/letters\"\n"
        );
        let mut c: ConnectorConfig = toml::from_str(&text).expect("a connector file");
        c.file = dir.join("connectors/province-jiangxi.toml").display().to_string();
        c
    }

    #[test]
    fn an_enabled_connector_needs_readable_keys_and_a_disabled_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let problems = check(&connector(dir.path(), "true"), "");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("keys/own.key.pem: cannot read it"), "{problems:?}");
        assert!(
            check(&connector(dir.path(), "\"false\""), "").is_empty(),
            "the flag may be a string"
        );

        std::fs::create_dir_all(dir.path().join("keys")).expect("mkdir");
        let (own, der) = PrivateKey::generate(Algorithm::Sm2Sm3).expect("key");
        std::fs::write(dir.path().join("keys/own.key.pem"), pem_encode("PRIVATE KEY", &der)).expect("write");
        let problems = check(&connector(dir.path(), "true"), "");
        assert!(problems[0].1.contains("the partner's public key"), "{problems:?}");
        std::fs::write(dir.path().join("keys/jx.pub.pem"), own.public().to_pem()).expect("write");
        assert!(check(&connector(dir.path(), "true"), "").is_empty());
        let keys = connector(dir.path(), "true")
            .letters
            .expect("letters")
            .keys(dir.path())
            .expect("keys read");
        assert_eq!(keys.partner.keys().len(), 1);
    }
}

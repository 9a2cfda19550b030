//! What an operator sends to register a partner, and its checks. Every
//! problem is reported at once, as field errors with JSON pointers, like the
//! hub's answers to partners.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::app::AppState;
use crate::error::FieldError;
use crate::mapping::Direction;

/// Longest display name, in characters.
const MAX_NAME: usize = 200;
/// Most message types one partner may be allowed.
const MAX_TYPES: usize = 64;

/// `POST /api/v1/partners`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    /// Partner id: 3 to 63 characters of `a-z`, `0-9` and `-`, starting with
    /// a letter or digit (`park-quanzhou-quangang`). It names the partner in
    /// traces, routes and metrics, and makes its source `urn:wastehub:partner:<id>`.
    pub id: String,
    /// Display name (`泉港石化工业园区细胞平台`).
    pub name: String,
    /// Jurisdiction: the 6-digit division code of the park or enterprise.
    /// Every message it sends must carry a `jurisdiction` inside it.
    pub division_code: String,
    /// Catalogue message types it may send.
    pub message_types: Vec<String>,
    /// Message type → inbound mapping, for documents in its own format.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
    /// `hmac-sha256` or `hmac-sm3`: its requests must also carry a signature
    /// made with a secret the hub generates now and shows once.
    #[serde(default)]
    pub signing: Option<String>,
    /// Where prompts about its data are delivered (`https://…`), if it takes them.
    #[serde(default)]
    pub callback_url: Option<String>,
}

impl NewPartner {
    /// Checks the request against the catalogue, the division table, the
    /// mapping files and the connector names.
    pub fn check(&self, app: &AppState) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut err = |path: &str, message: String| {
            errors.push(FieldError {
                path: path.to_string(),
                message,
            })
        };
        if !valid_id(&self.id) {
            err(
                "/id",
                "must be 3 to 63 characters of a-z, 0-9 and -, starting with a letter or digit".into(),
            );
        } else if app.partners.is_connector(&self.id) {
            err("/id", format!("{} is the name of a configured connector", self.id));
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            err("/name", format!("must be 1 to {MAX_NAME} printable characters"));
        }
        if let Err(p) = app.reference.data().divisions.check(&self.division_code) {
            err("/division_code", crate::reference::division::message(&self.division_code, p));
        }
        if self.message_types.is_empty() || self.message_types.len() > MAX_TYPES {
            err("/message_types", format!("name 1 to {MAX_TYPES} message types"));
        }
        for (i, t) in self.message_types.iter().enumerate() {
            if !app.catalogue.knows(t) {
                err(&format!("/message_types/{i}"), format!("{t:?} is not a catalogue message type"));
            } else if self.message_types[..i].contains(t) {
                err(&format!("/message_types/{i}"), format!("{t} is listed twice"));
            }
        }
        for (t, m) in &self.mappings {
            let path = format!("/mappings/{}", t.replace('~', "~0").replace('/', "~1"));
            if !self.message_types.contains(t) {
                err(&path, format!("{t} is not one of the partner's message types"));
                continue;
            }
            let versions = app.mappings.versions(m);
            match versions.last() {
                None => err(&path, format!("no mapping named {m} (mappings/{m}.toml)")),
                Some(v) if v.direction != Direction::Inbound => err(&path, format!("mapping {m} is not an inbound mapping")),
                Some(v) if !v.message_types.iter().any(|x| x == t) => {
                    err(&path, format!("mapping {m} produces {}, not {t}", v.message_types.join(", ")))
                }
                Some(_) => {}
            }
        }
        if let Some(s) = &self.signing
            && s != "hmac-sha256"
            && s != "hmac-sm3"
        {
            err("/signing", "must be hmac-sha256 or hmac-sm3".into());
        }
        if let Some(u) = &self.callback_url
            && let Err(m) = check_url(u)
        {
            err("/callback_url", m);
        }
        errors
    }

    /// The source this partner sends as.
    pub fn source(&self) -> String {
        source_of(&self.id)
    }
}

/// The CloudEvents source of a registered partner.
pub fn source_of(id: &str) -> String {
    format!("urn:wastehub:partner:{id}")
}

fn valid_id(id: &str) -> bool {
    (3..=63).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// A callback address: http(s), a host, no credentials.
fn check_url(u: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(u).map_err(|e| format!("not a URL: {e}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err("must be an http:// or https:// URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_slugs() {
        assert!(valid_id("park-quanzhou-quangang"));
        assert!(valid_id("p01"));
        assert!(!valid_id("ab"));
        assert!(!valid_id("Park"));
        assert!(!valid_id("-park"));
        assert!(!valid_id("park-"));
        assert!(!valid_id("park_x"));
        assert!(!valid_id(&"a".repeat(64)));
    }

    #[test]
    fn callback_urls_are_plain_http() {
        assert!(check_url("https://cell.example.cn/prompts").is_ok());
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("https://u:p@x/").is_err());
        assert!(check_url("not a url").is_err());
    }
}

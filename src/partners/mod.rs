//! The partner registry: cell platforms of parks and enterprises that are
//! onboarded at run time (no restart, no connector file). A partner starts in
//! `sandbox`, goes `live` after a passing conformance run, and can be
//! `suspended` and resumed. Every change is audited with the operator who
//! made it.
//!
//! System partners (the provincial and national systems, departments) stay
//! connector files; both kinds authenticate the same way
//! (`crate::ingest::auth`).

pub mod conformance;
pub mod lifecycle;
pub mod request;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::partners::PartnerRow;

/// Where a partner is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything it sends is validated and answered like production, kept
    /// as sandbox traffic and never forwarded.
    Sandbox,
    /// Its messages are routed and delivered.
    Live,
    /// It is refused (403) and nothing it sends is accepted.
    Suspended,
}

impl Status {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Live => "live",
            Self::Suspended => "suspended",
        }
    }

    /// Reads the stored text; an unknown value reads as suspended, the safe side.
    pub fn parse(s: &str) -> Self {
        match s {
            "sandbox" => Self::Sandbox,
            "live" => Self::Live,
            _ => Self::Suspended,
        }
    }
}

/// A registered partner as the API shows it (never its key digests or secrets).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PartnerView {
    /// Partner id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Jurisdiction (6-digit division code).
    pub division_code: String,
    /// The CloudEvents `source` it sends as.
    pub source: String,
    /// Message types it may send.
    pub message_types: Vec<String>,
    /// Message type → inbound mapping for documents in its own format.
    pub mappings: BTreeMap<String, String>,
    /// Lifecycle status.
    pub status: Status,
    /// Signature algorithm its requests must carry, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing: Option<String>,
    /// Where prompts about its data are delivered, if it takes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last changed (Unix ms).
    pub updated_at: i64,
    /// Went live (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_at: Option<i64>,
}

impl From<&PartnerRow> for PartnerView {
    fn from(r: &PartnerRow) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            division_code: r.division_code.clone(),
            source: r.source.clone(),
            message_types: serde_json::from_str(&r.message_types).unwrap_or_default(),
            mappings: serde_json::from_str(&r.mappings).unwrap_or_default(),
            status: Status::parse(&r.status),
            signing: r.signing.clone(),
            callback_url: r.callback_url.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            live_at: r.live_at,
        }
    }
}

/// The division-code prefix that covers a jurisdiction: trailing `00` pairs
/// dropped (`350200` → `3502`, `350000` → `35`), so a city partner may
/// send for its counties and a county partner only for itself.
pub fn jurisdiction_prefix(division_code: &str) -> &str {
    let mut s = division_code;
    while s.len() > 2 && s.ends_with("00") {
        s = &s[..s.len() - 2];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jurisdiction_prefixes_drop_trailing_zero_pairs() {
        assert_eq!(jurisdiction_prefix("350205"), "350205");
        assert_eq!(jurisdiction_prefix("350200"), "3502");
        assert_eq!(jurisdiction_prefix("350000"), "35");
        assert_eq!(jurisdiction_prefix("350100"), "3501");
    }

    #[test]
    fn unknown_stored_status_reads_as_suspended() {
        assert_eq!(Status::parse("live"), Status::Live);
        assert_eq!(Status::parse("gone"), Status::Suspended);
    }
}

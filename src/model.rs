//! Domain vocabulary shared by every stage: typed identifiers, the canonical
//! CloudEvents envelope and the delivery status enum.
//!
//! Nothing here does I/O. Identifiers are prefixed ULIDs (`msg_…`, `dlv_…`,
//! `att_…`) so that they sort by creation time and say what they name.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new, time-sortable identifier.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "_{}"), ulid::Ulid::generate()))
            }

            /// Wraps an identifier read back from the store.
            pub fn from_stored(raw: String) -> Self {
                Self(raw)
            }

            /// Parses an identifier given by a user; `None` when the prefix is wrong.
            pub fn parse(raw: &str) -> Option<Self> {
                let rest = raw.strip_prefix(concat!($prefix, "_"))?;
                (rest.len() == 26 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
                    .then(|| Self(raw.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// The hub's identifier of an accepted message (`msg_<ulid>`).
    MessageId,
    "msg"
);
prefixed_id!(
    /// One message bound for one destination (`dlv_<ulid>`).
    DeliveryId,
    "dlv"
);
prefixed_id!(
    /// One try at sending a delivery (`att_<ulid>`).
    AttemptId,
    "att"
);
prefixed_id!(
    /// One processing run of a file taken from a drop folder (`fil_<ulid>`).
    InboundFileId,
    "fil"
);

/// Where a delivery stands. Stored as its snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its turn (first attempt not made yet).
    Pending,
    /// Claimed by a dispatcher; an attempt is under way.
    InFlight,
    /// Waiting behind an earlier delivery of the same subject that is retrying.
    Held,
    /// Failed at least once; the next attempt is due at `due_at`.
    Retrying,
    /// Acknowledged by the destination.
    Delivered,
    /// Gave up: permanent failure or retry schedule exhausted. Replayable.
    Dead,
}

impl DeliveryStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [DeliveryStatus; 6] = [
        Self::Pending,
        Self::InFlight,
        Self::Held,
        Self::Retrying,
        Self::Delivered,
        Self::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Held => "held",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the delivery still has work ahead of it.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Delivered | Self::Dead)
    }
}

/// A canonical event as the hub accepted it: CloudEvents 1.0 in structured
/// JSON mode, with the `jurisdiction` extension and a typed body in `data`.
///
/// The raw JSON object is kept as received (minus nothing) so that the trace
/// API can show exactly what arrived; the fields below are the attributes the
/// hub reads.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The source's own event id (unique per `source`).
    pub id: String,
    /// URI-reference naming the sending system.
    pub source: String,
    /// Catalogue message type, e.g. `manifest-created`.
    pub r#type: String,
    /// Ordering key, e.g. `manifest:20243502000123`.
    pub subject: String,
    /// Business time of the event (RFC 3339, as sent).
    pub time: String,
    /// 6-digit division code (GB/T 2260).
    pub jurisdiction: String,
    /// The whole event object as received.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

impl Envelope {
    /// The `data` member (the typed body).
    pub fn data(&self) -> &serde_json::Value {
        self.raw.get("data").unwrap_or(&serde_json::Value::Null)
    }
}

/// Milliseconds since the Unix epoch: the hub's single time representation in
/// the store (portable across SQLite and PostgreSQL, cheap to compare).
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Renders [`Millis`] as an RFC 3339 UTC timestamp with millisecond precision.
pub fn millis_to_rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_parse_back() {
        let id = MessageId::generate();
        assert!(id.as_str().starts_with("msg_"));
        assert_eq!(MessageId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(DeliveryId::parse(id.as_str()), None);
        assert_eq!(MessageId::parse("msg_short"), None);
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = DeliveryId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = DeliveryId::generate();
        assert!(a < b);
    }

    #[test]
    fn status_names_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert!(!DeliveryStatus::Dead.is_active());
        assert!(DeliveryStatus::Held.is_active());
    }
}

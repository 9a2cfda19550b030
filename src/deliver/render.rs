//! Renders the body of a delivery: the canonical CloudEvent as stored, or
//! the partner's own format through the destination's outbound mapping for
//! the message type, in the version in force at the delivery's mapping time
//! (the message's acceptance, unless a replay asked for the current one).
//!
//! A mapping failure is permanent for that message and version: the
//! delivery is dead-lettered with the rule errors, other messages go on,
//! and an operator replays after the fix.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::connectors::DeliveryError;
use crate::mapping::MappingSet;
use crate::model::Millis;

/// Media type of the canonical form on the wire.
pub const CANONICAL_CONTENT_TYPE: &str = "application/cloudevents+json";

/// A destination's outbound mappings.
#[derive(Clone)]
pub struct Renderer {
    mappings: Arc<MappingSet>,
    by_type: Arc<BTreeMap<String, String>>,
}

/// A rendered body.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The bytes to send.
    pub body: Vec<u8>,
    /// Their media type.
    pub content_type: String,
    /// The mapping and version used; `None` for the canonical form.
    pub mapping: Option<(String, u32)>,
    /// The character encoding of `body`.
    pub encoding: &'static encoding_rs::Encoding,
}

impl Rendered {
    /// The body as text, decoded from its encoding.
    pub fn text(&self) -> String {
        self.encoding.decode_without_bom_handling(&self.body).0.into_owned()
    }
}

impl Renderer {
    /// A renderer for a destination with these `type → mapping` entries.
    pub fn new(mappings: Arc<MappingSet>, by_type: BTreeMap<String, String>) -> Self {
        Self {
            mappings,
            by_type: Arc::new(by_type),
        }
    }

    /// Renders `event` (canonical JSON) as of `mapping_at`.
    pub fn render(&self, event: &str, mapping_at: Millis) -> Result<Rendered, DeliveryError> {
        let canonical = || Rendered {
            body: event.as_bytes().to_vec(),
            content_type: CANONICAL_CONTENT_TYPE.into(),
            mapping: None,
            encoding: encoding_rs::UTF_8,
        };
        if self.by_type.is_empty() {
            return Ok(canonical());
        }
        let value: Value = serde_json::from_str(event).map_err(|e| permanent(format!("stored event is not JSON: {e}")))?;
        let Some(name) = value.get("type").and_then(Value::as_str).and_then(|t| self.by_type.get(t)) else {
            return Ok(canonical());
        };
        self.render_value(name, &value, mapping_at)
    }

    /// Renders an already-parsed event with mapping `name`.
    pub fn render_value(&self, name: &str, event: &Value, mapping_at: Millis) -> Result<Rendered, DeliveryError> {
        let at = DateTime::<Utc>::from_timestamp_millis(mapping_at).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mapping = self
            .mappings
            .in_force(name, at)
            .ok_or_else(|| permanent(format!("no version of mapping {name} is in force at {at}")))?;
        let out = mapping
            .apply_json(event)
            .map_err(|e| permanent(format!("mapping {name} v{} failed: {e}", mapping.version)))?;
        Ok(Rendered {
            body: out.body,
            content_type: out.content_type,
            mapping: Some((mapping.name.clone(), mapping.version)),
            encoding: mapping.output_encoding(),
        })
    }

    /// The mapping this destination uses for `message_type`, if any.
    pub fn mapping_for(&self, message_type: &str) -> Option<&str> {
        self.by_type.get(message_type).map(String::as_str)
    }
}

fn permanent(message: String) -> DeliveryError {
    DeliveryError::never("mapping_failed", message)
}

//! The mapping file as written: TOML deserialised with spans, so that every
//! later error can name `file:line`. Nothing here interprets the rules; see
//! [`super::compile`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A whole mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// `[mapping]`: what this file translates and from when.
    pub mapping: HeaderSpec,
    /// `[input]`: the format read.
    pub input: FormatSpec,
    /// `[output]`: the format written.
    pub output: FormatSpec,
    /// `[[rule]]`: one per output field or repeated element.
    #[serde(default)]
    pub rule: Vec<Spanned<RuleSpec>>,
}

/// `[mapping]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    /// Canonical message type (`manifest-created`), or several whose
    /// bodies share a shape (`["manifest-created", "manifest-updated"]`):
    /// every path must then exist in each type's schema.
    pub message_type: Spanned<OneOrMany>,
    /// `inbound` (partner → canonical) or `outbound` (canonical → partner).
    pub direction: Spanned<String>,
    /// Version number, unique per mapping name.
    pub version: Spanned<u32>,
    /// When this version comes into force (RFC 3339 or a date, Beijing time).
    pub effective_from: Spanned<String>,
    /// What the mapping is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[input]` or `[output]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// `json` or `xml`.
    pub format: Spanned<String>,
    /// XML root element (with prefix).
    #[serde(default)]
    pub root: Option<Spanned<String>>,
    /// XML namespaces: prefix → URI (`""` for the default namespace).
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    /// Output encoding (`UTF-8`, `GBK`, `GB18030`).
    #[serde(default)]
    pub encoding: Option<Spanned<String>>,
    /// Output media type; defaults by format.
    #[serde(default)]
    pub content_type: Option<String>,
    /// JSON Schema of the partner side (a file under `schemas/`), used to
    /// check paths at load and outputs in tests.
    #[serde(default)]
    pub schema: Option<Spanned<String>>,
    /// Write an XML declaration (default true).
    #[serde(default)]
    pub declaration: Option<bool>,
    /// Indent the output.
    #[serde(default)]
    pub pretty: Option<bool>,
}

/// One `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Output path.
    pub to: Spanned<String>,
    /// Input path, or several (first present wins, or joined with `join`).
    #[serde(default)]
    pub from: Option<Spanned<OneOrMany>>,
    /// A constant instead of `from`.
    #[serde(default)]
    pub value: Option<Spanned<toml::Value>>,
    /// Used when `from` finds nothing.
    #[serde(default)]
    pub default: Option<Spanned<toml::Value>>,
    /// Join several `from` values with this separator.
    #[serde(default)]
    pub join: Option<String>,
    /// Operations, in order.
    #[serde(default)]
    pub ops: Vec<Spanned<toml::Value>>,
    /// Apply the rule only when this holds.
    #[serde(default)]
    pub when: Option<Spanned<WhenSpec>>,
    /// Fail the document when the rule produces nothing.
    #[serde(default)]
    pub required: bool,
    /// Output type: `string`, `number`, `integer`, `boolean`.
    #[serde(default, rename = "as")]
    pub as_type: Option<Spanned<String>>,
    /// Write the text as CDATA (XML output).
    #[serde(default)]
    pub cdata: bool,
    /// Repeat for every element of this input list.
    #[serde(default)]
    pub each: Option<Spanned<String>>,
    /// Rules inside `each`, relative to the element.
    #[serde(default)]
    pub rule: Vec<Spanned<RuleSpec>>,
}

/// A path or a list of paths.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One path.
    One(String),
    /// Several paths.
    Many(Vec<String>),
}

/// `when = { path = ..., equals = ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// Input path to test.
    pub path: String,
    /// Holds when the value equals this.
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// Holds when the value is absent or differs.
    #[serde(default)]
    pub not_equals: Option<toml::Value>,
    /// Holds when the value is one of these.
    #[serde(default)]
    pub one_of: Option<Vec<toml::Value>>,
    /// Holds when the value is present (`true`) or absent (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
}

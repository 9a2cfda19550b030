//! Mapping files: declarative translation between a partner's format (JSON
//! or XML) and the canonical form, in both directions.
//!
//! A mapping is a TOML file under `mappings/` (format in
//! `docs/mappings.md`, reasons in ADR 0005). It is compiled when the hub
//! starts ([`compile`]): paths are checked against the schemas of both
//! sides, tables and operations resolved, output types fixed. Running one
//! ([`Mapping::apply`]) reads the input into a tree ([`xml_in`] or
//! serde_json), evaluates the rules into an ordered output tree
//! ([`value::Node`]) and writes it ([`xml_out`] or JSON). `--explain`
//! records, for every output field, the rule and the input behind it.
//! Cases beside each mapping are run by [`cases`] (`wastehub test`).

pub mod cases;
pub mod compile;
pub mod decimal;
mod eval;
pub mod ops;
mod project;
pub mod set;
pub mod spec;
pub mod tables;
pub mod value;
pub mod xml_in;
pub mod xml_out;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use compile::LoadContext;
pub use set::MappingSet;

use self::ops::Op;
use self::value::Scalar;
use self::xml_in::Prefixes;
use self::xml_out::XmlStyle;

/// Largest document a mapping reads (the ingest body limit is lower).
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// Which way a mapping translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Partner format → canonical event (at ingest).
    Inbound,
    /// Canonical event → partner format (at delivery).
    Outbound,
}

/// A document format, compiled.
#[derive(Clone, Debug)]
pub enum Format {
    /// JSON (`pretty` on output).
    Json {
        /// Indent output.
        pretty: bool,
    },
    /// XML input with its expected root and namespace prefixes.
    Xml {
        /// Root element name.
        root: String,
        /// URI → mapping prefix.
        prefixes: Prefixes,
    },
    /// XML output.
    XmlOut(XmlStyle),
}

/// A compiled mapping file.
#[derive(Debug)]
pub struct Mapping {
    /// Name: the file's path under the mappings folder without version
    /// suffix and extension, e.g. `national/manifest-out`.
    pub name: String,
    /// Version number.
    pub version: u32,
    /// When this version came into force.
    pub effective_from: DateTime<Utc>,
    /// The canonical message types it translates (usually one).
    pub message_types: Vec<String>,
    /// Direction.
    pub direction: Direction,
    /// Free text from the file.
    pub description: String,
    /// Source file.
    pub file: PathBuf,
    pub(crate) input: Format,
    pub(crate) output: Format,
    /// Media type of the output.
    pub content_type: String,
    pub(crate) rules: Vec<Rule>,
    /// The part of a JSON input the rules read.
    pub(crate) reads: project::Reads,
    /// Partner-side schema of the input, when declared (checked by tests).
    pub input_schema: Option<Arc<jsonschema::Validator>>,
    /// Partner-side schema of the output, when declared.
    pub output_schema: Option<Arc<jsonschema::Validator>>,
}

/// One compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    /// `file:line`, for errors and explanations.
    pub at: String,
    pub to: Vec<Seg>,
    pub to_text: String,
    pub source: Source,
    pub default: Option<Scalar>,
    pub ops: Vec<Op>,
    pub when: Option<Cond>,
    pub required: bool,
    pub as_type: Option<AsType>,
    pub cdata: bool,
    /// `to` ended in `/-`: the value is appended to the list at `to`.
    pub append: bool,
    pub children: Vec<Rule>,
}

/// A path step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// An input path.
#[derive(Clone, Debug)]
pub(crate) struct SrcPath {
    pub text: String,
    pub absolute: bool,
    pub segs: Vec<Seg>,
}

/// Where a rule's value comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// Input paths: the first present, or all joined.
    Paths { paths: Vec<SrcPath>, join: Option<String> },
    /// A constant.
    Const(Scalar),
    /// The 1-based position in the enclosing list.
    Index,
    /// Repeat the child rules for each element.
    Each(SrcPath),
}

/// A `when` condition.
#[derive(Debug)]
pub(crate) struct Cond {
    pub path: SrcPath,
    pub test: Test,
}

/// The test of a condition.
#[derive(Debug)]
pub(crate) enum Test {
    Equals(String),
    NotEquals(String),
    OneOf(Vec<String>),
    Exists(bool),
}

/// Output type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AsType {
    String,
    Number,
    Integer,
    Boolean,
}

impl AsType {
    fn name(self) -> &'static str {
        match self {
            AsType::String => "string",
            AsType::Number => "number",
            AsType::Integer => "integer",
            AsType::Boolean => "boolean",
        }
    }
}

/// A mapping file that does not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong, naming the field.
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// An input document that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// One rule that failed on a document.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleError {
    /// Output path (`/data/manifest_no`, `gf:Lines/gf:Line[2]/gf:Code`).
    pub output: String,
    /// The rule, `file:line`.
    pub rule: String,
    /// What went wrong.
    pub message: String,
}

/// Why a document could not be mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The input is not well-formed (400).
    Input(InputError),
    /// The input was read but rules failed (422).
    Rules(Vec<RuleError>),
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::Input(e) => write!(f, "line {}, column {}: {}", e.line, e.column, e.message),
            MapError::Rules(errs) => {
                for (i, e) in errs.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{}: {} (rule at {})", e.output, e.message, e.rule)?;
                }
                Ok(())
            }
        }
    }
}

/// A mapped document.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The output bytes.
    pub body: Vec<u8>,
    /// Its media type.
    pub content_type: String,
    /// The output as JSON (JSON outputs only; inbound mappings use it).
    pub json: Option<Value>,
}

/// One line of `--explain`: an output field and what produced it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Explained {
    /// Output path with list positions.
    pub output: String,
    /// The value written.
    pub value: String,
    /// The rule, `file:line`.
    pub rule: String,
    /// Input paths read (with list positions) and their values; a constant
    /// or default says so.
    pub from: String,
}

impl Mapping {
    /// Reads `input` in the mapping's input format and translates it.
    pub fn apply(&self, input: &[u8]) -> Result<Mapped, MapError> {
        let tree = self.read_for_rules(input)?;
        self.apply_tree(&tree, None)
    }

    /// Translates an already-parsed JSON input (the canonical event at
    /// delivery time), skipping a parse.
    pub fn apply_json(&self, input: &Value) -> Result<Mapped, MapError> {
        self.apply_tree(input, None)
    }

    /// Like [`apply`](Self::apply), also explaining every output field.
    pub fn explain(&self, input: &[u8]) -> Result<(Mapped, Vec<Explained>), MapError> {
        let tree = self.read_for_rules(input)?;
        let mut steps = Vec::new();
        let mapped = self.apply_tree(&tree, Some(&mut steps))?;
        Ok((mapped, steps))
    }

    /// Parses input bytes into the whole input tree (for checking it
    /// against the partner's schema).
    pub fn read(&self, input: &[u8]) -> Result<Value, MapError> {
        self.read_with(input, false)
    }

    /// Parses input bytes into the tree the rules read: a JSON input keeps
    /// only the parts on the rules' paths (see [`project`]).
    fn read_for_rules(&self, input: &[u8]) -> Result<Value, MapError> {
        self.read_with(input, true)
    }

    fn read_with(&self, input: &[u8], projected: bool) -> Result<Value, MapError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(MapError::Input(InputError {
                line: 1,
                column: 1,
                message: format!("document is {} bytes; the limit is {MAX_INPUT_BYTES}", input.len()),
            }));
        }
        match &self.input {
            Format::Xml { root, prefixes } => {
                let (name, tree) = xml_in::read(input, prefixes).map_err(MapError::Input)?;
                if &name != root {
                    return Err(MapError::Input(InputError {
                        line: 1,
                        column: 1,
                        message: format!("root element is {name}, expected {root}"),
                    }));
                }
                Ok(tree)
            }
            _ => if projected {
                self.reads.parse(input)
            } else {
                serde_json::from_slice(input)
            }
            .map_err(|e| {
                MapError::Input(InputError {
                    line: e.line(),
                    column: e.column(),
                    message: format!("malformed JSON: {e}"),
                })
            }),
        }
    }

    fn apply_tree(&self, tree: &Value, explain: Option<&mut Vec<Explained>>) -> Result<Mapped, MapError> {
        let node = eval::run(&self.rules, tree, explain).map_err(MapError::Rules)?;
        Ok(match &self.output {
            Format::XmlOut(style) => Mapped {
                body: xml_out::write(&node, style),
                content_type: self.content_type.clone(),
                json: None,
            },
            // Output formats are only ever Json or XmlOut (see compile);
            // an Xml input format in output position writes JSON.
            Format::Json { .. } | Format::Xml { .. } => {
                let pretty = matches!(self.output, Format::Json { pretty: true });
                let json = node.into_json();
                let body = if pretty {
                    serde_json::to_vec_pretty(&json)
                } else {
                    serde_json::to_vec(&json)
                }
                .unwrap_or_default();
                Mapped {
                    body,
                    content_type: self.content_type.clone(),
                    json: Some(json),
                }
            }
        })
    }

    /// The character encoding of the output bytes.
    pub fn output_encoding(&self) -> &'static encoding_rs::Encoding {
        match &self.output {
            Format::XmlOut(style) => style.encoding,
            _ => encoding_rs::UTF_8,
        }
    }

    /// The first (usually only) message type: the one inbound cases are
    /// validated as.
    pub fn message_type(&self) -> &str {
        self.message_types.first().map(String::as_str).unwrap_or_default()
    }

    /// Whether the output is XML.
    pub fn writes_xml(&self) -> bool {
        matches!(self.output, Format::XmlOut(_))
    }

    /// Whether the input is XML.
    pub fn reads_xml(&self) -> bool {
        matches!(self.input, Format::Xml { .. })
    }

    /// Namespace prefixes of the XML output, for reading it back in tests.
    pub fn output_prefixes(&self) -> Prefixes {
        match &self.output {
            Format::XmlOut(style) => Prefixes::new(style.namespaces.iter().map(|(p, u)| (p, u))),
            _ => Prefixes::default(),
        }
    }

    /// The XML output style (root, namespaces), if the output is XML.
    pub fn xml_style(&self) -> Option<&XmlStyle> {
        match &self.output {
            Format::XmlOut(style) => Some(style),
            _ => None,
        }
    }
}

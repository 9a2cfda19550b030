//! The canonical catalogue: one JSON Schema (draft 2020-12) per message type,
//! loaded from `schemas/canonical/<type>/v1.json` and compiled once.
//!
//! Shared definitions live in `schemas/canonical/common/v1.json`; schemas refer
//! to each other by relative `$ref`, resolved against their `$id`s in one
//! offline registry (nothing is ever fetched). Validation is pure.
//!
//! At load the catalogue also derives, per type, where the reference checks
//! (USCI, division code, waste code) apply, from the schemas' `$ref`s into
//! `common/v1.json` ([`crate::reference::plan`]); [`crate::reference::Checker`]
//! runs them after validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::FieldError;
use crate::reference::plan::{self, Plan};

pub mod walk;

/// Folders under `schemas/canonical/` that hold definitions, not message types.
const SHARED_FOLDERS: [&str; 1] = ["common"];

/// Why the catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not JSON.
    #[error("{path}:{line}: not valid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A schema does not compile (bad keyword, unresolvable `$ref`, …).
    #[error("{path}: invalid schema: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The compiled catalogue.
pub struct Catalogue {
    validators: BTreeMap<String, jsonschema::Validator>,
    /// The raw documents, for walking paths (mapping files are checked against them).
    docs: walk::SchemaDocs,
    /// Message type → `$id` of its schema.
    ids: BTreeMap<String, String>,
    /// Where the reference checks apply, per type (derived at load).
    plans: BTreeMap<String, Plan>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("types", &self.validators.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Catalogue {
    /// Loads and compiles every `<dir>/<type>/v1.json`.
    pub fn load(dir: &Path) -> Result<Self, SchemaError> {
        let mut docs: Vec<(String, PathBuf, Value)> = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| SchemaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut folders: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        folders.sort();
        for folder in folders {
            let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let path = folder.join("v1.json");
            if !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| SchemaError::Io {
                path: path.clone(),
                source,
            })?;
            let value: Value = serde_json::from_str(&text).map_err(|source| SchemaError::Json {
                line: source.line(),
                path: path.clone(),
                source,
            })?;
            docs.push((name, path, value));
        }
        let mut builder = jsonschema::Registry::new();
        for (_, path, doc) in &docs {
            let id = doc.get("$id").and_then(Value::as_str).ok_or_else(|| SchemaError::Invalid {
                path: path.clone(),
                message: "has no \"$id\"".into(),
            })?;
            builder = builder.add(id, doc.clone()).map_err(|e| SchemaError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        let registry = builder.prepare().map_err(|e| SchemaError::Invalid {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut validators = BTreeMap::new();
        let mut raw = walk::SchemaDocs::default();
        let mut ids = BTreeMap::new();
        for (name, _, doc) in &docs {
            if let Some(id) = doc.get("$id").and_then(Value::as_str) {
                raw.add(id, doc.clone());
                if !SHARED_FOLDERS.contains(&name.as_str()) {
                    ids.insert(name.clone(), id.to_string());
                }
            }
        }
        for (name, path, doc) in &docs {
            if SHARED_FOLDERS.contains(&name.as_str()) {
                continue;
            }
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .with_registry(&registry)
                .build(doc)
                .map_err(|e| SchemaError::Invalid {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            validators.insert(name.clone(), validator);
        }
        let plans = ids.iter().map(|(name, id)| (name.clone(), plan::derive(id, &raw))).collect();
        Ok(Self {
            validators,
            docs: raw,
            ids,
            plans,
        })
    }

    /// Every type's reference-check plan (targets derived from its schema).
    pub fn plans(&self) -> impl Iterator<Item = (&str, &Plan)> {
        self.plans.iter().map(|(t, p)| (t.as_str(), p))
    }

    /// The raw schema documents, for path checks.
    pub fn docs(&self) -> &walk::SchemaDocs {
        &self.docs
    }

    /// The `$id` of a message type's schema.
    pub fn schema_id(&self, message_type: &str) -> Option<&str> {
        self.ids.get(message_type).map(String::as_str)
    }

    /// The message types the catalogue knows.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.validators.keys().map(String::as_str)
    }

    /// Whether `message_type` has a schema.
    pub fn knows(&self, message_type: &str) -> bool {
        self.validators.contains_key(message_type)
    }

    /// Validates a body; error paths are prefixed with `prefix` (`/data` at
    /// ingest) so they point into the whole submitted event.
    pub fn validate(&self, message_type: &str, data: &Value, prefix: &str) -> Result<(), Vec<FieldError>> {
        let Some(v) = self.validators.get(message_type) else {
            return Err(vec![FieldError {
                path: "/type".into(),
                message: format!("unknown message type {message_type:?}"),
            }]);
        };
        let errors: Vec<FieldError> = v
            .iter_errors(data)
            .map(|e| FieldError {
                path: format!("{prefix}{}", e.instance_path()),
                message: e.to_string(),
            })
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Catalogue {
        Catalogue::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/canonical")).expect("shipped schemas compile")
    }

    #[test]
    fn shipped_catalogue_has_the_core_types() {
        let c = shipped();
        for t in [
            // reference data
            "enterprise-registration",
            "licence-record",
            "transporter-record",
            "whitelist-entry",
            "point-to-point-approval",
            // planning and reporting
            "management-plan",
            "ledger-entry",
            "periodic-declaration",
            "quarterly-industrial-report",
            // transfer
            "manifest-created",
            "manifest-updated",
            "manifest-dispatched",
            "manifest-handover",
            "manifest-confirmed",
            "manifest-cancelled",
            "manifest-corrected",
            "paper-manifest-backfilled",
            "track-points",
            "weighing",
            // cross-province
            "xp-request",
            "xp-acceptance",
            "xp-consultation",
            "xp-reply",
            "xp-decision",
            // corrections, prompts, other
            "data-correction",
            "prompt",
            "video-ai-alert",
            "medical-waste-handover",
            "substitute-disposal",
        ] {
            assert!(c.knows(t), "missing {t}");
        }
        assert!(!c.knows("common"));
    }

    /// Every example beside every schema: valid ones pass, invalid ones fail
    /// at the path they name.
    #[test]
    fn shipped_examples_behave_as_labelled() {
        let c = shipped();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/canonical");
        let mut checked = 0;
        for t in c.types().map(str::to_string).collect::<Vec<_>>() {
            for kind in ["valid", "invalid"] {
                let dir = root.join(&t).join("examples").join(kind);
                let Ok(rd) = std::fs::read_dir(&dir) else { continue };
                for f in rd.filter_map(Result::ok) {
                    let text = std::fs::read_to_string(f.path()).expect("readable");
                    let v: Value = serde_json::from_str(&text).expect("json");
                    let name = f.path().display().to_string();
                    if kind == "valid" {
                        assert_eq!(c.validate(&t, &v, ""), Ok(()), "{name}");
                    } else {
                        let want = v["expected_error_path"].as_str().expect("expected_error_path");
                        let errs = c.validate(&t, &v["data"], "").expect_err(&name);
                        assert!(
                            errs.iter().any(|e| e.path == want),
                            "{name}: wanted an error at {want:?}, got {errs:?}"
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 20, "only {checked} examples found");
    }

    #[test]
    fn unknown_type_is_reported_at_type() {
        let errs = shipped().validate("no-such-type", &Value::Null, "/data").unwrap_err();
        assert_eq!(errs[0].path, "/type");
    }
}

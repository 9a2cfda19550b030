//! All mapping files of the hub, compiled at start, with their versions.
//!
//! A mapping's name is its path under the mappings folder without the
//! extension and without a `.vN` suffix: `national/manifest-out.toml`
//! and `national/manifest-out.v2.toml` are versions 1 and 2 of
//! `national/manifest-out`. The version in force at a time is the one
//! with the latest `effective_from` not after it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::compile::{LoadContext, compile};
use super::tables::TableCache;
use super::{LoadError, Mapping};

/// Folder names under the mappings folder that hold test cases, not mappings.
pub const CASES_DIR: &str = "cases";

/// Every mapping, by name, versions sorted by `effective_from`.
#[derive(Debug, Default)]
pub struct MappingSet {
    by_name: BTreeMap<String, Vec<Arc<Mapping>>>,
}

impl MappingSet {
    /// Loads and compiles every `*.toml` under `dir`. All errors of all files
    /// are returned together. A missing folder is an empty set.
    pub fn load(dir: &Path, ctx: &LoadContext<'_>) -> Result<Self, Vec<LoadError>> {
        let mut files = Vec::new();
        if dir.exists() {
            collect(dir, &mut files).map_err(|e| {
                vec![LoadError {
                    file: dir.to_path_buf(),
                    line: 0,
                    message: e.to_string(),
                }]
            })?;
        }
        files.sort();
        let mut tables = TableCache::default();
        let mut errors = Vec::new();
        let mut set = MappingSet::default();
        for file in files {
            let (name, suffix_version) = name_of(dir, &file);
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(LoadError {
                        file: file.clone(),
                        line: 0,
                        message: format!("cannot read: {e}"),
                    });
                    continue;
                }
            };
            let label = file.strip_prefix(dir).unwrap_or(&file).to_string_lossy().replace('\\', "/");
            match compile(&file, &label, name.clone(), &text, ctx, &mut tables) {
                Ok(m) => {
                    if let Some(v) = suffix_version
                        && v != m.version
                    {
                        errors.push(LoadError {
                            file: file.clone(),
                            line: 1,
                            message: format!("the file name says version {v} but [mapping] version = {}", m.version),
                        });
                        continue;
                    }
                    let versions = set.by_name.entry(name).or_default();
                    if let Some(other) = versions
                        .iter()
                        .find(|o| o.version == m.version || o.effective_from == m.effective_from)
                    {
                        errors.push(LoadError {
                            file: file.clone(),
                            line: 1,
                            message: format!(
                                "version {} (effective {}) clashes with {} (version {}, effective {})",
                                m.version,
                                m.effective_from,
                                other.file.display(),
                                other.version,
                                other.effective_from
                            ),
                        });
                        continue;
                    }
                    versions.push(Arc::new(m));
                    versions.sort_by_key(|m| m.effective_from);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() { Ok(set) } else { Err(errors) }
    }

    /// Names of all mappings.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// All versions of `name`, oldest first.
    pub fn versions(&self, name: &str) -> &[Arc<Mapping>] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The version of `name` in force at `at`: the latest whose
    /// `effective_from` is not after it. Before the first version, none.
    pub fn in_force(&self, name: &str, at: DateTime<Utc>) -> Option<&Arc<Mapping>> {
        self.versions(name).iter().rev().find(|m| m.effective_from <= at)
    }

    /// Every compiled mapping, all versions.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Mapping>> {
        self.by_name.values().flatten()
    }

    /// Whether there are no mappings.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().and_then(|n| n.to_str()) != Some(CASES_DIR) {
                collect(&path, out)?;
            }
        } else if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// `national/manifest-out.v2.toml` → (`national/manifest-out`, Some(2)).
pub fn name_of(dir: &Path, file: &Path) -> (String, Option<u32>) {
    let rel = file.strip_prefix(dir).unwrap_or(file).with_extension("");
    let mut name = rel.to_string_lossy().replace('\\', "/");
    let mut version = None;
    if let Some((base, v)) = name.rsplit_once(".v")
        && let Ok(n) = v.parse::<u32>()
    {
        version = Some(n);
        name = base.to_string();
    }
    (name, version)
}

/// The stem a file's cases are filed under: `manifest-out.v2`.
pub fn case_stem(file: &Path) -> String {
    file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

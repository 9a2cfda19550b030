//! Reading one reference CSV table: a header row, then one record per line.
//! Column lookup is by header name, so columns the hub does not read may be
//! added or reordered freely. Knows nothing about what the tables mean.

use std::path::{Path, PathBuf};

use csv::StringRecord;

use super::error::ReferenceError;

/// A parsed table: the file, its header and its records with their lines.
pub struct Table {
    /// The file.
    pub path: PathBuf,
    header: StringRecord,
    rows: Vec<(u64, StringRecord)>,
}

impl Table {
    /// Reads `path`. CSV-level problems are pushed to `errors` (the record is
    /// skipped); an unreadable file returns `None`.
    pub fn read(path: &Path, errors: &mut Vec<ReferenceError>) -> Option<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(source) => {
                errors.push(ReferenceError::Io {
                    path: path.to_path_buf(),
                    source,
                });
                return None;
            }
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
        let header = match reader.headers() {
            Ok(h) => h.clone(),
            Err(source) => {
                errors.push(ReferenceError::Csv {
                    path: path.to_path_buf(),
                    line: 1,
                    source,
                });
                return None;
            }
        };
        let mut rows = Vec::new();
        for record in reader.records() {
            match record {
                Ok(r) => {
                    let line = r.position().map_or(0, csv::Position::line);
                    rows.push((line, r));
                }
                Err(source) => errors.push(ReferenceError::Csv {
                    path: path.to_path_buf(),
                    line: source.position().map_or(0, csv::Position::line),
                    source,
                }),
            }
        }
        if rows.is_empty() {
            errors.push(ReferenceError::Empty { path: path.to_path_buf() });
        }
        Some(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// The index of each of `columns`, in order; a missing one is reported
    /// and makes the whole lookup `None`.
    pub fn columns<const N: usize>(&self, columns: [&'static str; N], errors: &mut Vec<ReferenceError>) -> Option<[usize; N]> {
        let mut out = [0; N];
        let mut ok = true;
        for (slot, column) in out.iter_mut().zip(columns) {
            match self.header.iter().position(|h| h.trim() == column) {
                Some(i) => *slot = i,
                None => {
                    ok = false;
                    errors.push(ReferenceError::MissingColumn {
                        path: self.path.clone(),
                        column,
                        header: self.header.iter().collect::<Vec<_>>().join(","),
                    });
                }
            }
        }
        ok.then_some(out)
    }

    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h.trim() == name)
    }

    /// The header names, comma-separated (for messages).
    pub fn header_names(&self) -> String {
        self.header.iter().map(str::trim).collect::<Vec<_>>().join(", ")
    }

    /// The records with their 1-based line numbers.
    pub fn rows(&self) -> impl Iterator<Item = (u64, &StringRecord)> {
        self.rows.iter().map(|(l, r)| (*l, r))
    }
}

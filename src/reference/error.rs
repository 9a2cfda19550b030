//! Why reference data could not be loaded: one [`ReferenceError`] per
//! problem, each naming `file:line` where it can, gathered into
//! [`ReferenceErrors`] so that `wastehub check` lists them all in one run.

use std::fmt;
use std::path::PathBuf;

/// One problem in one reference file.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The CSV reader refused a record (unbalanced quotes, wrong field count, bad UTF-8).
    #[error("{}:{line}: not valid CSV: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line of the record.
        line: u64,
        /// The cause.
        #[source]
        source: csv::Error,
    },
    /// The header row lacks a column the hub reads.
    #[error("{}:1: missing column {column:?} (header has: {header})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: &'static str,
        /// The header as found.
        header: String,
    },
    /// A file holds no rows.
    #[error("{}: has no rows", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A value does not have the format its column requires.
    #[error("{}:{line}: {column} {value:?} is not {expected}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
        /// What it should look like, e.g. `NNN-NNN-NN`.
        expected: &'static str,
    },
    /// A key appears twice.
    #[error("{}:{line}: duplicate {column} {value} (first on line {first})", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based line of the repeat.
        line: u64,
        /// The key column.
        column: &'static str,
        /// The repeated value.
        value: String,
        /// Line of the first occurrence.
        first: u64,
    },
    /// A waste code's category is not `HW` + the code's last two digits.
    #[error("{}:{line}: category {category} does not match waste code {code} (expected {expected})", path.display())]
    CategoryMismatch {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The code.
        code: String,
        /// The category found.
        category: String,
        /// `HW` + the code's last two digits.
        expected: String,
    },
    /// The editions table names a code list that is not in the folder.
    #[error("{}:{line}: edition {edition} names file {file:?}, which does not exist in {}", path.display(), dir.display())]
    UnknownEditionFile {
        /// The editions table.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The edition.
        edition: String,
        /// The file named.
        file: String,
        /// The reference folder.
        dir: PathBuf,
    },
}

/// Every problem found while loading the reference folder.
#[derive(Debug, Default)]
pub struct ReferenceErrors(pub Vec<ReferenceError>);

impl fmt::Display for ReferenceErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ReferenceErrors {}

//! CSV tables used by mappings: code tables beside a mapping file
//! (`<dir>/<name>.csv`) and reference tables (`schemas/reference/<name>.csv`).
//! A table has a header row; an operation picks a key column and a value
//! column and gets a hash map, built once when the mapping loads. Files are
//! read by the reference tables' reader ([`Table`]: header row, byte-order
//! mark allowed, errors with `file:line`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::reference::table::Table;

/// Tables loaded so far, shared by every mapping that uses them.
#[derive(Default)]
pub struct TableCache {
    tables: HashMap<PathBuf, Arc<Table>>,
    maps: HashMap<(PathBuf, String, String), Arc<HashMap<String, String>>>,
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCache")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TableCache {
    /// Loads `file` (once), with the reader of the reference tables (header
    /// row, byte-order mark allowed). The error names `file:line`.
    pub fn table(&mut self, file: &Path) -> Result<Arc<Table>, String> {
        if let Some(t) = self.tables.get(file) {
            return Ok(t.clone());
        }
        let mut errors = Vec::new();
        let table = Table::read(file, &mut errors);
        if let Some(first) = errors.first() {
            return Err(first.to_string());
        }
        let table = Arc::new(table.ok_or_else(|| format!("{}: cannot read table", file.display()))?);
        self.tables.insert(file.to_path_buf(), table.clone());
        Ok(table)
    }

    /// A `key column → value column` map of `file`. Unknown columns and a
    /// key that appears twice with different values are errors (an
    /// ambiguous code table would translate by accident of row order).
    pub fn map(&mut self, file: &Path, key: &str, value: &str) -> Result<Arc<HashMap<String, String>>, String> {
        let cache_key = (file.to_path_buf(), key.to_string(), value.to_string());
        if let Some(m) = self.maps.get(&cache_key) {
            return Ok(m.clone());
        }
        let table = self.table(file)?;
        let col = |name: &str| {
            table
                .column(name)
                .ok_or_else(|| format!("{}: no column {name:?} (columns: {})", file.display(), table.header_names()))
        };
        let (k, v) = (col(key)?, col(value)?);
        let mut map = HashMap::new();
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for (line, row) in table.rows() {
            let (Some(kv), Some(vv)) = (row.get(k), row.get(v)) else {
                return Err(format!("{}:{line}: row has fewer columns than the header", file.display()));
            };
            if kv.is_empty() {
                continue;
            }
            if let Some(prev) = map.insert(kv.to_string(), vv.to_string())
                && prev != vv
            {
                return Err(format!(
                    "{}:{line}: {key} {kv:?} appears again (first on line {}) with a different {value}: the table is ambiguous",
                    file.display(),
                    first_line.get(kv).copied().unwrap_or(0)
                ));
            }
            first_line.entry(kv.to_string()).or_insert(line);
        }
        let map = Arc::new(map);
        self.maps.insert(cache_key, map.clone());
        Ok(map)
    }
}

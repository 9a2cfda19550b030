//! CSV tables used by mappings: code tables beside a mapping file
//! (`<dir>/<name>.csv`) and reference tables (`schemas/reference/<name>.csv`).
//! A table has a header row; an operation picks a key column and a value
//! column and gets a hash map, built once when the mapping loads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded table.
#[derive(Debug)]
pub struct Table {
    /// Where it came from.
    pub file: PathBuf,
    /// Header names.
    pub columns: Vec<String>,
    /// Data rows with their 1-based file line.
    pub rows: Vec<(usize, Vec<String>)>,
}

/// Tables loaded so far, shared by every mapping that uses them.
#[derive(Debug, Default)]
pub struct TableCache {
    tables: HashMap<PathBuf, Arc<Table>>,
    maps: HashMap<(PathBuf, String, String), Arc<HashMap<String, String>>>,
}

impl TableCache {
    /// Loads `file` (once). The error names `file:line`.
    pub fn table(&mut self, file: &Path) -> Result<Arc<Table>, String> {
        if let Some(t) = self.tables.get(file) {
            return Ok(t.clone());
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(file)
            .map_err(|e| format!("{}: cannot read table: {e}", file.display()))?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| format!("{}:1: bad header: {e}", file.display()))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                format!("{}:{line}: {e}", file.display())
            })?;
            let line = record.position().map_or(0, |p| p.line() as usize);
            rows.push((line, record.iter().map(str::to_string).collect()));
        }
        let table = Arc::new(Table {
            file: file.to_path_buf(),
            columns,
            rows,
        });
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
                .columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| format!("{}: no column {name:?} (columns: {})", file.display(), table.columns.join(", ")))
        };
        let (k, v) = (col(key)?, col(value)?);
        let mut map = HashMap::with_capacity(table.rows.len());
        let mut first_line: HashMap<&str, usize> = HashMap::new();
        for (line, row) in &table.rows {
            let (Some(kv), Some(vv)) = (row.get(k), row.get(v)) else {
                return Err(format!("{}:{line}: row has fewer columns than the header", file.display()));
            };
            if kv.is_empty() {
                continue;
            }
            if let Some(prev) = map.insert(kv.clone(), vv.clone())
                && prev != *vv
            {
                return Err(format!(
                    "{}:{line}: {key} {kv:?} appears again (first on line {}) with a different {value}: the table is ambiguous",
                    file.display(),
                    first_line.get(kv.as_str()).copied().unwrap_or(0)
                ));
            }
            first_line.entry(kv.as_str()).or_insert(*line);
        }
        let map = Arc::new(map);
        self.maps.insert(cache_key, map.clone());
        Ok(map)
    }
}

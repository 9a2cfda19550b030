//! Hazardous waste codes (废物代码) of the National Hazardous Waste List, by
//! edition (reference §4.1). Each edition is a CSV code list; the editions
//! table (`waste-code-editions.csv`: `edition,valid_from,file`) says which is
//! in force when. The edition in force on a date is the latest whose
//! `valid_from` is on or before it; adding an edition is a data change only.
//!
//! Codes are held as 8-digit numbers (`900-041-49` → 90004149), so a lookup
//! neither allocates nor hashes a string.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;

use super::error::ReferenceError;
use super::table::Table;

/// The editions table's file name in the reference folder.
pub const EDITIONS_FILE: &str = "waste-code-editions.csv";

/// Parses `NNN-NNN-NN` into its 8 digits as a number.
pub fn parse(code: &str) -> Option<u32> {
    let b = code.as_bytes();
    if b.len() != 10 || b[3] != b'-' || b[7] != b'-' {
        return None;
    }
    let mut n = 0u32;
    for (i, &c) in b.iter().enumerate() {
        if i == 3 || i == 7 {
            continue;
        }
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

/// The category (`HWnn`) a code belongs to: `HW` + its last two digits.
pub fn category_of(code: &str) -> Option<&str> {
    code.get(8..10)
}

/// Whether `category` is `HW` + the last two digits of `code`.
pub fn category_matches(code: &str, category: &str) -> bool {
    category.len() == 4 && category.starts_with("HW") && category_of(code) == category.get(2..4)
}

/// One edition of the list.
#[derive(Debug)]
pub struct Edition {
    /// Its name as in the editions table, e.g. `2021`.
    pub name: String,
    /// First day (Beijing time) it is in force.
    pub valid_from: NaiveDate,
    codes: HashSet<u32>,
    /// Category numbers (the `nn` of `HWnn`) that have at least one code.
    categories: [bool; 100],
}

impl Edition {
    /// Whether `code` (`NNN-NNN-NN`) is in this edition. `900-000-nn` (a
    /// waste identified as hazardous by GB 5085 / HJ 298 and not listed,
    /// 2021 edition Art. 6) counts as listed when category `HWnn` exists.
    pub fn contains(&self, code: &str) -> bool {
        let Some(n) = parse(code) else { return false };
        if n / 100 == 900_000 {
            return self.categories[(n % 100) as usize];
        }
        self.codes.contains(&n)
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the edition has no codes.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// Every loaded edition, oldest first.
#[derive(Debug, Default)]
pub struct WasteCodes {
    editions: Vec<Edition>,
}

/// The edition applied on a date, and whether it is in force then (false
/// when the date is before the earliest edition loaded, which is used instead).
pub struct Applied<'a> {
    /// The edition.
    pub edition: &'a Edition,
    /// False when `date` precedes every edition.
    pub in_force: bool,
}

impl WasteCodes {
    /// Loads the editions table `dir/waste-code-editions.csv` and every code
    /// list it names.
    pub fn load(dir: &Path, errors: &mut Vec<ReferenceError>) -> Self {
        let mut out = Self::default();
        let path = dir.join(EDITIONS_FILE);
        let Some(table) = Table::read(&path, errors) else { return out };
        let Some([ed_col, from_col, file_col]) = table.columns(["edition", "valid_from", "file"], errors) else {
            return out;
        };
        let mut names: HashMap<String, u64> = HashMap::new();
        let mut dates: HashMap<NaiveDate, u64> = HashMap::new();
        for (line, row) in table.rows() {
            let name = row.get(ed_col).unwrap_or_default().trim();
            let from = row.get(from_col).unwrap_or_default().trim();
            let file = row.get(file_col).unwrap_or_default().trim();
            let bad = |column, value: &str, expected| ReferenceError::BadValue {
                path: path.clone(),
                line,
                column,
                value: value.to_string(),
                expected,
            };
            if name.is_empty() {
                errors.push(bad("edition", name, "a name such as 2021"));
                continue;
            }
            let Ok(valid_from) = NaiveDate::parse_from_str(from, "%Y-%m-%d") else {
                errors.push(bad("valid_from", from, "a date YYYY-MM-DD"));
                continue;
            };
            if let Some(first) = names.insert(name.to_string(), line) {
                errors.push(dup(&path, line, "edition", name, first));
                continue;
            }
            if let Some(first) = dates.insert(valid_from, line) {
                errors.push(dup(&path, line, "valid_from", from, first));
                continue;
            }
            // A plain file name in this folder: no paths, so the folder stays self-contained.
            let list = dir.join(file);
            if file.is_empty() || file.contains(['/', '\\']) || !list.is_file() {
                errors.push(ReferenceError::UnknownEditionFile {
                    path: path.clone(),
                    line,
                    edition: name.to_string(),
                    file: file.to_string(),
                    dir: dir.to_path_buf(),
                });
                continue;
            }
            if let Some(edition) = load_list(&list, name, valid_from, errors) {
                out.editions.push(edition);
            }
        }
        out.editions.sort_by_key(|e| e.valid_from);
        out
    }

    /// The editions, oldest first.
    pub fn editions(&self) -> &[Edition] {
        &self.editions
    }

    /// The edition in force on `date` (Beijing time): the latest whose
    /// `valid_from` ≤ `date`; before the first one, the first one.
    pub fn at(&self, date: NaiveDate) -> Option<Applied<'_>> {
        let in_force = self.editions.iter().rev().find(|e| e.valid_from <= date);
        match in_force {
            Some(edition) => Some(Applied { edition, in_force: true }),
            None => self.editions.first().map(|edition| Applied { edition, in_force: false }),
        }
    }
}

fn dup(path: &Path, line: u64, column: &'static str, value: &str, first: u64) -> ReferenceError {
    ReferenceError::Duplicate {
        path: path.to_path_buf(),
        line,
        column,
        value: value.to_string(),
        first,
    }
}

fn load_list(path: &Path, name: &str, valid_from: NaiveDate, errors: &mut Vec<ReferenceError>) -> Option<Edition> {
    let table = Table::read(path, errors)?;
    let [code_col, cat_col] = table.columns(["code", "category"], errors)?;
    let before = errors.len();
    let mut first: HashMap<u32, u64> = HashMap::new();
    let mut categories = [false; 100];
    for (line, row) in table.rows() {
        let code = row.get(code_col).unwrap_or_default();
        let category = row.get(cat_col).unwrap_or_default();
        let Some(n) = parse(code) else {
            errors.push(ReferenceError::BadValue {
                path: path.to_path_buf(),
                line,
                column: "code",
                value: code.to_string(),
                expected: "a waste code NNN-NNN-NN",
            });
            continue;
        };
        if !category_matches(code, category) {
            errors.push(ReferenceError::CategoryMismatch {
                path: path.to_path_buf(),
                line,
                code: code.to_string(),
                category: category.to_string(),
                expected: format!("HW{}", category_of(code).unwrap_or("??")),
            });
            continue;
        }
        if let Some(f) = first.insert(n, line) {
            errors.push(dup(path, line, "code", code, f));
            continue;
        }
        categories[(n % 100) as usize] = true;
    }
    (errors.len() == before).then(|| Edition {
        name: name.to_string(),
        valid_from,
        codes: first.into_keys().collect(),
        categories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> WasteCodes {
        let mut errors = Vec::new();
        let w = WasteCodes::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/reference"), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        w
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn parses_codes_and_categories() {
        assert_eq!(parse("900-041-49"), Some(90_004_149));
        assert_eq!(parse("841-001-01"), Some(84_100_101));
        assert_eq!(parse("90004149"), None);
        assert_eq!(parse("900-041-4a"), None);
        assert!(category_matches("900-041-49", "HW49"));
        assert!(!category_matches("900-041-49", "HW08"));
        assert!(!category_matches("900-041-49", "hw49"));
    }

    #[test]
    fn the_shipped_2021_list_has_467_codes_in_46_categories() {
        let w = shipped();
        let [e] = w.editions() else { panic!("one edition") };
        assert_eq!((e.name.as_str(), e.len()), ("2021", 467));
        assert_eq!(e.categories.iter().filter(|c| **c).count(), 46);
        assert!(e.contains("900-041-49"));
        assert!(e.contains("398-004-22"));
        assert!(!e.contains("900-048-49"));
        // 900-999-49 looks made up but is listed (HW49, wastes declared discarded by their owner).
        assert!(e.contains("900-999-49"));
        // Identified wastes: 900-000-nn for an existing category only (HW41-44 do not exist).
        assert!(e.contains("900-000-49"));
        assert!(!e.contains("900-000-42"));
    }

    #[test]
    fn the_2021_edition_stays_in_force_until_another_is_loaded() {
        let w = shipped();
        let a = w.at(date("2026-03-02")).unwrap();
        assert!(a.in_force);
        assert_eq!(a.edition.name, "2021");
        let a = w.at(date("2019-06-01")).unwrap();
        assert!(!a.in_force, "before 2021-01-01 the first edition is applied, not in force");
    }

    #[test]
    fn selects_the_edition_in_force_by_date() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "code,category\n900-041-49,HW49\n900-999-49,HW49\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "code,category\n900-041-49,HW49\n321-100-48,HW48\n").unwrap();
        std::fs::write(
            dir.path().join(EDITIONS_FILE),
            "edition,valid_from,file\n2025,2025-01-01,b.csv\n2021,2021-01-01,a.csv\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        let w = WasteCodes::load(dir.path(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let old = w.at(date("2024-12-31")).unwrap().edition;
        let new = w.at(date("2025-01-01")).unwrap().edition;
        assert_eq!((old.name.as_str(), new.name.as_str()), ("2021", "2025"));
        assert!(old.contains("900-999-49") && !new.contains("900-999-49"));
        assert!(!old.contains("321-100-48") && new.contains("321-100-48"));
    }

    #[test]
    fn loading_names_file_and_line_of_each_problem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.csv"),
            "code,category\n900-041-49,HW49\n90004149,HW49\n900-041-49,HW49\n900-041-08,HW49\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(EDITIONS_FILE),
            "edition,valid_from,file\n2021,2021-01-01,a.csv\n2025,2025-13-01,b.csv\n2026,2026-01-01,missing.csv\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        let w = WasteCodes::load(dir.path(), &mut errors);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let want = [
            "waste-code-editions.csv:3: valid_from \"2025-13-01\" is not a date YYYY-MM-DD",
            "waste-code-editions.csv:4: edition 2026 names file \"missing.csv\", which does not exist",
            "a.csv:3: code \"90004149\" is not a waste code NNN-NNN-NN",
            "a.csv:4: duplicate code 900-041-49 (first on line 2)",
            "a.csv:5: category HW49 does not match waste code 900-041-08 (expected HW08)",
        ];
        for w in want {
            assert!(text.iter().any(|t| t.contains(w)), "missing {w:?} in {text:#?}");
        }
        assert_eq!(text.len(), want.len(), "{text:#?}");
        assert!(w.editions().is_empty(), "a broken list is not loaded");
    }
}

//! Administrative division codes (行政区划代码, GB/T 2260, reference §5.2).
//!
//! The table (`divisions.csv`) holds Fujian only. A code of a province the
//! table covers must be a row of the table; a code of any other province is
//! accepted when its first two digits are a GB/T 2260 province-level code,
//! since the hub has no table to look it up in.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::error::ReferenceError;
use super::table::Table;

/// GB/T 2260 province-level codes (the first two digits of every division
/// code): 11 北京 12 天津 13 河北 14 山西 15 内蒙古, 21 辽宁 22 吉林 23 黑龙江,
/// 31 上海 32 江苏 33 浙江 34 安徽 35 福建 36 江西 37 山东, 41 河南 42 湖北
/// 43 湖南 44 广东 45 广西 46 海南, 50 重庆 51 四川 52 贵州 53 云南 54 西藏,
/// 61 陕西 62 甘肃 63 青海 64 宁夏 65 新疆, 71 台湾, 81 香港 82 澳门.
pub const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// Parses a 6-digit division code into a number (`None` if not 6 ASCII digits).
pub fn parse(code: &str) -> Option<u32> {
    let b = code.as_bytes();
    if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// Why a division code was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DivisionProblem {
    /// Not 6 digits.
    Format,
    /// The province digits are not a GB/T 2260 province.
    UnknownProvince(u32),
    /// The province is in the table but the code is not.
    NotInTable(u32),
}

/// The division table: every code, by province.
#[derive(Debug, Default)]
pub struct Divisions {
    codes: HashSet<u32>,
    /// Provinces that have rows (their codes are checked in full).
    covered: HashSet<u32>,
}

impl Divisions {
    /// Loads `divisions.csv` (column `code`; the others are kept for
    /// other readers of the folder).
    pub fn load(path: &Path, errors: &mut Vec<ReferenceError>) -> Self {
        let mut out = Self::default();
        let Some(table) = Table::read(path, errors) else { return out };
        let Some([code_col]) = table.columns(["code"], errors) else {
            return out;
        };
        let mut first: HashMap<u32, u64> = HashMap::new();
        for (line, row) in table.rows() {
            let raw = row.get(code_col).unwrap_or_default();
            let Some(code) = parse(raw).filter(|c| PROVINCES.contains(&province(*c))) else {
                errors.push(ReferenceError::BadValue {
                    path: path.to_path_buf(),
                    line,
                    column: "code",
                    value: raw.to_string(),
                    expected: "a 6-digit GB/T 2260 code of a province-level division",
                });
                continue;
            };
            if let Some(f) = first.get(&code) {
                errors.push(ReferenceError::Duplicate {
                    path: path.to_path_buf(),
                    line,
                    column: "code",
                    value: raw.to_string(),
                    first: *f,
                });
                continue;
            }
            first.insert(code, line);
            out.codes.insert(code);
            out.covered.insert(code / 10_000);
        }
        out
    }

    /// Number of codes in the table.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Checks one code: full lookup for provinces in the table, province
    /// prefix otherwise.
    pub fn check(&self, code: &str) -> Result<(), DivisionProblem> {
        let n = parse(code).ok_or(DivisionProblem::Format)?;
        let p = n / 10_000;
        if !PROVINCES.contains(&province(n)) {
            return Err(DivisionProblem::UnknownProvince(p));
        }
        if self.covered.contains(&p) && !self.codes.contains(&n) {
            return Err(DivisionProblem::NotInTable(p));
        }
        Ok(())
    }
}

fn province(code: u32) -> u8 {
    u8::try_from(code / 10_000).unwrap_or(0)
}

/// The error message for a refused code.
pub fn message(code: &str, problem: DivisionProblem) -> String {
    match problem {
        DivisionProblem::Format => format!("division code {code:?} is not 6 digits"),
        DivisionProblem::UnknownProvince(p) => {
            format!("division code {code} does not exist ({p:02} is not a GB/T 2260 province-level code)")
        }
        DivisionProblem::NotInTable(_) => format!("division code {code} does not exist"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Divisions {
        let mut errors = Vec::new();
        let d = Divisions::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/reference/divisions.csv"),
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        d
    }

    #[test]
    fn the_shipped_table_holds_fujian() {
        let d = shipped();
        assert_eq!(d.len(), 94);
        for code in ["350000", "350100", "350206", "350128", "350404", "350527"] {
            assert_eq!(d.check(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn refuses_a_made_up_fujian_code() {
        let d = shipped();
        assert_eq!(d.check("359999"), Err(DivisionProblem::NotInTable(35)));
        assert_eq!(
            message("359999", DivisionProblem::NotInTable(35)),
            "division code 359999 does not exist"
        );
        // 三明 梅列区 350402 merged into 三元区 350404.
        assert_eq!(d.check("350402"), Err(DivisionProblem::NotInTable(35)));
    }

    #[test]
    fn accepts_other_provinces_by_their_province_digits() {
        let d = shipped();
        assert_eq!(d.check("360121"), Ok(()));
        assert_eq!(d.check("110101"), Ok(()));
        assert_eq!(d.check("820000"), Ok(()));
    }

    #[test]
    fn refuses_unknown_provinces_and_malformed_codes() {
        let d = shipped();
        assert_eq!(d.check("990101"), Err(DivisionProblem::UnknownProvince(99)));
        assert_eq!(d.check("240101"), Err(DivisionProblem::UnknownProvince(24)));
        assert_eq!(d.check("010101"), Err(DivisionProblem::UnknownProvince(1)));
        assert_eq!(d.check("35020"), Err(DivisionProblem::Format));
        assert_eq!(d.check("35020a"), Err(DivisionProblem::Format));
        assert_eq!(
            message("010101", DivisionProblem::UnknownProvince(1)),
            "division code 010101 does not exist (01 is not a GB/T 2260 province-level code)"
        );
    }

    #[test]
    fn loading_names_file_and_line_of_bad_and_duplicate_codes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("divisions.csv");
        std::fs::write(&p, "code,name_zh\n350100,福州市\n35010,坏\n350100,重复\n990000,无\n").unwrap();
        let mut errors = Vec::new();
        Divisions::load(&p, &mut errors);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].ends_with("divisions.csv:3: code \"35010\" is not a 6-digit GB/T 2260 code of a province-level division"),
            "{text:?}"
        );
        assert!(
            text[1].ends_with("divisions.csv:4: duplicate code 350100 (first on line 2)"),
            "{text:?}"
        );
        assert!(text[2].contains("divisions.csv:5: code \"990000\""), "{text:?}");
    }
}

//! Test cases beside mapping files, run by `wastehub test` and by
//! `cargo test`.
//!
//! For `mappings/<partner>/<stem>.toml` the cases are folders
//! `mappings/<partner>/cases/<stem>/<case>/` holding `input.json` or
//! `input.xml`, and either `expected.json` / `expected.xml` (the output,
//! compared structurally: key order, white space between elements and the
//! choice of namespace prefixes do not matter) or `expected-error.txt` (text
//! the mapping error must contain). Outputs are also validated: canonical
//! outputs against the catalogue, partner outputs against the mapping's
//! declared partner schema; inputs against the partner schema when declared.
//! Canonical outputs also pass the reference checks (USCI check character,
//! division and waste codes) when reference data is given.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::set::{CASES_DIR, case_stem};
use super::value::{Node, Scalar};
use super::{Direction, Mapping, MappingSet, xml_in, xml_out};
use crate::reference::Checker;
use crate::schema::Catalogue;

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// The mapping file.
    pub mapping: PathBuf,
    /// The case folder.
    pub case: PathBuf,
    /// `None` when the case passed; otherwise a readable report.
    pub failure: Option<String>,
}

/// Runs every case of every mapping in `set` (versions included). With
/// `only`, runs the cases of mappings whose file or case folder lies under
/// that path.
/// Canonical outputs also pass the reference checks when `checker` is given.
pub fn run_all(set: &MappingSet, catalogue: &Catalogue, checker: Option<&Checker>, only: Option<&Path>) -> Vec<CaseResult> {
    let only = only.map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()));
    let mut results = Vec::new();
    for mapping in set.all() {
        let Some(dir) = mapping.file.parent() else { continue };
        let cases_dir = dir.join(CASES_DIR).join(case_stem(&mapping.file));
        let Ok(entries) = std::fs::read_dir(&cases_dir) else { continue };
        let mut cases: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        cases.sort();
        for case in cases {
            if let Some(only) = &only {
                let file = mapping.file.canonicalize().unwrap_or_else(|_| mapping.file.clone());
                let case_abs = case.canonicalize().unwrap_or_else(|_| case.clone());
                if !file.starts_with(only) && !case_abs.starts_with(only) && !only.starts_with(&case_abs) {
                    continue;
                }
            }
            let failure = run_case(mapping, catalogue, checker, &case).err();
            results.push(CaseResult {
                mapping: mapping.file.clone(),
                case,
                failure,
            });
        }
    }
    results
}

/// Mappings that have no case at all (reported as a warning by `wastehub test`).
pub fn without_cases(set: &MappingSet) -> Vec<PathBuf> {
    set.all()
        .filter(|m| {
            let dir = m.file.parent().unwrap_or(Path::new("."));
            let cases = dir.join(CASES_DIR).join(case_stem(&m.file));
            std::fs::read_dir(cases).map(|mut d| d.next().is_none()).unwrap_or(true)
        })
        .map(|m| m.file.clone())
        .collect()
}

fn find(case: &Path, stem: &str) -> Option<PathBuf> {
    ["json", "xml", "txt"]
        .iter()
        .map(|ext| case.join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
}

fn run_case(m: &Mapping, catalogue: &Catalogue, checker: Option<&Checker>, case: &Path) -> Result<(), String> {
    let input_file = find(case, "input").ok_or("no input.json or input.xml")?;
    let input = std::fs::read(&input_file).map_err(|e| format!("{}: {e}", input_file.display()))?;
    if let Some(schema) = &m.input_schema {
        let tree = m.read(&input).map_err(|e| format!("input does not read: {e}"))?;
        let errs: Vec<String> = schema.iter_errors(&tree).map(|e| format!("{}: {e}", e.instance_path())).collect();
        if !errs.is_empty() {
            return Err(format!("input does not match the partner schema:\n  {}", errs.join("\n  ")));
        }
    }
    let result = m.apply(&input);
    let error_file = case.join("expected-error.txt");
    if error_file.exists() {
        let want = std::fs::read_to_string(&error_file).map_err(|e| e.to_string())?;
        let want = want.trim();
        return match result {
            Ok(out) => Err(format!(
                "expected an error containing {want:?}, but the mapping succeeded:\n{}",
                String::from_utf8_lossy(&out.body)
            )),
            Err(e) if e.to_string().contains(want) => Ok(()),
            Err(e) => Err(format!("expected an error containing {want:?}, got:\n{e}")),
        };
    }
    let out = result.map_err(|e| format!("mapping failed:\n{e}"))?;
    let expected_file = find(case, "expected").ok_or("no expected.json, expected.xml or expected-error.txt")?;
    let expected = std::fs::read(&expected_file).map_err(|e| format!("{}: {e}", expected_file.display()))?;
    let actual_tree = if m.writes_xml() {
        let prefixes = m.output_prefixes();
        let (root, actual) = xml_in::read(&out.body, &prefixes).map_err(|e| format!("output is not readable XML: {e:?}"))?;
        let (want_root, want) = xml_in::read(&expected, &prefixes)
            .map_err(|e| format!("{}: line {}, column {}: {}", expected_file.display(), e.line, e.column, e.message))?;
        if root != want_root || actual != want {
            let style = m.xml_style().cloned().map(|mut s| {
                s.pretty = true;
                s.declaration = false;
                s.encoding = encoding_rs::UTF_8;
                s
            });
            let render = |root: &str, v: &Value| match &style {
                Some(s) => {
                    let mut s = s.clone();
                    s.root = root.to_string();
                    String::from_utf8_lossy(&xml_out::write(&to_node(v), &s)).into_owned()
                }
                None => String::new(),
            };
            return Err(diff(&render(&want_root, &want), &render(&root, &actual)));
        }
        actual
    } else {
        let actual = out.json.clone().unwrap_or(Value::Null);
        let want: Value =
            serde_json::from_slice(&expected).map_err(|e| format!("{}:{}: not JSON: {e}", expected_file.display(), e.line()))?;
        if actual != want {
            let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
            return Err(diff(&pretty(&want), &pretty(&actual)));
        }
        actual
    };
    match m.direction {
        Direction::Inbound => {
            for field in ["id", "subject"] {
                if !actual_tree.get(field).is_some_and(Value::is_string) {
                    return Err(format!("output has no /{field} string"));
                }
            }
            let data = actual_tree.get("data").cloned().unwrap_or(Value::Null);
            if let Err(errs) = catalogue.validate(m.message_type(), &data, "/data") {
                let lines: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.path, e.message)).collect();
                return Err(format!(
                    "output does not validate against the {} schema:\n  {}",
                    m.message_type(),
                    lines.join("\n  ")
                ));
            }
            if let Some(checker) = checker {
                let time = actual_tree
                    .get("time")
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .unwrap_or_else(|| chrono::Utc::now().fixed_offset());
                let errs = checker.check(m.message_type(), &data, time, "/data");
                if !errs.is_empty() {
                    let lines: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.path, e.message)).collect();
                    return Err(format!("output fails the reference checks:\n  {}", lines.join("\n  ")));
                }
            }
        }
        Direction::Outbound => {
            if let Some(schema) = &m.output_schema {
                let errs: Vec<String> = schema
                    .iter_errors(&actual_tree)
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                if !errs.is_empty() {
                    return Err(format!("output does not match the partner schema:\n  {}", errs.join("\n  ")));
                }
            }
        }
    }
    Ok(())
}

fn diff(expected: &str, actual: &str) -> String {
    let d = similar::TextDiff::from_lines(expected, actual);
    format!(
        "output differs from the expected file (- expected, + actual):\n{}",
        d.unified_diff().context_radius(3).header("expected", "actual")
    )
}

/// Rebuilds an output tree from a read document, to print it for a diff.
fn to_node(v: &Value) -> Node {
    match v {
        Value::Object(m) => Node::Obj(m.iter().map(|(k, v)| (k.clone(), to_node(v))).collect()),
        Value::Array(a) => Node::Arr(a.iter().map(to_node).collect()),
        other => Node::Val {
            value: Scalar::from_value(other).ok().flatten().unwrap_or_else(|| Scalar::string("")),
            cdata: false,
        },
    }
}

//! Tests of the mapping engine as a whole: load errors with `file:line`,
//! rule semantics, and the shipped mappings' cases.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::compile::{LoadContext, compile};
use super::tables::TableCache;
use super::{LoadError, MapError, Mapping, MappingSet, cases};
use crate::schema::Catalogue;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn catalogue() -> Catalogue {
    Catalogue::load(&root().join("schemas/canonical")).expect("catalogue")
}

/// Compiles `body` (rules and all) as a file in a temp folder that also
/// holds a code table `units.csv`.
fn compile_text(text: &str) -> Result<Mapping, Vec<LoadError>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("units.csv"), "park,canonical\n千克,kg\n吨,t\n").unwrap();
    let file = dir.path().join("m.toml");
    std::fs::write(&file, text).unwrap();
    let cat = catalogue();
    let ctx = LoadContext {
        catalogue: &cat,
        reference_dir: &root().join("schemas/reference"),
    };
    compile(&file, "m.toml", "m".into(), text, &ctx, &mut TableCache::default())
}

const OUT_HEAD: &str = r#"
[mapping]
message_type = "manifest-created"
direction = "outbound"
version = 1
effective_from = "2026-01-01"

[input]
format = "json"

[output]
format = "json"
"#;

const IN_HEAD: &str = r#"
[mapping]
message_type = "ledger-entry"
direction = "inbound"
version = 1
effective_from = "2026-01-01"

[input]
format = "json"

[output]
format = "json"

[[rule]]
to = "/id"
from = "rid"

[[rule]]
to = "/subject"
from = "batch"
"#;

fn load_error(text: &str) -> LoadError {
    let errs = compile_text(text).expect_err("should not compile");
    errs.into_iter().next().unwrap()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle") + 1
}

#[test]
fn load_errors_name_the_line_and_the_field() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("{OUT_HEAD}\n[[rule]]\nto = \"x\"\nfrom = \"/data/manifest_nr\"\n"),
            "/data/manifest_nr",
            "known there: carrier",
        ),
        (
            format!(
                "{OUT_HEAD}\n[[rule]]\nto = \"x\"\nfrom = \"/data/version\"\nops = [{{ code = {{ table = \"nope\", from = \"a\", to = \"b\" }} }}]\n"
            ),
            "ops = ",
            "code table \"nope\"",
        ),
        (
            format!("{OUT_HEAD}\n[[rule]]\nto = \"x\"\nform = \"/data/version\"\n"),
            "form =",
            "unknown field `form`",
        ),
        (
            format!("{OUT_HEAD}\n[[rule]]\nto = \"x\"\neach = \"/data/consignor\"\n  [[rule.rule]]\n  to = \"y\"\n  from = \"usci\"\n"),
            "each =",
            "not a list",
        ),
        (
            format!("{OUT_HEAD}\n[[rule]]\nto = \"x\"\nfrom = \"/data/version\"\nops = [\"reverse\"]\n"),
            "ops = ",
            "unknown operation \"reverse\"",
        ),
        (
            format!("{OUT_HEAD}\n[[rule]]\nto = \"x\"\nfrom = \"/time\"\nops = [{{ datetime = {{ from = \"yyyyMMdd\" }} }}]\n"),
            "ops = ",
            "not a time format",
        ),
        (
            format!("{OUT_HEAD}\n[[rule]]\nto = \"x\"\nfrom = \"/data/version\"\nops = [{{ unit = {{ from = \"kg\", to = \"L\" }} }}]\n"),
            "ops = ",
            "cannot convert kg (mass) to L (volume)",
        ),
        (
            format!("{IN_HEAD}\n[[rule]]\nto = \"/data/batch_cod\"\nfrom = \"batch\"\n"),
            "batch_cod",
            "unknown output path",
        ),
        (
            format!("{IN_HEAD}\n[[rule]]\nto = \"/data/container/count\"\nfrom = \"n\"\nas = \"string\"\n"),
            "as = ",
            "type mismatch",
        ),
        (
            format!("{IN_HEAD}\n[[rule]]\nto = \"/data/unit\"\nfrom = \"u\"\n"),
            "to = \"/data/unit\"",
            "map its fields one by one",
        ),
        (
            format!("{OUT_HEAD}\n[[rule]]\nto = \"x\"\nfrom = \"$index\"\n"),
            "$index",
            "not inside one",
        ),
        (
            format!("{OUT_HEAD}\n[[rule]]\nto = \"x\"\nfrom = \"/data/version\"\n\n[[rule] # broken\nto = \"y\"\n"),
            "# broken",
            "unclosed array table",
        ),
        (
            OUT_HEAD.replace("manifest-created", "manifest-creatd"),
            "manifest-creatd",
            "not in the catalogue",
        ),
        (OUT_HEAD.replace("2026-01-01", "1 Jan 2026"), "1 Jan 2026", "effective_from"),
    ];
    for (text, needle, want) in cases {
        let e = load_error(&text);
        assert!(e.message.contains(want), "wanted {want:?} in {e}");
        assert_eq!(e.line, line_of(&text, needle), "{e}");
        assert!(e.to_string().starts_with(&format!("{}:{}: ", e.file.display(), e.line)));
    }
}

#[test]
fn xml_names_need_declared_prefixes() {
    let text = format!(
        "{}\n[[rule]]\nto = \"gx:No\"\nfrom = \"/data/manifest_no\"\n",
        OUT_HEAD.replace("format = \"json\"\n\"#", "",)
    )
    .replace(
        "[output]\nformat = \"json\"",
        "[output]\nformat = \"xml\"\nroot = \"nx:M\"\nnamespaces = { nx = \"urn:x\" }",
    );
    let e = load_error(&text);
    assert!(e.message.contains("prefix \"gx\""), "{e}");
    assert_eq!(e.line, line_of(&text, "gx:No"));
}

#[test]
fn inbound_mappings_must_produce_id_and_subject() {
    let text = IN_HEAD.replace("to = \"/subject\"", "to = \"/source\"");
    let e = load_error(&text);
    assert!(e.message.contains("must produce /subject"), "{e}");
}

fn run(rules: &str, input: Value) -> Result<Value, MapError> {
    let m = compile_text(&format!("{OUT_HEAD}{rules}")).unwrap_or_else(|e| panic!("{e:?}"));
    m.apply(&serde_json::to_vec(&input).unwrap()).map(|o| o.json.unwrap())
}

#[test]
fn sources_coalesce_join_default_and_conditions() {
    let input = json!({"id": "m1", "data": {"receiver": {"exemption_ref": "EX-1", "name": "绿源"}, "transfer_type": "IN_CITY",
        "consignor": {"contact": {"name": "陈", "phone": "139"}}}});
    let out = run(
        r#"
[[rule]]
to = "ref"
from = ["/data/receiver/licence_no", "/data/receiver/exemption_ref"]

[[rule]]
to = "contact"
from = ["/data/consignor/contact/name", "/data/consignor/contact/phone"]
join = "/"

[[rule]]
to = "approval"
from = "/data/cross_province_approval_no"
default = "none"

[[rule]]
to = "cross"
value = true
when = { path = "/data/transfer_type", equals = "CROSS_PROVINCE" }

[[rule]]
to = "local"
value = 1
when = { path = "/data/transfer_type", not_equals = "CROSS_PROVINCE" }

[[rule]]
to = "has_name"
value = "yes"
when = { path = "/data/receiver/name", exists = true }

[[rule]]
to = "serial"
from = "/id"
ops = [{ substring = { start = 1 } }, { pad = { width = 4, with = "0" } }]
"#,
        input,
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"ref": "EX-1", "contact": "陈/139", "approval": "none", "local": 1, "has_name": "yes", "serial": "0001"})
    );
}

/// `when` on an `each` rule filters the elements, and its relative path
/// starts at the element (it is checked against the element's schema).
#[test]
fn when_on_each_filters_elements_by_their_own_fields() {
    let out = run(
        r#"
[[rule]]
to = "kg_lines"
each = "/data/lines"
when = { path = "quantity/unit", equals = "kg" }

  [[rule.rule]]
  to = "code"
  from = "waste_code"
"#,
        json!({"data": {"lines": [
            {"waste_code": "900-041-49", "quantity": {"unit": "kg"}},
            {"waste_code": "900-052-31", "quantity": {"unit": "t"}},
            {"waste_code": "336-064-17", "quantity": {"unit": "kg"}}
        ]}}),
    )
    .unwrap();
    assert_eq!(out, json!({"kg_lines": [{"code": "900-041-49"}, {"code": "336-064-17"}]}));
    let e = load_error(&format!(
        "{OUT_HEAD}[[rule]]\nto = \"x\"\neach = \"/data/lines\"\nwhen = {{ path = \"quantity/nope\", exists = true }}\n  [[rule.rule]]\n  to = \"c\"\n  from = \"waste_code\"\n"
    ));
    assert!(e.message.contains("nope"), "{e:?}");
}

/// `to = "<list>/-"` appends one value per rule, in rule order, skipping
/// rules whose condition fails; it refuses a target that is not a list.
#[test]
fn a_dash_step_appends_to_a_list() {
    let text = format!(
        "{IN_HEAD}{}",
        r#"
[[rule]]
to = "/data/linked_batch_codes/-"
from = "first"

[[rule]]
to = "/data/linked_batch_codes/-"
value = "FIXED-1"
when = { path = "flag", equals = true }

[[rule]]
to = "/data/linked_batch_codes/-"
from = "absent"
"#
    );
    let m = compile_text(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let out = |input: Value| m.apply_json(&input).unwrap().json.unwrap()["data"]["linked_batch_codes"].clone();
    assert_eq!(
        out(json!({"rid": "r", "batch": "b", "first": "B-7", "flag": true})),
        json!(["B-7", "FIXED-1"])
    );
    assert_eq!(
        out(json!({"rid": "r", "batch": "b", "first": "B-7", "flag": false})),
        json!(["B-7"])
    );
    assert_eq!(out(json!({"rid": "r", "batch": "b"})), Value::Null, "no value, no list");

    let e = load_error(&format!("{IN_HEAD}\n[[rule]]\nto = \"/data/batch_code/-\"\nvalue = \"x\"\n"));
    assert!(e.message.contains("appends to a list, but \"data/batch_code\" is string"), "{e}");
    let e = load_error(&format!(
        "{IN_HEAD}\n[[rule]]\nto = \"/data/linked_batch_codes/-\"\neach = \"xs\"\n  [[rule.rule]]\n  to = \".\"\n  from = \".\"\n"
    ));
    assert!(e.message.contains("takes no each"), "{e}");
}

#[test]
fn every_failing_rule_is_reported() {
    let err = run(
        r#"
[[rule]]
to = "a"
from = "/data/manifest_no"
required = true

[[rule]]
to = "b"
from = "/data/version"
as = "integer"
"#,
        json!({"data": {"version": "v2"}}),
    )
    .unwrap_err();
    let MapError::Rules(errs) = err else { panic!("{err:?}") };
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].message.contains("required") && errs[0].output == "/a");
    assert!(errs[1].message.contains("not an integer"));
    assert!(errs[1].message.ends_with("(from /data/version)"), "{errs:?}");
}

#[test]
fn explain_names_each_output_its_inputs_and_defaults() {
    let m = compile_text(&format!(
        "{OUT_HEAD}{}",
        r#"
[[rule]]
to = "contact"
from = ["/data/consignor/contact/name", "/data/consignor/contact/phone"]
join = "/"

[[rule]]
to = "approval"
from = "/data/cross_province_approval_no"
default = "none"
"#
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    let input = json!({"data": {"consignor": {"contact": {"name": "陈", "phone": "139"}}}});
    let (_, steps) = m.explain(&serde_json::to_vec(&input).unwrap()).unwrap();
    assert_eq!(steps[0].output, "/contact");
    assert_eq!(
        steps[0].from,
        "/data/consignor/contact/name = \"陈\", /data/consignor/contact/phone = \"139\""
    );
    assert_eq!(
        (steps[1].value.as_str(), steps[1].from.as_str()),
        ("none", "default (input value absent)")
    );
}

#[test]
fn malformed_input_reports_line_and_column() {
    let err = run("", json!(null)).map(|_| ());
    assert!(err.is_ok());
    let m = compile_text(OUT_HEAD).unwrap();
    let MapError::Input(e) = m.apply(b"{\n  \"id\": 1,,\n}").unwrap_err() else {
        panic!()
    };
    assert_eq!((e.line, e.column), (2, 11), "{e:?}");
}

/// The shipped mappings load, and every case beside them passes: this is
/// what `wastehub test` runs, as part of `cargo test`.
#[test]
fn shipped_mapping_cases_pass() {
    let cat = catalogue();
    let ctx = LoadContext {
        catalogue: &cat,
        reference_dir: &root().join("schemas/reference"),
    };
    let set = MappingSet::load(&root().join("mappings"), &ctx)
        .unwrap_or_else(|e| panic!("{}", e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")));
    let data = crate::reference::ReferenceData::load(&root().join("schemas/reference")).expect("reference data");
    let checker = crate::reference::Checker::new(&cat, data);
    let results = cases::run_all(&set, &cat, Some(&checker), None);
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| format!("{}:\n{f}", r.case.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(results.len() >= 10, "only {} cases", results.len());
    assert!(
        cases::without_cases(&set).is_empty(),
        "mappings without cases: {:?}",
        cases::without_cases(&set)
    );
}

/// A case whose expected output is wrong fails with a readable diff.
#[test]
fn a_wrong_expectation_shows_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("mappings/provincial");
    copy_dir(&src, dir.path());
    let expected = dir.path().join("cases/manifest-out/kilograms/expected.json");
    let text = std::fs::read_to_string(&expected).unwrap().replace("\"460.25\"", "\"460.26\"");
    std::fs::write(&expected, text).unwrap();
    let cat = catalogue();
    let ctx = LoadContext {
        catalogue: &cat,
        reference_dir: &root().join("schemas/reference"),
    };
    // The copied mappings refer to contracts by a relative path; point them home.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&file)
                .unwrap()
                .replace("../../contracts/", &format!("{}/", root().join("contracts").display()));
            std::fs::write(&file, text).unwrap();
        }
    }
    let set = MappingSet::load(dir.path(), &ctx).unwrap();
    let results = cases::run_all(&set, &cat, None, Some(&dir.path().join("cases/manifest-out/kilograms")));
    assert_eq!(results.len(), 1);
    let report = results[0].failure.as_deref().expect("fails");
    assert!(
        report.contains("-        \"zl_kg\": \"460.26\"") && report.contains("+        \"zl_kg\": \"460.25\""),
        "{report}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

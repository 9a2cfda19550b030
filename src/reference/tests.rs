//! Checker tests over the shipped catalogue and reference data, plus a small
//! synthetic catalogue for the division-code convention (no shipped schema
//! uses it yet).

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};

use super::*;
use crate::schema::Catalogue;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn shipped() -> Checker {
    let cat = Catalogue::load(&root().join("schemas/canonical")).unwrap();
    Checker::new(&cat, ReferenceData::load(&root().join("schemas/reference")).unwrap())
}

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn example(ty: &str, file: &str) -> Value {
    let p = root().join("schemas/canonical").join(ty).join("examples/valid").join(file);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn paths_and_messages(errors: &[crate::error::FieldError]) -> Vec<(&str, &str)> {
    errors.iter().map(|e| (e.path.as_str(), e.message.as_str())).collect()
}

#[test]
fn the_shipped_reference_folder_loads() {
    let data = ReferenceData::load(&root().join("schemas/reference")).unwrap();
    assert_eq!(
        data.summary(),
        "waste-code edition(s) 2021 (467 codes, from 2021-01-01); 94 division code(s); working-day calendar 2024-2026"
    );
}

#[test]
fn plans_are_derived_from_the_shipped_schemas() {
    let c = shipped();
    let created = c.plan("manifest-created").unwrap().describe();
    for want in [
        "usci /consignor/usci",
        "usci /carrier/usci",
        "usci /receiver/usci",
        "waste_code+category /lines/*/waste_code",
    ] {
        assert!(created.contains(&want.to_string()), "{want} not in {created:?}");
    }
    // manifest-updated reaches the same targets through its root $ref.
    assert_eq!(c.plan("manifest-updated").unwrap().describe(), created);
    let ledger = c.plan("ledger-entry").unwrap().describe();
    for want in ["usci /unit/usci", "usci /offsite/receiver_usci", "waste_code+category /waste_code"] {
        assert!(ledger.contains(&want.to_string()), "{want} not in {ledger:?}");
    }
    assert!(c.plan("track-points").is_none(), "track points carry no checked identifier");
}

/// Every valid example of every schema passes the reference checks, so the
/// examples (and the demo, bench and test data built from them) stay realistic.
#[test]
fn every_valid_example_passes_the_checks() {
    let c = shipped();
    let cat = Catalogue::load(&root().join("schemas/canonical")).unwrap();
    let mut checked = 0;
    for ty in cat.types() {
        let dir = root().join("schemas/canonical").join(ty).join("examples/valid");
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for f in rd.filter_map(Result::ok) {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap();
            let errs = c.check(ty, &v, at("2026-03-02T10:00:00+08:00"), "");
            assert!(errs.is_empty(), "{}: {errs:?}", f.path().display());
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} examples");
}

#[test]
fn reports_a_wrong_usci_check_character_at_its_path() {
    let c = shipped();
    let mut d = example("manifest-created", "in-city-licensed-two-lines.json");
    let good = d["carrier"]["usci"].as_str().unwrap().to_string();
    let mut bad = good.clone();
    bad.replace_range(17..18, if good.ends_with('K') { "L" } else { "K" });
    d["carrier"]["usci"] = json!(bad);
    let errs = c.check("manifest-created", &d, at("2026-03-02T10:00:00+08:00"), "/data");
    let expected = format!("USCI check character is \"{}\", expected \"{}\"", &bad[17..], &good[17..]);
    assert_eq!(paths_and_messages(&errs), vec![("/data/carrier/usci", expected.as_str())]);
}

#[test]
fn reports_unknown_waste_codes_and_mismatched_categories_per_line() {
    let c = shipped();
    let mut d = example("manifest-created", "in-city-licensed-two-lines.json");
    d["lines"][1]["waste_code"] = json!("900-048-49");
    d["lines"][1]["category"] = json!("HW49");
    d["lines"][0]["waste_code"] = json!("900-041-49");
    d["lines"][0]["category"] = json!("HW08");
    let errs = c.check("manifest-created", &d, at("2026-03-02T08:00:00+08:00"), "/data");
    assert_eq!(
        paths_and_messages(&errs),
        vec![
            (
                "/data/lines/0/category",
                "category HW08 does not match waste code 900-041-49 (expected HW49)"
            ),
            (
                "/data/lines/1/waste_code",
                "waste code 900-048-49 is not in the 2021 edition of the National Hazardous Waste List (in force at 2026-03-02)"
            ),
        ]
    );
}

#[test]
fn the_edition_date_is_the_beijing_date_of_the_event() {
    let c = shipped();
    let mut d = example("ledger-entry", "generation-drums-counted.json");
    d["waste_code"] = json!("900-048-49");
    d["category"] = json!("HW49");
    // 2026-03-01T20:00Z is 2026-03-02 04:00 in Beijing.
    let errs = c.check("ledger-entry", &d, at("2026-03-01T20:00:00Z"), "");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.ends_with("(in force at 2026-03-02)"), "{errs:?}");
    assert_eq!(errs[0].path, "/waste_code");
    let errs = c.check("ledger-entry", &d, at("2019-05-01T10:00:00+08:00"), "");
    assert!(
        errs[0].message.ends_with("(the earliest edition loaded; 2019-05-01 is before it)"),
        "{errs:?}"
    );
}

#[test]
fn unknown_types_and_non_strings_are_left_to_the_schema() {
    let c = shipped();
    assert!(c.check("no-such-type", &json!({}), at("2026-03-02T10:00:00+08:00"), "").is_empty());
    let mut d = example("ledger-entry", "generation-drums-counted.json");
    d["waste_code"] = json!(42);
    assert!(c.check("ledger-entry", &d, at("2026-03-02T10:00:00+08:00"), "").is_empty());
}

/// A synthetic catalogue and reference folder: division codes, a nested
/// array of parties, and a second edition that takes effect by date.
#[test]
fn checks_division_codes_and_editions_in_a_synthetic_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("canonical");
    std::fs::create_dir_all(schemas.join("common")).unwrap();
    std::fs::create_dir_all(schemas.join("site-registered")).unwrap();
    std::fs::copy(root().join("schemas/canonical/common/v1.json"), schemas.join("common/v1.json")).unwrap();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://wastehub.local/schemas/canonical/site-registered/v1.json",
        "type": "object",
        "properties": {
            "division": {"$ref": "../common/v1.json#/$defs/division_code"},
            "owners": {"type": "array", "items": {"$ref": "../common/v1.json#/$defs/party"}},
            "wastes": {"type": "array", "items": {"$ref": "#/$defs/waste"}}
        },
        "$defs": {"waste": {"type": "object", "properties": {
            "waste_code": {"$ref": "../common/v1.json#/$defs/waste_code"},
            "category": {"$ref": "../common/v1.json#/$defs/waste_category"}
        }}}
    });
    std::fs::write(schemas.join("site-registered/v1.json"), schema.to_string()).unwrap();
    let reference = dir.path().join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::copy(root().join("schemas/reference/divisions.csv"), reference.join("divisions.csv")).unwrap();
    std::fs::copy(root().join("schemas/reference/cn-workdays.csv"), reference.join("cn-workdays.csv")).unwrap();
    std::fs::copy(
        root().join("schemas/reference/waste-codes-2021.csv"),
        reference.join("waste-codes-2021.csv"),
    )
    .unwrap();
    std::fs::write(
        reference.join("waste-codes-2025.csv"),
        "code,category\n321-100-48,HW48\n900-041-49,HW49\n",
    )
    .unwrap();
    std::fs::write(
        reference.join("waste-code-editions.csv"),
        "edition,valid_from,file\n2021,2021-01-01,waste-codes-2021.csv\n2025,2025-01-01,waste-codes-2025.csv\n",
    )
    .unwrap();
    let cat = Catalogue::load(&schemas).unwrap();
    let c = Checker::new(&cat, ReferenceData::load(&reference).unwrap());
    let mut plan = c.plan("site-registered").unwrap().describe();
    plan.sort();
    assert_eq!(
        plan,
        vec![
            "division_code /division",
            "usci /owners/*/usci",
            "waste_code+category /wastes/*/waste_code"
        ]
    );

    let body = |division: &str, code: &str| {
        json!({"division": division,
               "owners": [{"usci": "91350100M000100Y43", "name": "甲"}, {"usci": "91350100M000100Y4K", "name": "乙"}],
               "wastes": [{"waste_code": code, "category": "HW48"}]})
    };
    let t2024 = at("2024-12-31T23:00:00+08:00");
    let t2025 = at("2025-01-01T00:00:00+08:00");
    // 2024: the 2021 edition; 321-100-48 is not in it.
    let errs = c.check("site-registered", &body("350206", "321-100-48"), t2024, "/data");
    assert_eq!(
        paths_and_messages(&errs),
        vec![
            ("/data/owners/1/usci", "USCI check character is \"K\", expected \"3\""),
            (
                "/data/wastes/0/waste_code",
                "waste code 321-100-48 is not in the 2021 edition of the National Hazardous Waste List (in force at 2024-12-31)"
            ),
        ]
    );
    // 2025: the 2025 edition has it.
    let errs = c.check("site-registered", &body("360121", "321-100-48"), t2025, "/data");
    assert_eq!(
        paths_and_messages(&errs),
        vec![("/data/owners/1/usci", "USCI check character is \"K\", expected \"3\"")]
    );
    // Divisions: a made-up Fujian county, an unknown province.
    let errs = c.check("site-registered", &body("359999", "321-100-48"), t2025, "");
    assert!(
        errs.iter()
            .any(|e| e.path == "/division" && e.message == "division code 359999 does not exist"),
        "{errs:?}"
    );
    let errs = c.check("site-registered", &body("990101", "321-100-48"), t2025, "");
    assert!(
        errs.iter()
            .any(|e| e.path == "/division" && e.message.starts_with("division code 990101 does not exist (99 is not")),
        "{errs:?}"
    );
}

#[test]
fn loading_reports_every_broken_file_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("divisions.csv"), "code\n350100\n350100\n").unwrap();
    std::fs::write(dir.path().join("cn-workdays.csv"), "date,kind\n2026-01-01,holiday\n").unwrap();
    std::fs::write(
        dir.path().join("waste-code-editions.csv"),
        "edition,valid_from,file\n2021,2021-01-01,nope.csv\n",
    )
    .unwrap();
    let errs = ReferenceData::load(dir.path()).unwrap_err();
    let text = errs.to_string();
    assert!(text.contains("divisions.csv:3: duplicate code 350100 (first on line 2)"), "{text}");
    assert!(
        text.contains("waste-code-editions.csv:2: edition 2021 names file \"nope.csv\""),
        "{text}"
    );
    assert_eq!(errs.0.len(), 2, "{text}");
    let missing = ReferenceData::load(&dir.path().join("absent")).unwrap_err().to_string();
    assert!(
        missing.contains("divisions.csv: cannot read") && missing.contains("waste-code-editions.csv: cannot read"),
        "{missing}"
    );
}

//! The command line without a hub: `wastehub check` (passes on the shipped
//! config; names file:line otherwise), `wastehub test` and `wastehub map`.

use std::process::Command;

use crate::support::repo;

#[test]
fn check_passes_on_the_shipped_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_wastehub"))
        .args(["check", "--config"])
        .arg(repo())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("provincial") && text.contains("national") && text.contains("manifest-created"),
        "{text}"
    );
}

#[test]
fn check_names_file_and_line_of_each_problem() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("connectors")).expect("mkdir");
    std::fs::write(
        dir.path().join("wastehub.toml"),
        format!("[catalogue]\nschemas = \"{}\"\n", repo().join("schemas/canonical").display()),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("connectors/bad.toml"),
        "name = \"bad\"\nkind = \"http_json\"\n[outbound]\nurl = \"ftp://x\"\ntimeout = \"10 parsecs\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("connectors/worse.toml"),
        "name = \"worse\"\nkind = \"carrier_pigeon\"\n",
    )
    .expect("write");
    let (ok, err) = wastehub(&["check", "--config", &dir.path().display().to_string()]);
    assert!(!ok, "{err}");
    assert!(err.contains("bad.toml:5:") && err.contains("10 parsecs"), "{err}");
    assert!(err.contains("worse.toml:2:") && err.contains("carrier_pigeon"), "{err}");
}

#[test]
fn environment_overrides_reach_the_config_and_are_checked() {
    let out = Command::new(env!("CARGO_BIN_EXE_wastehub"))
        .args(["check", "--config"])
        .arg(repo())
        .env("WASTEHUB__INGEST__MAX_BATCH_EVENTS", "0")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "max_batch_events = 0 must be refused");
    assert!(err.contains("max_batch_events"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_wastehub"))
        .args(["check", "--config"])
        .arg(repo())
        .env("NATIONAL_URL", "not a url")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("national.toml:") && err.contains("not a url"), "{err}");
}

#[test]
fn check_reports_broken_reference_data_with_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("connectors")).expect("mkdir");
    let reference = dir.path().join("reference");
    std::fs::create_dir_all(&reference).expect("mkdir");
    std::fs::write(reference.join("divisions.csv"), "code,name_zh\n350100,福州市\n350100,福州市\n").expect("write");
    std::fs::write(
        reference.join("waste-code-editions.csv"),
        "edition,valid_from,file\n2021,2021-01-01,codes.csv\n2025,2025-01-01,waste-codes-2025.csv\n",
    )
    .expect("write");
    std::fs::write(reference.join("codes.csv"), "code,category\n900-041-49,HW08\n").expect("write");
    std::fs::write(reference.join("cn-workdays.csv"), "date,kind\n2026-01-01,holiday\n").expect("write");
    std::fs::write(
        dir.path().join("wastehub.toml"),
        format!(
            "[catalogue]\nschemas = \"{}\"\nreference = \"reference\"\n",
            repo().join("schemas/canonical").display()
        ),
    )
    .expect("write");
    let (ok, err) = wastehub(&["check", "--config", &dir.path().display().to_string()]);
    assert!(!ok, "{err}");
    assert!(err.contains("divisions.csv:3: duplicate code 350100 (first on line 2)"), "{err}");
    assert!(
        err.contains("waste-code-editions.csv:3: edition 2025 names file \"waste-codes-2025.csv\", which does not exist"),
        "{err}"
    );
    assert!(
        err.contains("codes.csv:2: category HW08 does not match waste code 900-041-49 (expected HW49)"),
        "{err}"
    );
}

fn wastehub(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wastehub")).args(args).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `wastehub test` runs the shipped cases (all, or under a path) and fails
/// with a diff when an expectation is wrong.
#[test]
fn wastehub_test_runs_the_cases_and_shows_a_diff() {
    let root = repo();
    let config = root.display().to_string();
    let (ok, text) = wastehub(&["test", "--config", &config]);
    assert!(ok && text.contains(" 0 failed") && !text.contains("FAIL"), "{text}");
    let only = root.join("mappings/park-xiamen-haicang").display().to_string();
    let (ok, text) = wastehub(&["test", &only, "--config", &config]);
    assert!(ok && text.contains("5 case(s), 5 passed"), "{text}");

    // A copy of the config whose provincial case expects a wrong weight.
    let dir = tempfile::tempdir().expect("dir");
    copy(&root.join("mappings"), &dir.path().join("mappings"));
    copy(&root.join("contracts"), &dir.path().join("contracts"));
    std::fs::create_dir_all(dir.path().join("connectors")).expect("mkdir");
    std::fs::write(
        dir.path().join("wastehub.toml"),
        format!(
            "[catalogue]\nschemas = \"{}\"\nreference = \"{}\"\n",
            root.join("schemas/canonical").display(),
            root.join("schemas/reference").display()
        ),
    )
    .expect("write");
    let expected = dir.path().join("mappings/provincial/cases/manifest-out/kilograms/expected.json");
    let text = std::fs::read_to_string(&expected).expect("read").replace("\"460.25\"", "\"460.3\"");
    std::fs::write(&expected, text).expect("write");
    let (ok, text) = wastehub(&["test", "--config", &dir.path().display().to_string()]);
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL  mappings/provincial/cases/manifest-out/kilograms"), "{text}");
    assert!(
        text.contains("-        \"zl_kg\": \"460.3\"") && text.contains("+        \"zl_kg\": \"460.25\""),
        "{text}"
    );
}

/// `wastehub map --explain` names the rule and input of every output field.
#[test]
fn wastehub_map_explains_each_field() {
    let root = repo();
    let input = root.join("mappings/national/cases/manifest-out/cross-province/input.json");
    let (ok, text) = wastehub(&[
        "map",
        "--mapping",
        "national/manifest-out",
        "--input",
        &input.display().to_string(),
        "--explain",
        "--config",
        &root.display().to_string(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("<nx:WeightT>15.4805</nx:WeightT>"), "{text}");
    assert!(
        text.contains("/nx:Lines/nx:Line[1]/nx:WeightT")
            && text.contains("from /data/lines/0/quantity/mass_kg = \"15480.5\" (rule national/manifest-out.toml:"),
        "{text}"
    );
    let (ok, text) = wastehub(&[
        "map",
        "--mapping",
        "national/nope",
        "--input",
        &input.display().to_string(),
        "--config",
        &root.display().to_string(),
    ]);
    assert!(!ok && text.contains("no mapping named \"national/nope\""), "{text}");
}

fn copy(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let p = e.expect("entry").path();
        let target = to.join(p.file_name().expect("name"));
        if p.is_dir() {
            copy(&p, &target);
        } else {
            std::fs::copy(&p, &target).expect("copy");
        }
    }
}

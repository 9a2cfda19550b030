//! `wastehub check`: passes on the shipped config; names file:line otherwise.

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
    let out = Command::new(env!("CARGO_BIN_EXE_wastehub"))
        .args(["check", "--config"])
        .arg(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
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
    std::fs::write(
        dir.path().join("wastehub.toml"),
        format!(
            "[catalogue]\nschemas = \"{}\"\nreference = \"reference\"\n",
            repo().join("schemas/canonical").display()
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_wastehub"))
        .args(["check", "--config"])
        .arg(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
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

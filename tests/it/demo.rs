//! The README's run command: the demo sends its stream, every delivery
//! finishes, and it prints the per-partner summary; then the two example
//! parks walk from sandbox to production and it prints the per-park summary.

use std::process::Command;

use crate::support::repo;

#[test]
fn demo_runs_its_journey_and_prints_a_summary() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_wastehub"))
        .args(["demo", "--no-wait", "--messages", "40", "--listen", "127.0.0.1:0", "--config"])
        .arg(repo())
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("demo.db").display()))
        .output()
        .expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("sent 40/40 · accepted 40"), "{text}");
    let summary = text.split("Summary per partner").nth(1).expect("summary printed");
    // provincial receives all 40; national receives the 30 manifest events and ledger entries.
    let row = |name: &str| -> Vec<i64> {
        summary
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .map(|l| l.split_whitespace().skip(1).filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default()
    };
    let (prov, nat) = (row("provincial"), row("national"));
    assert_eq!(prov.get(1), Some(&40), "provincial acked all: {summary}");
    assert_eq!(nat.get(1), Some(&30), "national acked manifests and ledger entries: {summary}");
    assert_eq!(prov.last(), Some(&0), "nothing left waiting");
    assert_eq!(nat.last(), Some(&0), "nothing left waiting");

    // Journey 2: both example parks went from sandbox to delivered production traffic.
    let parks = text.split("Summary per park").nth(1).expect("park summary printed");
    let park = |id: &str| -> Vec<String> {
        parks
            .lines()
            .find(|l| l.trim_start().starts_with(id))
            .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
            .unwrap_or_default()
    };
    // format, sandbox-ok, refused, conformance, sent, live-ok, provincial, national, unrouted, waiting
    assert_eq!(
        park("park-quanzhou-quangang"),
        ["JSON", "3", "1", "pass", "4", "4", "2", "2", "1", "0"],
        "{parks}"
    );
    assert_eq!(
        park("park-zhangzhou-gulei"),
        ["XML", "3", "1", "pass", "4", "4", "3", "3", "0", "0"],
        "{parks}"
    );
    assert!(
        text.contains("422 validation_failed") && text.contains("422 mapping_failed"),
        "{text}"
    );
}

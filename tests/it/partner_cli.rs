//! `wastehub partner …` as a child process against a running hub: the CLI
//! is a client of the admin API, so these check the wiring, the text it
//! prints and its errors, not the lifecycle rules (tests/it/partners.rs).

use std::process::{Command, Output};

use crate::support::{HubSpec, TestApp};

fn cli(base: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wastehub"));
    c.arg("partner")
        .args(args)
        .arg("--hub")
        .arg(base)
        .env_remove("WASTEHUB_OPERATOR_TOKEN");
    if let Some(t) = token {
        c.env("WASTEHUB_OPERATOR_TOKEN", t);
    }
    c.output().expect("run wastehub")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test]
async fn the_cli_registers_shows_and_suspends_a_partner() {
    let app = TestApp::spawn(HubSpec::new()).await;
    let op = app.operator.clone();
    let base = app.base.clone();
    let a = base.as_str().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let add = cli(
            &a,
            Some(&op),
            &[
                "add",
                "--id",
                "park-zhangzhou-gulei",
                "--name",
                "漳州古雷石化基地细胞平台",
                "--division",
                "350623",
                "--types",
                "ledger-entry,manifest-created",
            ],
        );
        let show = cli(&a, Some(&op), &["show", "park-zhangzhou-gulei"]);
        let list = cli(&a, Some(&op), &["list"]);
        let live = cli(&a, Some(&op), &["go-live", "park-zhangzhou-gulei"]);
        let suspend = cli(&a, Some(&op), &["suspend", "park-zhangzhou-gulei", "--reason", "测试"]);
        let json = cli(&a, Some(&op), &["show", "park-zhangzhou-gulei", "--json"]);
        let bad = cli(
            &a,
            Some(&op),
            &["add", "--id", "x", "--name", "n", "--division", "350623", "--types", "nope"],
        );
        let no_token = cli(&a, None, &["list"]);
        (add, show, list, live, suspend, json, bad, no_token)
    })
    .await
    .expect("the CLI runs");
    let (add, show, list, live, suspend, json, bad, no_token) = out;
    assert!(add.status.success(), "{}", text(&add));
    assert!(
        text(&add).contains("API key (shown once") && text(&add).contains("whk_"),
        "{}",
        text(&add)
    );
    assert!(
        text(&show).contains("status:       sandbox") && text(&show).contains("350623"),
        "{}",
        text(&show)
    );
    assert!(text(&list).contains("park-zhangzhou-gulei"), "{}", text(&list));
    // Go-live without a conformance run: the API's 409 and its reason, non-zero exit.
    assert!(!live.status.success());
    assert!(text(&live).contains("conformance_required"), "{}", text(&live));
    assert!(
        suspend.status.success() && text(&suspend).contains("suspended"),
        "{}",
        text(&suspend)
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert_eq!(v["status"], "suspended");
    // Field errors are listed one per line.
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("/id:") && text(&bad).contains("/message_types/0:"),
        "{}",
        text(&bad)
    );
    assert!(
        !no_token.status.success() && text(&no_token).contains("WASTEHUB_OPERATOR_TOKEN"),
        "{}",
        text(&no_token)
    );
    app.stop().await.expect("hub stops");
}

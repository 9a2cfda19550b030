//! `docs/onboarding.md` is exercised: its files (```` ```json file=NAME ````)
//! are written to a folder, and its tested commands (```` ```sh test
//! expect=STATUS [code=CODE] [as=sandbox|live|signing] ````) are run there in
//! order against a real hub, as the guide's reader would run them, with
//! `WASTEHUB_URL`, `WASTEHUB_KEY` and `WASTEHUB_SIGNING_SECRET` set. Each
//! must be answered with the status (and error code) it is tagged with.
//!
//! The commands run with `bash` and the `curl` binary. Where `curl` is
//! missing, plain `curl` commands are translated into reqwest requests by a
//! small parser (`-X`, `-H`, `-d`, `--data-binary @file`); a block that needs
//! the shell (the signing example) is then skipped, loudly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::fake_partner::FakePartner;
use crate::support::{HubSpec, TestApp, repo};

const PARK: &str = "park-quanzhou-quangang";
/// The second registration the signing example runs as.
const SIGNED: &str = "park-quanzhou-quangang-signed";

/// One fenced block of the guide.
#[derive(Debug)]
struct Block {
    /// Line of the opening fence (1-based), for messages.
    line: usize,
    lang: String,
    attrs: BTreeMap<String, String>,
    /// Flags without a value (`test`).
    flags: Vec<String>,
    text: String,
}

fn guide() -> String {
    std::fs::read_to_string(repo().join("docs/onboarding.md")).expect("docs/onboarding.md")
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in doc.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                let mut words = info.split_whitespace();
                let lang = words.next().unwrap_or("").to_string();
                let (mut attrs, mut flags) = (BTreeMap::new(), Vec::new());
                for w in words {
                    match w.split_once('=') {
                        Some((k, v)) => {
                            attrs.insert(k.to_string(), v.to_string());
                        }
                        None => flags.push(w.to_string()),
                    }
                }
                open = Some(Block {
                    line: n + 1,
                    lang,
                    attrs,
                    flags,
                    text: String::new(),
                });
            }
            (Some(_), Some("")) => out.extend(open.take()),
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "docs/onboarding.md has an unclosed code block");
    out
}

fn found(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The last HTTP answer in `curl -i` output: status and JSON body.
fn last_answer(out: &str) -> Option<(u16, Value)> {
    let start = out.rfind("HTTP/")?;
    let answer = &out[start..];
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .or_else(|| answer.split_once("\n\n"))
        .map_or("", |(_, b)| b);
    Some((status, serde_json::from_str(body.trim()).unwrap_or(Value::Null)))
}

struct Creds {
    key: String,
    secret: String,
}

async fn register(app: &TestApp, body: &Value) -> Creds {
    let (s, created) = app.op_post("/api/v1/partners", body).await;
    assert_eq!(s, 201, "{created}");
    Creds {
        key: created["api_key"].as_str().expect("key").to_string(),
        secret: created["signing_secret"].as_str().unwrap_or_default().to_string(),
    }
}

/// Runs one tested block; returns its HTTP answer, or `None` when it was
/// skipped for want of a tool.
async fn run(block: &Block, dir: &Path, base: &str, creds: &Creds, curl: bool) -> Option<(u16, Value)> {
    if curl {
        let out = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block.text])
            .current_dir(dir)
            .env("WASTEHUB_URL", base)
            .env("WASTEHUB_KEY", &creds.key)
            .env("WASTEHUB_SIGNING_SECRET", &creds.secret)
            .output()
            .await
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "docs/onboarding.md:{} failed:\n{}\n{stdout}\n{}",
            block.line,
            block.text,
            String::from_utf8_lossy(&out.stderr)
        );
        return Some(last_answer(&stdout).unwrap_or_else(|| panic!("docs/onboarding.md:{}: no HTTP answer in:\n{stdout}", block.line)));
    }
    if block.text.contains("$(") {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED docs/onboarding.md:{}: the block needs bash, curl and openssl; install curl to run it",
            block.line
        );
        return None;
    }
    let vars = BTreeMap::from([
        ("WASTEHUB_URL", base.to_string()),
        ("WASTEHUB_KEY", creds.key.clone()),
        ("WASTEHUB_SIGNING_SECRET", creds.secret.clone()),
    ]);
    let req = curl_request(&block.text, &vars, dir).unwrap_or_else(|e| panic!("docs/onboarding.md:{}: {e}", block.line));
    let client = reqwest::Client::new();
    let mut r = client.request(req.method.parse().expect("method"), &req.url);
    for (k, v) in &req.headers {
        r = r.header(k, v);
    }
    let resp = r.body(req.body).send().await.expect("request");
    let status = resp.status().as_u16();
    Some((status, resp.json().await.unwrap_or(Value::Null)))
}

/// A `curl` command as a request.
#[derive(Debug, PartialEq)]
struct CurlRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Splits shell text into words: single quotes literal, double quotes and
/// bare words with `$VAR` expanded, backslash-newline joining lines.
fn words(text: &str, vars: &BTreeMap<&str, String>) -> Result<Vec<String>, String> {
    let text = text.replace("\\\n", " ");
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = text.chars().peekable();
    let expand = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Result<String, String> {
        let mut name = String::new();
        while let Some(c) = chars.peek().copied().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
            name.push(c);
            chars.next();
        }
        vars.get(name.as_str()).cloned().ok_or_else(|| format!("${name} is not set"))
    };
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => out.extend(cur.take()),
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let mut w = cur.take().unwrap_or_default();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '$' => w.push_str(&expand(&mut chars)?),
                        c => w.push(c),
                    }
                }
                cur = Some(w);
            }
            '$' => {
                let v = expand(&mut chars)?;
                cur.get_or_insert_with(String::new).push_str(&v);
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(cur);
    Ok(out)
}

fn curl_request(text: &str, vars: &BTreeMap<&str, String>, dir: &Path) -> Result<CurlRequest, String> {
    let w = words(text, vars)?;
    if w.first().map(String::as_str) != Some("curl") {
        return Err("not a single curl command".into());
    }
    let mut req = CurlRequest {
        method: String::new(),
        url: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let mut it = w.into_iter().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "-X" | "--request" => req.method = value()?,
            "-H" | "--header" => {
                let h = value()?;
                let (k, v) = h.split_once(':').ok_or_else(|| format!("header {h:?}"))?;
                req.headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            "-d" | "--data" | "--data-binary" => {
                let d = value()?;
                req.body = match d.strip_prefix('@') {
                    Some(file) => std::fs::read(dir.join(file)).map_err(|e| format!("{file}: {e}"))?,
                    None => d.into_bytes(),
                };
            }
            "-s" | "-S" | "-sS" | "-i" | "-si" | "-sSi" => {}
            other if other.starts_with('-') => return Err(format!("curl option {other} is not translated")),
            url => req.url = url.to_string(),
        }
    }
    if req.method.is_empty() {
        req.method = if req.body.is_empty() { "GET" } else { "POST" }.into();
    }
    Ok(req)
}

#[tokio::test]
async fn the_onboarding_guide_examples_answer_as_documented() {
    let doc = guide();
    let blocks = blocks(&doc);
    let tested: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.lang == "sh" && b.flags.iter().any(|f| f == "test"))
        .collect();
    assert!(tested.len() >= 15, "only {} tested blocks in docs/onboarding.md", tested.len());
    let curl = found("curl") && found("openssl") && found("bash");
    if !curl {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "NOTE the_onboarding_guide_examples_answer_as_documented: curl, openssl or bash missing; translating curl commands"
        );
    }

    let partner = FakePartner::start().await;
    let app = TestApp::spawn(
        HubSpec::new()
            .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
            .destination("provincial-test", &partner.url, "\"ledger-entry\", \"weighing\"", ""),
    )
    .await;
    let registration: Value =
        serde_json::from_slice(&std::fs::read(repo().join("connectors/parks").join(format!("{PARK}.json"))).expect("registration"))
            .expect("JSON");
    let park = register(&app, &registration).await;
    let mut signed_body = registration.clone();
    signed_body["id"] = json!(SIGNED);
    signed_body["signing"] = json!("hmac-sha256");
    let signed = register(&app, &signed_body).await;
    assert!(signed.secret.starts_with("whs_"));

    let dir = tempfile::tempdir().expect("dir");
    for b in blocks.iter().filter(|b| b.attrs.contains_key("file")) {
        std::fs::write(dir.path().join(&b.attrs["file"]), &b.text).expect("write file");
    }
    let mut live = false;
    let mut ran = 0;
    for b in tested {
        let who = b.attrs.get("as").map_or("sandbox", String::as_str);
        if who == "live" && !live {
            // The operator's part of section 8: conformance, then go-live.
            let (s, report) = app.op_post(&format!("/api/v1/partners/{PARK}/conformance"), &json!({})).await;
            assert_eq!((s, report["verdict"].as_str()), (200, Some("pass")), "{report}");
            let (s, v) = app.op_post(&format!("/api/v1/partners/{PARK}/go-live"), &json!({})).await;
            assert_eq!(s, 200, "{v}");
            live = true;
        }
        let creds = if who == "signing" { &signed } else { &park };
        let Some((status, body)) = run(b, dir.path(), &app.base, creds, curl).await else {
            continue;
        };
        let want: u16 = b.attrs.get("expect").and_then(|s| s.parse().ok()).expect("expect=STATUS");
        assert_eq!(status, want, "docs/onboarding.md:{}:\n{}\nanswered {body}", b.line, b.text);
        if let Some(code) = b.attrs.get("code") {
            assert_eq!(body["code"].as_str(), Some(code.as_str()), "docs/onboarding.md:{}: {body}", b.line);
        }
        if who == "sandbox" && status == 202 {
            assert_eq!(body["sandbox"], true, "docs/onboarding.md:{}: {body}", b.line);
        }
        if who == "live" && status == 200 {
            assert_eq!(body["duplicate"], true, "docs/onboarding.md:{}: {body}", b.line);
        }
        ran += 1;
    }
    assert!(live, "the guide has no live example");
    assert!(ran >= 14, "only {ran} examples ran");
    app.stop().await.expect("stop");
}

/// The guide's worked signature is what the hub computes, and the record it
/// shows is the park's contract example.
#[test]
fn the_guides_worked_signature_and_record_are_right() {
    let doc = guide();
    let secret = "whs_6f1d0c3a9b2e47d58a0c1e2f3b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e";
    let (ts, path, body) = (
        1_795_934_400_i64,
        "/api/v1/documents/weighing",
        r#"{"ticketNo":"QG-WB-20261129-0002"}"#,
    );
    let signer = wastehub::connectors::signature::Signer::new(&wastehub::config::connector::SignatureConfig {
        algorithm: "hmac-sha256".into(),
        secret: wastehub::config::Secret::new(secret),
        key_id: None,
    });
    let mac = signer.sign(ts, path, body.as_bytes());
    for shown in [secret, &ts.to_string(), path, body, &format!("hmac-sha256={mac}")] {
        assert!(doc.contains(shown), "docs/onboarding.md does not show {shown}");
    }
    let verifier = wastehub::connectors::signature::Verifier::new("hmac-sha256", secret);
    assert!(
        verifier
            .verify(
                Some(&ts.to_string()),
                Some(&format!("hmac-sha256={mac}")),
                path,
                body.as_bytes(),
                ts,
                300
            )
            .is_ok()
    );
    let blocks = blocks(&doc);
    let shown: Value = blocks
        .iter()
        .find(|b| b.attrs.get("file").map(String::as_str) == Some("ledger-entry.json"))
        .map(|b| serde_json::from_str(&b.text).expect("JSON"))
        .expect("ledger-entry.json in the guide");
    let example: PathBuf = repo()
        .join("contracts")
        .join(PARK)
        .join("examples/01-ledger-entry-generation/record.json");
    let example: Value = serde_json::from_slice(&std::fs::read(example).expect("example")).expect("JSON");
    assert_eq!(shown, example, "the guide's record and the contract example differ");
}

/// The fallback translation reads the guide's plain curl commands.
#[test]
fn plain_curl_commands_translate_to_requests() {
    let dir = tempfile::tempdir().expect("dir");
    let doc = guide();
    let blocks = blocks(&doc);
    for b in blocks.iter().filter(|b| b.attrs.contains_key("file")) {
        std::fs::write(dir.path().join(&b.attrs["file"]), &b.text).expect("write");
    }
    let vars = BTreeMap::from([
        ("WASTEHUB_URL", "http://hub".to_string()),
        ("WASTEHUB_KEY", "whk_k".to_string()),
        ("WASTEHUB_SIGNING_SECRET", "whs_s".to_string()),
    ]);
    let mut n = 0;
    for b in blocks
        .iter()
        .filter(|b| b.flags.iter().any(|f| f == "test") && !b.text.contains("$("))
    {
        let r = curl_request(&b.text, &vars, dir.path()).unwrap_or_else(|e| panic!("docs/onboarding.md:{}: {e}", b.line));
        assert_eq!(r.method, "POST");
        assert!(r.url.starts_with("http://hub/api/v1/"), "{r:?}");
        assert!(!r.body.is_empty(), "{r:?}");
        n += 1;
    }
    assert!(n >= 10);
    let r = curl_request(
        "curl -sS -i -X POST \"$WASTEHUB_URL/api/v1/messages\" \\\n  -H \"Authorization: Bearer $WASTEHUB_KEY\" \\\n  -d '{\"a\": \"b c\"}'\n",
        &vars,
        dir.path(),
    )
    .expect("parses");
    assert_eq!(
        r,
        CurlRequest {
            method: "POST".into(),
            url: "http://hub/api/v1/messages".into(),
            headers: vec![("Authorization".into(), "Bearer whk_k".into())],
            body: br#"{"a": "b c"}"#.to_vec(),
        }
    );
}

//! The demo's second journey: the two example parks of `connectors/parks/`
//! connect their own cell platforms while the hub runs. Each is registered
//! from its registration file (as `wastehub partner add --file` does), makes
//! a realistic mistake in sandbox and is told exactly what is wrong, sends
//! its fixed documents, passes conformance, goes live, and its production
//! documents reach the provincial system (JSON) and the national system
//! (XML). Everything goes through the hub's HTTP API, as the parks' vendors
//! and the operator would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

/// One document a park sends: a shipped contract example.
struct Document {
    name: &'static str,
    message_type: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// A first attempt that goes wrong, and what the vendor fixes.
struct Mistake {
    /// Index into the park's documents of the one it gets wrong.
    document: usize,
    /// What went wrong, in words.
    what: &'static str,
    /// The wrong document.
    make: fn(&[u8]) -> Vec<u8>,
}

struct ExamplePark {
    id: &'static str,
    format: &'static str,
    documents: &'static [Document],
    mistake: Mistake,
}

const QUANGANG: ExamplePark = ExamplePark {
    id: "park-quanzhou-quangang",
    format: "JSON",
    documents: &[
        Document {
            name: "generation record",
            message_type: "ledger-entry",
            content_type: "application/json",
            bytes: include_bytes!("../../contracts/park-quanzhou-quangang/examples/01-ledger-entry-generation/record.json"),
        },
        Document {
            name: "storage-in record",
            message_type: "ledger-entry",
            content_type: "application/json",
            bytes: include_bytes!("../../contracts/park-quanzhou-quangang/examples/02-ledger-entry-storage-in/record.json"),
        },
        Document {
            name: "scale reading",
            message_type: "weighing",
            content_type: "application/json",
            bytes: include_bytes!("../../contracts/park-quanzhou-quangang/examples/03-weighing-generation/reading.json"),
        },
    ],
    mistake: Mistake {
        document: 0,
        what: "a clerk swapped two digits of the waste code (251-016-05 for 251-016-50)",
        make: |b| String::from_utf8_lossy(b).replace("\"251-016-50\"", "\"251-016-05\"").into_bytes(),
    },
};

const GULEI: ExamplePark = ExamplePark {
    id: "park-zhangzhou-gulei",
    format: "XML",
    documents: &[
        Document {
            name: "transfer manifest",
            message_type: "manifest-created",
            content_type: "application/xml",
            bytes: include_bytes!("../../contracts/park-zhangzhou-gulei/examples/01-manifest-created/manifest.xml"),
        },
        Document {
            name: "generation record (GBK)",
            message_type: "ledger-entry",
            content_type: "application/xml",
            bytes: include_bytes!("../../contracts/park-zhangzhou-gulei/examples/02-ledger-entry-generation-gbk/record.xml"),
        },
        Document {
            name: "storage-out record",
            message_type: "ledger-entry",
            content_type: "application/xml",
            bytes: include_bytes!("../../contracts/park-zhangzhou-gulei/examples/03-ledger-entry-storage-out/record.xml"),
        },
    ],
    mistake: Mistake {
        document: 0,
        what: "the catalyst counted in bags (unit DAI), a unit the canonical form does not have",
        make: |b| {
            String::from_utf8_lossy(b)
                .replace(
                    "<gl:Quantity unit=\"T\">12.36</gl:Quantity>",
                    "<gl:Quantity unit=\"DAI\" massKg=\"12360\">14</gl:Quantity>",
                )
                .into_bytes()
        },
    },
};

/// How long the demo waits for the parks' production deliveries.
const DELIVERY_WAIT: Duration = Duration::from_secs(90);

/// What happened to one park, for the summary.
#[derive(Default)]
pub struct ParkOutcome {
    id: String,
    format: String,
    sandbox_accepted: usize,
    sandbox_refused: usize,
    conformance: String,
    sent: usize,
    accepted: usize,
    duplicates: usize,
    /// Destination → delivered production messages.
    delivered: BTreeMap<String, usize>,
    unrouted: usize,
    waiting: usize,
}

struct Hub<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    operator: &'a str,
}

impl Hub<'_> {
    async fn operator(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.operator);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await.with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    async fn document(&self, key: &str, doc: &Document, bytes: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .client
            .post(format!("{}/api/v1/documents/{}", self.base, doc.message_type))
            .bearer_auth(key)
            .header("content-type", doc.content_type)
            .body(bytes)
            .send()
            .await
            .context("posting a park document")?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }
}

/// Walks both example parks through the journey; a park whose registration
/// file is not in `<config>/connectors/parks/` is left out.
pub async fn run(client: &reqwest::Client, base: &str, operator: &str, config: &Path) -> Vec<ParkOutcome> {
    let hub = Hub { client, base, operator };
    let mut out = Vec::new();
    println!("\nJourney 2: two parks connect their own cell platforms (registered at run time, sandbox first)");
    for park in [&QUANGANG, &GULEI] {
        let file = config.join("connectors/parks").join(format!("{}.json", park.id));
        if !file.is_file() {
            println!("  {}: no {} here; skipped", park.id, file.display());
            continue;
        }
        match walk(&hub, park, &file).await {
            Ok(o) => out.push(o),
            Err(e) => println!("  {}: the journey stopped: {e:#}", park.id),
        }
    }
    out
}

async fn walk(hub: &Hub<'_>, park: &ExamplePark, file: &Path) -> anyhow::Result<ParkOutcome> {
    let id = park.id;
    let mut o = ParkOutcome {
        id: id.to_string(),
        format: park.format.to_string(),
        ..ParkOutcome::default()
    };
    let registration: Value = serde_json::from_slice(&std::fs::read(file).with_context(|| format!("reading {}", file.display()))?)
        .with_context(|| format!("{} is not JSON", file.display()))?;
    let (s, created) = hub.operator(reqwest::Method::POST, "/api/v1/partners", Some(&registration)).await?;
    anyhow::ensure!(s == 201, "registration answered {s}: {created}");
    let key = created["api_key"].as_str().unwrap_or_default().to_string();
    let types: Vec<&str> = registration["message_types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!(
        "  {id} ({}): registered in sandbox for {} in {}; API key {}… shown once",
        created["partner"]["name"].as_str().unwrap_or(""),
        types.join(", "),
        registration["division_code"].as_str().unwrap_or(""),
        key.chars().take(12).collect::<String>()
    );

    // Sandbox: the mistake, answered exactly as production would.
    let m = &park.mistake;
    let doc = &park.documents[m.document];
    let (s, answer) = hub.document(&key, doc, (m.make)(doc.bytes)).await?;
    println!("    sandbox: {} — {}", doc.name, m.what);
    println!("      → {s} {}", answer["code"].as_str().unwrap_or(""));
    for e in answer["errors"].as_array().into_iter().flatten() {
        println!(
            "        {}: {}",
            e["path"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    // The refusal is in the sandbox log for the operator. Conformance judges
    // the latest exchange per type by its time: the fix must come later.
    let (_, log) = hub
        .operator(reqwest::Method::GET, &format!("/api/v1/partners/{id}/sandbox"), None)
        .await?;
    let refused_at = log
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["received_at"].as_i64())
        .max()
        .unwrap_or(0);
    println!("    sandbox log: the refusal is kept with its errors for the operator");
    while crate::model::now_millis() <= refused_at {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The fix: every document, answered 202 in sandbox and kept there.
    for doc in park.documents {
        let (s, answer) = hub.document(&key, doc, doc.bytes.to_vec()).await?;
        println!(
            "    sandbox: {} ({}) → {s}{}",
            doc.name,
            doc.message_type,
            if answer["sandbox"] == true { " sandbox, not forwarded" } else { "" }
        );
    }
    let (_, log) = hub
        .operator(reqwest::Method::GET, &format!("/api/v1/partners/{id}/sandbox"), None)
        .await?;
    for r in log.as_array().into_iter().flatten() {
        if r["outcome"] == "accepted" {
            o.sandbox_accepted += 1;
        } else {
            o.sandbox_refused += 1;
        }
    }

    // Conformance and go-live, as the operator runs them.
    let (_, report) = hub
        .operator(
            reqwest::Method::POST,
            &format!("/api/v1/partners/{id}/conformance"),
            Some(&json!({})),
        )
        .await?;
    o.conformance = report["verdict"].as_str().unwrap_or("?").to_string();
    let coverage: Vec<String> = report["coverage"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {} passed", c["message_type"].as_str().unwrap_or(""), c["passed"]))
        .collect();
    println!(
        "    conformance {}: {} ({})",
        report["id"].as_str().unwrap_or(""),
        o.conformance.to_uppercase(),
        coverage.join(", ")
    );
    let (s, live) = hub
        .operator(reqwest::Method::POST, &format!("/api/v1/partners/{id}/go-live"), Some(&json!({})))
        .await?;
    anyhow::ensure!(s == 200, "go-live answered {s}: {live}");
    println!("    go-live: {}", live["status"].as_str().unwrap_or(""));

    // Production: the same documents, now routed and delivered; one sent twice.
    let mut messages = Vec::new();
    for doc in park.documents {
        let (s, answer) = hub.document(&key, doc, doc.bytes.to_vec()).await?;
        o.sent += 1;
        let to: Vec<&str> = answer["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["destination"].as_str())
            .collect();
        println!(
            "    live: {} → {s}, {}",
            doc.name,
            if to.is_empty() {
                "stored; no system takes this type yet".to_string()
            } else {
                format!("to {}", to.join(" and "))
            }
        );
        if s == 202 {
            o.accepted += 1;
            messages.push(answer["id"].as_str().unwrap_or_default().to_string());
        }
    }
    if let Some(doc) = park.documents.first() {
        let (s, answer) = hub.document(&key, doc, doc.bytes.to_vec()).await?;
        o.sent += 1;
        if s == 200 && answer["duplicate"] == true {
            o.duplicates += 1;
            println!("    live: {} again → 200 duplicate (the original receipt)", doc.name);
        }
    }
    settle(hub, &messages, &mut o).await;
    Ok(o)
}

/// Waits until every production delivery has ended, then counts them.
async fn settle(hub: &Hub<'_>, messages: &[String], o: &mut ParkOutcome) {
    let started = Instant::now();
    loop {
        let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
        let (mut waiting, mut unrouted) = (0, 0);
        for id in messages {
            let Ok((200, trace)) = hub.operator(reqwest::Method::GET, &format!("/api/v1/messages/{id}"), None).await else {
                waiting += 1;
                continue;
            };
            let deliveries = trace["deliveries"].as_array().cloned().unwrap_or_default();
            if deliveries.is_empty() {
                unrouted += 1;
            }
            for d in deliveries {
                match d["status"].as_str() {
                    Some("delivered") => *delivered.entry(d["destination"].as_str().unwrap_or("?").to_string()).or_default() += 1,
                    Some("dead") => {}
                    _ => waiting += 1,
                }
            }
        }
        (o.delivered, o.waiting, o.unrouted) = (delivered, waiting, unrouted);
        if waiting == 0 || started.elapsed() > DELIVERY_WAIT {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The per-park summary.
pub fn print_summary(parks: &[ParkOutcome]) {
    if parks.is_empty() {
        return;
    }
    println!("\nSummary per park");
    println!(
        "  {:<24} {:<6} {:>10} {:>8} {:>11} {:>5} {:>7} {:>10} {:>8} {:>8} {:>7}",
        "park", "format", "sandbox-ok", "refused", "conformance", "sent", "live-ok", "provincial", "national", "unrouted", "waiting"
    );
    for p in parks {
        let d = |n: &str| p.delivered.get(n).copied().unwrap_or(0);
        println!(
            "  {:<24} {:<6} {:>10} {:>8} {:>11} {:>5} {:>7} {:>10} {:>8} {:>8} {:>7}",
            p.id,
            p.format,
            p.sandbox_accepted,
            p.sandbox_refused,
            p.conformance,
            p.sent,
            p.accepted + p.duplicates,
            d("provincial"),
            d("national"),
            p.unrouted,
            p.waiting
        );
    }
    println!(
        "  (provincial and national = production messages delivered there; a document sent twice counts once, answered 200 duplicate)"
    );
}

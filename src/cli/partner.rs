//! `wastehub partner …`: the partner lifecycle from the command line. A thin
//! client of the admin API (`/api/v1/partners`), so the CLI and the API can
//! never disagree and every change is audited under the operator whose
//! token is used. The token comes from `WASTEHUB_OPERATOR_TOKEN` (never a
//! flag: flags are visible to other users in the process list).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// `wastehub partner` and its options shared by every subcommand.
#[derive(Debug, clap::Args)]
pub struct PartnerArgs {
    /// The hub's base URL.
    #[arg(long, env = "WASTEHUB_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub hub: String,
    /// Print the API's JSON answer instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: PartnerCommand,
}

/// The lifecycle commands.
#[derive(Debug, clap::Subcommand)]
pub enum PartnerCommand {
    /// Register a cell platform (it starts in sandbox); prints its API key once.
    Add {
        /// A registration file: the `POST /api/v1/partners` body as JSON
        /// (`connectors/parks/<id>.json`), instead of the flags below.
        #[arg(long, conflicts_with_all = ["id", "name", "division", "types", "mappings", "signing", "callback"])]
        file: Option<PathBuf>,
        /// Partner id: 3-63 of a-z, 0-9 and -.
        #[arg(long, required_unless_present = "file")]
        id: Option<String>,
        /// Display name.
        #[arg(long, required_unless_present = "file")]
        name: Option<String>,
        /// Jurisdiction: 6-digit division code.
        #[arg(long, required_unless_present = "file")]
        division: Option<String>,
        /// Message types it may send (comma-separated).
        #[arg(long, value_delimiter = ',', required_unless_present = "file")]
        types: Vec<String>,
        /// `type=mapping` for documents in its own format (repeatable).
        #[arg(long = "mapping")]
        mappings: Vec<String>,
        /// Require signed requests: hmac-sha256 or hmac-sm3.
        #[arg(long)]
        signing: Option<String>,
        /// Where prompts about its data are delivered.
        #[arg(long)]
        callback: Option<String>,
    },
    /// Show one partner.
    Show {
        /// Partner id.
        id: String,
    },
    /// List partners.
    List,
    /// Issue a new API key; the old ones keep working for the overlap.
    RotateKey {
        /// Partner id.
        id: String,
        /// How long the current keys keep working (e.g. 24h, 7d).
        #[arg(long)]
        overlap: Option<String>,
    },
    /// Suspend a partner: it is refused until resumed.
    Suspend {
        /// Partner id.
        id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Resume a suspended partner.
    Resume {
        /// Partner id.
        id: String,
    },
    /// Take a sandbox partner live (needs a passing conformance run).
    GoLive {
        /// Partner id.
        id: String,
        /// Go live without a passing run, for this reason (audited).
        #[arg(long = "override")]
        override_reason: Option<String>,
    },
    /// Show a partner's audit trail.
    Audit {
        /// Partner id.
        id: String,
    },
    /// Check a partner's sandbox traffic and/or sample files against the catalogue.
    Conformance {
        /// Partner id.
        id: String,
        /// A folder of sample messages to check as well.
        #[arg(long)]
        samples: Option<PathBuf>,
        /// Write the readable report here (HTML).
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

/// Runs a partner command against the hub.
pub async fn run(args: PartnerArgs) -> anyhow::Result<()> {
    let token = std::env::var("WASTEHUB_OPERATOR_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .context("set WASTEHUB_OPERATOR_TOKEN to your operator token")?;
    let api = Api {
        base: args.hub.trim_end_matches('/').to_string(),
        token,
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    };
    let (answer, printer): (Value, fn(&Value) -> String) = match &args.command {
        PartnerCommand::Add { file: Some(file), .. } => (
            api.send("POST", "/api/v1/partners", Some(registration_file(file)?)).await?,
            print_created,
        ),
        PartnerCommand::Add {
            file: None,
            id,
            name,
            division,
            types,
            mappings,
            signing,
            callback,
        } => {
            let mut map = serde_json::Map::new();
            for m in mappings {
                let (t, name) = m.split_once('=').with_context(|| format!("--mapping {m}: write type=mapping"))?;
                map.insert(t.trim().to_string(), Value::from(name.trim()));
            }
            let body = json!({
                "id": id, "name": name, "division_code": division, "message_types": types,
                "mappings": map, "signing": signing, "callback_url": callback,
            });
            (api.send("POST", "/api/v1/partners", Some(body)).await?, print_created)
        }
        PartnerCommand::Show { id } => (api.send("GET", &format!("/api/v1/partners/{id}"), None).await?, print_partner),
        PartnerCommand::List => (api.send("GET", "/api/v1/partners", None).await?, print_list),
        PartnerCommand::RotateKey { id, overlap } => (
            api.send("POST", &format!("/api/v1/partners/{id}/keys"), Some(json!({ "overlap": overlap })))
                .await?,
            print_rotated,
        ),
        PartnerCommand::Suspend { id, reason } => (
            api.send("POST", &format!("/api/v1/partners/{id}/suspend"), Some(json!({ "reason": reason })))
                .await?,
            print_partner,
        ),
        PartnerCommand::Resume { id } => (
            api.send("POST", &format!("/api/v1/partners/{id}/resume"), Some(json!({}))).await?,
            print_partner,
        ),
        PartnerCommand::GoLive { id, override_reason } => (
            api.send(
                "POST",
                &format!("/api/v1/partners/{id}/go-live"),
                Some(json!({ "override_reason": override_reason })),
            )
            .await?,
            print_partner,
        ),
        PartnerCommand::Audit { id } => (api.send("GET", &format!("/api/v1/partners/{id}/audit"), None).await?, print_audit),
        PartnerCommand::Conformance { id, samples, html } => {
            let samples = match samples {
                Some(dir) => crate::partners::conformance::read_samples(dir)?,
                None => Vec::new(),
            };
            let answer = api
                .send(
                    "POST",
                    &format!("/api/v1/partners/{id}/conformance"),
                    Some(json!({ "samples": samples })),
                )
                .await?;
            if let Some(path) = html {
                let run = answer.get("id").and_then(Value::as_str).unwrap_or_default();
                let page = api.text(&format!("/api/v1/conformance/{run}/report.html")).await?;
                std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("Report written to {}.", path.display());
            }
            (answer, print_conformance)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", printer(&answer));
    }
    Ok(())
}

/// Largest registration file read (the hub takes at most 64 KiB).
const MAX_REGISTRATION_FILE: u64 = 64 * 1024;

/// Reads a registration file: one JSON object, sent as it is (the hub
/// checks every field and answers with each problem).
fn registration_file(path: &std::path::Path) -> anyhow::Result<Value> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > MAX_REGISTRATION_FILE {
        bail!("{} is larger than {MAX_REGISTRATION_FILE} bytes", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let body: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON (the POST /api/v1/partners body)", path.display()))?;
    if !body.is_object() {
        bail!("{} must hold one JSON object (the POST /api/v1/partners body)", path.display());
    }
    Ok(body)
}

struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.client.post(&url),
            _ => self.client.get(&url),
        }
        .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            bail!("{status}: {}", explain(&value));
        }
        Ok(value)
    }

    async fn text(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let resp = self.client.get(&url).bearer_auth(&self.token).send().await?;
        if !resp.status().is_success() {
            bail!("{}: fetching {url}", resp.status());
        }
        Ok(resp.text().await?)
    }
}

/// An error answer as lines: code, detail, then each field error.
fn explain(v: &Value) -> String {
    let mut out = format!(
        "{} ({})",
        v.get("detail").and_then(Value::as_str).unwrap_or("the hub refused the request"),
        v.get("code").and_then(Value::as_str).unwrap_or("?")
    );
    for e in v.get("errors").and_then(Value::as_array).into_iter().flatten() {
        out.push_str(&format!(
            "\n  {}: {}",
            e.get("path").and_then(Value::as_str).unwrap_or(""),
            e.get("message").and_then(Value::as_str).unwrap_or("")
        ));
    }
    out
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn when(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_i64)
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| "-".into(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn print_partner(v: &Value) -> String {
    let mut out = format!(
        "{}  {}\n  status:       {}\n  jurisdiction: {}\n  source:       {}\n  types:        {}\n",
        s(v, "id"),
        s(v, "name"),
        s(v, "status"),
        s(v, "division_code"),
        s(v, "source"),
        v.get("message_types")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    if let Some(m) = v.get("mappings").and_then(Value::as_object).filter(|m| !m.is_empty()) {
        for (t, name) in m {
            out.push_str(&format!("  mapping:      {t} ← {}\n", name.as_str().unwrap_or("")));
        }
    }
    if !s(v, "signing").is_empty() {
        out.push_str(&format!("  signing:      {}\n", s(v, "signing")));
    }
    for k in v.get("keys").and_then(Value::as_array).into_iter().flatten() {
        let exp = k
            .get("expires_at")
            .and_then(Value::as_i64)
            .map_or("active".to_string(), |_| format!("expires {}", when(k, "expires_at")));
        out.push_str(&format!(
            "  key:          {}… created {} ({exp})\n",
            s(k, "key_prefix"),
            when(k, "created_at")
        ));
    }
    if let Some(c) = v.get("conformance") {
        out.push_str(&format!(
            "  conformance:  {} {} ({})\n",
            s(c, "id"),
            if c.get("passed").and_then(Value::as_bool) == Some(true) {
                "passed"
            } else {
                "failed"
            },
            when(c, "at")
        ));
    }
    out
}

fn print_created(v: &Value) -> String {
    let mut out = print_partner(v.get("partner").unwrap_or(&Value::Null));
    out.push_str(&format!(
        "\nAPI key (shown once; give it to the partner now):\n  {}\n",
        s(v, "api_key")
    ));
    if !s(v, "signing_secret").is_empty() {
        out.push_str(&format!("Signing secret (shown once):\n  {}\n", s(v, "signing_secret")));
    }
    out
}

fn print_list(v: &Value) -> String {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "No partners registered.\n".into();
    }
    let mut out = format!("{:<32} {:<10} {:<8} {}\n", "ID", "STATUS", "DIVISION", "NAME");
    for r in &rows {
        out.push_str(&format!(
            "{:<32} {:<10} {:<8} {}\n",
            s(r, "id"),
            s(r, "status"),
            s(r, "division_code"),
            s(r, "name")
        ));
    }
    out
}

fn print_rotated(v: &Value) -> String {
    format!(
        "New API key (shown once):\n  {}\nThe earlier keys stop working at {}.\n",
        s(v, "api_key"),
        when(v, "previous_keys_expire_at")
    )
}

fn print_audit(v: &Value) -> String {
    let mut out = String::new();
    for r in v.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}  {:<12} {:<20} {}\n",
            when(r, "at"),
            s(r, "actor"),
            s(r, "action"),
            s(r, "detail")
        ));
    }
    if out.is_empty() {
        out.push_str("No audit records.\n");
    }
    out
}

fn print_conformance(v: &Value) -> String {
    crate::partners::conformance::render_text(v)
}

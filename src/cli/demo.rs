//! `wastehub demo`: the hub on SQLite with the shipped connectors, stand-ins
//! for the provincial and national systems and for the transport and health
//! departments' registries (which the `poll` connectors read), and a stream
//! of sample messages from the Xiamen Haicang park's cell platform. Prints
//! progress and a per-partner summary; then the two example parks connect
//! their own platforms at run time (`super::demo_parks`: sandbox, conformance,
//! go-live, production) with a per-park summary; then it keeps serving until
//! Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::samples::{Samples, event};
use super::{Overrides, load, signal_on};
use crate::ingest::auth::generate_key;
use crate::sim::health::{HealthConfig, HealthSim, INSTITUTIONS_PATH};
use crate::sim::national::{NationalConfig, NationalSim};
use crate::sim::qinqing::{DEV_SECRET, NOTICES_PATH, QinqingConfig, QinqingSim};
use crate::sim::receiver::{Behaviour, Receiver};
use crate::sim::registry::RegistryConfig;
use crate::sim::transport::{CARRIERS_PATH, TransportConfig, TransportSim};

/// The park whose platform sends the sample stream (a shipped connector).
const PARK_SOURCE: &str = "urn:fj:cell:xm-haicang";

/// `wastehub demo` arguments.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Config directory (the shipped connectors and schemas).
    #[arg(long, default_value = ".")]
    config: PathBuf,
    /// Where the hub listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Database (started fresh on each demo run).
    #[arg(long, default_value = "sqlite://data/demo.db")]
    database: String,
    /// How many sample messages to send.
    #[arg(long, default_value_t = 300)]
    messages: u32,
    /// Share of national-system requests its stand-in fails with 503, to show retries.
    #[arg(long, default_value_t = 0.15)]
    national_failures: f64,
    /// Exit after the summary instead of serving until Ctrl-C.
    #[arg(long)]
    no_wait: bool,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.national_failures) {
        anyhow::bail!("--national-failures must be at least 0 and below 1");
    }
    let stop = CancellationToken::new();
    let provincial = Receiver::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        Behaviour::default(),
        stop.clone(),
    )?;
    let national_cfg = NationalConfig {
        fail_share: args.national_failures,
        ..NationalConfig::default()
    };
    let national_secret = national_cfg.client_secret.clone();
    let national = NationalSim::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, national_cfg, stop.clone())?;
    let departments = Departments::start(&stop).await?;
    let provinces = super::demo_xp::Provinces::start(&stop).await?;
    remove_sqlite_files(&args.database)?;

    let (park_key, park_sha) = generate_key();
    let (operator, operator_sha) = generate_key();
    // The provincial system sends too: the demo plays its department in
    // the cross-province journey.
    let (provincial_key, provincial_sha) = generate_key();
    let extra: BTreeMap<String, String> = [
        ("PROVINCIAL_URL", provincial.url("/events")),
        ("NATIONAL_URL", national.url("/exchange")),
        ("NATIONAL_TOKEN_URL", national.url("/oauth/token")),
        ("NATIONAL_CLIENT_SECRET", national_secret),
        // Short schedules so that the demo's retries finish in seconds.
        ("PROVINCIAL_RETRY_SCHEDULE", "0s 1s 2s 4s 8s 16s".into()),
        ("NATIONAL_RETRY_SCHEDULE", "0s 1s 2s 4s 8s 16s".into()),
        ("PARK_XM_HAICANG_KEY_SHA256", park_sha),
        ("PROVINCIAL_KEY_SHA256", provincial_sha),
        ("WASTEHUB__ADMIN__OPERATOR_TOKEN_SHA256", operator_sha),
    ]
    .into_iter()
    .chain(departments.env())
    .map(|(k, v)| (k.to_string(), v))
    .chain(provinces.env())
    .collect();
    let loaded = load(
        &args.config,
        &Overrides {
            database: Some(args.database.clone()),
            listen: Some(args.listen.clone()),
        },
        &extra,
    )?;
    let samples = Samples::load(&loaded.paths.resolve(&loaded.config.catalogue.schemas))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {} (use --listen)", args.listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    let hub = tokio::spawn(crate::run(loaded, listener, stop.clone()));
    tokio::spawn(signal_on(stop.clone()));

    println!("wastehub demo");
    println!("  hub:                  {base}  (database {})", args.database);
    println!("  provincial stand-in:  {}", provincial.url("/events"));
    println!(
        "  national simulator:   {}  (XML, OAuth2, 50 requests/s; fails {:.0} % of requests with 503)",
        national.url("/exchange"),
        args.national_failures * 100.0
    );
    println!(
        "  transport department: {}  (carrier registry, read by the transport-carriers poll connector)",
        departments.transport.url(CARRIERS_PATH)
    );
    println!(
        "  health commission:    {}  (medical institutions, read by the health-institutions poll connector)",
        departments.health.url(INSTITUTIONS_PATH)
    );
    println!(
        "  Qinqing platform:     {}  (prompts for units, signed HMAC-SM3)",
        departments.qinqing.url(NOTICES_PATH)
    );
    provinces.print();
    println!("  sender:               Xiamen Haicang park cell platform ({PARK_SOURCE})\n");

    let client = reqwest::Client::new();
    wait_ready(&client, &base).await?;
    let sent = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let sender = tokio::spawn(send_stream(
        client.clone(),
        base.clone(),
        park_key,
        samples,
        args.messages,
        sent.clone(),
        accepted.clone(),
    ));

    let started = Instant::now();
    let mut finished_sending = false;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stats = destination_stats(&client, &base, &operator).await.unwrap_or_default();
        let line = stats
            .iter()
            .map(|(d, c)| format!("{d}: {} delivered, {} waiting, {} dead", c.delivered, c.waiting, c.dead))
            .collect::<Vec<_>>();
        println!(
            "[{:>5.1}s] sent {}/{} · accepted {} · {}",
            started.elapsed().as_secs_f64(),
            sent.load(Ordering::Relaxed),
            args.messages,
            accepted.load(Ordering::Relaxed),
            if line.is_empty() {
                "no deliveries yet".to_string()
            } else {
                line.join(" · ")
            }
        );
        finished_sending |= sender.is_finished();
        let waiting: i64 = stats.values().map(|c| c.waiting).sum();
        if (finished_sending && waiting == 0) || started.elapsed() > Duration::from_secs(120) || stop.is_cancelled() {
            break;
        }
    }
    if let Ok(Err(e)) = sender.await {
        println!("sending stopped early: {e:#}");
    }
    print_summary(&client, &base, &operator, &provincial, &national).await;
    departments.print();
    let parks = super::demo_parks::run(&client, &base, &operator, &args.config).await;
    super::demo_parks::print_summary(&parks);
    let negotiations = super::demo_xp::run(&client, &base, &provincial_key, &operator, &provinces).await;
    super::demo_xp::print_summary(&negotiations);
    println!("\nThe hub keeps serving at {base}. The operator token for this run is:\n  {operator}");
    println!("Try:\n  curl -s -H 'Authorization: Bearer {operator}' '{base}/api/v1/messages?limit=3'");
    println!("  curl -s -H 'Authorization: Bearer {operator}' {base}/api/v1/messages/<id from the list>");
    println!("  curl -s -H 'Authorization: Bearer {operator}' {base}/api/v1/destinations");
    println!("  curl -s -H 'Authorization: Bearer {operator}' {base}/api/v1/partners");
    if args.no_wait {
        stop.cancel();
    } else {
        println!("Press Ctrl-C to stop.");
    }
    hub.await.context("hub task")?.context("running the hub")?;
    Ok(())
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    super::wait_until_ok(client, &format!("{base}/readyz")).await
}

/// Sends a realistic mix: each manifest is created, updated and tracked in
/// order; ledger entries come in between. Eight senders run at once.
async fn send_stream(
    client: reqwest::Client,
    base: String,
    key: String,
    samples: Samples,
    total: u32,
    sent: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let samples = Arc::new(samples);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..8u32 {
        let (client, base, key, samples, sent, accepted) = (
            client.clone(),
            base.clone(),
            key.clone(),
            samples.clone(),
            sent.clone(),
            accepted.clone(),
        );
        tasks.spawn(async move {
            let mut i = lane;
            while i < total {
                let manifest = 100 + i / 4;
                let body = match i % 4 {
                    0 => samples.manifest_created(manifest),
                    1 => samples.ledger(i),
                    2 => samples.track(manifest, i),
                    _ => samples.manifest_updated(manifest, 2),
                };
                let ev = event(PARK_SOURCE, &format!("demo-{i}"), body);
                let r = client
                    .post(format!("{base}/api/v1/messages"))
                    .bearer_auth(&key)
                    .header("content-type", "application/cloudevents+json")
                    .body(ev.to_string())
                    .send()
                    .await?;
                sent.fetch_add(1, Ordering::Relaxed);
                if r.status().is_success() {
                    accepted.fetch_add(1, Ordering::Relaxed);
                } else {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    println!("  event demo-{i} refused: {status} {text}");
                }
                i += 8;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

#[derive(Default, Clone, Copy)]
struct Counts {
    delivered: i64,
    waiting: i64,
    dead: i64,
    attempts: i64,
    failed: i64,
}

async fn destination_stats(client: &reqwest::Client, base: &str, operator: &str) -> anyhow::Result<BTreeMap<String, Counts>> {
    let v: serde_json::Value = client
        .get(format!("{base}/api/v1/destinations"))
        .bearer_auth(operator)
        .send()
        .await?
        .json()
        .await?;
    let mut out = BTreeMap::new();
    for d in v.as_array().into_iter().flatten() {
        let n = |s: &str| d["deliveries"][s].as_i64().unwrap_or(0);
        out.insert(
            d["destination"].as_str().unwrap_or("?").to_string(),
            Counts {
                delivered: n("delivered"),
                dead: n("dead"),
                waiting: n("pending") + n("in_flight") + n("held") + n("retrying"),
                attempts: d["attempts"].as_i64().unwrap_or(0),
                failed: d["failed_attempts"].as_i64().unwrap_or(0),
            },
        );
    }
    Ok(out)
}

async fn print_summary(client: &reqwest::Client, base: &str, operator: &str, provincial: &Receiver, national: &NationalSim) {
    let stats = destination_stats(client, base, operator).await.unwrap_or_default();
    println!("\nSummary per partner");
    println!(
        "  {:<12} {:>6} {:>7} {:>8} {:>6} {:>8}",
        "partner", "sent", "acked", "retried", "dead", "waiting"
    );
    let provincial_acked = provincial.record.lock().map(|r| r.accepted.len()).unwrap_or(0) as u64;
    for (name, acked) in [("provincial", provincial_acked), ("national", national.counts().accepted)] {
        let c = stats.get(name).copied().unwrap_or_default();
        println!(
            "  {:<12} {:>6} {:>7} {:>8} {:>6} {:>8}",
            name, c.attempts, acked, c.failed, c.dead, c.waiting
        );
    }
    let n = national.counts();
    println!("  (sent = attempts made; acked = accepted by the partner; retried = failed attempts that were tried again)");
    println!(
        "  national simulator: {} OAuth2 token(s) issued, {} answered 503, {} answered 429, {} refused by its schema",
        n.tokens, n.unavailable, n.rate_limited, n.refused
    );
}

/// The departments' registries the shipped `poll` connectors read, on
/// ephemeral ports, polled every few seconds so the demo shows them; and
/// the Qinqing platform, which receives the hub's prompts for units (the
/// parks' refused documents raise some).
struct Departments {
    transport: TransportSim,
    health: HealthSim,
    qinqing: QinqingSim,
    /// SHA-256 of the key Qinqing would send replies with (it sends none in the demo).
    qinqing_key_sha256: String,
}

impl Departments {
    const TRANSPORT_TOKEN: &'static str = "transport-sim-token";
    const HEALTH_TOKEN: &'static str = "health-sim-token";

    async fn start(stop: &CancellationToken) -> anyhow::Result<Self> {
        let registry = |token: &str| RegistryConfig {
            token: token.to_string(),
            ..RegistryConfig::default()
        };
        let transport = TransportSim::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            TransportConfig {
                registry: registry(Self::TRANSPORT_TOKEN),
                ..TransportConfig::default()
            },
            stop.clone(),
        )?;
        let health = HealthSim::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            HealthConfig {
                registry: registry(Self::HEALTH_TOKEN),
                ..HealthConfig::default()
            },
            stop.clone(),
        )?;
        // Records keep changing, as a live registry's do.
        transport.registry.churn(Duration::from_secs(5), 2, stop.clone());
        health.registry.churn(Duration::from_secs(5), 2, stop.clone());
        let qinqing = QinqingSim::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            QinqingConfig::default(),
            stop.clone(),
        )?;
        let (_, qinqing_key_sha256) = generate_key();
        Ok(Self {
            transport,
            health,
            qinqing,
            qinqing_key_sha256,
        })
    }

    /// The connector files' variables that point them here.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TRANSPORT_URL", self.transport.url(CARRIERS_PATH)),
            ("TRANSPORT_TOKEN", Self::TRANSPORT_TOKEN.into()),
            ("TRANSPORT_POLL_INTERVAL", "5s".into()),
            ("HEALTH_URL", self.health.url(INSTITUTIONS_PATH)),
            ("HEALTH_TOKEN", Self::HEALTH_TOKEN.into()),
            ("HEALTH_POLL_INTERVAL", "5s".into()),
            ("QINQING_URL", self.qinqing.url(NOTICES_PATH)),
            ("QINQING_SIGNING_SECRET", DEV_SECRET.into()),
            ("QINQING_KEY_SHA256", self.qinqing_key_sha256.clone()),
            ("QINQING_RETRY_SCHEDULE", "0s 1s 2s 4s 8s".into()),
        ]
    }

    fn print(&self) {
        let (t, h) = (self.transport.registry.counts(), self.health.registry.counts());
        let q = self.qinqing.counts();
        println!("  Qinqing platform: {} notice(s) accepted", q.accepted);
        println!(
            "  department registries so far: transport {} page(s), {} carrier record(s) of {}; health {} page(s), {} institution record(s) of {}",
            t.pages,
            t.items,
            self.transport.registry.len(),
            h.pages,
            h.items,
            self.health.registry.len()
        );
    }
}

fn remove_sqlite_files(url: &str) -> anyhow::Result<()> {
    let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return Ok(());
    };
    for suffix in ["", "-wal", "-shm", "-jobs", "-jobs-wal", "-jobs-shm"] {
        let p = format!("{path}{suffix}");
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing the previous demo database {p}")),
        }
    }
    Ok(())
}

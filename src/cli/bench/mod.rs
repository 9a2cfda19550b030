//! `wastehub bench`: the standard workload, measured against two ceilings
//! taken in the same run on the same machine.
//!
//! 1. HTTP ceiling: the same load against a bare axum handler that only reads
//!    the body and answers 202 (`wastehub bench-bare`, its own process).
//! 2. Storage ceiling: a bare batched insert of the same rows on the same
//!    kind of database ([`crate::store::Store::storage_ceiling`]).
//! 3. The hub (`wastehub serve`, its own process, so its memory is its own)
//!    with two destinations served by a fast local receiver that acks all.
//! 4. Accept latency at a fixed rate (default 1,000 msg/s).
//!
//! `--backlog N` instead measures memory with N messages waiting for two
//! destinations that are down.

mod load;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::samples::{Samples, event};
use crate::config::{DatabaseConfig, Secret, SqliteSynchronous};
use crate::ingest::auth::generate_key;
use crate::sim::receiver::{Behaviour, Receiver};
use crate::store::Store;

pub use report::Report;

/// `wastehub bench` arguments.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Messages in the standard workload.
    #[arg(long, default_value_t = 100_000)]
    messages: u32,
    /// Distinct subjects (ordering keys).
    #[arg(long, default_value_t = 5_000)]
    subjects: u32,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// A PostgreSQL server URL (a fresh database is created on it and dropped
    /// afterwards); default: a fresh SQLite file in a temporary folder.
    #[arg(long)]
    database: Option<String>,
    /// Destinations each message is routed to (0-2). 0 measures ingest
    /// alone; the standard workload uses 2.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    destinations: u8,
    /// Rate of the accept-latency phase, messages per second.
    #[arg(long, default_value_t = 1_000)]
    rate: u32,
    /// Length of the accept-latency phase, seconds.
    #[arg(long, default_value_t = 5)]
    latency_seconds: u32,
    /// Instead of the standard workload: accept this many messages while both
    /// destinations are down, and report the hub's peak memory.
    #[arg(long)]
    backlog: Option<u32>,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Config directory to take the sample events from.
    #[arg(long, default_value = ".")]
    config: PathBuf,
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("temporary folder")?;
    let exe = std::env::current_exe().context("locating the wastehub binary")?;
    let schemas = args.config.join("schemas/canonical");
    let samples = Arc::new(Samples::load(&schemas)?);
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let (database, pg_cleanup) = match &args.database {
        None => (format!("sqlite://{}", tmp.path().join("bench.db").display()), None),
        Some(base) if base.starts_with("postgres") => {
            let name = format!("wh_bench_{}", ulid::Ulid::generate().to_string().to_lowercase());
            (Store::create_postgres_database(base, &name).await?, Some((base.clone(), name)))
        }
        Some(other) => anyhow::bail!("--database takes a postgres:// server URL (SQLite is the default): {other}"),
    };
    let backend = if database.starts_with("sqlite") { "sqlite" } else { "postgres" };
    let stop = CancellationToken::new();
    let receiver = Receiver::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        Behaviour::default(),
        stop.clone(),
    )?;
    let body: load::BodyFn = {
        let samples = samples.clone();
        Arc::new(move |i, subject, seq| {
            let mut ev = event("urn:bench:load", &format!("b{i}"), samples.manifest_compact(subject));
            ev["benchseq"] = json!(seq);
            ev
        })
    };
    let event_bytes = body(0, 0, 0).to_string().len();

    let result = if let Some(backlog) = args.backlog {
        say(format!(
            "Backlog run: {backlog} messages to two destinations that are down ({backend})."
        ));
        backlog_run(&args, &exe, tmp.path(), &database, backlog, body.clone(), &schemas).await
    } else {
        standard_run(
            &args,
            &exe,
            tmp.path(),
            &database,
            backend,
            &receiver,
            body.clone(),
            event_bytes,
            &schemas,
            say,
        )
        .await
    };
    stop.cancel();
    if let Some((base, name)) = pg_cleanup {
        Store::drop_postgres_database(&base, &name).await.ok();
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.human());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn standard_run(
    args: &BenchArgs,
    exe: &Path,
    dir: &Path,
    database: &str,
    backend: &str,
    receiver: &Receiver,
    body: load::BodyFn,
    event_bytes: usize,
    schemas: &Path,
    say: impl Fn(String),
) -> anyhow::Result<Report> {
    let n = args.messages;
    // 1. HTTP ceiling.
    say(format!(
        "1/4 HTTP ceiling: {n} events to a bare handler over {} connections…",
        args.connections
    ));
    let port = free_port()?;
    let mut bare = spawn(exe, &["bench-bare", "--listen", &format!("127.0.0.1:{port}")])?;
    wait_ready(port).await?;
    let http = load::run(
        &format!("http://127.0.0.1:{port}/api/v1/messages"),
        "none",
        n,
        args.subjects,
        args.connections,
        None,
        body.clone(),
    )
    .await;
    stop_child(&mut bare);
    let http_rate = rate(http.latencies.len(), http.started, http.finished);

    // 2. Storage ceiling.
    say(format!("2/4 storage ceiling: {n} bare batched inserts ({backend})…"));
    // A store of its own, so the hub's run starts empty.
    let ceiling_db = format!("wh_bench_ceiling_{}", ulid::Ulid::generate().to_string().to_lowercase());
    let pg_base = args.database.clone().unwrap_or_default();
    let ceiling_url = if backend == "sqlite" {
        format!("sqlite://{}", dir.join("ceiling.db").display())
    } else {
        Store::create_postgres_database(&pg_base, &ceiling_db).await?
    };
    let store = Store::connect(&DatabaseConfig {
        url: Secret::new(ceiling_url),
        max_connections: 4,
        sqlite_synchronous: SqliteSynchronous::Full,
    })
    .await?;
    let sample = body(0, 0, 0).to_string();
    let took = store.storage_ceiling(n as usize, 512, &sample).await?;
    store.close().await;
    if backend == "postgres" {
        Store::drop_postgres_database(&pg_base, &ceiling_db).await.ok();
    }
    let storage_rate = f64::from(n) / took.as_secs_f64();

    // 3. The hub.
    say(format!(
        "3/4 hub: {n} events over {} subjects, {} connections, {} destination(s)…",
        args.subjects, args.connections, args.destinations
    ));
    let (url_a, url_b) = (receiver.url("/a"), receiver.url("/b"));
    let all = [("a", url_a.as_str()), ("b", url_b.as_str())];
    let destinations = &all[..usize::from(args.destinations)];
    let (mut hub, url, key) = start_hub(exe, dir, schemas, database, destinations, u64::from(n) * 4).await?;
    let mut main = load::run(&url, &key, n, args.subjects, args.connections, None, body.clone()).await;
    let want = main.accepted_at.len() * usize::from(args.destinations);
    let drain_started = Instant::now();
    loop {
        let got = receiver.record.lock().map(|r| r.accepted.len()).unwrap_or(0);
        if got >= want || drain_started.elapsed() > Duration::from_secs(600) {
            break;
        }
        say(format!("    delivered {got}/{want}…"));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // 4. Accept latency at a fixed rate, on the same hub.
    let total = args.rate * args.latency_seconds;
    say(format!("4/4 accept latency at {} msg/s for {} s…", args.rate, args.latency_seconds));
    let offset = n;
    let paced_body: load::BodyFn = {
        let body = body.clone();
        Arc::new(move |i, subject, seq| {
            let mut ev = body(i, subject, seq);
            ev["id"] = json!(format!("p{}", i + offset));
            ev
        })
    };
    let mut paced = load::run(&url, &key, total, 1000, args.connections, Some(args.rate), paced_body).await;
    let peak_rss = peak_rss_kib(&hub).unwrap_or(0);
    stop_child(&mut hub);

    let record = receiver.record.lock().map_err(|_| anyhow::anyhow!("receiver lock poisoned"))?;
    Ok(Report::standard(report::Inputs {
        backend: backend.to_string(),
        messages: n,
        destinations: args.destinations,
        subjects: args.subjects,
        connections: args.connections,
        event_bytes,
        http_ceiling_per_s: http_rate,
        storage_ceiling_per_s: storage_rate,
        main: &mut main,
        paced: &mut paced,
        paced_rate: args.rate,
        record: &record,
        peak_rss_kib: peak_rss,
    }))
}

async fn backlog_run(
    args: &BenchArgs,
    exe: &Path,
    dir: &Path,
    database: &str,
    n: u32,
    body: load::BodyFn,
    schemas: &Path,
) -> anyhow::Result<Report> {
    // Port 9 (discard) has no listener here: every attempt is refused at once.
    let down = "http://127.0.0.1:9/down";
    let (mut hub, url, key) = start_hub(exe, dir, schemas, database, &[("a", down), ("b", down)], u64::from(n) * 4).await?;
    let result = load::run(&url, &key, n, args.subjects, args.connections, None, body).await;
    let peak = peak_rss_kib(&hub).unwrap_or(0);
    stop_child(&mut hub);
    Ok(Report::backlog(
        n,
        result.accepted_at.len(),
        rate(result.accepted_at.len(), result.started, result.finished),
        peak,
    ))
}

/// Writes the hub's config and starts `wastehub serve` on a free port;
/// returns the process, the ingest URL and the partner key.
async fn start_hub(
    exe: &Path,
    dir: &Path,
    schemas: &Path,
    database: &str,
    destinations: &[(&str, &str)],
    max_backlog: u64,
) -> anyhow::Result<(Child, String, String)> {
    let (key, hub_dir) = write_hub_config(dir, schemas, database, destinations, max_backlog)?;
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let hub = spawn(exe, &["serve", "--config", &hub_dir.display().to_string(), "--listen", &listen])?;
    wait_ready(port).await?;
    Ok((hub, format!("http://{listen}/api/v1/messages"), key))
}

fn write_hub_config(
    dir: &Path,
    schemas: &Path,
    database: &str,
    destinations: &[(&str, &str)],
    max_backlog: u64,
) -> anyhow::Result<(String, PathBuf)> {
    let hub = dir.join("hub");
    std::fs::create_dir_all(hub.join("connectors"))?;
    let (key, key_sha) = generate_key();
    let (_, op_sha) = generate_key();
    let schemas = std::fs::canonicalize(schemas).with_context(|| format!("schemas folder {}", schemas.display()))?;
    // The reference tables sit beside the canonical schemas (`schemas/reference`).
    let reference = schemas.with_file_name("reference");
    std::fs::write(
        hub.join("wastehub.toml"),
        format!(
            "[catalogue]\nschemas = {:?}\nreference = {:?}\n[database]\nurl = {database:?}\n[ingest]\nmax_backlog = {max_backlog}\n[admin]\noperator_token_sha256 = \"{op_sha}\"\n[log]\nlevel = \"warn\"\n",
            schemas.display().to_string(),
            reference.display().to_string()
        ),
    )?;
    std::fs::write(
        hub.join("connectors/bench.toml"),
        format!("name = \"bench\"\nkind = \"http_json\"\n[inbound]\nsources = [\"urn:bench:load\"]\napi_key_sha256 = [\"{key_sha}\"]\n"),
    )?;
    for (name, url) in destinations {
        std::fs::write(
            hub.join(format!("connectors/{name}.toml")),
            format!(
                "name = \"{name}\"\nkind = \"http_json\"\n[outbound]\nurl = {url:?}\nconcurrency = 64\ntimeout = \"10s\"\nretry_schedule = \"0s 1h\"\n[[routes]]\ntypes = [\"manifest-*\"]\n"
            ),
        )?;
    }
    Ok((key, hub))
}

fn spawn(exe: &Path, args: &[&str]) -> anyhow::Result<Child> {
    Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))
}

/// SIGTERM (graceful), then SIGKILL if it has not gone within 10 s.
fn stop_child(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_ready(port: u16) -> anyhow::Result<()> {
    super::wait_until_ok(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}/healthz")).await
}

/// The peak resident set (VmHWM) of a child process, in KiB (Linux).
fn peak_rss_kib(child: &Child) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rate(n: usize, from: Option<Instant>, to: Option<Instant>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) if b > a => n as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    }
}

/// `wastehub bench-bare`: the HTTP ceiling's server, a handler that reads
/// the body and answers 202 with a receipt-sized body.
pub async fn serve_bare(listen: &str) -> anyhow::Result<()> {
    use axum::routing::{get, post};
    let app = axum::Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/api/v1/messages",
        post(|body: axum::body::Bytes| async move {
            let _ = body.len();
            (
                axum::http::StatusCode::ACCEPTED,
                axum::Json(json!({"id": "msg_bare", "received_at": "", "deliveries": []})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let stop = CancellationToken::new();
    tokio::spawn(super::signal_on(stop.clone()));
    axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await?;
    Ok(())
}

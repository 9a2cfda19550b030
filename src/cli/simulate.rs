//! `wastehub simulate <partner>`: plays a partner's part locally, for tests,
//! the demo and a partner's own integration work. Partners the hub sends to
//! (`national`, `provincial`) are served on a local address, as is a
//! neighbouring province's hub (`province --code 36`) that receives the hub's
//! signed letters and replies to consultations as scripted; partners that
//! send to the hub are played as senders: `park-xiamen-haicang` posts its
//! XML ledger records to a hub, `market-regulation` writes registry
//! extracts into the hub's drop folder.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{HumanDuration, Secret};
use crate::letters::keys::PartnerKeys;
use crate::letters::{PrivateKey, PublicKey};
use crate::sim::health::{HealthConfig, HealthSim, INSTITUTIONS_PATH};
use crate::sim::market_regulation::{self, DropConfig};
use crate::sim::national::{NationalConfig, NationalSim};
use crate::sim::park::{self, ParkConfig};
use crate::sim::province::{self, LETTERS_PATH, ProvinceConfig, ProvinceSim};
use crate::sim::provincial::{ProvincialConfig, ProvincialSim};
use crate::sim::qinqing::{NOTICES_PATH, QinqingConfig, QinqingSim};
use crate::sim::registry::{Registry, RegistryConfig};
use crate::sim::transport::{CARRIERS_PATH, TOPIC_PREFIX, TransportConfig, TransportSim};

/// The partners with a simulator.
const PARTNERS: &str = "national, provincial, province, qinqing, transport, health, park-xiamen-haicang, market-regulation";

/// Arguments of `wastehub simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The partner: `national`, `provincial`, `province`, `qinqing`,
    /// `transport`, `health`, `park-xiamen-haicang` or `market-regulation`.
    pub partner: String,
    /// Listen address (default: the address the shipped connector calls:
    /// 127.0.0.1:9102 national, 127.0.0.1:9101 provincial, 127.0.0.1:9105
    /// qinqing, 127.0.0.1:9103 transport, 127.0.0.1:9104 health,
    /// 127.0.0.1:93<code> province, e.g. 9336 Jiangxi, 9344 Guangdong, 9333
    /// Zhejiang).
    #[arg(long)]
    pub listen: Option<String>,
    /// Share of requests answered with a failure (0.0-1.0): 503 for the
    /// national and provincial systems, 5001 (busy) for Qinqing, 500 for the
    /// departments' pages.
    #[arg(long, default_value_t = 0.0)]
    pub fail_share: f64,
    /// Published rate limit, requests per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// OAuth2 client id the hub must present.
    #[arg(long, default_value = "wastehub-fj")]
    pub client_id: String,
    /// OAuth2 client secret (default: the simulator's development secret).
    #[arg(
        long,
        env = "NATIONAL_CLIENT_SECRET",
        default_value = "national-sim-secret",
        hide_env_values = true
    )]
    pub client_secret: String,
    /// qinqing: the HMAC-SM3 secret shared with the hub (default: the
    /// simulator's development secret).
    #[arg(
        long,
        env = "QINQING_SIGNING_SECRET",
        default_value = crate::sim::qinqing::DEV_SECRET,
        hide_env_values = true
    )]
    pub signing_secret: String,
    /// qinqing: the platform's API key at the hub (its SHA-256 is the
    /// connector's `QINQING_KEY_SHA256`); without it no reply can be posted.
    #[arg(long, env = "QINQING_HUB_KEY", default_value = "", hide_env_values = true)]
    pub hub_key: String,
    /// province: the PEM file of the province hub's private signing key
    /// (`wastehub letter keygen`).
    #[arg(long)]
    pub signing_key: Option<std::path::PathBuf>,
    /// province: a PEM file with one of the Fujian hub's public keys
    /// (repeatable, for a key rotation).
    #[arg(long)]
    pub hub_public_key: Vec<std::path::PathBuf>,
    /// park-xiamen-haicang, qinqing and province: the hub's base URL (where
    /// records, replies and letters are posted).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub hub: String,
    /// park-xiamen-haicang: the park's API key (made by `wastehub keygen`;
    /// its digest goes into PARK_XM_HAICANG_KEY_SHA256).
    #[arg(long, env = "PARK_XM_HAICANG_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// province: the 2-digit code of the province played (36 Jiangxi, 44
    /// Guangdong, 33 Zhejiang, ...).
    #[arg(long)]
    pub code: Option<String>,
    /// province: the answer to consultations without a script of their own:
    /// `agree` (default), `disagree`, `late` or `silent`.
    #[arg(long, value_parser = parse_answer)]
    pub answer: Option<province::Answer>,
    /// province: how long after a consultation the reply is sent (default 200ms).
    #[arg(long, value_parser = HumanDuration::parse)]
    pub reply_delay: Option<HumanDuration>,
    /// province: how long a `late` reply waits (default 3s).
    #[arg(long, value_parser = HumanDuration::parse)]
    pub late_after: Option<HumanDuration>,
    /// province: the abbreviation in its letter numbers (default by code,
    /// e.g. 赣 for 36).
    #[arg(long)]
    pub abbreviation: Option<String>,
    /// market-regulation: the drop folder the hub watches (MARKET_DROP_DIR).
    #[arg(long, env = "MARKET_DROP_DIR", default_value = "data/drop/market-regulation")]
    pub drop: PathBuf,
    /// market-regulation: rows per extract file.
    #[arg(long, default_value_t = 5)]
    pub rows: usize,
    /// Senders: pause between two records (park) or files (market-regulation).
    #[arg(long, value_parser = HumanDuration::parse)]
    pub interval: Option<HumanDuration>,
    /// Senders: stop after this many records or files.
    #[arg(long)]
    pub count: Option<u64>,
    /// Departments: the bearer token the hub must send (default: the
    /// `TRANSPORT_TOKEN` or `HEALTH_TOKEN` variable, else
    /// `transport-sim-token` / `health-sim-token`).
    #[arg(long)]
    pub token: Option<String>,
    /// Departments: records in the generated registry (default 120
    /// carriers, 300 institutions).
    #[arg(long)]
    pub records: Option<usize>,
    /// Departments: seed of the generated registry.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Departments: largest page size (`limit`) accepted.
    #[arg(long, default_value_t = 200)]
    pub max_page: usize,
    /// Departments: change a few records every this long (e.g. `30s`).
    #[arg(long)]
    pub churn: Option<String>,
    /// Transport: the broker to publish vehicle positions to (`mqtt://host:port`).
    #[arg(long)]
    pub mqtt: Option<String>,
    /// Transport: publish a batch for a few vehicles every this long (needs `--mqtt`).
    #[arg(long)]
    pub tracks_every: Option<String>,
}

/// `--answer` as the simulator's answer.
fn parse_answer(text: &str) -> Result<province::Answer, String> {
    text.parse()
}

/// `--churn` and `--tracks-every` as durations.
fn duration(flag: &str, text: Option<&str>) -> anyhow::Result<Option<std::time::Duration>> {
    text.map(|t| {
        HumanDuration::parse(t)
            .map(|d| d.0)
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
            .and_then(|d| {
                if d.is_zero() {
                    Err(anyhow::anyhow!("{flag} must be more than 0"))
                } else {
                    Ok(d)
                }
            })
    })
    .transpose()
}

/// Paging settings shared by the department simulators.
fn registry_config(args: &SimulateArgs, token_var: &str, default_token: &str) -> RegistryConfig {
    RegistryConfig {
        token: args
            .token
            .clone()
            .or_else(|| std::env::var(token_var).ok().filter(|t| !t.is_empty()))
            .unwrap_or_else(|| default_token.to_string()),
        max_page: args.max_page.max(1),
        fail_share: args.fail_share,
        ..RegistryConfig::default()
    }
}

/// Prints the controls a department simulator serves.
fn print_registry(base: &str, path: &str, registry: &Registry, token_var: &str) {
    println!(
        "  paged registry:    {base}{path}  ({} records; Authorization: Bearer <{token_var}>)",
        registry.len()
    );
    println!("  change records:    POST {base}/_sim/touch {{\"count\": 5}}");
    println!("  outage:            POST {base}/_sim/outage {{\"down\": true}}");
    println!("  counters:          {base}/_sim/counts");
}

/// Runs a simulator until Ctrl-C (a sender also stops after `--count`).
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.fail_share) {
        anyhow::bail!("--fail-share must be between 0 and 1");
    }
    let stop = CancellationToken::new();
    tokio::spawn(super::signal_on(stop.clone()));
    match args.partner.as_str() {
        "national" => national(&args, stop.clone()).await?,
        "provincial" => provincial(&args, stop.clone()).await?,
        "province" => province_hub(&args, stop.clone()).await?,
        "qinqing" => qinqing(&args, stop.clone()).await?,
        "transport" => transport(&args, stop.clone()).await?,
        "health" => health(&args, stop.clone()).await?,
        "park-xiamen-haicang" => return park_sender(args, stop).await,
        "market-regulation" => return market_sender(args, stop).await,
        other => anyhow::bail!("no simulator for {other:?}; available: {PARTNERS}"),
    }
    stop.cancelled().await;
    Ok(())
}

async fn national(args: &SimulateArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let listen = args.listen.clone().unwrap_or_else(|| "127.0.0.1:9102".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let sim = NationalSim::start(
        listener,
        NationalConfig {
            client_id: args.client_id.clone(),
            client_secret: args.client_secret.clone(),
            token_lifetime: Duration::from_secs(3600),
            rate_per_second: args.rate,
            fail_share: args.fail_share,
        },
        stop,
    )?;
    println!("national system simulator on {}", sim.url(""));
    println!("  token endpoint:    {}", sim.url("/oauth/token"));
    println!("  exchange endpoint: {}", sim.url("/exchange"));
    println!(
        "  accepted so far:   {}  (outage: POST /_sim/outage {{\"down\": true}})",
        sim.url("/_sim/accepted")
    );
    println!("  every request:     {}", sim.url("/_sim/exchanges"));
    Ok(())
}

async fn provincial(args: &SimulateArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let listen = args.listen.clone().unwrap_or_else(|| "127.0.0.1:9101".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let sim = ProvincialSim::start(
        listener,
        ProvincialConfig {
            token: std::env::var("PROVINCIAL_TOKEN").unwrap_or_default(),
            fail_share: args.fail_share,
        },
        stop,
    )?;
    println!("provincial system simulator on {}", sim.url(""));
    println!("  events endpoint:   {}", sim.url("/events"));
    println!("  accepted so far:   {}", sim.url("/_sim/accepted"));
    println!("  every request:     {}", sim.url("/_sim/exchanges"));
    Ok(())
}

async fn qinqing(args: &SimulateArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let hub_key = args.hub_key.clone();
    if args.signing_secret.len() < 16 {
        anyhow::bail!("--signing-secret must be at least 16 characters, as the hub's signature.secret");
    }
    let listen = args.listen.clone().unwrap_or_else(|| "127.0.0.1:9105".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let sim = QinqingSim::start(
        listener,
        QinqingConfig {
            signing_secret: Secret::new(args.signing_secret.clone()),
            fail_share: args.fail_share,
            hub_url: Some(args.hub.clone()),
            hub_key: Secret::new(hub_key.clone()),
        },
        stop,
    )?;
    println!("Qinqing service platform simulator on {}", sim.url(""));
    println!("  notices endpoint:  {}  (HMAC-SM3 signed)", sim.url(NOTICES_PATH));
    println!("  accepted so far:   {}", sim.url("/_sim/accepted"));
    println!(
        "  replies go to:     {}/api/v1/documents/prompt{}",
        args.hub.trim_end_matches('/'),
        if hub_key.is_empty() {
            "  (no --hub-key: replies cannot be posted)"
        } else {
            ""
        }
    );
    println!(
        "  reply to a notice: curl -X POST {} -H 'content-type: application/json' -d '{{\"noticeId\": \"<noticeId>\", \"replyType\": \"02\"}}'",
        sim.url("/_sim/reply")
    );
    Ok(())
}

/// A file given on the command line, refused when the value came from an
/// environment variable meant for another simulator (it holds a secret,
/// not a path, and must not be printed in an error).
fn read_pem_arg(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("{flag}: reading {}", path.display()))?;
    if meta.len() > crate::letters::keys::MAX_PEM_BYTES as u64 {
        anyhow::bail!(
            "{flag}: {} is larger than {} bytes",
            path.display(),
            crate::letters::keys::MAX_PEM_BYTES
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("{flag}: reading {}", path.display()))
}

/// The default address of a province's simulator: `127.0.0.1:93<code>`,
/// where the shipped province connector calls it.
fn province_listen(code: &str) -> String {
    format!("127.0.0.1:93{code}")
}

async fn province_hub(args: &SimulateArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let code = args
        .code
        .clone()
        .context("province: --code is required (e.g. 36 Jiangxi, 44 Guangdong, 33 Zhejiang)")?;
    let key_file = args
        .signing_key
        .as_deref()
        .context("province: --signing-key <private key PEM file> is required")?;
    let key = PrivateKey::from_pem(&read_pem_arg("--signing-key", key_file)?).context("--signing-key")?;
    if args.hub_public_key.is_empty() {
        anyhow::bail!("province: --hub-public-key <Fujian hub public key PEM file> is required (repeatable)");
    }
    let mut hub_keys = PartnerKeys::default();
    for file in &args.hub_public_key {
        let public = PublicKey::from_pem(&read_pem_arg("--hub-public-key", file)?)
            .with_context(|| format!("--hub-public-key {}", file.display()))?;
        hub_keys.add(public).context("--hub-public-key")?;
    }
    let mut cfg = ProvinceConfig::new(&code, key, hub_keys);
    cfg.hub_url = Some(args.hub.clone());
    if let Some(answer) = args.answer {
        cfg.default_answer = answer;
    }
    if let Some(d) = args.reply_delay {
        cfg.reply_delay = d.0;
    }
    if let Some(d) = args.late_after {
        cfg.late_after = d.0;
    }
    if let Some(a) = &args.abbreviation {
        cfg.abbreviation = a.clone();
    }
    let (abbreviation, answer, key_id) = (cfg.abbreviation.clone(), cfg.default_answer, cfg.key.public().key_id().to_string());
    let listen = args.listen.clone().unwrap_or_else(|| province_listen(&code));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let sim = ProvinceSim::start(listener, cfg, stop)?;
    println!("province {code} ({abbreviation}) hub simulator on {}", sim.url(""));
    println!(
        "  letters endpoint:  {}  (signed CloudEvents; receipts signed with key {key_id})",
        sim.url(LETTERS_PATH)
    );
    println!(
        "  replies go to:     {}{}  (default answer: {answer})",
        args.hub.trim_end_matches('/'),
        province::HUB_LETTERS_PATH
    );
    println!("  letters received:  {}", sim.url("/_sim/letters"));
    println!("  letters sent:      {}", sim.url("/_sim/sent"));
    println!("  every request:     {}", sim.url("/_sim/exchanges"));
    println!(
        "  script a reply:    POST {} {{\"application_no\": \"...\", \"answer\": \"disagree\"}}",
        sim.url("/_sim/script")
    );
    println!("  outage:            POST {} {{\"for_ms\": 10000}}", sim.url("/_sim/outage"));
    Ok(())
}

async fn transport(args: &SimulateArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let listen = args.listen.clone().unwrap_or_else(|| "127.0.0.1:9103".into());
    let churn = duration("--churn", args.churn.as_deref())?;
    let tracks_every = duration("--tracks-every", args.tracks_every.as_deref())?;
    if tracks_every.is_some() && args.mqtt.is_none() {
        anyhow::bail!("--tracks-every needs --mqtt mqtt://host:port");
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let defaults = TransportConfig::default();
    let sim = TransportSim::start(
        listener,
        TransportConfig {
            registry: registry_config(args, "TRANSPORT_TOKEN", "transport-sim-token"),
            records: args.records.unwrap_or(defaults.records),
            seed: args.seed.unwrap_or(defaults.seed),
            mqtt: args.mqtt.clone(),
            ..defaults
        },
        stop.clone(),
    )?;
    println!("transport department simulator on {}", sim.url(""));
    print_registry(&sim.url(""), CARRIERS_PATH, &sim.registry, "TRANSPORT_TOKEN");
    if let Some(url) = &args.mqtt {
        println!(
            "  positions:         POST {}/_sim/tracks {{\"vehicles\": 3, \"points\": 10}} → {url} {TOPIC_PREFIX}/+",
            sim.url("")
        );
    }
    if let Some(every) = churn {
        sim.registry.churn(every, 3, stop.clone());
    }
    if let Some(every) = tracks_every {
        sim.publish_every(every, 3, stop.clone());
    }
    Ok(())
}

async fn health(args: &SimulateArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let listen = args.listen.clone().unwrap_or_else(|| "127.0.0.1:9104".into());
    let churn = duration("--churn", args.churn.as_deref())?;

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let defaults = HealthConfig::default();
    let sim = HealthSim::start(
        listener,
        HealthConfig {
            registry: registry_config(args, "HEALTH_TOKEN", "health-sim-token"),
            records: args.records.unwrap_or(defaults.records),
            seed: args.seed.unwrap_or(defaults.seed),
        },
        stop.clone(),
    )?;
    println!("health department simulator on {}", sim.url(""));
    print_registry(&sim.url(""), INSTITUTIONS_PATH, &sim.registry, "HEALTH_TOKEN");
    if let Some(every) = churn {
        sim.registry.churn(every, 3, stop.clone());
    }
    Ok(())
}

async fn park_sender(args: SimulateArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let key = args.key.context("--key (or PARK_XM_HAICANG_KEY) is required: the park's API key")?;
    let cfg = ParkConfig {
        hub: args.hub.clone(),
        key,
        interval: args.interval.map_or(Duration::from_secs(5), |d| d.0),
        count: args.count,
    };
    println!(
        "Haicang park cell platform simulator: posting GBK XML ledger records to {}/api/v1/documents/ledger-entry",
        args.hub.trim_end_matches('/')
    );
    park::run(cfg, stop, |s| {
        println!("  {} -> {} {}", s.batch, s.status, s.answer.chars().take(200).collect::<String>());
    })
    .await?;
    Ok(())
}

async fn market_sender(args: SimulateArgs, stop: CancellationToken) -> anyhow::Result<()> {
    let cfg = DropConfig {
        dir: args.drop.clone(),
        interval: args.interval.map_or(Duration::from_secs(60), |d| d.0),
        rows: args.rows,
        count: args.count,
    };
    println!(
        "market regulation registry simulator: writing GB18030 CSV extracts into {}",
        args.drop.display()
    );
    market_regulation::run(cfg, stop, |p| println!("  wrote {}", p.display()))
        .await
        .with_context(|| format!("writing into {}", args.drop.display()))?;
    Ok(())
}

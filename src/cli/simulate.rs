//! `wastehub simulate <partner>`: serves a partner's contract on a local
//! address, for tests, the demo and a partner's own integration work.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::HumanDuration;
use crate::sim::health::{HealthConfig, HealthSim, INSTITUTIONS_PATH};
use crate::sim::national::{NationalConfig, NationalSim};
use crate::sim::provincial::{ProvincialConfig, ProvincialSim};
use crate::sim::registry::{Registry, RegistryConfig};
use crate::sim::transport::{CARRIERS_PATH, TOPIC_PREFIX, TransportConfig, TransportSim};

/// Arguments of `wastehub simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The partner: `national`, `provincial`, `transport` or `health`.
    pub partner: String,
    /// Listen address (default: the address the shipped connector calls:
    /// 127.0.0.1:9102 national, 127.0.0.1:9101 provincial, 127.0.0.1:9103
    /// transport, 127.0.0.1:9104 health).
    #[arg(long)]
    pub listen: Option<String>,
    /// Share of requests answered with a failure (0.0-1.0): 503 for the
    /// national and provincial systems, 500 for the departments' pages.
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

/// Runs a simulator until Ctrl-C.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.fail_share) {
        anyhow::bail!("--fail-share must be between 0 and 1");
    }
    let stop = CancellationToken::new();
    let listen = args.listen.clone().unwrap_or_else(|| {
        match args.partner.as_str() {
            "provincial" => "127.0.0.1:9101",
            "transport" => "127.0.0.1:9103",
            "health" => "127.0.0.1:9104",
            _ => "127.0.0.1:9102",
        }
        .to_string()
    });
    let churn = duration("--churn", args.churn.as_deref())?;
    match args.partner.as_str() {
        "national" => {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let sim = NationalSim::start(
                listener,
                NationalConfig {
                    client_id: args.client_id,
                    client_secret: args.client_secret,
                    token_lifetime: Duration::from_secs(3600),
                    rate_per_second: args.rate,
                    fail_share: args.fail_share,
                },
                stop.clone(),
            )?;
            println!("national system simulator on {}", sim.url(""));
            println!("  token endpoint:    {}", sim.url("/oauth/token"));
            println!("  exchange endpoint: {}", sim.url("/exchange"));
            println!(
                "  accepted so far:   {}  (outage: POST /_sim/outage {{\"down\": true}})",
                sim.url("/_sim/accepted")
            );
        }
        "provincial" => {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let sim = ProvincialSim::start(
                listener,
                ProvincialConfig {
                    token: std::env::var("PROVINCIAL_TOKEN").unwrap_or_default(),
                    fail_share: args.fail_share,
                },
                stop.clone(),
            )?;
            println!("provincial system simulator on {}", sim.url(""));
            println!("  events endpoint:   {}", sim.url("/events"));
            println!("  accepted so far:   {}", sim.url("/_sim/accepted"));
        }
        "transport" => {
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
                    registry: registry_config(&args, "TRANSPORT_TOKEN", "transport-sim-token"),
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
        }
        "health" => {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let defaults = HealthConfig::default();
            let sim = HealthSim::start(
                listener,
                HealthConfig {
                    registry: registry_config(&args, "HEALTH_TOKEN", "health-sim-token"),
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
        }
        other => anyhow::bail!("no simulator for {other:?}; available: national, provincial, transport, health"),
    }
    tokio::signal::ctrl_c().await?;
    stop.cancel();
    Ok(())
}

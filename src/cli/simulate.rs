//! `wastehub simulate <partner>`: serves a partner's contract on a local
//! address, for tests, the demo and a partner's own integration work.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::sim::national::{NationalConfig, NationalSim};
use crate::sim::provincial::{ProvincialConfig, ProvincialSim};

/// Arguments of `wastehub simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The partner: `national` or `provincial`.
    pub partner: String,
    /// Listen address (default: the address the shipped connector calls:
    /// 127.0.0.1:9102 national, 127.0.0.1:9101 provincial).
    #[arg(long)]
    pub listen: Option<String>,
    /// Share of exchange requests answered 503 (0.0-1.0).
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
}

/// Runs a simulator until Ctrl-C.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.fail_share) {
        anyhow::bail!("--fail-share must be between 0 and 1");
    }
    let stop = CancellationToken::new();
    let listen = args.listen.clone().unwrap_or_else(|| {
        if args.partner == "provincial" {
            "127.0.0.1:9101"
        } else {
            "127.0.0.1:9102"
        }
        .to_string()
    });
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
        other => anyhow::bail!("no simulator for {other:?}; available: national, provincial"),
    }
    tokio::signal::ctrl_c().await?;
    stop.cancel();
    Ok(())
}

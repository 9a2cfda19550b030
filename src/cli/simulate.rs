//! `wastehub simulate <partner>`: serves a partner's contract on a local
//! address, for tests, the demo and a partner's own integration work.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::sim::national::{NationalConfig, NationalSim};
use crate::sim::provincial::{ProvincialConfig, ProvincialSim};
use crate::sim::qinqing::{NOTICES_PATH, QinqingConfig, QinqingSim};

/// Arguments of `wastehub simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The partner: `national`, `provincial` or `qinqing`.
    pub partner: String,
    /// Listen address (default: the address the shipped connector calls:
    /// 127.0.0.1:9102 national, 127.0.0.1:9101 provincial, 127.0.0.1:9105 qinqing).
    #[arg(long)]
    pub listen: Option<String>,
    /// Share of exchange requests answered 503 (Qinqing: answered 5001, busy), 0.0-1.0.
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
    /// Qinqing: the HMAC-SM3 secret shared with the hub (default: the
    /// simulator's development secret).
    #[arg(
        long,
        env = "QINQING_SIGNING_SECRET",
        default_value = crate::sim::qinqing::DEV_SECRET,
        hide_env_values = true
    )]
    pub signing_secret: String,
    /// Qinqing: the hub's base URL, where `POST /_sim/reply` posts replies.
    #[arg(long, env = "QINQING_HUB_URL", default_value = "http://127.0.0.1:8080")]
    pub hub_url: String,
    /// Qinqing: the platform's API key at the hub (its SHA-256 is the
    /// connector's `QINQING_KEY_SHA256`); without it no reply can be posted.
    #[arg(long, env = "QINQING_HUB_KEY", default_value = "", hide_env_values = true)]
    pub hub_key: String,
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
            "qinqing" => "127.0.0.1:9105",
            _ => "127.0.0.1:9102",
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
        "qinqing" => {
            if args.signing_secret.len() < 16 {
                anyhow::bail!("--signing-secret must be at least 16 characters, as the hub's signature.secret");
            }
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let sim = QinqingSim::start(
                listener,
                QinqingConfig {
                    signing_secret: Secret::new(args.signing_secret),
                    fail_share: args.fail_share,
                    hub_url: Some(args.hub_url.clone()),
                    hub_key: Secret::new(args.hub_key.clone()),
                },
                stop.clone(),
            )?;
            println!("Qinqing service platform simulator on {}", sim.url(""));
            println!("  notices endpoint:  {}  (HMAC-SM3 signed)", sim.url(NOTICES_PATH));
            println!("  accepted so far:   {}", sim.url("/_sim/accepted"));
            println!(
                "  replies go to:     {}/api/v1/documents/prompt{}",
                args.hub_url.trim_end_matches('/'),
                if args.hub_key.is_empty() {
                    "  (no --hub-key: replies cannot be posted)"
                } else {
                    ""
                }
            );
            println!(
                "  reply to a notice: curl -X POST {} -H 'content-type: application/json' -d '{{\"noticeId\": \"<noticeId>\", \"replyType\": \"02\"}}'",
                sim.url("/_sim/reply")
            );
        }
        other => anyhow::bail!("no simulator for {other:?}; available: national, provincial, qinqing"),
    }
    tokio::signal::ctrl_c().await?;
    stop.cancel();
    Ok(())
}

//! The `wastehub` binary: parses the command line, loads configuration,
//! starts logging and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wastehub::cli::{self, Overrides};
use wastehub::config::LogFormat;

/// wastehub: integration hub for Fujian's solid and hazardous waste information network.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format (overrides log.format).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Serve {
        /// Config directory (wastehub.toml, connectors/, schemas/).
        #[arg(long, default_value = ".")]
        config: PathBuf,
        /// Database URL (sqlite://… or postgres://…).
        #[arg(long)]
        database: Option<String>,
        /// Listen address.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate configuration, connectors and schemas without starting.
    Check {
        /// Config directory.
        #[arg(long, default_value = ".")]
        config: PathBuf,
    },
    /// Run the hub with partner stand-ins and a stream of sample messages.
    Demo(cli::demo::DemoArgs),
    /// Run the standard benchmark workload and print the figures.
    Bench(cli::bench::BenchArgs),
    /// The benchmark's HTTP-ceiling server (used by `bench`).
    #[command(hide = true)]
    BenchBare {
        /// Listen address.
        #[arg(long)]
        listen: String,
    },
    /// Run the cases beside the mapping files (all, or those under PATH).
    Test {
        /// A mapping file, a partner folder or a case folder.
        path: Option<PathBuf>,
        /// Config directory.
        #[arg(long, default_value = ".")]
        config: PathBuf,
    },
    /// Translate one document with a mapping.
    Map(cli::mapping::MapArgs),
    /// Serve a partner's contract locally (a partner simulator).
    Simulate(Box<cli::simulate::SimulateArgs>),
    /// Register and manage cell-platform partners (calls the hub's admin API).
    Partner(cli::partner::PartnerArgs),
    /// Make a random API key or operator token and its SHA-256 digest.
    Keygen,
    /// Print (or write) the OpenAPI document of the HTTP API.
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config, database, listen } => {
                let loaded = cli::load(&config, &Overrides { database, listen }, &Default::default())?;
                wastehub::telemetry::init_logging(&loaded.config.log.level, cli.log_format.unwrap_or(loaded.config.log.format));
                cli::serve(loaded).await
            }
            Command::Check { config } => {
                let problems = cli::check(&config);
                if problems > 0 {
                    anyhow::bail!("{problems} problem(s) found");
                }
                Ok(())
            }
            Command::Demo(args) => {
                wastehub::telemetry::init_logging("warn", cli.log_format.unwrap_or(LogFormat::Text));
                cli::demo::run(args).await
            }
            Command::Bench(args) => {
                wastehub::telemetry::init_logging("warn", cli.log_format.unwrap_or(LogFormat::Text));
                cli::bench::run(args).await
            }
            Command::BenchBare { listen } => cli::bench::serve_bare(&listen).await,
            Command::Test { path, config } => {
                let failed = cli::mapping::test(&config, path.as_deref())?;
                if failed > 0 {
                    anyhow::bail!("{failed} case(s) failed");
                }
                Ok(())
            }
            Command::Map(args) => cli::mapping::map(&args),
            Command::Simulate(args) => {
                wastehub::telemetry::init_logging("info", cli.log_format.unwrap_or(LogFormat::Text));
                cli::simulate::run(*args).await
            }
            Command::Partner(args) => cli::partner::run(args).await,
            Command::Keygen => {
                cli::keygen();
                Ok(())
            }
            Command::Openapi { output } => cli::openapi(output),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

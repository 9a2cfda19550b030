//! Command-line commands. `main.rs` parses arguments and calls these; they
//! use `anyhow` for errors with context, as the style guide asks of CLI code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Loaded};

/// Command-line overrides, applied as the highest configuration layer.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--database`.
    pub database: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
}

/// Loads configuration from `dir` with the process environment plus `extra`
/// variables (the demo and bench pass stand-in URLs and generated key digests).
pub fn load(dir: &Path, o: &Overrides, extra: &BTreeMap<String, String>) -> anyhow::Result<Loaded> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    env.extend(extra.clone());
    if let Some(db) = &o.database {
        env.insert("WASTEHUB__DATABASE__URL".into(), db.clone());
    }
    if let Some(l) = &o.listen {
        env.insert("WASTEHUB__SERVER__LISTEN".into(), l.clone());
    }
    config::load_with(dir, &env).map_err(|errs| anyhow::anyhow!("configuration is invalid:\n{errs}"))
}

/// `wastehub serve`: runs until SIGTERM or Ctrl-C.
pub async fn serve(loaded: Loaded) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(loaded.config.server.listen)
        .await
        .with_context(|| format!("binding {}", loaded.config.server.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_on(shutdown.clone()));
    crate::run(loaded, listener, shutdown).await.context("running the hub")
}

/// Cancels `token` on SIGTERM or SIGINT.
pub async fn signal_on(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                token.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}

/// `wastehub check`: validates config, connectors, schemas, reference data
/// and mapping files; every problem as `file:line: what is wrong`. Returns
/// the number of problems.
pub fn check(dir: &Path) -> usize {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    match config::load_with(dir, &env) {
        Ok(loaded) => {
            let schemas = loaded.paths.resolve(&loaded.config.catalogue.schemas);
            let catalogue = crate::schema::Catalogue::load(&schemas);
            let reference = crate::reference::ReferenceData::load(&loaded.paths.resolve(&loaded.config.catalogue.reference));
            let mut problems = 0;
            if let Err(e) = &catalogue {
                eprintln!("{e}");
                problems += 1;
            }
            if let Err(errs) = &reference {
                for e in &errs.0 {
                    eprintln!("{e}");
                }
                problems += errs.0.len();
            }
            let mappings = match &catalogue {
                Ok(cat) => match crate::app::load_mappings(&loaded, cat) {
                    Ok(set) => Some(set),
                    Err(errs) => {
                        for e in &errs {
                            eprintln!("{e}");
                        }
                        problems += errs.len();
                        None
                    }
                },
                Err(_) => None,
            };
            if let (Ok(cat), Ok(data), Some(set)) = (&catalogue, &reference, &mappings) {
                let types: Vec<&str> = cat.types().collect();
                println!(
                    "ok: {} connector(s) [{}], {} message type(s) [{}], reference data: {}, {} mapping file(s)",
                    loaded.connectors.len(),
                    loaded.connectors.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
                    types.len(),
                    types.join(", "),
                    data.summary(),
                    set.all().count()
                );
            }
            problems
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            errs.0.len()
        }
    }
}

/// Polls `url` every 50 ms until it answers 2xx, for at most 30 s.
pub async fn wait_until_ok(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if client.get(url).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("{url} did not answer within 30 s")
}

/// `wastehub keygen`: a new random key and the digest to configure.
pub fn keygen() {
    let (key, digest) = crate::ingest::auth::generate_key();
    println!("key:    {key}");
    println!("sha256: {digest}");
    println!("Give the key to its holder once; configure only the sha256 (api_key_sha256 or admin.operator_token_sha256).");
}

/// `wastehub openapi`: prints the API document, or writes it to `output`.
pub fn openapi(output: Option<PathBuf>) -> anyhow::Result<()> {
    let doc = crate::admin::openapi::document();
    match output {
        Some(p) => std::fs::write(&p, doc + "\n").with_context(|| format!("writing {}", p.display())),
        None => {
            println!("{doc}");
            Ok(())
        }
    }
}

pub mod bench;
pub mod demo;
pub mod demo_parks;
pub mod demo_xp;
pub mod letter;
pub mod mapping;
pub mod partner;
pub mod samples;
pub mod simulate;

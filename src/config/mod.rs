//! The configuration tree: process knobs from `wastehub.toml` (over built-in
//! defaults and `WASTEHUB__SECTION__KEY` environment overrides) and pipeline
//! facts from one file per partner in `connectors/`.
//!
//! Loading and layering live in [`load`]; connector files in [`connector`];
//! duration and size syntax in [`units`]. Nothing here opens sockets or the
//! database.

pub mod connector;
pub mod file;
pub mod letters;
pub mod load;
pub mod mqtt;
pub mod poll;
pub mod units;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use connector::{ConnectorConfig, ConnectorKind};
pub use load::{ConfigError, ConfigErrors, Loaded, load, load_with};
pub use units::{ByteSize, HumanDuration, RetrySchedule};

/// The built-in defaults: the reference for every key.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Process configuration (`wastehub.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// The canonical catalogue.
    pub catalogue: CatalogueConfig,
    /// Mapping files.
    pub mappings: MappingsConfig,
    /// Store.
    pub database: DatabaseConfig,
    /// Inbound limits.
    pub ingest: IngestConfig,
    /// Dispatch and retries.
    pub delivery: DeliveryConfig,
    /// Pruning and maintenance.
    pub retention: RetentionConfig,
    /// Operator access.
    pub admin: AdminConfig,
    /// Connector healthchecks.
    pub health: HealthConfig,
    /// Partner registry.
    pub partners: PartnersConfig,
    /// Prompts the hub raises for partners and their delivery to callbacks.
    pub prompts: PromptsConfig,
    /// Cross-province negotiation.
    pub xp: XpConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Drain time on shutdown.
    pub shutdown_grace: HumanDuration,
    /// Per-request timeout.
    pub request_timeout: HumanDuration,
    /// Name of this process in leases and logs.
    pub node_id: String,
}

/// `[catalogue]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueConfig {
    /// Schema folder, relative to the config directory unless absolute.
    pub schemas: PathBuf,
    /// Reference data folder (waste codes by edition, division codes),
    /// relative to the config directory unless absolute.
    pub reference: PathBuf,
}

/// `[mappings]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingsConfig {
    /// Folder of mapping files (`<partner>/<name>.toml`), relative to the
    /// config directory unless absolute.
    pub dir: PathBuf,
}

/// `[database]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`.
    pub url: Secret,
    /// Pool size.
    pub max_connections: u32,
    /// SQLite `synchronous` pragma.
    pub sqlite_synchronous: SqliteSynchronous,
}

/// SQLite durability level.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSynchronous {
    /// fsync on every commit (power-loss safe).
    Full,
    /// fsync at checkpoints (crash safe, not power-loss safe).
    Normal,
}

/// `[ingest]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Body size limit.
    pub max_body: ByteSize,
    /// Events per batch request.
    pub max_batch_events: usize,
    /// Unfinished deliveries above which ingest answers 429.
    pub max_backlog: u64,
    /// Retry-After on that 429.
    pub backlog_retry_after: HumanDuration,
    /// Messages per group commit.
    pub commit_batch: usize,
    /// Burst de-duplication of video-AI alerts.
    pub alerts: AlertsConfig,
}

/// `[ingest.alerts]`: bursts of video-AI alerts from one camera.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Alerts of one camera (same source, camera, event type and subject)
    /// whose `started_at` lies within this window of an alert already kept
    /// are folded into it; `"0"` keeps every alert.
    pub dedupe_window: HumanDuration,
    /// Partner (registered id or connector name) → its own window.
    #[serde(default)]
    pub partner_windows: std::collections::BTreeMap<String, HumanDuration>,
}

impl AlertsConfig {
    /// The window that applies to `partner`'s alerts.
    pub fn window_for(&self, partner: &str) -> std::time::Duration {
        self.partner_windows.get(partner).unwrap_or(&self.dedupe_window).0
    }
}

/// `[prompts]`: the hub's own prompts (rejections of a partner's data) and
/// the built-in destination `partner-callbacks` that delivers prompts to a
/// registered partner's callback address.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// Raise a `prompt` of kind `REJECTION` when a live registered partner's
    /// message is refused for its content.
    pub rejections: bool,
    /// Whole-request timeout of a callback.
    pub callback_timeout: HumanDuration,
    /// TCP/TLS connect timeout of a callback.
    pub callback_connect_timeout: HumanDuration,
    /// Most callbacks in flight at once (all partners together, per process).
    pub callback_concurrency: usize,
    /// Most bytes of a partner's answer read.
    pub callback_max_response: ByteSize,
    /// Delay before each attempt; the first must be `0s`.
    pub callback_retry_schedule: RetrySchedule,
    /// Random spread of each delay, as a fraction.
    pub callback_jitter: f64,
}

/// `[xp]`: cross-province transfer negotiation (`crate::xp`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XpConfig {
    /// This hub's province (2 digits).
    pub province: String,
    /// The CloudEvents source of what the hub sends for its province:
    /// letters to other provinces and what the workflow tells the department.
    pub source: String,
    /// Connectors that speak for the department (may send requests,
    /// acceptances, consultation letters, decisions, whitelist entries).
    pub departments: Vec<String>,
    /// Prefix of the numbers of decisions the hub issues on a whitelist
    /// entry (followed by the application number).
    pub whitelist_decision_prefix: String,
    /// Working days before a due date at which the reminder is raised.
    pub lead_days: u32,
    /// How often deadlines are checked.
    pub check_interval: HumanDuration,
    /// The largest letter taken at `/api/v1/xp/letters`.
    pub max_letter: ByteSize,
    /// Letters taken per second from one province at `/api/v1/xp/letters`
    /// (twice as many in a burst); more are answered 429 before their
    /// signature is checked.
    pub letters_per_second: u32,
    /// Maximum delivery retries of the workflow (its schedule).
    pub retry_schedule: RetrySchedule,
}

/// `[delivery]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Deliveries per claim.
    pub claim_batch: usize,
    /// Idle poll interval.
    pub poll_interval: HumanDuration,
    /// Claim lease.
    pub lease: HumanDuration,
    /// Cap on partner Retry-After.
    pub max_retry_after: HumanDuration,
}

/// `[retention]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Age after which finished messages are pruned (0 keeps them).
    pub keep_finished: HumanDuration,
    /// Maintenance period.
    pub maintenance_interval: HumanDuration,
}

/// `[partners]`: the registry of cell platforms onboarded at run time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnersConfig {
    /// How long a partner's current keys keep working after a rotation,
    /// unless the operator gives another overlap.
    pub key_overlap: HumanDuration,
    /// How far back a conformance run looks at sandbox traffic.
    pub conformance_window: HumanDuration,
}

/// `[admin]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Hex SHA-256 of the operator token; empty disables operator endpoints.
    /// Changes made with it are audited as operator `operator`.
    pub operator_token_sha256: Secret,
    /// Named operators: name → hex SHA-256 of that person's token. Changes
    /// are audited under the name, so give each person their own.
    #[serde(default)]
    pub operators: std::collections::BTreeMap<String, Secret>,
}

/// `[health]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Pause between two probes of every outbound connector; `"0s"` probes
    /// only on demand (`GET /api/v1/connectors/{name}?probe=true`).
    pub interval: HumanDuration,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter directive.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A value that must never reach a log: `Debug` and `Display` print
/// `[redacted]`. Database URLs (which may hold passwords), tokens and
/// key hashes are wrapped in it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where the pipeline files live, relative to the config directory.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The config directory itself.
    pub root: PathBuf,
}

impl Paths {
    /// `wastehub.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("wastehub.toml")
    }
    /// `connectors/`.
    pub fn connectors(&self) -> PathBuf {
        self.root.join("connectors")
    }
    /// A configured path, resolved against the config directory.
    pub fn resolve(&self, p: &std::path::Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.root.join(p) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("postgres://u:hunter2@h/db");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "postgres://u:hunter2@h/db");
    }

    #[test]
    fn defaults_parse_on_their_own() {
        let cfg: Config = toml::from_str(DEFAULT_TOML).expect("default.toml is valid");
        assert_eq!(cfg.server.listen.port(), 8080);
        assert_eq!(cfg.ingest.max_body.0, 1 << 20);
        assert_eq!(cfg.database.sqlite_synchronous, SqliteSynchronous::Full);
        assert_eq!(cfg.health.interval.0, std::time::Duration::from_secs(60));
    }
}

//! Connector kinds: the code that talks to partners. A kind is code here; an
//! instance is a file in `connectors/`. [`build`] is the one explicit
//! registry from configuration to a running connector.
//!
//! A connector classifies every outcome ([`DeliveryError::retry`]); the
//! `deliver` stage decides what to do with it (schedule, dead letter).

pub mod client;
pub mod file;
pub mod health;
pub mod http_json;
pub mod http_xml;
pub mod letters;
pub mod mqtt;
pub mod oauth2;
pub mod partner_callback;
pub mod poll;
pub mod signature;

use std::time::Duration;

use async_trait_shim::BoxFuture;
use serde::Serialize;

use tokio_util::sync::CancellationToken;

use crate::config::{ConnectorConfig, ConnectorKind};
use crate::ingest::sink::Sink;
use crate::model::{DeliveryId, MessageId};
use crate::store::Store;

/// What a connector is asked to send.
#[derive(Clone, Debug)]
pub struct Outgoing<'a> {
    /// Hub message id: the same on every attempt (`ce-id`, `Idempotency-Key`).
    pub message_id: &'a MessageId,
    /// The delivery.
    pub delivery_id: &'a DeliveryId,
    /// Ordering key.
    pub subject: &'a str,
    /// 1-based attempt number.
    pub attempt: u32,
    /// The body: the canonical event JSON, or the partner's format as
    /// rendered by the destination's outbound mapping.
    pub body: &'a [u8],
    /// Media type of `body`.
    pub content_type: &'a str,
}

/// The partner's acknowledgement, kept as evidence.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Receipt {
    /// HTTP status.
    pub http_status: u16,
    /// Ack code read from the body, when the connector reads one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_code: Option<String>,
    /// The partner's own reference for the message, when it sends one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Start of the response body.
    pub excerpt: String,
}

/// Whether and when a failed attempt may be tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Permanent: the delivery is dead.
    Never,
    /// Follow the retry schedule.
    Backoff,
    /// The partner said when (`Retry-After`).
    After(Duration),
}

/// A failed attempt, classified by the connector.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{class}: {message}")]
pub struct DeliveryError {
    /// What to do next.
    pub retry: Retry,
    /// Short class for traces and metrics (`timeout`, `connect`, `status`, `ack_code`, `body`).
    pub class: &'static str,
    /// Human text.
    pub message: String,
    /// HTTP status, when the partner answered.
    pub http_status: Option<u16>,
    /// Start of the response body.
    pub excerpt: Option<String>,
}

impl DeliveryError {
    /// A failure before or without the partner's answer: no status, no excerpt.
    pub fn local(retry: Retry, class: &'static str, message: impl Into<String>) -> Self {
        Self {
            retry,
            class,
            message: message.into(),
            http_status: None,
            excerpt: None,
        }
    }

    /// [`Self::local`], permanent: the delivery is dead at once.
    pub fn never(class: &'static str, message: impl Into<String>) -> Self {
        Self::local(Retry::Never, class, message)
    }

    /// [`Self::local`], retried by the destination's schedule.
    pub fn backoff(class: &'static str, message: impl Into<String>) -> Self {
        Self::local(Retry::Backoff, class, message)
    }
}

/// The sending side of a connector.
pub trait Outbound: Send + Sync + 'static {
    /// The kind's name.
    fn kind(&self) -> &'static str;
    /// Sends one message; classifies any failure.
    fn deliver<'a>(&'a self, msg: Outgoing<'a>) -> BoxFuture<'a, Result<Receipt, DeliveryError>>;
    /// A side-effect-free probe that the partner is reachable: it sends no
    /// message, changes nothing at the partner, and ends within the
    /// connector's timeout. Run by [`health::Prober`].
    fn healthcheck(&self) -> BoxFuture<'_, Result<(), DeliveryError>>;
}

/// Why a connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error("connector {name}: {source}")]
    Http {
        /// Connector name.
        name: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// A TLS file (client certificate, key, CA) could not be read or used.
    #[error("connector {name}: TLS: {message}")]
    Tls {
        /// Connector name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The connector's settings cannot be used (checked at load already).
    #[error("connector {name}: {message}")]
    Config {
        /// Connector name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A header or token is not a valid header value.
    #[error("connector {name}: header {header} has an invalid value")]
    Header {
        /// Connector name.
        name: String,
        /// Header name.
        header: String,
    },
}

/// A running receiver: a connector kind that brings messages in on its own.
pub type Receiver = BoxFuture<'static, ()>;

/// The inbound registry: the task that receives for `cfg`, for kinds that
/// receive on their own (HTTP kinds receive through the hub's endpoints and
/// have none). The task hands what it receives to `sink`, acknowledges its
/// source only after the commit, and returns when `stop` fires. `store`
/// keeps what a kind must remember across restarts; `node` is this
/// process's name in leases (`server.node_id`). It reports whether its
/// source can be used through `sink.health()` ([`health::HealthReporter`]):
/// `up`/`down` on every change or check, so operators see it in
/// `GET /api/v1/connectors`.
pub fn receiver(
    cfg: &ConnectorConfig,
    sink: Sink,
    stop: CancellationToken,
    store: Store,
    node: &str,
) -> Result<Option<Receiver>, BuildError> {
    match (cfg.kind, &cfg.mqtt) {
        (ConnectorKind::HttpJson | ConnectorKind::HttpXml, _) => Ok(None),
        (ConnectorKind::Mqtt, Some(m)) => Ok(Some(mqtt::MqttConnector::new(&cfg.name, m)?.run(sink, stop))),
        (ConnectorKind::Mqtt, None) => Err(BuildError::Config {
            name: cfg.name.clone(),
            message: "kind mqtt needs an [mqtt] section".into(),
        }),
        (ConnectorKind::File, _) => Ok(file::receiver(cfg, sink, stop, store)),
        (ConnectorKind::Poll, _) => poll::receiver(cfg, sink, stop, store, node),
        // Letters arrive at /api/v1/xp/letters (crate::xp::inbound).
        (ConnectorKind::Letters, _) => Ok(None),
    }
}

/// Builds the outbound side of a connector, if it has one.
pub fn build(cfg: &ConnectorConfig, store: &crate::store::Store) -> Result<Option<Box<dyn Outbound>>, BuildError> {
    let Some(out) = &cfg.outbound else { return Ok(None) };
    match cfg.kind {
        ConnectorKind::HttpJson => Ok(Some(Box::new(http_json::HttpJsonConnector::new(&cfg.name, out, config_dir(cfg))?))),
        ConnectorKind::HttpXml => Ok(Some(Box::new(http_json::HttpJsonConnector::xml(&cfg.name, out, config_dir(cfg))?))),
        // Receives only; configuration loading refuses an [outbound] on it.
        ConnectorKind::Mqtt => Ok(None),
        // Refused at load: a drop folder only receives.
        ConnectorKind::File => Ok(None),
        // Refused at load: a poller only receives.
        ConnectorKind::Poll => Ok(None),
        ConnectorKind::Letters => Ok(Some(Box::new(letters::LettersConnector::new(cfg, out, store.clone())?))),
    }
}

/// A boxed future, so the trait stays object-safe without a macro crate.
pub mod async_trait_shim {
    /// `Pin<Box<dyn Future + Send>>`.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

/// The config directory a connector file belongs to (`<dir>/connectors/x.toml`):
/// the base of relative paths in it.
pub(crate) fn config_dir(cfg: &ConnectorConfig) -> &std::path::Path {
    std::path::Path::new(&cfg.file)
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap_or(std::path::Path::new("."))
}

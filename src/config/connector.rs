//! One connector file (`connectors/<name>.toml`): who the partner is, how it
//! may send to the hub (`[inbound]`), how the hub sends to it (`[outbound]`)
//! and which messages it receives (`[[routes]]`).
//!
//! Only the shape and per-value syntax are checked here; cross-file rules
//! (unique names, unique sources) are checked in [`super::load`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Secret;
use super::units::{ByteSize, HumanDuration, RetrySchedule};

/// The kinds of connector the hub has code for. Adding one means a variant
/// here and an arm in `connectors::build`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// HTTP with JSON bodies: CloudEvents in, CloudEvents out.
    HttpJson,
    /// HTTP with XML bodies (rendered by the destination's mappings); the
    /// partner's answer is XML and its ack code is read from it.
    HttpXml,
    /// Inbound from an MQTT broker (QoS 1, persistent session); `[mqtt]`.
    Mqtt,
    /// A drop folder for batch exchange (CSV, JSON lines or XML files).
    File,
    /// Scheduled pull from a partner API, page by page, with a persisted
    /// cursor and a leader lease; `[poll]`.
    Poll,
    /// Another province's hub: signed negotiation letters out, signed
    /// receipts back; its letters in at `/api/v1/xp/letters`; `[letters]`.
    Letters,
}

impl ConnectorKind {
    /// The kind as written in a connector file (`http_json`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpJson => "http_json",
            Self::HttpXml => "http_xml",
            Self::Mqtt => "mqtt",
            Self::File => "file",
            Self::Poll => "poll",
            Self::Letters => "letters",
        }
    }
}

/// A connector file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Unique name; it is the destination name in deliveries and metrics.
    pub name: String,
    /// Connector kind.
    pub kind: ConnectorKind,
    /// What this partner is, for people.
    #[serde(default)]
    pub description: String,
    /// Whether the connector is in use; a disabled one neither receives nor
    /// sends. A string `"true"`/`"false"` is read too, so a file can say
    /// `enabled = "${SOME_FLAG:-false}"` and stay valid TOML.
    #[serde(default = "yes", deserialize_with = "bool_or_string")]
    pub enabled: bool,
    /// How the partner sends to the hub.
    pub inbound: Option<InboundConfig>,
    /// How the hub sends to the partner.
    pub outbound: Option<OutboundConfig>,
    /// Which messages the partner receives (any route matching is enough).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The broker subscription of a `mqtt` connector.
    pub mqtt: Option<super::mqtt::MqttConfig>,
    /// `[file]`: the drop folder of a `file` connector.
    #[serde(rename = "file")]
    pub file_drop: Option<super::file::FileConfig>,
    /// `[poll]`: the partner API a `poll` connector pulls from.
    pub poll: Option<super::poll::PollConfig>,
    /// `[letters]`: the province hub a `letters` connector exchanges with.
    pub letters: Option<super::letters::LettersConfig>,
    /// The file it was read from (set by the loader, for error messages).
    #[serde(skip)]
    pub file: String,
}

fn yes() -> bool {
    true
}

fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Text(t) => match t.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(serde::de::Error::custom(format!("enabled must be true or false, not {other:?}"))),
        },
    }
}

/// `[inbound]`: the partner as a sender.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// The CloudEvents `source` values this partner may send as.
    pub sources: Vec<String>,
    /// Hex SHA-256 digests of the partner's API keys (the keys themselves are
    /// never stored). Several allow a rotation overlap. Empty entries are
    /// ignored, so `${VAR:-}` leaves the partner unable to log in until set.
    #[serde(default)]
    pub api_key_sha256: Vec<Secret>,
    /// Message type → inbound mapping (`mappings/<name>.toml`) for documents
    /// this partner posts in its own format to `/api/v1/documents/{type}`.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
}

/// `[outbound]` for `http_json`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// The partner's endpoint; the only address this connector ever calls
    /// (redirects are not followed).
    pub url: String,
    /// Message type → outbound mapping that renders the body in the
    /// partner's format. Types without one are sent as the canonical
    /// CloudEvent.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
    /// Whole-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// TCP/TLS connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Most attempts in flight at once to this partner.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Requests per second allowed to this partner.
    pub rate_limit: Option<RateLimitConfig>,
    /// Most response bytes read (the rest is discarded).
    #[serde(default = "default_max_response")]
    pub max_response: ByteSize,
    /// Delay before each attempt; after the last one fails, the delivery is dead.
    #[serde(default)]
    pub retry_schedule: RetrySchedule,
    /// Random spread applied to each delay, as a fraction (0.2 = ±20 %).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Static bearer token sent as `Authorization: Bearer …`.
    pub bearer_token: Option<Secret>,
    /// OAuth2 client credentials: a token fetched from the partner's token
    /// endpoint, cached and refreshed before it expires.
    pub oauth2: Option<OAuth2Config>,
    /// Weekly maintenance windows of the partner (Beijing time), during
    /// which no delivery is attempted: they wait instead of burning retries.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceWindow>,
    /// How to read the partner's answer.
    #[serde(default)]
    pub ack: AckConfig,
    /// `http_xml` only: wrap each body in a SOAP envelope and read SOAP
    /// answers and faults.
    pub soap: Option<SoapConfig>,
    /// Sign every request with an HMAC over timestamp, message id and body.
    pub signature: Option<SignatureConfig>,
    /// TLS client certificate (mTLS) and the partner's CA.
    pub tls: Option<TlsConfig>,
}

/// `[outbound.tls]`: files are PEM; relative paths are relative to the
/// config directory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The hub's client certificate chain and private key (one PEM file
    /// holding both, or the key in `client_key`).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// The private key, when not in `client_cert`.
    #[serde(default)]
    pub client_key: Option<String>,
    /// CA certificate(s) that sign the partner's server certificate, when
    /// it is not publicly trusted.
    #[serde(default)]
    pub ca: Option<String>,
}

/// `[outbound.signature]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// `hmac-sha256` or `hmac-sm3` (GB/T 32905).
    pub algorithm: String,
    /// The shared secret (never logged).
    pub secret: Secret,
    /// Name of the key the partner knows this secret by, sent with the signature.
    #[serde(default)]
    pub key_id: Option<String>,
}

/// `[outbound.soap]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapConfig {
    /// `"1.1"` or `"1.2"`.
    pub version: String,
    /// The SOAP action (`SOAPAction` header in 1.1, `action` media-type
    /// parameter in 1.2).
    #[serde(default)]
    pub action: Option<String>,
}

fn default_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}
fn default_concurrency() -> usize {
    16
}
fn default_max_response() -> ByteSize {
    ByteSize(64 * 1024)
}
fn default_jitter() -> f64 {
    0.2
}

/// `[outbound.oauth2]`: the client credentials grant (RFC 6749 §4.4).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The token endpoint; besides `url`, the only address this connector calls.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (sent with HTTP Basic authentication; never logged).
    pub client_secret: Secret,
    /// Scope to ask for, if the partner wants one.
    #[serde(default)]
    pub scope: Option<String>,
    /// Refresh this long before the token expires.
    #[serde(default = "default_refresh_before")]
    pub refresh_before: HumanDuration,
}

fn default_refresh_before() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

/// One weekly maintenance window: `{ days = ["sun"], from = "01:00", to = "05:00" }`,
/// Beijing time; `to` before `from` runs past midnight.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Days it starts on: `mon` … `sun`; empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM` (exclusive).
    pub to: String,
}

/// A per-partner request rate.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed back to back before the rate applies.
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// Acknowledgement rules: which answers mean "delivered".
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckConfig {
    /// HTTP statuses that count as success.
    #[serde(default = "default_success")]
    pub success_statuses: Vec<u16>,
    /// JSON Pointer to an ack code in the response body (e.g. `/code`);
    /// when set, a success status also needs a body code in `ack_codes`.
    pub body_field: Option<String>,
    /// Codes at `body_field` that mean accepted.
    #[serde(default)]
    pub ack_codes: Vec<String>,
    /// Codes at `body_field` that mean "try again later" (others are permanent).
    #[serde(default)]
    pub retryable_codes: Vec<String>,
    /// 4xx statuses to retry besides 408, 425 and 429.
    #[serde(default)]
    pub retryable_statuses: Vec<u16>,
    /// JSON Pointer to the partner's reference for the receipt (e.g. `/receipt_id`).
    pub receipt_field: Option<String>,
    /// For XML answers (`http_xml`): namespace prefixes used in
    /// `body_field` and `receipt_field`, which then point into the answer's
    /// root element (`/nx:Code`).
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
}

fn default_success() -> Vec<u16> {
    vec![200, 201, 202, 204]
}

impl Default for AckConfig {
    fn default() -> Self {
        Self {
            success_statuses: default_success(),
            body_field: None,
            ack_codes: Vec::new(),
            retryable_codes: Vec::new(),
            retryable_statuses: Vec::new(),
            receipt_field: None,
            namespaces: BTreeMap::new(),
        }
    }
}

/// One `[[routes]]` entry: message types plus conditions, all of which must hold.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Message type patterns; `*` matches any run of characters.
    pub types: Vec<String>,
    /// Conditions over envelope attributes and body fields.
    #[serde(default)]
    pub when: Vec<ConditionConfig>,
}

/// One condition. Name exactly one of `attribute` or `field`, and exactly one
/// operator.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// An envelope attribute: `source`, `type`, `subject`, `jurisdiction`, …
    pub attribute: Option<String>,
    /// A JSON Pointer into `data`, e.g. `/transfer_type`; a `*` step
    /// stands for any element of a list (`/recipients/*/usci`).
    pub field: Option<String>,
    /// The value equals this.
    pub equals: Option<String>,
    /// The value is absent or differs from this.
    pub not_equals: Option<String>,
    /// The value starts with this.
    pub prefix: Option<String>,
    /// The value is one of these.
    pub one_of: Option<Vec<String>>,
    /// The value is present (`true`) or absent (`false`).
    pub exists: Option<bool>,
}

//! Logging and metrics set-up, and the names of every metric and label, so
//! that dashboards have one place to look.
//!
//! Metrics go through the `metrics` facade into one process-wide Prometheus
//! recorder, installed once; `/metrics` renders it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Ingest results: label `outcome` (accepted, duplicate, folded, rejected, backpressure).
pub const INGEST_EVENTS_TOTAL: &str = "wastehub_ingest_events_total";
/// Prompts the hub raised for partners: labels `kind` (rejection, prompt,
/// rectification_request) and `outcome` (committed, duplicate, failed).
pub const PROMPTS_RAISED_TOTAL: &str = "wastehub_prompts_raised_total";
/// Sandbox traffic by outcome (accepted, rejected): label `outcome`.
pub const SANDBOX_MESSAGES_TOTAL: &str = "wastehub_sandbox_messages_total";
/// Messages accepted with no route: label none.
pub const INGEST_UNROUTED_TOTAL: &str = "wastehub_ingest_unrouted_total";
/// Delivery attempt outcomes: labels `destination`, `outcome` (delivered, retry, dead).
pub const DELIVERY_ATTEMPTS_TOTAL: &str = "wastehub_delivery_attempts_total";
/// Attempt latency in seconds: label `destination`.
pub const DELIVERY_DURATION_SECONDS: &str = "wastehub_delivery_duration_seconds";
/// Unfinished deliveries: label `destination`.
pub const BACKLOG_DELIVERIES: &str = "wastehub_backlog_deliveries";
/// Gauge: 1 while a destination is in a maintenance window (deliveries wait).
pub const DESTINATION_PAUSED: &str = "wastehub_destination_paused";
/// Group-commit batch sizes.
pub const COMMIT_BATCH_MESSAGES: &str = "wastehub_store_commit_batch_messages";
/// Files taken from a drop folder: labels `connector`, `outcome` (taken, done, failed, duplicate).
pub const FILE_FILES_TOTAL: &str = "wastehub_file_files_total";
/// Records read from dropped files: labels `connector`, `outcome` (committed, refused).
pub const FILE_RECORDS_TOTAL: &str = "wastehub_file_records_total";
/// Whether a drop folder is readable and writable (1) or not (0): label `connector`.
pub const FILE_FOLDER_UP: &str = "wastehub_file_folder_up";

/// Messages taken by receiving connector kinds (MQTT): labels `connector`,
/// `outcome` (received, committed, duplicate, refused, retried).
pub const RECEIVER_MESSAGES_TOTAL: &str = "wastehub_receiver_messages_total";
/// 1 while a receiving connector is connected to its source, else 0: label `connector`.
pub const RECEIVER_CONNECTED: &str = "wastehub_receiver_connected";

/// 1 while a connector's last healthcheck (a probe of an outbound partner,
/// or a receiver's own report) found it usable, 0 when not: label `connector`.
/// Not changed while a partner is in a maintenance window or not yet checked.
pub const CONNECTOR_UP: &str = "wastehub_connector_up";
/// Poll runs of `poll` connectors: labels `connector`, `outcome`
/// (completed, stopped, lost_lease).
pub const POLL_RUNS_TOTAL: &str = "wastehub_poll_runs_total";
/// Page requests of `poll` connectors: labels `connector`, `outcome`
/// (fetched, or the failure class: timeout, connect, transport, status,
/// too_large, malformed, auth).
pub const POLL_PAGES_TOTAL: &str = "wastehub_poll_pages_total";
/// Items of polled pages: labels `connector`, `outcome` (committed,
/// duplicate, refused, retried).
pub const POLL_ITEMS_TOTAL: &str = "wastehub_poll_items_total";
/// 1 while this process holds a `poll` connector's leader lease (it is the
/// one polling), else 0: label `connector`.
pub const POLL_LEADER: &str = "wastehub_poll_leader";
/// Unix time in seconds at which this process last finished a poll run
/// (reached the last page): label `connector`.
pub const POLL_LAST_SUCCESS: &str = "wastehub_poll_last_success_timestamp_seconds";

/// Negotiation letters and deadline steps applied to their records: labels
/// `kind` (the letter's type, or `deadline`) and `outcome` (`applied`,
/// `parked`, `duplicate`, `refused`).
pub const XP_STEPS_TOTAL: &str = "wastehub_xp_steps_total";
/// Letters from other provinces at `/api/v1/xp/letters`: label `outcome`
/// (`accepted`, a repeat included; `refused`; `unknown_sender`; `malformed`;
/// `unavailable`).
pub const XP_LETTERS_IN_TOTAL: &str = "wastehub_xp_letters_in_total";

/// Label: the connector a receiver belongs to.
pub const LABEL_CONNECTOR: &str = "connector";
/// Label: the destination connector.
pub const LABEL_DESTINATION: &str = "destination";
/// Label: the outcome.
pub const LABEL_OUTCOME: &str = "outcome";
/// Label: a prompt's kind.
pub const LABEL_KIND: &str = "kind";

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle, installing the recorder on first use.
/// Several hubs in one process (tests) share it.
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(DELIVERY_DURATION_SECONDS.to_string()),
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then metrics go there.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Installs the tracing subscriber (text or JSON lines on stderr).
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

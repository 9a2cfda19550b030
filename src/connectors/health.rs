//! Connector health: the one place that knows, for every connector, whether
//! its partner (or source) can be used now. [`HealthBoard`] holds a status
//! per connector (`up`, `down`, `maintenance`, `unknown`), when it was last
//! checked and what the check found (text without secrets). It is filled
//! from two sides:
//!
//! - [`Prober`] probes every enabled outbound connector with its
//!   [`Outbound::healthcheck`], bounded by the connector's timeout, every
//!   `[health] interval` and on demand (`GET /api/v1/connectors/{name}?probe=true`).
//!   A partner inside one of its maintenance windows is not probed and is
//!   reported `maintenance`, not `down`;
//! - receivers (connector kinds that receive on their own: a broker
//!   subscription, a drop folder, a poller) report their own state through
//!   a [`HealthReporter`], which every receiver gets from its sink
//!   (`Sink::health`), whenever it changes or is checked.
//!
//! Every status change is logged and published as the gauge
//! `wastehub_connector_up{connector}` (1 up, 0 down). The board never
//! decides anything: deliveries follow their schedule whatever it says.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{FixedOffset, Offset, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Outbound;
use crate::config::{ConnectorConfig, ConnectorKind};
use crate::deliver::maintenance::Schedule;
use crate::telemetry::{CONNECTOR_UP, LABEL_CONNECTOR};

/// Where a connector stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The last probe or report found the partner or source usable.
    Up,
    /// The last probe or report found it unusable.
    Down,
    /// Inside one of the partner's announced maintenance windows: not probed.
    Maintenance,
    /// Not checked yet, disabled, or nothing to check.
    Unknown,
}

/// A connector's health as last checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `up`, `down`, `maintenance` or `unknown`.
    pub status: Status,
    /// When it was last probed or reported (RFC 3339); absent before that.
    pub checked_at: Option<String>,
    /// What the check found (never a secret).
    pub detail: String,
}

/// A connector as the operations API lists it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectorView {
    /// Connector name (the destination name in deliveries and metrics).
    pub name: String,
    /// Connector kind (`http_json`, `http_xml`, `mqtt`, `file`, …).
    pub kind: String,
    /// What the partner is, from the connector file.
    pub description: String,
    /// Whether the connector is in use.
    pub enabled: bool,
    /// `inbound` (the partner sends to the hub), `outbound` (the hub sends to it), or both.
    pub directions: Vec<String>,
    /// Its health.
    pub health: Health,
}

#[derive(Clone, Debug)]
struct Entry {
    view: ConnectorView,
}

/// Every connector's health; cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct HealthBoard(Arc<RwLock<BTreeMap<String, Entry>>>);

impl HealthBoard {
    /// A board with every configured connector, `unknown` until checked.
    pub fn new(connectors: &[ConnectorConfig]) -> Self {
        let mut map = BTreeMap::new();
        for c in connectors {
            let mut directions = Vec::new();
            if c.inbound.is_some() {
                directions.push("inbound".to_string());
            }
            if c.outbound.is_some() {
                directions.push("outbound".to_string());
            }
            let detail = if !c.enabled {
                "disabled: it neither receives nor sends"
            } else if c.outbound.is_some() {
                "not probed yet"
            } else if matches!(c.kind, ConnectorKind::HttpJson | ConnectorKind::HttpXml) {
                "receives through the hub's HTTP API: nothing to probe (its messages are in the trace API)"
            } else {
                "its receiver has not reported yet"
            };
            let view = ConnectorView {
                name: c.name.clone(),
                kind: c.kind.as_str().to_string(),
                description: c.description.clone(),
                enabled: c.enabled,
                directions,
                health: Health {
                    status: Status::Unknown,
                    checked_at: None,
                    detail: detail.to_string(),
                },
            };
            map.insert(c.name.clone(), Entry { view });
        }
        Self(Arc::new(RwLock::new(map)))
    }

    /// Every connector, by name.
    pub fn views(&self) -> Vec<ConnectorView> {
        self.read().values().map(|e| e.view.clone()).collect()
    }

    /// One connector.
    pub fn view(&self, name: &str) -> Option<ConnectorView> {
        self.read().get(name).map(|e| e.view.clone())
    }

    /// Records a check of `name` (a connector not on the board is ignored).
    /// A change of status is logged and published as the gauge.
    pub fn set(&self, name: &str, status: Status, detail: impl Into<String>) {
        let detail = detail.into();
        let before = {
            let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
            let Some(entry) = map.get_mut(name) else { return };
            let health = &mut entry.view.health;
            let before = health.status;
            health.status = status;
            health.checked_at = Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            health.detail = detail.clone();
            before
        };
        if before == status {
            return;
        }
        match status {
            Status::Up => metrics::gauge!(CONNECTOR_UP, LABEL_CONNECTOR => name.to_string()).set(1.0),
            Status::Down => metrics::gauge!(CONNECTOR_UP, LABEL_CONNECTOR => name.to_string()).set(0.0),
            // Neither says the partner works or not; alerts on the gauge keep the last word.
            Status::Maintenance | Status::Unknown => {}
        }
        match (before, status) {
            (_, Status::Down) => tracing::warn!(connector = %name, detail = %detail, "Connector is down."),
            (Status::Down, Status::Up) => tracing::info!(connector = %name, detail = %detail, "Connector is up again."),
            _ => tracing::info!(connector = %name, status = ?status, detail = %detail, "Connector health changed."),
        }
    }

    /// A handle for connector `name`'s receiver to report with.
    pub fn reporter(&self, name: &str) -> HealthReporter {
        HealthReporter {
            board: self.clone(),
            connector: name.to_string(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a receiver reports its own state: call it on every check or change
/// (repeating the same status is cheap and only refreshes `checked_at`).
#[derive(Clone, Debug)]
pub struct HealthReporter {
    board: HealthBoard,
    connector: String,
}

impl HealthReporter {
    /// A reporter that goes nowhere (tests, tools without a hub).
    pub fn detached(connector: &str) -> Self {
        HealthBoard::default().reporter(connector)
    }

    /// The source can be used (connected, readable, answering).
    pub fn up(&self, detail: impl Into<String>) {
        self.board.set(&self.connector, Status::Up, detail);
    }

    /// The source cannot be used; say why, without secrets.
    pub fn down(&self, detail: impl Into<String>) {
        self.board.set(&self.connector, Status::Down, detail);
    }

    /// Nothing can be said (stopped, not started).
    pub fn unknown(&self, detail: impl Into<String>) {
        self.board.set(&self.connector, Status::Unknown, detail);
    }
}

/// One outbound connector to probe.
struct Probe {
    outbound: Arc<dyn Outbound>,
    timeout: Duration,
    maintenance: Schedule,
}

/// Probes the outbound connectors and writes the results on the board.
#[derive(Clone)]
pub struct Prober {
    board: HealthBoard,
    probes: Arc<BTreeMap<String, Probe>>,
}

impl Prober {
    /// A prober for the built `outbounds` (by connector name); their
    /// timeouts and maintenance windows come from `connectors`.
    pub fn new(board: HealthBoard, outbounds: &BTreeMap<String, Arc<dyn Outbound>>, connectors: &[ConnectorConfig]) -> Self {
        let probes = connectors
            .iter()
            .filter_map(|c| {
                let out = c.outbound.as_ref()?;
                let outbound = outbounds.get(&c.name)?.clone();
                Some((
                    c.name.clone(),
                    Probe {
                        outbound,
                        timeout: out.timeout.0,
                        maintenance: Schedule::new(&out.maintenance),
                    },
                ))
            })
            .collect();
        Self {
            board,
            probes: Arc::new(probes),
        }
    }

    /// Whether `name` is an outbound connector this prober can probe.
    pub fn knows(&self, name: &str) -> bool {
        self.probes.contains_key(name)
    }

    /// Probes `name` now (not inside a maintenance window), records and
    /// returns the result; `None` for a connector without a probe. Takes at
    /// most the connector's timeout.
    pub async fn probe(&self, name: &str) -> Option<Health> {
        let p = self.probes.get(name)?;
        let (status, detail) = match p.maintenance.paused_until(Utc::now()) {
            Some(until) => (
                Status::Maintenance,
                format!(
                    "in its maintenance window until {}: not probed",
                    until.with_timezone(&beijing()).to_rfc3339()
                ),
            ),
            None => {
                let started = Instant::now();
                match tokio::time::timeout(p.timeout, p.outbound.healthcheck()).await {
                    Ok(Ok(())) => (
                        Status::Up,
                        format!("reachable: the probe was answered in {} ms", started.elapsed().as_millis()),
                    ),
                    Ok(Err(e)) => (Status::Down, format!("probe failed: {e}")),
                    Err(_) => (
                        Status::Down,
                        format!(
                            "probe failed: no answer within the connector's timeout ({} ms)",
                            p.timeout.as_millis()
                        ),
                    ),
                }
            }
        };
        self.board.set(name, status, detail);
        self.board.view(name).map(|v| v.health)
    }

    /// Probes every connector at once (one slow partner delays no other).
    pub async fn probe_all(&self) {
        futures::future::join_all(self.probes.keys().map(|name| self.probe(name))).await;
    }

    /// Probes every connector now and then every `interval` until `stop`.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.probe_all() => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Beijing time, as maintenance windows are written.
fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::connectors::async_trait_shim::BoxFuture;
    use crate::connectors::{DeliveryError, Outgoing, Receipt, Retry};

    /// An outbound connector whose healthcheck answers as told, counting calls.
    struct Fake {
        calls: Arc<AtomicUsize>,
        answer: Result<(), &'static str>,
        delay: Duration,
    }

    impl Outbound for Fake {
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn deliver<'a>(&'a self, _: Outgoing<'a>) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
            Box::pin(async { unreachable!("probes never deliver") })
        }
        fn healthcheck(&self) -> BoxFuture<'_, Result<(), DeliveryError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                self.answer.map_err(|m| DeliveryError {
                    retry: Retry::Backoff,
                    class: "connect",
                    message: m.to_string(),
                    http_status: None,
                    excerpt: None,
                })
            })
        }
    }

    fn connector(text: &str) -> ConnectorConfig {
        toml::from_str(text).expect("connector")
    }

    fn setup(outbound_extra: &str, fake: Fake) -> (HealthBoard, Prober) {
        let c = connector(&format!(
            "name = \"p\"\nkind = \"http_json\"\n[outbound]\nurl = \"http://127.0.0.1:9/\"\ntimeout = \"100ms\"\n{outbound_extra}\n"
        ));
        let board = HealthBoard::new(std::slice::from_ref(&c));
        let outbounds: BTreeMap<String, Arc<dyn Outbound>> = [("p".to_string(), Arc::new(fake) as Arc<dyn Outbound>)].into();
        let prober = Prober::new(board.clone(), &outbounds, &[c]);
        (board, prober)
    }

    fn fake(answer: Result<(), &'static str>, delay: Duration) -> (Fake, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        (
            Fake {
                calls: calls.clone(),
                answer,
                delay,
            },
            calls,
        )
    }

    #[tokio::test]
    async fn a_probe_records_up_and_down_with_a_detail() {
        let (f, calls) = fake(Ok(()), Duration::ZERO);
        let (board, prober) = setup("", f);
        assert_eq!(board.view("p").expect("p").health.status, Status::Unknown);
        let h = prober.probe("p").await.expect("probed");
        assert_eq!(h.status, Status::Up, "{h:?}");
        assert!(h.checked_at.is_some() && h.detail.starts_with("reachable"), "{h:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (f, _) = fake(Err("connection refused"), Duration::ZERO);
        let (_, prober) = setup("", f);
        let h = prober.probe("p").await.expect("probed");
        assert_eq!(h.status, Status::Down);
        assert!(h.detail.contains("connection refused"), "{h:?}");
        assert!(prober.probe("nobody").await.is_none());
    }

    #[tokio::test]
    async fn a_probe_is_cut_at_the_connector_timeout() {
        let (f, _) = fake(Ok(()), Duration::from_secs(30));
        let (_, prober) = setup("", f);
        let started = Instant::now();
        let h = prober.probe("p").await.expect("probed");
        assert_eq!(h.status, Status::Down);
        assert!(h.detail.contains("no answer within the connector's timeout (100 ms)"), "{h:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "not waited for the partner");
    }

    #[tokio::test]
    async fn a_partner_in_its_maintenance_window_is_not_probed() {
        // Two windows that touch cover every hour: the probe never runs.
        let (f, calls) = fake(Err("down"), Duration::ZERO);
        let windows = "maintenance = [{ from = \"00:00\", to = \"12:00\" }, { from = \"12:00\", to = \"00:00\" }]";
        let (board, prober) = setup(windows, f);
        let h = prober.probe("p").await.expect("probed");
        assert_eq!(h.status, Status::Maintenance, "{h:?}");
        assert!(h.detail.contains("maintenance window until"), "{h:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(board.view("p").expect("p").health.status, Status::Maintenance);
    }

    #[test]
    fn the_board_starts_unknown_and_says_why() {
        let cs = [
            connector("name = \"in\"\nkind = \"http_json\"\n[inbound]\nsources = [\"urn:x\"]\n"),
            connector("name = \"off\"\nkind = \"http_json\"\nenabled = false\n[outbound]\nurl = \"http://127.0.0.1:9/\"\n"),
            connector(
                "name = \"both\"\nkind = \"http_json\"\n[inbound]\nsources = [\"urn:y\"]\n[outbound]\nurl = \"http://127.0.0.1:9/\"\n",
            ),
        ];
        let board = HealthBoard::new(&cs);
        let views = board.views();
        assert_eq!(views.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["both", "in", "off"]);
        assert!(
            views
                .iter()
                .all(|v| v.health.status == Status::Unknown && v.health.checked_at.is_none())
        );
        assert_eq!(views[0].directions, ["inbound", "outbound"]);
        assert!(views[1].health.detail.contains("nothing to probe"));
        assert!(views[2].health.detail.starts_with("disabled"));
    }

    #[test]
    fn receivers_report_through_their_handle() {
        let c = connector("name = \"r\"\nkind = \"http_json\"\n[inbound]\nsources = [\"urn:r\"]\n");
        let board = HealthBoard::new(&[c]);
        let r = board.reporter("r");
        r.down("broker not reachable");
        assert_eq!(board.view("r").expect("r").health.status, Status::Down);
        r.up("connected");
        let h = board.view("r").expect("r").health;
        assert_eq!((h.status, h.detail.as_str()), (Status::Up, "connected"));
        // A name not on the board is ignored; a detached reporter goes nowhere.
        board.reporter("ghost").up("x");
        HealthReporter::detached("r").down("x");
        assert!(board.view("ghost").is_none());
        assert_eq!(board.view("r").expect("r").health.status, Status::Up);
    }
}

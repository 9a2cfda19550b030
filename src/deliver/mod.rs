//! Delivery: per destination, a dispatcher claims due deliveries from the
//! store (in order per subject), paces them through the partner's rate limit
//! and concurrency cap, sends them through the connector, and hands each
//! outcome to the completer, which records outcomes in batches.
//!
//! Nothing waits in memory for a retry: a failed attempt is written back
//! with its due time and claimed again when that time comes.

mod completer;
mod dispatcher;
pub mod maintenance;
pub mod render;
pub mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backlog::Backlog;
use crate::config::{ConnectorConfig, DeliveryConfig, PromptsConfig};
use crate::connectors::{self, BuildError};
use crate::prompts::CALLBACK_DESTINATION;
use crate::store::Store;

pub use dispatcher::{Destination, Limits};

/// Wakes the dispatcher of each destination when new work is committed.
#[derive(Clone, Debug, Default)]
pub struct Wakers {
    by_destination: Arc<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    /// Wakes every dispatcher (after a replay, whose destinations vary).
    pub fn wake_all(&self) {
        for n in self.by_destination.values() {
            n.notify_one();
        }
    }

    /// Wakes `destination`'s dispatcher (a no-op for unknown names).
    pub fn wake(&self, destination: &str) {
        if let Some(n) = self.by_destination.get(destination) {
            n.notify_one();
        }
    }
}

/// The built-in destinations' settings: `partner-callbacks` (`[prompts]`)
/// and `xp-workflow` (`[xp]`, with the workflow itself).
pub struct Builtins<'a> {
    /// `[prompts]`.
    pub prompts: &'a PromptsConfig,
    /// The negotiation workflow.
    pub workflow: crate::xp::workflow::Workflow,
    /// `[xp]`.
    pub xp: &'a crate::config::XpConfig,
}

/// The running delivery stage.
pub struct Engine {
    tasks: JoinSet<()>,
    /// Stops claiming; attempts in flight finish within the grace period.
    stop: CancellationToken,
    /// The outbound connectors, by destination (shared with the healthchecks).
    outbounds: BTreeMap<String, Arc<dyn connectors::Outbound>>,
}

impl Engine {
    /// Builds a dispatcher per outbound connector, and one for each built-in
    /// destination: `partner-callbacks` (`[prompts]`) and `xp-workflow`
    /// (`[xp]`), and starts them.
    pub fn start(
        store: Store,
        connectors: &[ConnectorConfig],
        cfg: &DeliveryConfig,
        builtins: Builtins<'_>,
        node: &str,
        backlog: Arc<Backlog>,
        mappings: Arc<crate::mapping::MappingSet>,
    ) -> Result<(Self, Wakers), BuildError> {
        let Builtins { prompts, workflow, xp } = builtins;
        let stop = CancellationToken::new();
        let (completions, completer) = completer::Completer::new(store.clone(), node.to_string(), backlog);
        let mut wakers = HashMap::new();
        let mut destinations = Vec::new();
        let mut outbounds = BTreeMap::new();
        for c in connectors.iter().filter(|c| c.enabled) {
            let (Some(outbound), Some(out_cfg)) = (connectors::build(c, &store)?, c.outbound.as_ref()) else {
                continue;
            };
            let outbound: Arc<dyn connectors::Outbound> = Arc::from(outbound);
            outbounds.insert(c.name.clone(), outbound.clone());
            let notify = Arc::new(Notify::new());
            wakers.insert(c.name.clone(), notify.clone());
            let renderer = render::Renderer::new(mappings.clone(), out_cfg.mappings.clone());
            destinations.push(Destination::new(c.name.clone(), outbound, out_cfg, notify, renderer));
        }
        // Prompts for registered partners: not a connector file, so not in
        // `outbounds` (the health prober has no single address to probe).
        let callbacks = connectors::partner_callback::PartnerCallbacks::new(prompts, store.clone())?;
        let notify = Arc::new(Notify::new());
        wakers.insert(CALLBACK_DESTINATION.to_string(), notify.clone());
        destinations.push(Destination::with_limits(
            CALLBACK_DESTINATION.to_string(),
            Arc::new(callbacks),
            &Limits {
                concurrency: prompts.callback_concurrency,
                rate_limit: None,
                retry_schedule: &prompts.callback_retry_schedule,
                jitter: prompts.callback_jitter,
                maintenance: &[],
            },
            notify,
            render::Renderer::new(mappings.clone(), BTreeMap::new()),
        ));
        // Negotiation letters: the workflow applies them to their records.
        let notify = Arc::new(Notify::new());
        wakers.insert(crate::xp::WORKFLOW_DESTINATION.to_string(), notify.clone());
        destinations.push(Destination::with_limits(
            crate::xp::WORKFLOW_DESTINATION.to_string(),
            Arc::new(workflow),
            &Limits {
                concurrency: 4,
                rate_limit: None,
                retry_schedule: &xp.retry_schedule,
                jitter: 0.1,
                maintenance: &[],
            },
            notify,
            render::Renderer::new(mappings.clone(), BTreeMap::new()),
        ));
        let wakers = Wakers {
            by_destination: Arc::new(wakers),
        };
        let mut tasks = JoinSet::new();
        tasks.spawn(completer.run(wakers.clone()));
        for d in destinations {
            tasks.spawn(d.run(store.clone(), cfg.clone(), node.to_string(), completions.clone(), stop.clone()));
        }
        drop(completions);
        Ok((Self { tasks, stop, outbounds }, wakers))
    }

    /// The outbound connectors of the enabled destinations, by name: the
    /// same instances the dispatchers use (one HTTP client per partner).
    pub fn outbounds(&self) -> &BTreeMap<String, Arc<dyn connectors::Outbound>> {
        &self.outbounds
    }

    /// Stops claiming and waits for attempts in flight, at most `grace`.
    /// Attempts still running then are abandoned; their leases expire and
    /// they are retried (with the same message id) after restart.
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        self.stop.cancel();
        let drained = tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "Attempts still in flight after the grace period; they will be retried after restart."
            );
            self.tasks.abort_all();
        }
    }
}

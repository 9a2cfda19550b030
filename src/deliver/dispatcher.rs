//! One destination's dispatcher: claim → pace → send → hand the outcome on.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::maintenance::Schedule;
use super::render::Renderer;
use super::schedule::{self, Next};
use crate::config::connector::{MaintenanceWindow, OutboundConfig, RateLimitConfig};
use crate::config::{DeliveryConfig, RetrySchedule};
use crate::connectors::{Outbound, Outgoing};
use crate::model::now_millis;
use crate::store::{Claimed, Completion, CompletionOutcome, Store};
use crate::telemetry;

/// How long a woken dispatcher waits before claiming.
const CLAIM_GATHER: Duration = Duration::from_millis(10);

/// A destination and the resources that protect it.
pub struct Destination {
    name: Arc<str>,
    outbound: Arc<dyn Outbound>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    slots: Arc<Semaphore>,
    schedule: Arc<RetrySchedule>,
    jitter: f64,
    notify: Arc<Notify>,
    renderer: Renderer,
    maintenance: Schedule,
}

/// What protects a destination: its share of attempts, pace, retries and
/// quiet hours.
pub struct Limits<'a> {
    /// Most attempts in flight (per process).
    pub concurrency: usize,
    /// Requests per second and burst, if paced.
    pub rate_limit: Option<RateLimitConfig>,
    /// Delays before each attempt.
    pub retry_schedule: &'a RetrySchedule,
    /// Spread of each delay, as a fraction.
    pub jitter: f64,
    /// Weekly windows in which nothing is attempted.
    pub maintenance: &'a [MaintenanceWindow],
}

impl Destination {
    /// Wraps a built connector with its limits from config.
    pub fn new(name: String, outbound: Arc<dyn Outbound>, cfg: &OutboundConfig, notify: Arc<Notify>, renderer: Renderer) -> Self {
        let limits = Limits {
            concurrency: cfg.concurrency,
            rate_limit: cfg.rate_limit,
            retry_schedule: &cfg.retry_schedule,
            jitter: cfg.jitter,
            maintenance: &cfg.maintenance,
        };
        Self::with_limits(name, outbound, &limits, notify, renderer)
    }

    /// A destination that is not a connector file (the built-in
    /// `partner-callbacks`), with limits given directly.
    pub fn with_limits(name: String, outbound: Arc<dyn Outbound>, cfg: &Limits<'_>, notify: Arc<Notify>, renderer: Renderer) -> Self {
        let limiter = cfg.rate_limit.and_then(|rl| {
            let per_second = NonZeroU32::new(rl.per_second)?;
            let burst = NonZeroU32::new(rl.burst).unwrap_or(NonZeroU32::MIN);
            Some(Arc::new(RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))))
        });
        Self {
            name: name.into(),
            outbound,
            limiter,
            slots: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            schedule: Arc::new(cfg.retry_schedule.clone()),
            jitter: cfg.jitter,
            notify,
            renderer,
            maintenance: Schedule::new(cfg.maintenance),
        }
    }

    /// Claims and sends until `stop`, then waits for its attempts in flight.
    pub async fn run(
        self,
        store: Store,
        cfg: DeliveryConfig,
        node: String,
        completions: mpsc::Sender<Completion>,
        stop: CancellationToken,
    ) {
        let mut inflight = JoinSet::new();
        let lease_ms = i64::try_from(cfg.lease.0.as_millis()).unwrap_or(i64::MAX);
        loop {
            while inflight.try_join_next().is_some() {}
            if stop.is_cancelled() {
                break;
            }
            if let Some(until) = self.maintenance.paused_until(chrono::Utc::now()) {
                // Announced downtime: claim nothing, so nothing burns a retry.
                tracing::info!(destination = %self.name, until = %until, "Partner is in a maintenance window; its deliveries wait.");
                metrics::gauge!(telemetry::DESTINATION_PAUSED, telemetry::LABEL_DESTINATION => self.name.to_string()).set(1.0);
                let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => break,
                }
                metrics::gauge!(telemetry::DESTINATION_PAUSED, telemetry::LABEL_DESTINATION => self.name.to_string()).set(0.0);
                continue;
            }
            let free = self.slots.available_permits().min(cfg.claim_batch);
            if free == 0 {
                tokio::select! {
                    _ = inflight.join_next() => {}
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            let now = now_millis();
            match store.claim(&self.name, free, &node, now, now.saturating_add(lease_ms)).await {
                Ok(batch) => {
                    let full = batch.len() == free;
                    for claimed in batch {
                        let Ok(permit) = self.slots.clone().acquire_owned().await else {
                            break;
                        };
                        inflight.spawn(self.attempt(claimed, permit, completions.clone(), cfg.max_retry_after.0));
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(destination = %self.name, error = %e, "Claiming deliveries failed; will try again."),
            }
            tokio::select! {
                _ = self.notify.notified() => {
                    // Let a few more commits land so one claim takes them all:
                    // claims are writes, and the SQLite writer is the scarce resource.
                    tokio::time::sleep(CLAIM_GATHER).await;
                }
                _ = tokio::time::sleep(cfg.poll_interval.0) => {}
                _ = stop.cancelled() => break,
            }
        }
        while inflight.join_next().await.is_some() {}
    }

    fn attempt(
        &self,
        c: Claimed,
        permit: OwnedSemaphorePermit,
        completions: mpsc::Sender<Completion>,
        max_retry_after: Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let outbound = self.outbound.clone();
        let limiter = self.limiter.clone();
        let schedule = self.schedule.clone();
        let jitter = self.jitter;
        let destination = self.name.clone();
        let renderer = self.renderer.clone();
        async move {
            if let Some(l) = &limiter {
                l.until_ready().await;
            }
            let started_at = now_millis();
            let t0 = Instant::now();
            let result = match renderer.render(&c.event, c.mapping_at) {
                Ok(rendered) => {
                    outbound
                        .deliver(Outgoing {
                            message_id: &c.message_id,
                            delivery_id: &c.id,
                            subject: &c.subject,
                            attempt: c.attempt,
                            body: &rendered.body,
                            content_type: &rendered.content_type,
                        })
                        .await
                }
                Err(e) => Err(e),
            };
            let took = t0.elapsed();
            drop(permit);
            metrics::histogram!(telemetry::DELIVERY_DURATION_SECONDS, telemetry::LABEL_DESTINATION => destination.to_string())
                .record(took.as_secs_f64());
            let (outcome, http_status, error_class, excerpt) = match result {
                Ok(receipt) => {
                    let status = receipt.http_status;
                    let json = serde_json::to_string(&receipt).unwrap_or_default();
                    (CompletionOutcome::Delivered { receipt: json }, Some(status), None, None)
                }
                Err(e) => {
                    let next = schedule::next(&schedule, jitter, c.attempt, e.retry, max_retry_after, fastrand::f64());
                    let outcome = match next {
                        Next::RetryIn(d) => {
                            tracing::debug!(destination = %destination, delivery_id = %c.id, error = %e, retry_in_ms = d.as_millis() as u64, "Delivery failed; will retry.");
                            CompletionOutcome::Retry {
                                due_at: now_millis().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                            }
                        }
                        Next::Dead => {
                            tracing::warn!(destination = %destination, delivery_id = %c.id, message_id = %c.message_id, error = %e, "Delivery is dead; an operator can replay it.");
                            CompletionOutcome::Dead
                        }
                    };
                    let text = match &e.excerpt {
                        Some(x) if !x.is_empty() => format!("{}: {x}", e.message),
                        _ => e.message.clone(),
                    };
                    (outcome, e.http_status, Some(e.class.to_string()), Some(text))
                }
            };
            let completion = Completion {
                delivery_id: c.id,
                destination: destination.to_string(),
                subject: c.subject,
                attempt: c.attempt,
                outcome,
                started_at,
                duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
                http_status,
                error_class,
                excerpt,
            };
            // Fails only when the completer has stopped; the lease then
            // expires and the delivery is retried with the same id.
            let _ = completions.send(completion).await;
        }
    }
}

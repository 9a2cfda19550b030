//! The leader lease of one `poll` connector (`poll:<connector>` in the
//! store's `leases` table): with several hub processes on one database,
//! only the holder polls.
//!
//! A keeper task tries to take or renew the lease every third of its
//! length, on every process, leader or not, so a standby takes over soon
//! after the leader's lease runs out (a crash) or is released (a clean
//! stop). The poll loop reads the outcome ([`Lease::held`]) before every
//! request and item; the cursor write checks the lease again in the
//! database, so a process that lost the lease without noticing still
//! cannot move the cursor. The keeper publishes the state as the
//! `wastehub_poll_leader` gauge and logs every change.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::model::now_millis;
use crate::store::{LeaseCheck, Store};
use crate::telemetry::{LABEL_CONNECTOR, POLL_LEADER};

/// This process's view of the lease, kept up to date by its keeper.
pub struct Lease {
    name: String,
    holder: String,
    length: Duration,
    held: watch::Receiver<bool>,
    stop: CancellationToken,
    keeper: JoinHandle<()>,
    store: Store,
    connector: String,
    /// Stops the keeper if the poller is dropped without [`Lease::release`]
    /// (its task aborted), so a dead poller's process does not keep the
    /// lease alive; it then runs out.
    _keeper_guard: DropGuard,
}

impl Lease {
    /// Starts the keeper of lease `poll:<connector>` for node `holder`.
    pub fn start(store: Store, connector: &str, holder: &str, length: Duration) -> Self {
        let name = format!("poll:{connector}");
        let (tx, rx) = watch::channel(false);
        let stop = CancellationToken::new();
        let keeper = Keeper {
            store: store.clone(),
            name: name.clone(),
            holder: holder.to_string(),
            connector: connector.to_string(),
            length,
            tx,
        };
        metrics::gauge!(POLL_LEADER, LABEL_CONNECTOR => connector.to_string()).set(0.0);
        Self {
            keeper: tokio::spawn(keeper.run(stop.clone())),
            _keeper_guard: stop.clone().drop_guard(),
            name,
            holder: holder.to_string(),
            length,
            held: rx,
            stop,
            store,
            connector: connector.to_string(),
        }
    }

    /// Whether this process holds the lease (as of the last renewal).
    pub fn held(&self) -> bool {
        *self.held.borrow()
    }

    /// Waits until the lease is held.
    pub async fn acquired(&mut self) {
        let _ = self.held.wait_for(|h| *h).await;
    }

    /// Waits until the lease is no longer held (never returns while it is).
    pub async fn lost(&self) {
        let mut rx = self.held.clone();
        if rx.wait_for(|h| !*h).await.is_err() {
            // The keeper is gone: treat it as held until the caller stops.
            std::future::pending::<()>().await;
        }
    }

    /// The condition a cursor write must meet now: the lease still ours and
    /// not run out; the write renews it for another lease length.
    pub fn check(&self) -> LeaseCheck<'_> {
        let now = now_millis();
        LeaseCheck {
            name: &self.name,
            holder: &self.holder,
            now,
            until: now.saturating_add(millis(self.length)),
        }
    }

    /// Stops the keeper and gives the lease up (a clean stop), so another
    /// process takes over without waiting for it to run out.
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.keeper.await;
        match self.store.release_lease(&self.name, &self.holder).await {
            Ok(true) => tracing::info!(connector = %self.connector, "Released the poll lease."),
            Ok(false) => {}
            Err(e) => tracing::warn!(connector = %self.connector, error = %e, "Could not release the poll lease; it runs out by itself."),
        }
        metrics::gauge!(POLL_LEADER, LABEL_CONNECTOR => self.connector.clone()).set(0.0);
    }
}

struct Keeper {
    store: Store,
    name: String,
    holder: String,
    connector: String,
    length: Duration,
    tx: watch::Sender<bool>,
}

impl Keeper {
    async fn run(self, stop: CancellationToken) {
        let every = self.length / 3;
        // Until when the last successful renewal holds, by this process's clock.
        let mut held_until: Option<Instant> = None;
        let mut told_standby = false;
        loop {
            let now = now_millis();
            let held = match self
                .store
                .acquire_lease(&self.name, &self.holder, now, now.saturating_add(millis(self.length)))
                .await
            {
                Ok(true) => {
                    held_until = Some(Instant::now() + self.length);
                    true
                }
                Ok(false) => {
                    if held_until.is_none() && !told_standby {
                        tracing::info!(connector = %self.connector, node = %self.holder, "Another process holds the poll lease; this process stands by.");
                        told_standby = true;
                    }
                    held_until = None;
                    false
                }
                Err(e) => {
                    tracing::warn!(connector = %self.connector, error = %e, "Could not renew the poll lease; will retry.");
                    // Give the lease up locally a third before it runs out,
                    // so polling stops before another process may start.
                    held_until.is_some_and(|t| Instant::now() + every < t)
                }
            };
            self.publish(held);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    fn publish(&self, held: bool) {
        let was = self.tx.send_replace(held);
        if was == held {
            return;
        }
        metrics::gauge!(POLL_LEADER, LABEL_CONNECTOR => self.connector.clone()).set(if held { 1.0 } else { 0.0 });
        if held {
            tracing::info!(connector = %self.connector, node = %self.holder, "Took the poll lease; this process polls.");
        } else {
            tracing::warn!(connector = %self.connector, node = %self.holder, "Lost the poll lease; another process polls.");
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

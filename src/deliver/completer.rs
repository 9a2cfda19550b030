//! The completer: records attempt outcomes in batches (one transaction for
//! whatever has finished meanwhile), then wakes the destinations whose next
//! deliveries may now be due.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Wakers;
use crate::backlog::Backlog;
use crate::model::now_millis;
use crate::store::{Backend, Completion, CompletionOutcome, Store};
use crate::telemetry;

/// Most completions written in one transaction on SQLite, where fewer,
/// larger transactions spare the single writer.
const MAX_BATCH: usize = 512;
/// On PostgreSQL, where a completion holds the lane locks of its whole
/// batch until it commits, smaller batches keep ingest from waiting on them.
const MAX_BATCH_POSTGRES: usize = 64;
/// How long to wait for more outcomes before writing a batch.
const GATHER: Duration = Duration::from_millis(5);

pub(super) struct Completer {
    rx: mpsc::Receiver<Completion>,
    store: Store,
    node: String,
    backlog: Arc<Backlog>,
}

impl Completer {
    pub(super) fn new(store: Store, node: String, backlog: Arc<Backlog>) -> (mpsc::Sender<Completion>, Self) {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        (tx, Self { rx, store, node, backlog })
    }

    /// Runs until every sender is gone (all dispatchers and attempts ended).
    pub(super) async fn run(mut self, wakers: Wakers) {
        let max = match self.store.backend() {
            Backend::Sqlite => MAX_BATCH,
            Backend::Postgres => MAX_BATCH_POSTGRES,
        };
        let mut batch = Vec::with_capacity(max);
        while self.rx.recv_many(&mut batch, max).await > 0 {
            // Gather a little longer: each transaction is a commit (an fsync
            // with synchronous = full), so fewer, larger ones go further.
            if batch.len() < max {
                tokio::time::sleep(GATHER).await;
                while batch.len() < max {
                    match self.rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
            }
            let mut backoff = Duration::from_millis(100);
            // The outcome of a finished attempt is worth keeping: retry the
            // write until the store answers (if the process stops first, the
            // lease expires and the delivery is retried with the same id).
            while let Err(e) = self.store.complete(&batch, &self.node, now_millis()).await {
                tracing::warn!(error = %e, size = batch.len(), "Recording delivery outcomes failed; will try again.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            let mut counts: BTreeMap<(&str, &'static str), u64> = BTreeMap::new();
            let mut touched = BTreeSet::new();
            let mut finished = 0;
            for c in &batch {
                let outcome = match c.outcome {
                    CompletionOutcome::Delivered { .. } => "delivered",
                    CompletionOutcome::Retry { .. } => "retry",
                    CompletionOutcome::Dead => "dead",
                };
                *counts.entry((c.destination.as_str(), outcome)).or_default() += 1;
                finished += i64::from(outcome != "retry");
                touched.insert(c.destination.as_str());
            }
            for ((dest, outcome), n) in counts {
                metrics::counter!(telemetry::DELIVERY_ATTEMPTS_TOTAL, telemetry::LABEL_DESTINATION => dest.to_string(), telemetry::LABEL_OUTCOME => outcome).increment(n);
            }
            self.backlog.add(-finished);
            for dest in touched {
                wakers.wake(dest);
            }
            batch.clear();
        }
    }
}

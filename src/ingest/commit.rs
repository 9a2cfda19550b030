//! Group commit: requests hand their prepared messages to a few writer
//! tasks, which write whatever has queued up meanwhile in one transaction
//! and answer each request only after that transaction committed.
//!
//! Under load this turns thousands of small commits (one fsync each) into a
//! few large ones; with no load a batch is a single message and adds no
//! wait. SQLite gets one writer (it has one write lock anyway); PostgreSQL
//! several, so commits overlap.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::backlog::Backlog;
use crate::deliver::Wakers;
use crate::model::{Envelope, MessageId, now_millis};
use crate::store::bursts::Burst;
use crate::store::{InsertOutcome, NewMessage, Store, StoreError};
use crate::telemetry;

/// The message to commit for a checked event: a new hub id, the canonical
/// event (the hub id, the sender's id as `sourceid`), from `partner` to
/// `destinations`.
pub fn new_message(env: &Envelope, partner: &str, destinations: Vec<String>, burst: Option<Burst>) -> NewMessage {
    let id = MessageId::generate();
    NewMessage {
        event: super::cloudevent::canonical(env, id.as_str()).to_string(),
        id,
        source: env.source.clone(),
        source_event_id: env.id.clone(),
        r#type: env.r#type.clone(),
        subject: env.subject.clone(),
        jurisdiction: env.jurisdiction.clone(),
        event_time: env.time.clone(),
        partner: partner.to_string(),
        destinations,
        burst,
    }
}

struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// Why a message could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writers have stopped (shutdown).
    #[error("the hub is shutting down")]
    Closed,
}

/// Handle used by requests; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts `writers` writer tasks. They end when every handle is dropped,
    /// after writing what was queued.
    pub fn start(store: Store, wakers: Wakers, backlog: Arc<Backlog>, batch_max: usize, writers: usize, tasks: &mut JoinSet<()>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(batch_max * writers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tasks.spawn(writer(rx.clone(), store.clone(), wakers.clone(), backlog.clone(), batch_max));
        }
        Self { tx }
    }

    /// Commits one message; returns once it is durable (or a duplicate).
    pub async fn submit(&self, message: NewMessage) -> Result<InsertOutcome, CommitError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { message, reply }).await.map_err(|_| CommitError::Closed)?;
        Ok(rx.await.map_err(|_| CommitError::Closed)??)
    }
}

async fn writer(rx: Arc<Mutex<mpsc::Receiver<Job>>>, store: Store, wakers: Wakers, backlog: Arc<Backlog>, batch_max: usize) {
    let mut jobs = Vec::with_capacity(batch_max);
    loop {
        // Take whatever is queued (at least one job), then let the next
        // writer take the lock while this one writes.
        let n = rx.lock().await.recv_many(&mut jobs, batch_max).await;
        if n == 0 {
            return;
        }
        let messages: Vec<NewMessage> = jobs.iter().map(|j| j.message.clone()).collect();
        let outcomes = store.insert_messages(&messages, now_millis()).await;
        metrics::histogram!(telemetry::COMMIT_BATCH_MESSAGES).record(n as f64);
        // Count the new deliveries before anyone hears back, so that a sender's
        // next request already sees them in the back-pressure check.
        let new_deliveries: i64 = outcomes
            .iter()
            .filter_map(|o| match o {
                Ok(InsertOutcome::Accepted(r)) => Some(r.deliveries.len() as i64),
                _ => None,
            })
            .sum();
        backlog.add(new_deliveries);
        for (job, outcome) in jobs.drain(..).zip(outcomes) {
            if let Ok(InsertOutcome::Accepted(r)) = &outcome {
                for d in &r.deliveries {
                    wakers.wake(&d.destination);
                }
            }
            // The requester may have gone (client disconnected); the message
            // is committed all the same, and a resend is a duplicate.
            let _ = job.reply.send(outcome);
        }
    }
}

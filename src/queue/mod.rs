//! The job queue façade over apalis: scheduled and periodic work that is not
//! on the message path (lease reaping, pruning, backlog counts; later
//! pollers, deadlines and reconciliation). Nothing else names apalis types.
//!
//! Deliveries do NOT go through apalis: measured at 100-500 jobs/s on SQLite,
//! it is far below the delivery targets (ADR 0002). Periodic work is pushed
//! into apalis's durable storage on a timer and run by one worker, so with
//! several PostgreSQL nodes a tick is run once, by whichever node claims it.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BackendExt, BoxDynError, Data, TaskSink, WorkerBuilder};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backlog::Backlog;
use crate::model::now_millis;
use crate::store::Store;

/// The queue every maintenance job is pushed to and consumed from. Named
/// explicitly on both sides: apalis's default names differ between its
/// constructors, and a mismatch leaves jobs waiting for ever.
pub const MAINTENANCE_QUEUE: &str = "wastehub-maintenance";

/// How often the worker looks for jobs. Without it apalis wakes a worker
/// only at its heartbeat (30 s), so jobs would wait up to that long.
const WORKER_POLL: Duration = Duration::from_secs(1);

/// One periodic maintenance run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MaintenanceJob {
    /// When it was scheduled (ms).
    pub scheduled_at: i64,
}

/// What a maintenance run needs.
#[derive(Clone)]
pub struct MaintenanceContext {
    /// The store.
    pub store: Store,
    /// The ingest back-pressure counter, resynchronised on each run.
    pub backlog: Arc<Backlog>,
    /// Keep finished messages this long (zero keeps them for ever).
    pub keep_finished: Duration,
}

/// Errors setting up the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// apalis's own migrations failed.
    #[error("job queue setup failed: {0}")]
    Setup(String),
}

/// Runs one maintenance pass: reap expired leases, prune, recount the backlog.
pub async fn run_maintenance(ctx: &MaintenanceContext) -> Result<(), crate::store::StoreError> {
    let now = now_millis();
    let reaped = ctx.store.reap_expired(now, false).await?;
    if reaped > 0 {
        tracing::warn!(reaped, "Returned deliveries whose process stopped mid-attempt to the queue.");
    }
    if !ctx.keep_finished.is_zero() {
        let cutoff = now - i64::try_from(ctx.keep_finished.as_millis()).unwrap_or(i64::MAX);
        // Bounded passes, so one run never holds the writer for long.
        for _ in 0..20 {
            if ctx.store.prune_finished(cutoff, 500).await? < 500 {
                break;
            }
        }
    }
    ctx.backlog.resync(&ctx.store).await?;
    ctx.store.prune_job_queue().await?;
    Ok(())
}

async fn handle(job: MaintenanceJob, ctx: Data<MaintenanceContext>) -> Result<(), BoxDynError> {
    tracing::debug!(scheduled_at = job.scheduled_at, "Running maintenance.");
    run_maintenance(&ctx).await.map_err(|e| Box::new(e) as BoxDynError)
}

/// Runs an apalis worker until `stop`; a macro because the worker's type
/// differs per backend and is not worth spelling out.
macro_rules! run_worker {
    ($worker:expr, $stop:expr) => {{
        let (worker, stop) = ($worker, $stop);
        async move {
            let signal = async move {
                stop.cancelled().await;
                Ok::<(), std::io::Error>(())
            };
            if let Err(e) = worker.run_until(signal).await {
                tracing::warn!(error = %e, "Maintenance worker stopped with an error.");
            }
        }
    }};
}

/// Starts the maintenance ticker and worker; both stop on `stop`. Each
/// process registers its worker under a name of its own: apalis refuses a
/// name whose previous holder (a crashed process) has not yet timed out.
pub async fn start(ctx: MaintenanceContext, every: Duration, stop: CancellationToken, tasks: &mut JoinSet<()>) -> Result<(), QueueError> {
    let every = every.max(Duration::from_secs(1));
    if let Some(pool) = ctx.store.sqlite_jobs_pool().cloned() {
        use apalis_sqlite::{Config, SqliteStorage};
        SqliteStorage::setup(&pool).await.map_err(|e| QueueError::Setup(e.to_string()))?;
        let cfg = Config::default().queue(MAINTENANCE_QUEUE);
        let storage: SqliteStorage<MaintenanceJob> = SqliteStorage::new(&pool).with_config(cfg);
        tasks.spawn(ticker(storage.clone(), every, stop.clone()));
        let worker = WorkerBuilder::new(format!("wastehub-maintenance-{}", ulid::Ulid::generate()))
            .backend(storage.poll_with_interval(WORKER_POLL))
            .data(ctx)
            .build(handle);
        tasks.spawn(run_worker!(worker, stop));
    } else if let Some(pool) = ctx.store.postgres_pool().cloned() {
        use apalis_postgres::{Config, PostgresStorage};
        // Not `PostgresStorage::setup`: its migrator would refuse the hub's
        // own versions in the shared bookkeeping table.
        let mut migrator = PostgresStorage::<()>::migrations();
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await.map_err(|e| QueueError::Setup(e.to_string()))?;
        let cfg = Config::default().queue(MAINTENANCE_QUEUE);
        let storage: PostgresStorage<MaintenanceJob> = PostgresStorage::new(&pool).with_config(cfg);
        tasks.spawn(ticker(storage.clone(), every, stop.clone()));
        let worker = WorkerBuilder::new(format!("wastehub-maintenance-{}", ulid::Ulid::generate()))
            .backend(storage.poll_with_interval(WORKER_POLL))
            .data(ctx)
            .build(handle);
        tasks.spawn(run_worker!(worker, stop));
    }
    Ok(())
}

async fn ticker<S, K>(mut sink: S, every: Duration, stop: CancellationToken)
where
    S: TaskSink<MaintenanceJob, K> + Send + 'static,
    S::Error: std::fmt::Display,
{
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = sink
            .push(MaintenanceJob {
                scheduled_at: now_millis(),
            })
            .await
        {
            tracing::warn!(error = %e, "Scheduling maintenance failed; will try at the next tick.");
        }
    }
}

//! The `poll` connector kind: a scheduled pull from a partner API, page by
//! page, with a cursor persisted in the store and a leader lease so that
//! with several hub processes on one database only one of them polls.
//!
//! A run: read the stored position, GET the page it points to, hand every
//! item to the ingest [`Sink`] (a document through the partner's inbound
//! mapping, or a canonical event), and when the whole page is committed
//! store the new position (conditional on still holding the lease); repeat
//! until a page has no next page token, then wait `interval`. A page that
//! cannot be had (network, timeout, HTTP error, too large, not a page) is
//! tried again after the next delay of `retry_schedule`, the last delay
//! repeating: the run never moves past a page it has not committed. An
//! item the hub refuses for good (mapping or validation errors) is logged,
//! counted and recorded, and the rest of the page goes on; an item the hub
//! cannot take *now* (backlog full, shutting down) is tried again. Spec:
//! `docs/connectors/poll.md`.
//!
//! The poller reports to the connector health board (`Sink::health`): `up`
//! after every page fetched, `down` after every page that could not be had
//! (with the reason, never the answer's body nor a secret), and `unknown`
//! with a detail saying so while this process stands by without the lease:
//! a standby knows nothing of the partner, and `down` would raise alarms
//! on a healthy pair of processes.
//!
//! This module owns the loop; [`page`] the HTTP request and the reading of
//! an answer, [`cursor`] the position, [`lease`] the leader lease. It
//! writes no SQL and reaches nothing but the configured `url` (and the
//! OAuth2 token endpoint, when configured).

pub mod cursor;
pub mod lease;
pub mod page;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use self::cursor::{Advance, Position};
use self::lease::Lease;
use self::page::{Page, PageRequest};
pub use self::page::{PageClient, PageError};
use super::health::HealthReporter;
use super::{BuildError, Receiver};
use crate::config::ConnectorConfig;
use crate::config::poll::{PollConfig, PollFormat};
use crate::error::ApiError;
use crate::ingest::sink::{Sink, Submitted, describe, is_transient};
use crate::model::now_millis;
use crate::store::{PollCursor, Store};
use crate::telemetry::{LABEL_CONNECTOR, LABEL_OUTCOME, POLL_ITEMS_TOTAL, POLL_LAST_SUCCESS, POLL_PAGES_TOTAL, POLL_RUNS_TOTAL};

/// Bounds on a partner's (or the hub's own) `Retry-After`.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A configured poller, not yet running.
pub struct PollConnector {
    name: String,
    cfg: PollConfig,
    pages: PageClient,
    sink: Sink,
    store: Store,
    node: String,
    health: HealthReporter,
}

/// The health board's detail while this process does not hold the lease.
pub const STANDBY: &str = "standby: this process does not hold the poll lease (another hub process holds it and polls, or it is being taken); it polls when it holds the lease";

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
enum RunEnd {
    /// The last page was committed and the cursor moved on.
    Finished,
    /// Stop was asked for; the position of the last committed page stays.
    Stopped,
    /// Another process holds the lease now; it resumes from the stored position.
    LostLease,
}

/// What became of the items of one page.
#[derive(Debug, Default)]
struct Counts {
    committed: u64,
    duplicate: u64,
    refused: u64,
    retried: u64,
}

/// The receiver task of a `poll` connector.
pub fn receiver(
    cfg: &ConnectorConfig,
    sink: Sink,
    stop: CancellationToken,
    store: Store,
    node: &str,
) -> Result<Option<Receiver>, BuildError> {
    let Some(p) = &cfg.poll else {
        return Err(BuildError::Config {
            name: cfg.name.clone(),
            message: "kind poll needs a [poll] section".into(),
        });
    };
    let c = PollConnector::new(&cfg.name, p, super::config_dir(cfg), sink, store, node)?;
    Ok(Some(Box::pin(c.run(stop))))
}

impl PollConnector {
    /// A poller for connector `name` on node `node` (not started).
    pub fn new(name: &str, cfg: &PollConfig, base: &Path, sink: Sink, store: Store, node: &str) -> Result<Self, BuildError> {
        Ok(Self {
            name: name.to_string(),
            pages: PageClient::new(name, cfg, base)?,
            cfg: cfg.clone(),
            health: sink.health(),
            sink,
            store,
            node: node.to_string(),
        })
    }

    /// The healthcheck: a one-item GET (`page_size` 1) at the stored cursor,
    /// with the connector's authentication, read as a page. Nothing is
    /// submitted and nothing stored; no lease is needed.
    pub async fn healthcheck(&self) -> Result<(), PageError> {
        let stored = self.store.poll_cursor(&self.name).await.ok().flatten();
        let pos = Position::start(stored.as_ref(), self.cfg.cursor.initial.as_deref());
        self.pages.healthcheck(pos.cursor.as_deref()).await.map(|_| ())
    }

    /// Polls until `stop` fires, while this process holds the lease.
    pub async fn run(self, stop: CancellationToken) {
        let mut lease = Lease::start(self.store.clone(), &self.name, &self.node, self.cfg.lease.0);
        tracing::info!(connector = %self.name, url = %self.pages.url(), node = %self.node, "Poll connector started; it polls while it holds the lease.");
        let mut store_failures = 0;
        loop {
            if !lease.held() {
                self.health.unknown(STANDBY);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = lease.acquired() => continue,
                }
            }
            let stored = match self.store.poll_cursor(&self.name).await {
                Ok(s) => {
                    store_failures = 0;
                    s
                }
                Err(e) => {
                    tracing::warn!(connector = %self.name, error = %e, "Could not read the poll cursor; will retry.");
                    let wait = self.step(store_failures);
                    store_failures += 1;
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            if let Some(wait) = self.not_due(stored.as_ref()) {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = lease.lost() => continue,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
            let end = self.run_once(stored, &lease, &stop).await;
            let outcome = match end {
                RunEnd::Finished => "completed",
                RunEnd::Stopped => "stopped",
                RunEnd::LostLease => "lost_lease",
            };
            metrics::counter!(POLL_RUNS_TOTAL, LABEL_CONNECTOR => self.name.clone(), LABEL_OUTCOME => outcome).increment(1);
            if end == RunEnd::Stopped {
                break;
            }
        }
        lease.release().await;
        self.health.unknown("the poller has stopped");
        tracing::info!(connector = %self.name, "Poll connector stopped.");
    }

    /// How long until the next run is due: `interval` after the last run
    /// finished (by whichever process ran it), nothing when a run was
    /// interrupted (it resumes at once) or none ever finished.
    fn not_due(&self, stored: Option<&PollCursor>) -> Option<Duration> {
        let s = stored?;
        if s.page_token.is_some() {
            return None;
        }
        let finished = s.last_run_finished_at?;
        let interval = self.cfg.interval.0;
        let due = finished.saturating_add(i64::try_from(interval.as_millis()).unwrap_or(i64::MAX));
        let left = due.saturating_sub(now_millis());
        // A clock ahead of ours cannot make us wait longer than one interval.
        (left > 0).then(|| Duration::from_millis(left.unsigned_abs()).min(interval))
    }

    /// One run, from the stored position to a page without a next token.
    async fn run_once(&self, stored: Option<PollCursor>, lease: &Lease, stop: &CancellationToken) -> RunEnd {
        let mut pos = Position::start(stored.as_ref(), self.cfg.cursor.initial.as_deref());
        let mut row = stored.unwrap_or_default();
        let started = match row.run_started_at {
            Some(t) if pos.resumes() => t,
            _ => now_millis(),
        };
        if pos.resumes() {
            tracing::info!(connector = %self.name, "Resuming the interrupted poll run at its stored page.");
        } else {
            tracing::debug!(connector = %self.name, cursor = ?pos.cursor, "Poll run started.");
        }
        let (mut pages, mut items, mut refused) = (0i64, 0i64, 0i64);
        loop {
            let page = match self.fetch(&pos, lease, stop).await {
                Ok(p) => p,
                Err(end) => return end,
            };
            pages += 1;
            let n = page.items.len();
            let counts = match self.submit_page(page.items, pages, &pos, &mut row, lease, stop).await {
                Ok(c) => c,
                Err(end) => return end,
            };
            items += i64::try_from(n).unwrap_or(i64::MAX);
            refused += i64::try_from(counts.refused).unwrap_or(i64::MAX);
            let (next, finished) = match pos.after_page(page.next_cursor, page.next_page_token) {
                Advance::NextPage(p) => (p, false),
                Advance::Finished(p) => (p, true),
            };
            row.cursor.clone_from(&next.cursor);
            row.page_token.clone_from(&next.page_token);
            row.next_cursor.clone_from(&next.next_cursor);
            if finished {
                row.run_started_at = None;
                row.last_run_started_at = Some(started);
                row.last_run_finished_at = Some(now_millis());
                (row.last_run_pages, row.last_run_items, row.last_run_refused) = (pages, items, refused);
            } else {
                row.run_started_at = Some(started);
            }
            if let Err(end) = self.save(&row, lease, stop).await {
                return end;
            }
            pos = next;
            if finished {
                metrics::gauge!(POLL_LAST_SUCCESS, LABEL_CONNECTOR => self.name.clone()).set(now_millis() as f64 / 1000.0);
                tracing::info!(connector = %self.name, pages, items, refused, cursor = ?pos.cursor, "Poll run finished.");
                return RunEnd::Finished;
            }
        }
    }

    /// Fetches the page `pos` points to, trying again (the same page) until
    /// it is had, stop is asked for, or the lease is lost.
    async fn fetch(&self, pos: &Position, lease: &Lease, stop: &CancellationToken) -> Result<Page, RunEnd> {
        let req = PageRequest {
            cursor: pos.cursor.as_deref(),
            page_token: pos.page_token.as_deref(),
            page_size: self.cfg.page_size,
        };
        let mut failures = 0usize;
        loop {
            if stop.is_cancelled() {
                return Err(RunEnd::Stopped);
            }
            if !lease.held() {
                return Err(RunEnd::LostLease);
            }
            let fetched = tokio::select! {
                () = stop.cancelled() => return Err(RunEnd::Stopped),
                r = self.pages.fetch(&req) => r,
            };
            let fetched = fetched.and_then(|p| {
                if p.next_page_token.is_some() && p.next_page_token == pos.page_token {
                    // Following it would fetch this page for ever.
                    Err(PageError {
                        class: "malformed",
                        message: "the page's next page token is the token that asked for it".into(),
                        status: None,
                        retry_after: None,
                    })
                } else {
                    Ok(p)
                }
            });
            let e = match fetched {
                Ok(page) => {
                    metrics::counter!(POLL_PAGES_TOTAL, LABEL_CONNECTOR => self.name.clone(), LABEL_OUTCOME => "fetched").increment(1);
                    self.health.up(format!(
                        "a page was fetched from {} ({} item(s))",
                        self.pages.url(),
                        page.items.len()
                    ));
                    if failures > 0 {
                        tracing::info!(connector = %self.name, tries = failures + 1, "The page was fetched after failed tries.");
                    }
                    return Ok(page);
                }
                Err(e) => e,
            };
            metrics::counter!(POLL_PAGES_TOTAL, LABEL_CONNECTOR => self.name.clone(), LABEL_OUTCOME => e.class).increment(1);
            let wait = match e.retry_after {
                Some(d) => d.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER),
                None => self.step(failures),
            };
            failures += 1;
            // The error says what happened, never the answer's body nor a
            // secret; the address is shown without its query.
            self.health.down(format!(
                "the page could not be fetched from {} ({failures} failed tries in a row, next in {wait:?}): {e}",
                self.pages.url()
            ));
            if e.needs_attention() {
                tracing::error!(
                    connector = %self.name, class = e.class, status = e.status, error = %e.message, tries = failures, retry_in = ?wait,
                    "The partner refused the page request; the same page is tried again (check the connector's settings and credentials)."
                );
            } else {
                tracing::warn!(
                    connector = %self.name, class = e.class, status = e.status, error = %e.message, tries = failures, retry_in = ?wait,
                    "The page could not be fetched; the same page is tried again."
                );
            }
            tokio::select! {
                () = stop.cancelled() => return Err(RunEnd::Stopped),
                () = lease.lost() => return Err(RunEnd::LostLease),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Submits the items of one page in order. A transient refusal tries
    /// the same item again; a permanent one is logged, counted and recorded
    /// in `row`, and the page goes on.
    async fn submit_page(
        &self,
        items: Vec<Value>,
        page_no: i64,
        pos: &Position,
        row: &mut PollCursor,
        lease: &Lease,
        stop: &CancellationToken,
    ) -> Result<Counts, RunEnd> {
        let mut counts = Counts::default();
        let result = self.submit_all(&items, page_no, pos, row, lease, stop, &mut counts).await;
        for (outcome, n) in [
            ("committed", counts.committed),
            ("duplicate", counts.duplicate),
            ("refused", counts.refused),
            ("retried", counts.retried),
        ] {
            if n > 0 {
                metrics::counter!(POLL_ITEMS_TOTAL, LABEL_CONNECTOR => self.name.clone(), LABEL_OUTCOME => outcome).increment(n);
            }
        }
        result.map(|()| counts)
    }

    #[allow(clippy::too_many_arguments)]
    async fn submit_all(
        &self,
        items: &[Value],
        page_no: i64,
        pos: &Position,
        row: &mut PollCursor,
        lease: &Lease,
        stop: &CancellationToken,
        counts: &mut Counts,
    ) -> Result<(), RunEnd> {
        for (i, item) in items.iter().enumerate() {
            let mut failures = 0usize;
            loop {
                if stop.is_cancelled() {
                    return Err(RunEnd::Stopped);
                }
                if !lease.held() {
                    return Err(RunEnd::LostLease);
                }
                match self.submit(item).await {
                    Ok(s) if s.duplicate => counts.duplicate += 1,
                    Ok(_) => counts.committed += 1,
                    Err(e) if is_transient(&e) => {
                        counts.retried += 1;
                        let wait = match e.retry_after {
                            Some(d) => d.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER),
                            None => self.step(failures),
                        };
                        failures += 1;
                        tracing::warn!(
                            connector = %self.name, page = page_no, item = i, code = e.code, error = %e.detail, retry_in = ?wait,
                            "The hub cannot take the item now; the same item is tried again."
                        );
                        tokio::select! {
                            () = stop.cancelled() => return Err(RunEnd::Stopped),
                            () = lease.lost() => return Err(RunEnd::LostLease),
                            () = tokio::time::sleep(wait) => {}
                        }
                        continue;
                    }
                    Err(e) => {
                        counts.refused += 1;
                        let errors: Vec<String> = e.errors.iter().map(|f| format!("{}: {}", f.path, f.message)).collect();
                        tracing::warn!(
                            connector = %self.name, page = page_no, item = i, code = e.code, error = %e.detail, errors = ?errors,
                            "An item of the page was refused; it is skipped and counted, and the rest of the page goes on."
                        );
                        row.last_refusal = Some(format!(
                            "item {i} of the page at cursor {:?}, page token {:?}: {}",
                            pos.cursor.as_deref().unwrap_or(""),
                            pos.page_token.as_deref().unwrap_or(""),
                            describe(&e)
                        ));
                        row.last_refusal_at = Some(now_millis());
                    }
                }
                break;
            }
        }
        Ok(())
    }

    /// Hands one item to the pipeline; returns after the commit.
    async fn submit(&self, item: &Value) -> Result<Submitted, ApiError> {
        match self.cfg.format {
            PollFormat::Document => {
                // Serialising a parsed JSON value cannot fail.
                let body = serde_json::to_vec(item).unwrap_or_default();
                self.sink.document(&self.cfg.message_type, &body).await
            }
            PollFormat::Cloudevent => {
                if item.get("type").and_then(Value::as_str) != Some(self.cfg.message_type.as_str()) {
                    return Err(ApiError::bad_request(
                        "type_not_allowed",
                        format!("this connector takes events of type {} only", self.cfg.message_type),
                    ));
                }
                self.sink.event(item.clone()).await
            }
        }
    }

    /// Stores the position after a committed page, if the lease is still
    /// ours; a store failure is retried (the items are committed already).
    async fn save(&self, row: &PollCursor, lease: &Lease, stop: &CancellationToken) -> Result<(), RunEnd> {
        let mut failures = 0usize;
        loop {
            match self.store.save_poll_cursor(&self.name, row, lease.check()).await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    tracing::warn!(connector = %self.name, "The poll lease went to another process; this page's position is not stored (the other process resumes before it).");
                    return Err(RunEnd::LostLease);
                }
                Err(e) => {
                    let wait = self.step(failures);
                    failures += 1;
                    tracing::warn!(connector = %self.name, error = %e, retry_in = ?wait, "Could not store the poll cursor; will retry.");
                    tokio::select! {
                        () = stop.cancelled() => return Err(RunEnd::Stopped),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// The wait after the `failures`-th failure in a row: the schedule's
    /// delay, its last one repeating.
    fn step(&self, failures: usize) -> Duration {
        let s = &self.cfg.retry_schedule.0;
        s.get(failures).or(s.last()).copied().unwrap_or(Duration::from_secs(60))
    }
}

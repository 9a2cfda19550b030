//! Deliveries: claiming due work in acceptance order per subject, recording
//! outcomes (with their attempts) in batches, reaping the claims of crashed
//! processes, replay, and backlog counts.
//!
//! The ordering gate is one rule in the claim: a delivery may be claimed only
//! when no earlier delivery of the same (destination, subject) is still
//! active. Everything else (`held`, notifications) is for visibility and speed.

use std::collections::HashSet;

use sqlx::Row;

use super::lanes::{WriteTx, lane_keys};
use super::{Backend, Result, Store, on_read, on_write};
use crate::model::{AttemptId, DeliveryId, MessageId, Millis};

/// A delivery claimed for one attempt, with the event to send.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// Delivery id.
    pub id: DeliveryId,
    /// Message id (sent as `ce-id` and `Idempotency-Key`).
    pub message_id: MessageId,
    /// Ordering key.
    pub subject: String,
    /// 1-based number of this attempt in the current run of the retry schedule.
    pub attempt: u32,
    /// Canonical event JSON.
    pub event: String,
    /// Mappings render the body in the versions in force at this time: the
    /// message's acceptance, or the replay that asked for current mappings.
    pub mapping_at: Millis,
}

/// How an attempt ended, as far as the store is concerned.
#[derive(Clone, Debug)]
pub enum CompletionOutcome {
    /// Acknowledged; the receipt as JSON.
    Delivered {
        /// Receipt JSON.
        receipt: String,
    },
    /// Failed; try again at `due_at`.
    Retry {
        /// When.
        due_at: Millis,
    },
    /// Failed for good.
    Dead,
}

/// One finished attempt to record.
#[derive(Clone, Debug)]
pub struct Completion {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Its destination.
    pub destination: String,
    /// Its subject.
    pub subject: String,
    /// Attempt number.
    pub attempt: u32,
    /// Outcome.
    pub outcome: CompletionOutcome,
    /// When the attempt started.
    pub started_at: Millis,
    /// How long it took.
    pub duration_ms: i64,
    /// HTTP status, if a response came.
    pub http_status: Option<u16>,
    /// Error class (`timeout`, `connect`, `status_5xx`, …), if it failed.
    pub error_class: Option<String>,
    /// The start of the response body or the error text.
    pub excerpt: Option<String>,
}

/// Which mapping versions render a replayed delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MappingChoice {
    /// The versions in force when the message was accepted (the default:
    /// a replay sends what would have been sent).
    #[default]
    Accepted,
    /// The versions in force now (after a mapping fix).
    Current,
}

impl MappingChoice {
    fn time(self, now: Millis) -> Option<Millis> {
        match self {
            MappingChoice::Accepted => None,
            MappingChoice::Current => Some(now),
        }
    }
}

/// Which dead deliveries a bulk replay revives.
#[derive(Clone, Debug, Default)]
pub struct ReplayFilter {
    /// Only this destination.
    pub destination: Option<String>,
    /// Only messages of this type.
    pub r#type: Option<String>,
    /// Only this subject.
    pub subject: Option<String>,
    /// Only deliveries created at or after this time.
    pub since: Option<Millis>,
    /// Only deliveries created before this time.
    pub until: Option<Millis>,
}

impl Store {
    /// Claims up to `limit` due deliveries for `destination`, each the
    /// earliest active one of its subject, leasing them to `node` until
    /// `lease_until`.
    pub async fn claim(&self, destination: &str, limit: usize, node: &str, now: Millis, lease_until: Millis) -> Result<Vec<Claimed>> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE deliveries SET status = 'in_flight', lease_owner = $1, lease_until = $2, \
                attempts = attempts + 1, updated_at = $3 \
             WHERE seq IN (SELECT d.seq FROM deliveries d \
                WHERE d.destination = $4 AND d.head = 1 AND d.status IN ('pending', 'retrying') AND d.due_at <= $3 \
                AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.destination = d.destination \
                    AND e.subject = d.subject AND e.active = 1 AND e.seq < d.seq) \
                ORDER BY d.due_at, d.seq LIMIT $5 {lock}) \
             RETURNING id, message_id, subject, attempts, mapping_at"
        );
        let rows: Vec<(String, String, String, i64, Option<i64>)> = on_write!(self, |p| {
            let mut tx = p.begin().await?;
            tx.prefer_indexes().await?;
            let rows = sqlx::query_as(self.sql(&sql))
                .bind(node)
                .bind(lease_until)
                .bind(now)
                .bind(destination)
                .bind(limit as i64)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        })?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let events = self.events_for(rows.iter().map(|r| r.1.as_str())).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, message_id, subject, attempts, mapping_at)| {
                // Messages are pruned only once every delivery has ended, so
                // this is a broken invariant; the claim expires and is reaped.
                let Some((event, received_at)) = events.get(&message_id).cloned() else {
                    tracing::error!(delivery_id = %id, message_id = %message_id, "Claimed delivery has no stored message.");
                    return None;
                };
                Some(Claimed {
                    id: DeliveryId::from_stored(id),
                    message_id: MessageId::from_stored(message_id),
                    subject,
                    attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                    event,
                    mapping_at: mapping_at.unwrap_or(received_at),
                })
            })
            .collect())
    }

    async fn events_for<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Result<std::collections::HashMap<String, (String, Millis)>> {
        let ids: Vec<&str> = ids.collect();
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, event, received_at FROM messages WHERE id IN ({})",
                super::placeholders(1, chunk.len())
            );
            let rows: Vec<(String, String, i64)> = on_read!(self, |p| {
                let mut q = sqlx::query_as(self.sql(&sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(p).await
            })?;
            out.extend(rows.into_iter().map(|(id, event, at)| (id, (event, at))));
        }
        Ok(out)
    }

    /// Records a batch of finished attempts in one transaction. A completion
    /// whose claim was lost (reaped after a lease expiry) changes nothing but
    /// its attempt record (`lease_lost`).
    ///
    /// Outcomes are written with a few multi-row statements; only failures
    /// and recoveries touch the rest of their lane (hold / release).
    pub async fn complete(&self, batch: &[Completion], node: &str, now: Millis) -> Result<()> {
        // Every outcome changes its lane (hold, release, or a new head), so it
        // is serialised with inserts into that lane.
        let keys = lane_keys(batch.iter().map(|c| (c.destination.as_str(), c.subject.as_str())));
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            tx.prefer_indexes().await?;
            tx.lock_lanes(&keys).await?;
            let mut updated: HashSet<String> = HashSet::with_capacity(batch.len());
            for chunk in batch.chunks(COMPLETION_ROWS) {
                let n = chunk.len() * 6;
                let sql = format!(
                    "WITH v AS ({}) \
                     UPDATE deliveries SET status = v.status, active = v.active, head = CASE WHEN v.active = 0 THEN 0 ELSE deliveries.head END, \
                        due_at = COALESCE(v.due_at, deliveries.due_at), \
                        receipt = COALESCE(v.receipt, deliveries.receipt), last_error = v.last_error, \
                        lease_owner = NULL, lease_until = NULL, updated_at = ${} \
                     FROM v WHERE deliveries.id = v.id AND deliveries.status = 'in_flight' AND deliveries.lease_owner = ${} \
                     RETURNING deliveries.id",
                    super::typed_rows(chunk.len(), &OUTCOME_COLUMNS),
                    n + 1,
                    n + 2
                );
                let mut q = sqlx::query_scalar::<_, String>(self.sql(&sql));
                for c in chunk {
                    let (status, active, due, receipt, error) = columns(c);
                    q = q
                        .bind(c.delivery_id.as_str())
                        .bind(status)
                        .bind(active)
                        .bind(due)
                        .bind(receipt)
                        .bind(error);
                }
                updated.extend(q.bind(now).bind(node).fetch_all(&mut *tx).await?);
            }
            for chunk in batch.chunks(COMPLETION_ROWS) {
                let sql = format!(
                    "INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms, http_status, outcome, error_class, response_excerpt, node) \
                     VALUES {}",
                    (0..chunk.len())
                        .map(|r| format!("({})", super::placeholders(r * 10 + 1, 10)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut q = sqlx::query(self.sql(&sql));
                for c in chunk {
                    let outcome = if updated.contains(c.delivery_id.as_str()) {
                        columns(c).0
                    } else {
                        "lease_lost"
                    };
                    q = q
                        .bind(AttemptId::generate().as_str().to_owned())
                        .bind(c.delivery_id.as_str())
                        .bind(i64::from(c.attempt))
                        .bind(c.started_at)
                        .bind(c.duration_ms)
                        .bind(c.http_status.map(i64::from))
                        .bind(outcome)
                        .bind(c.error_class.as_deref())
                        .bind(c.excerpt.as_deref())
                        .bind(node);
                }
                q.execute(&mut *tx).await?;
            }
            for c in batch.iter().filter(|c| touches_lane(c) && updated.contains(c.delivery_id.as_str())) {
                match &c.outcome {
                    // Those behind a failing delivery wait visibly.
                    CompletionOutcome::Retry { .. } => {
                        sqlx::query(
                            "UPDATE deliveries SET status = 'held', updated_at = $1 WHERE destination = $2 AND subject = $3 \
                             AND active = 1 AND status = 'pending' AND id <> $4",
                        )
                        .bind(now)
                        .bind(&c.destination)
                        .bind(&c.subject)
                        .bind(c.delivery_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    // The subject flows again. A dead delivery releases it too:
                    // it stays replayable, and one bad message must not stop a
                    // manifest's later events for ever.
                    _ if c.attempt > 1 => {
                        sqlx::query(
                            "UPDATE deliveries SET status = 'pending', updated_at = $1 WHERE destination = $2 AND subject = $3 \
                             AND active = 1 AND status = 'held'",
                        )
                        .bind(now)
                        .bind(&c.destination)
                        .bind(&c.subject)
                        .execute(&mut *tx)
                        .await?;
                    }
                    _ => {}
                }
            }
            // A finished delivery hands its lane to the next active one.
            let finished: Vec<(&str, &str)> = batch
                .iter()
                .filter(|c| !matches!(c.outcome, CompletionOutcome::Retry { .. }) && updated.contains(c.delivery_id.as_str()))
                .map(|c| (c.destination.as_str(), c.subject.as_str()))
                .collect();
            for chunk in finished.chunks(COMPLETION_ROWS) {
                let sql = format!(
                    "UPDATE deliveries SET head = 1 WHERE seq IN (SELECT MIN(d.seq) FROM deliveries d \
                     JOIN ({}) AS l ON d.destination = l.destination AND d.subject = l.subject \
                     WHERE d.active = 1 GROUP BY d.destination, d.subject)",
                    super::typed_rows(chunk.len(), &LANE_COLUMNS)
                );
                let mut q = sqlx::query(self.sql(&sql));
                for (d, s) in chunk {
                    q = q.bind(*d).bind(*s);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Returns claims whose lease ran out (their process died) to the queue,
    /// recording an `interrupted` attempt for each. With `all`, every claim is
    /// returned regardless of its lease: used at start on SQLite, where no
    /// other process can hold one. The retry keeps the same message id.
    pub async fn reap_expired(&self, now: Millis, all: bool) -> Result<u64> {
        let cutoff = if all { i64::MAX } else { now };
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            // One statement decides which claims are reaped, so two processes
            // reaping at once cannot both record the same interruption.
            let rows = sqlx::query(
                "UPDATE deliveries SET status = 'retrying', due_at = $1, lease_until = NULL, last_error = 'interrupted', updated_at = $1 \
                 WHERE status = 'in_flight' AND lease_until < $2 RETURNING id, attempts, lease_owner",
            )
            .bind(now)
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
            for r in &rows {
                let id: String = r.try_get("id")?;
                let attempts: i64 = r.try_get("attempts")?;
                let owner: Option<String> = r.try_get("lease_owner")?;
                sqlx::query(
                    "INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms, outcome, error_class, response_excerpt, node) \
                     VALUES ($1, $2, $3, $4, 0, 'retrying', 'interrupted', 'the process holding this attempt stopped before it finished', $5)",
                )
                .bind(AttemptId::generate().as_str())
                .bind(&id)
                .bind(attempts)
                .bind(now)
                .bind(owner.unwrap_or_default())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(rows.len() as u64)
        })
    }

    /// Revives one dead (or delivered) delivery: it runs its retry schedule
    /// again from the start, in its original place in its subject's order.
    /// `None` when no such delivery exists; `Some(false)` when it is still active.
    pub async fn replay_delivery(&self, id: &DeliveryId, now: Millis, mappings: MappingChoice) -> Result<Option<bool>> {
        let mapping_at = mappings.time(now);
        on_write!(self, |p| {
            let n = sqlx::query(self.sql(
                "UPDATE deliveries SET status = 'pending', active = 1, head = 1, attempts = 0, due_at = $1, last_error = NULL, updated_at = $1, \
                 mapping_at = $2 WHERE id = $3 AND status IN ('dead', 'delivered')",
            ))
            .bind(now)
            .bind(mapping_at)
            .bind(id.as_str())
            .execute(p)
            .await?
            .rows_affected();
            if n > 0 {
                return Ok(Some(true));
            }
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM deliveries WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(p)
                .await?;
            Ok(exists.map(|_| false))
        })
    }

    /// Revives every dead delivery matching `f`; returns how many.
    pub async fn replay_dead(&self, f: &ReplayFilter, now: Millis, mappings: MappingChoice) -> Result<u64> {
        let mut sql = String::from(
            "UPDATE deliveries SET status = 'pending', active = 1, head = 1, attempts = 0, due_at = $1, last_error = NULL, updated_at = $1, \
             mapping_at = $2 WHERE status = 'dead'",
        );
        let mapping_at = mappings.time(now);
        let mut texts: Vec<String> = Vec::new();
        let mut n = 3;
        let mut push = |sql: &mut String, clause: &str, v: String| {
            sql.push_str(&clause.replace("$N", &format!("${n}")));
            texts.push(v);
            n += 1;
        };
        if let Some(d) = &f.destination {
            push(&mut sql, " AND destination = $N", d.clone());
        }
        if let Some(s) = &f.subject {
            push(&mut sql, " AND subject = $N", s.clone());
        }
        if let Some(t) = &f.r#type {
            push(&mut sql, " AND message_id IN (SELECT id FROM messages WHERE type = $N)", t.clone());
        }
        let since_at = n;
        let until_at = n + usize::from(f.since.is_some());
        if f.since.is_some() {
            sql.push_str(&format!(" AND created_at >= ${since_at}"));
        }
        if f.until.is_some() {
            sql.push_str(&format!(" AND created_at < ${until_at}"));
        }
        on_write!(self, |p| {
            let mut q = sqlx::query(self.sql(&sql)).bind(now).bind(mapping_at);
            for t in &texts {
                q = q.bind(t);
            }
            if let Some(s) = f.since {
                q = q.bind(s);
            }
            if let Some(u) = f.until {
                q = q.bind(u);
            }
            Ok(q.execute(p).await?.rows_affected())
        })
    }

    /// Unfinished deliveries per destination.
    pub async fn backlog(&self) -> Result<Vec<(String, i64)>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as("SELECT destination, COUNT(*) FROM deliveries WHERE active = 1 GROUP BY destination")
                .fetch_all(p)
                .await
        })?)
    }

    /// Deletes finished job-queue rows older than a day. apalis keeps every
    /// finished job otherwise: one per maintenance tick per process. (These
    /// are apalis's tables; the statements follow its own vacuum query.)
    pub async fn prune_job_queue(&self) -> Result<u64> {
        match &self.db {
            super::Db::Postgres(p) => Ok(sqlx::query(
                "DELETE FROM apalis.jobs WHERE status IN ('Done', 'Killed', 'Failed') AND done_at < now() - interval '1 day'",
            )
            .execute(p)
            .await?
            .rows_affected()),
            super::Db::Sqlite { jobs, .. } => Ok(sqlx::query(
                "DELETE FROM Jobs WHERE status IN ('Done', 'Killed', 'Failed') AND run_at < datetime('now', '-86400 seconds')",
            )
            .execute(jobs)
            .await?
            .rows_affected()),
        }
    }
}

/// Completions per multi-row statement (10 parameters per attempt row; at
/// most 500 terms in one SQLite compound SELECT).
const COMPLETION_ROWS: usize = 200;

/// `(status, active, due_at, receipt, last_error)` for a completion.
fn columns(c: &Completion) -> (&'static str, i64, Option<Millis>, Option<&str>, Option<&str>) {
    match &c.outcome {
        CompletionOutcome::Delivered { receipt } => ("delivered", 0, None, Some(receipt.as_str()), None),
        CompletionOutcome::Retry { due_at } => ("retrying", 1, Some(*due_at), None, c.excerpt.as_deref()),
        CompletionOutcome::Dead => ("dead", 0, None, None, c.excerpt.as_deref()),
    }
}

/// Whether a completion holds (a retry) or releases (the end of a retried
/// delivery) the rest of its lane.
fn touches_lane(c: &Completion) -> bool {
    matches!(c.outcome, CompletionOutcome::Retry { .. }) || c.attempt > 1
}

/// The typed columns of a lane.
const LANE_COLUMNS: [(&str, &str); 2] = [("destination", "TEXT"), ("subject", "TEXT")];

/// The typed columns of an outcome row in the completion CTE.
const OUTCOME_COLUMNS: [(&str, &str); 6] = [
    ("id", "TEXT"),
    ("status", "TEXT"),
    ("active", "BIGINT"),
    ("due_at", "BIGINT"),
    ("receipt", "TEXT"),
    ("last_error", "TEXT"),
];

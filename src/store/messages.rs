//! Messages: the group-commit insert that writes a batch of accepted messages
//! and one delivery row per destination in ONE transaction, duplicate
//! detection on (source, source event id), the folding of alert bursts
//! ([`super::bursts`]), and pruning.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::Row;

use super::bursts::{Burst, BurstTx};
use super::lanes::{WriteTx, lane_keys};
use super::{Result, Store, on_read, on_write};
use crate::model::{DeliveryId, MessageId, Millis, millis_to_rfc3339};

/// A message ready to be written.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Hub id.
    pub id: MessageId,
    /// CloudEvents source.
    pub source: String,
    /// The source's own event id.
    pub source_event_id: String,
    /// Message type.
    pub r#type: String,
    /// Ordering key.
    pub subject: String,
    /// Division code.
    pub jurisdiction: String,
    /// Business time as sent.
    pub event_time: String,
    /// The connector (partner) that sent it.
    pub partner: String,
    /// Canonical event JSON.
    pub event: String,
    /// Where it goes.
    pub destinations: Vec<String>,
    /// For a video-AI alert: the burst it belongs to, when bursts are folded.
    pub burst: Option<Burst>,
}

/// What the sender is told once the message is committed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Receipt {
    /// Hub message id.
    #[schema(value_type = String, example = "msg_01JDZ8Q4K6T5VQ4Z9M3R2X7N1C")]
    pub id: MessageId,
    /// When the hub committed it (RFC 3339, UTC).
    pub received_at: String,
    /// One entry per destination; empty when no route matched (kept as unrouted).
    pub deliveries: Vec<ReceiptDelivery>,
}

/// One destination in a receipt.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReceiptDelivery {
    /// Delivery id.
    #[schema(value_type = String)]
    pub id: DeliveryId,
    /// Connector name.
    pub destination: String,
}

/// The result of inserting one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Newly accepted.
    Accepted(Receipt),
    /// Seen before; the original receipt.
    Duplicate(Receipt),
    /// An alert folded into an earlier one of its burst (not stored); the
    /// receipt of the alert it was folded into.
    Folded(Receipt),
}

/// What the insert transaction did with one message.
enum Slot {
    Inserted(Receipt),
    Duplicate,
    Folded(String),
}

impl Store {
    /// Writes a batch in one transaction. Messages already known (same source
    /// and source event id, including earlier in the same batch) come back as
    /// duplicates with their original receipt.
    ///
    /// If the batch transaction fails, each message is retried in a
    /// transaction of its own so that one bad row cannot fail its neighbours.
    pub async fn insert_messages(&self, batch: &[NewMessage], now: Millis) -> Vec<Result<InsertOutcome>> {
        match self.insert_tx(batch, now).await {
            Ok(outcomes) => self.resolve_duplicates(batch, outcomes).await,
            Err(e) if batch.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "Group commit failed; writing the batch one message at a time.");
                let mut out = Vec::with_capacity(batch.len());
                for m in batch {
                    let one = std::slice::from_ref(m);
                    match self.insert_tx(one, now).await {
                        Ok(o) => out.extend(self.resolve_duplicates(one, o).await),
                        Err(e) => out.push(Err(e)),
                    }
                }
                out
            }
        }
    }

    /// What became of each message: inserted (with its receipt), a
    /// duplicate, or an alert folded into a kept one.
    ///
    /// Multi-row statements keep the statement count per batch small (a
    /// statement costs far more than a row on SQLite). Delivery rows are
    /// inserted in message order, so their `seq` is the acceptance order.
    async fn insert_tx(&self, batch: &[NewMessage], now: Millis) -> Result<Vec<Slot>> {
        let lanes: Vec<(&str, &str)> = batch
            .iter()
            .flat_map(|m| m.destinations.iter().map(|d| (d.as_str(), m.subject.as_str())))
            .collect();
        let mut keys = lane_keys(lanes.iter().copied());
        // Burst locks join the lane locks: one ascending order, no deadlock.
        let bursts = batch.iter().any(|m| m.burst.is_some());
        keys.extend(batch.iter().filter_map(|m| m.burst.as_ref().map(Burst::lock_key)));
        keys.sort_unstable();
        keys.dedup();
        let destinations: Vec<&str> = dedup(lanes.iter().map(|l| l.0));
        let subjects: Vec<&str> = dedup(lanes.iter().map(|l| l.1));
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            tx.prefer_indexes().await?;
            tx.lock_lanes(&keys).await?;
            // 0. Alerts that fold into a kept one of their burst are not inserted.
            let folded = if bursts {
                tx.fold_bursts(batch, now).await?
            } else {
                vec![None; batch.len()]
            };
            let to_insert: Vec<&NewMessage> = batch.iter().zip(&folded).filter(|(_, f)| f.is_none()).map(|(m, _)| m).collect();
            // 1. Messages; duplicates (also within the batch) are skipped.
            let mut inserted: HashSet<String> = HashSet::with_capacity(batch.len());
            for chunk in to_insert.chunks(MESSAGE_ROWS) {
                let sql = format!(
                    "INSERT INTO messages (id, source, source_event_id, type, subject, jurisdiction, event_time, received_at, partner, routed, event) \
                     VALUES {} ON CONFLICT (source, source_event_id) DO NOTHING RETURNING id",
                    rows(chunk.len(), 11)
                );
                let mut q = sqlx::query_scalar::<_, String>(self.sql(&sql));
                for m in chunk {
                    q = q
                        .bind(m.id.as_str())
                        .bind(&m.source)
                        .bind(&m.source_event_id)
                        .bind(&m.r#type)
                        .bind(&m.subject)
                        .bind(&m.jurisdiction)
                        .bind(&m.event_time)
                        .bind(now)
                        .bind(&m.partner)
                        .bind(m.destinations.len() as i64)
                        .bind(&m.event);
                }
                inserted.extend(q.fetch_all(&mut *tx).await?);
            }
            // 2. The lanes that already have active deliveries, and whether
            //    one of them is failing. A new delivery into an empty lane is
            //    its lane's head (the one the claim may take); one behind a
            //    failing delivery waits visibly (`held`).
            let mut busy: HashMap<(String, String), bool> = HashMap::new();
            if !lanes.is_empty() {
                let sql = format!(
                    "SELECT destination, subject, CAST(MAX(CASE WHEN status IN ('retrying', 'held') THEN 1 ELSE 0 END) AS BIGINT) \
                     FROM deliveries WHERE active = 1 AND destination IN ({}) AND subject IN ({}) GROUP BY destination, subject",
                    super::placeholders(1, destinations.len()),
                    super::placeholders(destinations.len() + 1, subjects.len())
                );
                let mut q = sqlx::query_as::<_, (String, String, i64)>(self.sql(&sql));
                for d in &destinations {
                    q = q.bind(*d);
                }
                for s in &subjects {
                    q = q.bind(*s);
                }
                busy.extend(
                    q.fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map(|(d, s, failing)| ((d, s), failing > 0)),
                );
            }
            // 3. Deliveries, in message order.
            let mut out = Vec::with_capacity(batch.len());
            let mut rows_to_insert: Vec<(DeliveryId, &NewMessage, &str, &'static str, i64)> = Vec::new();
            for (m, f) in batch.iter().zip(folded) {
                if let Some(anchor) = f {
                    out.push(Slot::Folded(anchor));
                    continue;
                }
                if !inserted.contains(m.id.as_str()) {
                    out.push(Slot::Duplicate);
                    continue;
                }
                let mut deliveries = Vec::with_capacity(m.destinations.len());
                for dest in &m.destinations {
                    let id = DeliveryId::generate();
                    let (status, head) = match busy.get(&(dest.clone(), m.subject.clone())) {
                        None => ("pending", 1),
                        Some(false) => ("pending", 0),
                        Some(true) => ("held", 0),
                    };
                    busy.entry((dest.clone(), m.subject.clone())).or_insert(false);
                    rows_to_insert.push((id.clone(), m, dest.as_str(), status, head));
                    deliveries.push(ReceiptDelivery {
                        id,
                        destination: dest.clone(),
                    });
                }
                out.push(Slot::Inserted(Receipt {
                    id: m.id.clone(),
                    received_at: millis_to_rfc3339(now),
                    deliveries,
                }));
            }
            for chunk in rows_to_insert.chunks(DELIVERY_ROWS) {
                let sql = format!(
                    "INSERT INTO deliveries (id, message_id, destination, subject, status, due_at, head, active, attempts, created_at, updated_at) \
                     SELECT id, message_id, destination, subject, status, due_at, head, 1, 0, due_at, due_at FROM ({}) AS v ORDER BY ord",
                    super::typed_rows(chunk.len(), &DELIVERY_COLUMNS)
                );
                let mut q = sqlx::query(self.sql(&sql));
                for (id, m, dest, status, head) in chunk {
                    q = q
                        .bind(id.as_str())
                        .bind(m.id.as_str())
                        .bind(*dest)
                        .bind(&m.subject)
                        .bind(*status)
                        .bind(now)
                        .bind(*head);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    async fn resolve_duplicates(&self, batch: &[NewMessage], outcomes: Vec<Slot>) -> Vec<Result<InsertOutcome>> {
        let mut out = Vec::with_capacity(batch.len());
        for (m, o) in batch.iter().zip(outcomes) {
            out.push(match o {
                Slot::Inserted(r) => Ok(InsertOutcome::Accepted(r)),
                Slot::Duplicate => self
                    .receipt_where("source = $1 AND source_event_id = $2", &m.source, &m.source_event_id)
                    .await
                    .map(InsertOutcome::Duplicate),
                Slot::Folded(anchor) => self.receipt_where("id = $1", &anchor, "").await.map(InsertOutcome::Folded),
            });
        }
        out
    }

    /// The receipt of the message found by `condition` over `$1` (and `$2`,
    /// when the condition names it).
    async fn receipt_where(&self, condition: &str, a: &str, b: &str) -> Result<Receipt> {
        let sql = format!("SELECT id, received_at FROM messages WHERE {condition}");
        on_write!(self, |p| {
            let mut q = sqlx::query(super::dynamic(&sql)).bind(a);
            if condition.contains("$2") {
                q = q.bind(b);
            }
            let row = q.fetch_one(p).await?;
            let id: String = row.try_get("id")?;
            let received_at: i64 = row.try_get("received_at")?;
            let rows = sqlx::query("SELECT id, destination FROM deliveries WHERE message_id = $1 ORDER BY destination")
                .bind(&id)
                .fetch_all(p)
                .await?;
            let deliveries = rows
                .iter()
                .map(|r| {
                    Ok(ReceiptDelivery {
                        id: DeliveryId::from_stored(r.try_get("id")?),
                        destination: r.try_get("destination")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(Receipt {
                id: MessageId::from_stored(id),
                received_at: millis_to_rfc3339(received_at),
                deliveries,
            })
        })
    }

    /// Deletes up to `limit` messages received before `cutoff` whose
    /// deliveries are all finished, with their deliveries and attempts.
    /// Returns how many messages went.
    pub async fn prune_finished(&self, cutoff: Millis, limit: i64) -> Result<u64> {
        let ids: Vec<String> = on_read!(self, |p| {
            sqlx::query_scalar(
                "SELECT m.id FROM messages m WHERE m.received_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.active = 1) \
                 ORDER BY m.received_at LIMIT $2",
            )
            .bind(cutoff)
            .bind(limit)
            .fetch_all(p)
            .await
        })?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = super::placeholders(1, ids.len());
        let statements = [
            format!("DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE message_id IN ({list}) AND active = 0)"),
            format!("DELETE FROM deliveries WHERE message_id IN ({list}) AND active = 0"),
            format!(
                "DELETE FROM messages WHERE id IN ({list}) AND NOT EXISTS \
                 (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id)"
            ),
            // A pruned alert's burst goes with it (a later alert then starts a new one).
            format!(
                "DELETE FROM alert_bursts WHERE message_id IN ({list}) AND NOT EXISTS \
                 (SELECT 1 FROM messages m WHERE m.id = alert_bursts.message_id)"
            ),
        ];
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            let mut deleted = 0;
            for (i, sql) in statements.iter().enumerate() {
                let mut q = sqlx::query(self.sql(sql));
                for id in &ids {
                    q = q.bind(id);
                }
                let n = q.execute(&mut *tx).await?.rows_affected();
                if i == 2 {
                    deleted = n;
                }
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }
}

/// Messages per multi-row INSERT (11 parameters each, well under SQLite's
/// 32,766 and PostgreSQL's 65,535 parameter limits).
const MESSAGE_ROWS: usize = 256;
/// The typed columns of a new delivery row.
const DELIVERY_COLUMNS: [(&str, &str); 7] = [
    ("id", "TEXT"),
    ("message_id", "TEXT"),
    ("destination", "TEXT"),
    ("subject", "TEXT"),
    ("status", "TEXT"),
    ("due_at", "BIGINT"),
    ("head", "BIGINT"),
];

/// Deliveries per multi-row INSERT (7 parameters each; SQLite allows at
/// most 500 terms in one compound SELECT).
const DELIVERY_ROWS: usize = 250;

/// `($1, …, $k), ($k+1, …), …` for `n` rows of `k` values.
fn rows(n: usize, k: usize) -> String {
    (0..n)
        .map(|r| format!("({})", super::placeholders(r * k + 1, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dedup<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = it.collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn row_placeholders_number_across_rows() {
        assert_eq!(super::rows(2, 2), "($1, $2), ($3, $4)");
        assert!(super::super::typed_rows(2, &super::DELIVERY_COLUMNS).contains("CAST($13 AS BIGINT) AS due_at"));
    }
}

#[cfg(test)]
mod store_tests {
    use crate::config::{DatabaseConfig, Secret, SqliteSynchronous};
    use crate::model::MessageId;
    use crate::store::{Completion, CompletionOutcome, InsertOutcome, NewMessage, Store};

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::connect(&DatabaseConfig {
            url: Secret::new(format!("sqlite://{}", dir.path().join("t.db").display())),
            max_connections: 2,
            sqlite_synchronous: SqliteSynchronous::Normal,
        })
        .await
        .unwrap()
    }

    fn message(id: &str) -> NewMessage {
        NewMessage {
            id: MessageId::generate(),
            source: "urn:t".into(),
            source_event_id: id.into(),
            r#type: "ledger-entry".into(),
            subject: "s".into(),
            jurisdiction: "350206".into(),
            event_time: "2026-11-29T08:00:00+08:00".into(),
            partner: "p".into(),
            event: "{}".into(),
            destinations: vec!["d".into()],
            burst: None,
        }
    }

    #[tokio::test]
    async fn prunes_finished_messages_and_keeps_active_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let out = s.insert_messages(&[message("a"), message("b")], 1_000).await;
        assert!(matches!(out[0], Ok(InsertOutcome::Accepted(_))));
        // Deliver the first; the second (same lane) stays active.
        let claimed = s.claim("d", 10, "n", 2_000, 60_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "only the lane head is claimable");
        let c = &claimed[0];
        let done = Completion {
            delivery_id: c.id.clone(),
            destination: "d".into(),
            subject: c.subject.clone(),
            attempt: c.attempt,
            outcome: CompletionOutcome::Delivered { receipt: "{}".into() },
            started_at: 2_000,
            duration_ms: 1,
            http_status: Some(200),
            error_class: None,
            excerpt: None,
        };
        s.complete(&[done], "n", 3_000).await.unwrap();
        assert_eq!(s.prune_finished(10_000, 100).await.unwrap(), 1, "the delivered message goes");
        assert_eq!(s.prune_finished(10_000, 100).await.unwrap(), 0, "the waiting one stays");
        // The second is now the head and can be claimed.
        assert_eq!(s.claim("d", 10, "n", 4_000, 60_000).await.unwrap().len(), 1);
    }
}

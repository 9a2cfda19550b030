//! Alert bursts: a video-AI platform often raises the same alert again and
//! again while a condition lasts (a vehicle at the gate, smoke in view). An
//! alert that falls within the window of one already kept from the same
//! camera (same source, camera, event type and subject) is folded into it:
//! not stored, counted on the kept one (`alert_bursts.folded`).
//!
//! The decision is made inside the group-commit transaction that writes the
//! alerts ([`BurstTx::fold_bursts`], called by `Store::insert_messages`), so
//! a kept alert and its burst row commit together and a folded alert always
//! points at a message that exists. On PostgreSQL that transaction first
//! takes an advisory lock per burst key ([`Burst::lock_key`], with the lane
//! locks, in one ascending order), so two processes receiving the same
//! burst at once still keep exactly one; SQLite has one writer.

use sqlx::{PgConnection, SqliteConnection};

use super::messages::NewMessage;
use super::{Result, Store, on_read};
use crate::model::{Millis, millis_to_rfc3339};

/// What makes two alerts one burst, and the window that applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Burst {
    /// CloudEvents source of the alert.
    pub source: String,
    /// The camera.
    pub camera_id: String,
    /// The alert's event type (`NO_WEIGHING`, `FIRE_SMOKE`, …).
    pub event_type: String,
    /// The message subject (the linked manifest or batch, or the camera).
    pub subject: String,
    /// When the alerted event started (Unix ms).
    pub started_at: Millis,
    /// Alerts whose start is less than this far from a kept one's are folded.
    pub window_ms: Millis,
}

impl Burst {
    /// The advisory-lock key of this burst: FNV-1a over a fixed tag and the
    /// four key parts, NUL-separated (the lane keys hash no tag, so the two
    /// kinds of lock rarely share a key; when they do, the only cost is
    /// that two writers wait for each other).
    pub fn lock_key(&self) -> i64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let parts = [
            "alert-burst",
            self.source.as_str(),
            self.camera_id.as_str(),
            self.event_type.as_str(),
            self.subject.as_str(),
        ];
        for b in parts.join("\0").bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h as i64
    }
}

/// How many alerts were folded into a kept one (the trace shows it).
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BurstView {
    /// Later alerts of the same burst that were not stored.
    pub folded: i64,
    /// When the last of them arrived (RFC 3339, UTC).
    pub last_folded_at: Option<String>,
}

/// The burst step of the group-commit transaction; implemented for both
/// backends' connections (the same statements, compiled per backend).
pub(crate) trait BurstTx {
    /// For each message of `batch`: `Some(anchor message id)` when it is an
    /// alert folded into a kept one (it must not be inserted), `None`
    /// otherwise. Kept alerts get their burst row here. Messages that are
    /// duplicates by (source, id), stored or earlier in the batch, are left
    /// to the duplicate check. The caller holds the burst locks.
    async fn fold_bursts(&mut self, batch: &[NewMessage], now: Millis) -> Result<Vec<Option<String>>, sqlx::Error>;
}

macro_rules! impl_burst_tx {
    ($conn:ty) => {
        impl BurstTx for $conn {
            async fn fold_bursts(&mut self, batch: &[NewMessage], now: Millis) -> Result<Vec<Option<String>>, sqlx::Error> {
                let mut out = vec![None; batch.len()];
                let mut seen = std::collections::HashSet::new();
                for (i, m) in batch.iter().enumerate() {
                    let first = seen.insert((m.source.as_str(), m.source_event_id.as_str()));
                    let Some(b) = &m.burst else { continue };
                    if !first || b.window_ms <= 0 {
                        continue;
                    }
                    let stored: Option<String> = sqlx::query_scalar("SELECT id FROM messages WHERE source = $1 AND source_event_id = $2")
                        .bind(&m.source)
                        .bind(&m.source_event_id)
                        .fetch_optional(&mut *self)
                        .await?;
                    if stored.is_some() {
                        continue;
                    }
                    // Anchors written earlier in this transaction are seen too.
                    let anchor: Option<String> = sqlx::query_scalar(
                        "SELECT message_id FROM alert_bursts WHERE source = $1 AND camera_id = $2 AND event_type = $3 \
                         AND subject = $4 AND started_at > $5 AND started_at < $6 ORDER BY started_at LIMIT 1",
                    )
                    .bind(&b.source)
                    .bind(&b.camera_id)
                    .bind(&b.event_type)
                    .bind(&b.subject)
                    .bind(b.started_at.saturating_sub(b.window_ms))
                    .bind(b.started_at.saturating_add(b.window_ms))
                    .fetch_optional(&mut *self)
                    .await?;
                    match anchor {
                        Some(id) => {
                            sqlx::query("UPDATE alert_bursts SET folded = folded + 1, last_folded_at = $1 WHERE message_id = $2")
                                .bind(now)
                                .bind(&id)
                                .execute(&mut *self)
                                .await?;
                            out[i] = Some(id);
                        }
                        None => {
                            sqlx::query(
                                "INSERT INTO alert_bursts (message_id, source, camera_id, event_type, subject, started_at, folded, last_folded_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, 0, NULL)",
                            )
                            .bind(m.id.as_str())
                            .bind(&b.source)
                            .bind(&b.camera_id)
                            .bind(&b.event_type)
                            .bind(&b.subject)
                            .bind(b.started_at)
                            .execute(&mut *self)
                            .await?;
                        }
                    }
                }
                Ok(out)
            }
        }
    };
}

impl_burst_tx!(SqliteConnection);
impl_burst_tx!(PgConnection);

impl Store {
    /// The burst a kept alert heads, if it heads one.
    pub async fn burst_of(&self, message_id: &str) -> Result<Option<BurstView>> {
        let row: Option<(i64, Option<i64>)> = on_read!(self, |p| {
            sqlx::query_as(self.sql("SELECT folded, last_folded_at FROM alert_bursts WHERE message_id = $1"))
                .bind(message_id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row.map(|(folded, last)| BurstView {
            folded,
            last_folded_at: last.map(millis_to_rfc3339),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burst(camera: &str, event_type: &str) -> Burst {
        Burst {
            source: "urn:s".into(),
            camera_id: camera.into(),
            event_type: event_type.into(),
            subject: "camera:c".into(),
            started_at: 0,
            window_ms: 60_000,
        }
    }

    #[test]
    fn lock_keys_depend_on_every_key_part_and_not_on_time() {
        let a = burst("c1", "NO_WEIGHING");
        let mut later = a.clone();
        later.started_at = 5_000;
        assert_eq!(a.lock_key(), later.lock_key());
        assert_ne!(a.lock_key(), burst("c2", "NO_WEIGHING").lock_key());
        assert_ne!(a.lock_key(), burst("c1", "FIRE_SMOKE").lock_key());
        // The separator keeps the parts apart.
        assert_ne!(burst("c1N", "O_WEIGHING").lock_key(), a.lock_key());
    }
}

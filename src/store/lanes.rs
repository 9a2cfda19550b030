//! Lane locks: on PostgreSQL, writers that touch the same (destination,
//! subject) lane are serialised with transaction-scoped advisory locks, so
//! that (a) a lane's deliveries get their `seq` in commit order and (b) a new
//! delivery's `held`/`pending` decision and a finished delivery's hold or
//! release never miss each other. SQLite has one writer, so it needs nothing.
//!
//! The same trait sets the planner hint these transactions need on
//! PostgreSQL ([`WriteTx::prefer_indexes`]).
//!
//! Every transaction takes its locks up front, in ascending key order, which
//! rules out deadlocks between the lock takers.

use sqlx::{PgConnection, SqliteConnection};

/// The advisory-lock key of a lane: FNV-1a over `destination NUL subject`.
pub fn lane_key(destination: &str, subject: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in destination.bytes().chain([0u8]).chain(subject.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Sorted, de-duplicated keys for the given lanes.
pub fn lane_keys<'a>(lanes: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<i64> {
    let mut keys: Vec<i64> = lanes.map(|(d, s)| lane_key(d, s)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What the store's write transactions need from their connection: lane
/// locks and, on PostgreSQL, the planner hint. No-ops on SQLite.
pub(crate) trait WriteTx {
    /// Blocks until every lane in `keys` (sorted) is locked by this transaction.
    async fn lock_lanes(&mut self, keys: &[i64]) -> Result<(), sqlx::Error>;

    /// Makes the rest of this transaction use indexes whatever the table
    /// statistics say. A new store's tables grow from empty faster than
    /// autovacuum re-analyses them, and PostgreSQL then plans sequential
    /// scans (and nested loops over them) for the claim and the lane checks,
    /// which turns each claim quadratic. Every statement of these
    /// transactions has an index made for it.
    async fn prefer_indexes(&mut self) -> Result<(), sqlx::Error>;
}

impl WriteTx for SqliteConnection {
    async fn lock_lanes(&mut self, _keys: &[i64]) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn prefer_indexes(&mut self) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl WriteTx for PgConnection {
    async fn prefer_indexes(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("SET LOCAL enable_seqscan = off").execute(self).await.map(|_| ())
    }

    async fn lock_lanes(&mut self, keys: &[i64]) -> Result<(), sqlx::Error> {
        if keys.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) WITH ORDINALITY AS t(k, i) ORDER BY i")
            .bind(keys)
            .execute(self)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_sorted_and_distinct() {
        assert_eq!(lane_key("a", "b"), lane_key("a", "b"));
        assert_ne!(lane_key("ab", "c"), lane_key("a", "bc"));
        let k = lane_keys([("d", "s1"), ("d", "s2"), ("d", "s1")].into_iter());
        assert_eq!(k.len(), 2);
        assert!(k[0] < k[1]);
    }
}

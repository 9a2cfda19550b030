//! Leases: a named claim held by one hub process until it expires. A `poll`
//! connector runs only on the holder of `poll:<connector>`, so that with
//! several processes on one database exactly one of them pulls from the
//! partner.
//!
//! Taking and renewing are the same single conditional upsert: the row is
//! written when it is missing, expired, or already this holder's, so two
//! processes can never both succeed. A holder that dies stops renewing and
//! its lease runs out; a clean stop releases it at once. Times are Unix
//! milliseconds of the writing process's clock, so the clocks of the
//! processes sharing a database must agree to well within a lease.

use super::{Result, Store, on_read, on_write};
use crate::model::Millis;

/// Who holds a lease, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The holder's node id.
    pub holder: String,
    /// When it runs out unless renewed.
    pub expires_at: Millis,
}

impl Store {
    /// Takes lease `name` for `holder` until `until`, or renews it, when it
    /// is free, expired at `now`, or already `holder`'s. True when `holder`
    /// holds it afterwards.
    pub async fn acquire_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(self.sql(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
            ))
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Gives lease `name` up if `holder` holds it (a clean stop), so another
    /// process can take it without waiting for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(self.sql("DELETE FROM leases WHERE name = $1 AND holder = $2"))
                .bind(name)
                .bind(holder)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// The current holder of lease `name` (expired or not), for operators and tests.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<LeaseHolder>> {
        let row: Option<(String, i64)> = on_read!(self, |p| {
            sqlx::query_as(self.sql("SELECT holder, expires_at FROM leases WHERE name = $1"))
                .bind(name)
                .fetch_optional(p)
                .await
        })?;
        Ok(row.map(|(holder, expires_at)| LeaseHolder { holder, expires_at }))
    }
}

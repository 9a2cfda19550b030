//! Poll cursors: where each `poll` connector is in its partner's
//! collection, and how its last run went. One row per connector.
//!
//! Progress is written after each page is committed, and only by the
//! holder of the connector's lease: the write renews the lease and saves
//! the row in one transaction, and does neither when the lease has gone to
//! another process (or ran out), so a process that lost its lease can
//! never move the cursor under the one that took over.

use sqlx::FromRow;

use super::{Result, Store, on_read, on_write};
use crate::model::Millis;

/// The stored position and last-run figures of one connector.
#[derive(Clone, Debug, Default, PartialEq, Eq, FromRow)]
pub struct PollCursor {
    /// The cursor the run in progress (or the next run) sends.
    pub cursor: Option<String>,
    /// The next page of the run in progress; `None` between runs.
    pub page_token: Option<String>,
    /// The latest cursor a page of the run in progress pointed to; it
    /// becomes `cursor` when the run ends.
    pub next_cursor: Option<String>,
    /// When the run in progress started; `None` between runs.
    pub run_started_at: Option<Millis>,
    /// When the last finished run started.
    pub last_run_started_at: Option<Millis>,
    /// When the last run finished (reached its last page).
    pub last_run_finished_at: Option<Millis>,
    /// Pages of the last finished run (of its part since a restart, when resumed).
    pub last_run_pages: i64,
    /// Items of the last finished run.
    pub last_run_items: i64,
    /// Items of the last finished run refused for good.
    pub last_run_refused: i64,
    /// The latest item refused for good: its page and position, the hub's
    /// code, detail and field errors (never the item itself).
    pub last_refusal: Option<String>,
    /// When it was refused.
    pub last_refusal_at: Option<Millis>,
    /// When the row was last written.
    pub updated_at: Millis,
    /// The node that wrote it.
    pub updated_by: String,
}

/// The lease a cursor write is conditional on, renewed by the write.
#[derive(Clone, Copy, Debug)]
pub struct LeaseCheck<'a> {
    /// Lease name (`poll:<connector>`).
    pub name: &'a str,
    /// This process's node id.
    pub holder: &'a str,
    /// Now; the lease must not have run out.
    pub now: Millis,
    /// The renewed expiry.
    pub until: Millis,
}

impl Store {
    /// The stored cursor of `connector`, if it ever completed a page.
    pub async fn poll_cursor(&self, connector: &str) -> Result<Option<PollCursor>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, PollCursor>(self.sql(
                "SELECT cursor, page_token, next_cursor, run_started_at, last_run_started_at, last_run_finished_at, \
                 last_run_pages, last_run_items, last_run_refused, last_refusal, last_refusal_at, updated_at, updated_by \
                 FROM poll_cursors WHERE connector = $1",
            ))
            .bind(connector)
            .fetch_optional(p)
            .await
        })?)
    }

    /// Saves `c` as `connector`'s cursor if `lease` is still held (and
    /// renews it). False, with nothing written, when it is not.
    pub async fn save_poll_cursor(&self, connector: &str, c: &PollCursor, lease: LeaseCheck<'_>) -> Result<bool> {
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            let held = sqlx::query(self.sql("UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND expires_at > $4"))
                .bind(lease.until)
                .bind(lease.name)
                .bind(lease.holder)
                .bind(lease.now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if held != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(self.sql(
                "INSERT INTO poll_cursors (connector, cursor, page_token, next_cursor, run_started_at, last_run_started_at, \
                 last_run_finished_at, last_run_pages, last_run_items, last_run_refused, last_refusal, last_refusal_at, \
                 updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (connector) DO UPDATE SET cursor = excluded.cursor, page_token = excluded.page_token, \
                 next_cursor = excluded.next_cursor, run_started_at = excluded.run_started_at, \
                 last_run_started_at = excluded.last_run_started_at, last_run_finished_at = excluded.last_run_finished_at, \
                 last_run_pages = excluded.last_run_pages, last_run_items = excluded.last_run_items, \
                 last_run_refused = excluded.last_run_refused, last_refusal = excluded.last_refusal, \
                 last_refusal_at = excluded.last_refusal_at, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            ))
            .bind(connector)
            .bind(c.cursor.as_deref())
            .bind(c.page_token.as_deref())
            .bind(c.next_cursor.as_deref())
            .bind(c.run_started_at)
            .bind(c.last_run_started_at)
            .bind(c.last_run_finished_at)
            .bind(c.last_run_pages)
            .bind(c.last_run_items)
            .bind(c.last_run_refused)
            .bind(c.last_refusal.as_deref())
            .bind(c.last_refusal_at)
            .bind(lease.now)
            .bind(lease.holder)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}

//! Inbound files: the record of every file a `file` connector took from its
//! drop folder (name, SHA-256, size, outcome, reason, times). The checksum
//! of a file recorded as `done` is how a file dropped again is recognised
//! and not submitted twice.

use super::{Result, Store, on_read, on_write};
use crate::model::{InboundFileId, Millis};

/// What the record says about a file about to be processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStart {
    /// First run: a new `processing` row.
    New(InboundFileId),
    /// A run interrupted by a stop or a transient refusal: its row again.
    Resumed(InboundFileId),
    /// The same content was done before, under this name at this time.
    Duplicate {
        /// Name of the earlier file.
        name: String,
        /// When it was finished.
        finished_at: Millis,
    },
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct FileOutcome<'a> {
    /// `done`, `failed` or `duplicate`.
    pub status: &'static str,
    /// Why (failed), or a note (duplicate).
    pub reason: Option<&'a str>,
    /// Records read from the file.
    pub records: i64,
    /// Records committed (duplicates of earlier runs included).
    pub committed: i64,
    /// Records refused.
    pub refused: i64,
}

impl Store {
    /// Looks the file up by checksum and opens (or reopens) its run.
    pub async fn begin_file(&self, connector: &str, name: &str, sha256: &str, size: i64, now: Millis) -> Result<FileStart> {
        let done: Option<(String, Option<i64>)> = on_read!(self, |p| {
            sqlx::query_as(self.sql(
                "SELECT name, finished_at FROM inbound_files WHERE connector = $1 AND sha256 = $2 AND status = 'done' \
                 ORDER BY started_at LIMIT 1",
            ))
            .bind(connector)
            .bind(sha256)
            .fetch_optional(p)
            .await
        })?;
        if let Some((name, finished_at)) = done {
            return Ok(FileStart::Duplicate {
                name,
                finished_at: finished_at.unwrap_or_default(),
            });
        }
        let open: Option<(String,)> = on_read!(self, |p| {
            sqlx::query_as(self.sql(
                "SELECT id FROM inbound_files WHERE connector = $1 AND name = $2 AND sha256 = $3 AND status = 'processing' \
                 ORDER BY started_at DESC LIMIT 1",
            ))
            .bind(connector)
            .bind(name)
            .bind(sha256)
            .fetch_optional(p)
            .await
        })?;
        if let Some((id,)) = open {
            return Ok(FileStart::Resumed(InboundFileId::from_stored(id)));
        }
        let id = InboundFileId::generate();
        on_write!(self, |p| {
            sqlx::query(self.sql(
                "INSERT INTO inbound_files (id, connector, name, sha256, size, status, started_at) \
                 VALUES ($1, $2, $3, $4, $5, 'processing', $6)",
            ))
            .bind(id.as_str())
            .bind(connector)
            .bind(name)
            .bind(sha256)
            .bind(size)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(FileStart::New(id))
    }

    /// Records a file that was never opened (too large, duplicate): a
    /// finished row of its own.
    pub async fn record_file(
        &self,
        connector: &str,
        name: &str,
        sha256: &str,
        size: i64,
        outcome: &FileOutcome<'_>,
        now: Millis,
    ) -> Result<()> {
        let id = InboundFileId::generate();
        on_write!(self, |p| {
            sqlx::query(self.sql(
                "INSERT INTO inbound_files (id, connector, name, sha256, size, status, reason, records, committed, refused, started_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            ))
            .bind(id.as_str())
            .bind(connector)
            .bind(name)
            .bind(sha256)
            .bind(size)
            .bind(outcome.status)
            .bind(outcome.reason)
            .bind(outcome.records)
            .bind(outcome.committed)
            .bind(outcome.refused)
            .bind(now)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Closes a run.
    pub async fn finish_file(&self, id: &InboundFileId, outcome: &FileOutcome<'_>, now: Millis) -> Result<()> {
        on_write!(self, |p| {
            sqlx::query(self.sql(
                "UPDATE inbound_files SET status = $1, reason = $2, records = $3, committed = $4, refused = $5, finished_at = $6 \
                 WHERE id = $7",
            ))
            .bind(outcome.status)
            .bind(outcome.reason)
            .bind(outcome.records)
            .bind(outcome.committed)
            .bind(outcome.refused)
            .bind(now)
            .bind(id.as_str())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The status of the latest run of each file name of a connector, newest
    /// first (for tests and operators).
    pub async fn file_runs(&self, connector: &str) -> Result<Vec<(String, String, String)>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as(
                self.sql("SELECT name, sha256, status FROM inbound_files WHERE connector = $1 ORDER BY started_at DESC, id DESC"),
            )
            .bind(connector)
            .fetch_all(p)
            .await
        })?)
    }
}

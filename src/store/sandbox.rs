//! Sandbox traffic (`sandbox_messages`) and conformance runs
//! (`conformance_runs`). Sandbox messages live in their own table, which
//! nothing that routes or delivers ever reads: isolation from production is
//! a property of the schema, not of a flag someone must remember to check.

use super::{Result, Store, on_read, on_write};
use crate::model::Millis;

/// One sandbox exchange: what a sandbox partner sent and how it was answered.
#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct SandboxRow {
    /// Record id.
    pub id: String,
    /// The partner.
    pub partner_id: String,
    /// When it arrived.
    pub received_at: Millis,
    /// Message type, when it could be read.
    pub message_type: Option<String>,
    /// The partner's event id, when it could be read.
    pub source_event_id: Option<String>,
    /// The status the partner was answered with.
    pub http_status: i32,
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// The error code, when rejected.
    pub error_code: Option<String>,
    /// The field errors (JSON array), empty when accepted.
    #[schema(value_type = Object)]
    pub errors: String,
    /// The canonical event the hub would have routed, when accepted.
    #[schema(value_type = Option<Object>)]
    pub event: Option<String>,
}

/// One conformance run.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConformanceRow {
    /// Run id.
    pub id: String,
    /// The partner.
    pub partner_id: String,
    /// When.
    pub at: Millis,
    /// Who ran it.
    pub actor: String,
    /// The verdict.
    pub passed: bool,
    /// The report (JSON).
    pub report: String,
}

impl Store {
    /// Records one sandbox exchange.
    pub async fn insert_sandbox(&self, row: &SandboxRow) -> Result<()> {
        on_write!(self, |p| {
            sqlx::query(self.sql(
                "INSERT INTO sandbox_messages (id, partner_id, received_at, message_type, source_event_id, http_status, outcome, \
                 error_code, errors, event) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            ))
            .bind(&row.id)
            .bind(&row.partner_id)
            .bind(row.received_at)
            .bind(&row.message_type)
            .bind(&row.source_event_id)
            .bind(row.http_status)
            .bind(&row.outcome)
            .bind(&row.error_code)
            .bind(&row.errors)
            .bind(&row.event)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// A partner's sandbox exchanges received at or after `since`, newest
    /// first, at most `limit`.
    pub async fn sandbox_messages(&self, partner_id: &str, since: Millis, limit: i64) -> Result<Vec<SandboxRow>> {
        let rows = on_read!(self, |p| {
            sqlx::query_as(self.sql(
                "SELECT id, partner_id, received_at, message_type, source_event_id, http_status, outcome, error_code, errors, event \
                 FROM sandbox_messages WHERE partner_id = $1 AND received_at >= $2 ORDER BY received_at DESC, id DESC LIMIT $3",
            ))
            .bind(partner_id)
            .bind(since)
            .bind(limit)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Records a conformance run.
    pub async fn insert_conformance(&self, row: &ConformanceRow) -> Result<()> {
        on_write!(self, |p| {
            sqlx::query(
                self.sql("INSERT INTO conformance_runs (id, partner_id, at, actor, passed, report) VALUES ($1, $2, $3, $4, $5, $6)"),
            )
            .bind(&row.id)
            .bind(&row.partner_id)
            .bind(row.at)
            .bind(&row.actor)
            .bind(row.passed)
            .bind(&row.report)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The latest conformance run of a partner.
    pub async fn latest_conformance(&self, partner_id: &str) -> Result<Option<ConformanceRow>> {
        let row = on_read!(self, |p| {
            sqlx::query_as(self.sql(
                "SELECT id, partner_id, at, actor, passed, report FROM conformance_runs WHERE partner_id = $1 \
                 ORDER BY at DESC, id DESC LIMIT 1",
            ))
            .bind(partner_id)
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    /// A conformance run by id.
    pub async fn conformance(&self, id: &str) -> Result<Option<ConformanceRow>> {
        let row = on_read!(self, |p| {
            sqlx::query_as(self.sql("SELECT id, partner_id, at, actor, passed, report FROM conformance_runs WHERE id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row)
    }
}

//! Attempts: reading the attempt history of deliveries (attempts are written
//! with their outcome in `deliveries::complete` and `reap_expired`).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::FromRow;

use super::{Result, Store, on_read};
use crate::model::millis_to_rfc3339;

/// One attempt as the trace API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// Attempt id.
    pub id: String,
    /// Position in the current run of the retry schedule (1 = first try).
    pub number: i64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// HTTP status, when the partner answered.
    pub http_status: Option<i64>,
    /// `delivered`, `retrying`, `dead` or `lease_lost`.
    pub outcome: String,
    /// Why it failed (`timeout`, `connect`, `status`, `ack_code`, `interrupted`, …).
    pub error_class: Option<String>,
    /// Start of the response body, or the error text.
    pub response_excerpt: Option<String>,
    /// The hub process that made it.
    pub node: String,
}

#[derive(FromRow)]
struct AttemptRow {
    id: String,
    delivery_id: String,
    number: i64,
    started_at: i64,
    duration_ms: i64,
    http_status: Option<i64>,
    outcome: String,
    error_class: Option<String>,
    response_excerpt: Option<String>,
    node: String,
}

impl Store {
    /// Attempts of the given deliveries, oldest first, grouped by delivery id.
    pub async fn attempts_for(&self, delivery_ids: &[String]) -> Result<HashMap<String, Vec<AttemptView>>> {
        let mut out: HashMap<String, Vec<AttemptView>> = HashMap::new();
        if delivery_ids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT id, delivery_id, number, started_at, duration_ms, http_status, outcome, error_class, response_excerpt, node \
             FROM attempts WHERE delivery_id IN ({}) ORDER BY started_at, id",
            super::placeholders(1, delivery_ids.len())
        );
        let rows: Vec<AttemptRow> = on_read!(self, |p| {
            let mut q = sqlx::query_as(self.sql(&sql));
            for id in delivery_ids {
                q = q.bind(id);
            }
            q.fetch_all(p).await
        })?;
        for r in rows {
            out.entry(r.delivery_id).or_default().push(AttemptView {
                id: r.id,
                number: r.number,
                started_at: millis_to_rfc3339(r.started_at),
                duration_ms: r.duration_ms,
                http_status: r.http_status,
                outcome: r.outcome,
                error_class: r.error_class,
                response_excerpt: r.response_excerpt,
                node: r.node,
            });
        }
        Ok(out)
    }
}

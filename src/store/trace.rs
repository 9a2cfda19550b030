//! Trace reads: one message with its deliveries and attempts, and the
//! filtered, cursor-paginated message list.

use serde::Serialize;
use sqlx::FromRow;

use super::attempts::AttemptView;
use super::{Result, Store, on_read};
use crate::model::{Millis, millis_to_rfc3339};

/// A message with everything that happened to it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    /// Hub message id.
    pub id: String,
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
    pub time: String,
    /// When the hub committed it.
    pub received_at: String,
    /// The partner connector that sent it.
    pub partner: String,
    /// False when no route matched (the message is kept, never dropped).
    pub routed: bool,
    /// The canonical event (envelope and body).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// One entry per destination.
    pub deliveries: Vec<DeliveryView>,
    /// For a video-AI alert that heads a burst: how many later alerts of the
    /// same camera were folded into it (present once it was kept as one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<super::BurstView>,
}

/// One delivery in a trace.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Delivery id.
    pub id: String,
    /// Connector name.
    pub destination: String,
    /// `pending`, `in_flight`, `held`, `retrying`, `delivered` or `dead`.
    pub status: String,
    /// When the next attempt is due (waiting deliveries only).
    pub next_attempt_at: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// The partner's acknowledgement, once delivered.
    #[schema(value_type = Option<Object>)]
    pub receipt: Option<serde_json::Value>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
    /// The mapping versions that render this delivery are those in force
    /// at this time (Unix ms): acceptance, or a replay with current mappings.
    #[serde(skip)]
    pub mapping_at: i64,
    /// The body in the partner's format, when the destination maps this
    /// type (`null` when it receives the canonical event shown above).
    pub rendered: Option<RenderedView>,
}

/// A delivery's body as its destination's outbound mapping renders it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RenderedView {
    /// Mapping name and version, e.g. `national/manifest-out v1`.
    pub mapping: String,
    /// Media type sent.
    pub content_type: String,
    /// The body as text (decoded from its declared encoding).
    pub body: Option<String>,
    /// Why rendering fails (the delivery is dead-lettered with this).
    pub error: Option<String>,
}

/// A line of the message list.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessageSummary {
    /// Hub message id.
    pub id: String,
    /// CloudEvents source.
    pub source: String,
    /// Message type.
    pub r#type: String,
    /// Ordering key.
    pub subject: String,
    /// Division code.
    pub jurisdiction: String,
    /// When the hub committed it.
    pub received_at: String,
    /// False when no route matched.
    pub routed: bool,
    /// `destination: status` for each delivery.
    pub deliveries: Vec<DeliveryState>,
}

/// A destination and where its delivery stands.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryState {
    /// Connector name.
    pub destination: String,
    /// Delivery status.
    pub status: String,
}

/// One page of the list.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// Newest first.
    pub items: Vec<MessageSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// List filters.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    /// Exact message type.
    pub r#type: Option<String>,
    /// Exact source.
    pub source: Option<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// A delivery status, or `unrouted`.
    pub status: Option<String>,
    /// Received at or after.
    pub since: Option<Millis>,
    /// Received before.
    pub until: Option<Millis>,
    /// Continue below this position (from `next_cursor`).
    pub cursor: Option<i64>,
    /// Page size.
    pub limit: i64,
}

#[derive(FromRow)]
struct MessageRow {
    seq: i64,
    id: String,
    source: String,
    source_event_id: String,
    #[sqlx(rename = "type")]
    r#type: String,
    subject: String,
    jurisdiction: String,
    event_time: String,
    received_at: i64,
    partner: String,
    routed: i64,
    event: String,
}

#[derive(FromRow)]
struct DeliveryRow {
    id: String,
    message_id: String,
    destination: String,
    status: String,
    due_at: i64,
    last_error: Option<String>,
    receipt: Option<String>,
    mapping_at: Option<i64>,
}

const MESSAGE_COLUMNS: &str =
    "seq, id, source, source_event_id, type, subject, jurisdiction, event_time, received_at, partner, routed, event";

impl Store {
    /// The full trace of one message, or `None`.
    pub async fn message(&self, id: &str) -> Result<Option<MessageView>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
        let row: Option<MessageRow> = on_read!(self, |p| sqlx::query_as(self.sql(&sql)).bind(id).fetch_optional(p).await)?;
        let Some(m) = row else { return Ok(None) };
        let deliveries = self.deliveries_of(std::slice::from_ref(&m.id)).await?;
        let ids: Vec<String> = deliveries.iter().map(|d| d.id.clone()).collect();
        let mut attempts = self.attempts_for(&ids).await?;
        let burst = if m.r#type == "video-ai-alert" {
            self.burst_of(&m.id).await?
        } else {
            None
        };
        let deliveries = deliveries
            .into_iter()
            .map(|d| DeliveryView {
                attempts: attempts.remove(&d.id).unwrap_or_default(),
                next_attempt_at: matches!(d.status.as_str(), "pending" | "retrying").then(|| millis_to_rfc3339(d.due_at)),
                receipt: d.receipt.and_then(|r| serde_json::from_str(&r).ok()),
                id: d.id,
                destination: d.destination,
                status: d.status,
                last_error: d.last_error,
                mapping_at: d.mapping_at.unwrap_or(m.received_at),
                rendered: None,
            })
            .collect();
        Ok(Some(MessageView {
            event: serde_json::from_str(&m.event).unwrap_or(serde_json::Value::Null),
            id: m.id,
            source: m.source,
            source_event_id: m.source_event_id,
            r#type: m.r#type,
            subject: m.subject,
            jurisdiction: m.jurisdiction,
            time: m.event_time,
            received_at: millis_to_rfc3339(m.received_at),
            partner: m.partner,
            routed: m.routed > 0,
            deliveries,
            burst,
        }))
    }

    async fn deliveries_of(&self, message_ids: &[String]) -> Result<Vec<DeliveryRow>> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, message_id, destination, status, due_at, last_error, receipt, mapping_at FROM deliveries \
             WHERE message_id IN ({}) ORDER BY destination",
            super::placeholders(1, message_ids.len())
        );
        Ok(on_read!(self, |p| {
            let mut q = sqlx::query_as(self.sql(&sql));
            for id in message_ids {
                q = q.bind(id);
            }
            q.fetch_all(p).await
        })?)
    }

    /// A page of messages matching `f`, newest first.
    pub async fn messages(&self, f: &MessageFilter) -> Result<MessagePage> {
        let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE 1 = 1");
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        for (col, v) in [("m.type", &f.r#type), ("m.source", &f.source), ("m.subject", &f.subject)] {
            if let Some(v) = v {
                texts.push(v.clone());
                sql.push_str(&format!(" AND {col} = ${}", texts.len()));
            }
        }
        match f.status.as_deref() {
            Some("unrouted") => sql.push_str(" AND m.routed = 0"),
            Some(s) => {
                texts.push(s.to_string());
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.status = ${})",
                    texts.len()
                ));
            }
            None => {}
        }
        for (cond, v) in [
            (" AND m.received_at >= ", f.since),
            (" AND m.received_at < ", f.until),
            (" AND m.seq < ", f.cursor),
        ] {
            if let Some(v) = v {
                ints.push(v);
                sql.push_str(&format!("{cond}${}", texts.len() + ints.len()));
            }
        }
        let limit = f.limit.clamp(1, 500);
        sql.push_str(&format!(" ORDER BY m.seq DESC LIMIT {}", limit + 1));
        let mut rows: Vec<MessageRow> = on_read!(self, |p| {
            let mut q = sqlx::query_as(self.sql(&sql));
            for t in &texts {
                q = q.bind(t);
            }
            for i in &ints {
                q = q.bind(*i);
            }
            q.fetch_all(p).await
        })?;
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.seq.to_string())
        } else {
            None
        };
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut states: std::collections::HashMap<String, Vec<DeliveryState>> = std::collections::HashMap::new();
        for d in self.deliveries_of(&ids).await? {
            states.entry(d.message_id).or_default().push(DeliveryState {
                destination: d.destination,
                status: d.status,
            });
        }
        let items = rows
            .into_iter()
            .map(|m| MessageSummary {
                deliveries: states.remove(&m.id).unwrap_or_default(),
                id: m.id,
                source: m.source,
                r#type: m.r#type,
                subject: m.subject,
                jurisdiction: m.jurisdiction,
                received_at: millis_to_rfc3339(m.received_at),
                routed: m.routed > 0,
            })
            .collect();
        Ok(MessagePage { items, next_cursor })
    }
}

/// Delivery counts for one destination.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct DestinationStats {
    /// Connector name.
    pub destination: String,
    /// Deliveries per status (`pending`, `in_flight`, `held`, `retrying`, `delivered`, `dead`).
    pub deliveries: std::collections::BTreeMap<String, i64>,
    /// Attempts made.
    pub attempts: i64,
    /// Attempts that failed (retried or dead).
    pub failed_attempts: i64,
}

impl Store {
    /// Per-destination delivery counts and attempt totals.
    pub async fn destination_stats(&self) -> Result<Vec<DestinationStats>> {
        let by_status: Vec<(String, String, i64)> = on_read!(self, |p| {
            sqlx::query_as("SELECT destination, status, COUNT(*) FROM deliveries GROUP BY destination, status")
                .fetch_all(p)
                .await
        })?;
        let attempts: Vec<(String, i64, i64)> = on_read!(self, |p| {
            sqlx::query_as(
                "SELECT d.destination, COUNT(*), SUM(CASE WHEN a.outcome IN ('retrying', 'dead') THEN 1 ELSE 0 END) \
                 FROM attempts a JOIN deliveries d ON d.id = a.delivery_id GROUP BY d.destination",
            )
            .fetch_all(p)
            .await
        })?;
        let mut out: std::collections::BTreeMap<String, DestinationStats> = std::collections::BTreeMap::new();
        for (dest, status, n) in by_status {
            let e = out.entry(dest.clone()).or_insert_with(|| DestinationStats {
                destination: dest,
                ..Default::default()
            });
            e.deliveries.insert(status, n);
        }
        for (dest, n, failed) in attempts {
            let e = out.entry(dest.clone()).or_insert_with(|| DestinationStats {
                destination: dest,
                ..Default::default()
            });
            e.attempts = n;
            e.failed_attempts = failed;
        }
        Ok(out.into_values().collect())
    }
}

//! The storage ceiling for `wastehub bench`: how fast this database takes a
//! bare batched insert of the rows ingest writes (one message row and two
//! delivery rows per message) into the hub's own tables, with multi-row
//! statements and 512 messages per transaction: no HTTP, validation,
//! routing, duplicate or lane checks. The hub's ingest rate is reported as a
//! ratio to it. Run it on a fresh, otherwise unused store.

use std::time::{Duration, Instant};

use super::{Result, Store, on_write};
use crate::model::{DeliveryId, MessageId, now_millis};

impl Store {
    /// Inserts `n` messages of `event` (two deliveries each) in
    /// transactions of `batch`; returns the time taken.
    pub async fn storage_ceiling(&self, n: usize, batch: usize, event: &str) -> Result<Duration> {
        let started = Instant::now();
        let mut done = 0;
        while done < n {
            let end = (done + batch).min(n);
            let now = now_millis();
            let rows: Vec<(MessageId, String, String)> = (done..end)
                .map(|i| (MessageId::generate(), format!("ceiling-{i}"), format!("manifest:{}", i % 5000)))
                .collect();
            on_write!(self, |p| {
                let mut tx = p.begin().await?;
                for chunk in rows.chunks(256) {
                    let sql = format!(
                        "INSERT INTO messages (id, source, source_event_id, type, subject, jurisdiction, event_time, received_at, partner, routed, event) VALUES {}",
                        (0..chunk.len())
                            .map(|r| format!("({})", super::placeholders(r * 11 + 1, 11)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    let mut q = sqlx::query(self.sql(&sql));
                    for (id, sid, subject) in chunk {
                        q = q
                            .bind(id.as_str())
                            .bind("urn:bench:ceiling")
                            .bind(sid)
                            .bind("manifest-created")
                            .bind(subject)
                            .bind("350206")
                            .bind("")
                            .bind(now)
                            .bind("bench")
                            .bind(2_i64)
                            .bind(event);
                    }
                    q.execute(&mut *tx).await?;
                    let sql = format!(
                        "INSERT INTO deliveries (id, message_id, destination, subject, status, due_at, active, attempts, created_at, updated_at) VALUES {}",
                        (0..chunk.len() * 2)
                            .map(|r| format!("({})", super::placeholders(r * 10 + 1, 10)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    let mut q = sqlx::query(self.sql(&sql));
                    for (id, _, subject) in chunk {
                        for dest in ["a", "b"] {
                            q = q
                                .bind(DeliveryId::generate().as_str().to_owned())
                                .bind(id.as_str())
                                .bind(dest)
                                .bind(subject)
                                .bind("delivered")
                                .bind(now)
                                .bind(0_i64)
                                .bind(0_i64)
                                .bind(now)
                                .bind(now);
                        }
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<(), super::StoreError>(())
            })?;
            done = end;
        }
        Ok(started.elapsed())
    }

    /// Creates a new PostgreSQL database on the server of `base` and returns
    /// its URL (the benchmark's fresh store).
    pub async fn create_postgres_database(base: &str, name: &str) -> Result<String> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(base).await?;
        sqlx::query(super::dynamic(&format!("CREATE DATABASE \"{}\"", name.replace('"', ""))))
            .execute(&mut conn)
            .await?;
        let head = base.rsplit_once('/').map(|(h, _)| h).unwrap_or(base);
        Ok(format!("{head}/{name}"))
    }

    /// Drops a database made by [`Store::create_postgres_database`].
    pub async fn drop_postgres_database(base: &str, name: &str) -> Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(base).await?;
        sqlx::query(super::dynamic(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "")
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

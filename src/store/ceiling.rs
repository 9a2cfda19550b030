//! The storage ceiling for `wastehub bench`: how fast this database takes a
//! bare batched insert of the same rows ingest writes (one message row and
//! two delivery rows per message, 512 messages per transaction), with no
//! HTTP, validation or routing. The hub's ingest rate is reported as a
//! ratio to it. It writes to scratch tables that it drops afterwards.

use std::time::{Duration, Instant};

use super::{Result, Store, on_write};
use crate::model::{DeliveryId, MessageId, now_millis};

const SCRATCH: [&str; 2] = ["bench_ceiling_deliveries", "bench_ceiling_messages"];

impl Store {
    /// Inserts `n` messages of `event` (and two deliveries each) in batches
    /// of `batch`; returns the time taken.
    pub async fn storage_ceiling(&self, n: usize, batch: usize, event: &str) -> Result<Duration> {
        let ddl = [
            "CREATE TABLE bench_ceiling_messages (seq BIGINT, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL, source_event_id TEXT NOT NULL, \
             type TEXT NOT NULL, subject TEXT NOT NULL, received_at BIGINT NOT NULL, event TEXT NOT NULL, UNIQUE (source, source_event_id))",
            "CREATE TABLE bench_ceiling_deliveries (id TEXT NOT NULL UNIQUE, message_id TEXT NOT NULL, destination TEXT NOT NULL, \
             subject TEXT NOT NULL, status TEXT NOT NULL, due_at BIGINT NOT NULL)",
            "CREATE INDEX bench_ceiling_lane ON bench_ceiling_deliveries (destination, subject, due_at)",
        ];
        on_write!(self, |p| {
            for t in SCRATCH {
                sqlx::query(super::dynamic(&format!("DROP TABLE IF EXISTS {t}"))).execute(p).await?;
            }
            for stmt in ddl {
                sqlx::query(stmt).execute(p).await?;
            }
            let started = Instant::now();
            let mut done = 0;
            while done < n {
                let mut tx = p.begin().await?;
                let now = now_millis();
                for i in done..(done + batch).min(n) {
                    let id = MessageId::generate();
                    let subject = format!("manifest:{}", i % 5000);
                    sqlx::query(
                        "INSERT INTO bench_ceiling_messages (seq, id, source, source_event_id, type, subject, received_at, event) \
                         VALUES ($1, $2, 'urn:bench', $3, 'manifest-created', $4, $5, $6)",
                    )
                    .bind(i as i64)
                    .bind(id.as_str())
                    .bind(i.to_string())
                    .bind(&subject)
                    .bind(now)
                    .bind(event)
                    .execute(&mut *tx)
                    .await?;
                    for dest in ["a", "b"] {
                        sqlx::query(
                            "INSERT INTO bench_ceiling_deliveries (id, message_id, destination, subject, status, due_at) \
                             VALUES ($1, $2, $3, $4, 'pending', $5)",
                        )
                        .bind(DeliveryId::generate().as_str())
                        .bind(id.as_str())
                        .bind(dest)
                        .bind(&subject)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                done = (done + batch).min(n);
            }
            let took = started.elapsed();
            for t in SCRATCH {
                sqlx::query(super::dynamic(&format!("DROP TABLE IF EXISTS {t}"))).execute(p).await?;
            }
            Ok(took)
        })
    }

    /// Creates a new PostgreSQL database on the server of `base` and returns
    /// its URL (the benchmark's fresh store).
    pub async fn create_postgres_database(base: &str, name: &str) -> Result<String> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(base).await?;
        sqlx::query(super::dynamic(&format!("CREATE DATABASE \"{}\"", name.replace('"', "")))).execute(&mut conn).await?;
        let head = base.rsplit_once('/').map(|(h, _)| h).unwrap_or(base);
        Ok(format!("{head}/{name}"))
    }

    /// Drops a database made by [`Store::create_postgres_database`].
    pub async fn drop_postgres_database(base: &str, name: &str) -> Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(base).await?;
        sqlx::query(super::dynamic(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', ""))))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}

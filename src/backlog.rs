//! The back-pressure counter: unfinished deliveries, kept in memory so that
//! ingest can refuse work (429) without counting rows on every request.
//!
//! It moves with every commit (up) and every finished delivery (down), and
//! is recounted from the store by each maintenance run and at start, which
//! also corrects for other hub processes sharing a PostgreSQL store.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::store::{Store, StoreError};
use crate::telemetry;

/// Unfinished deliveries across all destinations.
#[derive(Debug, Default)]
pub struct Backlog {
    total: AtomicI64,
}

impl Backlog {
    /// The current estimate.
    pub fn get(&self) -> i64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Adds (or, with a negative `n`, removes) deliveries.
    pub fn add(&self, n: i64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    /// Recounts from the store and publishes per-destination gauges.
    pub async fn resync(&self, store: &Store) -> Result<(), StoreError> {
        let rows = store.backlog().await?;
        let total: i64 = rows.iter().map(|(_, n)| n).sum();
        self.total.store(total, Ordering::Relaxed);
        for (dest, n) in rows {
            metrics::gauge!(telemetry::BACKLOG_DELIVERIES, telemetry::LABEL_DESTINATION => dest).set(n as f64);
        }
        Ok(())
    }
}

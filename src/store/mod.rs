//! The store: the only module that writes SQL. SQLite (WAL, one writer
//! connection plus readers) is the embedded default; PostgreSQL lets several
//! hub processes share the work.
//!
//! Both backends run the same statements (`$N` placeholders work in both);
//! where they differ (row locks on PostgreSQL) the text is chosen per
//! backend. One file per aggregate: [`messages`], [`deliveries`],
//! [`attempts`], [`trace`].

pub mod attempts;
pub mod bursts;
pub mod ceiling;
pub mod deliveries;
pub mod inbound_files;
pub mod lanes;
pub mod leases;
pub mod messages;
pub mod partners;
pub mod poll_cursors;
pub mod sandbox;
pub mod trace;
pub mod xp;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous as Sync};
use sqlx::{PgPool, SqlitePool};

use crate::config::{DatabaseConfig, SqliteSynchronous};

pub use attempts::AttemptView;
pub use bursts::{Burst, BurstView};
pub use deliveries::{Claimed, Completion, CompletionOutcome, MappingChoice, ReplayFilter};
pub use inbound_files::{FileOutcome, FileStart};
pub use leases::LeaseHolder;
pub use messages::{InsertOutcome, NewMessage, Receipt, ReceiptDelivery};
pub use poll_cursors::{LeaseCheck, PollCursor};
pub use trace::{DeliveryView, DestinationStats, MessageFilter, MessagePage, MessageSummary, MessageView, RenderedView};

/// Store failures. Constraint problems are answered by the callers; anything
/// else is an outage or a bug.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed at start.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported backend.
    #[error("unsupported database url (use sqlite:… or postgres://…)")]
    UnsupportedUrl,
    /// A SQLite path whose folder could not be created.
    #[error("cannot create the database folder: {0}")]
    Folder(#[source] std::io::Error),
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database the store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, single process.
    Sqlite,
    /// Shared by several processes.
    Postgres,
}

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
        jobs: SqlitePool,
    },
    Postgres(PgPool),
}

/// Handle to the store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
}

/// Runs `$body` with `$p` bound to the write pool of whichever backend is in
/// use. The body is compiled once per backend, so it may use either's types.
macro_rules! on_write {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { write: $p, .. } => $body,
            $crate::store::Db::Postgres($p) => $body,
        }
    };
}
/// Like [`on_write`], with a pool for reads (SQLite readers run beside the writer).
macro_rules! on_read {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { read: $p, .. } => $body,
            $crate::store::Db::Postgres($p) => $body,
        }
    };
}
pub(crate) use {on_read, on_write};

impl Store {
    /// Connects and runs migrations.
    pub async fn connect(cfg: &DatabaseConfig) -> Result<Self> {
        let url = cfg.url.expose();
        let db = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(match cfg.sqlite_synchronous {
                    SqliteSynchronous::Full => Sync::Full,
                    SqliteSynchronous::Normal => Sync::Normal,
                })
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(false)
                // Statement journals (multi-row statements) stay in memory.
                .pragma("temp_store", "memory")
                // Multi-row statements come in many sizes; keep them all prepared.
                .statement_cache_capacity(1024);
            if let Some(parent) = opts.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(StoreError::Folder)?;
            }
            // One writer: SQLite serialises writers anyway, and a single
            // connection turns lock waits into an orderly queue in the pool.
            let write = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
            sqlx::migrate!("src/store/migrations/sqlite").run(&write).await?;
            // The job queue gets a file of its own beside the store: apalis
            // sets its own pragmas (synchronous = OFF, a large page cache) on
            // its connections, which must never touch the message store.
            let jobs_file = format!("{}-jobs", opts.get_filename().display());
            // More than one connection: the maintenance job itself prunes the
            // job table while the apalis worker may hold a connection for
            // its own bookkeeping; with one, the job waited out the pool's
            // acquire timeout (30 s) and held up shutdown.
            let jobs = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(jobs_file)
                        .create_if_missing(true)
                        .busy_timeout(Duration::from_secs(30)),
                )
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(cfg.max_connections.max(1))
                .connect_with(opts.read_only(true))
                .await?;
            Db::Sqlite { write, read, jobs }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(cfg.max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            // Several processes may start at once; the migrator takes an
            // advisory lock so only one applies each migration.
            // apalis keeps its migrations in the same bookkeeping table, so
            // each migrator must ignore versions that are not its own.
            let mut migrator = sqlx::migrate!("src/store/migrations/postgres");
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Self { db })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite pool of the job queue (its own file, `<store>-jobs`).
    pub fn sqlite_jobs_pool(&self) -> Option<&SqlitePool> {
        match &self.db {
            Db::Sqlite { jobs, .. } => Some(jobs),
            Db::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for the job queue.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(p) => Some(p),
            Db::Sqlite { .. } => None,
        }
    }

    /// `SELECT 1` on a read connection: the readiness probe.
    pub async fn ping(&self) -> Result<()> {
        on_read!(self, |p| sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection (on shutdown).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read, jobs } => {
                jobs.close().await;
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// Marks a statement assembled at run time as safe. Every such statement in
/// this module is built only from fixed SQL fragments and numbered `$N`
/// placeholders; values always travel as bound parameters, never as text.
///
/// When the placeholders run `$1, $2, …` in order, each used once, they are
/// rewritten to anonymous `?` (SQLite reads `?` positionally; PostgreSQL
/// never sees this form, see [`Store::sql`]). SQLite looks named parameters
/// up by a linear scan, which made large multi-row statements quadratic.
pub(crate) fn dynamic(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_owned())
}

impl Store {
    /// [`dynamic`], with `$N` turned into `?` on SQLite when that is exact.
    pub(crate) fn sql(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        match self.backend() {
            Backend::Sqlite => sqlx::AssertSqlSafe(positional(sql).unwrap_or_else(|| sql.to_owned())),
            Backend::Postgres => dynamic(sql),
        }
    }
}

/// `$1 … $k` in order, each once → `?`; otherwise `None`.
fn positional(sql: &str) -> Option<String> {
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1usize;
    let mut rest = sql;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let digits: String = rest[pos + 1..].chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || digits.parse::<usize>().ok()? != expected {
            return None;
        }
        expected += 1;
        out.push('?');
        rest = &rest[pos + 1 + digits.len()..];
    }
    out.push_str(rest);
    Some(out)
}

/// `n` rows of typed, named columns as `SELECT … UNION ALL SELECT …`, with
/// numbered placeholders. PostgreSQL cannot infer parameter types inside a
/// bare VALUES list, and SQLite cannot name VALUES columns; this form works
/// in both. Each row also gets `<r> AS ord`, its position, for ordering.
/// SQLite allows at most 500 terms in one compound SELECT.
pub(crate) fn typed_rows(n: usize, columns: &[(&str, &str)]) -> String {
    let k = columns.len();
    (0..n)
        .map(|r| {
            let cols: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(c, (name, ty))| format!("CAST(${} AS {ty}) AS {name}", r * k + c + 1))
                .collect();
            format!("SELECT {}, {r} AS ord", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// `$first, $first+1, …` for `n` values: an IN list for either backend.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sequential_placeholders_become_anonymous() {
        assert_eq!(
            super::positional("a = $1 AND b IN ($2, $3)").as_deref(),
            Some("a = ? AND b IN (?, ?)")
        );
        assert_eq!(super::positional("a = $1 OR b = $1"), None);
        assert_eq!(super::positional("a = $2"), None);
        assert_eq!(super::positional("x").as_deref(), Some("x"));
    }

    #[test]
    fn typed_rows_number_across_rows() {
        let sql = super::typed_rows(2, &[("id", "TEXT"), ("at", "BIGINT")]);
        assert_eq!(
            sql,
            "SELECT CAST($1 AS TEXT) AS id, CAST($2 AS BIGINT) AS at, 0 AS ord UNION ALL SELECT CAST($3 AS TEXT) AS id, CAST($4 AS BIGINT) AS at, 1 AS ord"
        );
    }

    #[test]
    fn placeholders_number_from_first() {
        assert_eq!(super::placeholders(3, 3), "$3, $4, $5");
        assert_eq!(super::placeholders(1, 0), "");
    }
}

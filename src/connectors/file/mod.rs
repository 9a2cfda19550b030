//! The `file` connector kind: a drop folder for batch exchange with
//! departments that send files (CSV, JSON lines or XML), not requests.
//!
//! Each file is taken exactly once: it is renamed into `processing/`
//! (atomic on one file system), its SHA-256 recorded in `inbound_files`,
//! its records submitted one by one through the [`Sink`] (mapping, checks,
//! commit), and it is moved to `done/` when every record is committed or to
//! `failed/` with `<name>.reason.txt` when any record is refused. A transient
//! refusal (backlog full, shutting down, hub failure) leaves the file in
//! `processing/` to be resumed; so does a crash. Resuming submits the file
//! again from its first record: the hub drops records it already committed
//! by (source, id), so nothing is duplicated as long as the mapping's ids
//! are stable. Spec: `docs/connectors/file.md`.
//!
//! This module owns the loop and the outcome of a file; [`folder`] the disk,
//! [`read`] the records. It never writes SQL (the store does) and reaches
//! nothing but its own folder.

pub mod folder;
pub mod read;

use std::fmt::Write as _;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::folder::{Folder, Place, Watch};
use self::read::{BadRecord, Origin};
use super::Receiver;
use crate::config::ConnectorConfig;
use crate::config::file::FileConfig;
use crate::ingest::sink::{Sink, describe, is_transient};
use crate::model::{millis_to_rfc3339, now_millis};
use crate::store::{FileOutcome, FileStart, Store, StoreError};
use crate::telemetry;

/// Why a file could not be worked on now (it stays where it is).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The folder or a file in it.
    #[error("{path}: {source}")]
    Io {
        /// What was being touched.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task died.
    #[error("reading task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A running drop-folder receiver.
pub struct FileConnector {
    name: String,
    cfg: FileConfig,
    folder: Folder,
    sink: Sink,
    store: Store,
}

/// What became of one file.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Moved to `done/` or `failed/`.
    Finished,
    /// Kept in `processing/`: try again after this long.
    Stalled(Duration),
    /// Stop was asked for in the middle; kept in `processing/`.
    Stopped,
}

/// The receiver task for a `file` connector, `None` for other kinds.
pub fn receiver(cfg: &ConnectorConfig, sink: Sink, stop: CancellationToken, store: Store) -> Option<Receiver> {
    let file = cfg.file_drop.clone()?;
    let connector = FileConnector::new(&cfg.name, file, sink, store);
    Some(Box::pin(connector.run(stop)))
}

impl FileConnector {
    /// A receiver for connector `name` (not started).
    pub fn new(name: &str, cfg: FileConfig, sink: Sink, store: Store) -> Self {
        Self {
            name: name.to_string(),
            folder: Folder::new(cfg.resolved_dir.clone()),
            cfg,
            sink,
            store,
        }
    }

    /// The drop folder can be listed and written (its sub-folders are
    /// created when missing). Checked before every look at the folder.
    pub async fn healthcheck(&self) -> Result<(), FileError> {
        let folder = self.folder.clone();
        tokio::task::spawn_blocking(move || folder.healthcheck().map_err(io(folder.root()))).await?
    }

    /// Watches the folder until `stop` fires.
    pub async fn run(self, stop: CancellationToken) {
        let poll = self.cfg.poll_interval.0;
        let mut watch = Watch::default();
        let mut healthy: Option<bool> = None;
        let reporter = self.sink.health();
        tracing::info!(connector = %self.name, dir = %self.folder.root().display(), "Watching the drop folder.");
        loop {
            let mut wait = poll;
            let health = self.healthcheck().await;
            metrics::gauge!(telemetry::FILE_FOLDER_UP, telemetry::LABEL_CONNECTOR => self.name.clone()).set(if health.is_ok() {
                1.0
            } else {
                0.0
            });
            match (&health, healthy) {
                (Err(e), Some(true) | None) => {
                    tracing::error!(connector = %self.name, error = %e, "The drop folder cannot be used; files wait.");
                }
                (Ok(()), Some(false)) => tracing::info!(connector = %self.name, "The drop folder is usable again."),
                _ => {}
            }
            healthy = Some(health.is_ok());
            match &health {
                Ok(()) => reporter.up("the drop folder can be listed and written"),
                Err(e) => reporter.down(format!("the drop folder cannot be used: {e}")),
            }
            if health.is_ok() {
                match self.pass(&mut watch, &stop).await {
                    Ok(Some(Step::Stopped)) => break,
                    Ok(Some(Step::Stalled(after))) => wait = after,
                    Ok(Some(Step::Finished) | None) => {}
                    Err(e) => tracing::warn!(connector = %self.name, error = %e, "Looking at the drop folder failed; will retry."),
                }
                // A file that has not settled yet is looked at again as soon
                // as it may have.
                if let Ok((_, Some(next))) = self.settled_names(&mut watch).await {
                    wait = wait.min(next + Duration::from_millis(10));
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        reporter.unknown("the receiver has stopped");
    }

    async fn settled_names(&self, watch: &mut Watch) -> Result<(Vec<String>, Option<Duration>), FileError> {
        let (folder, pattern, settle) = (self.folder.clone(), self.cfg.pattern.clone(), self.cfg.settle.0);
        let mut w = std::mem::take(watch);
        let (result, w) = tokio::task::spawn_blocking(move || {
            let r = folder.settled(&mut w, &pattern, settle).map_err(io(folder.root()));
            (r, w)
        })
        .await?;
        *watch = w;
        result
    }

    /// One look at the folder: first what is left in `processing/` (a crash,
    /// a stop, a transient refusal), then every settled new file, in name
    /// order. Stops at the first file that cannot be finished now, so files
    /// are finished in the order they were taken.
    async fn pass(&self, watch: &mut Watch, stop: &CancellationToken) -> Result<Option<Step>, FileError> {
        let processing = self.folder.dir(Place::Processing);
        for name in self.folder.list(Place::Processing).map_err(io(&processing))? {
            match self.process(&name, stop).await? {
                Step::Finished => {}
                other => return Ok(Some(other)),
            }
        }
        let (ready, _) = self.settled_names(watch).await?;
        let mut last = None;
        for name in ready {
            if stop.is_cancelled() {
                return Ok(Some(Step::Stopped));
            }
            if !self.folder.take(&name).map_err(io(self.folder.root()))? {
                continue;
            }
            metrics::counter!(telemetry::FILE_FILES_TOTAL, telemetry::LABEL_CONNECTOR => self.name.clone(), telemetry::LABEL_OUTCOME => "taken").increment(1);
            tracing::info!(connector = %self.name, file = %name, "Took a file from the drop folder.");
            match self.process(&name, stop).await? {
                Step::Finished => last = Some(Step::Finished),
                other => return Ok(Some(other)),
            }
        }
        Ok(last)
    }

    /// Works on `processing/<name>` until it is finished, stalls or stop is asked.
    async fn process(&self, name: &str, stop: &CancellationToken) -> Result<Step, FileError> {
        let path = self.folder.dir(Place::Processing).join(name);
        let p = path.clone();
        let (size, sha256) = tokio::task::spawn_blocking(move || folder::checksum(&p))
            .await?
            .map_err(io(&path))?;
        let size_i = i64::try_from(size).unwrap_or(i64::MAX);
        let now = now_millis();
        if size > self.cfg.max_file.0 {
            let reason = format!(
                "file: {name}\nsha256: {sha256}\nsize: {size} bytes\n\nThe file is larger than max_file ({} bytes); nothing was submitted.\n",
                self.cfg.max_file.0
            );
            let outcome = FileOutcome {
                status: "failed",
                reason: Some(&reason),
                records: 0,
                committed: 0,
                refused: 0,
            };
            self.store.record_file(&self.name, name, &sha256, size_i, &outcome, now).await?;
            return self.finish(name, Place::Failed, Some(("reason", &reason)), 0, 0);
        }
        let id = match self.store.begin_file(&self.name, name, &sha256, size_i, now).await? {
            FileStart::New(id) | FileStart::Resumed(id) => id,
            FileStart::Duplicate {
                name: earlier,
                finished_at,
            } => {
                let note = format!(
                    "file: {name}\nsha256: {sha256}\n\nThe same content was processed as {earlier} at {}; it was not submitted again.\n",
                    millis_to_rfc3339(finished_at)
                );
                let outcome = FileOutcome {
                    status: "duplicate",
                    reason: Some(&note),
                    records: 0,
                    committed: 0,
                    refused: 0,
                };
                self.store.record_file(&self.name, name, &sha256, size_i, &outcome, now).await?;
                tracing::info!(connector = %self.name, file = %name, earlier = %earlier, "A file already processed was dropped again; not submitted.");
                return self.finish(name, Place::Done, Some(("duplicate", &note)), 0, 0);
            }
        };
        let bytes = tokio::fs::read(&path).await.map_err(io(&path))?;
        let (format, encoding) = (self.cfg.format, self.cfg.text_encoding().unwrap_or(encoding_rs::UTF_8));
        let (file_name, sum) = (name.to_string(), sha256.clone());
        let read = tokio::task::spawn_blocking(move || {
            read::records(
                format,
                encoding,
                &bytes,
                Origin {
                    name: &file_name,
                    sha256: &sum,
                },
            )
        })
        .await?;
        let items = match read {
            Ok(items) => items,
            Err(e) => {
                let reason =
                    format!("file: {name}\nsha256: {sha256}\nsize: {size} bytes\n\nThe file cannot be read; nothing was submitted.\n{e}\n");
                let outcome = FileOutcome {
                    status: "failed",
                    reason: Some(&reason),
                    records: 0,
                    committed: 0,
                    refused: 0,
                };
                self.store.finish_file(&id, &outcome, now_millis()).await?;
                return self.finish(name, Place::Failed, Some(("reason", &reason)), 0, 0);
            }
        };
        let mut committed = 0u64;
        let mut refused: Vec<BadRecord> = Vec::new();
        for item in &items {
            if stop.is_cancelled() {
                return Ok(Step::Stopped);
            }
            let record = match item {
                Ok(r) => r,
                Err(bad) => {
                    refused.push(bad.clone());
                    continue;
                }
            };
            match self.sink.document(&self.cfg.message_type, &record.body).await {
                Ok(_) => committed += 1,
                Err(e) if is_transient(&e) => {
                    let after = e
                        .retry_after
                        .unwrap_or_default()
                        .clamp(self.cfg.poll_interval.0, Duration::from_secs(300));
                    tracing::warn!(
                        connector = %self.name, file = %name, line = record.line, status = e.status.as_u16(), error = %e.detail,
                        "The hub cannot take the file's records now; the file stays in processing/ and is resumed later."
                    );
                    self.count_records(committed, refused.len() as u64);
                    return Ok(Step::Stalled(after));
                }
                Err(e) => refused.push(BadRecord {
                    line: record.line,
                    message: describe(&e),
                }),
            }
        }
        let total = items.len() as i64;
        let (n_ok, n_bad) = (committed as i64, refused.len() as i64);
        if refused.is_empty() {
            let outcome = FileOutcome {
                status: "done",
                reason: None,
                records: total,
                committed: n_ok,
                refused: 0,
            };
            self.store.finish_file(&id, &outcome, now_millis()).await?;
            tracing::info!(connector = %self.name, file = %name, records = total, "Every record of the file is committed.");
            return self.finish(name, Place::Done, None, committed, 0);
        }
        let mut reason = format!(
            "file: {name}\nsha256: {sha256}\nsize: {size} bytes\nfinished: {}\nrecords: {total}, committed: {n_ok}, refused: {n_bad}\n\n\
             The committed records stay committed; fix the refused rows and drop a file with them (a record\n\
             already committed is recognised by its id and not taken twice).\n\n",
            millis_to_rfc3339(now_millis())
        );
        for bad in &refused {
            let _ = writeln!(reason, "line {}: {}", bad.line, bad.message);
        }
        let outcome = FileOutcome {
            status: "failed",
            reason: Some(&reason),
            records: total,
            committed: n_ok,
            refused: n_bad,
        };
        self.store.finish_file(&id, &outcome, now_millis()).await?;
        tracing::warn!(connector = %self.name, file = %name, refused = n_bad, committed = n_ok, "Records of the file were refused; it goes to failed/.");
        self.finish(name, Place::Failed, Some(("reason", &reason)), committed, refused.len() as u64)
    }

    /// Moves the file out of `processing/` (after its row is written, so a
    /// crash in between finds the row and finishes the move) and counts.
    fn finish(&self, name: &str, place: Place, note: Option<(&str, &str)>, committed: u64, refused: u64) -> Result<Step, FileError> {
        self.folder.finish(name, place, note).map_err(io(&self.folder.dir(place)))?;
        let outcome = match (place, note) {
            (Place::Done, Some(_)) => "duplicate",
            (Place::Done, None) => "done",
            _ => "failed",
        };
        metrics::counter!(telemetry::FILE_FILES_TOTAL, telemetry::LABEL_CONNECTOR => self.name.clone(), telemetry::LABEL_OUTCOME => outcome).increment(1);
        self.count_records(committed, refused);
        Ok(Step::Finished)
    }

    fn count_records(&self, committed: u64, refused: u64) {
        for (outcome, n) in [("committed", committed), ("refused", refused)] {
            if n > 0 {
                metrics::counter!(telemetry::FILE_RECORDS_TOTAL, telemetry::LABEL_CONNECTOR => self.name.clone(), telemetry::LABEL_OUTCOME => outcome).increment(n);
            }
        }
    }
}

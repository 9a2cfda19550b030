//! The drop folder on disk: its sub-folders (`processing/`, `done/`,
//! `failed/`), the healthcheck, which files have settled, and moves that
//! never overwrite. Every move is a `rename` within one file system, so a
//! file is in exactly one place at any instant.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::read::glob_match;

/// Where a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// `processing/`: taken, not finished.
    Processing,
    /// `done/`: every record committed (or a duplicate).
    Done,
    /// `failed/`: refused, with `<name>.reason.txt`.
    Failed,
}

impl Place {
    fn dir_name(self) -> &'static str {
        match self {
            Place::Processing => "processing",
            Place::Done => "done",
            Place::Failed => "failed",
        }
    }
}

/// One drop folder.
#[derive(Clone, Debug)]
pub struct Folder {
    root: PathBuf,
}

/// What a file looked like when last seen, and since when.
#[derive(Clone, Copy, Debug)]
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

/// Files of the drop folder seen so far, for the settle rule.
#[derive(Debug, Default)]
pub struct Watch {
    seen: HashMap<String, Seen>,
}

impl Folder {
    /// The folder at `root` (not created yet).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The drop folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A sub-folder.
    pub fn dir(&self, place: Place) -> PathBuf {
        self.root.join(place.dir_name())
    }

    /// Creates the folders, reads the drop folder and writes and removes a
    /// probe file in `processing/`: the folder is usable.
    pub fn healthcheck(&self) -> std::io::Result<()> {
        for place in [Place::Processing, Place::Done, Place::Failed] {
            std::fs::create_dir_all(self.dir(place))?;
        }
        std::fs::read_dir(&self.root)?.next().transpose()?;
        let probe = self.dir(Place::Processing).join(format!(".wastehub-probe-{}", std::process::id()));
        std::fs::write(&probe, b"probe")?;
        std::fs::remove_file(&probe)
    }

    /// Names of the files in `place`, sorted (hidden files left out).
    pub fn list(&self, place: Place) -> std::io::Result<Vec<String>> {
        let mut names = files_in(&self.dir(place))?;
        names.sort();
        Ok(names)
    }

    /// The files of the drop folder matching `pattern` that have kept their
    /// size and modification time for `settle`, oldest name first; also how
    /// long until the next unsettled file may settle.
    pub fn settled(&self, watch: &mut Watch, pattern: &str, settle: Duration) -> std::io::Result<(Vec<String>, Option<Duration>)> {
        let now = Instant::now();
        let mut ready = Vec::new();
        let mut next: Option<Duration> = None;
        let mut present = HashMap::new();
        for name in files_in(&self.root)? {
            if !glob_match(pattern, &name) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(self.root.join(&name)) else {
                continue;
            };
            let (size, modified) = (meta.len(), meta.modified().ok());
            let seen = match watch.seen.get(&name) {
                Some(s) if s.size == size && s.modified == modified => *s,
                _ => Seen {
                    size,
                    modified,
                    since: now,
                },
            };
            let waited = now.duration_since(seen.since);
            if waited >= settle {
                ready.push(name.clone());
            } else {
                let left = settle - waited;
                next = Some(next.map_or(left, |n: Duration| n.min(left)));
            }
            present.insert(name, seen);
        }
        watch.seen = present;
        ready.sort();
        Ok((ready, next))
    }

    /// Moves `name` from the drop folder into `processing/`. `Ok(false)`
    /// when it is gone (another process took it) or a file of that name is
    /// still being processed.
    pub fn take(&self, name: &str) -> std::io::Result<bool> {
        let to = self.dir(Place::Processing).join(name);
        if to.exists() {
            return Ok(false);
        }
        match std::fs::rename(self.root.join(name), to) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves `processing/<name>` to `place` under a free name (`a.csv`,
    /// then `a.1.csv`, `a.2.csv`, …) and writes `<that name>.<note_kind>.txt`
    /// beside it when a note is given. Returns the new path.
    pub fn finish(&self, name: &str, place: Place, note: Option<(&str, &str)>) -> std::io::Result<PathBuf> {
        let dir = self.dir(place);
        let to = free_name(&dir, name);
        if let Some((kind, text)) = note {
            let file = to.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            std::fs::write(dir.join(format!("{file}.{kind}.txt")), text)?;
        }
        std::fs::rename(self.dir(Place::Processing).join(name), &to)?;
        Ok(to)
    }
}

fn files_in(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        // Names that are not UTF-8 cannot be matched or recorded; they stay.
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.starts_with('.') {
            continue;
        }
        out.push(name);
    }
    Ok(out)
}

fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (1..)
        .map(|n| dir.join(format!("{stem}.{n}{ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Size and hex SHA-256 of a file, read in pieces (a file over `max_file`
/// is hashed without being held in memory).
pub fn checksum(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_taken_only_after_it_settles() {
        let d = tempfile::tempdir().unwrap();
        let folder = Folder::new(d.path().to_path_buf());
        folder.healthcheck().unwrap();
        std::fs::write(d.path().join("a.csv"), "x").unwrap();
        std::fs::write(d.path().join(".hidden.csv"), "x").unwrap();
        std::fs::write(d.path().join("b.txt"), "x").unwrap();
        let mut watch = Watch::default();
        let settle = Duration::from_millis(150);
        let (ready, next) = folder.settled(&mut watch, "*.csv", settle).unwrap();
        assert!(ready.is_empty() && next.is_some());
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(d.path().join("a.csv"), "xy").unwrap();
        let (ready, _) = folder.settled(&mut watch, "*.csv", settle).unwrap();
        assert!(ready.is_empty(), "it grew, so the wait starts again");
        std::thread::sleep(Duration::from_millis(200));
        let (ready, _) = folder.settled(&mut watch, "*.csv", settle).unwrap();
        assert_eq!(ready, vec!["a.csv".to_string()]);
    }

    #[test]
    fn finishing_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let folder = Folder::new(d.path().to_path_buf());
        folder.healthcheck().unwrap();
        for n in 0..3 {
            std::fs::write(d.path().join("a.csv"), format!("{n}")).unwrap();
            assert!(folder.take("a.csv").unwrap());
            assert!(!folder.take("a.csv").unwrap(), "gone");
            folder.finish("a.csv", Place::Failed, Some(("reason", "why"))).unwrap();
        }
        let mut names = folder.list(Place::Failed).unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "a.1.csv",
                "a.1.csv.reason.txt",
                "a.2.csv",
                "a.2.csv.reason.txt",
                "a.csv",
                "a.csv.reason.txt"
            ]
        );
    }
}

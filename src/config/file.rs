//! `[file]`: the settings of a `file` (drop folder) connector, and the
//! per-file rules the types cannot express. The receiver lives in
//! `connectors::file`; nothing here touches the folder beyond looking at it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::connector::{ConnectorConfig, ConnectorKind};
use super::units::{ByteSize, HumanDuration};

/// How the files of a drop folder hold their records.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One record per row; the header row names the keys. Each row becomes
    /// a flat JSON object `{column: value}` for the partner's JSON mapping.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// One XML document per file, read by the partner's XML mapping.
    Xml,
}

/// `[file]` of a `kind = "file"` connector.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The drop folder, relative to the config directory unless absolute.
    pub dir: PathBuf,
    /// Canonical message type of the records (the partner needs an inbound
    /// mapping for it).
    #[serde(rename = "type")]
    pub message_type: String,
    /// How a file holds its records.
    pub format: FileFormat,
    /// Glob of the file names to take (`*` any run, `?` one character).
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// How often the folder is looked at.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// How long a file must keep its size and modification time before it
    /// is taken (so a half-written file is not read).
    #[serde(default = "default_settle")]
    pub settle: HumanDuration,
    /// Largest file taken; a larger one goes to `failed/`.
    #[serde(default = "default_max_file")]
    pub max_file: ByteSize,
    /// Character encoding of CSV and JSON-lines files (`UTF-8`, `GBK`,
    /// `GB18030`, any WHATWG label). XML files declare their own.
    #[serde(default)]
    pub encoding: Option<String>,
    /// `dir` resolved against the config directory (set by the loader).
    #[serde(skip)]
    pub resolved_dir: PathBuf,
}

fn default_pattern() -> String {
    "*".into()
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}
fn default_settle() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2))
}
fn default_max_file() -> ByteSize {
    ByteSize(16 * 1024 * 1024)
}

impl FileConfig {
    /// The encoding of CSV and JSON-lines files (UTF-8 when not set).
    pub fn text_encoding(&self) -> Option<&'static encoding_rs::Encoding> {
        match &self.encoding {
            None => Some(encoding_rs::UTF_8),
            Some(label) => encoding_rs::Encoding::for_label(label.trim().as_bytes()),
        }
    }

    /// Resolves `dir` against the config directory `root`.
    pub fn resolve(&mut self, root: &Path) {
        self.resolved_dir = if self.dir.is_absolute() {
            self.dir.clone()
        } else {
            root.join(&self.dir)
        };
    }
}

/// The rules of the `[file]` table and its pairing with `kind`: each
/// problem as (key, message), for the loader to place at its line.
pub fn check(c: &ConnectorConfig) -> Vec<(&'static str, String)> {
    let mut bad = Vec::new();
    let Some(f) = &c.file_drop else {
        if c.kind == ConnectorKind::File {
            bad.push(("kind", "kind \"file\" needs a [file] table (dir, type, format)".to_string()));
        }
        return bad;
    };
    if c.kind != ConnectorKind::File {
        bad.push(("file", "a [file] table is only for kind = \"file\"".into()));
        return bad;
    }
    if c.outbound.is_some() {
        bad.push(("outbound", "a file connector only receives: it has no [outbound] side".into()));
    }
    match &c.inbound {
        None => bad.push(("kind", "a file connector needs an [inbound] section (sources, mappings)".into())),
        Some(inb) if !inb.mappings.contains_key(&f.message_type) => bad.push((
            "type",
            format!(
                "type {:?} has no inbound mapping: name one under [inbound.mappings]",
                f.message_type
            ),
        )),
        Some(_) => {}
    }
    if f.message_type.is_empty() {
        bad.push(("type", "file.type must name a message type".into()));
    }
    if f.pattern.is_empty() || f.pattern.contains('/') || f.pattern.contains('\\') {
        bad.push(("pattern", format!("pattern {:?} must be a non-empty file-name glob", f.pattern)));
    }
    if f.poll_interval.0.is_zero() {
        bad.push(("poll_interval", "poll_interval must be more than 0".into()));
    }
    if f.max_file.0 == 0 {
        bad.push(("max_file", "max_file must be more than 0".into()));
    }
    match (&f.encoding, f.format) {
        (Some(_), FileFormat::Xml) => bad.push((
            "encoding",
            "encoding is for csv and jsonl files; an XML file declares its own".into(),
        )),
        (Some(e), _) if f.text_encoding().is_none() => {
            bad.push(("encoding", format!("encoding {e:?} is not known (UTF-8, GBK, GB18030, …)")));
        }
        _ => {}
    }
    if let Err(msg) = check_dir(&f.resolved_dir) {
        bad.push(("dir", msg));
    }
    bad
}

/// The folder exists as a folder, or the nearest existing ancestor is a
/// folder it can be created in (the receiver creates it at start).
fn check_dir(dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err("file.dir must name a folder".into());
    }
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() && m.permissions().readonly() => {
                return Err(format!("{} is read-only, so the drop folder cannot be used", p.display()));
            }
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(format!("{} is not a folder", p.display())),
            Err(_) => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => p = parent,
                _ => return Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    fn load(connector: &str) -> String {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("connectors")).unwrap();
        std::fs::write(d.path().join("wastehub.toml"), "").unwrap();
        std::fs::write(d.path().join("connectors/reg.toml"), connector).unwrap();
        crate::config::load_with(d.path(), &BTreeMap::new())
            .map(|l| {
                let f = l.connectors[0].file_drop.as_ref().unwrap();
                assert!(f.resolved_dir.starts_with(d.path()), "relative to the config dir");
                String::new()
            })
            .unwrap_or_else(|e| e.to_string())
    }

    const HEAD: &str =
        "name = \"reg\"\nkind = \"file\"\n[inbound]\nsources = [\"urn:reg\"]\n[inbound.mappings]\n\"enterprise-registration\" = \"m/in\"\n";

    #[test]
    fn a_complete_file_connector_loads() {
        let m = load(&format!(
            "{HEAD}[file]\ndir = \"data/drop\"\ntype = \"enterprise-registration\"\nformat = \"csv\"\nencoding = \"GBK\"\n"
        ));
        assert_eq!(m, "");
    }

    #[test]
    fn kind_and_table_go_together() {
        let m = load(HEAD);
        assert!(m.contains("reg.toml:2:") && m.contains("needs a [file] table"), "{m}");
        let m = load("name = \"reg\"\nkind = \"http_json\"\n[file]\ndir = \"d\"\ntype = \"t\"\nformat = \"csv\"\n");
        assert!(m.contains("reg.toml:3:") && m.contains("only for kind = \"file\""), "{m}");
    }

    #[test]
    fn each_bad_value_is_reported_at_its_line() {
        let m = load(&format!(
            "{HEAD}[file]\ndir = \"d\"\ntype = \"ledger-entry\"\nformat = \"xml\"\npoll_interval = \"0s\"\nencoding = \"GBK\"\npattern = \"a/b\"\n"
        ));
        assert!(m.contains("reg.toml:9:") && m.contains("has no inbound mapping"), "{m}");
        assert!(m.contains("reg.toml:11:") && m.contains("poll_interval"), "{m}");
        assert!(m.contains("reg.toml:12:") && m.contains("declares its own"), "{m}");
        assert!(m.contains("reg.toml:13:") && m.contains("file-name glob"), "{m}");
        let m = load(&format!(
            "{HEAD}[file]\ndir = \"d\"\ntype = \"enterprise-registration\"\nformat = \"csv\"\nencoding = \"klingon\"\n"
        ));
        assert!(m.contains("reg.toml:11:") && m.contains("not known"), "{m}");
        let m = load(&format!(
            "{HEAD}[file]\ndir = \"d\"\ntype = \"enterprise-registration\"\nformat = \"pdf\"\n"
        ));
        assert!(m.contains("reg.toml:10:"), "{m}");
    }

    #[test]
    fn the_folder_must_be_a_folder_and_outbound_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let m = load(&format!(
            "{HEAD}[outbound]\nurl = \"http://127.0.0.1:1/\"\n[file]\ndir = \"{}/sub\"\ntype = \"enterprise-registration\"\nformat = \"csv\"\n",
            f.path().display()
        ));
        assert!(m.contains("reg.toml:7:") && m.contains("only receives"), "{m}");
        assert!(m.contains("reg.toml:10:") && m.contains("is not a folder"), "{m}");
    }
}

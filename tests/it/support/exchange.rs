//! Contract example exchanges: `contracts/<partner>/examples/<NN-name>/exchange.toml`
//! and the files it names (format: `docs/contracts.md`). This module reads
//! and checks them; `tests/it/contracts.rs` replays them. Every problem is
//! reported with the file it is in (and the line, when the TOML reader
//! knows it), all at once.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// Which way an exchange goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// The hub sends to the partner.
    ToPartner,
    /// The partner sends to the hub.
    FromPartner,
}

/// How a from-partner wire reaches the hub.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// `POST /api/v1/documents/{type}`, or `/api/v1/messages` for a CloudEvent.
    #[default]
    Http,
    /// A page the hub fetches (`poll` connector kind).
    Poll,
    /// An MQTT payload.
    Mqtt,
    /// A file dropped into the connector's folder.
    File,
}

impl Channel {
    /// The name used in `exchange.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Poll => "poll",
            Self::Mqtt => "mqtt",
            Self::File => "file",
        }
    }
}

/// A call to the partner's simulator before the exchange (`[[setup]]`), to
/// put it in the state the example needs (an outage, a busy platform).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// The path on the contract's simulator to `POST` to (`/_sim/outage`).
    pub post: String,
    /// The JSON body (written as a TOML table); `{}` when absent.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// What the hub records for a to-partner exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Delivered, with a receipt.
    Delivered,
    /// Dead: a permanent refusal.
    Dead,
    /// Retried later: a temporary refusal.
    Retried,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    description: String,
    direction: Direction,
    #[serde(rename = "type")]
    message_type: Option<String>,
    canonical: Option<String>,
    wire: String,
    answer: Option<String>,
    outcome: Option<Outcome>,
    channel: Option<Channel>,
    #[serde(default)]
    ignore: Vec<String>,
    topic: Option<String>,
    #[serde(default)]
    setup: Vec<Setup>,
    #[serde(default)]
    before: Vec<String>,
    #[serde(default)]
    answer_ignore: Vec<String>,
}

/// One example exchange, checked.
#[derive(Clone, Debug)]
pub struct Example {
    /// The contract folder (`contracts/<partner>`): the partner's connector name.
    pub partner: String,
    /// The example folder's name (`01-manifest-created`).
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Which way it goes.
    pub direction: Direction,
    /// The canonical message type (absent only in an answer-only example).
    pub message_type: Option<String>,
    /// The canonical event (or a JSON array of events): what the hub accepts
    /// (to-partner) or must store (from-partner).
    pub canonical: Option<PathBuf>,
    /// What travels on the wire.
    pub wire: PathBuf,
    /// The partner's answer.
    pub answer: Option<PathBuf>,
    /// What the hub records (to-partner).
    pub outcome: Option<Outcome>,
    /// How a from-partner wire arrives.
    pub channel: Channel,
    /// JSON Pointers (XML: element paths, `@attribute` last) whose values
    /// are assigned per run and not compared.
    pub ignore: Vec<String>,
    /// The MQTT topic the payload is published on (`channel = "mqtt"`).
    pub topic: Option<String>,
    /// Simulator calls made before the exchange, in order.
    pub setup: Vec<Setup>,
    /// Canonical events posted to the hub before the exchange, in order, each
    /// as the connector that owns its source (the earlier steps of a
    /// workflow the example's message needs).
    pub before: Vec<PathBuf>,
    /// JSON Pointers in `answer` whose values are assigned per run.
    pub answer_ignore: Vec<String>,
}

impl Example {
    /// `<partner>/<name>`, as reported.
    pub fn id(&self) -> String {
        format!("{}/{}", self.partner, self.name)
    }

    /// A to-partner example without a canonical event: its wire is sent to
    /// the partner's simulator directly.
    pub fn is_answer_only(&self) -> bool {
        self.direction == Direction::ToPartner && self.canonical.is_none()
    }
}

/// Whether `path` is a raw HTTP message (`.http`: start line, headers, an
/// empty line, the body), not a bare body.
pub fn is_raw_http(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "http")
}

/// Reads and checks `file` (an `exchange.toml`) of contract `partner`.
pub fn parse(file: &Path, partner: &str) -> Result<Example, Vec<String>> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    let raw: Raw = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        vec![match line {
            Some(l) => format!("{shown}:{l}: {}", e.message().trim()),
            None => format!("{shown}: {}", e.message().trim()),
        }]
    })?;
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut errors = Vec::new();
    let mut bad = |msg: String| errors.push(format!("{shown}: {msg}"));
    let mut named = |key: &str, value: &Option<String>| -> Option<PathBuf> {
        let v = value.as_ref()?;
        let p = Path::new(v);
        if v.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
            bad(format!("{key} = {v:?} must name a file in the example's folder"));
            return None;
        }
        let full = dir.join(p);
        if !full.is_file() {
            bad(format!("{key} = {v:?}: there is no such file beside exchange.toml"));
        }
        Some(full)
    };
    let canonical = named("canonical", &raw.canonical);
    let wire = named("wire", &Some(raw.wire.clone()));
    let answer = named("answer", &raw.answer);
    let before: Vec<PathBuf> = raw.before.iter().filter_map(|b| named("before", &Some(b.clone()))).collect();
    if raw.description.trim().is_empty() {
        bad("description must say what the exchange shows".into());
    }
    match raw.direction {
        Direction::ToPartner => {
            if raw.outcome.is_none() {
                bad("a to-partner exchange needs outcome = \"delivered\" | \"dead\" | \"retried\"".into());
            }
            if raw.channel.is_some() {
                bad("channel is for from-partner exchanges".into());
            }
            if raw.canonical.is_none() && raw.answer.is_none() {
                bad("an answer-only exchange (no canonical) needs an answer".into());
            }
            if raw.canonical.is_some() && raw.message_type.is_none() {
                bad("type names the canonical message type".into());
            }
        }
        Direction::FromPartner => {
            if raw.canonical.is_none() {
                bad("a from-partner exchange needs canonical: the event the hub must store".into());
            }
            if raw.message_type.is_none() {
                bad("type names the canonical message type".into());
            }
            if raw.outcome.is_some() || raw.answer.is_some() {
                bad("outcome and answer are for to-partner exchanges".into());
            }
        }
    }
    for p in raw.ignore.iter().chain(&raw.answer_ignore) {
        if !p.starts_with('/') {
            bad(format!("ignore entry {p:?} must be a path starting with '/'"));
        }
    }
    if !raw.answer_ignore.is_empty() && raw.answer.is_none() {
        bad("answer_ignore names paths in the answer: give answer".into());
    }
    if !raw.before.is_empty() && raw.direction == Direction::ToPartner && raw.canonical.is_none() {
        bad("before is for exchanges through the hub (a canonical event), not answer-only ones".into());
    }
    if raw.topic.is_some() && raw.channel != Some(Channel::Mqtt) {
        bad("topic is for channel = \"mqtt\" exchanges".into());
    }
    if raw.topic.is_none() && raw.channel == Some(Channel::Mqtt) {
        bad("an mqtt exchange needs topic: the topic the partner publishes the payload on".into());
    }
    if let Some(t) = &raw.topic
        && (t.is_empty() || t.contains(['+', '#']))
    {
        bad(format!("topic {t:?} must be a topic name, without wildcards"));
    }
    for s in &raw.setup {
        if !s.post.starts_with('/') {
            bad(format!(
                "setup post {:?} must be a path on the simulator, starting with '/'",
                s.post
            ));
        }
        if s.body.as_ref().is_some_and(|b| !b.is_object()) {
            bad(format!("setup post {:?}: body must be a table", s.post));
        }
    }
    if is_raw_http(Path::new(&raw.wire)) && !(raw.direction == Direction::ToPartner && raw.canonical.is_none()) {
        bad("a raw HTTP wire (.http) is for answer-only exchanges: the request sent to the partner".into());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Example {
        partner: partner.to_string(),
        name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        description: raw.description,
        direction: raw.direction,
        message_type: raw.message_type,
        canonical,
        wire: wire.unwrap_or_default(),
        answer,
        outcome: raw.outcome,
        channel: raw.channel.unwrap_or_default(),
        ignore: raw.ignore,
        topic: raw.topic,
        setup: raw.setup,
        before,
        answer_ignore: raw.answer_ignore,
    })
}

/// Every example under `contracts` (`<partner>/examples/<name>/exchange.toml`),
/// sorted by partner and name, or every problem found.
pub fn discover(contracts: &Path) -> Result<Vec<Example>, Vec<String>> {
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    for partner in sorted_dirs(contracts) {
        let folder = partner.join("examples");
        if !folder.is_dir() {
            continue;
        }
        let name = partner.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for example in sorted_dirs(&folder) {
            let file = example.join("exchange.toml");
            if !file.is_file() {
                errors.push(format!("{}: an example folder without exchange.toml", example.display()));
                continue;
            }
            match parse(&file, &name) {
                Ok(e) => examples.push(e),
                Err(e) => errors.extend(e),
            }
        }
    }
    if errors.is_empty() { Ok(examples) } else { Err(errors) }
}

/// The sub-folders of `dir`, by name.
pub fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

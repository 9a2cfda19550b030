//! Test helpers: a real hub on port 0 with a fresh database, fake partners,
//! sample events and bounded polling.

pub mod exchange;
pub mod fake_partner;
pub mod normalise;
pub mod registry;
pub mod samples;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wastehub::ingest::auth::generate_key;

pub use fake_partner::{FakePartner, Reply};

/// The repository root (shipped connectors, schemas).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `WASTEHUB_TEST_POSTGRES`, when set: the suite runs on PostgreSQL.
pub fn postgres_base() -> Option<String> {
    std::env::var("WASTEHUB_TEST_POSTGRES").ok().filter(|s| !s.is_empty())
}

/// Prints a loud line and returns true when PostgreSQL is not configured.
pub fn skip_without_postgres(test: &str) -> bool {
    if postgres_base().is_none() {
        // Written to the real stderr, not through `eprintln!`, which the test
        // harness captures for passing tests: a skip must be seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: set WASTEHUB_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres to run it (.ci/run does)"
        );
        return true;
    }
    false
}

/// A fresh database URL: a temp SQLite file, or a new PostgreSQL database.
pub async fn fresh_database(dir: &Path) -> String {
    match postgres_base() {
        None => format!("sqlite://{}", dir.join("hub.db").display()),
        Some(base) => create_pg_database(&base).await,
    }
}

/// Creates a uniquely named PostgreSQL database and returns its URL.
pub async fn create_pg_database(base: &str) -> String {
    use sqlx::Connection;
    let name = format!("wh_test_{}", ulid::Ulid::generate().to_string().to_lowercase());
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("PostgreSQL reachable at WASTEHUB_TEST_POSTGRES");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (head, _) = base.rsplit_once('/').expect("url has a database part");
    format!("{head}/{name}")
}

/// How to build a test hub.
pub struct HubSpec {
    /// Extra `wastehub.toml` text.
    pub config: String,
    /// Connector files (name, text); `{KEY_SHA256}` is replaced by the partner key digest.
    pub connectors: Vec<(String, String)>,
    /// Use this database instead of a fresh one.
    pub database: Option<String>,
    /// Environment for `${VAR}` in the connector files (the process
    /// environment is not read: tests run in parallel).
    pub env: std::collections::BTreeMap<String, String>,
}

impl HubSpec {
    /// A hub whose test partner `cell` (source `urn:test:cell`) may send.
    pub fn new() -> Self {
        let cell = "name = \"cell\"\nkind = \"http_json\"\n[inbound]\nsources = [\"urn:test:cell\"]\napi_key_sha256 = [\"{KEY_SHA256}\"]\n";
        Self {
            config: String::new(),
            connectors: vec![("cell".into(), cell.into())],
            database: None,
            env: Default::default(),
        }
    }

    /// Adds an outbound connector to `url` receiving `types`, with extra
    /// `[outbound]` lines.
    pub fn destination(mut self, name: &str, url: &str, types: &str, outbound_extra: &str) -> Self {
        let schedule = if outbound_extra.contains("retry_schedule") {
            ""
        } else {
            "retry_schedule = \"0s 200ms 400ms\"\n"
        };
        let text = format!(
            "name = \"{name}\"\nkind = \"http_json\"\n[outbound]\nurl = \"{url}\"\ntimeout = \"2s\"\n{schedule}jitter = 0.0\n{outbound_extra}\n[[routes]]\ntypes = [{types}]\n"
        );
        self.connectors.push((name.into(), text));
        self
    }

    /// Appends `wastehub.toml` text.
    pub fn config(mut self, text: &str) -> Self {
        self.config.push_str(text);
        self.config.push('\n');
        self
    }
}

/// A running hub.
pub struct TestApp {
    /// Base URL.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The `cell` partner's key.
    pub key: String,
    /// The operator token.
    pub operator: String,
    /// The database URL (to start a second process on it).
    pub database: String,
    /// The connectors as loaded (after `${VAR}` expansion).
    pub connectors: Vec<wastehub::config::ConnectorConfig>,
    /// The config directory (kept alive as long as the hub).
    _dir: tempfile::TempDir,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<Result<(), wastehub::app::AppError>>>,
}

impl TestApp {
    /// Writes the config directory and starts the hub in this process.
    pub async fn spawn(spec: HubSpec) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = match spec.database.clone() {
            Some(d) => d,
            None => fresh_database(dir.path()).await,
        };
        let (key, key_sha) = generate_key();
        let (operator, op_sha) = generate_key();
        Self::start_in(dir, database, key, key_sha, operator, op_sha, &spec).await
    }

    /// Starts another hub process (in this test process) on the same database
    /// and the same configuration as `self`.
    pub async fn sibling(&self, spec: &HubSpec) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_sha = wastehub::ingest::auth::sha256_hex(&self.key);
        let op_sha = wastehub::ingest::auth::sha256_hex(&self.operator);
        Self::start_in(
            dir,
            self.database.clone(),
            self.key.clone(),
            key_sha,
            self.operator.clone(),
            op_sha,
            spec,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_in(
        dir: tempfile::TempDir,
        database: String,
        key: String,
        key_sha: String,
        operator: String,
        op_sha: String,
        spec: &HubSpec,
    ) -> Self {
        write_config_dir(dir.path(), &database, &key_sha, &op_sha, spec);
        let loaded = wastehub::config::load_with(dir.path(), &spec.env).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let connectors = loaded.connectors.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(wastehub::run(loaded, listener, shutdown.clone()));
        let client = reqwest::Client::new();
        let mut app = Self {
            base,
            client,
            key,
            operator,
            database,
            connectors,
            _dir: dir,
            shutdown,
            handle: Some(handle),
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&mut self) {
        let ok = eventually(Duration::from_secs(20), || async {
            let finished = self.handle.as_ref().is_some_and(|h| h.is_finished());
            finished
                || self
                    .client
                    .get(format!("{}/readyz", self.base))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
        })
        .await;
        if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
            let r = self.handle.take().expect("handle").await;
            panic!("hub stopped during start: {r:?}");
        }
        assert!(ok, "hub did not become ready");
    }

    /// POSTs one event as the `cell` partner.
    pub async fn post(&self, event: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/messages", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string())
            .send()
            .await
            .expect("request")
    }

    /// POSTs an event and asserts 202; returns the hub message id.
    pub async fn accept(&self, event: &Value) -> String {
        let r = self.post(event).await;
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert_eq!(status, 202, "expected 202, got {status}: {body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// GET with the operator token; returns (status, JSON body).
    pub async fn op_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{}", self.base, path))
            .bearer_auth(&self.operator)
            .send()
            .await
            .expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON with the operator token.
    pub async fn op_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.operator)
            .json(body)
            .send()
            .await
            .expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// The trace of a message.
    pub async fn trace(&self, id: &str) -> Value {
        let (s, v) = self.op_get(&format!("/api/v1/messages/{id}")).await;
        assert_eq!(s, 200, "trace {id}: {v}");
        v
    }

    /// The status of `id`'s delivery to `destination`.
    pub async fn delivery_status(&self, id: &str, destination: &str) -> String {
        let t = self.trace(id).await;
        t["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"] == destination)
            .map(|d| d["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    /// Waits until `id`'s delivery to `destination` has `status`.
    pub async fn wait_status(&self, id: &str, destination: &str, status: &str, within: Duration) -> bool {
        eventually(within, || async { self.delivery_status(id, destination).await == status }).await
    }

    /// Stops the hub gracefully and returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), wastehub::app::AppError> {
        self.shutdown.cancel();
        let h = self.handle.take().expect("running");
        h.await.expect("join")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Writes a hub config directory (as `spawn` does) for a hub run as a separate process.
pub fn write_config_dir(dir: &Path, database: &str, key_sha: &str, op_sha: &str, spec: &HubSpec) {
    let schemas = repo().join("schemas/canonical");
    let reference = repo().join("schemas/reference");
    let config = format!(
        "[catalogue]\nschemas = \"{}\"\nreference = \"{}\"\n[database]\nurl = \"{database}\"\nsqlite_synchronous = \"normal\"\n[admin]\noperator_token_sha256 = \"{op_sha}\"\n[delivery]\npoll_interval = \"100ms\"\nlease = \"10s\"\n[retention]\nmaintenance_interval = \"1s\"\n[health]\ninterval = \"0s\"\n[prompts]\ncallback_timeout = \"2s\"\n{}\n",
        schemas.display(),
        reference.display(),
        spec.config
    );
    // Later sections in spec.config override the ones above (last key wins is
    // not TOML), so tests put their own [delivery]/[ingest] keys in sections
    // that do not clash; see merge_sections. Partners are probed only when a
    // test asks ([health] interval): a fake partner records every request.
    std::fs::write(dir.join("wastehub.toml"), merge_sections(&config)).expect("write config");
    std::fs::create_dir_all(dir.join("connectors")).expect("mkdir");
    for (name, text) in &spec.connectors {
        std::fs::write(
            dir.join("connectors").join(format!("{name}.toml")),
            text.replace("{KEY_SHA256}", key_sha),
        )
        .expect("write connector");
    }
}

/// Merges repeated `[section]` blocks so tests can add keys to a section the
/// harness already wrote; a later key replaces an earlier one.
fn merge_sections(text: &str) -> String {
    let mut table = toml::Table::new();
    let mut chunks: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            chunks.push((t.trim_matches(['[', ']']).to_string(), String::new()));
        } else if let Some(last) = chunks.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    for (section, body) in chunks {
        let parsed: toml::Table = body.parse().expect("test config chunk");
        // `[a.b]` is table `b` inside table `a`.
        let mut t = &mut table;
        for key in section.split('.').filter(|k| !k.is_empty()) {
            let entry = t.entry(key.trim()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(inner) = entry else {
                panic!("[{section}] is not a table")
            };
            t = inner;
        }
        t.extend(parsed);
    }
    toml::to_string(&table).expect("serialise")
}

/// Polls `f` every 50 ms until it is true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Loading: built-in defaults → `wastehub.toml` → `WASTEHUB__SECTION__KEY`
//! environment variables, then every `connectors/*.toml` with `${VAR}` and
//! `${VAR:-default}` references filled in from the environment.
//!
//! Every problem is reported as `file:line: what is wrong`, all of them at
//! once, so that `wastehub check` shows the whole list in one run.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::connector::{ConditionConfig, ConnectorConfig, OAuth2Config, SignatureConfig};
use super::{Config, DEFAULT_TOML, Paths, Secret};

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `env WASTEHUB__…` for an environment override).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in one load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Process configuration.
    pub config: Config,
    /// Connector files, sorted by name.
    pub connectors: Vec<ConnectorConfig>,
    /// Where the files came from.
    pub paths: Paths,
}

/// Loads from `dir` with the process environment.
pub fn load(dir: &Path) -> Result<Loaded, ConfigErrors> {
    load_with(dir, &std::env::vars().collect())
}

/// Loads from `dir` with the given environment (tests and the demo pass
/// their own, since the process environment is global).
pub fn load_with(dir: &Path, env: &BTreeMap<String, String>) -> Result<Loaded, ConfigErrors> {
    let paths = Paths { root: dir.to_path_buf() };
    let mut errors = Vec::new();
    let config = load_config(&paths, env, &mut errors);
    let connectors = load_connectors(&paths.connectors(), env, &mut errors);
    if let Some(cfg) = &config {
        validate_config(cfg, &connectors, &paths, &mut errors);
    }
    match config {
        Some(config) if errors.is_empty() => Ok(Loaded { config, connectors, paths }),
        _ => Err(ConfigErrors(errors)),
    }
}

fn load_config(paths: &Paths, env: &BTreeMap<String, String>, errors: &mut Vec<ConfigError>) -> Option<Config> {
    let mut merged: toml::Table = match DEFAULT_TOML.parse() {
        Ok(t) => t,
        Err(e) => {
            errors.push(err("built-in default.toml", None, e.to_string()));
            return None;
        }
    };
    let file = paths.config_file();
    let file_name = file.display().to_string();
    let mut file_text = String::new();
    if file.exists() {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let expanded = match expand_vars(&text, env) {
                    Ok(t) => t,
                    Err((offset, msg)) => {
                        errors.push(err(&file_name, Some(line_at(&text, offset)), msg));
                        return None;
                    }
                };
                match expanded.parse::<toml::Table>() {
                    Ok(t) => merge(&mut merged, t),
                    Err(e) => {
                        errors.push(toml_error(&file_name, &text, &e));
                        return None;
                    }
                }
                file_text = text;
            }
            Err(e) => {
                errors.push(err(&file_name, None, format!("cannot read: {e}")));
                return None;
            }
        }
    }
    let from_files = merged.clone();
    let overrides: Vec<(&String, Vec<String>, &String)> = env
        .iter()
        .filter_map(|(name, value)| {
            let path = name.strip_prefix("WASTEHUB__")?;
            Some((name, path.split("__").map(str::to_ascii_lowercase).collect(), value))
        })
        .collect();
    for (name, keys, value) in &overrides {
        if let Err(msg) = set_path(&mut merged, keys, value) {
            errors.push(err(&format!("env {name}"), None, msg));
        }
    }
    match toml::Value::Table(merged).try_into::<Config>() {
        Ok(cfg) => Some(cfg),
        Err(e) => {
            let msg = e.message().trim().to_string();
            // The merged table has no spans. If the files alone are fine, an
            // environment override is to blame: find the first that breaks them.
            let culprit = toml::Value::Table(from_files.clone()).try_into::<Config>().is_ok().then(|| {
                overrides.iter().find(|(_, keys, value)| {
                    let mut t = from_files.clone();
                    set_path(&mut t, keys, value).is_err() || toml::Value::Table(t).try_into::<Config>().is_err()
                })
            });
            match culprit.flatten() {
                Some((name, _, _)) => errors.push(err(&format!("env {name}"), None, msg)),
                None => {
                    // The message names the key (`…`) or quotes the bad value
                    // ("…"); either finds its line in the file.
                    let key = e.message().split('`').nth(1).unwrap_or_default().to_string();
                    let quoted = e.message().split('"').nth(1).map(|v| format!("\"{v}\""));
                    let line = (!key.is_empty()).then(|| line_of_key(&file_text, &key)).flatten().or_else(|| {
                        let q = quoted?;
                        file_text.lines().position(|l| l.contains(&q)).map(|i| i + 1)
                    });
                    errors.push(err(&file_name, line, msg));
                }
            }
            None
        }
    }
}

fn load_connectors(dir: &Path, env: &BTreeMap<String, String>, errors: &mut Vec<ConfigError>) -> Vec<ConnectorConfig> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            errors.push(err(&dir.display().to_string(), None, format!("cannot read folder: {e}")));
            Vec::new()
        }
    };
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(err(&name, None, format!("cannot read: {e}")));
                continue;
            }
        };
        let expanded = match expand_vars(&text, env) {
            Ok(t) => t,
            Err((offset, msg)) => {
                errors.push(err(&name, Some(line_at(&text, offset)), msg));
                continue;
            }
        };
        match toml::from_str::<ConnectorConfig>(&expanded) {
            Ok(mut c) => {
                c.file = name.clone();
                if let Some(f) = c.file_drop.as_mut() {
                    f.resolve(dir.parent().unwrap_or(dir));
                }
                let before = errors.len();
                check_connector(&c, &name, &text, errors);
                if errors.len() == before {
                    out.push((name, text, c));
                }
            }
            Err(e) => errors.push(toml_error(&name, &text, &e)),
        }
    }
    let mut names = HashSet::new();
    let mut sources = HashSet::new();
    let mut digests = HashSet::new();
    for (file, text, c) in &out {
        if !names.insert(c.name.clone()) {
            errors.push(err(
                file,
                line_of_key(text, "name"),
                format!("connector name {:?} is used by another file", c.name),
            ));
        }
        if c.name == crate::prompts::CALLBACK_DESTINATION
            || c.name == crate::prompts::HUB_SENDER
            || c.name == crate::xp::WORKFLOW_DESTINATION
        {
            errors.push(err(
                file,
                line_of_key(text, "name"),
                format!(
                    "connector name {:?} is reserved (the hub's own prompts and their callback destination)",
                    c.name
                ),
            ));
        }
        for d in c.inbound.iter().flat_map(|i| &i.api_key_sha256).filter(|d| !d.is_empty()) {
            if !digests.insert(d.expose().to_ascii_lowercase()) {
                errors.push(err(
                    file,
                    line_of_key(text, "api_key_sha256"),
                    "this API key digest is also configured for another partner".into(),
                ));
            }
        }
        for s in c.inbound.iter().flat_map(|i| &i.sources) {
            if !sources.insert(s.clone()) {
                errors.push(err(
                    file,
                    line_of_key(text, "sources"),
                    format!("source {s:?} is claimed by another connector"),
                ));
            }
        }
    }
    let mut connectors: Vec<ConnectorConfig> = out.into_iter().map(|(_, _, c)| c).collect();
    connectors.sort_by(|a, b| a.name.cmp(&b.name));
    connectors
}

/// Per-file rules that the types alone cannot express.
fn check_connector(c: &ConnectorConfig, file: &str, text: &str, errors: &mut Vec<ConfigError>) {
    let mut bad = |key: &str, msg: String| errors.push(err(file, line_of_key(text, key), msg));
    if c.name.is_empty()
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
    {
        bad("name", format!("name {:?} must be lower-case letters, digits, '-' or '_'", c.name));
    }
    if let Some(inb) = &c.inbound {
        if inb.sources.is_empty() || inb.sources.iter().any(String::is_empty) {
            bad("sources", "inbound.sources must list at least one non-empty source".into());
        }
        for k in &inb.api_key_sha256 {
            let h = k.expose();
            if !h.is_empty() && (h.len() != 64 || !h.chars().all(|ch| ch.is_ascii_hexdigit())) {
                bad(
                    "api_key_sha256",
                    "api_key_sha256 entries must be 64 hex digits (make one with `wastehub keygen`)".into(),
                );
            }
        }
    }
    if let Some(out) = &c.outbound {
        match reqwest::Url::parse(&out.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => bad("url", format!("url {:?} must be an http or https address with a host", out.url)),
            Err(e) => bad("url", format!("url {:?} is not a valid address: {e}", out.url)),
        }
        if out.concurrency == 0 {
            bad("concurrency", "concurrency must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&out.jitter) {
            bad("jitter", format!("jitter must be between 0 and 1, not {}", out.jitter));
        }
        if let Some(rl) = out.rate_limit
            && (rl.per_second == 0 || rl.burst == 0)
        {
            bad("rate_limit", "rate_limit.per_second and burst must be at least 1".into());
        }
        if out.timeout.0.is_zero() {
            bad("timeout", "timeout must be more than 0".into());
        }
        for (key, p) in [("body_field", &out.ack.body_field), ("receipt_field", &out.ack.receipt_field)] {
            if let Some(p) = p
                && !p.is_empty()
                && !p.starts_with('/')
            {
                bad(key, format!("{key} {p:?} must be a JSON Pointer starting with '/'"));
            }
        }
        if out.ack.body_field.is_some() && out.ack.ack_codes.is_empty() {
            bad(
                "ack_codes",
                "ack.body_field is set, so ack.ack_codes must list the accepting codes".into(),
            );
        }
        for (key, msg) in client_auth_problems(
            "outbound",
            &out.headers,
            out.bearer_token.as_ref(),
            out.oauth2.as_ref(),
            out.signature.as_ref(),
        ) {
            bad(key.as_str(), msg);
        }
        for w in &out.maintenance {
            if let Err(msg) = crate::deliver::maintenance::Window::parse(w) {
                bad("maintenance", msg);
            }
        }
        if let Some(soap) = &out.soap {
            if c.kind != super::ConnectorKind::HttpXml {
                bad("soap", "[outbound.soap] applies to kind = \"http_xml\"".into());
            }
            if !matches!(soap.version.as_str(), "1.1" | "1.2") {
                bad("version", format!("soap.version {:?} must be \"1.1\" or \"1.2\"", soap.version));
            }
        }
        if !out.ack.namespaces.is_empty() && c.kind != super::ConnectorKind::HttpXml {
            bad("namespaces", "ack.namespaces apply to XML answers (kind = \"http_xml\")".into());
        }
    }
    for (key, msg) in super::file::check(c) {
        bad(key, msg);
    }
    if !c.routes.is_empty() && c.outbound.is_none() {
        bad("routes", "routes need an [outbound] section to deliver to".into());
    }
    for r in &c.routes {
        if r.types.is_empty() || r.types.iter().any(String::is_empty) {
            bad("types", "each route must list at least one non-empty type pattern".into());
        }
        for cond in &r.when {
            if let Err(msg) = check_condition(cond) {
                bad("when", msg);
            }
        }
    }
    for (line, message) in super::mqtt::check(c, text) {
        errors.push(err(file, line, message));
    }
    for (line, message) in super::poll::check(c, text) {
        errors.push(err(file, line, message));
    }
    for (line, message) in super::letters::check(c, text) {
        errors.push(err(file, line, message));
    }
}

/// The rules of a client's authentication and headers, shared by
/// `[outbound]` and `[poll]` (`section` names the table in messages):
/// (key, what is wrong) for each problem.
pub(super) fn client_auth_problems(
    section: &str,
    headers: &BTreeMap<String, String>,
    bearer_token: Option<&Secret>,
    oauth2: Option<&OAuth2Config>,
    signature: Option<&SignatureConfig>,
) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    for (name, value) in headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            bad.push((name.clone(), format!("header name {name:?} is not valid")));
        } else if reqwest::header::HeaderValue::from_str(value).is_err() {
            bad.push((name.clone(), format!("header {name:?} has a value a header cannot carry")));
        }
    }
    if let Some(o) = oauth2 {
        match reqwest::Url::parse(&o.token_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => bad.push((
                "token_url".into(),
                format!("oauth2.token_url {:?} must be an http or https address with a host", o.token_url),
            )),
        }
        if o.client_id.is_empty() {
            bad.push(("client_id".into(), "oauth2.client_id must not be empty".into()));
        }
        if bearer_token.is_some_and(|t| !t.expose().is_empty()) {
            bad.push(("oauth2".into(), format!("use either bearer_token or [{section}.oauth2], not both")));
        }
    }
    if let Some(sig) = signature {
        if !matches!(sig.algorithm.as_str(), "hmac-sha256" | "hmac-sm3") {
            bad.push((
                "algorithm".into(),
                format!("signature.algorithm {:?} must be \"hmac-sha256\" or \"hmac-sm3\"", sig.algorithm),
            ));
        }
        // Empty is "not set yet" (an unset `${VAR:-}`), as for keys and
        // client secrets: the file loads, and the connector sends nothing
        // until the secret is configured.
        let secret = sig.secret.expose();
        if !secret.is_empty() && secret.len() < 16 {
            bad.push((
                "secret".into(),
                "signature.secret must be at least 16 characters (or empty until it is set)".into(),
            ));
        }
    }
    bad
}

fn check_condition(c: &ConditionConfig) -> Result<(), String> {
    match (&c.attribute, &c.field) {
        (Some(_), Some(_)) | (None, None) => return Err("a condition names exactly one of `attribute` or `field`".into()),
        (None, Some(f)) if !f.starts_with('/') => return Err(format!("field {f:?} must be a JSON Pointer starting with '/'")),
        _ => {}
    }
    if c.attribute.as_deref().is_some_and(|a| a.contains('*')) {
        return Err("`*` (any list element) is for body fields, not attributes".into());
    }
    let ops = [
        c.equals.is_some(),
        c.not_equals.is_some(),
        c.prefix.is_some(),
        c.one_of.is_some(),
        c.exists.is_some(),
    ];
    if ops.iter().filter(|b| **b).count() != 1 {
        return Err("a condition has exactly one of `equals`, `not_equals`, `prefix`, `one_of`, `exists`".into());
    }
    Ok(())
}

fn validate_config(cfg: &Config, connectors: &[ConnectorConfig], paths: &Paths, errors: &mut Vec<ConfigError>) {
    let file = paths.config_file().display().to_string();
    let text = std::fs::read_to_string(paths.config_file()).unwrap_or_default();
    let mut bad = |key: &str, msg: String| errors.push(err(&file, line_of_key(&text, key), msg));
    let url = cfg.database.url.expose();
    if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bad("url", "database.url must start with sqlite: or postgres://".into());
    }
    if cfg.ingest.max_batch_events == 0 || cfg.ingest.commit_batch == 0 || cfg.delivery.claim_batch == 0 {
        bad("ingest", "max_batch_events, commit_batch and claim_batch must be at least 1".into());
    }
    if cfg.database.max_connections == 0 {
        bad("max_connections", "database.max_connections must be at least 1".into());
    }
    let h = cfg.admin.operator_token_sha256.expose();
    if !h.is_empty() && (h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit())) {
        bad(
            "operator_token_sha256",
            "admin.operator_token_sha256 must be 64 hex digits (make one with `wastehub keygen`)".into(),
        );
    }
    for (name, digest) in &cfg.admin.operators {
        let h = digest.expose();
        let name_ok = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_alphanumeric() || "._-@".contains(c));
        if !name_ok || h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
            bad(
                "operators",
                format!("admin.operators.{name}: a name of 1 to 64 letters, digits and ._-@, and 64 hex digits"),
            );
        }
    }
    let p = &cfg.prompts;
    if p.callback_concurrency == 0 {
        bad("callback_concurrency", "prompts.callback_concurrency must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&p.callback_jitter) {
        bad("callback_jitter", "prompts.callback_jitter must be between 0 and 1".into());
    }
    if p.callback_retry_schedule.0.first().is_some_and(|d| !d.is_zero()) {
        bad(
            "callback_retry_schedule",
            "prompts.callback_retry_schedule must start with 0s: the first attempt is made at once".into(),
        );
    }
    if p.callback_timeout.0.is_zero() || p.callback_connect_timeout.0.is_zero() {
        bad(
            "callback_timeout",
            "prompts.callback_timeout and callback_connect_timeout must be more than 0".into(),
        );
    }
    if p.callback_timeout.0 >= cfg.delivery.lease.0 {
        bad(
            "lease",
            format!(
                "delivery.lease ({}) must be longer than prompts.callback_timeout ({})",
                cfg.delivery.lease, p.callback_timeout
            ),
        );
    }
    let mut bad_connector = Vec::new();
    for c in connectors {
        let Some(out) = &c.outbound else { continue };
        if out.retry_schedule.0.first().is_some_and(|d| !d.is_zero()) {
            bad_connector.push(err(
                &c.file,
                line_in(&c.file, "retry_schedule"),
                "outbound.retry_schedule must start with 0s: the first attempt is made as soon as the message is committed".into(),
            ));
        }
        // A claimed delivery waits for the rate limit while its lease runs:
        // the last of `concurrency` claims must go out well within the lease,
        // or the claim expires and the message is sent twice.
        if let Some(rl) = out.rate_limit {
            let worst = out.concurrency as f64 / f64::from(rl.per_second.max(1)) + out.timeout.0.as_secs_f64();
            if worst * 2.0 > cfg.delivery.lease.0.as_secs_f64() {
                bad_connector.push(err(
                    &c.file,
                    line_in(&c.file, "rate_limit"),
                    format!(
                        "concurrency {} at {} requests/s plus timeout {} needs up to {:.0}s per claim; delivery.lease ({}) must be at least twice that",
                        out.concurrency, rl.per_second, out.timeout, worst, cfg.delivery.lease
                    ),
                ));
            }
        }
    }
    if let Some(slow) = connectors
        .iter()
        .filter_map(|c| c.outbound.as_ref().map(|o| (c, o.timeout)))
        .max_by_key(|(_, t)| *t)
        && slow.1.0 >= cfg.delivery.lease.0
    {
        bad(
            "lease",
            format!(
                "delivery.lease ({}) must be longer than connector {:?}'s timeout ({})",
                cfg.delivery.lease, slow.0.name, slow.1
            ),
        );
    }
    errors.extend(bad_connector);
}

/// Fills in `${VAR}` and `${VAR:-default}`. The value is escaped for a TOML
/// basic string, so a variable can never change the file's structure (and
/// line numbers stay those of the file on disk). `$${` writes a literal `${`.
fn expand_vars(text: &str, env: &BTreeMap<String, String>) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            offset += pos + 2;
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after.find('}').ok_or((offset + pos, "`${` without a closing `}`".to_string()))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((offset + pos, format!("`${{{inner}}}` is not a valid variable reference")));
        }
        let value = match (env.get(name), default) {
            (Some(v), _) => v.as_str(),
            (None, Some(d)) => d,
            (None, None) => {
                return Err((
                    offset + pos,
                    format!("environment variable {name} is not set (write ${{{name}:-default}} to give a default)"),
                ));
            }
        };
        for ch in value.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                c => out.push(c),
            }
        }
        rest = &after[end + 1..];
        offset += pos + 2 + end + 1;
    }
    out.push_str(rest);
    Ok(out)
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, keys: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = keys.split_last().ok_or("empty key")?;
    let mut t = table;
    for k in parents {
        t = match t.entry(k.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("`{k}` is not a section")),
        };
    }
    // Numbers and booleans are read as TOML; anything else is a string.
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !matches!(v, toml::Value::Table(_)))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    t.insert(last.clone(), value);
    Ok(())
}

fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|s| line_at(text, s.start));
    err(file, line, e.message().trim().to_string())
}

fn err(file: &str, line: Option<usize>, message: String) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line,
        message,
    }
}

/// The line that sets `key` in the file at `path`.
fn line_in(path: &str, key: &str) -> Option<usize> {
    line_of_key(&std::fs::read_to_string(path).ok()?, key)
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The first line that sets `key` (the last segment of a dotted path).
pub(super) fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let last = key.rsplit('.').next().unwrap_or(key);
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(last).is_some_and(|r| r.trim_start().starts_with('=')) || t.starts_with(&format!("[{last}]"))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn expands_variables_with_defaults_and_escapes() {
        let e = env(&[("URL", "http://a/\"x\"")]);
        assert_eq!(expand_vars(r#"u = "${URL}""#, &e).unwrap(), r#"u = "http://a/\"x\"""#);
        assert_eq!(expand_vars(r#"u = "${NOPE:-d}""#, &e).unwrap(), r#"u = "d""#);
        assert_eq!(expand_vars(r#"u = "$${URL}""#, &e).unwrap(), r#"u = "${URL}""#);
        let (off, msg) = expand_vars("a = 1\nu = \"${NOPE}\"", &e).unwrap_err();
        assert_eq!(line_at("a = 1\nu = \"${NOPE}\"", off), 2);
        assert!(msg.contains("NOPE is not set"));
    }

    #[test]
    fn env_overrides_reach_nested_keys_with_types() {
        let mut t: toml::Table = DEFAULT_TOML.parse().unwrap();
        set_path(&mut t, &["ingest".into(), "max_backlog".into()], "42").unwrap();
        set_path(&mut t, &["server".into(), "listen".into()], "0.0.0.0:9000").unwrap();
        let cfg: Config = toml::Value::Table(t).try_into().unwrap();
        assert_eq!(cfg.ingest.max_backlog, 42);
        assert_eq!(cfg.server.listen.port(), 9000);
    }

    #[test]
    fn finds_the_line_of_a_key() {
        let text = "[server]\nlisten = 1\n[outbound]\nurl = \"x\"\n";
        assert_eq!(line_of_key(text, "server.listen"), Some(2));
        assert_eq!(line_of_key(text, "url"), Some(4));
        assert_eq!(line_of_key(text, "outbound"), Some(3));
        assert_eq!(line_of_key(text, "nope"), None);
    }

    fn dir_with(connectors: &[(&str, &str)], config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("connectors")).unwrap();
        std::fs::write(d.path().join("wastehub.toml"), config).unwrap();
        for (name, text) in connectors {
            std::fs::write(d.path().join("connectors").join(format!("{name}.toml")), text).unwrap();
        }
        d
    }

    fn messages(d: &tempfile::TempDir, env: &BTreeMap<String, String>) -> String {
        load_with(d.path(), env).map(|_| String::new()).unwrap_or_else(|e| e.to_string())
    }

    const OUT: &str = "kind = \"http_json\"\n[outbound]\nurl = \"http://127.0.0.1:1/\"\n";

    /// Registration files of partners onboarded at run time live in
    /// `connectors/parks/`; only `connectors/*.toml` are connector files, so
    /// a subfolder (even one holding a `.toml`) is not read.
    #[test]
    fn connector_subfolders_are_not_read() {
        let d = dir_with(&[("a", &format!("name = \"a\"\n{OUT}"))], "");
        let parks = d.path().join("connectors").join("parks");
        std::fs::create_dir_all(&parks).unwrap();
        std::fs::write(parks.join("park-x.json"), "{\"id\": \"park-x\"}").unwrap();
        std::fs::write(parks.join("broken.toml"), "this is not toml = = =").unwrap();
        let loaded = load_with(d.path(), &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = loaded.connectors.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn an_unset_signing_secret_loads_but_a_short_one_does_not() {
        let sig = |secret: &str| format!("name = \"a\"\n{OUT}[outbound.signature]\nalgorithm = \"hmac-sm3\"\nsecret = \"{secret}\"\n");
        let env: BTreeMap<String, String> = BTreeMap::new();
        assert_eq!(messages(&dir_with(&[("a", &sig("${UNSET_SECRET:-}"))], ""), &env), "");
        let m = messages(&dir_with(&[("a", &sig("short"))], ""), &env);
        assert!(m.contains("a.toml:7:") && m.contains("at least 16 characters"), "{m}");
    }

    #[test]
    fn refuses_a_schedule_that_delays_the_first_attempt() {
        let d = dir_with(&[("a", &format!("name = \"a\"\n{OUT}retry_schedule = \"5s 1m\"\n"))], "");
        let m = messages(&d, &BTreeMap::new());
        assert!(m.contains("a.toml:5:") && m.contains("must start with 0s"), "{m}");
    }

    #[test]
    fn refuses_a_rate_limit_that_outlasts_the_lease() {
        let d = dir_with(
            &[(
                "a",
                &format!("name = \"a\"\n{OUT}concurrency = 100\nrate_limit = {{ per_second = 1 }}\n"),
            )],
            "",
        );
        let m = messages(&d, &BTreeMap::new());
        assert!(m.contains("a.toml:6:") && m.contains("delivery.lease"), "{m}");
        let d = dir_with(
            &[(
                "a",
                &format!("name = \"a\"\n{OUT}concurrency = 10\nrate_limit = {{ per_second = 50 }}\n"),
            )],
            "",
        );
        assert_eq!(messages(&d, &BTreeMap::new()), "");
    }

    #[test]
    fn refuses_one_key_for_two_partners() {
        let inbound = |n: &str| {
            format!(
                "name = \"{n}\"\nkind = \"http_json\"\n[inbound]\nsources = [\"urn:{n}\"]\napi_key_sha256 = [\"{}\"]\n",
                "ab".repeat(32)
            )
        };
        let d = dir_with(&[("a", &inbound("a")), ("b", &inbound("b"))], "");
        let m = messages(&d, &BTreeMap::new());
        assert!(m.contains("b.toml:5:") && m.contains("another partner"), "{m}");
    }

    #[test]
    fn finds_the_line_of_a_bad_value_in_wastehub_toml() {
        let d = dir_with(&[], "[server]\nnode_id = \"n\"\n\n[ingest]\nmax_backlog = \"lots\"\n");
        let m = messages(&d, &BTreeMap::new());
        assert!(m.contains("wastehub.toml:5:"), "{m}");
    }

    #[test]
    fn blames_the_environment_for_a_bad_override() {
        let d = dir_with(&[], "");
        let env: BTreeMap<String, String> = [("WASTEHUB__INGEST__MAX_BACKLOG".to_string(), "many".to_string())].into();
        let m = messages(&d, &env);
        assert!(m.starts_with("env WASTEHUB__INGEST__MAX_BACKLOG:"), "{m}");
    }

    #[test]
    fn conditions_need_one_subject_and_one_operator() {
        let mut c = ConditionConfig {
            attribute: Some("jurisdiction".into()),
            field: None,
            equals: None,
            not_equals: None,
            prefix: Some("35".into()),
            one_of: None,
            exists: None,
        };
        assert!(check_condition(&c).is_ok());
        c.equals = Some("x".into());
        assert!(check_condition(&c).is_err());
        c.equals = None;
        c.field = Some("/a".into());
        assert!(check_condition(&c).is_err());
        c.field = None;
        c.prefix = None;
        c.exists = Some(true);
        assert!(check_condition(&c).is_ok(), "exists is an operator");
        c.attribute = Some("*".into());
        assert!(check_condition(&c).is_err(), "no wildcard in attributes");
    }
}

//! `[poll]` in a connector file of kind `poll`: which partner address the
//! hub pulls from, how a page answer is read (items, next cursor, next page
//! token), how often, within which limits, and with which authentication.
//! The polling code is `connectors::poll`; this module owns only the shape
//! and the per-file rules ([`check`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use super::connector::{ConnectorConfig, ConnectorKind, OAuth2Config, SignatureConfig, TlsConfig};
use super::load::{client_auth_problems, line_of_key};
use super::units::{ByteSize, HumanDuration, RetrySchedule};

/// `[poll]`: one partner collection pulled page by page.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// The only address polled (GET); `http` or `https`. Its own query
    /// parameters are kept on every request.
    pub url: String,
    /// Message type of each item.
    #[serde(rename = "type")]
    pub message_type: String,
    /// How an item is read.
    #[serde(default)]
    pub format: PollFormat,
    /// Pause between the end of one run and the start of the next.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Whole-request timeout, reading the answer included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// TCP/TLS connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Largest page answer read; a larger one is a failed page (retried),
    /// never a partial read.
    #[serde(default = "default_max_response")]
    pub max_response: ByteSize,
    /// JSON Pointer to the array of items in a page answer.
    #[serde(default = "default_items")]
    pub items: String,
    /// Items asked for per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Query parameter carrying `page_size`.
    #[serde(default = "default_page_size_param")]
    pub page_size_param: String,
    /// Waits between tries of a failed page; the last one repeats, so a
    /// page is never skipped.
    #[serde(default = "default_retry_schedule")]
    pub retry_schedule: RetrySchedule,
    /// How long this node's leader lease on the connector lasts without a
    /// renewal (it is renewed every third of it). Another node takes over
    /// this long after the leader died. Optional; not in the original key
    /// list of the kind, added so operators and tests can tune takeover.
    #[serde(default = "default_lease")]
    pub lease: HumanDuration,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Static bearer token sent as `Authorization: Bearer …`; empty means none.
    pub bearer_token: Option<Secret>,
    /// OAuth2 client credentials, as in `[outbound.oauth2]`.
    pub oauth2: Option<OAuth2Config>,
    /// HMAC request signature, as in `[outbound.signature]` (over the
    /// request target instead of a message id; see the connector docs).
    pub signature: Option<SignatureConfig>,
    /// Client certificate (mTLS) and the partner's CA, as in `[outbound.tls]`.
    pub tls: Option<TlsConfig>,
    /// `[poll.cursor]`: the persisted position between runs.
    pub cursor: CursorConfig,
    /// `[poll.pages]`: pagination within a run.
    pub pages: PagesConfig,
}

/// `[poll.cursor]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorConfig {
    /// Query parameter carrying the cursor.
    pub param: String,
    /// The cursor before the first successful run; when absent, the first
    /// run sends no cursor parameter.
    #[serde(default)]
    pub initial: Option<String>,
    /// JSON Pointer, in each page answer, to the cursor to resume from
    /// after this page.
    pub next: String,
}

/// `[poll.pages]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagesConfig {
    /// Query parameter carrying the next page token.
    pub param: String,
    /// JSON Pointer to the next page token; absent, `null` or `""` means
    /// this was the last page of the run.
    pub next: String,
}

/// How each item of a page is read.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PollFormat {
    /// The partner's own record, mapped by `[inbound.mappings]` for `type`.
    #[default]
    Document,
    /// A canonical CloudEvent (its `type` must be the configured one).
    Cloudevent,
}

fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(15))
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_max_response() -> ByteSize {
    ByteSize(4 << 20)
}
fn default_items() -> String {
    "/items".into()
}
fn default_page_size() -> u32 {
    100
}
fn default_page_size_param() -> String {
    "limit".into()
}
fn default_retry_schedule() -> RetrySchedule {
    RetrySchedule([5, 30, 120, 600].into_iter().map(Duration::from_secs).collect())
}
fn default_lease() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// Largest `max_response` accepted: a page is held in memory whole.
pub const MAX_PAGE_BYTES: u64 = 256 << 20;
/// Largest `page_size` accepted.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// Whether `p` is a JSON Pointer (RFC 6901): empty, or `/`-separated
/// tokens in which `~` is only followed by `0` or `1`.
pub fn is_json_pointer(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    if !p.starts_with('/') {
        return false;
    }
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

/// The problems of a poll `url`, if any.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("url {url:?} is not a valid address: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(format!("url {url:?} must be an http or https address with a host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "url {url:?}: credentials do not belong in the url; use bearer_token, [poll.oauth2] or headers"
        ));
    }
    if u.fragment().is_some() {
        return Err(format!("url {url:?} must not have a #fragment"));
    }
    Ok(u)
}

/// Per-file rules for `[poll]`: (line, what is wrong) for each problem;
/// `text` is the file as written, for the lines.
pub fn check(c: &ConnectorConfig, text: &str) -> Vec<(Option<usize>, String)> {
    let mut errors = Vec::new();
    let at = |section: &str, key: &str| line_in_section(text, section, key).or_else(|| line_of_key(text, section));
    let p = match (c.kind, &c.poll) {
        (ConnectorKind::Poll, Some(p)) => p,
        (ConnectorKind::Poll, None) => {
            errors.push((
                line_of_key(text, "kind"),
                "kind \"poll\" needs a [poll] section (url, type, [poll.cursor], [poll.pages])".into(),
            ));
            return errors;
        }
        (_, Some(_)) => {
            errors.push((at("poll", "poll"), "a [poll] section is only allowed with kind = \"poll\"".into()));
            return errors;
        }
        (_, None) => return errors,
    };
    let mut bad = |section: &str, key: &str, msg: String| errors.push((at(section, key), msg));
    match &c.inbound {
        None => bad(
            "poll",
            "poll",
            "kind \"poll\" needs an [inbound] section (sources, and the mapping for type)".into(),
        ),
        Some(inb) if p.format == PollFormat::Document && !inb.mappings.contains_key(&p.message_type) => bad(
            "poll",
            "type",
            format!(
                "type {:?} has no inbound mapping: name one under [inbound.mappings] (format = \"document\")",
                p.message_type
            ),
        ),
        Some(_) => {}
    }
    if c.outbound.is_some() {
        errors.push((
            line_of_key(text, "outbound"),
            "kind \"poll\" only receives; it has no [outbound] side".into(),
        ));
    }
    let mut bad = |section: &str, key: &str, msg: String| errors.push((at(section, key), msg));
    if let Err(msg) = check_url(&p.url) {
        bad("poll", "url", msg);
    }
    if p.message_type.is_empty() {
        bad("poll", "type", "poll.type must name a message type".into());
    }
    if p.interval.0 < Duration::from_secs(1) {
        bad("poll", "interval", "interval must be at least 1s".into());
    }
    if p.timeout.0.is_zero() {
        bad("poll", "timeout", "timeout must be more than 0".into());
    }
    if p.connect_timeout.0.is_zero() || p.connect_timeout.0 > p.timeout.0 {
        bad(
            "poll",
            "connect_timeout",
            "connect_timeout must be more than 0 and at most timeout".into(),
        );
    }
    if p.max_response.0 == 0 || p.max_response.0 > MAX_PAGE_BYTES {
        bad(
            "poll",
            "max_response",
            format!("max_response must be between 1 byte and {}", ByteSize(MAX_PAGE_BYTES)),
        );
    }
    if p.page_size == 0 || p.page_size > MAX_PAGE_SIZE {
        bad("poll", "page_size", format!("page_size must be between 1 and {MAX_PAGE_SIZE}"));
    }
    if p.retry_schedule.0.last().is_none_or(Duration::is_zero) {
        bad(
            "poll",
            "retry_schedule",
            "retry_schedule's last delay repeats for as long as a page fails, so it must be more than 0".into(),
        );
    }
    if p.lease.0 < Duration::from_secs(1) {
        bad("poll", "lease", "lease must be at least 1s".into());
    }
    for (section, key, ptr) in [
        ("poll", "items", &p.items),
        ("cursor", "next", &p.cursor.next),
        ("pages", "next", &p.pages.next),
    ] {
        if !is_json_pointer(ptr) {
            bad(
                section,
                key,
                format!("{ptr:?} is not a JSON Pointer (\"\" or \"/a/b\", with ~0 and ~1 escapes)"),
            );
        }
    }
    let params = [
        ("poll", "page_size_param", &p.page_size_param),
        ("cursor", "param", &p.cursor.param),
        ("pages", "param", &p.pages.param),
    ];
    for (i, (section, key, name)) in params.iter().enumerate() {
        if name.is_empty() {
            bad(section, key, format!("{key} must name a query parameter"));
        } else if params[..i].iter().any(|(_, _, other)| other == name) {
            bad(section, key, format!("query parameter {name:?} is used twice"));
        }
    }
    for (key, msg) in client_auth_problems("poll", &p.headers, p.bearer_token.as_ref(), p.oauth2.as_ref(), p.signature.as_ref()) {
        let k = key.as_str();
        let line = match k {
            "client_id" | "token_url" | "scope" => at("oauth2", k),
            "algorithm" | "secret" | "key_id" => at("signature", k),
            "oauth2" => at("oauth2", "oauth2"),
            // A header's own name, or the `headers` line of an inline table.
            _ => line_in_section(text, "headers", k).or_else(|| at("poll", "headers")),
        };
        errors.push((line, msg));
    }
    errors
}

/// The line that sets `key` inside the table `[section]` (or `[poll.section]`,
/// `[outbound.section]`: the last dotted part of the header is compared).
fn line_in_section(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut inside = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(['[', ']']).trim();
            inside = name.rsplit('.').next() == Some(section);
            if inside && key == section {
                return Some(i + 1);
            }
            continue;
        }
        if inside && t.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('=')) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::load_with;

    /// Loads a config dir with one connector file `c.toml`; returns the
    /// error text (empty when it loads).
    fn load(text: &str) -> String {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("connectors")).unwrap();
        std::fs::write(d.path().join("wastehub.toml"), "").unwrap();
        std::fs::write(d.path().join("connectors/c.toml"), text).unwrap();
        load_with(d.path(), &BTreeMap::new())
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    /// Spec B's example, line by line (line numbers matter to the tests).
    fn good() -> String {
        [
            "name = \"c\"",                                         // 1
            "kind = \"poll\"",                                      // 2
            "[inbound]",                                            // 3
            "sources = [\"urn:c\"]",                                // 4
            "[inbound.mappings]",                                   // 5
            "\"transporter-record\" = \"t/transporter-record-in\"", // 6
            "[poll]",                                               // 7
            "url = \"http://127.0.0.1:9103/api/v1/carriers\"",      // 8
            "type = \"transporter-record\"",                        // 9
            "format = \"document\"",                                // 10
            "interval = \"5m\"",                                    // 11
            "timeout = \"15s\"",                                    // 12
            "connect_timeout = \"5s\"",                             // 13
            "max_response = \"4MiB\"",                              // 14
            "items = \"/items\"",                                   // 15
            "page_size = 100",                                      // 16
            "page_size_param = \"limit\"",                          // 17
            "retry_schedule = \"5s 30s 2m 10m\"",                   // 18
            "bearer_token = \"\"",                                  // 19
            "headers = { }",                                        // 20
            "[poll.cursor]",                                        // 21
            "param = \"updated_since\"",                            // 22
            "initial = \"2020-01-01T00:00:00+08:00\"",              // 23
            "next = \"/next_cursor\"",                              // 24
            "[poll.pages]",                                         // 25
            "param = \"page_token\"",                               // 26
            "next = \"/next_page_token\"",                          // 27
        ]
        .join("\n")
            + "\n"
    }

    #[test]
    fn accepts_the_example_of_the_spec() {
        assert_eq!(load(&good()), "");
    }

    #[test]
    fn defaults_fill_everything_but_url_type_cursor_and_pages() {
        let text = "name = \"c\"\nkind = \"poll\"\n[inbound]\nsources = [\"urn:c\"]\n[inbound.mappings]\n\"t\" = \"m\"\n\
                    [poll]\nurl = \"https://p.example/x\"\ntype = \"t\"\n[poll.cursor]\nparam = \"since\"\nnext = \"/c\"\n\
                    [poll.pages]\nparam = \"page\"\nnext = \"/p\"\n";
        let c: ConnectorConfig = toml::from_str(text).unwrap();
        let p = c.poll.unwrap();
        assert_eq!(p.format, PollFormat::Document);
        assert_eq!(p.interval.0, Duration::from_secs(300));
        assert_eq!(p.max_response.0, 4 << 20);
        assert_eq!(
            (p.items.as_str(), p.page_size, p.page_size_param.as_str()),
            ("/items", 100, "limit")
        );
        assert_eq!(p.retry_schedule.0.last(), Some(&Duration::from_secs(600)));
        assert_eq!(p.cursor.initial, None);
        assert_eq!(load(text), "");
    }

    #[test]
    fn refuses_a_url_that_is_not_plain_http() {
        for (url, what) in [
            ("ftp://h/x", "http or https"),
            ("http://user:pw@h/x", "credentials"),
            ("http://h/x#frag", "fragment"),
            ("not a url", "not a valid address"),
        ] {
            let m = load(&good().replace("http://127.0.0.1:9103/api/v1/carriers", url));
            assert!(m.contains("c.toml:8:") && m.contains(what), "{url}: {m}");
        }
    }

    #[test]
    fn reports_pointers_and_params_at_their_section_lines() {
        let m = load(
            &good()
                .replace("next = \"/next_page_token\"", "next = \"next_page_token\"")
                .replace("next = \"/next_cursor\"", "next = \"/a~2\"")
                .replace("items = \"/items\"", "items = \"items\""),
        );
        assert!(m.contains("c.toml:15:") && m.contains("\"items\" is not a JSON Pointer"), "{m}");
        assert!(m.contains("c.toml:24:") && m.contains("\"/a~2\""), "{m}");
        assert!(m.contains("c.toml:27:") && m.contains("\"next_page_token\""), "{m}");
        let m = load(&good().replace("param = \"page_token\"", "param = \"updated_since\""));
        assert!(m.contains("c.toml:26:") && m.contains("used twice"), "{m}");
        let m = load(&good().replace("param = \"updated_since\"", "param = \"\""));
        assert!(m.contains("c.toml:22:") && m.contains("must name a query parameter"), "{m}");
    }

    #[test]
    fn a_document_type_needs_an_inbound_mapping() {
        let m = load(&good().replace("type = \"transporter-record\"", "type = \"medical-record\""));
        assert!(m.contains("c.toml:9:") && m.contains("has no inbound mapping"), "{m}");
        // Canonical events need no mapping.
        let text = good()
            .replace("type = \"transporter-record\"", "type = \"medical-record\"")
            .replace("format = \"document\"", "format = \"cloudevent\"");
        assert_eq!(load(&text), "");
    }

    #[test]
    fn checks_times_sizes_and_the_schedule() {
        let text = good()
            .replace("interval = \"5m\"", "interval = \"500ms\"")
            .replace("timeout = \"15s\"", "timeout = \"0s\"")
            .replace("max_response = \"4MiB\"", "max_response = \"1GiB\"")
            .replace("page_size = 100", "page_size = 0")
            .replace("retry_schedule = \"5s 30s 2m 10m\"", "retry_schedule = \"5s 0s\"");
        let m = load(&text);
        for (line, what) in [
            (11, "interval"),
            (12, "timeout must be more than 0"),
            (13, "connect_timeout"),
            (14, "max_response"),
            (16, "page_size"),
            (18, "retry_schedule"),
        ] {
            assert!(m.contains(&format!("c.toml:{line}: ")) && m.contains(what), "{what}: {m}");
        }
        let m = load(&good().replace("headers = { }", "lease = \"0s\""));
        assert!(m.contains("c.toml:20:") && m.contains("lease must be at least 1s"), "{m}");
    }

    #[test]
    fn kind_section_inbound_and_outbound_go_together() {
        let m = load(&good().replace("kind = \"poll\"", "kind = \"http_json\""));
        assert!(m.contains("c.toml:7:") && m.contains("only allowed with kind = \"poll\""), "{m}");
        let head: String = good().lines().take(6).map(|l| format!("{l}\n")).collect();
        let m = load(&head);
        assert!(m.contains("c.toml:2:") && m.contains("needs a [poll] section"), "{m}");
        let m = load(&format!("{}[outbound]\nurl = \"http://127.0.0.1:1/\"\n", good()));
        assert!(m.contains("c.toml:28:") && m.contains("only receives"), "{m}");
        let no_inbound: String = good().lines().skip(6).map(|l| format!("{l}\n")).collect();
        let m = load(&format!("name = \"c\"\nkind = \"poll\"\n{no_inbound}"));
        assert!(m.contains("needs an [inbound] section"), "{m}");
    }

    #[test]
    fn checks_authentication_like_outbound() {
        let m = load(&good().replace(
            "headers = { }",
            "headers = { \"bad header\" = \"x\" }\n[poll.oauth2]\ntoken_url = \"ftp://t\"\nclient_id = \"\"\nclient_secret = \"s\"",
        ));
        assert!(m.contains("header name \"bad header\""), "{m}");
        assert!(m.contains("c.toml:22:") && m.contains("token_url"), "{m}");
        assert!(m.contains("c.toml:23:") && m.contains("client_id"), "{m}");
        let m = load(&good().replace("bearer_token = \"\"", "bearer_token = \"t\"").replace(
            "headers = { }",
            "[poll.oauth2]\ntoken_url = \"http://t/\"\nclient_id = \"c\"\nclient_secret = \"s\"",
        ));
        assert!(m.contains("not both"), "{m}");
        let m = load(&good().replace("headers = { }", "[poll.signature]\nalgorithm = \"md5\"\nsecret = \"short\""));
        assert!(m.contains("c.toml:21:") && m.contains("signature.algorithm"), "{m}");
        assert!(m.contains("c.toml:22:") && m.contains("at least 16"), "{m}");
    }

    #[test]
    fn json_pointers_follow_rfc_6901() {
        for ok in ["", "/", "/items", "/a~0b/c~1d", "/0"] {
            assert!(is_json_pointer(ok), "{ok}");
        }
        for bad in ["items", "/a~", "/a~2", "#/a"] {
            assert!(!is_json_pointer(bad), "{bad}");
        }
    }
}

//! One page request to the partner and the reading of its answer: the
//! request is a GET of the configured `url` with the cursor, page size and
//! page token as query parameters (nothing in an answer can change the
//! address: a page token is only ever a parameter value), authenticated by
//! bearer token, OAuth2 client credentials, an HMAC signature and/or a TLS
//! client certificate. The answer is read up to `max_response` whole or
//! not at all, parsed as JSON, and its items, next cursor and next page
//! token taken at their JSON Pointers. Every failure is a [`PageError`]
//! with a short class; the caller retries the same page.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{ACCEPT, RETRY_AFTER};
use serde_json::Value;

use crate::config::poll::PollConfig;
use crate::connectors::BuildError;
use crate::connectors::client::{self, ClientSettings};
use crate::connectors::http_json::parse_retry_after;
use crate::connectors::oauth2::OAuth2;
use crate::connectors::signature::Signer;

/// What one request asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageRequest<'a> {
    /// The cursor, when one is known.
    pub cursor: Option<&'a str>,
    /// The page token, when the run is past its first page.
    pub page_token: Option<&'a str>,
    /// Items asked for.
    pub page_size: u32,
}

/// A page answer, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The records, in the partner's order.
    pub items: Vec<Value>,
    /// Where to resume after this page, when the answer says.
    pub next_cursor: Option<String>,
    /// The next page of this run; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// A page that could not be had; the same page is tried again.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{class}: {message}")]
pub struct PageError {
    /// `timeout`, `connect`, `transport`, `status`, `too_large`,
    /// `malformed` or `auth` (the OAuth2 token endpoint); a metric label.
    pub class: &'static str,
    /// What happened (never the answer's body, never a secret).
    pub message: String,
    /// The partner's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The partner's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl PageError {
    fn new(class: &'static str, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }

    /// Whether an operator should look (the partner refused the request
    /// itself: a 4xx other than 408, 425 and 429, or a token endpoint
    /// failure), rather than a passing outage.
    pub fn needs_attention(&self) -> bool {
        self.class == "auth"
            || self
                .status
                .is_some_and(|s| (400..500).contains(&s) && !matches!(s, 408 | 425 | 429))
    }
}

/// The HTTP side of one `poll` connector.
pub struct PageClient {
    client: reqwest::Client,
    url: reqwest::Url,
    items: String,
    cursor_param: String,
    cursor_next: String,
    page_param: String,
    page_next: String,
    page_size_param: String,
    max_response: usize,
    oauth2: Option<OAuth2>,
    signer: Option<Signer>,
}

impl PageClient {
    /// Builds the client of connector `name` (relative TLS paths from `base`).
    pub fn new(name: &str, cfg: &PollConfig, base: &Path) -> Result<Self, BuildError> {
        let client = client::build(
            name,
            &ClientSettings {
                headers: &cfg.headers,
                bearer_token: cfg.bearer_token.as_ref(),
                tls: cfg.tls.as_ref(),
                timeout: cfg.timeout.0,
                connect_timeout: cfg.connect_timeout.0,
                pool_max_idle: 1,
            },
            base,
        )?;
        let config = |message: String| BuildError::Config {
            name: name.to_string(),
            message,
        };
        let url = crate::config::poll::check_url(&cfg.url).map_err(config)?;
        let oauth2 = match &cfg.oauth2 {
            Some(o) => Some(OAuth2::new(client.clone(), o).map_err(config)?),
            None => None,
        };
        Ok(Self {
            client,
            url,
            items: cfg.items.clone(),
            cursor_param: cfg.cursor.param.clone(),
            cursor_next: cfg.cursor.next.clone(),
            page_param: cfg.pages.param.clone(),
            page_next: cfg.pages.next.clone(),
            page_size_param: cfg.page_size_param.clone(),
            max_response: cfg.max_response.as_usize(),
            oauth2,
            signer: cfg.signature.as_ref().map(Signer::new),
        })
    }

    /// The configured address without its query (which may carry a key),
    /// for logs.
    pub fn url(&self) -> String {
        format!("{}{}", self.url.origin().ascii_serialization(), self.url.path())
    }

    /// The healthcheck: a one-item GET at `cursor` (no page token), read as
    /// a page; the number of items it held. Nothing is submitted.
    pub async fn healthcheck(&self, cursor: Option<&str>) -> Result<usize, PageError> {
        let req = PageRequest {
            cursor,
            page_token: None,
            page_size: 1,
        };
        self.fetch(&req).await.map(|p| p.items.len())
    }

    /// The address of one request: the configured `url`, its own query
    /// parameters kept (except the three the connector sets), plus the
    /// cursor, page size and page token.
    pub fn url_for(&self, req: &PageRequest<'_>) -> reqwest::Url {
        let mut u = self.url.clone();
        let own: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| *k != self.cursor_param && *k != self.page_param && *k != self.page_size_param)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        {
            let mut q = u.query_pairs_mut();
            q.clear();
            q.extend_pairs(own);
            if let Some(c) = req.cursor {
                q.append_pair(&self.cursor_param, c);
            }
            q.append_pair(&self.page_size_param, &req.page_size.to_string());
            if let Some(t) = req.page_token {
                q.append_pair(&self.page_param, t);
            }
        }
        u
    }

    /// GETs one page and reads it.
    pub async fn fetch(&self, req: &PageRequest<'_>) -> Result<Page, PageError> {
        let url = self.url_for(req);
        let mut r = self.client.get(url.clone()).header(ACCEPT, "application/json");
        if let Some(o) = &self.oauth2 {
            let header = o.header().await.map_err(|e| PageError {
                class: "auth",
                message: e.message,
                status: e.http_status,
                retry_after: None,
            })?;
            r = r.header(reqwest::header::AUTHORIZATION, header);
        }
        if let Some(signer) = &self.signer {
            // A GET has no body and no message id: the request target (path
            // and query, as sent) takes the id's place, so the signature
            // covers the cursor and page token asked for.
            let now = chrono::Utc::now().timestamp();
            r = r
                .header("X-Wastehub-Timestamp", now.to_string())
                .header("X-Wastehub-Signature", signer.header(now, &request_target(&url), b""));
        }
        let resp = r.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            if status == 401
                && let Some(o) = &self.oauth2
            {
                o.invalidate().await;
            }
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Err(PageError {
                class: "status",
                message: format!("the partner answered HTTP {status}"),
                status: Some(status),
                retry_after,
            });
        }
        let body = client::read_body(resp, self.max_response).await.map_err(transport)?;
        if body.truncated {
            return Err(PageError {
                status: Some(status),
                ..PageError::new(
                    "too_large",
                    format!("the page answer is larger than max_response ({} bytes)", self.max_response),
                )
            });
        }
        self.read(&body.bytes)
    }

    /// Reads a page answer.
    pub fn read(&self, bytes: &[u8]) -> Result<Page, PageError> {
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| PageError::new("malformed", format!("the page answer is not JSON: {e}")))?;
        let items = match doc.pointer(&self.items) {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Null) | None => {
                return Err(PageError::new(
                    "malformed",
                    format!("the page answer has no item list at {:?}", self.items),
                ));
            }
            Some(_) => {
                return Err(PageError::new(
                    "malformed",
                    format!("the page answer's {:?} is not a list", self.items),
                ));
            }
        };
        Ok(Page {
            items,
            next_cursor: token_at(&doc, &self.cursor_next)?,
            next_page_token: token_at(&doc, &self.page_next)?,
        })
    }
}

/// A cursor or page token at `pointer`: a string or a number; absent,
/// `null` and `""` are none.
fn token_at(doc: &Value, pointer: &str) -> Result<Option<String>, PageError> {
    match doc.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(PageError::new(
            "malformed",
            format!("the page answer's {pointer:?} is neither a string nor a number"),
        )),
    }
}

/// Path and query as they appear in the request line.
pub fn request_target(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

fn transport(e: reqwest::Error) -> PageError {
    let d = crate::connectors::http_json::classify_transport(e);
    PageError::new(d.class, d.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> PageClient {
        let text = format!(
            "url = \"{url}\"\ntype = \"t\"\n[cursor]\nparam = \"updated_since\"\nnext = \"/next_cursor\"\n\
             [pages]\nparam = \"page_token\"\nnext = \"/next_page_token\"\n"
        );
        let cfg: PollConfig = toml::from_str(&text).unwrap();
        PageClient::new("c", &cfg, Path::new(".")).unwrap()
    }

    #[test]
    fn a_request_adds_its_parameters_to_the_configured_address_only() {
        let c = client("https://partner.example/api/v1/carriers?region=35&limit=7");
        let u = c.url_for(&PageRequest {
            cursor: Some("2026-11-29T10:00:00+08:00"),
            page_token: Some("http://evil.example/x?y=1"),
            page_size: 100,
        });
        assert_eq!(u.host_str(), Some("partner.example"));
        assert_eq!(u.path(), "/api/v1/carriers");
        let q: Vec<(String, String)> = u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(
            q,
            [
                ("region", "35"),
                ("updated_since", "2026-11-29T10:00:00+08:00"),
                ("limit", "100"),
                ("page_token", "http://evil.example/x?y=1"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(request_target(&u).starts_with("/api/v1/carriers?region=35&updated_since=2026-11-29T10%3A00%3A00%2B08%3A00&limit=100"));
        let first = c.url_for(&PageRequest {
            page_size: 1,
            ..PageRequest::default()
        });
        assert_eq!(first.query(), Some("region=35&limit=1"));
    }

    #[test]
    fn reads_items_cursor_and_token() {
        let c = client("http://p/x");
        let p = c
            .read(br#"{"items":[{"a":1},{"a":2}],"next_page_token":"abc","next_cursor":"2026-11-29T10:00:00+08:00"}"#)
            .unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.next_page_token.as_deref(), Some("abc"));
        assert_eq!(p.next_cursor.as_deref(), Some("2026-11-29T10:00:00+08:00"));
        let last = c.read(br#"{"items":[],"next_page_token":"","next_cursor":42}"#).unwrap();
        assert_eq!((last.next_page_token, last.next_cursor.as_deref()), (None, Some("42")));
        let bare = c.read(br#"{"items":[]}"#).unwrap();
        assert_eq!((bare.next_page_token, bare.next_cursor), (None, None));
    }

    #[test]
    fn a_page_without_its_parts_is_malformed() {
        let c = client("http://p/x");
        for body in [
            &b"{\"items\": [1,"[..],
            br#"{"records":[]}"#,
            br#"{"items":{"a":1}}"#,
            br#"{"items":[],"next_page_token":{"t":1}}"#,
            br#"{"items":[],"next_cursor":[1]}"#,
        ] {
            let e = c.read(body).unwrap_err();
            assert_eq!(e.class, "malformed", "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn refusals_of_the_request_need_attention_outages_do_not() {
        let status = |s| PageError {
            status: Some(s),
            ..PageError::new("status", "x")
        };
        assert!(status(401).needs_attention());
        assert!(status(400).needs_attention());
        assert!(!status(429).needs_attention());
        assert!(!status(503).needs_attention());
        assert!(!PageError::new("timeout", "x").needs_attention());
        assert!(PageError::new("auth", "x").needs_attention());
    }
}

//! The HTTP client every HTTP connector kind uses (`http_json`, `http_xml`
//! and `poll`), built one way so that the safety rails cannot differ
//! between kinds: timeouts always set, redirects never followed (the
//! configured address is the only one reached), the static headers and
//! bearer token marked sensitive, and the TLS identity and CA of
//! `[…tls]`. Also the one bounded way of reading an answer.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::BuildError;
use crate::config::Secret;
use crate::config::connector::TlsConfig;

/// What a connector's client is built from.
pub struct ClientSettings<'a> {
    /// Extra headers sent with every request.
    pub headers: &'a BTreeMap<String, String>,
    /// Static bearer token; an empty one sends nothing.
    pub bearer_token: Option<&'a Secret>,
    /// Client certificate and partner CA.
    pub tls: Option<&'a TlsConfig>,
    /// Whole-request timeout (reading the answer included).
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Idle connections kept per host.
    pub pool_max_idle: usize,
}

/// Builds the client of connector `name`; relative TLS paths are read from `base`.
pub fn build(name: &str, s: &ClientSettings<'_>, base: &Path) -> Result<reqwest::Client, BuildError> {
    let mut headers = HeaderMap::new();
    for (k, v) in s.headers {
        let bad = || BuildError::Header {
            name: name.to_string(),
            header: k.clone(),
        };
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad())?,
            HeaderValue::from_str(v).map_err(|_| bad())?,
        );
    }
    if let Some(token) = s.bearer_token.filter(|t| !t.is_empty()) {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| BuildError::Header {
            name: name.to_string(),
            header: "authorization".into(),
        })?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let mut builder = reqwest::Client::builder();
    if let Some(tls) = s.tls {
        builder = with_tls(builder, tls, base).map_err(|message| BuildError::Tls {
            name: name.to_string(),
            message,
        })?;
    }
    builder
        .timeout(s.timeout)
        .connect_timeout(s.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(s.pool_max_idle)
        .default_headers(headers)
        .user_agent(concat!("wastehub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| BuildError::Http {
            name: name.to_string(),
            source,
        })
}

/// Adds the client identity (mTLS) and the partner's CA to a client.
fn with_tls(mut builder: reqwest::ClientBuilder, tls: &TlsConfig, base: &Path) -> Result<reqwest::ClientBuilder, String> {
    let read = |p: &str| {
        let path = if Path::new(p).is_absolute() {
            Path::new(p).to_path_buf()
        } else {
            base.join(p)
        };
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    if let Some(cert) = &tls.client_cert {
        let mut pem = read(cert)?;
        if let Some(key) = &tls.client_key {
            pem.push(b'\n');
            pem.extend(read(key)?);
        }
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| format!("client certificate {cert}: {e}"))?;
        builder = builder.identity(identity);
    }
    if let Some(ca) = &tls.ca {
        for c in reqwest::Certificate::from_pem_bundle(&read(ca)?).map_err(|e| format!("CA {ca}: {e}"))? {
            builder = builder.add_root_certificate(c);
        }
    }
    Ok(builder)
}

/// An answer read up to a cap.
pub struct Body {
    /// At most `cap` bytes.
    pub bytes: Vec<u8>,
    /// True when the answer was longer than `cap` (the rest was not read).
    pub truncated: bool,
}

/// Reads at most `cap` bytes of an answer; the rest is dropped unread
/// (reading stops at the chunk that crosses the cap).
pub async fn read_body(resp: reqwest::Response, cap: usize) -> Result<Body, reqwest::Error> {
    let mut bytes: Vec<u8> = Vec::with_capacity(cap.min(8192));
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = cap.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            return Ok(Body { bytes, truncated: true });
        }
    }
    Ok(Body { bytes, truncated: false })
}

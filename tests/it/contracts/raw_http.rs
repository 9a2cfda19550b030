//! Raw HTTP example files (`.http`): an HTTP/1.1 request or response as it
//! goes over the wire, start line, header lines, an empty line, the body
//! (lines end in CRLF or LF). Answer-only examples write a department
//! API's refusals this way, since the status and headers are the contract
//! (`401` with `WWW-Authenticate`), not only the body.
//!
//! A request is sent to the partner's simulator as written, its `Host`
//! replaced by the simulator's address (and `Content-Length` recomputed); an
//! answer is compared status, then every header the file lists (a
//! `Content-Type` by its media type, others by value), then the body by
//! meaning for JSON and XML, else as trimmed text.

use std::path::Path;

use super::simulators::Answered;
use crate::support::normalise::{self, Format};

/// One HTTP message read from a file.
pub(super) struct Message {
    /// `GET /path?q HTTP/1.1` or `HTTP/1.1 401 Unauthorized`.
    start: String,
    /// Header lines in order (names as written).
    headers: Vec<(String, String)>,
    /// The body (empty for a `GET`).
    pub body: Vec<u8>,
}

impl Message {
    /// Reads `path`; `Err` names the file and what is wrong.
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
        let (head, body) = split_head(&bytes).ok_or_else(|| format!("{shown}: no empty line after the headers"))?;
        let head = std::str::from_utf8(head).map_err(|_| format!("{shown}: the start line and headers must be UTF-8"))?;
        let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
        let start = lines.next().unwrap_or_default().trim().to_string();
        if start.is_empty() {
            return Err(format!("{shown}: no start line"));
        }
        let mut headers = Vec::new();
        for line in lines {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("{shown}: {line:?} is not a header line"))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        // The newline ending the file is not part of a body.
        let body = body.strip_suffix(b"\r\n").or_else(|| body.strip_suffix(b"\n")).unwrap_or(body);
        Ok(Self {
            start,
            headers,
            body: body.to_vec(),
        })
    }

    /// A request's method and target.
    pub fn request_line(&self) -> Result<(&str, &str), String> {
        let mut parts = self.start.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(method), Some(target), Some(v)) if v.starts_with("HTTP/") && target.starts_with('/') => Ok((method, target)),
            _ => Err(format!("{:?} is not a request line (METHOD /target HTTP/1.1)", self.start)),
        }
    }

    /// A response's status code.
    pub fn status(&self) -> Result<u16, String> {
        let mut parts = self.start.split_whitespace();
        match (parts.next(), parts.next().and_then(|c| c.parse().ok())) {
            (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
            _ => Err(format!("{:?} is not a status line (HTTP/1.1 401 Unauthorized)", self.start)),
        }
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sends this request to the server at `base` (`http://host:port`).
    pub async fn send(&self, base: &str) -> Result<Answered, String> {
        let (method, target) = self.request_line()?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("method {method:?}: {e}"))?;
        let mut r = reqwest::Client::new().request(method, format!("{base}{target}"));
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length") {
                r = r.header(k.as_str(), v.as_str());
            }
        }
        if !self.body.is_empty() {
            r = r.body(self.body.clone());
        }
        Answered::read(r.send().await.map_err(|e| e.to_string())?).await
    }

    /// What differs between this (expected) answer and `got`.
    pub fn differences(&self, got: &Answered) -> Vec<String> {
        let mut out = Vec::new();
        match self.status() {
            Ok(s) if s != got.status => out.push(format!("status {} (the example says {s})", got.status)),
            Ok(_) => {}
            Err(e) => out.push(e),
        }
        for (k, want) in &self.headers {
            let Some(have) = got.header(k) else {
                out.push(format!("no {k} header (the example says {want:?})"));
                continue;
            };
            let same = if k.eq_ignore_ascii_case("content-type") {
                media_type(have) == media_type(want)
            } else {
                have.trim() == want.trim()
            };
            if !same {
                out.push(format!("{k}: {have:?} (the example says {want:?})"));
            }
        }
        let format = match self.header("content-type").map(media_type) {
            Some(t) if t == "application/json" || t.ends_with("+json") => Some(Format::Json),
            Some(t) if t.ends_with("/xml") || t.ends_with("+xml") => Some(Format::Xml),
            _ => None,
        };
        let body = match format {
            Some(f) => normalise::compare(f, &self.body, got.body.as_bytes(), &[]).err(),
            None => (String::from_utf8_lossy(&self.body).trim() != got.body.trim()).then(|| format!("{:?}", got.body)),
        };
        if let Some(d) = body {
            out.push(format!("body differs:\n      {d}"));
        }
        out
    }
}

/// `type/subtype` of a `Content-Type` value, in lower case.
fn media_type(v: &str) -> String {
    v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Splits at the first empty line (CRLF CRLF or LF LF).
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let (at, len) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    Some((&bytes[..at], &bytes[at + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_and_an_answer_with_either_line_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let req = dir.path().join("request.http");
        std::fs::write(
            &req,
            "GET /api/v1/x?limit=2 HTTP/1.1\r\nHost: example\r\nAuthorization: Bearer t\r\n\r\n",
        )
        .expect("write");
        let m = Message::read(&req).expect("reads");
        assert_eq!(m.request_line().expect("request"), ("GET", "/api/v1/x?limit=2"));
        assert_eq!(m.header("authorization"), Some("Bearer t"));
        assert!(m.body.is_empty());
        let ans = dir.path().join("answer.http");
        std::fs::write(
            &ans,
            "HTTP/1.1 400 Bad Request\nContent-Type: application/json\n\n{\"code\": \"X\"}\n",
        )
        .expect("write");
        let a = Message::read(&ans).expect("reads");
        assert_eq!(a.status(), Ok(400));
        assert!(a.request_line().is_err());
        let got = Answered {
            status: 400,
            headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
            body: "{ \"code\":\"X\" }".into(),
        };
        assert!(a.differences(&got).is_empty(), "{:?}", a.differences(&got));
        let wrong = Answered {
            status: 401,
            headers: vec![],
            body: "{\"code\": \"Y\"}".into(),
        };
        let d = a.differences(&wrong).join("\n");
        assert!(
            d.contains("status 401") && d.contains("no Content-Type") && d.contains("/code"),
            "{d}"
        );
        std::fs::write(&ans, "HTTP/1.1 200 OK").expect("write");
        assert!(Message::read(&ans).is_err_and(|e| e.contains("no empty line")));
    }
}

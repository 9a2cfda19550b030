//! The HTTP connector behind the kinds `http_json` and `http_xml`: POSTs the
//! rendered body (the canonical CloudEvent, or the partner's format from its
//! mapping) to the partner's configured URL, authenticated by a static token
//! or OAuth2 client credentials, and reads the answer (JSON or XML, see
//! [`super::http_xml`]) by the connector's ack rules.
//!
//! Safety rails: every request has a timeout, redirects are never followed
//! (the configured URL is the only address this connector reaches), and at
//! most `max_response` bytes of an answer are read.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use super::async_trait_shim::BoxFuture;
use super::client::{self, ClientSettings};
use super::http_xml::{Answers, Soap};
use super::oauth2::OAuth2;
use super::signature::Signer;
use super::{BuildError, DeliveryError, Outbound, Outgoing, Receipt, Retry};
use crate::config::connector::{AckConfig, OutboundConfig};

/// Characters of a response kept in traces.
const EXCERPT_CHARS: usize = 512;

/// The HTTP outbound connector.
pub struct HttpJsonConnector {
    client: reqwest::Client,
    url: reqwest::Url,
    ack: AckConfig,
    max_response: usize,
    answers: Answers,
    soap: Option<Soap>,
    signer: Option<Signer>,
    oauth2: Option<OAuth2>,
    kind: &'static str,
}

impl HttpJsonConnector {
    /// Builds the client for one `http_json` connector.
    pub fn new(name: &str, cfg: &OutboundConfig, base: &Path) -> Result<Self, BuildError> {
        Self::with_answers(name, cfg, base, Answers::Json, "http_json")
    }

    /// Builds the client for one `http_xml` connector.
    pub fn xml(name: &str, cfg: &OutboundConfig, base: &Path) -> Result<Self, BuildError> {
        Self::with_answers(name, cfg, base, Answers::xml(&cfg.ack, cfg.soap.as_ref()), "http_xml")
    }

    fn with_answers(name: &str, cfg: &OutboundConfig, base: &Path, answers: Answers, kind: &'static str) -> Result<Self, BuildError> {
        let client = client::build(
            name,
            &ClientSettings {
                headers: &cfg.headers,
                bearer_token: cfg.bearer_token.as_ref(),
                tls: cfg.tls.as_ref(),
                timeout: cfg.timeout.0,
                connect_timeout: cfg.connect_timeout.0,
                pool_max_idle: cfg.concurrency,
            },
            base,
        )?;
        // Config validation has already parsed the URL.
        let url = reqwest::Url::parse(&cfg.url).map_err(|_| BuildError::Header {
            name: name.to_string(),
            header: "url".into(),
        })?;
        let oauth2 = match &cfg.oauth2 {
            Some(o) => Some(OAuth2::new(client.clone(), o).map_err(|_| BuildError::Header {
                name: name.to_string(),
                header: "oauth2.token_url".into(),
            })?),
            None => None,
        };
        Ok(Self {
            client,
            url,
            ack: cfg.ack.clone(),
            max_response: cfg.max_response.as_usize(),
            answers,
            soap: cfg.soap.as_ref().map(Soap::new),
            signer: cfg.signature.as_ref().map(Signer::new),
            oauth2,
            kind,
        })
    }

    async fn send(&self, msg: Outgoing<'_>) -> Result<Receipt, DeliveryError> {
        if self.signer.as_ref().is_some_and(|s| !s.has_secret()) {
            // Like a wrong OAuth2 secret: retried, so the messages wait for
            // the operator to set the secret rather than die at once.
            return Err(failure(
                Retry::Backoff,
                "signature",
                "signature.secret is not set; the request was not sent".into(),
                None,
                None,
            ));
        }
        let mut req = self.client.post(self.url.clone());
        if let Some(o) = &self.oauth2 {
            req = req.header(reqwest::header::AUTHORIZATION, o.header().await?);
        }
        let (body, content_type) = match &self.soap {
            Some(soap) => {
                if let Some(action) = soap.action_header() {
                    req = req.header("SOAPAction", action);
                }
                (soap.wrap(msg.body), soap.content_type())
            }
            None => (msg.body.to_vec(), msg.content_type.to_string()),
        };
        if let Some(signer) = &self.signer {
            let now = chrono::Utc::now().timestamp();
            req = req
                .header("X-Wastehub-Timestamp", now.to_string())
                .header("X-Wastehub-Signature", signer.header(now, msg.message_id.as_str(), &body));
        }
        let resp = req
            .header(CONTENT_TYPE, content_type)
            .header("ce-id", msg.message_id.as_str())
            .header("Idempotency-Key", msg.message_id.as_str())
            .header("X-Wastehub-Delivery", msg.delivery_id.as_str())
            .header("X-Wastehub-Attempt", msg.attempt.to_string())
            .body(body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = read_capped(resp, self.max_response).await?;
        if status == 401
            && let Some(o) = &self.oauth2
        {
            // The token was revoked or expired early: fetch a new one next time.
            o.invalidate().await;
        }
        self.assess(status, retry_after, &body)
    }

    /// What the partner's answer means by this connector's rules: a SOAP
    /// fault, else the ack rules ([`judge`]) over the answer read as JSON or
    /// XML. The contract tests ask it what an example's answer means.
    pub fn assess(&self, status: u16, retry_after: Option<Duration>, body: &str) -> Result<Receipt, DeliveryError> {
        if let Some(fault) = self.answers.fault(status, body) {
            return Err(fault);
        }
        let tree = (self.ack.body_field.is_some() || self.ack.receipt_field.is_some())
            .then(|| self.answers.read(body))
            .flatten();
        judge(&self.ack, status, retry_after, body, tree.as_ref())
    }
}

impl Outbound for HttpJsonConnector {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn deliver<'a>(&'a self, msg: Outgoing<'a>) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.send(msg))
    }

    /// An `OPTIONS` request to the configured URL: reachable and answering
    /// (any status below 500) is healthy. It sends no message.
    fn healthcheck(&self) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            let resp = self
                .client
                .request(reqwest::Method::OPTIONS, self.url.clone())
                .send()
                .await
                .map_err(classify_transport)?;
            if resp.status().is_server_error() {
                return Err(failure(
                    Retry::Backoff,
                    "status",
                    format!("healthcheck answered {}", resp.status()),
                    Some(resp.status().as_u16()),
                    None,
                ));
            }
            Ok(())
        })
    }
}

/// Applies the ack rules to an answer; `tree` is the answer read as JSON or
/// XML (see [`Answers`]), when the rules point into it.
pub fn judge(
    ack: &AckConfig,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
    tree: Option<&serde_json::Value>,
) -> Result<Receipt, DeliveryError> {
    let excerpt = excerpt(body);
    let field = |ptr: &Option<String>| -> Option<String> {
        let v = tree?.pointer(ptr.as_deref()?)?;
        Some(v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
    };
    if ack.success_statuses.contains(&status) {
        let ack_code = field(&ack.body_field);
        if ack.body_field.is_some() {
            match &ack_code {
                Some(c) if ack.ack_codes.contains(c) => {}
                Some(c) if ack.retryable_codes.contains(c) => {
                    return Err(failure(
                        retry_after.map_or(Retry::Backoff, Retry::After),
                        "ack_code",
                        format!("partner answered retryable code {c}"),
                        Some(status),
                        Some(excerpt),
                    ));
                }
                Some(c) => {
                    return Err(failure(
                        Retry::Never,
                        "ack_code",
                        format!("partner refused with code {c}"),
                        Some(status),
                        Some(excerpt),
                    ));
                }
                None => {
                    return Err(failure(
                        Retry::Backoff,
                        "body",
                        "the answer has no ack code".into(),
                        Some(status),
                        Some(excerpt),
                    ));
                }
            }
        }
        return Ok(Receipt {
            http_status: status,
            ack_code,
            reference: field(&ack.receipt_field),
            excerpt,
        });
    }
    let retryable = status >= 500 || matches!(status, 408 | 425 | 429) || ack.retryable_statuses.contains(&status);
    let retry = match (retryable, retry_after) {
        (false, _) => Retry::Never,
        (true, Some(d)) => Retry::After(d),
        (true, None) => Retry::Backoff,
    };
    Err(failure(
        retry,
        "status",
        format!("partner answered HTTP {status}"),
        Some(status),
        Some(excerpt),
    ))
}

fn failure(retry: Retry, class: &'static str, message: String, http_status: Option<u16>, excerpt: Option<String>) -> DeliveryError {
    DeliveryError {
        retry,
        class,
        message,
        http_status,
        excerpt,
    }
}

pub(crate) fn classify_transport(e: reqwest::Error) -> DeliveryError {
    let class = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    // The URL is configuration, not a secret, but the message needs no more
    // than the kind of failure.
    failure(Retry::Backoff, class, e.without_url().to_string(), None, None)
}

/// Reads at most `cap` bytes of the body; the rest is dropped unread.
async fn read_capped(resp: reqwest::Response, cap: usize) -> Result<String, DeliveryError> {
    let body = client::read_body(resp, cap).await.map_err(classify_transport)?;
    Ok(String::from_utf8_lossy(&body.bytes).into_owned())
}

fn excerpt(body: &str) -> String {
    body.chars().take(EXCERPT_CHARS).collect()
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(ack: &AckConfig, status: u16, retry_after: Option<Duration>, body: &str) -> Result<Receipt, DeliveryError> {
        judge(ack, status, retry_after, body, Answers::Json.read(body).as_ref())
    }

    fn ack_with_code() -> AckConfig {
        AckConfig {
            body_field: Some("/code".into()),
            ack_codes: vec!["0000".into()],
            retryable_codes: vec!["BUSY".into()],
            receipt_field: Some("/receipt_id".into()),
            ..AckConfig::default()
        }
    }

    #[test]
    fn success_status_with_ack_code_is_delivered_with_reference() {
        let r = j(&ack_with_code(), 200, None, r#"{"code":"0000","receipt_id":"R-1"}"#).unwrap();
        assert_eq!(r.ack_code.as_deref(), Some("0000"));
        assert_eq!(r.reference.as_deref(), Some("R-1"));
    }

    #[test]
    fn wrong_ack_code_is_permanent_unless_listed_retryable() {
        assert_eq!(j(&ack_with_code(), 200, None, r#"{"code":"E42"}"#).unwrap_err().retry, Retry::Never);
        assert_eq!(
            j(&ack_with_code(), 200, None, r#"{"code":"BUSY"}"#).unwrap_err().retry,
            Retry::Backoff
        );
        assert_eq!(j(&ack_with_code(), 200, None, "not json").unwrap_err().class, "body");
    }

    #[test]
    fn statuses_classify_as_the_design_says() {
        let a = AckConfig::default();
        assert!(j(&a, 204, None, "").is_ok());
        assert_eq!(j(&a, 503, None, "").unwrap_err().retry, Retry::Backoff);
        assert_eq!(
            j(&a, 429, Some(Duration::from_secs(7)), "").unwrap_err().retry,
            Retry::After(Duration::from_secs(7))
        );
        assert_eq!(j(&a, 400, None, "").unwrap_err().retry, Retry::Never);
        assert_eq!(j(&a, 404, Some(Duration::from_secs(1)), "").unwrap_err().retry, Retry::Never);
        let listed = AckConfig {
            retryable_statuses: vec![409],
            ..AckConfig::default()
        };
        assert_eq!(j(&listed, 409, None, "").unwrap_err().retry, Retry::Backoff);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn excerpts_are_capped() {
        assert_eq!(excerpt(&"x".repeat(2000)).len(), EXCERPT_CHARS);
    }
}

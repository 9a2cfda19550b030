//! OAuth2 client credentials (RFC 6749 §4.4) for outbound connectors: the
//! token is fetched from the partner's configured token endpoint, cached,
//! and refreshed `refresh_before` ahead of its expiry. One refresh at a
//! time: concurrent attempts wait for the same fetch rather than storming
//! the endpoint. A `401` from the partner drops the cached token so the next
//! attempt fetches a new one. Neither the secret nor the token is logged.

use std::time::Duration;

use reqwest::header::HeaderValue;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{DeliveryError, Retry};
use crate::config::connector::OAuth2Config;

/// A token source for one connector.
pub struct OAuth2 {
    client: reqwest::Client,
    token_url: reqwest::Url,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    refresh_before: Duration,
    cached: Mutex<Option<Token>>,
}

struct Token {
    header: HeaderValue,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Tokens without `expires_in` are kept this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

impl OAuth2 {
    /// A token source using `client` (the connector's: same timeouts, no redirects).
    pub fn new(client: reqwest::Client, cfg: &OAuth2Config) -> Result<Self, String> {
        Ok(Self {
            client,
            token_url: reqwest::Url::parse(&cfg.token_url).map_err(|e| format!("oauth2.token_url: {e}"))?,
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.expose().to_string(),
            scope: cfg.scope.clone(),
            refresh_before: cfg.refresh_before.0,
            cached: Mutex::new(None),
        })
    }

    /// The `Authorization` header value, fetching a token when none is
    /// cached or the cached one is due for refresh.
    pub async fn header(&self) -> Result<HeaderValue, DeliveryError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.header.clone());
        }
        let token = self.fetch().await?;
        let header = token.header.clone();
        *cached = Some(token);
        Ok(header)
    }

    /// Forgets the cached token (the partner answered 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<Token, DeliveryError> {
        let fail = |retry: Retry, message: String, status: Option<u16>| DeliveryError {
            retry,
            class: "auth",
            message,
            http_status: status,
            excerpt: None,
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = &self.scope {
            form.push(("scope", s.as_str()));
        }
        let resp = self
            .client
            .post(self.token_url.clone())
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| fail(Retry::Backoff, format!("token endpoint unreachable: {}", e.without_url()), None))?;
        let status = resp.status();
        if !status.is_success() {
            // A refused client is a configuration problem, but the delivery
            // is not at fault: keep retrying on the schedule until fixed.
            return Err(fail(
                Retry::Backoff,
                format!("token endpoint answered HTTP {status}"),
                Some(status.as_u16()),
            ));
        }
        let answer: TokenAnswer = resp
            .json()
            .await
            .map_err(|e| fail(Retry::Backoff, format!("token endpoint answer is not a token: {e}"), None))?;
        if answer.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(fail(
                Retry::Backoff,
                "token endpoint issued a token that is not a bearer token".into(),
                None,
            ));
        }
        let lifetime = answer.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let mut header = HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
            .map_err(|_| fail(Retry::Backoff, "token has characters a header cannot carry".into(), None))?;
        header.set_sensitive(true);
        Ok(Token {
            header,
            refresh_at: Instant::now() + lifetime.saturating_sub(self.refresh_before),
        })
    }
}

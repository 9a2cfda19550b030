//! The built-in destination `partner-callbacks`: delivers a prompt addressed
//! to one registered partner to the `callback_url` registered for it. It is
//! not a connector file (registered partners come and go at run time); the
//! registry in the store says, at each attempt, where the prompt goes and
//! how it is signed. ADR 0008 explains the design.
//!
//! The body is the canonical prompt CloudEvent (`application/cloudevents+json`),
//! with the headers every HTTP connector sends (`ce-id`, `Idempotency-Key`,
//! `X-Wastehub-Delivery`, `X-Wastehub-Attempt`) and, for a partner that
//! signs its own requests, `X-Wastehub-Timestamp` and `X-Wastehub-Signature`
//! made with the partner's signing secret over `timestamp "\n" message id
//! "\n" body`, so the partner can tell the hub's callbacks from forgeries.
//!
//! Safety rails, as for every HTTP connector: timeouts, no redirects (the
//! registered address is the only one reached; an address in a prompt or an
//! answer is never followed), answers read up to `callback_max_response`.
//! 2xx is delivered; 408, 425, 429 and 5xx are retried (`Retry-After`
//! honoured); any other status, an unknown partner or one without a
//! callback is dead at once, so nothing loops.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;

use super::async_trait_shim::BoxFuture;
use super::client::{self, ClientSettings};
use super::http_json::{classify_transport, judge, parse_retry_after};
use super::signature::Signer;
use super::{BuildError, DeliveryError, Outbound, Outgoing, Receipt};
use crate::config::connector::{AckConfig, SignatureConfig};
use crate::config::{PromptsConfig, Secret};
use crate::prompts::CALLBACK_DESTINATION;
use crate::store::Store;

/// Characters of an answer kept in traces.
const EXCERPT_CHARS: usize = 512;

/// Delivers prompts to registered partners' callbacks.
pub struct PartnerCallbacks {
    client: reqwest::Client,
    store: Store,
    max_response: usize,
    ack: AckConfig,
}

impl PartnerCallbacks {
    /// One client for every partner's callback, with `[prompts]` limits.
    pub fn new(cfg: &PromptsConfig, store: Store) -> Result<Self, BuildError> {
        let client = client::build(
            CALLBACK_DESTINATION,
            &ClientSettings {
                headers: &BTreeMap::new(),
                bearer_token: None,
                tls: None,
                timeout: cfg.callback_timeout.0,
                connect_timeout: cfg.callback_connect_timeout.0,
                pool_max_idle: cfg.callback_concurrency,
            },
            Path::new("."),
        )?;
        Ok(Self {
            client,
            store,
            max_response: cfg.callback_max_response.as_usize(),
            ack: AckConfig::default(),
        })
    }

    async fn send(&self, msg: Outgoing<'_>) -> Result<Receipt, DeliveryError> {
        let event: Value =
            serde_json::from_slice(msg.body).map_err(|_| DeliveryError::never("body", "the prompt is not a JSON CloudEvent"))?;
        let data = event.get("data").unwrap_or(&Value::Null);
        let Some(id) = crate::prompts::route::partner_recipient(data) else {
            return Err(DeliveryError::never("recipient", "the prompt names no single registered partner"));
        };
        let row = self
            .store
            .partner(id)
            .await
            .map_err(|e| DeliveryError::backoff("registry", format!("the partner registry could not be read: {e}")))?;
        let Some(row) = row else {
            return Err(DeliveryError::never("recipient", format!("partner {id} is not registered")));
        };
        let Some(url) = row.callback_url.as_deref().filter(|u| !u.is_empty()) else {
            return Err(DeliveryError::never("recipient", format!("partner {id} has no callback_url")));
        };
        // Checked at registration; a stored address that no longer parses is dead.
        let url =
            reqwest::Url::parse(url).map_err(|_| DeliveryError::never("recipient", format!("partner {id}'s callback_url is not a URL")))?;
        let mut req = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/cloudevents+json")
            .header("ce-id", msg.message_id.as_str())
            .header("Idempotency-Key", msg.message_id.as_str())
            .header("X-Wastehub-Delivery", msg.delivery_id.as_str())
            .header("X-Wastehub-Attempt", msg.attempt.to_string());
        if let (Some(algorithm), Some(secret)) = (&row.signing, &row.signing_secret) {
            let signer = Signer::new(&SignatureConfig {
                algorithm: algorithm.clone(),
                secret: Secret::new(secret.clone()),
                key_id: None,
            });
            let now = chrono::Utc::now().timestamp();
            req = req
                .header("X-Wastehub-Timestamp", now.to_string())
                .header("X-Wastehub-Signature", signer.header(now, msg.message_id.as_str(), msg.body));
        }
        let resp = req.body(msg.body.to_vec()).send().await.map_err(classify_transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = client::read_body(resp, self.max_response).await.map_err(classify_transport)?;
        let text: String = String::from_utf8_lossy(&body.bytes).chars().take(EXCERPT_CHARS).collect();
        judge(&self.ack, status, retry_after, &text, None)
    }
}

impl Outbound for PartnerCallbacks {
    fn kind(&self) -> &'static str {
        "partner_callback"
    }

    fn deliver<'a>(&'a self, msg: Outgoing<'a>) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.send(msg))
    }

    /// Nothing to probe: each partner has its own address, reached only
    /// with a prompt for it.
    fn healthcheck(&self) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async { Ok(()) })
    }
}

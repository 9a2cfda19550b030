//! Kind `letters`: another province's hub. Each delivery is a negotiation
//! message the workflow sent (`crate::xp`): it is made a letter (the
//! canonical event without the hub's own `sourceid`, its id the hub message
//! id, so every attempt is the same letter), signed with the hub's key for
//! this partner (`[letters] signing_key`), and posted to the one configured
//! address. The answer must be the partner's receipt for this very letter,
//! signed with one of its registered keys: the letter and the receipt are
//! kept in `xp_letters` as evidence that it was delivered.
//!
//! 200 with a receipt that verifies: delivered. 401 or 422 with a refused
//! receipt: dead (the partner says why; sending the same again cannot
//! help). 408, 425, 429, 5xx, timeouts, or a 200 whose receipt does not
//! verify (the partner may not have kept it): retried by the schedule.

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;

use super::async_trait_shim::BoxFuture;
use super::client::{self, ClientSettings};
use super::http_json::{classify_transport, parse_retry_after};
use super::{BuildError, DeliveryError, Outbound, Outgoing, Receipt, Retry};
use crate::config::ConnectorConfig;
use crate::config::connector::OutboundConfig;
use crate::config::letters::LetterKeys;
use crate::letters::keys::PartnerKeys;
use crate::letters::{self, Verdict};
use crate::model::now_millis;
use crate::store::Store;
use crate::store::xp::LetterRow;

/// Characters of an answer kept in traces.
const EXCERPT_CHARS: usize = 512;

/// Sends signed letters to one province.
pub struct LettersConnector {
    name: String,
    url: reqwest::Url,
    client: reqwest::Client,
    keys: LetterKeys,
    store: Store,
    max_response: usize,
}

impl LettersConnector {
    /// Builds the client and reads the keys (checked at load already).
    pub fn new(cfg: &ConnectorConfig, out: &OutboundConfig, store: Store) -> Result<Self, BuildError> {
        let bad = |message: String| BuildError::Config {
            name: cfg.name.clone(),
            message,
        };
        let l = cfg.letters.as_ref().ok_or_else(|| bad("kind \"letters\" needs [letters]".into()))?;
        let keys = l.keys(super::config_dir(cfg)).map_err(|e| bad(e.to_string()))?;
        let url = reqwest::Url::parse(&out.url).map_err(|e| bad(format!("url: {e}")))?;
        let client = client::build(
            &cfg.name,
            &ClientSettings {
                headers: &out.headers,
                bearer_token: out.bearer_token.as_ref(),
                tls: out.tls.as_ref(),
                timeout: out.timeout.0,
                connect_timeout: out.connect_timeout.0,
                pool_max_idle: out.concurrency,
            },
            super::config_dir(cfg),
        )?;
        Ok(Self {
            name: cfg.name.clone(),
            url,
            client,
            keys,
            store,
            max_response: out.max_response.as_usize(),
        })
    }

    /// The letter for a stored canonical event.
    fn letter(body: &[u8]) -> Result<Value, DeliveryError> {
        let mut event: Value =
            serde_json::from_slice(body).map_err(|_| DeliveryError::never("body", "the message is not a JSON CloudEvent"))?;
        if let Some(o) = event.as_object_mut() {
            o.remove("sourceid");
        }
        Ok(event)
    }

    async fn send(&self, msg: Outgoing<'_>) -> Result<Receipt, DeliveryError> {
        let letter =
            letters::sign_letter(&Self::letter(msg.body)?, &self.keys.own).map_err(|e| DeliveryError::never("sign", e.to_string()))?;
        let text = letter.to_string();
        let s = |k: &str| letter.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let resp = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/cloudevents+json")
            .header("ce-id", msg.message_id.as_str())
            .header("Idempotency-Key", msg.message_id.as_str())
            .body(text.clone())
            .send()
            .await
            .map_err(classify_transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = client::read_body(resp, self.max_response).await.map_err(classify_transport)?;
        let answer = String::from_utf8_lossy(&body.bytes).into_owned();
        let (judged, checked) = assess(&self.name, status, retry_after, &answer, &letter, &self.keys.partner);
        let row = |verdict: &str, reason: Option<String>| LetterRow {
            letter_source: s("source"),
            letter_id: s("id"),
            direction: "out".into(),
            connector: self.name.clone(),
            r#type: s("type"),
            subject: s("subject"),
            letter: text.clone(),
            receipt: Some(answer.clone()),
            verdict: verdict.to_string(),
            reason,
            message_id: Some(msg.message_id.as_str().to_string()),
            at: now_millis(),
        };
        // A receipt the rules took (accepted, or a signed refusal) is kept as
        // evidence; one that does not verify is not.
        match (&judged, checked) {
            (Ok(_), _) => self.keep(&row("accepted", None)).await?,
            (Err(e), Some(r)) if e.retry == Retry::Never && r.verdict == Verdict::Refused => {
                self.keep(&row("refused", r.reason)).await?;
            }
            _ => {}
        }
        judged
    }

    /// Keeps the letter and the receipt; a later attempt's receipt replaces
    /// an earlier one's (the partner answers a repeat with the same).
    async fn keep(&self, row: &LetterRow) -> Result<(), DeliveryError> {
        let store_err = |e: crate::store::StoreError| DeliveryError::backoff("store", format!("the receipt could not be kept: {e}"));
        if !self.store.xp_letter_put(row).await.map_err(store_err)? {
            self.store
                .xp_letter_receipt(
                    &row.letter_source,
                    &row.letter_id,
                    row.receipt.as_deref().unwrap_or(""),
                    &row.verdict,
                    row.reason.as_deref(),
                )
                .await
                .map_err(store_err)?;
        }
        Ok(())
    }
}

/// What connector `name` makes of the answer (`status`, `Retry-After`,
/// body) to `letter`, with the partner's registered keys: the delivery's
/// result, and the partner's receipt when it verified for this letter.
/// Pure, so that the contract tests judge an answer by the same rules.
pub fn assess(
    name: &str,
    status: u16,
    retry_after: Option<std::time::Duration>,
    answer: &str,
    letter: &Value,
    partner: &PartnerKeys,
) -> (Result<Receipt, DeliveryError>, Option<letters::Receipt>) {
    let excerpt: String = answer.chars().take(EXCERPT_CHARS).collect();
    let fail = |retry: Retry, class: &'static str, message: String| DeliveryError {
        retry,
        class,
        message,
        http_status: Some(status),
        excerpt: Some(excerpt.clone()),
    };
    if matches!(status, 408 | 425 | 429) || status >= 500 {
        let retry = retry_after.map_or(Retry::Backoff, Retry::After);
        return (Err(fail(retry, "status", format!("{name} answered {status}"))), None);
    }
    let receipt: Option<Value> = serde_json::from_str(answer).ok();
    let checked = receipt.as_ref().map(|r| letters::Receipt::check(r, letter, partner));
    match (status, checked) {
        (200, Some(Ok(r))) if r.verdict == Verdict::Accepted => {
            let reference = receipt
                .as_ref()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let ok = Receipt {
                http_status: status,
                ack_code: Some("accepted".into()),
                reference,
                excerpt: excerpt.clone(),
            };
            (Ok(ok), Some(r))
        }
        (_, Some(Ok(r))) if r.verdict == Verdict::Refused && (400..500).contains(&status) => {
            let reason = r.reason.clone().unwrap_or_default();
            (
                Err(fail(Retry::Never, "refused", format!("{name} refused the letter: {reason}"))),
                Some(r),
            )
        }
        (200, Some(Err(e))) => (
            Err(fail(Retry::Backoff, "receipt", format!("the receipt does not verify: {e}"))),
            None,
        ),
        (200, _) => (
            Err(fail(Retry::Backoff, "receipt", "the answer is not a signed receipt".into())),
            None,
        ),
        (_, _) => (
            Err(fail(
                Retry::Never,
                "status",
                format!("{name} answered {status} without a signed refusal"),
            )),
            None,
        ),
    }
}

impl Outbound for LettersConnector {
    fn kind(&self) -> &'static str {
        "letters"
    }

    fn deliver<'a>(&'a self, msg: Outgoing<'a>) -> BoxFuture<'a, Result<Receipt, DeliveryError>> {
        Box::pin(self.send(msg))
    }

    /// An OPTIONS request to the address: it sends no letter.
    fn healthcheck(&self) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            self.client
                .request(reqwest::Method::OPTIONS, self.url.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(classify_transport)
        })
    }
}

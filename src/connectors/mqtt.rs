//! The `mqtt` connector kind: receives from an MQTT broker (MQTT 3.1.1,
//! QoS 1, persistent session) and hands each message to the ingest
//! [`Sink`]. A message is acknowledged to the broker (PUBACK) only after the
//! sink returned, i.e. after the commit, or after a permanent refusal that
//! was logged and counted. Transient refusals (backlog full, shutting down,
//! the hub's own failure) are retried with backoff, in order, without an
//! ack; a message not acknowledged when the hub stops is redelivered by the
//! broker's persistent session on the next start.
//!
//! Two tasks: the *poller* drives the `rumqttc` event loop (connect,
//! reconnect, pings, acks out, publishes in) and never waits on the
//! pipeline except when `inflight` messages are already waiting; the
//! *handler* takes publishes one by one. It must not open any connection
//! but the configured broker's. Docs: `docs/connectors/mqtt.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, Publish, QoS};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Receiver;
use super::health::HealthReporter;
use crate::config::mqtt::{MAX_PACKET, MqttConfig, MqttFormat, MqttTopic, broker_address};
use crate::error::ApiError;
use crate::ingest::sink::{Sink, Submitted, is_transient};
use crate::telemetry::{LABEL_CONNECTOR, LABEL_OUTCOME, RECEIVER_CONNECTED, RECEIVER_MESSAGES_TOTAL};

/// First wait after a transient refusal or a lost connection; it doubles.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the final acks and the DISCONNECT may take at shutdown.
const DISCONNECT_WITHIN: Duration = Duration::from_secs(2);

/// Whether the connector is connected to its broker: its healthcheck. The
/// state is also published as the `wastehub_receiver_connected` gauge,
/// every change is logged, and the receiver reports it to the health board
/// (`GET /api/v1/connectors`) with what it found.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<AtomicBool>);

impl Health {
    /// True while a session with the broker is up and every subscription
    /// was granted (SUBACK without failures, and no error since).
    pub fn connected(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, connector: &str, up: bool) {
        if self.0.swap(up, Ordering::Relaxed) != up {
            metrics::gauge!(RECEIVER_CONNECTED, LABEL_CONNECTOR => connector.to_string()).set(if up { 1.0 } else { 0.0 });
        }
    }
}

/// A configured MQTT receiver, not yet running.
pub struct MqttConnector {
    name: String,
    cfg: MqttConfig,
    health: Health,
}

impl MqttConnector {
    /// Checks the broker address (already validated at load).
    pub fn new(name: &str, cfg: &MqttConfig) -> Result<Self, super::BuildError> {
        broker_address(&cfg.url).map_err(|message| super::BuildError::Config {
            name: name.to_string(),
            message,
        })?;
        Ok(Self {
            name: name.to_string(),
            cfg: cfg.clone(),
            health: Health::default(),
        })
    }

    /// The healthcheck: whether the broker connection is up.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The client options: persistent session, manual acks, and a packet
    /// limit at MQTT's own maximum so that an oversized message is read,
    /// refused and acknowledged rather than breaking the connection (which
    /// would make the broker send it again for ever).
    fn options(&self) -> MqttOptions {
        let (host, port) = broker_address(&self.cfg.url).unwrap_or_default();
        let mut o = MqttOptions::new(self.cfg.client_id.clone(), host, port);
        o.set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(self.cfg.keep_alive.0.max(Duration::from_secs(1)))
            .set_max_packet_size(MAX_PACKET, 64 * 1024)
            .set_request_channel_capacity(self.cfg.inflight + 16);
        if let Some(user) = &self.cfg.username {
            let password = self.cfg.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default();
            o.set_credentials(user.clone(), password);
        }
        o
    }

    /// Runs until `stop` fires; see the module docs.
    pub fn run(self, sink: Sink, stop: CancellationToken) -> Receiver {
        Box::pin(async move {
            let (client, mut events) = AsyncClient::new(self.options(), self.cfg.inflight + 16);
            let mut net = NetworkOptions::new();
            net.set_connection_timeout(self.cfg.connect_timeout.0.as_secs().max(1));
            events.set_network_options(net);
            let (tx, rx) = mpsc::channel(self.cfg.inflight.max(1));
            let reporter = sink.health();
            let handler = Handler {
                name: self.name.clone(),
                client: client.clone(),
                sink,
                topics: self.cfg.topics.clone(),
                max_payload: self.cfg.max_payload.as_usize(),
            };
            let handling = tokio::spawn(handler.run(rx, stop.clone()));
            self.poll(&client, &mut events, tx, &stop, &reporter).await;
            // The handler finishes the message in hand (its commit and ack)
            // and stops; then the queued acks go out before the DISCONNECT,
            // which keeps the session (and its unacknowledged messages).
            let _ = handling.await;
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(DISCONNECT_WITHIN, async {
                loop {
                    match events.poll().await {
                        Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            self.health.set(&self.name, false);
            reporter.unknown("the receiver has stopped");
            tracing::info!(connector = %self.name, "MQTT receiver stopped.");
        })
    }

    async fn poll(
        &self,
        client: &AsyncClient,
        events: &mut EventLoop,
        tx: mpsc::Sender<Publish>,
        stop: &CancellationToken,
        reporter: &HealthReporter,
    ) {
        let mut backoff = FIRST_BACKOFF;
        metrics::gauge!(RECEIVER_CONNECTED, LABEL_CONNECTOR => self.name.clone()).set(0.0);
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                e = events.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff = FIRST_BACKOFF;
                    tracing::info!(connector = %self.name, session_present = ack.session_present, "MQTT receiver connected.");
                    // Subscribing again on every connect is harmless and
                    // picks up filters added to the file. Spawned: the
                    // request channel is drained only by this loop.
                    let filters: Vec<_> = self
                        .cfg
                        .topics
                        .iter()
                        .map(|t| rumqttc::SubscribeFilter::new(t.filter.clone(), QoS::AtLeastOnce))
                        .collect();
                    let (client, name) = (client.clone(), self.name.clone());
                    tokio::spawn(async move {
                        if let Err(e) = client.subscribe_many(filters).await {
                            tracing::warn!(connector = %name, error = %e, "MQTT subscribe could not be sent.");
                        }
                    });
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    // Healthy once the broker took every subscription.
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        tracing::error!(connector = %self.name, "The MQTT broker refused a subscription (check its ACL).");
                        reporter.down("connected, but the broker refused a subscription (check its ACL)");
                    } else {
                        // The board first: whoever sees the gauge at 1 finds it up there too.
                        reporter.up(format!(
                            "connected to the broker; {} topic filter(s) subscribed",
                            ack.return_codes.len()
                        ));
                        self.health.set(&self.name, true);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    metrics::counter!(RECEIVER_MESSAGES_TOTAL, LABEL_CONNECTOR => self.name.clone(), LABEL_OUTCOME => "received")
                        .increment(1);
                    // Waits only when `inflight` messages are already queued.
                    tokio::select! {
                        () = stop.cancelled() => return,
                        sent = tx.send(p) => if sent.is_err() { return },
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if self.health.connected() {
                        tracing::warn!(connector = %self.name, error = %e, "MQTT connection lost; reconnecting.");
                    } else {
                        tracing::warn!(connector = %self.name, error = %e, retry_in = ?backoff, "MQTT broker not reachable; will retry.");
                    }
                    self.health.set(&self.name, false);
                    reporter.down(format!("not connected to the broker: {e}"));
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Takes the received publishes one at a time, in order.
struct Handler {
    name: String,
    client: AsyncClient,
    sink: Sink,
    topics: Vec<MqttTopic>,
    max_payload: usize,
}

/// What became of one message.
enum Outcome {
    Committed(Submitted),
    Refused(ApiError),
    /// Not handed to the pipeline (stopping): not acknowledged.
    Stopped,
}

impl Handler {
    async fn run(self, mut rx: mpsc::Receiver<Publish>, stop: CancellationToken) {
        loop {
            let p = tokio::select! {
                () = stop.cancelled() => return,
                p = rx.recv() => match p { Some(p) => p, None => return },
            };
            match self.handle(&p, &stop).await {
                Outcome::Stopped => return,
                Outcome::Committed(s) => {
                    let outcome = if s.duplicate { "duplicate" } else { "committed" };
                    self.count(outcome);
                    tracing::debug!(connector = %self.name, topic = %p.topic, message_id = %s.message_id, duplicate = s.duplicate, "MQTT message committed.");
                    self.ack(&p).await;
                }
                Outcome::Refused(e) => {
                    self.count("refused");
                    let errors: Vec<String> = e.errors.iter().map(|f| format!("{}: {}", f.path, f.message)).collect();
                    tracing::warn!(
                        connector = %self.name, topic = %p.topic, code = e.code, error = %e.detail, errors = ?errors,
                        "MQTT message refused; it is acknowledged and dropped."
                    );
                    self.ack(&p).await;
                }
            }
        }
    }

    /// Submits one message, retrying transient refusals with backoff until
    /// it is committed, permanently refused, or the receiver stops.
    async fn handle(&self, p: &Publish, stop: &CancellationToken) -> Outcome {
        let Some(topic) = self.topics.iter().find(|t| rumqttc::matches(&p.topic, &t.filter)) else {
            return Outcome::Refused(ApiError::bad_request(
                "unknown_topic",
                format!("topic {:?} matches no configured filter", p.topic),
            ));
        };
        if p.payload.len() > self.max_payload {
            return Outcome::Refused(ApiError::too_large(format!(
                "the payload has {} bytes; max_payload is {}",
                p.payload.len(),
                self.max_payload
            )));
        }
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.submit(topic, &p.payload).await {
                Ok(s) => return Outcome::Committed(s),
                Err(e) if is_transient(&e) => {
                    self.count("retried");
                    tracing::info!(connector = %self.name, topic = %p.topic, code = e.code, retry_in = ?backoff, "MQTT message not taken now; will retry before acknowledging.");
                    tokio::select! {
                        () = stop.cancelled() => return Outcome::Stopped,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Outcome::Refused(e),
            }
        }
    }

    async fn submit(&self, topic: &MqttTopic, payload: &[u8]) -> Result<Submitted, ApiError> {
        match (topic.format, &topic.message_type) {
            (MqttFormat::Document, Some(ty)) => self.sink.document(ty, payload).await,
            (MqttFormat::Document, None) => Err(ApiError::bad_request("no_type", "a document topic needs a type")),
            (MqttFormat::Cloudevent, ty) => {
                let event: Value = serde_json::from_slice(payload)
                    .map_err(|e| ApiError::bad_request("malformed_json", format!("the payload is not JSON: {e}")))?;
                if let Some(ty) = ty
                    && event.get("type").and_then(Value::as_str) != Some(ty.as_str())
                {
                    return Err(ApiError::bad_request(
                        "type_not_allowed",
                        format!("this topic takes events of type {ty} only"),
                    ));
                }
                self.sink.event(event).await
            }
        }
    }

    async fn ack(&self, p: &Publish) {
        // Fails only when the event loop is gone (stopping); the broker then
        // sends the message again and the hub answers it as a duplicate.
        if let Err(e) = self.client.ack(p).await {
            tracing::warn!(connector = %self.name, error = %e, "MQTT acknowledgement could not be sent; the broker will redeliver.");
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(RECEIVER_MESSAGES_TOTAL, LABEL_CONNECTOR => self.name.clone(), LABEL_OUTCOME => outcome).increment(1);
    }
}

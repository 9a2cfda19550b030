//! The `mqtt` channel: a from-partner example whose `wire` is a payload the
//! partner publishes. It needs a broker (`WASTEHUB_TEST_MQTT`); without one
//! the example is reported `SKIP` with a loud line, as the other MQTT tests
//! do.
//!
//! In the stage of a contract with an `mqtt` connector, the connector is
//! enabled on the test broker with a client id of its own and every topic
//! filter under a prefix of its own (`wh-test/<ulid>/`), so runs in parallel
//! never see each other's messages. The payload is published (QoS 1) on
//! the example's `topic` under that prefix, once the connector reports that
//! its subscriptions are in place; the connector's new messages are then
//! compared with `canonical`.

use super::stage::{SETTLE_WITHIN, Stage};
use super::{canonical_name, read, read_json};
use crate::mqtt::publish;
use crate::support::exchange::Example;
use crate::support::{eventually, normalise};

/// The test broker and the names a stage gave its `mqtt` connectors.
pub(super) struct Broker {
    pub url: String,
    /// Put before every topic filter of the stage's connectors.
    pub prefix: String,
    /// The client ids used, whose sessions are ended when the stage stops.
    pub client_ids: Vec<String>,
}

/// Replays one `channel = "mqtt"` example; `Ok(false)`: skipped (no broker).
pub(super) async fn replay(stage: &Stage, ex: &Example) -> Result<bool, String> {
    if crate::mqtt::broker().is_none() {
        return Ok(false);
    }
    let c = stage.receiver(ex)?;
    let broker = stage
        .broker
        .as_ref()
        .ok_or_else(|| format!("connector {} is not on the test broker", c.name))?;
    let ty = ex.message_type.clone().unwrap_or_default();
    let topics = &c.mqtt.as_ref().ok_or_else(|| format!("connector {} has no [mqtt]", c.name))?.topics;
    // The filters as shipped, without the stage's prefix.
    let shipped: Vec<(&str, Option<&str>)> = topics
        .iter()
        .map(|t| {
            let f = t.filter.strip_prefix(&format!("{}/", broker.prefix)).unwrap_or(&t.filter);
            (f, t.message_type.as_deref())
        })
        .collect();
    let topic = ex.topic.clone().unwrap_or_default();
    // The first filter that matches takes the message, as in the receiver.
    match shipped.iter().find(|(f, _)| rumqttc::matches(&topic, f)) {
        Some((_, Some(t))) if *t == ty => {}
        Some((f, t)) => {
            return Err(format!("topic {topic:?} is taken by filter {f:?} of type {t:?}, not {ty:?}"));
        }
        None => {
            return Err(format!(
                "topic {topic:?} matches none of connector {}'s filters {:?}",
                c.name,
                shipped.iter().map(|(f, _)| *f).collect::<Vec<_>>()
            ));
        }
    }
    let path = format!("/api/v1/connectors/{}", c.name);
    let subscribed = eventually(SETTLE_WITHIN, || async {
        stage.app.op_get(&path).await.1["health"]["status"] == "up"
    })
    .await;
    if !subscribed {
        let (_, view) = stage.app.op_get(&path).await;
        return Err(format!(
            "connector {} did not subscribe within {SETTLE_WITHIN:?}: {}",
            c.name, view["health"]
        ));
    }
    let source = super::source_of(c);
    let before = stage.messages(&source, &ty).await;
    let expected = read_json(ex.canonical.as_ref().ok_or("no canonical event")?)?;
    let want = match &expected {
        serde_json::Value::Array(a) => a.len(),
        _ => 1,
    };
    publish(&broker.url, &format!("{}/{topic}", broker.prefix), read(&ex.wire)?).await;
    let stored = eventually(SETTLE_WITHIN, || async {
        stage.messages(&source, &ty).await.iter().filter(|id| !before.contains(*id)).count() >= want
    })
    .await;
    if !stored {
        return Err(format!(
            "no {want} new {ty} message(s) from {source} within {SETTLE_WITHIN:?} (a refused payload is logged by the receiver)"
        ));
    }
    let got = super::new_events(stage, &source, &ty, &before, &expected).await?;
    normalise::compare_json(expected, got, &ex.ignore)
        .map(|()| true)
        .map_err(|d| format!("the stored events differ from {}:\n      {d}", canonical_name(ex)))
}

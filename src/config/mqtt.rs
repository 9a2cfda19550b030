//! `[mqtt]` in a connector file of kind `mqtt`: which broker to subscribe
//! to, as whom, and which topics carry which message types. The receiving
//! code is `connectors::mqtt`; this module owns only the shape and the
//! per-file rules ([`check`]).

use serde::Deserialize;

use super::Secret;
use super::connector::{ConnectorConfig, ConnectorKind};
use super::load::line_of_key;
use super::units::{ByteSize, HumanDuration};

/// `[mqtt]`: one broker connection with a persistent session.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (port 1883 by default): the only address the
    /// connector connects to.
    pub url: String,
    /// MQTT client id. It names the broker's persistent session, so it must
    /// stay the same across restarts and be used by one hub process only.
    pub client_id: String,
    /// Broker user name, if the broker asks for one.
    pub username: Option<String>,
    /// Broker password (write `${VAR}`); never logged.
    pub password: Option<Secret>,
    /// Interval of MQTT pings when nothing else is sent (at least 1s).
    #[serde(default = "default_keep_alive")]
    pub keep_alive: HumanDuration,
    /// TCP connect and CONNACK timeout (whole seconds, at least 1s).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Largest payload taken; a larger one is refused (logged, counted and
    /// acknowledged, so it does not come back for ever).
    #[serde(default = "default_max_payload")]
    pub max_payload: ByteSize,
    /// Most received messages held unacknowledged in the hub; beyond it the
    /// hub stops reading from the broker until one is acknowledged.
    #[serde(default = "default_inflight")]
    pub inflight: usize,
    /// The subscriptions (QoS 1), in order; a message takes the first whose
    /// filter matches its topic.
    #[serde(default)]
    pub topics: Vec<MqttTopic>,
}

/// One `[[mqtt.topics]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTopic {
    /// MQTT topic filter (`park/+/weighing`, `tracks/#`).
    pub filter: String,
    /// The message type. Required for `document` (it selects the inbound
    /// mapping); for `cloudevent`, when set, the event's `type` must equal it.
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    /// How the payload is read.
    #[serde(default)]
    pub format: MqttFormat,
}

/// How a payload is read.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MqttFormat {
    /// A canonical CloudEvent (structured JSON).
    #[default]
    Cloudevent,
    /// The partner's own format, translated by its `[inbound.mappings]`
    /// entry for the topic's type.
    Document,
}

fn default_keep_alive() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}
fn default_max_payload() -> ByteSize {
    ByteSize(256 * 1024)
}
fn default_inflight() -> usize {
    64
}

/// The broker's address from an `mqtt://` URL: (host, port).
pub fn broker_address(url: &str) -> Result<(String, u16), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("url {url:?} is not a valid address: {e}"))?;
    match u.scheme() {
        "mqtt" => {}
        "mqtts" => return Err(format!("url {url:?}: mqtts (TLS) is not supported yet; use mqtt://")),
        s => return Err(format!("url {url:?} must be an mqtt:// address, not {s}://")),
    }
    let host = u
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err(format!("url {url:?} has no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("url {url:?}: put credentials in username/password, not in the url"));
    }
    if !matches!(u.path(), "" | "/") || u.query().is_some() {
        return Err(format!("url {url:?} must be only mqtt://host:port"));
    }
    Ok((host, u.port().unwrap_or(1883)))
}

/// Per-file rules for `[mqtt]`: (line, what is wrong) for each problem;
/// `text` is the file as written, for the lines.
pub fn check(c: &ConnectorConfig, text: &str) -> Vec<(Option<usize>, String)> {
    let mut errors = Vec::new();
    let mut bad = |key: &str, msg: String| errors.push((line_of_key(text, key), msg));
    // A topic's problem is reported at the line of its filter.
    let topic_line = |filter: &str| {
        let quoted = format!("{filter:?}");
        text.lines()
            .position(|l| l.contains("filter") && l.contains(&quoted))
            .map(|i| i + 1)
    };
    let m = match (c.kind, &c.mqtt) {
        (ConnectorKind::Mqtt, Some(m)) => m,
        (ConnectorKind::Mqtt, None) => {
            bad("kind", "kind \"mqtt\" needs an [mqtt] section (url, client_id, topics)".into());
            return errors;
        }
        (_, Some(_)) => {
            bad("mqtt", "an [mqtt] section is only allowed with kind = \"mqtt\"".into());
            return errors;
        }
        (_, None) => return errors,
    };
    if c.inbound.is_none() {
        bad(
            "mqtt",
            "kind \"mqtt\" needs an [inbound] section (sources, and mappings for document topics)".into(),
        );
    }
    if c.outbound.is_some() {
        bad("outbound", "kind \"mqtt\" only receives; it has no [outbound] side".into());
    }
    if let Err(msg) = broker_address(&m.url) {
        bad("url", msg);
    }
    if m.client_id.is_empty() || m.client_id.len() > 128 || m.client_id.chars().any(|ch| ch.is_control()) {
        bad(
            "client_id",
            "client_id must be 1 to 128 printable characters, the same on every start".into(),
        );
    }
    if m.password.is_some() && m.username.is_none() {
        bad("password", "password needs a username".into());
    }
    if m.keep_alive.0 < std::time::Duration::from_secs(1) || m.keep_alive.0.as_secs() > u64::from(u16::MAX) {
        bad("keep_alive", "keep_alive must be between 1s and 18h".into());
    }
    if m.connect_timeout.0 < std::time::Duration::from_secs(1) {
        bad(
            "connect_timeout",
            "connect_timeout must be at least 1s (the client counts whole seconds)".into(),
        );
    }
    if m.max_payload.0 == 0 || m.max_payload.0 > MAX_PACKET as u64 {
        bad(
            "max_payload",
            format!("max_payload must be between 1 byte and {MAX_PACKET} bytes (MQTT's limit)"),
        );
    }
    if m.inflight == 0 || m.inflight > usize::from(u16::MAX) {
        bad("inflight", "inflight must be between 1 and 65535".into());
    }
    if m.topics.is_empty() {
        bad("mqtt", "[mqtt] needs at least one [[mqtt.topics]] entry".into());
    }
    let mappings = c.inbound.as_ref().map(|i| &i.mappings);
    for t in &m.topics {
        let line = topic_line(&t.filter);
        let mut bad = |msg: String| errors.push((line, msg));
        if !rumqttc::valid_filter(&t.filter) || t.filter.contains('\0') {
            bad(format!(
                "filter {:?} is not a valid MQTT topic filter ('+' and '#' must fill a whole level, '#' only last)",
                t.filter
            ));
        }
        match (t.format, &t.message_type) {
            (_, Some(ty)) if ty.is_empty() => bad(format!("topic {:?}: type must not be empty", t.filter)),
            (MqttFormat::Document, None) => bad(format!("topic {:?}: a document topic needs a type (its inbound mapping)", t.filter)),
            (MqttFormat::Document, Some(ty)) if !mappings.is_some_and(|m| m.contains_key(ty)) => bad(format!(
                "topic {:?} takes {ty} documents, but [inbound.mappings] has no mapping for {ty}",
                t.filter
            )),
            _ => {}
        }
    }
    errors
}

/// MQTT's largest packet (the "remaining length" limit, 256 MiB - 1).
pub const MAX_PACKET: usize = 268_435_455;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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

    const HEAD: &str = "name = \"c\"\nkind = \"mqtt\"\n[inbound]\nsources = [\"urn:c\"]\n";

    fn good_mqtt() -> String {
        format!(
            "{HEAD}[inbound.mappings]\n\"ledger-entry\" = \"x/ledger-entry-in\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nclient_id = \"hub-c\"\n\
             [[mqtt.topics]]\nfilter = \"park/+/ledger\"\ntype = \"ledger-entry\"\nformat = \"document\"\n\
             [[mqtt.topics]]\nfilter = \"tracks/#\"\n"
        )
    }

    #[test]
    fn accepts_a_complete_mqtt_connector() {
        assert_eq!(load(&good_mqtt()), "");
    }

    #[test]
    fn reports_a_bad_url_at_its_line() {
        let m = load(&good_mqtt().replace("mqtt://127.0.0.1:1883", "http://127.0.0.1:1883"));
        assert!(m.contains("c.toml:8:") && m.contains("mqtt://"), "{m}");
        let m = load(&good_mqtt().replace("mqtt://127.0.0.1:1883", "mqtts://broker:8883"));
        assert!(m.contains("c.toml:8:") && m.contains("not supported"), "{m}");
        let m = load(&good_mqtt().replace("mqtt://127.0.0.1:1883", "mqtt://"));
        assert!(m.contains("c.toml:8:"), "{m}");
    }

    #[test]
    fn reports_a_bad_filter_at_its_line() {
        let m = load(&good_mqtt().replace("tracks/#", "tracks/#/x"));
        assert!(m.contains("c.toml:15:") && m.contains("not a valid MQTT topic filter"), "{m}");
        let m = load(&good_mqtt().replace("park/+/ledger", "park/a+/ledger"));
        assert!(m.contains("c.toml:11:"), "{m}");
    }

    #[test]
    fn a_document_topic_needs_an_inbound_mapping_for_its_type() {
        let m = load(&good_mqtt().replace("\"ledger-entry\" = ", "\"manifest-created\" = "));
        assert!(m.contains("c.toml:11:") && m.contains("no mapping for ledger-entry"), "{m}");
        let m = load(&good_mqtt().replace("type = \"ledger-entry\"\n", ""));
        assert!(m.contains("c.toml:11:") && m.contains("needs a type"), "{m}");
    }

    #[test]
    fn needs_topics_inbound_and_the_mqtt_section() {
        let m = load(&format!("{HEAD}[mqtt]\nurl = \"mqtt://h\"\nclient_id = \"x\"\n"));
        assert!(m.contains("c.toml:5:") && m.contains("at least one [[mqtt.topics]]"), "{m}");
        let m = load(HEAD);
        assert!(m.contains("c.toml:2:") && m.contains("needs an [mqtt] section"), "{m}");
        let m = load("name = \"c\"\nkind = \"mqtt\"\n[mqtt]\nurl = \"mqtt://h\"\nclient_id = \"x\"\n[[mqtt.topics]]\nfilter = \"a\"\n");
        assert!(m.contains("c.toml:3:") && m.contains("needs an [inbound] section"), "{m}");
    }

    #[test]
    fn refuses_an_mqtt_section_on_another_kind() {
        let m = load(&good_mqtt().replace("kind = \"mqtt\"", "kind = \"http_json\""));
        assert!(m.contains("c.toml:7:") && m.contains("only allowed with kind = \"mqtt\""), "{m}");
    }

    #[test]
    fn checks_limits_and_credentials() {
        let text = good_mqtt().replace(
            "client_id = \"hub-c\"\n",
            "client_id = \"\"\npassword = \"p\"\nkeep_alive = \"0\"\ninflight = 0\nmax_payload = \"0\"\n",
        );
        let m = load(&text);
        for (line, what) in [
            (9, "client_id"),
            (10, "password needs a username"),
            (11, "keep_alive"),
            (12, "inflight"),
            (13, "max_payload"),
        ] {
            assert!(m.contains(&format!("c.toml:{line}: ")) && m.contains(what), "{what}: {m}");
        }
    }
}

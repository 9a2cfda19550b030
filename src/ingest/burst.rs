//! Which burst a checked video-AI alert belongs to (`[ingest.alerts]`):
//! source, camera, event type and (linked) subject, the alert's own
//! `started_at` and the sender's window. The store folds alerts of one burst
//! ([`crate::store::bursts`]). The alert's start time is used, not the
//! time the hub received it, so a backlog a platform sends all at once after
//! an outage is not mistaken for a burst, and a resent alert falls in the
//! window of its first copy whenever it arrives. Pure.

use serde_json::Value;

use crate::config::AlertsConfig;
use crate::model::Envelope;
use crate::store::Burst;

/// The burst of `env` when it is a video-AI alert of `partner` and its
/// window is not zero.
pub fn of(cfg: &AlertsConfig, partner: &str, env: &Envelope) -> Option<Burst> {
    if env.r#type != "video-ai-alert" {
        return None;
    }
    let window_ms = i64::try_from(cfg.window_for(partner).as_millis()).unwrap_or(i64::MAX);
    if window_ms == 0 {
        return None;
    }
    let data = env.data();
    let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
    // The schema requires all three; an alert that somehow lacks one is kept.
    let started_at = chrono::DateTime::parse_from_rfc3339(&text("started_at")?).ok()?.timestamp_millis();
    Some(Burst {
        source: env.source.clone(),
        camera_id: text("camera_id")?,
        event_type: text("event_type")?,
        subject: env.subject.clone(),
        started_at,
        window_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;
    use serde_json::json;
    use std::time::Duration;

    fn env(ty: &str, data: Value) -> Envelope {
        let raw = json!({"data": data});
        Envelope {
            id: "1".into(),
            source: "urn:s".into(),
            r#type: ty.into(),
            subject: "camera:c7".into(),
            time: "t".into(),
            jurisdiction: "350206".into(),
            raw: raw.as_object().cloned().unwrap_or_default(),
        }
    }

    fn cfg() -> AlertsConfig {
        AlertsConfig {
            dedupe_window: HumanDuration(Duration::from_secs(60)),
            partner_windows: [("quiet".to_string(), HumanDuration(Duration::ZERO))].into(),
        }
    }

    #[test]
    fn alerts_have_a_burst_with_their_start_and_the_partners_window() {
        let data = json!({"camera_id": "c7", "event_type": "FIRE_SMOKE", "started_at": "2026-03-10T21:15:12+08:00"});
        let b = of(&cfg(), "park", &env("video-ai-alert", data.clone())).expect("a burst");
        assert_eq!(
            (b.camera_id.as_str(), b.event_type.as_str(), b.subject.as_str()),
            ("c7", "FIRE_SMOKE", "camera:c7")
        );
        assert_eq!(b.window_ms, 60_000);
        assert_eq!(b.started_at, 1_773_148_512_000);
        assert!(
            of(&cfg(), "quiet", &env("video-ai-alert", data.clone())).is_none(),
            "window 0: every alert kept"
        );
        assert!(of(&cfg(), "park", &env("weighing", data)).is_none());
    }
}

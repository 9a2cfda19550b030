//! The Qinqing service platform: the hub with the shipped `connectors/qinqing.toml`
//! (its `${…}` filled in for the test) against the in-process simulator.
//! Prompts and rectification requests are delivered as signed notices with
//! the platform's receipt stored; a wrong or missing secret, a busy
//! platform and a reply from the platform take their contracted paths. (The
//! contract's example exchanges are replayed by the contract tests,
//! `tests/it/contracts.rs`, with every other contract's.)

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wastehub::config::Secret;
use wastehub::ingest::auth::generate_key;
use wastehub::sim::qinqing::reply::ReplyRequest;
use wastehub::sim::qinqing::{DEV_SECRET, NOTICES_PATH, Outage, QinqingConfig, QinqingSim};

use crate::support::{HubSpec, TestApp, eventually, repo};

/// The source the provincial system raises prompts under; the test's
/// sending partner may use it.
const PROMPT_SOURCE: &str = "urn:fj:provincial-swms";

struct Rig {
    app: TestApp,
    sim: QinqingSim,
    stop: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Fills `${NAME}` and `${NAME:-default}` for the names in `vars`; the
/// others are left for the loader (which then takes their defaults).
pub(crate) fn fill(text: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        for open in [format!("${{{name}}}"), format!("${{{name}:-")] {
            while let Some(start) = out.find(&open) {
                let Some(len) = out[start..].find('}') else { break };
                out.replace_range(start..=start + len, value);
            }
        }
    }
    out
}

/// A hub with the shipped Qinqing connector signing with `hub_secret`, and
/// the simulator (which expects [`DEV_SECRET`]).
async fn rig(hub_secret: &str, schedule: &str) -> Rig {
    let stop = CancellationToken::new();
    let sim = QinqingSim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        QinqingConfig::default(),
        stop.clone(),
    )
    .expect("simulator");
    let (key, key_sha) = generate_key();
    let shipped = std::fs::read_to_string(repo().join("connectors/qinqing.toml")).expect("shipped connector");
    let vars: BTreeMap<&str, String> = [
        ("QINQING_URL", sim.url(NOTICES_PATH)),
        ("QINQING_SIGNING_SECRET", hub_secret.to_string()),
        ("QINQING_KEY_SHA256", key_sha),
        ("QINQING_RETRY_SCHEDULE", schedule.to_string()),
    ]
    .into();
    let mut spec = HubSpec::new()
        .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
        // The shipped timeout (10s) and rate limit need a longer lease than the harness's.
        .config("[delivery]\nlease = \"30s\"");
    spec.connectors[0].1 = spec.connectors[0].1.replace(
        "sources = [\"urn:test:cell\"]",
        &format!("sources = [\"urn:test:cell\", \"{PROMPT_SOURCE}\"]"),
    );
    spec.connectors.push(("qinqing".into(), fill(&shipped, &vars)));
    let app = TestApp::spawn(spec).await;
    sim.set_hub(&app.base, Secret::new(key));
    Rig { app, sim, stop }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example(name: &str, file: &str) -> Value {
    read_json(&repo().join("contracts/qinqing/examples").join(name).join(file))
}

/// The Qinqing delivery of a message in its trace.
async fn qinqing_delivery(app: &TestApp, id: &str) -> Value {
    let t = app.trace(id).await;
    t["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["destination"] == "qinqing")
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_prompt_and_a_rectification_request_are_delivered_with_the_platform_receipt() {
    let rig = rig(DEV_SECRET, "0s 200ms 400ms").await;
    let prompt = rig.app.accept(&example("01-receiver-confirmation-prompt", "event.json")).await;
    let request = rig.app.accept(&example("02-rectification-request", "event.json")).await;
    // A prompt only for regulators is not the platform's.
    let mut to_regulators = example("01-receiver-confirmation-prompt", "event.json");
    to_regulators["id"] = json!("FJ-NT-regulators-only");
    to_regulators["data"]["recipients"] = json!([{"jurisdiction": "350181"}]);
    let unrouted = rig.app.accept(&to_regulators).await;
    for id in [&prompt, &request] {
        assert!(
            rig.app.wait_status(id, "qinqing", "delivered", Duration::from_secs(10)).await,
            "{id}"
        );
    }
    // Two subjects: they may arrive in either order.
    let mut accepted = rig.sim.accepted();
    accepted.sort_by_key(|a| a.notice_type.clone());
    assert_eq!(
        accepted
            .iter()
            .map(|a| (a.request_id.as_str(), a.notice_type.as_str()))
            .collect::<Vec<_>>(),
        vec![(prompt.as_str(), "01"), (request.as_str(), "02")]
    );
    for (id, a) in [(&prompt, &accepted[0]), (&request, &accepted[1])] {
        let d = qinqing_delivery(&rig.app, id).await;
        assert_eq!(d["receipt"]["ack_code"], "0000", "{d}");
        assert_eq!(d["receipt"]["reference"], a.receipt_no.as_str(), "{d}");
    }
    assert_eq!(qinqing_delivery(&rig.app, &unrouted).await, Value::Null);
    assert_eq!(rig.sim.counts().unauthorized, 0);
}

#[tokio::test]
async fn a_wrong_signature_is_refused_by_the_platform_and_retried_until_the_schedule_ends() {
    let rig = rig("a-secret-the-platform-does-not-know", "0s 200ms").await;
    let id = rig.app.accept(&example("02-rectification-request", "event.json")).await;
    assert!(rig.app.wait_status(&id, "qinqing", "dead", Duration::from_secs(10)).await);
    let d = qinqing_delivery(&rig.app, &id).await;
    let attempts = d["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "401 is retried by the connector: {d}");
    for a in attempts {
        assert_eq!(a["http_status"], 401, "{a}");
        assert!(a["response_excerpt"].as_str().is_some_and(|e| e.contains("4010")), "{a}");
    }
    assert_eq!(rig.sim.counts().unauthorized, 2);
    assert!(rig.sim.accepted().is_empty());
}

#[tokio::test]
async fn without_a_signing_secret_nothing_is_sent() {
    let rig = rig("", "0s 200ms").await;
    let id = rig.app.accept(&example("01-receiver-confirmation-prompt", "event.json")).await;
    assert!(rig.app.wait_status(&id, "qinqing", "dead", Duration::from_secs(10)).await);
    let d = qinqing_delivery(&rig.app, &id).await;
    assert!(
        d["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .all(|a| a["error_class"] == "signature"),
        "{d}"
    );
    let c = rig.sim.counts();
    assert_eq!((c.accepted, c.unauthorized), (0, 0), "the platform saw no request");
}

#[tokio::test]
async fn a_busy_platform_is_retried_until_it_accepts() {
    let rig = rig(DEV_SECRET, "0s 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms 300ms").await;
    rig.sim.set_outage(Some(Outage::Busy));
    let id = rig.app.accept(&example("01-receiver-confirmation-prompt", "event.json")).await;
    let sim = rig.sim.clone();
    assert!(eventually(Duration::from_secs(10), || async { sim.counts().busy >= 2 }).await);
    // Between attempts it is retrying; an attempt may be under way as we look.
    let status = rig.app.delivery_status(&id, "qinqing").await;
    assert!(matches!(status.as_str(), "retrying" | "in_flight"), "{status}");
    rig.sim.set_outage(None);
    assert!(rig.app.wait_status(&id, "qinqing", "delivered", Duration::from_secs(10)).await);
    let d = qinqing_delivery(&rig.app, &id).await;
    let attempts = d["attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 3, "{d}");
    assert_eq!(attempts[0]["error_class"], "ack_code");
    assert_eq!(rig.sim.accepted().len(), 1);
}

#[tokio::test]
async fn a_reply_from_the_platform_is_stored_as_a_canonical_reply_and_not_sent_back() {
    let rig = rig(DEV_SECRET, "0s 200ms 400ms").await;
    let request = rig.app.accept(&example("02-rectification-request", "event.json")).await;
    assert!(rig.app.wait_status(&request, "qinqing", "delivered", Duration::from_secs(10)).await);
    let reply = ReplyRequest {
        notice_id: "NT-2026-0203-000112".into(),
        reply_type: Some("02".into()),
        content: Some("已于2月11日完成管理计划备案，备案编号HWGLJH-350582-2026-0046。".into()),
        attachments: Some(vec![json!({
            "fileName": "管理计划备案回执.pdf",
            "fileType": "application/pdf",
            "sha256": "3f1c9a0e5b7d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e",
            "fileSize": 204811
        })]),
        user_name: Some("许文斌".into()),
        ..ReplyRequest::default()
    };
    let sent = rig.sim.send_reply(reply.clone()).await.expect("reply sent");
    assert_eq!(sent.status, 202, "{}", sent.answer);
    let id = sent.answer["id"].as_str().expect("message id").to_string();
    let t = rig.app.trace(&id).await;
    let event = &t["event"];
    assert_eq!(event["source"], "urn:fj:qinqing");
    assert_eq!(event["subject"], "prompt:NT-2026-0203-000112");
    assert_eq!(event["jurisdiction"], "350582");
    assert_eq!(event["sourceid"], sent.reply["replyId"]);
    let data = &event["data"];
    assert_eq!(data["kind"], "REPLY");
    assert_eq!(data["reply_to"], json!({"notification_id": "NT-2026-0203-000112"}));
    assert_eq!(data["reply"]["action"], "RECTIFIED");
    assert_eq!(data["reply"]["replied_by"]["usci"], "91350582MA2XQ7H8BG");
    assert_eq!(data["reply"]["evidence"][0]["size"], 204811);
    assert_eq!(data["rule_id"], "R18");
    assert_eq!(data["severity"], "ALERT");
    assert_eq!(data["recipients"], json!([{"jurisdiction": "350582"}]));
    assert!(
        t["deliveries"]
            .as_array()
            .is_none_or(|d| d.iter().all(|d| d["destination"] != "qinqing")),
        "a reply never goes back to the platform: {t}"
    );
    // The same reply posted again is a repeat, answered with the first receipt.
    let again = rig
        .sim
        .send_reply(ReplyRequest {
            reply_id: sent.reply["replyId"].as_str().map(str::to_string),
            replied_at: sent.reply["repliedAt"].as_str().map(str::to_string),
            ..reply
        })
        .await
        .expect("reply sent again");
    assert_eq!((again.status, again.answer["id"].as_str()), (200, Some(id.as_str())));
}

//! Devices and cameras: smart-weighing records and video-AI alerts from a
//! registered live partner over HTTP and from a device MQTT connector; the
//! subject the hub links them to (the manifest or ledger batch they name,
//! else the camera); and bursts of alerts from one camera folded into the
//! first within the window, across hub processes too.

use std::time::Duration;

use serde_json::{Value, json};

use crate::mqtt::{broker, publish, skip_without_mqtt};
use crate::support::registry::{live_partner, messages_from, post_as, source};
use crate::support::{FakePartner, HubSpec, TestApp, eventually, repo, samples};

const PARK: &str = "park-xiamen-devices";

fn example(ty: &str, file: &str) -> Value {
    let p = repo().join("schemas/canonical").join(ty).join("examples/valid").join(file);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("example")).expect("json")
}

/// A CloudEvent of `ty` from `source` with the partner's own `subject`.
fn device_event(source: &str, ty: &str, id: &str, subject: &str, data: Value) -> Value {
    let mut e = samples::envelope(ty, id, subject, data);
    e["source"] = json!(source);
    e
}

/// An alert of camera `camera`, `event_type`, starting `secs` seconds after
/// 21:15:00 on 10 March 2026 (Beijing time), linked to nothing.
fn alert(camera: &str, event_type: &str, secs: u32) -> Value {
    let mut d = example("video-ai-alert", "storage-movement-at-night.json");
    d["camera_id"] = json!(camera);
    d["event_type"] = json!(event_type);
    d["alert_id"] = json!(format!("AI-{camera}-{event_type}-{secs}"));
    let t = chrono::DateTime::parse_from_rfc3339("2026-03-10T21:15:00+08:00").expect("a time") + chrono::Duration::seconds(i64::from(secs));
    d["started_at"] = json!(t.to_rfc3339());
    d.as_object_mut().expect("an object").remove("ended_at");
    d
}

/// A hub whose destination `prov` receives device messages, manifests and
/// ledger entries (with extra `[outbound]` lines).
fn spec_with(partner: &FakePartner, outbound_extra: &str) -> HubSpec {
    HubSpec::new().destination(
        "prov",
        &partner.url,
        "\"weighing\", \"video-ai-alert\", \"manifest-*\", \"ledger-entry\"",
        outbound_extra,
    )
}

fn spec(partner: &FakePartner) -> HubSpec {
    spec_with(partner, "")
}

#[tokio::test]
async fn weighing_and_alerts_from_a_registered_partner_are_linked_routed_and_delivered() {
    let partner = FakePartner::start().await;
    let app = TestApp::spawn(spec(&partner)).await;
    let key = live_partner(&app, PARK, &["weighing", "video-ai-alert"], json!({})).await;
    let src = source(PARK);

    // A weighbridge reading of manifest 20263502000123: ordered with the manifest.
    let weighing = example("weighing", "receipt-weighbridge.json");
    let (s, body) = post_as(&app, &key, &device_event(&src, "weighing", "W-1", "wb:gate", weighing)).await;
    assert_eq!(s, 202, "{body}");
    let w = app.trace(body["id"].as_str().expect("a string")).await;
    assert_eq!(w["subject"], "manifest:20263502000123");
    assert_eq!(w["event"]["subject"], "manifest:20263502000123");
    assert_eq!(w["event"]["sourcesubject"], "wb:gate", "the sender's subject is kept aside");

    // A scale reading of a ledger batch, sent with the right subject already.
    let scale = example("weighing", "generation-container.json");
    let (s, body) = post_as(&app, &key, &device_event(&src, "weighing", "W-2", "ledger:HWCS20260302001", scale)).await;
    assert_eq!(s, 202, "{body}");
    let w2 = app.trace(body["id"].as_str().expect("a string")).await;
    assert_eq!(w2["subject"], "ledger:HWCS20260302001");
    assert!(w2["event"].get("sourcesubject").is_none(), "{w2}");

    // An alert at the weighbridge names the same manifest; one at a store names nothing.
    let skipped = example("video-ai-alert", "weighbridge-skipped.json");
    let (s, body) = post_as(&app, &key, &device_event(&src, "video-ai-alert", "A-1", "x", skipped)).await;
    assert_eq!(s, 202, "{body}");
    let a1 = body["id"].as_str().expect("a string").to_string();
    let night = example("video-ai-alert", "storage-movement-at-night.json");
    let (s, body) = post_as(&app, &key, &device_event(&src, "video-ai-alert", "A-2", "x", night)).await;
    assert_eq!(s, 202, "{body}");
    let a2 = body["id"].as_str().expect("a string").to_string();
    assert_eq!(app.trace(&a1).await["subject"], "manifest:20263502000125");
    assert_eq!(app.trace(&a2).await["subject"], "camera:35020600001320000007");

    // Snapshots travel as references, never as image data.
    let mut inline = example("video-ai-alert", "weighbridge-skipped.json");
    inline["snapshots"][0]["uri"] = json!("data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD");
    let (s, body) = post_as(&app, &key, &device_event(&src, "video-ai-alert", "A-3", "x", inline)).await;
    assert_eq!((s, body["code"].as_str()), (422, Some("validation_failed")), "{body}");
    assert!(body.to_string().contains("/data/snapshots/0/uri"), "{body}");

    // All four reach the destination with the linked subjects.
    let delivered = eventually(Duration::from_secs(10), || async { partner.accepted().len() == 4 }).await;
    assert!(delivered, "{:?}", partner.requests().len());
    let mut subjects: Vec<String> = partner.accepted().iter().map(|r| r.subject().to_string()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "camera:35020600001320000007",
            "ledger:HWCS20260302001",
            "manifest:20263502000123",
            "manifest:20263502000125"
        ]
    );
    // The linked alert is found under its manifest's subject with the manifest's own messages.
    let (_, page) = app.op_get("/api/v1/messages?subject=manifest:20263502000125").await;
    assert_eq!(page["items"][0]["id"], a1.as_str(), "{page}");
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_linked_alert_waits_behind_its_manifest() {
    // The manifest's delivery fails first; the alert linked to it is held
    // behind it (same destination, same subject) until the manifest goes.
    let partner = FakePartner::scripted(|r, _| {
        if r.body["type"] == "manifest-created" && r.body["sourceid"] == "M-1" {
            crate::support::Reply::status(503)
        } else {
            crate::support::Reply::status(200)
        }
    })
    .await;
    // Retried long enough for the test to look while the manifest waits.
    let app = TestApp::spawn(spec_with(
        &partner,
        "retry_schedule = \"0s 500ms 500ms 500ms 500ms 500ms 500ms 500ms\"",
    ))
    .await;
    let manifest = samples::manifest(125, "M-1");
    let m = app.accept(&manifest).await;
    let mut skipped = example("video-ai-alert", "weighbridge-skipped.json");
    skipped["manifest_no"] = json!("20263502000125");
    let a = app
        .accept(&samples::envelope("video-ai-alert", "A-1", "camera:whatever", skipped))
        .await;
    assert!(app.wait_status(&m, "prov", "retrying", Duration::from_secs(5)).await);
    assert_eq!(app.delivery_status(&a, "prov").await, "held", "ordered behind its manifest");
    partner.set_script(|_, _| crate::support::Reply::status(200));
    assert!(app.wait_status(&a, "prov", "delivered", Duration::from_secs(10)).await);
    let order: Vec<String> = partner
        .accepted()
        .iter()
        .map(|r| r.body["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(order, ["manifest-created", "video-ai-alert"]);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn alert_bursts_fold_into_the_first_within_the_window_and_start_again_after_it() {
    let partner = FakePartner::start().await;
    let app = TestApp::spawn(spec(&partner)).await;
    let send = |id: &str, data: Value| {
        let ev = samples::envelope("video-ai-alert", id, "camera:c", data);
        let app = &app;
        async move { app.post(&ev).await }
    };
    let cam = "35020600001320000007";

    let first = app
        .accept(&samples::envelope("video-ai-alert", "A-0", "x", alert(cam, "LOITERING", 0)))
        .await;
    // 10 s and 59 s later: the same burst, answered 200 with the first's receipt.
    for (id, secs) in [("A-10", 10), ("A-59", 59)] {
        let r = send(id, alert(cam, "LOITERING", secs)).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("a JSON answer");
        assert_eq!(body["duplicate"], true, "{body}");
        assert_eq!(body["folded_into"], first.as_str(), "{body}");
        assert_eq!(body["id"], first.as_str(), "{body}");
    }
    // Another event type of the same camera, or the same one 2 minutes on: kept.
    let smoke = app
        .accept(&samples::envelope("video-ai-alert", "S-0", "x", alert(cam, "FIRE_SMOKE", 5)))
        .await;
    let later = app
        .accept(&samples::envelope("video-ai-alert", "A-120", "x", alert(cam, "LOITERING", 120)))
        .await;
    // Another camera: kept. The first resent: a plain duplicate, not a fold.
    app.accept(&samples::envelope(
        "video-ai-alert",
        "B-0",
        "x",
        alert("35020600001320000008", "LOITERING", 1),
    ))
    .await;
    let r = send("A-0", alert(cam, "LOITERING", 0)).await;
    let body: Value = r.json().await.expect("a JSON answer");
    assert_eq!((body["duplicate"].as_bool(), body.get("folded_into")), (Some(true), None), "{body}");
    // One 30 s after the second kept alert folds into that one, not the first.
    let r = send("A-150", alert(cam, "LOITERING", 150)).await;
    let body: Value = r.json().await.expect("a JSON answer");
    assert_eq!(body["folded_into"], later.as_str(), "{body}");

    // The first's trace counts what was folded; the folded ones were not stored.
    let t = app.trace(&first).await;
    assert_eq!(t["burst"]["folded"], 2, "{t}");
    assert!(t["burst"]["last_folded_at"].is_string(), "{t}");
    assert_eq!(app.trace(&smoke).await["burst"]["folded"], 0);
    assert_eq!(app.trace(&later).await["burst"]["folded"], 1);
    assert_eq!(messages_from(&app, "urn:test:cell").await.len(), 4);
    assert!(eventually(Duration::from_secs(10), || async { partner.accepted().len() == 4 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(partner.requests().len(), 4, "folded alerts are never delivered");
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_partner_window_of_zero_keeps_every_alert() {
    let partner = FakePartner::start().await;
    let app = TestApp::spawn(spec(&partner).config("[ingest.alerts.partner_windows]\ncell = \"0\"")).await;
    for (id, secs) in [("A-0", 0), ("A-1", 1), ("A-2", 2)] {
        app.accept(&samples::envelope("video-ai-alert", id, "x", alert("c1", "LOITERING", secs)))
            .await;
    }
    assert_eq!(messages_from(&app, "urn:test:cell").await.len(), 3);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_burst_sent_at_once_keeps_exactly_one_alert_across_processes() {
    // On PostgreSQL two hub processes share the store and take the burst
    // together; on SQLite one process takes it concurrently. No route takes
    // alerts here, so no lane lock serialises them: only the burst's own.
    let app = TestApp::spawn(HubSpec::new()).await;
    let sibling = if crate::support::postgres_base().is_some() {
        Some(app.sibling(&HubSpec::new()).await)
    } else {
        None
    };
    let hubs: Vec<&TestApp> = std::iter::once(&app).chain(sibling.as_ref()).collect();
    let sends = (0..12u32).map(|i| {
        let hub = hubs[i as usize % hubs.len()];
        let ev = samples::envelope("video-ai-alert", &format!("A-{i}"), "x", alert("c9", "NO_WEIGHING", i));
        async move {
            let r = hub.post(&ev).await;
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    let answers = futures::future::join_all(sends).await;
    let kept: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 202).map(|(_, b)| b).collect();
    assert_eq!(kept.len(), 1, "{answers:?}");
    let first = kept[0]["id"].as_str().expect("a string");
    for (s, b) in &answers {
        assert!(*s == 202 || (*s == 200 && b["folded_into"] == first), "{s} {b}");
    }
    assert_eq!(app.trace(first).await["burst"]["folded"], 11);
    assert_eq!(messages_from(&app, "urn:test:cell").await.len(), 1);
    if let Some(s) = sibling {
        s.stop().await.expect("a clean stop");
    }
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn device_mqtt_connector_brings_weighing_and_folds_alert_bursts() {
    if skip_without_mqtt("device_mqtt_connector_brings_weighing_and_folds_alert_bursts") {
        return;
    }
    let url = broker().expect("broker");
    let u = ulid::Ulid::generate().to_string().to_lowercase();
    let prefix = format!("wh-test/{u}/devices");
    let connector = format!(
        "name = \"devices-haicang\"\nkind = \"mqtt\"\n[inbound]\nsources = [\"urn:test:devices\"]\n\
         [mqtt]\nurl = \"{url}\"\nclient_id = \"wh-test-devices-{u}\"\nkeep_alive = \"5s\"\n\
         [[mqtt.topics]]\nfilter = \"{prefix}/+/weighing\"\ntype = \"weighing\"\n\
         [[mqtt.topics]]\nfilter = \"{prefix}/+/alerts\"\ntype = \"video-ai-alert\"\n"
    );
    let partner = FakePartner::start().await;
    let mut hub = spec(&partner).config("[server]\nshutdown_grace = \"3s\"");
    hub.connectors.push(("devices-haicang".into(), connector));
    let app = TestApp::spawn(hub).await;
    let up = eventually(Duration::from_secs(15), || async {
        app.op_get("/api/v1/connectors/devices-haicang").await.1["health"]["status"] == "up"
    })
    .await;
    assert!(up, "the device connector did not subscribe");

    let weighing = device_event(
        "urn:test:devices",
        "weighing",
        "W-1",
        "x",
        example("weighing", "receipt-weighbridge.json"),
    );
    publish(
        &url,
        &format!("{prefix}/WBRIDGE-LY-GATE/weighing"),
        weighing.to_string().into_bytes(),
    )
    .await;
    for (i, secs) in [0u32, 5, 9].into_iter().enumerate() {
        let a = device_event(
            "urn:test:devices",
            "video-ai-alert",
            &format!("A-{i}"),
            "x",
            alert("c3", "FIRE_SMOKE", secs),
        );
        publish(&url, &format!("{prefix}/c3/alerts"), a.to_string().into_bytes()).await;
    }
    // A weighing record on the alerts topic is refused (wrong type for the topic).
    publish(&url, &format!("{prefix}/c3/alerts"), weighing.to_string().into_bytes()).await;

    let stored = eventually(Duration::from_secs(10), || async {
        let items = messages_from(&app, "urn:test:devices").await;
        items.len() == 2 && items.iter().any(|m| m["type"] == "video-ai-alert" && m["subject"] == "camera:c3")
    })
    .await;
    assert!(stored, "{:?}", messages_from(&app, "urn:test:devices").await);
    let items = messages_from(&app, "urn:test:devices").await;
    let alert_id = items.iter().find(|m| m["type"] == "video-ai-alert").expect("the alert")["id"]
        .as_str()
        .expect("its id")
        .to_string();
    let folded = eventually(Duration::from_secs(10), || async {
        app.trace(&alert_id).await["burst"]["folded"] == 2
    })
    .await;
    assert!(folded, "{}", app.trace(&alert_id).await);
    let w = items.iter().find(|m| m["type"] == "weighing").expect("the weighing record");
    assert_eq!(w["subject"], "manifest:20263502000123");
    assert!(eventually(Duration::from_secs(10), || async { partner.accepted().len() == 2 }).await);
    app.stop().await.expect("a clean stop");
}

//! Reference checks at ingest: USCI check character, waste code in the
//! edition in force, category; 422 with `/data/...` paths like schema errors.

use serde_json::{Value, json};

use crate::support::samples::{ledger, manifest};
use crate::support::{HubSpec, TestApp};

async fn errors_of(app: &TestApp, ev: &Value) -> Vec<(String, String)> {
    let r = app.post(ev).await;
    let status = r.status();
    let b: Value = r.json().await.expect("json");
    assert_eq!(status, 422, "{b}");
    assert_eq!(b["code"], "validation_failed", "{b}");
    b["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn refuses_bad_identifiers_in_a_manifest_with_their_paths() {
    let app = TestApp::spawn(HubSpec::new()).await;
    let mut ev = manifest(1, "r1");
    ev["time"] = json!("2026-03-02T09:00:00+08:00");
    // 91350100M000100Y43 is the public test vector; K is the wrong check character.
    ev["data"]["consignor"]["usci"] = json!("91350100M000100Y4K");
    ev["data"]["lines"][0]["waste_code"] = json!("900-048-49");
    ev["data"]["lines"][0]["category"] = json!("HW49");
    ev["data"]["lines"][1]["waste_code"] = json!("900-041-49");
    ev["data"]["lines"][1]["category"] = json!("HW08");
    let errors = errors_of(&app, &ev).await;
    let want = [
        ("/data/consignor/usci", "USCI check character is \"K\", expected \"3\""),
        (
            "/data/lines/0/waste_code",
            "waste code 900-048-49 is not in the 2021 edition of the National Hazardous Waste List (in force at 2026-03-02)",
        ),
        (
            "/data/lines/1/category",
            "category HW08 does not match waste code 900-041-49 (expected HW49)",
        ),
    ];
    let got: Vec<(&str, &str)> = errors.iter().map(|(p, m)| (p.as_str(), m.as_str())).collect();
    assert_eq!(got, want);
    let (_, list) = app.op_get("/api/v1/messages").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "nothing stored");
}

#[tokio::test]
async fn refuses_a_ledger_entry_with_an_unknown_code_and_accepts_the_valid_ones() {
    let app = TestApp::spawn(HubSpec::new()).await;
    let mut ev = ledger("l1");
    ev["data"]["waste_code"] = json!("336-999-17");
    ev["data"]["category"] = json!("HW17");
    let errors = errors_of(&app, &ev).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "/data/waste_code");
    assert!(
        errors[0].1.starts_with("waste code 336-999-17 is not in the 2021 edition"),
        "{errors:?}"
    );

    app.accept(&ledger("l2")).await;
    app.accept(&manifest(2, "m2")).await;
}

#[tokio::test]
async fn a_batch_reports_reference_errors_per_event() {
    let app = TestApp::spawn(HubSpec::new()).await;
    let mut bad = manifest(3, "b1");
    bad["data"]["receiver"]["usci"] = json!("91350100M000100Y40");
    let batch = json!([bad, manifest(4, "b2")]);
    let r = app
        .client
        .post(format!("{}/api/v1/messages", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch.to_string())
        .send()
        .await
        .expect("send");
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["results"][0]["status"], 422, "{b}");
    assert_eq!(b["results"][0]["error"]["errors"][0]["path"], "/data/receiver/usci", "{b}");
    assert_eq!(b["results"][1]["status"], 202, "{b}");
}

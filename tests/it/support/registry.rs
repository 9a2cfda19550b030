//! Registered partners for tests: register one through the admin API, put
//! it live (an audited override: these tests are not about conformance),
//! and send as it.

use serde_json::{Value, json};

use super::TestApp;

/// The source of registered partner `id`.
pub fn source(id: &str) -> String {
    format!("urn:wastehub:partner:{id}")
}

/// Registers partner `id` (division 350206) for `types` with extra fields
/// (`callback_url`, `signing`, `mappings`) and returns the creation answer
/// (`api_key`, and `signing_secret` when it signs).
pub async fn register(app: &TestApp, id: &str, types: &[&str], extra: Value) -> Value {
    let mut body = json!({
        "id": id,
        "name": format!("{id} 细胞平台"),
        "division_code": "350206",
        "message_types": types,
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    let (s, created) = app.op_post("/api/v1/partners", &body).await;
    assert_eq!(s, 201, "{created}");
    created
}

/// Puts a registered partner live.
pub async fn go_live(app: &TestApp, id: &str) {
    let (s, v) = app
        .op_post(
            &format!("/api/v1/partners/{id}/go-live"),
            &json!({"override_reason": "测试：设备数据接入"}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("live")), "{v}");
}

/// Registers partner `id` and puts it live; returns its API key.
pub async fn live_partner(app: &TestApp, id: &str, types: &[&str], extra: Value) -> String {
    let created = register(app, id, types, extra).await;
    go_live(app, id).await;
    created["api_key"].as_str().expect("api key").to_string()
}

/// POSTs one CloudEvent with `key`; returns (status, body).
pub async fn post_as(app: &TestApp, key: &str, event: &Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/api/v1/messages", app.base))
        .bearer_auth(key)
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .expect("post");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The hub messages from `source`, newest first.
pub async fn messages_from(app: &TestApp, source: &str) -> Vec<Value> {
    let (s, page) = app.op_get(&format!("/api/v1/messages?source={source}&limit=500")).await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

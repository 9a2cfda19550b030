//! The paging contract of the department simulators, over HTTP: order,
//! cursor, page tokens, changes during a run, limits, token, failures and
//! outages.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::sim::synth::beijing_ms;

/// Records `R01`..`R<n>`; `R03`, `R04` and `R05` share one update time.
fn records(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            let minute = match i {
                3..=5 => 3,
                i => i as u32,
            };
            json!({
                "id": format!("R{i:02}"),
                "v": 1,
                "at": rfc3339_ms(beijing_ms(2026, 3, 1, 8, minute, 0)),
                "note": "original",
            })
        })
        .collect()
}

fn registry(n: usize, cfg: RegistryConfig) -> Registry {
    let mutate: Mutator = Arc::new(|r: &mut Value, _: &mut fastrand::Rng| r["note"] = json!("changed"));
    let spec = RegistrySpec {
        path: "/api/v1/things",
        id_field: "id",
        version_field: "v",
        updated_field: "at",
        records: records(n),
        mutate,
    };
    Registry::new(cfg, spec).unwrap()
}

async fn serve(reg: &Registry) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    crate::sim::serve(listener, reg.router(), CancellationToken::new());
    base
}

/// GETs a page; returns (status, body).
async fn get_page(base: &str, token: Option<&str>, query: &[(&str, &str)]) -> (u16, Value) {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/things"), query).unwrap();
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Follows page tokens from `updated_since = since`; returns every page.
async fn run(base: &str, since: Option<&str>, limit: usize) -> Vec<Value> {
    let limit = limit.to_string();
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![("limit", limit.as_str())];
        if let Some(s) = since {
            q.push(("updated_since", s));
        }
        if let Some(t) = &token {
            q.push(("page_token", t.as_str()));
        }
        let (status, page) = get_page(base, None, &q).await;
        assert_eq!(status, 200, "{page}");
        token = page["next_page_token"].as_str().map(str::to_string);
        pages.push(page);
        if token.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "runaway paging");
    }
}

#[tokio::test]
async fn pages_list_every_record_once_by_update_time_then_id() {
    let reg = registry(9, RegistryConfig::default());
    let base = serve(&reg).await;
    let pages = run(&base, None, 2).await;
    let all: Vec<String> = pages.iter().flat_map(ids).collect();
    let want: Vec<String> = ["R01", "R02", "R03", "R04", "R05", "R06", "R07", "R08", "R09"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(all, want);
    assert_eq!(pages.len(), 5);
    assert!(pages.last().unwrap()["next_page_token"].is_null());
    assert_eq!(
        pages.last().unwrap()["next_cursor"],
        json!(rfc3339_ms(beijing_ms(2026, 3, 1, 8, 9, 0)))
    );
}

#[tokio::test]
async fn cursor_lists_only_records_changed_after_it() {
    let reg = registry(9, RegistryConfig::default());
    let base = serve(&reg).await;
    // Strictly after 08:03: the three records at 08:03 are not listed.
    let since = rfc3339_ms(beijing_ms(2026, 3, 1, 8, 3, 0));
    let all: Vec<String> = run(&base, Some(&since), 50).await.iter().flat_map(ids).collect();
    assert_eq!(all, ["R06", "R07", "R08", "R09"]);
    // The same instant in another zone, and a cursor with microseconds.
    let utc = "2026-03-01T00:05:59.999999Z";
    let all: Vec<String> = run(&base, Some(utc), 50).await.iter().flat_map(ids).collect();
    assert_eq!(all, ["R06", "R07", "R08", "R09"]);
    // A cursor after everything: an empty page that keeps the cursor.
    let (status, page) = get_page(&base, None, &[("updated_since", "2027-01-01T00:00:00+08:00")]).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], json!([]));
    assert!(page["next_page_token"].is_null());
    assert_eq!(page["next_cursor"], "2027-01-01T00:00:00.000+08:00");
}

#[tokio::test]
async fn next_cursor_never_splits_records_sharing_an_update_time() {
    let reg = registry(9, RegistryConfig::default());
    let base = serve(&reg).await;
    // Page 1: R01 R02 R03; R04 and R05 share R03's time and come next.
    let (_, first) = get_page(&base, None, &[("limit", "3")]).await;
    assert_eq!(ids(&first), ["R01", "R02", "R03"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(cursor, rfc3339_ms(beijing_ms(2026, 3, 1, 8, 2, 0)), "resumes before the group");
    // A client that stops here and resumes from the cursor sees the group
    // again (a duplicate R03) and misses nothing.
    let resumed: Vec<String> = run(&base, Some(&cursor), 3).await.iter().flat_map(ids).collect();
    assert_eq!(resumed, ["R03", "R04", "R05", "R06", "R07", "R08", "R09"]);
    // Inside the group the cursor does not move either.
    let (_, second) = get_page(
        &base,
        None,
        &[("limit", "1"), ("page_token", first["next_page_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(ids(&second), ["R04"]);
    assert_eq!(second["next_cursor"], json!(cursor));
}

#[tokio::test]
async fn a_first_page_inside_a_group_resumes_from_the_epoch() {
    // A registry whose first records were all migrated at one time.
    let at = rfc3339_ms(beijing_ms(2025, 1, 1, 8, 0, 0));
    let records: Vec<Value> = (1..=4).map(|i| json!({"id": format!("M{i}"), "v": 1, "at": at})).collect();
    let mutate: Mutator = Arc::new(|_: &mut Value, _: &mut fastrand::Rng| {});
    let spec = RegistrySpec {
        path: "/api/v1/things",
        id_field: "id",
        version_field: "v",
        updated_field: "at",
        records,
        mutate,
    };
    let reg = Registry::new(RegistryConfig::default(), spec).unwrap();
    let base = serve(&reg).await;
    let (_, first) = get_page(&base, None, &[("limit", "2")]).await;
    assert_eq!(ids(&first), ["M1", "M2"]);
    assert_eq!(first["next_cursor"], "1970-01-01T08:00:00.000+08:00");
    let (_, last) = get_page(
        &base,
        None,
        &[("limit", "2"), ("page_token", first["next_page_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(ids(&last), ["M3", "M4"]);
    assert_eq!(last["next_cursor"], json!(at), "the whole group has been listed");
}

#[tokio::test]
async fn the_same_page_token_gives_the_same_page() {
    let reg = registry(9, RegistryConfig::default());
    let base = serve(&reg).await;
    let (_, first) = get_page(&base, None, &[("limit", "4")]).await;
    let token = first["next_page_token"].as_str().unwrap();
    let (_, a) = get_page(&base, None, &[("limit", "4"), ("page_token", token)]).await;
    let (_, b) = get_page(&base, None, &[("limit", "4"), ("page_token", token)]).await;
    assert_eq!(a, b);
    assert_eq!(ids(&a), ["R05", "R06", "R07", "R08"]);
    // updated_since beside a token is not read: the token carries the position.
    let (_, c) = get_page(
        &base,
        None,
        &[
            ("limit", "4"),
            ("page_token", token),
            ("updated_since", "2020-01-01T00:00:00+08:00"),
        ],
    )
    .await;
    assert_eq!(a, c);
}

#[tokio::test]
async fn a_record_changed_during_a_run_is_listed_again_later_and_none_is_skipped() {
    let reg = registry(9, RegistryConfig::default());
    let base = serve(&reg).await;
    let (_, first) = get_page(&base, None, &[("limit", "4")]).await;
    // One record already listed and one not yet listed change mid-run.
    let touched = reg.touch_ids(&["R02".to_string(), "R07".to_string()]);
    assert_eq!(touched.iter().map(|t| t.version).collect::<Vec<_>>(), [2, 2]);
    let mut seen: Vec<String> = ids(&first);
    let mut token = first["next_page_token"].as_str().map(str::to_string);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_string();
    while let Some(t) = token {
        let (_, page) = get_page(&base, None, &[("limit", "4"), ("page_token", t.as_str())]).await;
        seen.extend(ids(&page));
        token = page["next_page_token"].as_str().map(str::to_string);
        cursor = page["next_cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(seen, ["R01", "R02", "R03", "R04", "R05", "R06", "R08", "R09", "R02", "R07"]);
    assert_eq!(cursor, touched[1].updated_at, "the run ends at the last change");
    // The next run from that cursor finds nothing, until something changes.
    assert!(run(&base, Some(&cursor), 10).await.iter().flat_map(ids).next().is_none());
    let again = reg.touch(1);
    let next: Vec<Value> = run(&base, Some(&cursor), 10)
        .await
        .into_iter()
        .flat_map(|p| p["items"].as_array().unwrap().clone())
        .collect();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["id"], json!(again[0].id));
    assert_eq!(next[0]["note"], "changed");
    assert_eq!(next[0]["v"], json!(again[0].version));
}

#[tokio::test]
async fn touches_stamp_strictly_increasing_times() {
    let reg = registry(9, RegistryConfig::default());
    let touched = reg.touch(9);
    let times: Vec<i64> = touched
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(&t.updated_at).unwrap().timestamp_millis())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let distinct: BTreeSet<&String> = touched.iter().map(|t| &t.id).collect();
    assert_eq!(distinct.len(), 9);
    assert_eq!(reg.counts().touched, 9);
}

#[tokio::test]
async fn refuses_a_missing_token_a_large_limit_a_bad_cursor_and_a_bad_page_token() {
    let cfg = RegistryConfig {
        token: "secret-token".into(),
        max_page: 5,
        ..RegistryConfig::default()
    };
    let reg = registry(9, cfg);
    let base = serve(&reg).await;
    let (status, body) = get_page(&base, None, &[]).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, _) = get_page(&base, Some("wrong"), &[]).await;
    assert_eq!(status, 401);
    let ok = Some("secret-token");
    let (status, body) = get_page(&base, ok, &[("limit", "6")]).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_PARAMETER")));
    for bad in ["0", "-1", "ten"] {
        assert_eq!(get_page(&base, ok, &[("limit", bad)]).await.0, 400, "{bad}");
    }
    let (status, _) = get_page(&base, ok, &[("updated_since", "2026-03-01 08:00:00")]).await;
    assert_eq!(status, 400, "a cursor without a zone");
    let (status, body) = get_page(&base, ok, &[("page_token", "not-a-token")]).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_PAGE_TOKEN")));
    let (status, page) = get_page(&base, ok, &[("limit", "5")]).await;
    assert_eq!((status, ids(&page).len()), (200, 5));
    let c = reg.counts();
    assert_eq!((c.unauthorized, c.bad_requests, c.pages, c.items), (2, 6, 1, 5));
}

#[tokio::test]
async fn an_outage_answers_503_until_it_ends_and_failures_answer_500() {
    let reg = registry(3, RegistryConfig::default());
    let base = serve(&reg).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/_sim/outage"))
        .json(&json!({"down": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client.get(format!("{base}/api/v1/things")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    reg.set_outage(false);
    assert_eq!(get_page(&base, None, &[]).await.0, 200);
    let counts: Counts = client
        .get(format!("{base}/_sim/counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((counts.unavailable, counts.pages), (1, 1));

    let failing = registry(
        3,
        RegistryConfig {
            fail_share: 1.0,
            ..RegistryConfig::default()
        },
    );
    let base = serve(&failing).await;
    let (status, body) = get_page(&base, None, &[]).await;
    assert_eq!((status, body["code"].as_str()), (500, Some("INTERNAL_ERROR")));
}

#[tokio::test]
async fn touch_endpoint_changes_records_at_random_or_by_id() {
    let reg = registry(9, RegistryConfig::default());
    let base = serve(&reg).await;
    let client = reqwest::Client::new();
    let body: Value = client
        .post(format!("{base}/_sim/touch"))
        .json(&json!({"count": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["touched"].as_array().unwrap().len(), 3);
    let body: Value = client
        .post(format!("{base}/_sim/touch"))
        .json(&json!({"ids": ["R01", "nope"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["touched"][0]["id"], "R01");
    assert_eq!(body["touched"].as_array().unwrap().len(), 1);
    let last = reg.records().pop().unwrap();
    assert_eq!((last["id"].as_str(), last["note"].as_str()), (Some("R01"), Some("changed")));
}

#[test]
fn page_tokens_round_trip_and_refuse_tampering() {
    let pos = (1_772_000_000_123, "DG350211000318".to_string());
    let t = encode_token(Some(1_771_000_000_000), &pos);
    assert_eq!(
        decode_token(&t),
        Some(Position {
            cursor: Some(1_771_000_000_000),
            after: Some(pos.clone())
        })
    );
    assert_eq!(decode_token(&encode_token(None, &pos)).unwrap().cursor, None);
    for bad in ["", "zz", &hex::encode("v2|1|2|x"), &hex::encode("v1|a|2|x"), &hex::encode("v1|1|2")] {
        assert!(decode_token(bad).is_none(), "{bad}");
    }
}

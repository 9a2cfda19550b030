//! Journey 3: cross-province transfer negotiation, end to end. The hub runs
//! the shipped province connectors (Jiangxi signing with SM2, Guangdong with
//! Ed25519, Zhejiang with ECDSA P-256: the algorithm is chosen per partner by
//! its keys) against the province simulators, which verify every letter,
//! answer with signed receipts and reply on a script. The test partner
//! `cell` speaks for the department (`[xp] departments`), and a fake
//! department inbox receives what the workflow sends back.
//!
//! Paths: consultation agreed and decided; the whitelist short-cut and its
//! fallback when the year's quantity is used up; a disagreement; a late
//! reply after the overdue prompt, a silent province, a reminder, and
//! deemed acceptance; a forged, an unsigned and a duplicate letter.

use std::path::Path;
use std::time::Duration;

use chrono::{Duration as Days, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wastehub::letters::keys::{PartnerKeys, pem_encode};
use wastehub::letters::{Algorithm, PrivateKey, Receipt};
use wastehub::reference::calendar::{CALENDAR_FILE, WorkCalendar};
use wastehub::sim::province::reply::Script;
use wastehub::sim::province::{Answer, ProvinceConfig, ProvinceSim};

use crate::support::fake_partner::FakePartner;
use crate::support::{HubSpec, TestApp, eventually, repo};

const WITHIN: Duration = Duration::from_secs(20);

/// One neighbouring province: its simulator and the hub's key for it.
struct Province {
    sim: ProvinceSim,
    /// The hub's public key for this partner (to check the hub's receipts).
    hub_keys: PartnerKeys,
}

struct World {
    app: TestApp,
    jiangxi: Province,
    guangdong: Province,
    zhejiang: Province,
    inbox: FakePartner,
    /// Jiangxi's next key, when the test rotates.
    next_key: Option<PrivateKey>,
    _keys: tempfile::TempDir,
    _stop: CancellationToken,
}

fn beijing_now() -> chrono::DateTime<chrono::FixedOffset> {
    Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"))
}

fn rfc3339(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn calendar() -> WorkCalendar {
    let mut errors = Vec::new();
    let c = WorkCalendar::load(&repo().join("schemas/reference").join(CALENDAR_FILE), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    c
}

async fn province(dir: &Path, slug: &str, code: &str, alg: Algorithm, stop: &CancellationToken) -> Province {
    let (hub_key, hub_der) = PrivateKey::generate(alg).expect("hub key");
    std::fs::write(dir.join(format!("fujian-for-{slug}.key.pem")), pem_encode("PRIVATE KEY", &hub_der)).expect("write key");
    let (own, _) = PrivateKey::generate(alg).expect("province key");
    std::fs::write(dir.join(format!("{slug}.pub.pem")), own.public().to_pem()).expect("write public key");
    let hub_keys = PartnerKeys::new(vec![hub_key.public().clone()]).expect("keys");
    let mut cfg = ProvinceConfig::new(code, own, hub_keys.clone());
    cfg.reply_delay = Duration::from_millis(100);
    cfg.late_after = Duration::from_secs(2);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sim = ProvinceSim::start(listener, cfg, stop.clone()).expect("province simulator");
    Province { sim, hub_keys }
}

impl World {
    async fn start(extra_config: &str) -> Self {
        Self::build(extra_config, None).await
    }

    /// A world whose shipped Jiangxi connector file is first changed by `edit`;
    /// a next key for Jiangxi is made and its public key written beside the old.
    async fn start_with(edit: impl Fn(&str) -> String) -> Self {
        Self::build("", Some(&edit)).await
    }

    async fn build(extra_config: &str, edit: Option<&dyn Fn(&str) -> String>) -> Self {
        let stop = CancellationToken::new();
        let keys = tempfile::tempdir().expect("tempdir");
        let jiangxi = province(keys.path(), "jiangxi", "36", Algorithm::Sm2Sm3, &stop).await;
        let guangdong = province(keys.path(), "guangdong", "44", Algorithm::Ed25519, &stop).await;
        let zhejiang = province(keys.path(), "zhejiang", "33", Algorithm::EcdsaP256Sha256, &stop).await;
        let inbox = FakePartner::start().await;
        let mut spec = HubSpec::new()
            .config("[xp]\ndepartments = [\"cell\"]\ncheck_interval = \"200ms\"")
            // The province connectors wait up to 10 s per attempt.
            .config("[delivery]\nlease = \"30s\"")
            .config(extra_config)
            .destination("dept-inbox", &inbox.url, "\"xp-*\", \"whitelist-entry\", \"prompt\"", "");
        let mut next_key = None;
        for slug in ["jiangxi", "guangdong", "zhejiang"] {
            let mut text = std::fs::read_to_string(repo().join(format!("connectors/province-{slug}.toml"))).expect("shipped connector");
            if slug == "jiangxi"
                && let Some(edit) = edit
            {
                text = edit(&text);
                let (key, _) = PrivateKey::generate(Algorithm::Sm2Sm3).expect("next key");
                std::fs::write(keys.path().join("jiangxi-next.pub.pem"), key.public().to_pem()).expect("write next key");
                next_key = Some(key);
            }
            spec.connectors.push((format!("province-{slug}"), text));
        }
        let mut env = vec![
            ("WASTEHUB_XP_ENABLED".to_string(), "true".to_string()),
            ("WASTEHUB_XP_KEYS".to_string(), keys.path().display().to_string()),
        ];
        for (slug, p) in [("JIANGXI", &jiangxi), ("GUANGDONG", &guangdong), ("ZHEJIANG", &zhejiang)] {
            env.push((format!("PROVINCE_{slug}_URL"), p.sim.url("/letters")));
            env.push((format!("PROVINCE_{slug}_RETRY_SCHEDULE"), "0s 200ms 500ms 1s".into()));
        }
        spec.env = env.into_iter().collect();
        let app = TestApp::spawn(spec).await;
        for p in [&jiangxi, &guangdong, &zhejiang] {
            p.sim.set_hub(&app.base);
        }
        Self {
            app,
            jiangxi,
            guangdong,
            zhejiang,
            inbox,
            next_key,
            _keys: keys,
            _stop: stop,
        }
    }

    /// Posts a letter to the hub as another province's hub would.
    async fn post_letter(&self, letter: &Value) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}/api/v1/xp/letters", self.app.base))
            .body(letter.to_string())
            .send()
            .await
            .expect("the hub answers")
    }

    /// Posts a department letter (as `cell`, the department here); returns
    /// the hub message id.
    async fn department(&self, ty: &str, id: &str, data: Value) -> String {
        let event = json!({
            "specversion": "1.0", "id": id, "source": "urn:test:cell", "type": ty,
            "subject": format!("xp:{}", data["application_no"].as_str().expect("application_no")),
            "time": rfc3339(beijing_now()), "jurisdiction": "350000", "data": data,
        });
        self.app.accept(&event).await
    }

    async fn record(&self, application_no: &str) -> Value {
        let (s, v) = self.app.op_get(&format!("/api/v1/xp/{application_no}")).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn wait_state(&self, application_no: &str, state: &str) -> Value {
        let ok = eventually(WITHIN, || async {
            let (s, v) = self.app.op_get(&format!("/api/v1/xp/{application_no}")).await;
            s == 200 && v["negotiation"]["state"] == state
        })
        .await;
        let v = self.record(application_no).await;
        assert!(ok, "{application_no} never reached {state}: {v:#}");
        v
    }

    /// The bodies the department inbox received of `ty` about `application_no`.
    fn inbox(&self, ty: &str, application_no: &str) -> Vec<Value> {
        self.inbox
            .accepted()
            .into_iter()
            .map(|r| r.body)
            .filter(|b| b["type"] == ty && b["subject"] == format!("xp:{application_no}"))
            .collect()
    }
}

fn request(application_no: &str, receiver: &Value, quantity: &str, submitted_at: &str) -> Value {
    let today = beijing_now().date_naive();
    json!({
        "application_no": application_no, "sending_province": "35",
        "consignor": {"usci": "91350181MA2Y4KD6XT", "name": "福清融通汽车服务有限公司", "site_id": "S350181-0102"},
        "receiver": receiver,
        "lines": [{"waste_code": "900-052-31", "category": "HW31", "name": "废铅蓄电池", "quantity_t": quantity, "method_code": "R4"}],
        "requested_period": {"from": today.to_string(), "to": (today + Days::days(300)).to_string()},
        "documents": [{"kind": "APPLICATION_FORM", "file": {"name": "跨省转移申请表.pdf", "media_type": "application/pdf",
            "sha256": "5d41402abc4b2a76b9719d911017c592ae0e8d2c7a8b1f3e9d0c6a4b2e1f3a5c", "size": 231004}}], "submitted_at": submitted_at
    })
}

fn jiangxi_receiver() -> Value {
    json!({"usci": "91360121MA35GH2W54", "name": "南昌恒泰再生铅业有限公司", "province": "36",
           "site_id": "S360121-0001", "licence_no": "赣危废经字〔2024〕第031号", "licence_valid_to": "2029-06-30"})
}

fn accepted(application_no: &str, at: &str) -> Value {
    json!({"application_no": application_no, "authority_division": "350000", "outcome": "ACCEPTED", "received_at": at, "accepted_at": at})
}

fn consultation(application_no: &str, to: &str, letter_no: &str, sent_at: &str) -> Value {
    json!({"letter_no": letter_no, "application_no": application_no, "from_province": "35", "to_province": to,
           "preliminary_opinion": "经初审，申请材料齐全，同意转移，特此商请。", "sent_at": sent_at})
}

/// Request, acceptance and consultation for `application_no` to a receiver in `to`.
async fn consult(w: &World, application_no: &str, receiver: Value, to: &str, backdate_days: i64) {
    let then = beijing_now() - Days::days(backdate_days);
    let at = rfc3339(then);
    w.department(
        "xp-request",
        &format!("{application_no}-req"),
        request(application_no, &receiver, "180", &at),
    )
    .await;
    w.department("xp-acceptance", &format!("{application_no}-acc"), accepted(application_no, &at))
        .await;
    w.department(
        "xp-consultation",
        &format!("{application_no}-con"),
        consultation(
            application_no,
            to,
            &format!("闽环固商〔2026〕{}号", &application_no[application_no.len() - 2..]),
            &at,
        ),
    )
    .await;
}

#[tokio::test]
async fn a_consultation_agreed_is_decided_with_every_letter_signed_and_receipted() {
    let w = World::start("").await;
    let app_no = "KSZY-350181-2026-0101";
    consult(&w, app_no, jiangxi_receiver(), "36", 0).await;
    let v = w.wait_state(app_no, "REPLIED").await;
    let n = &v["negotiation"];
    // The reply is due 10 working days after the letter, on the calendar.
    let today = beijing_now().date_naive();
    let cal = calendar();
    let reply = n["deadlines"]
        .as_array()
        .expect("deadlines")
        .iter()
        .find(|d| d["kind"] == "REPLY")
        .expect("reply deadline")
        .clone();
    let (due, _) = cal.add_working_days_provisional(today, 10);
    assert_eq!(reply["due"], json!(due.to_string()), "{reply}");
    assert_eq!(reply["responsible"], json!("360000"));
    assert_eq!(reply["late_by"], json!(0));
    // Jiangxi got the consultation once, signed with the hub's SM2 key.
    let letters = w.jiangxi.sim.letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].letter["type"], "xp-consultation");
    assert_eq!(letters[0].letter["sigalg"], "sm2-sm3");
    // The department was told of the reply.
    assert!(eventually(WITHIN, || async { w.inbox("xp-reply", app_no).len() == 1 }).await);

    let decision = json!({
        "decision_no": "闽环固转〔2026〕0101号", "application_no": app_no, "basis": "CONSULTATION",
        "reply_letter_no": n["reply"]["letter"]["letter_no"],
        "consignor": {"usci": "91350181MA2Y4KD6XT", "name": "福清融通汽车服务有限公司", "site_id": "S350181-0102"},
        "receiver": {"usci": "91360121MA35GH2W54", "name": "南昌恒泰再生铅业有限公司", "province": "36", "licence_no": "赣危废经字〔2024〕第031号"},
        "lines": [{"waste_code": "900-052-31", "category": "HW31", "name": "废铅蓄电池", "quantity_t": "180", "method_code": "R4"}],
        "valid_from": today.to_string(), "valid_to": (today + Days::days(300)).to_string(),
        "decided_at": rfc3339(beijing_now()),
        "notified_parties": [{"kind": "RECEIVING_ENVIRONMENT_DEPT", "name": "江西省生态环境厅", "province": "36"}]
    });
    w.department("xp-decision", "dec-0101", decision).await;
    let v = w.wait_state(app_no, "DECIDED").await;
    assert_eq!(v["negotiation"]["decision"]["basis"], "CONSULTATION");
    assert!(
        eventually(WITHIN, || async {
            w.jiangxi.sim.letters().iter().any(|l| l.letter["type"] == "xp-decision")
        })
        .await
    );

    // Evidence: each letter with a receipt that verifies against the other side's keys.
    let v = eventually(WITHIN, || async {
        w.record(app_no).await["letters"].as_array().map_or(0, Vec::len) == 3
    })
    .await;
    assert!(v, "three letters kept");
    let record = w.record(app_no).await;
    let sim_keys = PartnerKeys::new(vec![w.jiangxi.sim.public_key().clone()]).expect("keys");
    for l in record["letters"].as_array().expect("letters") {
        let letter: Value = serde_json::from_str(l["letter"].as_str().expect("letter")).expect("json");
        let receipt: Value = serde_json::from_str(l["receipt"].as_str().expect("receipt")).expect("json");
        let keys = if l["direction"] == "out" { &sim_keys } else { &w.jiangxi.hub_keys };
        let r = Receipt::check(&receipt, &letter, keys).unwrap_or_else(|e| panic!("receipt of {l}: {e}"));
        assert_eq!(l["verdict"], "accepted");
        assert_eq!(r.letter_id, letter["id"].as_str().expect("id"));
    }
    let history: Vec<&str> = record["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["outcome"].as_str().unwrap_or(""))
        .collect();
    assert!(history.iter().all(|o| *o == "applied"), "{history:?}");

    // The list, all and by state.
    let (s, all) = w.app.op_get("/api/v1/xp").await;
    assert_eq!((s, all.as_array().map(Vec::len)), (200, Some(1)), "{all}");
    let (_, decided) = w.app.op_get("/api/v1/xp?state=DECIDED").await;
    assert_eq!(decided[0]["application_no"], app_no);
    let (_, consulting) = w.app.op_get("/api/v1/xp?state=CONSULTING").await;
    assert_eq!(consulting, json!([]));
    let (s, _) = w.app.op_get("/api/v1/xp?limit=0").await;
    assert_eq!(s, 400);
    let (s, _) = w.app.op_get("/api/v1/xp/KSZY-0000").await;
    assert_eq!(s, 404);
}

fn zhejiang_receiver() -> Value {
    json!({"usci": "91330110MAJL6B3H1J", "name": "杭州余杭绿洲资源再生有限公司", "province": "33",
           "site_id": "ZJ-330110-0088", "licence_no": "浙危废经第3301000123号", "licence_valid_to": "2028-12-31"})
}

fn zhejiang_entry(status: &str, time: &str) -> Value {
    let today = beijing_now().date_naive();
    let mut data = json!({
        "whitelist_id": "ZM-2026-004", "scheme": "ZHE-MIN-2024", "scheme_name": "浙闽危险废物跨省转移白名单合作",
        "direction": "OUTBOUND_FROM_FUJIAN", "partner_province": "33",
        "facility": {"usci": "91330110MAJL6B3H1J", "name": "杭州余杭绿洲资源再生有限公司",
                     "licence_no": "浙危废经第3301000123号", "facility_id": "ZJ-330110-0088"},
        "waste_types": [{"whole_category": "HW31"}],
        "max_quantity_t_per_year": "300",
        "conditions": {"text": "批准之日起30日内完成转移。", "completion_days": 30},
        "valid_from": format!("{}-01-01", today.format("%Y")), "valid_to": format!("{}-12-31", today.format("%Y")),
        "status": status
    });
    if status != "ACTIVE" {
        data["status_reason"] = json!("接收单位停产整改。");
    }
    json!({"type": "whitelist-entry", "subject": "whitelist:ZHE-MIN-2024:ZM-2026-004", "time": time, "data": data})
}

#[tokio::test]
async fn a_whitelisted_request_is_decided_at_once_and_falls_back_when_the_year_is_used_up() {
    let w = World::start("").await;
    let sent = w
        .zhejiang
        .sim
        .send_letter(zhejiang_entry("ACTIVE", &rfc3339(beijing_now() - Days::minutes(5))), false)
        .await
        .expect("send");
    assert_eq!(sent.status, 200, "{sent:?}");
    assert!(sent.receipt_verified, "the hub's receipt verifies: {sent:?}");
    assert!(
        eventually(WITHIN, || async {
            let (_, v) = w.app.op_get("/api/v1/xp/whitelist").await;
            v.as_array().is_some_and(|a| a.len() == 1)
        })
        .await
    );
    // The department hears of Zhejiang's entry.
    assert!(
        eventually(WITHIN, || async {
            w.inbox.accepted().iter().any(|r| r.body["type"] == "whitelist-entry")
        })
        .await
    );

    let now = rfc3339(beijing_now());
    let app_no = "KSZY-350582-2026-0201";
    w.department("xp-request", "req-0201", request(app_no, &zhejiang_receiver(), "200", &now))
        .await;
    w.department("xp-acceptance", "acc-0201", accepted(app_no, &now)).await;
    let v = w.wait_state(app_no, "DECIDED").await;
    let d = &v["negotiation"]["decision"];
    assert_eq!(d["basis"], "WHITELIST");
    assert_eq!(d["issued_by"], "hub");
    assert_eq!(d["whitelist"], "ZHE-MIN-2024/ZM-2026-004");
    // 30-day completion period from today.
    let today = beijing_now().date_naive();
    assert_eq!(d["valid_to"], json!((today + Days::days(29)).to_string()));
    assert!(v["negotiation"]["consultation"].is_null(), "no consultation on the whitelist path");
    // Zhejiang is notified with the decision, signed ECDSA P-256; the department gets it too.
    assert!(
        eventually(WITHIN, || async {
            w.zhejiang
                .sim
                .letters()
                .iter()
                .any(|l| l.letter["type"] == "xp-decision" && l.letter["sigalg"] == "ecdsa-p256-sha256")
        })
        .await
    );
    assert!(eventually(WITHIN, || async { w.inbox("xp-decision", app_no).len() == 1 }).await);

    // 200 t approved of 300 this year: 150 more falls back to consultation.
    let second = "KSZY-350582-2026-0202";
    w.department("xp-request", "req-0202", request(second, &zhejiang_receiver(), "150", &now))
        .await;
    w.department("xp-acceptance", "acc-0202", accepted(second, &now)).await;
    let v = w.wait_state(second, "ACCEPTED").await;
    let note = v["negotiation"]["whitelist_note"].as_str().unwrap_or("");
    assert!(note.contains("allows 300 t a year; 200 t are approved already"), "{note}");
    assert_eq!(v["negotiation"]["deadlines"][1]["kind"], "CONSULTATION");

    // Suspended by Zhejiang: a small request falls back too.
    let sent = w
        .zhejiang
        .sim
        .send_letter(zhejiang_entry("SUSPENDED", &rfc3339(beijing_now())), false)
        .await
        .expect("send");
    assert_eq!(sent.status, 200);
    assert!(
        eventually(WITHIN, || async {
            let (_, v) = w.app.op_get("/api/v1/xp/whitelist").await;
            v[0]["entry"]["status"] == "SUSPENDED"
        })
        .await
    );
    let third = "KSZY-350582-2026-0203";
    w.department("xp-request", "req-0203", request(third, &zhejiang_receiver(), "1", &now))
        .await;
    w.department("xp-acceptance", "acc-0203", accepted(third, &now)).await;
    let v = w.wait_state(third, "ACCEPTED").await;
    assert!(
        v["negotiation"]["whitelist_note"].as_str().unwrap_or("").contains("SUSPENDED"),
        "{v}"
    );
}

#[tokio::test]
async fn a_disagreement_ends_the_negotiation_and_a_decision_after_it_is_refused() {
    let w = World::start("").await;
    let app_no = "KSZY-350181-2026-0301";
    w.guangdong.sim.set_script(app_no, Script::new(Answer::Disagree));
    let receiver = json!({"usci": "91440300MA5FQ8XW1F", "name": "深圳市绿源环保科技有限公司", "province": "44",
                          "site_id": "S440300-0012", "licence_no": "粤危废经第440300001号", "licence_valid_to": "2028-12-31"});
    consult(&w, app_no, receiver, "44", 0).await;
    let v = w.wait_state(app_no, "REFUSED").await;
    assert_eq!(v["negotiation"]["reply"]["decision"], "DISAGREE");
    assert!(v["negotiation"]["reply"]["reasons"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(w.guangdong.sim.letters()[0].letter["sigalg"], "ed25519");
    assert!(eventually(WITHIN, || async { w.inbox("xp-reply", app_no).len() == 1 }).await);
    let today = beijing_now().date_naive();
    let decision = json!({
        "decision_no": "闽环固转〔2026〕0301号", "application_no": app_no, "basis": "CONSULTATION",
        "reply_letter_no": v["negotiation"]["reply"]["letter"]["letter_no"],
        "consignor": {"usci": "91350181MA2Y4KD6XT", "name": "福清融通汽车服务有限公司", "site_id": "S350181-0102"},
        "receiver": {"usci": "91440300MA5FQ8XW1F", "name": "深圳市绿源环保科技有限公司", "province": "44", "licence_no": "粤危废经第440300001号"},
        "lines": [{"waste_code": "900-052-31", "category": "HW31", "name": "废铅蓄电池", "quantity_t": "180", "method_code": "R4"}],
        "valid_from": today.to_string(), "valid_to": (today + Days::days(30)).to_string(),
        "decided_at": rfc3339(beijing_now()),
        "notified_parties": [{"kind": "RECEIVING_ENVIRONMENT_DEPT", "name": "广东省生态环境厅", "province": "44"}]
    });
    w.department("xp-decision", "dec-0301", decision).await;
    assert!(
        eventually(WITHIN, || async {
            w.record(app_no).await["history"].as_array().is_some_and(|h| {
                h.iter()
                    .any(|e| e["outcome"] == "refused" && e["note"].as_str().unwrap_or("").contains("disagreed"))
            })
        })
        .await
    );
    assert_eq!(w.record(app_no).await["negotiation"]["state"], "REFUSED");
    assert!(
        !w.guangdong.sim.letters().iter().any(|l| l.letter["type"] == "xp-decision"),
        "no decision reaches Guangdong"
    );
}

fn prompts(w: &World, application_no: &str, rule: &str) -> Vec<Value> {
    w.inbox("prompt", application_no)
        .into_iter()
        .filter(|p| p["data"]["rule_id"] == rule)
        .collect()
}

#[tokio::test]
async fn deadlines_raise_reminders_and_overdue_prompts_and_a_late_reply_is_counted_late() {
    // A lead time longer than any period: every fresh deadline is due soon.
    let w = World::start("[xp]\nlead_days = 20").await;

    // Late: the consultation went out 30 days ago; Jiangxi answers 2 s after
    // receiving it, by which time the overdue prompt is out.
    let late = "KSZY-350181-2026-0401";
    w.jiangxi.sim.set_script(late, Script::new(Answer::Late));
    consult(&w, late, jiangxi_receiver(), "36", 30).await;
    assert!(eventually(WITHIN, || async { prompts(&w, late, "XP_REPLY_OVERDUE").len() == 1 }).await);
    let p = &prompts(&w, late, "XP_REPLY_OVERDUE")[0];
    assert_eq!(p["data"]["severity"], "ALERT");
    let recipients = p["data"]["recipients"].to_string();
    assert!(recipients.contains("360000") && recipients.contains("350000"), "{recipients}");
    // Jiangxi's department gets it too, as a signed letter.
    assert!(
        eventually(WITHIN, || async {
            w.jiangxi
                .sim
                .letters()
                .iter()
                .any(|l| l.letter["type"] == "prompt" && l.letter["data"]["rule_id"] == "XP_REPLY_OVERDUE")
        })
        .await
    );
    let v = w.wait_state(late, "REPLIED").await;
    let reply = v["negotiation"]["deadlines"]
        .as_array()
        .expect("deadlines")
        .iter()
        .find(|d| d["kind"] == "REPLY")
        .expect("reply")
        .clone();
    assert!(reply["late_by"].as_u64().unwrap_or(0) > 0, "{reply}");
    assert_eq!(reply["overdue_prompted"], true);
    // Prompted once, however many checks ran.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(prompts(&w, late, "XP_REPLY_OVERDUE").len(), 1);

    // Silent: the prompt, and the negotiation stays in consultation.
    let silent = "KSZY-350181-2026-0402";
    w.jiangxi.sim.set_script(silent, Script::new(Answer::Silent));
    consult(&w, silent, jiangxi_receiver(), "36", 30).await;
    assert!(eventually(WITHIN, || async { prompts(&w, silent, "XP_REPLY_OVERDUE").len() == 1 }).await);
    assert_eq!(w.record(silent).await["negotiation"]["state"], "CONSULTING");

    // Reminder: a fresh application's acceptance is due within the lead time.
    let fresh = "KSZY-350181-2026-0403";
    let now = rfc3339(beijing_now());
    w.department("xp-request", "req-0403", request(fresh, &jiangxi_receiver(), "10", &now))
        .await;
    assert!(eventually(WITHIN, || async { prompts(&w, fresh, "XP_ACCEPTANCE_DUE").len() == 1 }).await);
    assert_eq!(prompts(&w, fresh, "XP_ACCEPTANCE_DUE")[0]["data"]["severity"], "WARN");

    // Deemed acceptance: received 20 days ago and never answered.
    let deemed = "KSZY-350181-2026-0404";
    let then = rfc3339(beijing_now() - Days::days(20));
    w.department("xp-request", "req-0404", request(deemed, &jiangxi_receiver(), "10", &then))
        .await;
    let v = w.wait_state(deemed, "ACCEPTED").await;
    assert_eq!(v["negotiation"]["deemed_accepted"], true);
    assert!(eventually(WITHIN, || async { w.inbox("xp-acceptance", deemed).len() == 1 }).await);
    assert_eq!(w.inbox("xp-acceptance", deemed)[0]["data"]["deemed_accepted"], true);
}

#[tokio::test]
async fn forged_unsigned_and_repeated_letters_change_nothing() {
    let w = World::start("").await;
    let app_no = "KSZY-350181-2026-0501";
    w.jiangxi.sim.set_script(app_no, Script::new(Answer::Silent));
    consult(&w, app_no, jiangxi_receiver(), "36", 0).await;
    w.wait_state(app_no, "CONSULTING").await;
    assert!(eventually(WITHIN, || async { !w.jiangxi.sim.letters().is_empty() }).await);
    let letter_no = w.jiangxi.sim.letters()[0].letter["data"]["letter_no"].clone();
    let reply = json!({"type": "xp-reply", "subject": format!("xp:{app_no}"), "id": "reply-0501",
        "data": {"letter_no": "赣环固函〔2026〕501号", "reply_to": letter_no, "application_no": app_no,
                 "from_province": "36", "to_province": "35", "decision": "AGREE", "replied_at": rfc3339(beijing_now())}});

    // Forged: changed after signing. Refused with a signed receipt that says why.
    let forged = w.jiangxi.sim.send_letter(reply.clone(), true).await.expect("send");
    assert_eq!(forged.status, 401, "{forged:?}");
    let receipt = forged.receipt.clone().expect("a refused receipt");
    assert_eq!(receipt["data"]["verdict"], "refused");
    assert!(
        receipt["data"]["reason"].as_str().unwrap_or("").contains("does not verify"),
        "{receipt}"
    );
    assert_eq!(w.record(app_no).await["negotiation"]["state"], "CONSULTING");

    // Unsigned, and from an unknown source.
    let mut unsigned = reply.clone();
    unsigned["specversion"] = json!("1.0");
    unsigned["source"] = json!("urn:wastehub:province:36");
    unsigned["time"] = json!(rfc3339(beijing_now()));
    let r = w.post_letter(&unsigned).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert!(body["data"]["reason"].as_str().unwrap_or("").contains("not signed"), "{body}");
    unsigned["source"] = json!("urn:wastehub:province:99");
    let r = w.post_letter(&unsigned).await;
    assert_eq!(r.status(), 403);

    // Both refusals of known senders are audited.
    let audited = audit_rows(&w.app.database, "xp_letter_refused").await;
    assert_eq!(audited, 2, "forged and unsigned letters audited");

    // The genuine letter, then the very same bytes again: one receipt, one step.
    let first = w.jiangxi.sim.send_letter(reply, false).await.expect("send");
    assert_eq!(first.status, 200, "{first:?}");
    assert!(first.receipt_verified);
    let again = w.jiangxi.sim.resend_last().await.expect("resend");
    assert_eq!(again.status, 200);
    assert_eq!(again.receipt, first.receipt, "the same receipt for the same letter");
    w.wait_state(app_no, "REPLIED").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = w.record(app_no).await;
    let replies: Vec<&Value> = record["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["type"] == "xp-reply")
        .collect();
    assert_eq!(replies.len(), 1, "applied once: {replies:?}");
    assert_eq!(w.inbox("xp-reply", app_no).len(), 1, "forwarded once");

    // Operators see letters and steps in the metrics.
    let metrics = w
        .app
        .client
        .get(format!("{}/metrics", w.app.base))
        .bearer_auth(&w.app.operator)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "wastehub_xp_letters_in_total{outcome=\"refused\"}",
        "wastehub_xp_letters_in_total{outcome=\"unknown_sender\"}",
        "wastehub_xp_steps_total{kind=\"xp-reply\",outcome=\"applied\"}",
    ] {
        assert!(metrics.contains(line), "{line} in the metrics");
    }
}

async fn audit_rows(database: &str, action: &str) -> i64 {
    if database.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database).await.expect("sqlite");
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log WHERE action = ?")
            .bind(action)
            .fetch_one(&pool)
            .await
            .expect("count")
    } else {
        let pool = sqlx::PgPool::connect(database).await.expect("postgres");
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&pool)
            .await
            .expect("count")
    }
}

#[tokio::test]
async fn during_a_key_rotation_letters_signed_with_either_key_are_taken() {
    // Jiangxi publishes a new key: the operator lists it beside the old one.
    let w = World::start_with(|text| {
        text.replace(
            "public_keys = [\"${WASTEHUB_XP_KEYS:-keys}/jiangxi.pub.pem\"]",
            "public_keys = [\"${WASTEHUB_XP_KEYS:-keys}/jiangxi.pub.pem\", \"${WASTEHUB_XP_KEYS:-keys}/jiangxi-next.pub.pem\"]",
        )
    })
    .await;
    let app_no = "KSZY-350181-2026-0601";
    w.jiangxi.sim.set_script(app_no, Script::new(Answer::Silent));
    consult(&w, app_no, jiangxi_receiver(), "36", 0).await;
    w.wait_state(app_no, "CONSULTING").await;
    assert!(eventually(WITHIN, || async { !w.jiangxi.sim.letters().is_empty() }).await);
    let letter_no = w.jiangxi.sim.letters()[0].letter["data"]["letter_no"].clone();
    let next = w.next_key.as_ref().expect("the next key");
    let letter = json!({"specversion": "1.0", "id": "reply-0601", "source": "urn:wastehub:province:36", "type": "xp-reply",
        "subject": format!("xp:{app_no}"), "time": rfc3339(beijing_now()), "datacontenttype": "application/json",
        "data": {"letter_no": "赣环固函〔2026〕601号", "reply_to": letter_no, "application_no": app_no,
                 "from_province": "36", "to_province": "35", "decision": "AGREE", "replied_at": rfc3339(beijing_now())}});
    let signed = wastehub::letters::sign_letter(&letter, next).expect("signed with the new key");
    let r = w.post_letter(&signed).await;
    assert_eq!(r.status(), 200, "the new key is registered");
    w.wait_state(app_no, "REPLIED").await;
    // The old key (the simulator's) still works during the overlap.
    let entry = zhejiang_entry("ACTIVE", &rfc3339(beijing_now()));
    let mut entry = entry;
    entry["data"]["partner_province"] = json!("36");
    entry["data"]["facility"] =
        json!({"usci": "91360121MA35GH2W54", "licence_no": "赣危废经字〔2024〕第031号", "facility_id": "S360121-0001"});
    entry["subject"] = json!("whitelist:GAN-MIN-2019:GM-2026-031");
    entry["data"]["scheme"] = json!("GAN-MIN-2019");
    entry["data"]["whitelist_id"] = json!("GM-2026-031");
    let sent = w.jiangxi.sim.send_letter(entry, false).await.expect("send");
    assert_eq!(sent.status, 200, "{sent:?}");
}

#[tokio::test]
async fn a_letter_delivered_to_the_workflow_again_is_applied_once_and_sent_once() {
    let w = World::start("").await;
    let app_no = "KSZY-350181-2026-0701";
    w.jiangxi.sim.set_script(app_no, Script::new(Answer::Silent));
    let at = rfc3339(beijing_now());
    w.department("xp-request", "req-0701", request(app_no, &jiangxi_receiver(), "5", &at))
        .await;
    w.department("xp-acceptance", "acc-0701", accepted(app_no, &at)).await;
    let id = w
        .department(
            "xp-consultation",
            "con-0701",
            consultation(app_no, "36", "闽环固商〔2026〕701号", &at),
        )
        .await;
    w.wait_state(app_no, "CONSULTING").await;
    assert!(eventually(WITHIN, || async { w.jiangxi.sim.letters().len() == 1 }).await);
    let trace = w.app.trace(&id).await;
    let delivery = trace["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .find(|d| d["destination"] == "xp-workflow")
        .expect("the workflow's delivery")
        .clone();
    assert_eq!(trace["deliveries"].as_array().map(Vec::len), Some(1), "the workflow only: {trace}");
    // An operator replays it: the step is found taken, its letter committed
    // again as a duplicate, and nothing reaches Jiangxi twice.
    let (s, v) = w
        .app
        .op_post(
            &format!("/api/v1/deliveries/{}/replay", delivery["id"].as_str().expect("id")),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(w.app.wait_status(&id, "xp-workflow", "delivered", WITHIN).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.jiangxi.sim.letters().len(), 1, "one consultation letter");
    assert_eq!(w.jiangxi.sim.exchanges().len(), 1, "sent once");
    let record = w.record(app_no).await;
    let consultations = record["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["type"] == "xp-consultation")
        .count();
    assert_eq!(consultations, 1);
}

#[tokio::test]
async fn consulted_by_jiangxi_the_department_replies_through_the_hub_and_jiangxi_decides() {
    let w = World::start("").await;
    let app_no = "KSZY-360121-2026-0044";
    let now = rfc3339(beijing_now());
    let consultation = json!({"type": "xp-consultation", "id": "con-360121-0044", "subject": format!("xp:{app_no}"),
        "data": {"letter_no": "赣环固商〔2026〕9号", "application_no": app_no, "from_province": "36", "to_province": "35",
                 "preliminary_opinion": "经初审，拟同意该批冶炼废渣转入福建利用，特此商请。", "sent_at": now}});
    let sent = w.jiangxi.sim.send_letter(consultation, false).await.expect("send");
    assert_eq!(sent.status, 200, "{sent:?}");
    assert!(sent.receipt_verified);
    let v = w.wait_state(app_no, "CONSULTED").await;
    let n = &v["negotiation"];
    assert_eq!(n["role"], "RECEIVING");
    let due = calendar().add_working_days_provisional(beijing_now().date_naive(), 10).0;
    assert_eq!(n["deadlines"][0]["due"], json!(due.to_string()));
    assert_eq!(n["deadlines"][0]["responsible"], "350000");
    assert!(eventually(WITHIN, || async { w.inbox("xp-consultation", app_no).len() == 1 }).await);

    // The department replies; the hub signs it for Jiangxi.
    w.department(
        "xp-reply",
        "reply-0044",
        json!({"letter_no": "闽环固函〔2026〕7号", "reply_to": "赣环固商〔2026〕9号", "application_no": app_no,
               "from_province": "35", "to_province": "36", "decision": "AGREE",
               "conditions": "接受人应如实记录接收量。", "replied_at": rfc3339(beijing_now())}),
    )
    .await;
    w.wait_state(app_no, "ANSWERED").await;
    assert!(
        eventually(WITHIN, || async {
            w.jiangxi
                .sim
                .letters()
                .iter()
                .any(|l| l.letter["type"] == "xp-reply" && l.letter["sigalg"] == "sm2-sm3")
        })
        .await
    );

    // Jiangxi decides and tells Fujian.
    let today = beijing_now().date_naive();
    let decision = json!({"type": "xp-decision", "id": "dec-360121-0044", "subject": format!("xp:{app_no}"),
        "data": {"decision_no": "赣环固转〔2026〕0031号", "application_no": app_no, "basis": "CONSULTATION",
                 "reply_letter_no": "闽环固函〔2026〕7号",
                 "consignor": {"usci": "91360121MA35GH2W54", "name": "南昌恒泰再生铅业有限公司", "site_id": "S360121-0001"},
                 "receiver": {"usci": "91350802MA2J9GFW8L", "name": "龙岩紫荆有色金属资源综合利用有限公司", "province": "35",
                              "licence_no": "闽危废经字〔2024〕第0802-03号"},
                 "lines": [{"waste_code": "321-024-48", "category": "HW48", "name": "冶炼废渣", "quantity_t": "500", "method_code": "R4"}],
                 "valid_from": today.to_string(), "valid_to": (today + Days::days(90)).to_string(),
                 "decided_at": rfc3339(beijing_now()),
                 "notified_parties": [{"kind": "RECEIVING_ENVIRONMENT_DEPT", "name": "福建省生态环境厅", "province": "35"}]}});
    let sent = w.jiangxi.sim.send_letter(decision, false).await.expect("send");
    assert_eq!(sent.status, 200, "{sent:?}");
    let v = w.wait_state(app_no, "DECIDED").await;
    assert_eq!(v["negotiation"]["decision"]["issued_by"], "province 36");
    assert!(eventually(WITHIN, || async { w.inbox("xp-decision", app_no).len() == 1 }).await);
    // Three letters with receipts: consultation in, reply out, decision in.
    assert!(
        eventually(WITHIN, || async {
            w.record(app_no).await["letters"].as_array().map_or(0, Vec::len) == 3
        })
        .await
    );
}

#[tokio::test]
async fn a_flood_of_letters_from_one_province_is_answered_429_before_any_signature_is_checked() {
    let w = World::start("[xp]\nletters_per_second = 1").await;
    let forged = json!({"specversion": "1.0", "id": "x", "source": "urn:wastehub:province:36", "type": "xp-reply",
        "time": rfc3339(beijing_now()), "sigalg": "sm2-sm3", "sigkeyid": "0000000000000000", "sigvalue": "AAAA", "data": {}});
    // Twelve at once: a burst of 2 is verified (and refused), the rest wait
    // for a token that comes once a second.
    let answers = futures::future::join_all((0..12).map(|_| w.post_letter(&forged))).await;
    let mut statuses = Vec::new();
    for r in answers {
        if r.status() == 429 {
            assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        }
        statuses.push(r.status().as_u16());
    }
    let verified = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(verified + throttled, 12, "{statuses:?}");
    assert!(throttled >= 8, "{statuses:?}");
    // Only the verified ones were audited.
    assert_eq!(
        audit_rows(&w.app.database, "xp_letter_refused").await,
        i64::try_from(verified).expect("small")
    );
}

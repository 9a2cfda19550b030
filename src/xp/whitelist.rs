//! The whitelist short-cut (seed regulation Art. 25; Order No. 23 Art. 21
//! para. 2): a request that a current whitelist entry covers skips the
//! consultation. Pure: the entries and what was already approved under each
//! this year come in, the verdict goes out with the reason for every entry
//! that did not match, so a fallback to consultation can be explained.
//!
//! An entry covers a request when it is for the receiving province and the
//! direction out of Fujian, names the receiver's facility (USCI and licence,
//! and the site when both give one), is ACTIVE and valid on the day, covers
//! every waste code (by code or whole category), and the request keeps the
//! year's total approved under it within `max_quantity_t_per_year`.

use chrono::NaiveDate;
use serde_json::Value;

use super::rules::{date, micro_tonnes, tonnes, total};

/// A stored whitelist entry with the tonnes already approved under it in
/// the year that matters.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The entry's `data`.
    pub entry: Value,
    /// Millionths of a tonne approved under it this calendar year.
    pub used: i64,
}

/// The entry that covers a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// `scheme/whitelist_id`.
    pub key: String,
    /// Its `whitelist_id`.
    pub whitelist_id: String,
    /// Its last day.
    pub valid_to: NaiveDate,
    /// The completion period, when the entry sets one (days from approval).
    pub completion_days: Option<u64>,
}

/// The key of an entry: `scheme/whitelist_id`.
pub fn key(entry: &Value) -> String {
    format!(
        "{}/{}",
        entry.get("scheme").and_then(Value::as_str).unwrap_or(""),
        entry.get("whitelist_id").and_then(Value::as_str).unwrap_or("")
    )
}

/// The first candidate covering `request` (a request's `data`) on `today`,
/// or why none does (one line per entry looked at).
pub fn find(request: &Value, candidates: &[Candidate], own_province: &str, today: NaiveDate) -> Result<Matched, String> {
    if candidates.is_empty() {
        return Err("no whitelist entry names the receiving facility".into());
    }
    let mut reasons = Vec::new();
    for c in candidates {
        match covers(request, c, own_province, today) {
            Ok(m) => return Ok(m),
            Err(why) => reasons.push(format!("{}: {why}", key(&c.entry))),
        }
    }
    Err(reasons.join("; "))
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn covers(request: &Value, c: &Candidate, own_province: &str, today: NaiveDate) -> Result<Matched, String> {
    let e = &c.entry;
    if s(e, "/direction") != "OUTBOUND_FROM_FUJIAN" || s(request, "/sending_province") != own_province {
        return Err("not an entry for transfers out of this province".into());
    }
    if s(e, "/partner_province") != s(request, "/receiver/province") {
        return Err(format!(
            "for province {}, not {}",
            s(e, "/partner_province"),
            s(request, "/receiver/province")
        ));
    }
    if s(e, "/facility/usci") != s(request, "/receiver/usci") || s(e, "/facility/licence_no") != s(request, "/receiver/licence_no") {
        return Err("names another facility or licence".into());
    }
    let site = s(request, "/receiver/site_id");
    if !site.is_empty() && s(e, "/facility/facility_id") != site {
        return Err(format!("names site {}, not {site}", s(e, "/facility/facility_id")));
    }
    match s(e, "/status") {
        "ACTIVE" => {}
        other => {
            let reason = s(e, "/status_reason");
            return Err(if reason.is_empty() {
                format!("is {other}")
            } else {
                format!("is {other} ({reason})")
            });
        }
    }
    let (Some(from), Some(to)) = (date(e.get("valid_from")), date(e.get("valid_to"))) else {
        return Err("has no readable validity".into());
    };
    if today < from || today > to {
        return Err(format!("is valid {from} to {to}, not on {today}"));
    }
    let types = e.get("waste_types").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let lines = request.get("lines").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    for line in lines {
        let code = s(line, "/waste_code");
        let category = s(line, "/category");
        let covered = types
            .iter()
            .any(|t| s(t, "/waste_code") == code || (!category.is_empty() && s(t, "/whole_category") == category));
        if !covered {
            return Err(format!("does not cover waste code {code}"));
        }
    }
    if let Some(max) = e.get("max_quantity_t_per_year").and_then(Value::as_str) {
        let max = micro_tonnes(max).ok_or("has an unreadable yearly quantity")?;
        let asked = total(lines).ok_or("the request has an unreadable quantity")?;
        if c.used.saturating_add(asked) > max {
            return Err(format!(
                "allows {} t a year; {} t are approved already and {} t are asked",
                tonnes(max),
                tonnes(c.used),
                tonnes(asked)
            ));
        }
    }
    Ok(Matched {
        key: key(e),
        whitelist_id: s(e, "/whitelist_id").to_string(),
        valid_to: to,
        completion_days: e.pointer("/conditions/completion_days").and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry() -> Value {
        json!({
            "whitelist_id": "ZM-2026-004", "scheme": "ZHE-MIN-2024", "direction": "OUTBOUND_FROM_FUJIAN",
            "partner_province": "33",
            "facility": {"usci": "91330100MA27XK5P3Q", "licence_no": "浙危废经第3301-17号", "facility_id": "S330100-0007"},
            "waste_types": [{"waste_code": "900-041-49", "category": "HW49"}, {"whole_category": "HW17"}],
            "max_quantity_t_per_year": "100", "valid_from": "2026-01-01", "valid_to": "2026-12-31", "status": "ACTIVE"
        })
    }

    fn request(codes: &[(&str, &str, &str)]) -> Value {
        let lines: Vec<Value> = codes
            .iter()
            .map(|(code, cat, q)| json!({"waste_code": code, "category": cat, "name": "x", "quantity_t": q, "method_code": "D10"}))
            .collect();
        json!({
            "sending_province": "35",
            "receiver": {"usci": "91330100MA27XK5P3Q", "licence_no": "浙危废经第3301-17号", "province": "33", "site_id": "S330100-0007"},
            "lines": lines
        })
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).expect("a date")
    }

    #[test]
    fn an_active_entry_covering_every_code_within_the_year_matches() {
        let c = [Candidate { entry: entry(), used: 0 }];
        let m = find(
            &request(&[("900-041-49", "HW49", "40"), ("336-064-17", "HW17", "10.5")]),
            &c,
            "35",
            today(),
        )
        .expect("covered");
        assert_eq!(m.key, "ZHE-MIN-2024/ZM-2026-004");
        assert_eq!(m.valid_to, NaiveDate::from_ymd_opt(2026, 12, 31).expect("a date"));
    }

    #[test]
    fn each_failing_condition_says_why() {
        let r = request(&[("900-041-49", "HW49", "40")]);
        let one = |e: Value, used: i64| find(&r, &[Candidate { entry: e, used }], "35", today()).expect_err("not covered");
        let mut e = entry();
        e["status"] = json!("SUSPENDED");
        e["status_reason"] = json!("整改期间");
        assert!(one(e, 0).contains("is SUSPENDED (整改期间)"));
        let mut e = entry();
        e["valid_to"] = json!("2026-11-29");
        assert!(one(e, 0).contains("not on 2026-11-30"));
        assert!(one(entry(), 70_000_000).contains("allows 100 t a year; 70 t are approved already and 40 t are asked"));
        let mut e = entry();
        e["facility"]["licence_no"] = json!("other");
        assert!(one(e, 0).contains("another facility"));
        let mut e = entry();
        e["direction"] = json!("INBOUND_TO_FUJIAN");
        assert!(one(e, 0).contains("out of this province"));
        let uncovered = request(&[("900-041-49", "HW49", "1"), ("772-006-49", "HW49", "1")]);
        let why = find(&uncovered, &[Candidate { entry: entry(), used: 0 }], "35", today()).expect_err("not covered");
        assert!(why.contains("does not cover waste code 772-006-49"), "{why}");
        assert!(find(&r, &[], "35", today()).is_err());
    }

    #[test]
    fn exactly_the_yearly_quantity_still_matches() {
        let c = [Candidate {
            entry: entry(),
            used: 60_000_000,
        }];
        assert!(find(&request(&[("900-041-49", "HW49", "40")]), &c, "35", today()).is_ok());
    }
}

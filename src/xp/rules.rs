//! The arithmetic of the process, pure: quantities in tonnes, dates in
//! Beijing time, due dates on the working-day calendar, and the validity
//! caps of a decision (Order No. 23 Art. 27: 12 months at most, never
//! beyond the requested period or the receiver's licence).

use chrono::{DateTime, Days, FixedOffset, Months, NaiveDate};
use serde_json::Value;

use super::model::{Deadline, DeadlineKind};
use crate::reference::calendar::WorkCalendar;

/// Beijing time (UTC+8): the regulations' days are Beijing days.
pub fn beijing() -> FixedOffset {
    BEIJING
}

const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(o) => o,
    None => panic!("UTC+8 is a valid offset"),
};

/// The Beijing date of an RFC 3339 time.
pub fn beijing_date(rfc3339: &str) -> Option<NaiveDate> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.with_timezone(&beijing()).date_naive())
}

/// A date `YYYY-MM-DD`.
pub fn date(value: Option<&Value>) -> Option<NaiveDate> {
    value
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// A decimal string of tonnes in millionths of a tonne (grams), exactly:
/// the catalogue's decimals have at most 6 places.
pub fn micro_tonnes(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || frac.len() > 6 || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    let mut f: i64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    for _ in frac.len()..6 {
        f *= 10;
    }
    whole.checked_mul(1_000_000)?.checked_add(f)
}

/// Millionths of a tonne as a decimal string without trailing zeros.
pub fn tonnes(micro: i64) -> String {
    let whole = micro / 1_000_000;
    let frac = micro % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:06}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// The sum of `quantity_t` over `lines`, in millionths of a tonne.
pub fn total(lines: &[Value]) -> Option<i64> {
    lines.iter().try_fold(0i64, |acc, l| {
        let q = micro_tonnes(l.get("quantity_t")?.as_str()?)?;
        acc.checked_add(q)
    })
}

/// A new running deadline of `kind`, counted from `from`.
pub fn deadline(cal: &WorkCalendar, kind: DeadlineKind, from: NaiveDate, responsible: &str) -> Deadline {
    let (due, provisional) = cal.add_working_days_provisional(from, kind.working_days());
    Deadline {
        kind,
        from,
        due,
        provisional,
        responsible: responsible.to_string(),
        met_at: None,
        late_by: 0,
        reminded: false,
        overdue_prompted: false,
    }
}

/// Counts the due date again (a year may have been added to the calendar).
pub fn recount(cal: &WorkCalendar, d: &mut Deadline) {
    let (due, provisional) = cal.add_working_days_provisional(d.from, d.kind.working_days());
    d.due = due;
    d.provisional = provisional;
}

/// Marks `d` met at `at`, counting working days late.
pub fn meet(cal: &WorkCalendar, d: &mut Deadline, at: &str) {
    let day = beijing_date(at).unwrap_or(d.due);
    d.met_at = Some(at.to_string());
    d.late_by = if day > d.due {
        cal.working_days_between_provisional(d.due, day)
    } else {
        0
    };
}

/// Where a deadline stands on `today`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// More than the lead time left.
    InTime,
    /// Within the lead time: `left` working days after today up to the due date.
    DueSoon {
        /// Working days left after today.
        left: u32,
    },
    /// Past the due date by `by` working days.
    Overdue {
        /// Working days since the due date.
        by: u32,
    },
}

/// Where `d` stands on `today` with a reminder `lead` working days ahead.
pub fn standing(cal: &WorkCalendar, d: &Deadline, today: NaiveDate, lead: u32) -> Standing {
    if today > d.due {
        return Standing::Overdue {
            by: cal.working_days_between_provisional(d.due, today).max(1),
        };
    }
    let left = cal.working_days_between_provisional(today, d.due);
    if left <= lead {
        Standing::DueSoon { left }
    } else {
        Standing::InTime
    }
}

/// The latest last day a decision may have (Art. 27): 12 months from its
/// first day (the day before the same date a year on), the end of the
/// requested period, the receiver's licence expiry and any `extra` cap (a
/// whitelist entry's validity or completion period).
pub fn validity_cap(valid_from: NaiveDate, requested_to: NaiveDate, licence_to: Option<NaiveDate>, extra: &[NaiveDate]) -> NaiveDate {
    let year = valid_from
        .checked_add_months(Months::new(12))
        .and_then(|d| d.checked_sub_days(Days::new(1)))
        .unwrap_or(valid_from);
    let mut cap = year.min(requested_to);
    if let Some(l) = licence_to {
        cap = cap.min(l);
    }
    for e in extra {
        cap = cap.min(*e);
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
    }

    #[test]
    fn tonnes_are_exact_to_the_gram() {
        assert_eq!(micro_tonnes("12.5"), Some(12_500_000));
        assert_eq!(micro_tonnes("0.000001"), Some(1));
        assert_eq!(micro_tonnes("20000"), Some(20_000_000_000));
        assert_eq!(micro_tonnes("1.0000001"), None);
        assert_eq!(micro_tonnes("-1"), None);
        assert_eq!(micro_tonnes(".5"), None);
        assert_eq!(tonnes(12_500_000), "12.5");
        assert_eq!(tonnes(20_000_000_000), "20000");
        assert_eq!(tonnes(1), "0.000001");
    }

    #[test]
    fn validity_is_capped_by_twelve_months_the_request_and_the_licence() {
        let from = d("2026-03-01");
        // 12 months: to the last day of February 2027.
        assert_eq!(validity_cap(from, d("2027-12-31"), None, &[]), d("2027-02-28"));
        assert_eq!(validity_cap(from, d("2026-08-31"), None, &[]), d("2026-08-31"));
        assert_eq!(validity_cap(from, d("2027-12-31"), Some(d("2026-06-30")), &[]), d("2026-06-30"));
        assert_eq!(validity_cap(from, d("2027-12-31"), None, &[d("2026-03-30")]), d("2026-03-30"));
        // From 29 February, a year on is clamped to 28 February and the cap is
        // the day before: one day short, never one day over.
        assert_eq!(validity_cap(d("2028-02-29"), d("2030-01-01"), None, &[]), d("2029-02-27"));
    }
}

//! The working-day calendar for legal deadlines: "within N working days"
//! (工作日) in the regulations counts Monday to Friday, minus the public
//! holidays the State Council arranges each year, plus the weekend days it
//! makes working days (调休). Both come from `cn-workdays.csv`, one row per
//! holiday or make-up day, so a new year is a data change.
//!
//! Counting follows the rule for periods in administrative law: the day on
//! which the period starts is not counted, and the period ends at the end
//! of its last working day (Beijing time). A date in a year the table does
//! not cover is refused rather than guessed, since a holiday arrangement
//! moves deadlines by up to a week.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::{Datelike, NaiveDate, Weekday};

use super::error::ReferenceError;
use super::table::Table;

/// The calendar table's file name in the reference folder.
pub const CALENDAR_FILE: &str = "cn-workdays.csv";

/// What a calendar row says about a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A public holiday (the arranged break, weekend days inside it included).
    Holiday,
    /// A weekend day made a working day.
    Workday,
}

/// A date the calendar cannot answer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the working-day calendar does not cover {0} (years covered: {1}); add the year's holiday arrangement to cn-workdays.csv")]
pub struct NotCovered(pub i32, pub YearSpan);

/// The first and last year the calendar covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YearSpan(pub i32, pub i32);

impl std::fmt::Display for YearSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 > self.1 {
            f.write_str("none")
        } else {
            write!(f, "{}-{}", self.0, self.1)
        }
    }
}

/// The working-day calendar.
#[derive(Debug, Default)]
pub struct WorkCalendar {
    days: HashMap<NaiveDate, Kind>,
    years: BTreeSet<i32>,
}

impl WorkCalendar {
    /// Loads `cn-workdays.csv` (columns `date,kind`; `kind` is `holiday` or
    /// `workday`). A `workday` row must fall on a weekend, and the years
    /// covered must be consecutive: a gap would silently count a year
    /// without its holidays.
    pub fn load(path: &Path, errors: &mut Vec<ReferenceError>) -> Self {
        let mut out = Self::default();
        let Some(table) = Table::read(path, errors) else { return out };
        let Some([date_col, kind_col]) = table.columns(["date", "kind"], errors) else {
            return out;
        };
        let mut first: HashMap<NaiveDate, u64> = HashMap::new();
        for (line, row) in table.rows() {
            let raw = row.get(date_col).unwrap_or_default();
            let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") else {
                errors.push(bad(path, line, "date", raw, "a date YYYY-MM-DD"));
                continue;
            };
            let kind = match row.get(kind_col).unwrap_or_default() {
                "holiday" => Kind::Holiday,
                "workday" if is_weekend(date) => Kind::Workday,
                "workday" => {
                    errors.push(bad(
                        path,
                        line,
                        "date",
                        raw,
                        "a Saturday or Sunday (a workday row makes a weekend day a working day)",
                    ));
                    continue;
                }
                other => {
                    errors.push(bad(path, line, "kind", other, "holiday or workday"));
                    continue;
                }
            };
            if let Some(f) = first.get(&date) {
                errors.push(ReferenceError::Duplicate {
                    path: path.to_path_buf(),
                    line,
                    column: "date",
                    value: raw.to_string(),
                    first: *f,
                });
                continue;
            }
            first.insert(date, line);
            out.days.insert(date, kind);
            out.years.insert(date.year());
        }
        if let (Some(lo), Some(hi)) = (out.years.first().copied(), out.years.last().copied())
            && let Some(missing) = (lo..=hi).find(|y| !out.years.contains(y))
        {
            errors.push(ReferenceError::BadValue {
                path: path.to_path_buf(),
                line: 1,
                column: "date",
                value: missing.to_string(),
                expected: "covered: the years must be consecutive (a year without rows would be counted without its holidays)",
            });
        }
        out
    }

    /// The years covered.
    pub fn years(&self) -> YearSpan {
        match (self.years.first(), self.years.last()) {
            (Some(a), Some(b)) => YearSpan(*a, *b),
            _ => YearSpan(1, 0),
        }
    }

    fn covers(&self, date: NaiveDate) -> Result<(), NotCovered> {
        if self.years.contains(&date.year()) {
            Ok(())
        } else {
            Err(NotCovered(date.year(), self.years()))
        }
    }

    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, NotCovered> {
        self.covers(date)?;
        Ok(match self.days.get(&date) {
            Some(Kind::Holiday) => false,
            Some(Kind::Workday) => true,
            None => !is_weekend(date),
        })
    }

    /// The last day of a period of `n` working days that starts on `start`
    /// (which is not counted): the due date of "within `n` working days of
    /// `start`". With `n = 0`, `start` itself.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> Result<NaiveDate, NotCovered> {
        let mut day = start;
        let mut left = n;
        while left > 0 {
            day = day.succ_opt().ok_or(NotCovered(day.year(), self.years()))?;
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
    }

    /// [`Self::add_working_days`], or, where the period runs into a year the
    /// table does not cover yet, a count of Monday to Friday for the
    /// uncovered days, marked provisional (`true`). Negotiations in December
    /// run into January before the State Council has published the next
    /// year's arrangement; they need a date to work to, and the caller
    /// recomputes it once the year is added.
    pub fn add_working_days_provisional(&self, start: NaiveDate, n: u32) -> (NaiveDate, bool) {
        let mut day = start;
        let mut left = n;
        let mut provisional = false;
        while left > 0 {
            let Some(next) = day.succ_opt() else { break };
            day = next;
            let working = self.is_working_day(day).unwrap_or_else(|_| {
                provisional = true;
                !is_weekend(day)
            });
            if working {
                left -= 1;
            }
        }
        (day, provisional)
    }

    /// Working days after `from` up to and including `to`, counting
    /// uncovered years by weekday as [`Self::add_working_days_provisional`] does.
    pub fn working_days_between_provisional(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        let mut n = 0;
        let mut day = from;
        while day < to {
            let Some(next) = day.succ_opt() else { break };
            day = next;
            if self.is_working_day(day).unwrap_or_else(|_| !is_weekend(day)) {
                n += 1;
            }
        }
        n
    }

    /// Working days after `from` up to and including `to` (0 when `to` is
    /// not after `from`): how many of a period's days have been used.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> Result<u32, NotCovered> {
        let mut n = 0;
        let mut day = from;
        while day < to {
            day = day.succ_opt().ok_or(NotCovered(day.year(), self.years()))?;
            if self.is_working_day(day)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Working days in a covered year.
    pub fn working_days_in(&self, year: i32) -> Result<u32, NotCovered> {
        let first = NaiveDate::from_ymd_opt(year, 1, 1).ok_or(NotCovered(year, self.years()))?;
        let last = NaiveDate::from_ymd_opt(year, 12, 31).ok_or(NotCovered(year, self.years()))?;
        Ok(self.working_days_between(first, last)? + u32::from(self.is_working_day(first)?))
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn bad(path: &Path, line: u64, column: &'static str, value: &str, expected: &'static str) -> ReferenceError {
    ReferenceError::BadValue {
        path: path.to_path_buf(),
        line,
        column,
        value: value.to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> WorkCalendar {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/reference").join(CALENDAR_FILE);
        let mut errors = Vec::new();
        let c = WorkCalendar::load(&path, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        c
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// The yearly totals the State Council notices give (251, 248, 248).
    #[test]
    fn the_shipped_years_have_the_official_number_of_working_days() {
        let c = shipped();
        assert_eq!(c.years(), YearSpan(2024, 2026));
        assert_eq!(c.working_days_in(2024), Ok(251));
        assert_eq!(c.working_days_in(2025), Ok(248));
        assert_eq!(c.working_days_in(2026), Ok(248));
    }

    #[test]
    fn holidays_and_make_up_days_move_deadlines() {
        let c = shipped();
        // 2025-09-28 (Sunday) is a make-up working day before National Day.
        assert_eq!(c.is_working_day(d("2025-09-28")), Ok(true));
        assert_eq!(c.is_working_day(d("2025-10-01")), Ok(false));
        // 5 working days from Friday 2025-09-26: Sun 28 (make-up), Mon 29, Tue 30,
        // then the break 1-8 October, Thu 9, Fri 10.
        assert_eq!(c.add_working_days(d("2025-09-26"), 5), Ok(d("2025-10-10")));
        // An ordinary week: from Monday, 5 working days end on the next Monday.
        assert_eq!(c.add_working_days(d("2026-03-02"), 5), Ok(d("2026-03-09")));
        assert_eq!(c.add_working_days(d("2026-03-02"), 0), Ok(d("2026-03-02")));
        assert_eq!(c.working_days_between(d("2026-03-02"), d("2026-03-09")), Ok(5));
        assert_eq!(c.working_days_between(d("2026-03-09"), d("2026-03-02")), Ok(0));
    }

    #[test]
    fn dates_outside_the_covered_years_are_refused() {
        let c = shipped();
        let e = c.is_working_day(d("2027-01-04")).unwrap_err();
        assert_eq!(e, NotCovered(2027, YearSpan(2024, 2026)));
        assert!(e.to_string().contains("2024-2026"));
        // A period that runs into an uncovered year is refused too.
        assert!(c.add_working_days(d("2026-12-28"), 10).is_err());
    }

    #[test]
    fn a_period_into_an_uncovered_year_counts_weekdays_and_says_so() {
        let c = shipped();
        // Within covered years: the same as the strict count, not provisional.
        assert_eq!(c.add_working_days_provisional(d("2025-09-26"), 5), (d("2025-10-10"), false));
        // Mon 2026-12-28: Tue 29, Wed 30, Thu 31 (covered), then 2027 by
        // weekday (New Year's Day included, as the table cannot say):
        // Fri 1, Mon 4 to Fri 8, and Mon 11 is the 10th.
        assert_eq!(c.add_working_days_provisional(d("2026-12-28"), 10), (d("2027-01-11"), true));
        assert_eq!(c.working_days_between_provisional(d("2026-12-28"), d("2027-01-11")), 10);
    }

    #[test]
    fn bad_rows_are_reported_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(CALENDAR_FILE);
        std::fs::write(
            &p,
            "date,kind\n2024-01-01,holiday\n2024-01-02,workday\n2024-13-01,holiday\n2024-01-01,holiday\n2024-02-04,rest\n2026-01-01,holiday\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        WorkCalendar::load(&p, &mut errors);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|e| e.contains(":3:") && e.contains("Saturday or Sunday")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains(":4:") && e.contains("YYYY-MM-DD")), "{text:?}");
        assert!(text.iter().any(|e| e.contains(":5:") && e.contains("duplicate")), "{text:?}");
        assert!(
            text.iter().any(|e| e.contains(":6:") && e.contains("holiday or workday")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains("2025") && e.contains("consecutive")), "{text:?}");
    }
}

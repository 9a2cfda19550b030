//! Partner maintenance windows: weekly periods, in Beijing time, during
//! which a destination's dispatcher claims nothing. Deliveries due in a
//! window wait for its end instead of burning their retry schedule against a
//! partner that has announced it is down.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, Offset, TimeZone, Utc};

use crate::config::connector::MaintenanceWindow;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One compiled window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Days (Monday first) on which the window starts.
    days: [bool; 7],
    from: NaiveTime,
    to: NaiveTime,
}

/// Beijing time: China has used +08:00 without daylight saving since 1991.
fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

fn time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .map_err(|_| format!("maintenance time {text:?} must be HH:MM or HH:MM:SS"))
}

impl Window {
    /// Checks and compiles a configured window.
    pub fn parse(cfg: &MaintenanceWindow) -> Result<Self, String> {
        let mut days = [cfg.days.is_empty(); 7];
        for d in &cfg.days {
            let i = DAYS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(d))
                .ok_or_else(|| format!("maintenance day {d:?} must be one of {}", DAYS.join(", ")))?;
            days[i] = true;
        }
        let (from, to) = (time(&cfg.from)?, time(&cfg.to)?);
        if from == to {
            return Err(format!("maintenance window {}-{} is empty", cfg.from, cfg.to));
        }
        Ok(Self { days, from, to })
    }

    /// When the window ends, if `now` is inside it.
    pub fn ends_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&beijing());
        let today = local.date_naive();
        let wd = local.weekday().num_days_from_monday() as usize;
        let t = local.time();
        let at = |date: chrono::NaiveDate, time: NaiveTime| {
            beijing()
                .from_local_datetime(&date.and_time(time))
                .single()
                .map(|d| d.with_timezone(&Utc))
        };
        if self.from < self.to {
            (self.days[wd] && t >= self.from && t < self.to)
                .then(|| at(today, self.to))
                .flatten()
        } else if self.days[wd] && t >= self.from {
            at(today + Duration::days(1), self.to)
        } else if self.days[(wd + 6) % 7] && t < self.to {
            at(today, self.to)
        } else {
            None
        }
    }
}

/// A destination's windows.
#[derive(Clone, Debug, Default)]
pub struct Schedule(Vec<Window>);

impl Schedule {
    /// Compiles the configured windows (already checked at config load).
    pub fn new(windows: &[MaintenanceWindow]) -> Self {
        Self(windows.iter().filter_map(|w| Window::parse(w).ok()).collect())
    }

    /// If `now` is in a window, when deliveries may go again (windows that
    /// touch or overlap are followed to their common end).
    pub fn paused_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut until = None;
        let mut at = now;
        for _ in 0..16 {
            match self.0.iter().filter_map(|w| w.ends_after(at)).max() {
                Some(end) => {
                    until = Some(end);
                    at = end;
                }
                None => break,
            }
        }
        until
    }

    /// Whether there are no windows.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(days: &[&str], from: &str, to: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn bj(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("{s}+08:00")).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_window_within_a_day() {
        // 2026-11-29 is a Sunday.
        let s = Schedule::new(&[w(&["sun"], "01:00", "05:00")]);
        assert_eq!(s.paused_until(bj("2026-11-29T02:30:00")), Some(bj("2026-11-29T05:00:00")));
        assert_eq!(s.paused_until(bj("2026-11-29T05:00:00")), None);
        assert_eq!(s.paused_until(bj("2026-11-29T00:59:59")), None);
        assert_eq!(s.paused_until(bj("2026-11-30T02:30:00")), None, "Monday");
    }

    #[test]
    fn a_window_past_midnight_and_every_day() {
        let s = Schedule::new(&[w(&["sat"], "23:00", "02:00")]);
        assert_eq!(s.paused_until(bj("2026-11-28T23:30:00")), Some(bj("2026-11-29T02:00:00")));
        assert_eq!(s.paused_until(bj("2026-11-29T01:00:00")), Some(bj("2026-11-29T02:00:00")));
        assert_eq!(s.paused_until(bj("2026-11-29T23:30:00")), None, "Sunday night is not Saturday's");
        let daily = Schedule::new(&[w(&[], "12:00:00", "12:00:30")]);
        assert_eq!(daily.paused_until(bj("2026-12-02T12:00:10")), Some(bj("2026-12-02T12:00:30")));
    }

    #[test]
    fn touching_windows_are_followed_to_their_end() {
        let s = Schedule::new(&[w(&[], "01:00", "02:00"), w(&[], "02:00", "03:00")]);
        assert_eq!(s.paused_until(bj("2026-11-29T01:30:00")), Some(bj("2026-11-29T03:00:00")));
    }

    #[test]
    fn bad_windows_are_refused() {
        assert!(Window::parse(&w(&["sunday"], "01:00", "02:00")).unwrap_err().contains("mon, tue"));
        assert!(Window::parse(&w(&[], "1am", "02:00")).unwrap_err().contains("HH:MM"));
        assert!(Window::parse(&w(&[], "02:00", "02:00")).unwrap_err().contains("empty"));
    }
}

//! Human-written quantities in configuration: durations (`"30s"`, `"5m"`,
//! `"2h"`, `"1d"`, `"250ms"`) and sizes (`"64KiB"`, `"1MiB"`, `"1000"`).
//!
//! They parse during deserialisation, so a bad value is reported by the TOML
//! reader with the file and line it came from.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a number followed by `ms`, `s`, `m`, `h` or `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `"<integer><unit>"`; `"0"` alone means zero.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t == "0" {
            return Ok(Self(Duration::ZERO));
        }
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration {text:?} has no unit (use ms, s, m, h or d)"))?;
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("duration {text:?} must start with a whole number"))?;
        let ms = match unit {
            "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            _ => return Err(format!("duration {text:?} has unknown unit {unit:?} (use ms, s, m, h or d)")),
        }
        .ok_or_else(|| format!("duration {text:?} is too large"))?;
        Ok(Self(Duration::from_millis(ms)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (n, unit) = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")]
            .into_iter()
            .find(|(d, _)| ms >= *d && ms.is_multiple_of(*d))
            .map(|(d, u)| (ms / d, u))
            .unwrap_or((ms, "ms"));
        write!(f, "{n}{unit}")
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes written as a number with an optional `B`, `KiB`, `MiB` or
/// `GiB` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"<integer>[unit]"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("size {text:?} must start with a whole number"))?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => return Err(format!("size {text:?} has unknown unit {other:?} (use B, KiB, MiB or GiB)")),
        };
        n.checked_mul(factor).map(Self).ok_or_else(|| format!("size {text:?} is too large"))
    }

    /// The size as `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        match () {
            _ if b >= 1 << 30 && b.is_multiple_of(1 << 30) => write!(f, "{}GiB", b >> 30),
            _ if b >= 1 << 20 && b.is_multiple_of(1 << 20) => write!(f, "{}MiB", b >> 20),
            _ if b >= 1 << 10 && b.is_multiple_of(1 << 10) => write!(f, "{}KiB", b >> 10),
            _ => write!(f, "{b}B"),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Self(n)),
            Raw::Text(s) => Self::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A retry schedule: the delay before each attempt, the first usually `0s`.
/// Written either as a list (`["0s", "5s"]`) or one space-separated string
/// (`"0s 5s 5m 30m"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl RetrySchedule {
    /// Parses the space-separated form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let steps = text
            .split_whitespace()
            .map(|s| HumanDuration::parse(s).map(|d| d.0))
            .collect::<Result<Vec<_>, _>>()?;
        if steps.is_empty() {
            return Err("retry schedule must list at least one delay".into());
        }
        Ok(Self(steps))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        // The schedule named in the delivery design: one immediate try, then
        // backing off to ten hours: about 27.6 hours from the first attempt to the last.
        Self::parse("0s 5s 5m 30m 2h 5h 10h 10h").unwrap_or(Self(vec![Duration::ZERO]))
    }
}

impl<'de> Deserialize<'de> for RetrySchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<String>),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::List(v) => v.join(" "),
        };
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for RetrySchedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let parts: Vec<String> = self.0.iter().map(|d| HumanDuration(*d).to_string()).collect();
        s.collect_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(HumanDuration::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert_eq!(HumanDuration::parse("5m").unwrap().0, Duration::from_secs(300));
        assert_eq!(HumanDuration::parse("0").unwrap().0, Duration::ZERO);
        assert!(HumanDuration::parse("5").unwrap_err().contains("no unit"));
        assert!(HumanDuration::parse("5w").unwrap_err().contains("unknown unit"));
        assert_eq!(HumanDuration(Duration::from_secs(7200)).to_string(), "2h");
    }

    #[test]
    fn sizes_parse_binary_units() {
        assert_eq!(ByteSize::parse("1MiB").unwrap().0, 1 << 20);
        assert_eq!(ByteSize::parse("64KiB").unwrap().0, 65_536);
        assert_eq!(ByteSize::parse("100").unwrap().0, 100);
        assert!(ByteSize::parse("1MB").is_err());
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
    }

    #[test]
    fn default_schedule_has_eight_steps() {
        let s = RetrySchedule::default();
        assert_eq!(s.0.len(), 8);
        assert_eq!(s.0[0], Duration::ZERO);
        assert_eq!(s.0[7], Duration::from_secs(36_000));
        assert!(RetrySchedule::parse("").is_err());
    }
}

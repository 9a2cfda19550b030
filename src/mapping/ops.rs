//! The operations a rule applies to a value, in the order the rule lists
//! them: string operations, code tables and reference lookups, exact unit
//! conversion and rounding, dates and times between formats and zones.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};

use super::decimal::{Decimal, Rounding};
use super::value::{Kind, Scalar};

/// One operation, compiled.
#[derive(Clone, Debug)]
pub enum Op {
    /// Strip leading and trailing white space (full-width spaces included).
    Trim,
    /// Upper-case (ASCII and beyond).
    Upper,
    /// Lower-case.
    Lower,
    /// Full-width ASCII forms (ＡＢＣ１２３，) and the ideographic space to
    /// their half-width equivalents, as legacy Chinese systems send them.
    Halfwidth,
    /// Pad to `width` characters with `with`, on the left or the right.
    Pad {
        /// Target width in characters.
        width: usize,
        /// Padding character.
        with: char,
        /// Pad on the left (numbers) rather than the right.
        left: bool,
    },
    /// Split on `sep` and keep the part at `index` (negative counts from the end).
    Split {
        /// Separator.
        sep: String,
        /// Which part.
        index: i64,
    },
    /// Replace every `from` by `to`.
    Replace {
        /// Text to find.
        from: String,
        /// Replacement.
        to: String,
    },
    /// Put text before the value.
    Prefix(String),
    /// Put text after the value.
    Suffix(String),
    /// Characters `start..start+len` (by character, not byte).
    Substring {
        /// First character, 0-based.
        start: usize,
        /// How many; to the end when absent.
        len: Option<usize>,
    },
    /// Translate through a table: a code table beside the mapping or a
    /// reference table.
    Table(TableOp),
    /// Multiply by a power of ten: kg ⇄ t, L ⇄ m3, exactly.
    Unit {
        /// `from` unit name, for messages.
        from: String,
        /// `to` unit name, for messages.
        to: String,
        /// Power of ten to multiply by.
        shift: i32,
    },
    /// Round to `scale` digits, or only normalise (drop trailing zeros).
    Decimal {
        /// Fractional digits to keep; `None` drops trailing zeros only.
        scale: Option<u32>,
        /// How digits are dropped.
        rounding: Rounding,
    },
    /// Parse a date/time in one format and zone and write it in another.
    Datetime {
        /// Input format.
        from: TimeFormat,
        /// Output format.
        to: TimeFormat,
        /// Zone of an input without an offset.
        from_zone: FixedOffset,
        /// Zone the output is written in.
        to_zone: FixedOffset,
    },
}

/// A compiled table translation.
#[derive(Clone, Debug)]
pub struct TableOp {
    /// `code:<table>` or `lookup:<table>`, for messages.
    pub label: String,
    /// Key → value.
    pub map: Arc<HashMap<String, String>>,
    /// What to do with a key that is not in the table.
    pub otherwise: Otherwise,
}

/// What a table operation does with an unknown key.
#[derive(Clone, Debug)]
pub enum Otherwise {
    /// Fail the rule (the default: an unknown code is an error, not a guess).
    Error,
    /// Pass the value through unchanged.
    Keep,
    /// Use this value.
    Value(String),
}

/// A date/time format.
#[derive(Clone, Debug)]
pub enum TimeFormat {
    /// RFC 3339 (`2026-03-02T10:15:00+08:00`).
    Rfc3339,
    /// Seconds since the Unix epoch.
    EpochSeconds,
    /// Milliseconds since the Unix epoch.
    EpochMillis,
    /// A `strftime` pattern; `offset` when it carries a zone (`%z`),
    /// `time` when it carries a time of day (a date alone means midnight).
    Pattern {
        /// The pattern.
        pattern: String,
        /// Has `%z`/`%:z`.
        offset: bool,
        /// Has an hour.
        time: bool,
    },
}

impl TimeFormat {
    /// Parses a format name or `strftime` pattern; the error says why.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "rfc3339" => Self::Rfc3339,
            "epoch_s" => Self::EpochSeconds,
            "epoch_ms" => Self::EpochMillis,
            "date" => Self::Pattern {
                pattern: "%Y-%m-%d".into(),
                offset: false,
                time: false,
            },
            pattern => {
                if !pattern.contains('%') {
                    return Err(format!(
                        "{pattern:?} is not a time format: use rfc3339, epoch_s, epoch_ms, date or a strftime pattern such as %Y%m%d%H%M%S"
                    ));
                }
                if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
                    return Err(format!("{pattern:?} is not a valid strftime pattern"));
                }
                Self::Pattern {
                    pattern: pattern.into(),
                    offset: pattern.contains("%z") || pattern.contains("%:z") || pattern.contains("%#z"),
                    time: ["%H", "%T", "%R", "%I", "%k", "%l", "%s"].iter().any(|p| pattern.contains(p)),
                }
            }
        })
    }
}

/// Parses a zone: `UTC`, `Asia/Shanghai` (China has used +08:00 without
/// daylight saving since 1991, so a fixed offset is exact for every date
/// the hub handles) or a literal offset such as `+08:00`.
pub fn parse_zone(text: &str) -> Result<FixedOffset, String> {
    let hours = |h: i32| FixedOffset::east_opt(h * 3600).ok_or_else(|| format!("bad zone {text:?}"));
    match text {
        "UTC" | "Z" => hours(0),
        "Asia/Shanghai" | "Asia/Chongqing" | "Asia/Harbin" | "Asia/Urumqi" | "PRC" => hours(8),
        other => {
            let bytes = other.as_bytes();
            let ok = bytes.len() == 6 && matches!(bytes[0], b'+' | b'-') && bytes[3] == b':';
            let num = |s: &str| s.parse::<i32>().ok();
            match (
                ok,
                num(&other[1.min(other.len())..3.min(other.len())]),
                num(other.get(4..6).unwrap_or("")),
            ) {
                (true, Some(h), Some(m)) if h <= 14 && m < 60 => {
                    let secs = (h * 3600 + m * 60) * if bytes[0] == b'-' { -1 } else { 1 };
                    FixedOffset::east_opt(secs).ok_or_else(|| format!("bad zone {text:?}"))
                }
                _ => Err(format!("unknown zone {text:?}: use UTC, Asia/Shanghai or an offset such as +08:00")),
            }
        }
    }
}

impl Op {
    /// Applies the operation.
    pub fn apply(&self, v: Scalar) -> Result<Scalar, String> {
        let text = |t: String| Scalar::string(t);
        Ok(match self {
            Op::Trim => text(v.text.trim_matches(|c: char| c.is_whitespace()).to_string()),
            Op::Upper => text(v.text.to_uppercase()),
            Op::Lower => text(v.text.to_lowercase()),
            Op::Halfwidth => text(halfwidth(&v.text)),
            Op::Pad { width, with, left } => {
                let n = v.text.chars().count();
                if n >= *width {
                    v
                } else {
                    let pad: String = std::iter::repeat_n(*with, width - n).collect();
                    text(if *left { pad + &v.text } else { v.text + &pad })
                }
            }
            Op::Split { sep, index } => {
                let parts: Vec<&str> = v.text.split(sep.as_str()).collect();
                let i = if *index < 0 { parts.len() as i64 + index } else { *index };
                let part = usize::try_from(i)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .ok_or_else(|| format!("{:?} has {} parts separated by {sep:?}, no part {index}", v.text, parts.len()))?;
                text((*part).to_string())
            }
            Op::Replace { from, to } => text(v.text.replace(from.as_str(), to)),
            Op::Prefix(p) => text(format!("{p}{}", v.text)),
            Op::Suffix(s) => text(format!("{}{s}", v.text)),
            Op::Substring { start, len } => {
                let it = v.text.chars().skip(*start);
                text(match len {
                    Some(l) => it.take(*l).collect(),
                    None => it.collect(),
                })
            }
            Op::Table(t) => match t.map.get(&v.text) {
                Some(mapped) => text(mapped.clone()),
                None => match &t.otherwise {
                    Otherwise::Error => return Err(format!("{:?} is not in {}", v.text, t.label)),
                    Otherwise::Keep => v,
                    Otherwise::Value(x) => text(x.clone()),
                },
            },
            Op::Unit { from, to, shift } => {
                let d = Decimal::parse(v.text.trim()).map_err(|e| format!("cannot convert {from} to {to}: {e}"))?;
                Scalar {
                    text: d.shift(*shift)?.normalized().to_string(),
                    kind: v.kind,
                }
            }
            Op::Decimal { scale, rounding } => {
                let d = Decimal::parse(v.text.trim())?;
                let out = match scale {
                    Some(s) => d.round(*s, *rounding)?,
                    None => d.normalized(),
                };
                Scalar {
                    text: out.to_string(),
                    kind: v.kind,
                }
            }
            Op::Datetime {
                from,
                to,
                from_zone,
                to_zone,
            } => {
                let t = parse_time(v.text.trim(), from, *from_zone)?;
                let kind = if matches!(to, TimeFormat::EpochMillis | TimeFormat::EpochSeconds) && v.kind == Kind::Number {
                    Kind::Number
                } else {
                    Kind::String
                };
                Scalar {
                    text: write_time(t, to, *to_zone),
                    kind,
                }
            }
        })
    }
}

fn parse_time(text: &str, format: &TimeFormat, zone: FixedOffset) -> Result<DateTime<Utc>, String> {
    let bad = |why: String| format!("{text:?} is not a time in the expected format: {why}");
    match format {
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(e.to_string())),
        TimeFormat::EpochSeconds | TimeFormat::EpochMillis => {
            let n: i64 = text.parse().map_err(|_| bad("not an integer".into()))?;
            let ms = if matches!(format, TimeFormat::EpochSeconds) {
                n.checked_mul(1000).ok_or_else(|| bad("out of range".into()))?
            } else {
                n
            };
            DateTime::from_timestamp_millis(ms).ok_or_else(|| bad("out of range".into()))
        }
        TimeFormat::Pattern { pattern, offset, time } => {
            if *offset {
                DateTime::parse_from_str(text, pattern)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| bad(format!("{e} (pattern {pattern})")))
            } else {
                let naive = if *time {
                    NaiveDateTime::parse_from_str(text, pattern).map_err(|e| bad(format!("{e} (pattern {pattern})")))?
                } else {
                    NaiveDate::parse_from_str(text, pattern)
                        .map_err(|e| bad(format!("{e} (pattern {pattern})")))?
                        .and_hms_opt(0, 0, 0)
                        .ok_or_else(|| bad("no midnight".into()))?
                };
                zone.from_local_datetime(&naive)
                    .single()
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or_else(|| bad("ambiguous local time".into()))
            }
        }
    }
}

fn write_time(t: DateTime<Utc>, format: &TimeFormat, zone: FixedOffset) -> String {
    let local = t.with_timezone(&zone);
    match format {
        TimeFormat::Rfc3339 => local.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        TimeFormat::EpochSeconds => t.timestamp().to_string(),
        TimeFormat::EpochMillis => t.timestamp_millis().to_string(),
        TimeFormat::Pattern { pattern, .. } => local.format(pattern).to_string(),
    }
}

/// Full-width forms U+FF01..U+FF5E map to U+0021..U+007E; the ideographic
/// space U+3000 maps to a space. Everything else is kept.
pub fn halfwidth(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Scalar {
        Scalar::string(t)
    }

    #[test]
    fn halfwidth_converts_letters_digits_and_spaces() {
        assert_eq!(halfwidth("ＭＡ２ＸＫ７\u{3000}闽Ｄ（１）"), "MA2XK7 闽D(1)");
    }

    #[test]
    fn datetime_between_zones_and_formats() {
        let op = Op::Datetime {
            from: TimeFormat::parse("%Y%m%d%H%M%S").unwrap(),
            to: TimeFormat::Rfc3339,
            from_zone: parse_zone("Asia/Shanghai").unwrap(),
            to_zone: parse_zone("UTC").unwrap(),
        };
        assert_eq!(op.apply(s("20260302101500")).unwrap().text, "2026-03-02T02:15:00Z");
        let back = Op::Datetime {
            from: TimeFormat::Rfc3339,
            to: TimeFormat::parse("%Y-%m-%d %H:%M:%S").unwrap(),
            from_zone: parse_zone("UTC").unwrap(),
            to_zone: parse_zone("+08:00").unwrap(),
        };
        assert_eq!(back.apply(s("2026-03-01T18:30:00Z")).unwrap().text, "2026-03-02 02:30:00");
        let date = Op::Datetime {
            from: TimeFormat::parse("date").unwrap(),
            to: TimeFormat::Rfc3339,
            from_zone: parse_zone("Asia/Shanghai").unwrap(),
            to_zone: parse_zone("Asia/Shanghai").unwrap(),
        };
        assert_eq!(date.apply(s("2026-03-02")).unwrap().text, "2026-03-02T00:00:00+08:00");
        assert!(op.apply(s("2026-03-02")).is_err());
    }

    #[test]
    fn zones_and_formats_are_checked() {
        assert!(parse_zone("Europe/Nowhere").is_err());
        assert_eq!(parse_zone("-05:30").unwrap().local_minus_utc(), -(5 * 3600 + 1800));
        assert!(TimeFormat::parse("yyyy-MM-dd").is_err());
        assert!(TimeFormat::parse("%Y-%Q").is_err());
    }

    #[test]
    fn string_operations() {
        let pad = Op::Pad {
            width: 6,
            with: '0',
            left: true,
        };
        assert_eq!(pad.apply(s("123")).unwrap().text, "000123");
        let split = Op::Split {
            sep: "-".into(),
            index: -1,
        };
        assert_eq!(split.apply(s("900-041-49")).unwrap().text, "49");
        assert!(Op::Split { sep: "-".into(), index: 5 }.apply(s("a-b")).is_err());
        let sub = Op::Substring { start: 0, len: Some(4) };
        assert_eq!(sub.apply(s("20263502000123")).unwrap().text, "2026");
    }

    #[test]
    fn unit_conversion_keeps_the_kind() {
        let op = Op::Unit {
            from: "kg".into(),
            to: "t".into(),
            shift: -3,
        };
        let n = Scalar {
            text: "1250".into(),
            kind: Kind::Number,
        };
        assert_eq!(
            op.apply(n).unwrap(),
            Scalar {
                text: "1.25".into(),
                kind: Kind::Number
            }
        );
        assert!(op.apply(s("1,250")).is_err());
    }
}

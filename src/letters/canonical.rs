//! The canonical byte form of a letter: RFC 8785 JSON Canonicalization
//! Scheme (JCS) over the CloudEvent without its `sigvalue` attribute.
//!
//! Supported exactly as RFC 8785 specifies: object members sorted by the
//! UTF-16 code units of their names, no insignificant whitespace, strings
//! with only the escapes JCS requires (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//! `\t`, other controls as `\u00xx` in lower-case hex; everything else as
//! literal UTF-8), numbers in the ECMAScript `Number.prototype.toString`
//! form. Refused (a letter containing them cannot be signed or verified):
//! integers outside ±(2^53 − 1), which an IEEE 754 double, and so every
//! other JCS implementation, cannot hold exactly; nesting deeper than
//! [`MAX_DEPTH`]. Duplicate member names are not representable here: the
//! JSON parser keeps the last one, so partners must not send them.

use serde_json::{Map, Value};

use super::LetterError;

/// Deepest nesting of arrays/objects accepted (bounds recursion).
pub const MAX_DEPTH: usize = 64;

/// Largest integer magnitude a double holds exactly (2^53 − 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The attribute carrying the signature value; the only member left out of
/// the canonical form (see `docs/cross-province.md`).
pub const SIGVALUE: &str = "sigvalue";

/// Canonical bytes of a letter: the event object without `sigvalue`, JCS-serialized.
pub fn letter_bytes(event: &Value) -> Result<Vec<u8>, LetterError> {
    let Value::Object(members) = event else {
        return Err(LetterError::Malformed("a letter must be a JSON object (a CloudEvent)".into()));
    };
    let mut without = members.clone();
    without.remove(SIGVALUE);
    jcs(&Value::Object(without))
}

/// RFC 8785 serialization of any JSON value.
pub fn jcs(value: &Value) -> Result<Vec<u8>, LetterError> {
    let mut out = Vec::new();
    write_value(value, &mut out, 0)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), LetterError> {
    if depth > MAX_DEPTH {
        return Err(LetterError::Malformed(format!("nesting deeper than {MAX_DEPTH}")));
    }
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(number(n)?.as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out, depth + 1)?;
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(members, out, depth)?,
    }
    Ok(())
}

fn write_object(members: &Map<String, Value>, out: &mut Vec<u8>, depth: usize) -> Result<(), LetterError> {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    // RFC 8785 §3.2.3: compare names as arrays of UTF-16 code units.
    sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push(b'{');
    for (i, (name, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(name, out);
        out.push(b':');
        write_value(v, out, depth + 1)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A JSON number in ECMAScript form.
fn number(n: &serde_json::Number) -> Result<String, LetterError> {
    if let Some(u) = n.as_u64() {
        return if u <= MAX_SAFE_INTEGER {
            Ok(u.to_string())
        } else {
            Err(LetterError::Malformed(format!("integer {u} is beyond 2^53-1; send it as a string")))
        };
    }
    if let Some(i) = n.as_i64() {
        return if i.unsigned_abs() <= MAX_SAFE_INTEGER {
            Ok(i.to_string())
        } else {
            Err(LetterError::Malformed(format!(
                "integer {i} is beyond -(2^53-1); send it as a string"
            )))
        };
    }
    match n.as_f64() {
        Some(f) if f.is_finite() => Ok(ecmascript(f)),
        _ => Err(LetterError::Malformed(format!("number {n} is not a finite double"))),
    }
}

/// ECMAScript `Number::toString(x)` for a finite double (ECMA-262 §6.1.6.1.20),
/// built from Rust's shortest round-trip digits, which are the digits
/// ECMAScript requires (the shortest that identify the double).
pub fn ecmascript(f: f64) -> String {
    if f == 0.0 {
        return "0".into(); // also -0
    }
    let sign = if f < 0.0 { "-" } else { "" };
    // `{:e}` gives the shortest round-trip digits as d[.ddd]e<exp>.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    tie_to_even(f.abs(), &mut digits, exp);
    let k = digits.len() as i32;
    let n = exp + 1; // position of the decimal point relative to the digits
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (a, b) = digits.split_at(n as usize);
        format!("{a}.{b}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let esign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{esign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{esign}{}", e.abs())
        }
    };
    format!("{sign}{body}")
}

/// ECMAScript: when two shortest digit strings are equally close to the
/// value, the even one is taken. Rust's formatter may give the other, so
/// compare with the exact decimal expansion of the double: a tie is when
/// it is exactly halfway, i.e. the shorter neighbour's digits then `5`.
fn tie_to_even(f: f64, digits: &mut String, exp: i32) {
    let Some(last) = digits.bytes().last().map(|b| b - b'0') else {
        return;
    };
    if last % 2 == 0 {
        return;
    }
    // Exact expansion: every double has at most 767 significant decimal digits.
    let exact = format!("{:.800e}", f);
    let (m, e) = exact.split_once('e').unwrap_or((&exact, "0"));
    if e.parse::<i32>().ok() != Some(exp) {
        return;
    }
    let exact_digits = m.replace('.', "");
    let exact_digits = exact_digits.trim_end_matches('0');
    let stem = &digits[..digits.len() - 1];
    // Halfway between (last − 1) and last: take last − 1.
    let lower = format!("{stem}{}5", last - 1);
    // Halfway between last and (last + 1): take last + 1 (last is odd and < 9 here,
    // since a 9 rounding up would carry to a shorter string).
    let upper_tie = format!("{digits}5");
    if exact_digits == lower {
        *digits = format!("{stem}{}", last - 1);
    } else if exact_digits == upper_tie && last < 9 {
        *digits = format!("{stem}{}", last + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jcs_str(v: &Value) -> String {
        String::from_utf8(jcs(v).unwrap()).unwrap()
    }

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // RFC 8785 §3.2.2 input; expected output from the RFC (literal, non-escaped characters).
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            jcs_str(&v),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    #[test]
    fn rfc8785_section_3_2_3_sorting_by_utf16() {
        // RFC 8785 §3.2.3: the expected order of the property names.
        let input = r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}"#;
        let v: Value = serde_json::from_str(input).unwrap();
        let values: Vec<String> = {
            let s = jcs_str(&v);
            let back: Map<String, Value> = serde_json::from_str(&s).unwrap();
            // serde_json's Map keeps sorted (byte) order, so read the order from the text itself.
            let mut idx: Vec<(usize, String)> = back
                .values()
                .map(|x| x.as_str().unwrap().to_string())
                .map(|val| (s.find(&val).unwrap(), val))
                .collect();
            idx.sort();
            idx.into_iter().map(|(_, v)| v).collect()
        };
        assert_eq!(
            values,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh"
            ]
        );
    }

    #[test]
    fn rfc8785_appendix_b_numbers() {
        // Appendix B: IEEE 754 value (as bits) and its expected JCS form.
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in cases {
            assert_eq!(ecmascript(f64::from_bits(*bits)), *want, "bits {bits:016x}");
        }
    }

    #[test]
    fn integers_beyond_2_pow_53_are_refused() {
        assert!(jcs(&json!({"a": 9007199254740991u64})).is_ok());
        assert!(jcs(&json!({"a": 9007199254740992u64})).is_err());
        assert!(jcs(&json!({"a": -9007199254740992i64})).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut v = json!(1);
        for _ in 0..(MAX_DEPTH + 2) {
            v = json!([v]);
        }
        assert!(jcs(&v).is_err());
    }

    #[test]
    fn sigvalue_is_left_out_and_other_attributes_kept() {
        let a = letter_bytes(&json!({"id": "1", "sigalg": "ed25519", "sigvalue": "AAAA"})).unwrap();
        assert_eq!(a, br#"{"id":"1","sigalg":"ed25519"}"#);
    }
}

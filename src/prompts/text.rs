//! Fitting what the hub has (error texts, a partner's ids) into the prompt
//! schema's fields: identifiers without white space of at most 64
//! characters, one-line texts of at most 200, texts of at most 2000, JSON
//! Pointers. Pure; every function returns something the schema takes.

use serde_json::{Value, json};

use super::Finding;

/// Longest identifier (`code_string`).
const CODE_MAX: usize = 64;
/// Longest one-line text (`short_text`).
const SHORT_MAX: usize = 200;
/// Longest text (`long_text`).
const LONG_MAX: usize = 2000;

/// `s` as an identifier, when it is one (1 to 64 characters, no white space).
pub(super) fn code(s: &str) -> Option<String> {
    let n = s.chars().count();
    ((1..=CODE_MAX).contains(&n) && !s.chars().any(char::is_whitespace)).then(|| s.to_string())
}

/// `s` on one line, trimmed and cut to 200 characters; `fallback` when
/// nothing is left.
pub(super) fn short(s: &str, fallback: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() || c.is_whitespace() { ' ' } else { c })
        .collect();
    let cut = cut(one_line.trim(), SHORT_MAX);
    let cut = cut.trim_end();
    if cut.is_empty() { fallback.to_string() } else { cut.to_string() }
}

/// `s` cut to 2000 characters (never empty).
pub(super) fn long(s: &str) -> String {
    let cut = cut(s.trim(), LONG_MAX);
    if cut.trim().is_empty() {
        "数据存在问题，请核查。".into()
    } else {
        cut.to_string()
    }
}

fn cut(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Whether `p` is an RFC 6901 pointer (`~` only as `~0` or `~1`), at most
/// 1000 characters.
pub(super) fn is_pointer(p: &str) -> bool {
    if p.chars().count() > 1000 || !(p.is_empty() || p.starts_with('/')) {
        return false;
    }
    let b = p.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

/// Findings as `field_errors` entries: at most `max`, the last one then
/// saying how many more there were.
pub(super) fn findings(findings: &[Finding], max: usize) -> Vec<Value> {
    let entry = |f: &Finding| {
        let (path, message) = if is_pointer(&f.path) {
            (f.path.clone(), f.message.clone())
        } else {
            // Not a pointer into the body: name it in the text instead.
            (String::new(), format!("{}: {}", f.path, f.message))
        };
        json!({"path": path, "message_zh": short(&message, "不符合要求")})
    };
    if findings.len() <= max {
        return findings.iter().map(entry).collect();
    }
    let keep = max.saturating_sub(1);
    let mut out: Vec<Value> = findings[..keep].iter().map(entry).collect();
    out.push(json!({"path": "", "message_zh": format!("另有 {} 处问题未列出", findings.len() - keep)}));
    out
}

/// A pointer into a whole event, made relative to its body: `/data/x` →
/// `/x`, `/data` → ``; `None` for an envelope attribute (`/subject`).
pub(super) fn body_pointer(path: &str) -> Option<String> {
    if path == "/data" {
        return Some(String::new());
    }
    path.strip_prefix("/data/").map(|rest| format!("/{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_no_white_space_and_a_length() {
        assert_eq!(code("HWCS1").as_deref(), Some("HWCS1"));
        assert_eq!(code("a b"), None);
        assert_eq!(code(""), None);
        assert_eq!(code(&"x".repeat(65)), None);
    }

    #[test]
    fn texts_are_one_line_and_cut_by_characters() {
        assert_eq!(short("  a\nb  ", "f"), "a b");
        assert_eq!(short(" \n ", "f"), "f");
        assert_eq!(short(&"废".repeat(300), "f").chars().count(), 200);
        assert_eq!(long(&"废".repeat(3000)).chars().count(), 2000);
        assert!(!long("  ").is_empty());
    }

    #[test]
    fn pointers_are_checked_and_made_relative_to_the_body() {
        assert!(is_pointer("") && is_pointer("/a/~0b/~1c"));
        assert!(!is_pointer("a") && !is_pointer("/a~2"));
        assert_eq!(body_pointer("/data/lines/0").as_deref(), Some("/lines/0"));
        assert_eq!(body_pointer("/data").as_deref(), Some(""));
        assert_eq!(body_pointer("/subject"), None);
        assert_eq!(body_pointer("/database"), None);
    }

    #[test]
    fn findings_are_capped_with_a_count_of_the_rest() {
        let many: Vec<Finding> = (0..5)
            .map(|i| Finding {
                path: format!("/f{i}"),
                message: "bad".into(),
            })
            .collect();
        let out = findings(&many, 3);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2]["message_zh"], "另有 3 处问题未列出");
        let odd = findings(
            &[Finding {
                path: "subject".into(),
                message: "missing".into(),
            }],
            3,
        );
        assert_eq!(odd[0], json!({"path": "", "message_zh": "subject: missing"}));
    }
}

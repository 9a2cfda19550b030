//! Finds what a JSON Schema says about a path, so that mapping files can be
//! checked when they load: does `/data/lines/*/waste_code` exist, is it a
//! string or an integer, is `/data/lines` a list?
//!
//! The walk follows `$ref` (within a document and across documents by
//! relative URL), `allOf`/`anyOf`/`oneOf`, `if`/`then`/`else`,
//! `properties`, `items` and schema-valued `additionalProperties`. It is
//! deliberately permissive: a path is known when any branch knows it.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// Schema documents by `$id` (without fragment).
#[derive(Clone, Debug, Default)]
pub struct SchemaDocs {
    docs: HashMap<String, Value>,
}

/// A schema node and the document it sits in (for resolving `$ref`).
#[derive(Clone, Copy, Debug)]
pub struct At<'a> {
    base: &'a str,
    schema: &'a Value,
}

/// Why a path is unknown.
#[derive(Debug, PartialEq, Eq)]
pub struct Unknown {
    /// The segments that were found.
    pub found: Vec<String>,
    /// The segment that was not.
    pub missing: String,
    /// Property names known at that level, to suggest.
    pub known: Vec<String>,
}

impl SchemaDocs {
    /// Adds a document under its `$id`.
    pub fn add(&mut self, id: &str, doc: Value) {
        self.docs.insert(strip_fragment(id).to_string(), doc);
    }

    /// The root of the document `id`.
    pub fn root(&self, id: &str) -> Option<At<'_>> {
        let (key, doc) = self.docs.get_key_value(strip_fragment(id))?;
        Some(At { base: key, schema: doc })
    }

    /// Walks `segments` (property names; `*` for a list item) from `start`.
    /// Returns every schema the path may land on.
    pub fn walk<'a>(&'a self, start: At<'a>, segments: &[&str]) -> Result<Vec<At<'a>>, Unknown> {
        let mut here = self.expand(start);
        for (i, seg) in segments.iter().enumerate() {
            let mut next = Vec::new();
            let mut known = BTreeSet::new();
            for at in &here {
                let Some(obj) = at.schema.as_object() else { continue };
                if *seg == "*" || seg.parse::<usize>().is_ok() {
                    if let Some(items) = obj.get("items").filter(|v| v.is_object()) {
                        next.push(At {
                            base: at.base,
                            schema: items,
                        });
                    }
                    continue;
                }
                if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                    known.extend(props.keys().cloned());
                    if let Some(p) = props.get(*seg) {
                        next.push(At { base: at.base, schema: p });
                    }
                }
                if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
                    next.push(At {
                        base: at.base,
                        schema: extra,
                    });
                }
            }
            if next.is_empty() {
                return Err(Unknown {
                    found: segments[..i].iter().map(|s| s.to_string()).collect(),
                    missing: seg.to_string(),
                    known: known.into_iter().collect(),
                });
            }
            here = next.into_iter().flat_map(|at| self.expand(at)).collect();
        }
        Ok(here)
    }

    /// The JSON types (`string`, `integer`, `array`, …) the schemas allow;
    /// empty when they do not say.
    pub fn types(&self, ats: &[At<'_>]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for at in ats {
            match at.schema.get("type") {
                Some(Value::String(t)) => {
                    out.insert(t.clone());
                }
                Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(Value::as_str).map(str::to_string)),
                _ => {}
            }
        }
        out
    }

    /// The node itself plus everything reachable through references and
    /// combinators (without descending into properties).
    fn expand<'a>(&'a self, start: At<'a>) -> Vec<At<'a>> {
        let mut out = Vec::new();
        let mut todo = vec![start];
        while let Some(at) = todo.pop() {
            if out.len() > 256 || out.iter().any(|o: &At<'_>| std::ptr::eq(o.schema, at.schema)) {
                continue;
            }
            out.push(at);
            let Some(obj) = at.schema.as_object() else { continue };
            if let Some(r) = obj.get("$ref").and_then(Value::as_str)
                && let Some(target) = self.resolve(at.base, r)
            {
                todo.push(target);
            }
            for key in ["allOf", "anyOf", "oneOf"] {
                if let Some(list) = obj.get(key).and_then(Value::as_array) {
                    todo.extend(list.iter().map(|s| At { base: at.base, schema: s }));
                }
            }
            for key in ["then", "else"] {
                if let Some(s) = obj.get(key) {
                    todo.push(At { base: at.base, schema: s });
                }
            }
        }
        out
    }

    fn resolve<'a>(&'a self, base: &str, reference: &str) -> Option<At<'a>> {
        let (base, _, schema) = self.resolve_ref(base, reference)?;
        Some(At { base, schema })
    }

    /// The document whose `$id` is `id`.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.docs.get(strip_fragment(id))
    }

    /// Resolves `reference` (a `$ref` value) against the document `base`:
    /// the target document's `$id`, the decoded fragment pointer, and the
    /// schema there. Plain-name anchors (`#foo`) are not resolved.
    pub fn resolve_ref<'a>(&'a self, base: &str, reference: &str) -> Option<(&'a str, String, &'a Value)> {
        let (path, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let doc_id = if path.is_empty() { base.to_string() } else { join(base, path) };
        let fragment = percent_decode(fragment);
        if !fragment.is_empty() && !fragment.starts_with('/') {
            return None;
        }
        let (key, doc) = self.docs.get_key_value(&doc_id)?;
        let schema = if fragment.is_empty() { doc } else { doc.pointer(&fragment)? };
        Some((key, fragment, schema))
    }
}

fn strip_fragment(id: &str) -> &str {
    id.split('#').next().unwrap_or(id)
}

/// Resolves a relative URI reference `r` against `base` (RFC 3986 §5.2,
/// for the forms schemas use: absolute, `/path`, and relative paths with
/// `.` and `..` segments).
fn join(base: &str, r: &str) -> String {
    if r.contains("://") {
        return r.to_string();
    }
    // Split the base into "scheme://authority" and its path.
    let (origin, base_path) = match base.find("://") {
        Some(i) => {
            let after = i + 3;
            let slash = base[after..].find('/').map_or(base.len(), |j| after + j);
            (&base[..slash], &base[slash..])
        }
        None => ("", base),
    };
    let merged = if r.starts_with('/') {
        r.to_string()
    } else {
        let dir = base_path.rfind('/').map_or("", |i| &base_path[..=i]);
        format!("{dir}{r}")
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = merged.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
            }
            s => out.push(s),
        }
        // A trailing "." or ".." leaves a directory: keep the final slash.
        if i == last && (*seg == "." || *seg == "..") {
            out.push("");
        }
    }
    format!("{origin}{}", out.join("/"))
}

/// Decodes `%XX` escapes (schemas may write `%24defs` for `$defs`).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs() -> SchemaDocs {
        let mut d = SchemaDocs::default();
        d.add(
            "https://x/common/v1.json",
            json!({"$defs": {"code": {"type": "string"}, "line": {"type": "object", "properties": {"code": {"$ref": "#/$defs/code"}}}}}),
        );
        d.add(
            "https://x/msg/v1.json",
            json!({"type": "object", "properties": {
                "lines": {"type": "array", "items": {"$ref": "../common/v1.json#/$defs/line"}},
                "version": {"type": "integer"}},
                "if": {"properties": {"version": {"const": 1}}}, "then": {"properties": {"note": {"type": "string"}}}}),
        );
        d
    }

    #[test]
    fn follows_refs_items_and_conditionals() {
        let d = docs();
        let root = d.root("https://x/msg/v1.json").unwrap();
        let at = d.walk(root, &["lines", "*", "code"]).unwrap();
        assert_eq!(d.types(&at), BTreeSet::from(["string".to_string()]));
        assert_eq!(d.types(&d.walk(root, &["lines"]).unwrap()), BTreeSet::from(["array".to_string()]));
        assert!(d.walk(root, &["note"]).is_ok());
        let err = d.walk(root, &["lines", "*", "cod"]).unwrap_err();
        assert_eq!(err.missing, "cod");
        assert_eq!(err.known, vec!["code".to_string()]);
    }

    #[test]
    fn joins_relative_references_like_a_browser() {
        let base = "https://wastehub.local/schemas/canonical/manifest-created/v1.json";
        assert_eq!(
            join(base, "../common/v1.json"),
            "https://wastehub.local/schemas/canonical/common/v1.json"
        );
        assert_eq!(
            join(base, "./v2.json"),
            "https://wastehub.local/schemas/canonical/manifest-created/v2.json"
        );
        assert_eq!(join(base, "/x.json"), "https://wastehub.local/x.json");
        assert_eq!(join(base, "https://other/y.json"), "https://other/y.json");
        assert_eq!(join("https://x/a/b/v1.json", "../c/v1.json"), "https://x/a/c/v1.json");
        assert_eq!(join("https://x/a/v1.json", "other.json"), "https://x/a/other.json");
        assert_eq!(percent_decode("/%24defs/usci"), "/$defs/usci");
    }
}

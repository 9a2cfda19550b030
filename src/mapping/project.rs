//! Reads a JSON input keeping only what the rules read.
//!
//! A canonical event carries much that a partner's format leaves out (the
//! carrier's contact, dangerous-goods classes, envelope attributes), and
//! building a `serde_json::Value` for all of it was most of the cost of a
//! JSON input. The rules' input paths are known when the mapping compiles,
//! so the parser keeps the objects on those paths and the whole value at
//! each path's end, and skips everything else while still checking that it
//! is well-formed JSON. The rules see the same values as in a full tree:
//! lists keep every element, and a path's end keeps its whole subtree, so
//! "is a structure" and "repeated" errors are unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{Cond, Rule, Seg, Source, SrcPath};

/// The part of an input the rules read: a tree of keys. List indexes are
/// not part of it: every element of a list is kept with the same keys.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// A path ends here: keep the whole value.
    whole: bool,
    /// Keys of an object to keep, and what to keep under each.
    keys: BTreeMap<String, Reads>,
}

impl Reads {
    /// What `rules` read, starting from the input's root.
    pub(crate) fn of(rules: &[Rule]) -> Self {
        let mut reads = Reads::default();
        collect(rules, &[], &mut reads);
        reads
    }

    /// Parses `input` as JSON, keeping what the rules read.
    pub(crate) fn parse(&self, input: &[u8]) -> serde_json::Result<Value> {
        let mut de = serde_json::Deserializer::from_slice(input);
        let value = Project(self).deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    fn add(&mut self, base: &[String], path: &SrcPath, whole: bool) {
        let mut node = self;
        let start: &[String] = if path.absolute { &[] } else { base };
        for key in start.iter().chain(keys(path)) {
            node = node.keys.entry(key.clone()).or_default();
        }
        node.whole |= whole;
    }
}

/// The keys of a path (indexes read within what the keys keep).
fn keys(path: &SrcPath) -> impl Iterator<Item = &String> {
    path.segs.iter().filter_map(|s| match s {
        Seg::Key(k) => Some(k),
        Seg::Index(_) => None,
    })
}

/// Adds the paths of `rules`, whose relative paths start at `base`.
fn collect(rules: &[Rule], base: &[String], reads: &mut Reads) {
    for rule in rules {
        if let Some(Cond { path, .. }) = &rule.when {
            // An `each` tests its condition on every element.
            match &rule.source {
                Source::Each(list) => reads.add(&absolute(base, list), path, true),
                _ => reads.add(base, path, true),
            }
        }
        match &rule.source {
            Source::Paths { paths, .. } => {
                for p in paths {
                    reads.add(base, p, true);
                }
            }
            Source::Each(list) => {
                reads.add(base, list, false);
                collect(&rule.children, &absolute(base, list), reads);
            }
            Source::Const(_) | Source::Index => {}
        }
    }
}

/// The keys from the root to `path` read at `base`.
fn absolute(base: &[String], path: &SrcPath) -> Vec<String> {
    let mut full = if path.absolute { Vec::new() } else { base.to_vec() };
    full.extend(keys(path).cloned());
    full
}

/// Deserializes one value, keeping what `Reads` names.
struct Project<'r>(&'r Reads);

impl<'de> DeserializeSeed<'de> for Project<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.whole {
            Value::deserialize(d)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Project<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // Scalars where objects were expected are kept as they are, as the full
    // tree would hold them (the rules then find no keys under them).
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Project(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(Key(self.0))? {
            match key {
                Some((name, reads)) => {
                    let value = map.next_value_seed(Project(reads))?;
                    out.insert(name, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Reads an object key without copying it unless the rules read it.
struct Key<'r>(&'r Reads);

impl<'de, 'r> DeserializeSeed<'de> for Key<'r> {
    type Value = Option<(String, &'r Reads)>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'r> Visitor<'_> for Key<'r> {
    type Value = Option<(String, &'r Reads)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.keys.get(v).map(|r| (v.to_string(), r)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(text: &str) -> SrcPath {
        let body = text.trim_start_matches('/');
        SrcPath {
            text: text.into(),
            absolute: text.starts_with('/'),
            segs: body
                .split('/')
                .map(|s| s.parse().map_or_else(|_| Seg::Key(s.into()), Seg::Index))
                .collect(),
        }
    }

    #[test]
    fn keeps_the_paths_read_and_checks_the_rest() {
        let mut reads = Reads::default();
        reads.add(&[], &path("/data/lines/0/quantity"), true);
        reads.add(&[], &path("/id"), true);
        let doc = br#"{"id": 7, "skip": {"deep": [1, {"x": "\u00e9"}]}, "data": {"other": 1,
            "lines": [{"quantity": {"value": "1.5", "unit": "t"}, "name": "a"}, {"name": "b"}]}}"#;
        assert_eq!(
            reads.parse(doc).unwrap(),
            json!({"id": 7, "data": {"lines": [{"quantity": {"value": "1.5", "unit": "t"}}, {}]}})
        );
        let full: serde_json::Error = serde_json::from_slice::<Value>(b"{\"a\": [1,, 2]}").unwrap_err();
        let projected = reads.parse(b"{\"a\": [1,, 2]}").unwrap_err();
        assert_eq!((projected.line(), projected.column()), (full.line(), full.column()));
        assert_eq!(projected.to_string(), full.to_string());
    }
}

//! Where the reference checks apply in each message type, derived from the
//! schemas themselves: every property whose schema `$ref`s
//! `…common/v1.json#/$defs/usci`, `…/division_code` or `…/waste_code` is a
//! check target, recorded as a JSON-pointer template with `*` for array
//! items (`/lines/*/waste_code`). A `waste_code` target and a sibling
//! property `category` that refs `…/waste_category` form a pair whose
//! category is cross-checked.
//!
//! The walk follows `$ref` (local and to other files, resolved against the
//! documents' `$id`s), `properties`, `items`, `allOf`/`anyOf`/`oneOf`,
//! `if`/`then`/`else` and `dependentSchemas`. A `$ref` already being
//! expanded higher up is not followed again, so recursive schemas end (their
//! deeper levels are not checked). Pure: runs once when the catalogue loads.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::schema::walk::SchemaDocs;

/// The shared definitions file every convention ref points into.
const COMMON_SUFFIX: &str = "/common/v1.json";

/// What a target holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A USCI: check character.
    Usci,
    /// A division code: exists.
    Division,
    /// A waste code: exists in the edition in force; `category` names the
    /// sibling property to cross-check, if the object has one.
    WasteCode {
        /// The sibling category property (`category`).
        category: Option<String>,
    },
}

/// One step of a pointer template.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    /// An object member.
    Key(String),
    /// Every item of an array.
    Any,
}

/// One check: the objects reached by `parent`, their member `key`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// Path to the object holding the value.
    pub parent: Vec<Seg>,
    /// The member holding the value.
    pub key: String,
    /// What to check.
    pub kind: Kind,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.parent {
            match s {
                Seg::Key(k) => write!(f, "/{}", escape(k))?,
                Seg::Any => f.write_str("/*")?,
            }
        }
        write!(f, "/{}", escape(&self.key))
    }
}

/// JSON Pointer escaping of one member name (RFC 6901).
pub fn escape(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1").into()
    } else {
        key.into()
    }
}

/// The checks of one message type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The targets, in a stable order.
    pub targets: Vec<Target>,
}

impl Plan {
    /// The targets as templates with their kinds, for tests and `wastehub check`:
    /// `usci /consignor/usci`, `waste_code+category /lines/*/waste_code`.
    pub fn describe(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|t| {
                let kind = match &t.kind {
                    Kind::Usci => "usci",
                    Kind::Division => "division_code",
                    Kind::WasteCode { category: None } => "waste_code",
                    Kind::WasteCode { category: Some(_) } => "waste_code+category",
                };
                format!("{kind} {t}")
            })
            .collect()
    }
}

/// What a property's schema refers to, by convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Leaf {
    Usci,
    Division,
    WasteCode,
    WasteCategory,
}

fn leaf_of(def: &str) -> Option<Leaf> {
    match def {
        "/$defs/usci" => Some(Leaf::Usci),
        "/$defs/division_code" => Some(Leaf::Division),
        "/$defs/waste_code" => Some(Leaf::WasteCode),
        "/$defs/waste_category" => Some(Leaf::WasteCategory),
        _ => None,
    }
}

/// Derives the plan of the schema whose `$id` is `root`, given every
/// document of the catalogue by `$id`.
pub fn derive(root: &str, docs: &'_ SchemaDocs) -> Plan {
    let mut w = Walker {
        docs,
        found: BTreeSet::new(),
        expanding: Vec::new(),
    };
    if let Some(schema) = docs.get(root) {
        w.walk(root, schema, &mut Vec::new());
    }
    let found = w.found;
    let targets = found
        .iter()
        .filter_map(|(parent, key, leaf)| {
            let kind = match leaf {
                Leaf::Usci => Kind::Usci,
                Leaf::Division => Kind::Division,
                Leaf::WasteCode => {
                    let paired = found.contains(&(parent.clone(), "category".to_string(), Leaf::WasteCategory));
                    Kind::WasteCode {
                        category: paired.then(|| "category".to_string()),
                    }
                }
                Leaf::WasteCategory => return None,
            };
            Some(Target {
                parent: parent.clone(),
                key: key.clone(),
                kind,
            })
        })
        .collect();
    Plan { targets }
}

struct Walker<'a> {
    docs: &'a SchemaDocs,
    found: BTreeSet<(Vec<Seg>, String, Leaf)>,
    /// `$ref` targets being expanded (cycle guard).
    expanding: Vec<String>,
}

impl<'a> Walker<'a> {
    /// Walks the schema `schema` of document `base` that describes the
    /// value at `path`.
    fn walk(&mut self, base: &str, schema: &'a Value, path: &mut Vec<Seg>) {
        let Value::Object(o) = schema else { return };
        if let Some(Value::String(r)) = o.get("$ref")
            && let Some((doc, frag, target)) = self.docs.resolve_ref(base, r)
        {
            let key = format!("{doc}#{frag}");
            if !self.expanding.contains(&key) {
                self.expanding.push(key);
                self.walk(doc, target, path);
                self.expanding.pop();
            }
        }
        if let Some(Value::Object(props)) = o.get("properties") {
            for (name, sub) in props {
                if let Some(leaf) = self.leaf(base, sub, 0) {
                    self.found.insert((path.clone(), name.clone(), leaf));
                }
                path.push(Seg::Key(name.clone()));
                self.walk(base, sub, path);
                path.pop();
            }
        }
        if let Some(items) = o.get("items") {
            path.push(Seg::Any);
            self.walk(base, items, path);
            path.pop();
        }
        for k in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(subs)) = o.get(k) {
                for sub in subs {
                    self.walk(base, sub, path);
                }
            }
        }
        for k in ["if", "then", "else"] {
            if let Some(sub) = o.get(k) {
                self.walk(base, sub, path);
            }
        }
        if let Some(Value::Object(deps)) = o.get("dependentSchemas") {
            for sub in deps.values() {
                self.walk(base, sub, path);
            }
        }
    }

    /// The convention leaf a property schema refers to, following a chain
    /// of `$ref`s (a local `$defs` entry that itself refs `common`).
    fn leaf(&self, base: &str, schema: &Value, depth: usize) -> Option<Leaf> {
        let r = schema.get("$ref")?.as_str()?;
        let (doc, frag, target) = self.docs.resolve_ref(base, r)?;
        if doc.ends_with(COMMON_SUFFIX)
            && let Some(l) = leaf_of(&frag)
        {
            return Some(l);
        }
        if depth < 16 { self.leaf(doc, target, depth + 1) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs(list: &[Value]) -> SchemaDocs {
        let mut d = SchemaDocs::default();
        for doc in list {
            d.add(doc["$id"].as_str().unwrap(), doc.clone());
        }
        d
    }

    fn common() -> Value {
        json!({"$id": "https://x/s/common/v1.json", "$defs": {
            "usci": {"type": "string"},
            "division_code": {"type": "string"},
            "waste_code": {"type": "string"},
            "waste_category": {"type": "string"},
            "party": {"type": "object", "properties": {"usci": {"$ref": "#/$defs/usci"}, "name": {"type": "string"}}}
        }})
    }

    #[test]
    fn finds_targets_through_refs_items_and_combinators() {
        let a = json!({"$id": "https://x/s/a/v1.json", "type": "object",
            "properties": {
                "consignor": {"$ref": "../common/v1.json#/$defs/party", "required": ["usci"]},
                "area": {"$ref": "#/$defs/area"},
                "lines": {"type": "array", "items": {"type": "object", "properties": {
                    "waste_code": {"$ref": "../common/v1.json#/$defs/waste_code"},
                    "category": {"$ref": "../common/v1.json#/$defs/waste_category"}
                }}},
                "tree": {"$ref": "#/$defs/node"}
            },
            "allOf": [{"if": {"properties": {"k": {"const": 1}}},
                       "then": {"properties": {"agent": {"$ref": "../common/v1.json#/$defs/party"}}},
                       "else": {"properties": {"other": {"$ref": "../common/v1.json#/$defs/usci"}}}}],
            "oneOf": [{"properties": {"solo": {"$ref": "../common/v1.json#/$defs/waste_code"}}}],
            "$defs": {
                "area": {"$ref": "../common/v1.json#/$defs/division_code"},
                "node": {"type": "object", "properties": {"owner": {"$ref": "../common/v1.json#/$defs/usci"},
                          "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}
            }
        });
        let b = json!({"$id": "https://x/s/b/v1.json", "$ref": "../a/v1.json", "properties": {"version": {"minimum": 2}}});
        let d = docs(&[common(), a, b]);
        let want = vec![
            "division_code /area",
            "usci /agent/usci",
            "usci /consignor/usci",
            "waste_code+category /lines/*/waste_code",
            "usci /other",
            "waste_code /solo",
            "usci /tree/owner",
        ];
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let want = sorted(want.into_iter().map(String::from).collect());
        assert_eq!(sorted(derive("https://x/s/a/v1.json", &d).describe()), want);
        assert_eq!(
            sorted(derive("https://x/s/b/v1.json", &d).describe()),
            want,
            "cross-file $ref at the root"
        );
    }

    #[test]
    fn a_category_that_is_not_a_sibling_is_not_paired() {
        let a = json!({"$id": "https://x/s/a/v1.json", "properties": {
            "waste_code": {"$ref": "../common/v1.json#/$defs/waste_code"},
            "inner": {"properties": {"category": {"$ref": "../common/v1.json#/$defs/waste_category"}}}
        }});
        let d = docs(&[common(), a]);
        assert_eq!(derive("https://x/s/a/v1.json", &d).describe(), vec!["waste_code /waste_code"]);
    }
}

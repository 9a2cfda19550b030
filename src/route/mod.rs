//! Routing: which destinations receive a message. Pure: an envelope and the
//! route table in, destination names out. No I/O.
//!
//! A connector receives a message when any of its routes matches: one of the
//! route's type patterns matches the message type and every condition holds.
//! A message is never routed back to the connector it came from (loops).
//!
//! A body-field condition may use `*` as a step of its JSON Pointer to mean
//! "any element of this list" (`/recipients/*/usci`): the positive
//! operators (`equals`, `prefix`, `one_of`, `exists = true`) then hold when
//! some element's value passes, the negative ones (`not_equals`,
//! `exists = false`) when none does.

use crate::config::ConnectorConfig;
use crate::config::connector::ConditionConfig;
use crate::model::Envelope;

/// The compiled routes of every enabled connector with an outbound side.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    destinations: Vec<DestinationRoutes>,
}

#[derive(Clone, Debug)]
struct DestinationRoutes {
    name: String,
    routes: Vec<Route>,
}

#[derive(Clone, Debug)]
struct Route {
    types: Vec<String>,
    when: Vec<Condition>,
}

#[derive(Clone, Debug)]
enum Subject {
    Attribute(String),
    Field(String),
}

#[derive(Clone, Debug)]
enum Op {
    Equals(String),
    NotEquals(String),
    Prefix(String),
    OneOf(Vec<String>),
    Exists(bool),
}

#[derive(Clone, Debug)]
struct Condition {
    subject: Subject,
    op: Op,
}

impl RouteTable {
    /// Builds the table from validated connector configs.
    pub fn new(connectors: &[ConnectorConfig]) -> Self {
        let destinations = connectors
            .iter()
            .filter(|c| c.enabled && c.outbound.is_some() && !c.routes.is_empty())
            .map(|c| DestinationRoutes {
                name: c.name.clone(),
                routes: c
                    .routes
                    .iter()
                    .map(|r| Route {
                        types: r.types.clone(),
                        when: r.when.iter().filter_map(Condition::compile).collect(),
                    })
                    .collect(),
            })
            .collect();
        Self { destinations }
    }

    /// Destinations for `env`, in connector-name order, excluding `origin`.
    pub fn route(&self, env: &Envelope, origin: &str) -> Vec<String> {
        self.destinations
            .iter()
            .filter(|d| d.name != origin && d.routes.iter().any(|r| r.matches(env)))
            .map(|d| d.name.clone())
            .collect()
    }
}

impl Route {
    fn matches(&self, env: &Envelope) -> bool {
        self.types.iter().any(|p| glob_match(p, &env.r#type)) && self.when.iter().all(|c| c.holds(env))
    }
}

impl Condition {
    /// Config validation has already ensured exactly one subject and one op.
    fn compile(c: &ConditionConfig) -> Option<Self> {
        let subject = match (&c.attribute, &c.field) {
            (Some(a), None) => Subject::Attribute(a.clone()),
            (None, Some(f)) => Subject::Field(f.clone()),
            _ => return None,
        };
        let op = if let Some(v) = &c.equals {
            Op::Equals(v.clone())
        } else if let Some(v) = &c.not_equals {
            Op::NotEquals(v.clone())
        } else if let Some(v) = &c.prefix {
            Op::Prefix(v.clone())
        } else if let Some(v) = c.exists {
            Op::Exists(v)
        } else {
            Op::OneOf(c.one_of.clone()?)
        };
        Some(Self { subject, op })
    }

    fn holds(&self, env: &Envelope) -> bool {
        let values: Vec<String> = match &self.subject {
            Subject::Attribute(a) => env.raw.get(a).and_then(scalar_text).into_iter().collect(),
            Subject::Field(p) if p.split('/').any(|t| t == "*") => {
                let mut found = Vec::new();
                every_match(env.data(), p.split('/').skip(1), &mut found);
                found
            }
            Subject::Field(p) => env.data().pointer(p).and_then(scalar_text).into_iter().collect(),
        };
        match &self.op {
            Op::NotEquals(x) => !values.iter().any(|v| v == x),
            Op::Exists(want) => values.is_empty() != *want,
            Op::Equals(x) => values.iter().any(|v| v == x),
            Op::Prefix(x) => values.iter().any(|v| v.starts_with(x.as_str())),
            Op::OneOf(xs) => values.iter().any(|v| xs.contains(v)),
        }
    }
}

/// Collects the scalar values at a JSON Pointer's remaining `tokens`, where
/// a `*` token stands for every element of a list. Depth is bounded by the
/// pointer (configuration), not by the message.
fn every_match<'a>(node: &serde_json::Value, mut tokens: impl Iterator<Item = &'a str> + Clone, found: &mut Vec<String>) {
    let Some(token) = tokens.next() else {
        found.extend(scalar_text(node));
        return;
    };
    match (token, node) {
        ("*", serde_json::Value::Array(items)) => {
            for item in items {
                every_match(item, tokens.clone(), found);
            }
        }
        ("*", _) => {}
        (t, node) => {
            // RFC 6901 unescaping, as `Value::pointer` does.
            let key = t.replace("~1", "/").replace("~0", "~");
            let next = match node {
                serde_json::Value::Object(m) => m.get(&key),
                serde_json::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            if let Some(next) = next {
                every_match(next, tokens, found);
            }
        }
    }
}

/// Strings as they are; numbers and booleans as their JSON text.
fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `*` matches any run of characters (including none); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(ty: &str, jurisdiction: &str, data: serde_json::Value) -> Envelope {
        let raw = json!({"type": ty, "jurisdiction": jurisdiction, "source": "s", "data": data});
        Envelope {
            id: "1".into(),
            source: "s".into(),
            r#type: ty.into(),
            subject: "x".into(),
            time: "t".into(),
            jurisdiction: jurisdiction.into(),
            raw: raw.as_object().cloned().unwrap_or_default(),
        }
    }

    fn table(toml_text: &str) -> RouteTable {
        let c: ConnectorConfig = toml::from_str(toml_text).expect("connector");
        RouteTable::new(&[c])
    }

    const BASE: &str = "name = \"d\"\nkind = \"http_json\"\n[outbound]\nurl = \"http://127.0.0.1:1/\"\n";

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        assert!(glob_match("manifest-*", "manifest-created"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*-created", "manifest-created"));
        assert!(glob_match("m*-c*d", "manifest-created"));
        assert!(!glob_match("manifest-*", "ledger-entry"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("ledger-entry", "ledger-entry"));
    }

    #[test]
    fn routes_by_type_and_jurisdiction_prefix() {
        let t = table(&format!(
            "{BASE}[[routes]]\ntypes = [\"manifest-*\"]\n[[routes.when]]\nattribute = \"jurisdiction\"\nprefix = \"3502\"\n"
        ));
        assert_eq!(t.route(&env("manifest-created", "350206", json!({})), "o"), vec!["d"]);
        assert!(t.route(&env("manifest-created", "350102", json!({})), "o").is_empty());
        assert!(t.route(&env("ledger-entry", "350206", json!({})), "o").is_empty());
    }

    #[test]
    fn body_field_conditions_and_not_equals_on_missing() {
        let t = table(&format!(
            "{BASE}[[routes]]\ntypes = [\"*\"]\n[[routes.when]]\nfield = \"/transfer_type\"\nnot_equals = \"IN_CITY\"\n"
        ));
        assert_eq!(
            t.route(&env("manifest-created", "350206", json!({"transfer_type": "CROSS_PROVINCE"})), "o")
                .len(),
            1
        );
        assert!(
            t.route(&env("manifest-created", "350206", json!({"transfer_type": "IN_CITY"})), "o")
                .is_empty()
        );
        assert_eq!(t.route(&env("manifest-created", "350206", json!({})), "o").len(), 1);
        let t = table(&format!(
            "{BASE}[[routes]]\ntypes = [\"*\"]\n[[routes.when]]\nfield = \"/version\"\none_of = [\"1\", \"2\"]\n"
        ));
        assert_eq!(t.route(&env("x", "350206", json!({"version": 2})), "o").len(), 1);
        assert!(t.route(&env("x", "350206", json!({"version": 3})), "o").is_empty());
    }

    #[test]
    fn wildcard_steps_match_any_list_element() {
        let t = table(&format!(
            "{BASE}[[routes]]\ntypes = [\"prompt\"]\n[[routes.when]]\nfield = \"/recipients/*/usci\"\nexists = true\n[[routes.when]]\nfield = \"/kind\"\nnot_equals = \"REPLY\"\n"
        ));
        let to_unit = json!({"recipients": [{"jurisdiction": "350181"}, {"usci": "91350181MA31X2K5N8"}]});
        assert_eq!(t.route(&env("prompt", "350181", to_unit), "o"), vec!["d"]);
        let to_regulators = json!({"recipients": [{"jurisdiction": "350181"}, {"account_id": "reg-1"}]});
        assert!(t.route(&env("prompt", "350181", to_regulators), "o").is_empty());
        let reply = json!({"kind": "REPLY", "recipients": [{"usci": "91350181MA31X2K5N8"}]});
        assert!(t.route(&env("prompt", "350181", reply), "o").is_empty());
        assert!(
            t.route(&env("prompt", "350181", json!({"recipients": {"usci": "x"}})), "o")
                .is_empty()
        );

        let t = table(&format!(
            "{BASE}[[routes]]\ntypes = [\"*\"]\n[[routes.when]]\nfield = \"/lines/*/category\"\nnot_equals = \"HW49\"\n"
        ));
        let lines = |a: &str, b: &str| json!({"lines": [{"category": a}, {"category": b}]});
        assert_eq!(t.route(&env("x", "350206", lines("HW08", "HW17")), "o").len(), 1);
        assert!(
            t.route(&env("x", "350206", lines("HW08", "HW49")), "o").is_empty(),
            "no element may equal"
        );
        assert_eq!(t.route(&env("x", "350206", json!({})), "o").len(), 1);
    }

    #[test]
    fn exists_false_holds_only_without_a_value() {
        let t = table(&format!(
            "{BASE}[[routes]]\ntypes = [\"*\"]\n[[routes.when]]\nfield = \"/closed_at\"\nexists = false\n"
        ));
        assert_eq!(t.route(&env("x", "350206", json!({"closed_at": null})), "o").len(), 1);
        assert!(
            t.route(&env("x", "350206", json!({"closed_at": "2026-03-01T00:00:00+08:00"})), "o")
                .is_empty()
        );
    }

    #[test]
    fn never_routes_back_to_the_origin() {
        let t = table(&format!("{BASE}[[routes]]\ntypes = [\"*\"]\n"));
        assert!(t.route(&env("x", "350206", json!({})), "d").is_empty());
    }
}

//! The values a mapping moves: scalars read from the input, and the ordered
//! output tree that is written as JSON or XML.
//!
//! Both sides use one convention for XML, so that a document read and a
//! document written look alike: an element is an object of its children, an
//! attribute is a key `@name`, an element's text beside attributes or
//! children is `#text`, a repeated element is an array, and a text-only
//! element is a plain string.

use std::borrow::Cow;

use serde_json::Value;

/// What a scalar is when written as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    String,
    /// A number (the text is a JSON number).
    Number,
    /// `true` or `false`.
    Boolean,
}

/// One value on its way from input to output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scalar {
    /// The text form (XML has nothing else).
    pub text: String,
    /// How JSON writes it.
    pub kind: Kind,
}

impl Scalar {
    /// A string value.
    pub fn string(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            kind: Kind::String,
        }
    }

    /// Reads a scalar from an input node. `Ok(None)` for null or absent
    /// text; an error for an object or array that is not a text-bearing element.
    pub fn from_value(v: &Value) -> Result<Option<Self>, &'static str> {
        Ok(view(v)?.map(|(text, kind)| Self {
            text: text.into_owned(),
            kind,
        }))
    }

    /// Converts a TOML constant from a mapping file.
    pub fn from_toml(v: &toml::Value) -> Option<Self> {
        Some(match v {
            toml::Value::String(s) => Self::string(s.clone()),
            toml::Value::Integer(i) => Self {
                text: i.to_string(),
                kind: Kind::Number,
            },
            toml::Value::Float(f) => Self {
                text: f.to_string(),
                kind: Kind::Number,
            },
            toml::Value::Boolean(b) => Self {
                text: b.to_string(),
                kind: Kind::Boolean,
            },
            _ => return None,
        })
    }
}

/// A node of the output tree. Objects keep insertion order, so XML elements
/// come out in the order the mapping's rules are written.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// An object or an element with children.
    Obj(Vec<(String, Node)>),
    /// A list or a repeated element.
    Arr(Vec<Node>),
    /// A scalar; `cdata` asks XML output for a CDATA section.
    Val {
        /// The value.
        value: Scalar,
        /// Write as `<![CDATA[...]]>` in XML.
        cdata: bool,
    },
}

impl Node {
    /// An empty object.
    pub fn obj() -> Self {
        Node::Obj(Vec::new())
    }

    /// The child `key` of an object, created as `make()` when absent.
    /// Returns `None` when `self` is not an object or the child is a scalar
    /// where a structure is needed (two rules disagree on the shape).
    pub fn child_mut(&mut self, key: &str, make: impl FnOnce() -> Node) -> Option<&mut Node> {
        self.promote();
        let Node::Obj(entries) = self else { return None };
        let pos = match entries.iter().position(|(k, _)| k == key) {
            Some(p) => p,
            None => {
                entries.push((key.to_string(), make()));
                entries.len() - 1
            }
        };
        Some(&mut entries[pos].1)
    }

    /// Sets `key` to `node`, replacing an earlier value. A value set on an
    /// element that already has attributes or children becomes its `#text`.
    pub fn set(&mut self, key: &str, node: Node) -> bool {
        self.promote();
        let Node::Obj(entries) = self else { return false };
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, existing @ Node::Obj(_))) if matches!(node, Node::Val { .. }) => existing.set("#text", node),
            Some(slot) => {
                slot.1 = node;
                true
            }
            None => {
                entries.push((key.to_string(), node));
                true
            }
        }
    }

    /// An element that so far had only text gains attributes or children:
    /// its text moves to `#text` (`<Amount unit="piece">860</Amount>`).
    fn promote(&mut self) {
        if let Node::Val { .. } = self {
            let text = std::mem::replace(self, Node::obj());
            if let Node::Obj(entries) = self {
                entries.push(("#text".into(), text));
            }
        }
    }

    /// Converts to a JSON value, moving keys and text rather than copying
    /// them; see [`to_json`](Self::to_json).
    pub fn into_json(self) -> Value {
        match self {
            Node::Obj(entries) => Value::Object(entries.into_iter().map(|(k, v)| (k, v.into_json())).collect()),
            Node::Arr(items) => Value::Array(items.into_iter().map(Node::into_json).collect()),
            Node::Val { value, .. } => match value.kind {
                Kind::String => Value::String(value.text),
                Kind::Boolean => Value::Bool(value.text == "true"),
                Kind::Number => number(value.text),
            },
        }
    }

    /// Converts to a JSON value. Numbers that are not valid JSON numbers
    /// were refused when the scalar was typed, so they cannot reach here;
    /// should one slip through it is written as a string rather than lost.
    pub fn to_json(&self) -> Value {
        match self {
            Node::Obj(entries) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Node::Arr(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Val { value, .. } => match value.kind {
                Kind::String => Value::String(value.text.clone()),
                Kind::Boolean => Value::Bool(value.text == "true"),
                Kind::Number => number(value.text.clone()),
            },
        }
    }
}

/// A JSON number from its text; text that is not one stays a string.
fn number(text: String) -> Value {
    match serde_json::from_str::<serde_json::Number>(&text) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(text),
    }
}

/// The text of an input node read as a scalar (see [`Scalar::from_value`]),
/// borrowed where the input holds it as text: conditions only compare it.
pub fn text_of(v: &Value) -> Result<Option<Cow<'_, str>>, &'static str> {
    Ok(view(v)?.map(|(text, _)| text))
}

fn view(v: &Value) -> Result<Option<(Cow<'_, str>, Kind)>, &'static str> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::String(s) => (Cow::Borrowed(s.as_str()), Kind::String),
        Value::Number(n) => (Cow::Owned(n.to_string()), Kind::Number),
        Value::Bool(b) => (Cow::Borrowed(if *b { "true" } else { "false" }), Kind::Boolean),
        Value::Object(m) => match m.get("#text") {
            Some(Value::String(s)) => (Cow::Borrowed(s.as_str()), Kind::String),
            // An element with attributes but no text has no value.
            _ if m.keys().all(|k| k.starts_with('@')) => return Ok(None),
            _ => return Err("is a structure, not a value"),
        },
        Value::Array(a) if a.len() == 1 => return view(&a[0]),
        Value::Array(_) => return Err("is a list, not a value"),
    }))
}

/// Looks up one step of a path in an input node. XML gives a single element
/// where a list may be expected and a list where one element is expected;
/// a one-element list is read through, a longer one is an error.
pub fn step<'v>(node: &'v Value, key: &str) -> Result<Option<&'v Value>, Cow<'static, str>> {
    match node {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(a) if a.len() == 1 => step(&a[0], key),
        Value::Array(a) => Err(Cow::Owned(format!("is repeated ({} times) where one was expected", a.len()))),
        _ => Ok(None),
    }
}

/// Looks up a list index; a single (non-list) node is a list of one.
pub fn index(node: &Value, i: usize) -> Option<&Value> {
    match node {
        Value::Array(a) => a.get(i),
        other if i == 0 => Some(other),
        _ => None,
    }
}

/// The items a repeated rule walks: a list's elements, or one node.
pub fn items(node: &Value) -> &[Value] {
    match node {
        Value::Array(a) => a,
        Value::Null => &[],
        other => std::slice::from_ref(other),
    }
}

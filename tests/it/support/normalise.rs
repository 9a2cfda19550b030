//! Comparing what was exchanged with what an example says, after
//! normalisation: JSON by meaning (key order and formatting do not count);
//! XML as a tree of elements in document order, names by namespace URI and
//! local name (prefixes do not count), attributes as a set, text trimmed and
//! whitespace-only text between elements dropped. Paths listed in `ignore`
//! (values assigned per run, such as the hub's message id) must be present
//! on both sides but their values are not compared.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::NsReader;
use serde_json::Value;

/// How to read a document, by its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.json`.
    Json,
    /// `.xml`.
    Xml,
}

impl Format {
    /// The format of a file, by extension.
    pub fn of(path: &std::path::Path) -> Option<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Some(Self::Json),
            Some("xml") => Some(Self::Xml),
            _ => None,
        }
    }
}

/// Stands in for an ignored value on both sides.
const IGNORED: &str = "<ignored>";
/// Differences listed before the rest are summarised.
const SHOWN: usize = 8;

/// Compares `actual` with `expected`; `Err` lists the differences by path.
pub fn compare(format: Format, expected: &[u8], actual: &[u8], ignore: &[String]) -> Result<(), String> {
    match format {
        Format::Json => {
            let e: Value = serde_json::from_slice(expected).map_err(|e| format!("the expected JSON does not parse: {e}"))?;
            let a: Value = serde_json::from_slice(actual).map_err(|e| format!("the JSON received does not parse: {e}"))?;
            compare_json(e, a, ignore)
        }
        Format::Xml => {
            let e = xml_tree(expected).map_err(|m| format!("the expected XML does not parse: {m}"))?;
            let a = xml_tree(actual).map_err(|m| format!("the XML received does not parse: {m}"))?;
            compare_xml(e, a, ignore)
        }
    }
}

/// Compares two JSON values; with arrays of events at the top, `ignore`
/// applies to each element.
pub fn compare_json(mut expected: Value, mut actual: Value, ignore: &[String]) -> Result<(), String> {
    let mut diffs = Vec::new();
    for p in ignore {
        blank_json(&mut expected, &mut actual, p, "", &mut diffs);
    }
    json_diff("", &expected, &actual, &mut diffs);
    report(diffs)
}

fn blank_json(expected: &mut Value, actual: &mut Value, pointer: &str, at: &str, diffs: &mut Vec<String>) {
    if let (Value::Array(e), Value::Array(a)) = (&mut *expected, &mut *actual) {
        for (i, (e, a)) in e.iter_mut().zip(a.iter_mut()).enumerate() {
            blank_json(e, a, pointer, &format!("{at}/{i}"), diffs);
        }
        return;
    }
    let Some(e) = expected.pointer_mut(pointer) else { return };
    match actual.pointer_mut(pointer) {
        Some(a) => {
            *e = Value::String(IGNORED.into());
            *a = Value::String(IGNORED.into());
        }
        None => diffs.push(format!("{at}{pointer}: missing (it is ignored, but must be there)")),
    }
}

fn json_diff(at: &str, e: &Value, a: &Value, diffs: &mut Vec<String>) {
    match (e, a) {
        (Value::Object(eo), Value::Object(ao)) => {
            for (k, ev) in eo {
                let path = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match ao.get(k) {
                    Some(av) => json_diff(&path, ev, av, diffs),
                    None => diffs.push(format!("{path}: missing (expected {})", short(ev))),
                }
            }
            for (k, av) in ao {
                if !eo.contains_key(k) {
                    diffs.push(format!("{at}/{k}: not expected (got {})", short(av)));
                }
            }
        }
        (Value::Array(ea), Value::Array(aa)) => {
            if ea.len() != aa.len() {
                diffs.push(format!("{}: expected {} items, got {}", path_or_root(at), ea.len(), aa.len()));
            }
            for (i, (ev, av)) in ea.iter().zip(aa).enumerate() {
                json_diff(&format!("{at}/{i}"), ev, av, diffs);
            }
        }
        (e, a) if e == a => {}
        (e, a) => diffs.push(format!("{}: expected {}, got {}", path_or_root(at), short(e), short(a))),
    }
}

fn path_or_root(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

fn report(diffs: Vec<String>) -> Result<(), String> {
    if diffs.is_empty() {
        return Ok(());
    }
    let mut text = diffs.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("\n      ");
    if diffs.len() > SHOWN {
        text.push_str(&format!("\n      … and {} more", diffs.len() - SHOWN));
    }
    Err(text)
}

/// An XML element, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// `{namespace-uri}local`, or `local` without a namespace.
    pub name: String,
    /// The local name (for paths).
    pub local: String,
    /// Attributes by `{namespace-uri}local` (namespace declarations left out).
    pub attrs: BTreeMap<String, String>,
    /// Text content, trimmed (CDATA and references included).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Node>,
}

fn qualified(ns: &quick_xml::name::ResolveResult<'_>, local: &str) -> String {
    match ns {
        quick_xml::name::ResolveResult::Bound(n) => {
            let uri: &str = n.as_ref();
            format!("{{{uri}}}{local}")
        }
        _ => local.to_string(),
    }
}

fn open(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<Node, String> {
    let (ns, local) = reader.resolver().resolve_element(e.name());
    let mut attrs = BTreeMap::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let key = attr.key.as_ref();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let (ans, alocal) = reader.resolver().resolve_attribute(attr.key);
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attrs.insert(qualified(&ans, alocal.as_ref()), value.into_owned());
    }
    Ok(Node {
        name: qualified(&ns, local.as_ref()),
        local: local.as_ref().to_string(),
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}

/// Reads a document (UTF-8, or the encoding it declares) into its root element.
pub fn xml_tree(bytes: &[u8]) -> Result<Node, String> {
    let text = wastehub::mapping::xml_in::decode(bytes).map_err(|e| e.message)?;
    let mut reader = NsReader::from_str(&text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    let close = |node: Node, stack: &mut Vec<Node>, root: &mut Option<Node>| {
        let mut node = node;
        node.text = node.text.trim().to_string();
        match stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None => *root = Some(node),
        }
    };
    loop {
        match reader.read_resolved_event().map_err(|e| e.to_string())?.1 {
            Event::Start(e) => {
                let node = open(&reader, &e)?;
                stack.push(node);
            }
            Event::Empty(e) => {
                let node = open(&reader, &e)?;
                close(node, &mut stack, &mut root);
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("a closing tag without an opening tag")?;
                close(node, &mut stack, &mut root);
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match &*r {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(format!("entity &{other}; is not one of XML's own")),
                    },
                };
                if let Some(n) = stack.last_mut() {
                    n.text.push(ch);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// Compares two trees; `ignore` paths start below the root, one element
/// (prefix optional: `/nx:Header/nx:MessageId` or `/Header/MessageId`) per
/// step and an `@attribute` as the last step.
pub fn compare_xml(mut expected: Node, mut actual: Node, ignore: &[String]) -> Result<(), String> {
    let mut diffs = Vec::new();
    for p in ignore {
        let steps: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).map(unprefixed).collect();
        if blank_xml(&mut expected, &steps) && !blank_xml(&mut actual, &steps) {
            diffs.push(format!("{p}: missing (it is ignored, but must be there)"));
        }
    }
    xml_diff(&format!("/{}", expected.local), &expected, &actual, &mut diffs);
    report(diffs)
}

fn unprefixed(step: &str) -> &str {
    match step.strip_prefix('@') {
        Some(_) => step,
        None => step.rsplit(':').next().unwrap_or(step),
    }
}

/// Replaces the value at `steps` by a placeholder; false when it is not there.
fn blank_xml(node: &mut Node, steps: &[&str]) -> bool {
    match steps {
        [] => {
            node.text = IGNORED.into();
            node.children.clear();
            true
        }
        [attr] if attr.starts_with('@') => {
            let want = unprefixed(attr.trim_start_matches('@'));
            let key = node.attrs.keys().find(|k| k.rsplit('}').next() == Some(want)).cloned();
            match key {
                Some(k) => {
                    node.attrs.insert(k, IGNORED.into());
                    true
                }
                None => false,
            }
        }
        [first, rest @ ..] => match node.children.iter_mut().find(|c| c.local == *first) {
            Some(child) => blank_xml(child, rest),
            None => false,
        },
    }
}

fn xml_diff(at: &str, e: &Node, a: &Node, diffs: &mut Vec<String>) {
    if e.name != a.name {
        diffs.push(format!("{at}: expected element {}, got {}", e.name, a.name));
        return;
    }
    if e.attrs != a.attrs {
        for (k, v) in &e.attrs {
            match a.attrs.get(k) {
                Some(av) if av == v => {}
                Some(av) => diffs.push(format!("{at}/@{k}: expected {v:?}, got {av:?}")),
                None => diffs.push(format!("{at}/@{k}: missing (expected {v:?})")),
            }
        }
        for (k, v) in &a.attrs {
            if !e.attrs.contains_key(k) {
                diffs.push(format!("{at}/@{k}: not expected (got {v:?})"));
            }
        }
    }
    if e.text != a.text {
        diffs.push(format!("{at}: expected text {:?}, got {:?}", e.text, a.text));
    }
    if e.children.len() != a.children.len() {
        let names = |n: &Node| n.children.iter().map(|c| c.local.clone()).collect::<Vec<_>>().join(", ");
        diffs.push(format!(
            "{at}: expected {} child elements ({}), got {} ({})",
            e.children.len(),
            names(e),
            a.children.len(),
            names(a)
        ));
    }
    for (i, (ec, ac)) in e.children.iter().zip(&a.children).enumerate() {
        let same_before = e.children[..i].iter().filter(|c| c.local == ec.local).count();
        xml_diff(&format!("{at}/{}[{}]", ec.local, same_before + 1), ec, ac, diffs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_whitespace_do_not_count_but_order_and_text_do() {
        let a = br#"<nx:A xmlns:nx="urn:x" v="1"><nx:B>1</nx:B>
            <nx:C><![CDATA[two]]></nx:C></nx:A>"#;
        let b = br#"<?xml version="1.0"?><A xmlns="urn:x" v="1"><B> 1 </B><C>two</C></A>"#;
        assert_eq!(compare(Format::Xml, a, b, &[]), Ok(()));
        let swapped = br#"<A xmlns="urn:x" v="1"><C>two</C><B>1</B></A>"#;
        assert!(compare(Format::Xml, a, swapped, &[]).is_err());
        let other_ns = br#"<A xmlns="urn:y" v="1"><B>1</B><C>two</C></A>"#;
        assert!(compare(Format::Xml, a, other_ns, &[]).is_err());
    }

    #[test]
    fn ignored_values_must_be_there_but_may_differ() {
        let e = br#"<A xmlns="urn:x"><H><Id>m-1</Id></H><B>1</B></A>"#;
        let a = br#"<A xmlns="urn:x"><H><Id>m-2</Id></H><B>1</B></A>"#;
        let ignore = vec!["/x:H/x:Id".to_string()];
        assert_eq!(compare(Format::Xml, e, a, &ignore), Ok(()));
        let missing = br#"<A xmlns="urn:x"><H/><B>1</B></A>"#;
        assert!(compare(Format::Xml, e, missing, &ignore).expect_err("missing").contains("missing"));
        let j = |s: &str| s.as_bytes().to_vec();
        assert_eq!(
            compare(
                Format::Json,
                &j(r#"{"id":"a","x":[1,2]}"#),
                &j(r#"{"x":[1,2],"id":"b"}"#),
                &["/id".into()]
            ),
            Ok(())
        );
        let err = compare(Format::Json, &j(r#"{"x":{"y":"1"}}"#), &j(r#"{"x":{"y":"1.0"}}"#), &[]).expect_err("differs");
        assert!(err.contains("/x/y"), "{err}");
    }
}

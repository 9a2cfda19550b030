//! Writes the output tree (see [`super::value`]) as an XML document: the
//! root element carries the namespace declarations, `@name` keys become
//! attributes, `#text` the element's text, lists repeated elements, and the
//! document is encoded as the mapping declares (UTF-8 by default; GBK or
//! GB18030 for legacy receivers, with characters they cannot hold written
//! as character references).

use std::fmt::Write as _;

use encoding_rs::{Encoding, UTF_8};

use super::value::Node;

/// How a document is written.
#[derive(Clone, Debug)]
pub struct XmlStyle {
    /// Root element name (with the mapping's prefix).
    pub root: String,
    /// Namespace declarations on the root: prefix (`""` for the default) → URI.
    pub namespaces: Vec<(String, String)>,
    /// Output encoding.
    pub encoding: &'static Encoding,
    /// Write `<?xml version="1.0" encoding="..."?>` first.
    pub declaration: bool,
    /// Indent nested elements by two spaces.
    pub pretty: bool,
}

/// Writes `node` as the content of the root element.
pub fn write(node: &Node, style: &XmlStyle) -> Vec<u8> {
    let mut out = String::with_capacity(1024);
    if style.declaration {
        let _ = write!(out, "<?xml version=\"1.0\" encoding=\"{}\"?>", style.encoding.name());
        if style.pretty {
            out.push('\n');
        }
    }
    let mut decls = String::new();
    for (prefix, uri) in &style.namespaces {
        if prefix.is_empty() {
            decls.push_str(" xmlns=\"");
        } else {
            let _ = write!(decls, " xmlns:{prefix}=\"");
        }
        escape_into(&mut decls, uri, true);
        decls.push('"');
    }
    element(&mut out, &style.root, node, &decls, 0, style.pretty);
    if style.encoding == UTF_8 {
        out.into_bytes()
    } else {
        let (bytes, _, _) = style.encoding.encode(&out);
        bytes.into_owned()
    }
}

fn element(out: &mut String, name: &str, node: &Node, extra_attrs: &str, depth: usize, pretty: bool) {
    match node {
        Node::Arr(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    newline(out, depth, pretty);
                }
                element(out, name, item, extra_attrs, depth, pretty);
            }
        }
        Node::Val { value, cdata } => {
            open_tag(out, name, extra_attrs);
            out.push('>');
            text(out, &value.text, *cdata);
            close_tag(out, name);
        }
        Node::Obj(entries) => {
            open_tag(out, name, extra_attrs);
            for (k, v) in entries {
                if let (Some(attr), Node::Val { value, .. }) = (k.strip_prefix('@'), v) {
                    out.push(' ');
                    out.push_str(attr);
                    out.push_str("=\"");
                    escape_into(out, &value.text, true);
                    out.push('"');
                }
            }
            let mut children = entries.iter().filter(|(k, _)| !k.starts_with('@')).peekable();
            if children.peek().is_none() {
                out.push_str("/>");
                return;
            }
            out.push('>');
            let mut had_element = false;
            for (k, v) in children {
                if k == "#text" {
                    if let Node::Val { value, cdata } = v {
                        text(out, &value.text, *cdata);
                    }
                    continue;
                }
                newline(out, depth + 1, pretty);
                element(out, k, v, "", depth + 1, pretty);
                had_element = true;
            }
            if had_element {
                newline(out, depth, pretty);
            }
            close_tag(out, name);
        }
    }
}

// Tags are pushed piece by piece: `write!` costs more than the copying.
fn open_tag(out: &mut String, name: &str, extra_attrs: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str(extra_attrs);
}

fn close_tag(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn newline(out: &mut String, depth: usize, pretty: bool) {
    if pretty {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
}

fn text(out: &mut String, value: &str, cdata: bool) {
    if cdata {
        // "]]>" cannot appear inside a CDATA section: split it across two.
        out.push_str("<![CDATA[");
        if value.contains("]]>") {
            out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
        } else {
            out.push_str(value);
        }
        out.push_str("]]>");
    } else {
        escape_into(out, value, false);
    }
}

/// Escapes markup characters; in attributes also quotes and the white space
/// that attribute normalisation would otherwise turn into spaces. Runs of
/// characters that need nothing are copied whole: most values have none.
fn escape_into(out: &mut String, value: &str, attribute: bool) {
    let mut plain = 0;
    for (i, b) in value.bytes().enumerate() {
        // All escaped characters are ASCII, so a byte test is a char test
        // and `i` is always a char boundary.
        let escaped = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' if attribute => "&quot;",
            b'\n' if attribute => "&#10;",
            b'\t' if attribute => "&#9;",
            b'\r' => "&#13;",
            _ => continue,
        };
        out.push_str(&value[plain..i]);
        out.push_str(escaped);
        plain = i + 1;
    }
    out.push_str(&value[plain..]);
}

#[cfg(test)]
mod tests {
    use super::super::value::Scalar;
    use super::*;

    fn val(t: &str, cdata: bool) -> Node {
        Node::Val {
            value: Scalar::string(t),
            cdata,
        }
    }

    #[test]
    fn writes_attributes_text_repeats_and_cdata() {
        let node = Node::Obj(vec![
            ("@id".into(), val("a\"1", false)),
            ("gf:No".into(), val("<&>", false)),
            ("gf:L".into(), Node::Arr(vec![val("x", false), val("y", false)])),
            ("gf:N".into(), val("a]]>b", true)),
        ]);
        let style = XmlStyle {
            root: "gf:M".into(),
            namespaces: vec![("gf".into(), "urn:gf".into())],
            encoding: UTF_8,
            declaration: true,
            pretty: false,
        };
        let xml = String::from_utf8(write(&node, &style)).unwrap();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><gf:M xmlns:gf=\"urn:gf\" id=\"a&quot;1\"><gf:No>&lt;&amp;&gt;</gf:No><gf:L>x</gf:L><gf:L>y</gf:L><gf:N><![CDATA[a]]]]><![CDATA[>b]]></gf:N></gf:M>"
        );
    }

    #[test]
    fn encodes_gbk_and_reads_back() {
        let node = Node::Obj(vec![("Name".into(), val("厦门市", false))]);
        let style = XmlStyle {
            root: "R".into(),
            namespaces: vec![],
            encoding: encoding_rs::GBK,
            declaration: true,
            pretty: true,
        };
        let bytes = write(&node, &style);
        assert!(std::str::from_utf8(&bytes).is_err(), "GBK bytes are not UTF-8");
        let (_, v) = super::super::xml_in::read(&bytes, &Default::default()).unwrap();
        assert_eq!(v["Name"], "厦门市");
    }
}

//! Reads an XML document into the mapping tree (see [`super::value`]),
//! defensively: partners' documents are untrusted.
//!
//! - The declared encoding is honoured: UTF-8, and GBK / GB2312 / GB18030 as
//!   legacy government systems send them (also anything else the Encoding
//!   Standard names). Bytes that are not valid in that encoding are an error
//!   with their position, never silently replaced.
//! - `<!DOCTYPE>` is refused outright, so there are no DTDs, no external
//!   entities and no entity expansion ("billion laughs"); only the five XML
//!   entities and character references are read.
//! - Nesting is limited ([`MAX_DEPTH`]); the caller limits size.
//! - Element and attribute names are resolved by namespace URI and named
//!   with the mapping's own prefixes, so a partner may choose any prefix.

use std::borrow::Cow;

use encoding_rs::{DecoderResult, Encoding, UTF_8};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde_json::{Map, Value};

use super::InputError;

/// Deepest element nesting accepted. Real partner documents stay below 12.
pub const MAX_DEPTH: usize = 64;

/// Namespace URI → the prefix the mapping uses for it (`""` for none).
///
/// A mapping declares one to three namespaces, so they are searched in a
/// list: cheaper than hashing a long URI for every element read.
#[derive(Clone, Debug, Default)]
pub struct Prefixes {
    /// (URI, prefix); a URI declared twice has the later prefix.
    by_uri: Vec<(String, String)>,
}

impl Prefixes {
    /// Builds from the mapping's `namespaces` table (prefix → URI).
    pub fn new<'a>(declared: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        let mut by_uri: Vec<(String, String)> = Vec::new();
        for (p, u) in declared {
            match by_uri.iter_mut().find(|(known, _)| known == u) {
                Some(entry) => entry.1 = p.clone(),
                None => by_uri.push((u.clone(), p.clone())),
            }
        }
        Self { by_uri }
    }

    fn get(&self, uri: &str) -> Option<&str> {
        self.by_uri.iter().find(|(u, _)| u == uri).map(|(_, p)| p.as_str())
    }

    fn name(&self, ns: &ResolveResult<'_>, local: &str) -> String {
        let mut name = String::new();
        self.name_into(&mut name, ns, local);
        name
    }

    /// Appends the mapping's name for an element or attribute to `out`
    /// (built by pushing: this runs for every element of every document).
    fn name_into(&self, out: &mut String, ns: &ResolveResult<'_>, local: &str) {
        if let ResolveResult::Bound(uri) = ns {
            let uri: &str = uri.as_ref();
            match self.get(uri) {
                Some("") => {}
                Some(p) => {
                    out.push_str(p);
                    out.push(':');
                }
                None => {
                    out.push('{');
                    out.push_str(uri);
                    out.push('}');
                }
            }
        }
        out.push_str(local);
    }
}

/// Reads `bytes` and returns the root element's name and content.
pub fn read(bytes: &[u8], prefixes: &Prefixes) -> Result<(String, Value), InputError> {
    let text = decode(bytes)?;
    parse(&text, prefixes)
}

/// Decodes to UTF-8 by BOM, else by the declared encoding, else UTF-8.
pub fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, InputError> {
    if let Some((enc, bom)) = Encoding::for_bom(bytes) {
        return decode_with(enc, &bytes[bom..], bytes);
    }
    let enc = match declared_encoding(bytes) {
        Some(label) => Encoding::for_label(label.as_bytes()).ok_or_else(|| InputError {
            line: 1,
            column: 1,
            message: format!("the XML declaration names an unknown encoding {label:?}"),
        })?,
        None => UTF_8,
    };
    decode_with(enc, bytes, bytes)
}

fn decode_with<'b>(enc: &'static Encoding, body: &'b [u8], whole: &[u8]) -> Result<Cow<'b, str>, InputError> {
    let skipped = whole.len() - body.len();
    if enc == UTF_8 {
        return std::str::from_utf8(body).map(Cow::Borrowed).map_err(|e| {
            let at = e.valid_up_to();
            let (line, column) = line_col_bytes(body, at);
            InputError {
                line,
                column,
                message: format!("invalid UTF-8 at byte {}", at + skipped),
            }
        });
    }
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(body.len() * 3 / 2 + 16);
    let (result, read) = decoder.decode_to_string_without_replacement(body, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Ok(Cow::Owned(out)),
        DecoderResult::Malformed(bad, _) => {
            let at = read.saturating_sub(usize::from(bad));
            let (line, column) = line_col_bytes(body, at);
            Err(InputError {
                line,
                column,
                message: format!(
                    "bytes at offset {} are not valid {} (the declared encoding)",
                    at + skipped,
                    enc.name()
                ),
            })
        }
        // The string was reserved with room for the worst case; reaching
        // here means a decoder broke its own size promise.
        DecoderResult::OutputFull => Err(InputError {
            line: 1,
            column: 1,
            message: format!("could not decode the document as {}", enc.name()),
        }),
    }
}

/// The `encoding="..."` of a leading XML declaration, read from ASCII bytes.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = bytes.get(..bytes.len().min(256))?;
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_string())
}

struct Frame {
    key: String,
    map: Map<String, Value>,
    text: String,
}

fn parse(text: &str, prefixes: &Prefixes) -> Result<(String, Value), InputError> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    let err = |reader: &NsReader<&[u8]>, message: String| {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX).min(text.len());
        let (line, column) = line_col_str(text, at);
        InputError { line, column, message }
    };
    loop {
        let event = match reader.read_resolved_event() {
            Ok((_, ev)) => ev,
            Err(e) => return Err(err(&reader, format!("malformed XML: {e}"))),
        };
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err(err(&reader, "more than one root element".into()));
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(&reader, format!("elements are nested deeper than {MAX_DEPTH} levels")));
                }
                let frame = open(&reader, &e, prefixes).map_err(|m| err(&reader, m))?;
                stack.push(frame);
            }
            Event::Empty(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(&reader, format!("elements are nested deeper than {MAX_DEPTH} levels")));
                }
                let frame = open(&reader, &e, prefixes).map_err(|m| err(&reader, m))?;
                close(frame, &mut stack, &mut root);
            }
            Event::End(_) => match stack.pop() {
                Some(frame) => close(frame, &mut stack, &mut root),
                None => return Err(err(&reader, "closing tag without an opening tag".into())),
            },
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    // Most elements hold one text event: take it whole.
                    Some(frame) if frame.text.is_empty() => frame.text = content.into_owned(),
                    Some(frame) => frame.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(err(&reader, "text outside the root element".into())),
                }
            }
            Event::CData(c) => match stack.last_mut() {
                Some(frame) if frame.text.is_empty() => frame.text = c.xml10_content().into_owned(),
                Some(frame) => frame.text.push_str(&c.xml10_content()),
                None => return Err(err(&reader, "CDATA outside the root element".into())),
            },
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match &*r {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => {
                            return Err(err(
                                &reader,
                                format!("entity &{other}; is not allowed: only &lt; &gt; &amp; &apos; &quot; and character references"),
                            ));
                        }
                    },
                    Err(e) => return Err(err(&reader, format!("bad character reference: {e}"))),
                };
                match stack.last_mut() {
                    Some(frame) => frame.text.push(ch),
                    None => return Err(err(&reader, "reference outside the root element".into())),
                }
            }
            Event::DocType(_) => {
                return Err(err(
                    &reader,
                    "DOCTYPE declarations are refused: the hub reads no DTDs and expands no entities".into(),
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(err(&reader, format!("document ends inside <{}>", open.key)));
    }
    root.ok_or_else(|| err(&reader, "no root element".into()))
}

fn open(reader: &NsReader<&[u8]>, e: &BytesStart<'_>, prefixes: &Prefixes) -> Result<Frame, String> {
    let (ns, local) = reader.resolver().resolve_element(e.name());
    let key = prefixes.name(&ns, local.as_ref());
    let mut map = Map::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| format!("malformed attribute: {e}"))?;
        let qname = attr.key;
        if qname.as_ref() == "xmlns" || qname.as_ref().starts_with("xmlns:") {
            continue;
        }
        let (ans, alocal) = reader.resolver().resolve_attribute(qname);
        let mut name = String::from("@");
        prefixes.name_into(&mut name, &ans, alocal.as_ref());
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| format!("attribute {name}: {e} (only the five XML entities and character references are read)"))?;
        if map.contains_key(&name) {
            return Err(format!("attribute {name} appears twice"));
        }
        map.insert(name, Value::String(value.into_owned()));
    }
    Ok(Frame {
        key,
        map,
        text: String::new(),
    })
}

fn close(frame: Frame, stack: &mut [Frame], root: &mut Option<(String, Value)>) {
    let Frame { key, mut map, text } = frame;
    let value = if map.is_empty() {
        Value::String(text)
    } else {
        let trimmed = text.trim();
        if !trimmed.is_empty() {
            map.insert("#text".into(), Value::String(trimmed.to_string()));
        }
        Value::Object(map)
    };
    match stack.last_mut() {
        None => *root = Some((key, value)),
        Some(parent) => match parent.map.get_mut(&key) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                parent.map.insert(key, value);
            }
        },
    }
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
pub fn line_col_str(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn line_col_bytes(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes() -> Prefixes {
        let ns: Vec<(String, String)> = vec![("gf".into(), "urn:gf".into())];
        Prefixes::new(ns.iter().map(|(a, b)| (a, b)))
    }

    #[test]
    fn reads_namespaces_attributes_repeats_and_cdata() {
        let xml = r#"<?xml version="1.0"?>
<x:M xmlns:x="urn:gf" id="7"><x:No>2026</x:No><x:L><x:C>a</x:C></x:L><x:L><x:C>b &amp; &#x4E2D;</x:C></x:L><x:N><![CDATA[<raw>]]></x:N><x:E/></x:M>"#;
        let (root, v) = read(xml.as_bytes(), &prefixes()).unwrap();
        assert_eq!(root, "gf:M");
        assert_eq!(v["@id"], "7");
        assert_eq!(v["gf:No"], "2026");
        assert_eq!(v["gf:L"][1]["gf:C"], "b & 中");
        assert_eq!(v["gf:N"], "<raw>");
        assert_eq!(v["gf:E"], "");
    }

    #[test]
    fn reads_gbk_and_gb18030() {
        let (bytes, _, _) = encoding_rs::GBK.encode("<?xml version=\"1.0\" encoding=\"GBK\"?><a>厦门市危险废物</a>");
        let (_, v) = read(&bytes, &prefixes()).unwrap();
        assert_eq!(v, "厦门市危险废物");
        let (bytes, _, _) = encoding_rs::GB18030.encode("<?xml version='1.0' encoding='GB18030'?><a>福州</a>");
        assert_eq!(read(&bytes, &prefixes()).unwrap().1, "福州");
    }

    #[test]
    fn refuses_hostile_and_broken_documents() {
        let cases: [(&[u8], &str); 8] = [
            (b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "DOCTYPE"),
            (b"<a>&x;</a>", "entity &x;"),
            (b"<a><b></a>", "malformed"),
            (b"<a></a><b/>", "more than one root"),
            (b"<a>", "ends inside"),
            (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>\xff</a>", "invalid UTF-8"),
            (b"<?xml version=\"1.0\" encoding=\"GBK\"?><a>\x81\x20</a>", "not valid GBK"),
            (b"<?xml version=\"1.0\" encoding=\"KLINGON\"?><a/>", "unknown encoding"),
        ];
        for (doc, want) in cases {
            let e = read(doc, &prefixes()).expect_err(want);
            assert!(e.message.contains(want), "{want}: {e:?}");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(read(deep.as_bytes(), &prefixes()).unwrap_err().message.contains("deeper"));
    }

    #[test]
    fn positions_are_line_and_column() {
        let e = read(b"<a>\n  <b>\n</a>", &prefixes()).unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
    }
}

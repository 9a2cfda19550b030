//! Property tests (the fuzz targets of the mapping paths): arbitrary bytes
//! and generated documents against the XML reader, the JSON reader and the
//! shipped mappings. Whatever comes in, the answer is a value or an error
//! with a position, never a panic or a hang; well-formed documents survive a
//! write/read round trip. Run longer with `PROPTEST_CASES=100000`.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use wastehub::mapping::value::{Node, Scalar};
use wastehub::mapping::xml_in::{self, Prefixes};
use wastehub::mapping::xml_out::{self, XmlStyle};
use wastehub::mapping::{LoadContext, MapError, MappingSet};

use crate::support::repo;

fn shipped() -> &'static MappingSet {
    static SET: OnceLock<MappingSet> = OnceLock::new();
    SET.get_or_init(|| {
        let cat = wastehub::schema::Catalogue::load(&repo().join("schemas/canonical")).expect("catalogue");
        MappingSet::load(
            &repo().join("mappings"),
            &LoadContext {
                catalogue: &cat,
                reference_dir: &repo().join("schemas/reference"),
            },
        )
        .expect("shipped mappings")
    })
}

fn case_input(rel: &str) -> Vec<u8> {
    std::fs::read(repo().join("mappings").join(Path::new(rel))).expect("case input")
}

/// A small XML-ish alphabet: markup characters, entities, CDATA and
/// declarations turn up often, so the reader's edges are reached.
fn xmlish() -> impl Strategy<Value = Vec<u8>> {
    let atoms = prop_oneof![
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"</".to_vec()),
        Just(b"/>".to_vec()),
        Just(b"<a>".to_vec()),
        Just(b"</a>".to_vec()),
        Just(b"<nx:M xmlns:nx=\"urn:x\">".to_vec()),
        Just(b"&amp;".to_vec()),
        Just(b"&#x4E2D;".to_vec()),
        Just(b"&bogus;".to_vec()),
        Just(b"<![CDATA[".to_vec()),
        Just(b"]]>".to_vec()),
        Just(b"<!DOCTYPE a>".to_vec()),
        Just(b"<?xml version=\"1.0\" encoding=\"GBK\"?>".to_vec()),
        Just(b" a=\"1\"".to_vec()),
        Just("厦门".as_bytes().to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(atoms, 0..64).prop_map(|parts| parts.concat())
}

fn element_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9]{0,6}"
}

/// Text with the characters XML must escape, Chinese and full-width forms.
fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 <>&\"'\\]\u{4e00}-\u{4e20}\u{ff10}-\u{ff19}]{1,12}".prop_filter("not blank", |s| !s.trim().is_empty())
}

fn tree() -> impl Strategy<Value = Node> {
    let leaf = (text(), any::<bool>()).prop_map(|(t, cdata)| Node::Val {
        value: Scalar::string(t),
        cdata,
    });
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop::collection::vec((element_name(), inner), 1..4).prop_map(|children| {
            // Distinct names, so the reader does not fold them into a list.
            let mut seen = std::collections::HashSet::new();
            Node::Obj(children.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect())
        })
    })
}

/// The tree as the reader gives it back (text-only elements are strings).
fn expected(node: &Node) -> serde_json::Value {
    match node {
        Node::Val { value, .. } => serde_json::Value::String(value.text.clone()),
        Node::Obj(entries) => serde_json::Value::Object(entries.iter().map(|(k, v)| (k.clone(), expected(v))).collect()),
        Node::Arr(items) => serde_json::Value::Array(items.iter().map(expected).collect()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Any bytes: a tree or an error with a position, never a panic.
    #[test]
    fn the_xml_reader_answers_any_bytes(doc in xmlish()) {
        if let Err(e) = xml_in::read(&doc, &Prefixes::default()) {
            prop_assert!(e.line >= 1 && e.column >= 1);
            prop_assert!(!e.message.is_empty());
        }
    }

    /// Written documents read back to the same tree, in UTF-8 and in GBK.
    #[test]
    fn written_documents_read_back(node in tree(), gbk in any::<bool>(), pretty in any::<bool>()) {
        let node = match node {
            Node::Obj(_) => node,
            leaf => Node::Obj(vec![("v".into(), leaf)]),
        };
        let style = XmlStyle {
            root: "R".into(),
            namespaces: vec![],
            encoding: if gbk { encoding_rs::GB18030 } else { encoding_rs::UTF_8 },
            declaration: true,
            pretty,
        };
        let bytes = xml_out::write(&node, &style);
        let (root, back) = xml_in::read(&bytes, &Prefixes::default()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(root, "R");
        if !pretty {
            prop_assert_eq!(back, expected(&node));
        }
    }

    /// The park's inbound mapping on mutated versions of its own case input:
    /// it maps, or it refuses with a position (400) or rule errors (422).
    #[test]
    fn an_inbound_mapping_answers_mutated_documents(cut in 0usize..2000, byte in any::<u8>(), at in 0usize..2000) {
        let m = shipped().versions("park-xiamen-haicang/ledger-entry-in")[0].clone();
        let mut doc = case_input("park-xiamen-haicang/cases/ledger-entry-in/storage-in-utf8/input.xml");
        if !doc.is_empty() {
            let at = at % doc.len();
            doc[at] = byte;
            doc.truncate(doc.len() - cut % doc.len());
        }
        match m.apply(&doc) {
            Ok(out) => prop_assert!(out.json.is_some()),
            Err(MapError::Input(e)) => prop_assert!(e.line >= 1),
            Err(MapError::Rules(errs)) => prop_assert!(!errs.is_empty() && errs.iter().all(|e| !e.message.is_empty())),
        }
    }

    /// The outbound national mapping on canonical events with fields
    /// replaced by arbitrary JSON scalars: output or rule errors, no panic.
    #[test]
    fn an_outbound_mapping_answers_odd_canonical_values(
        field in prop::sample::select(vec!["manifest_no", "transfer_type", "planned_dispatch_at", "version", "emergency_measures"]),
        value in prop_oneof![any::<i64>().prop_map(serde_json::Value::from), ".{0,20}".prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from), Just(serde_json::Value::Null)],
        line_qty in ".{0,12}",
    ) {
        let m = shipped().versions("national/manifest-out")[0].clone();
        let mut event: serde_json::Value = serde_json::from_slice(&case_input(
            "national/cases/manifest-out/in-city-licensed-two-lines/input.json",
        )).expect("json");
        event["data"][field] = value;
        event["data"]["lines"][0]["quantity"]["value"] = serde_json::Value::from(line_qty);
        match m.apply_json(&event) {
            Ok(out) => prop_assert!(!out.body.is_empty()),
            Err(MapError::Rules(errs)) => prop_assert!(!errs.is_empty()),
            Err(MapError::Input(e)) => prop_assert!(false, "canonical input was already parsed: {e:?}"),
        }
    }
}

//! Turns a mapping file into a [`Mapping`]: every path checked against the
//! schema of its side, every operation and table resolved, every output type
//! known. All errors name `file:line` and the field, and are collected, so
//! one run of `wastehub check` shows everything wrong in a file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use toml::Spanned;

use super::decimal::{Rounding, unit_exponent};
use super::ops::{Op, Otherwise, TableOp, TimeFormat, parse_zone};
use super::spec::{FileSpec, FormatSpec, OneOrMany, RuleSpec, WhenSpec};
use super::tables::TableCache;
use super::value::Scalar;
use super::xml_in::Prefixes;
use super::xml_out::XmlStyle;
use super::{AsType, Cond, Direction, Format, LoadError, Mapping, Rule, Seg, Source, SrcPath, Test};
use crate::schema::Catalogue;
use crate::schema::walk::{At, SchemaDocs};

/// What a mapping load needs from the rest of the hub.
pub struct LoadContext<'a> {
    /// The canonical catalogue (the canonical side of every mapping).
    pub catalogue: &'a Catalogue,
    /// Where reference tables for `lookup` live.
    pub reference_dir: &'a Path,
}

/// CloudEvents attributes a canonical path may name beside `/data`.
const ENVELOPE: [&str; 10] = [
    "id",
    "source",
    "type",
    "subject",
    "time",
    "jurisdiction",
    "sourceid",
    "specversion",
    "datacontenttype",
    "dataschema",
];

/// The schema one side of a mapping is checked against.
enum Side {
    /// The canonical event: envelope plus, under `/data`, the schema of
    /// each type the mapping translates.
    Canonical { schema_ids: Vec<String> },
    /// A partner format with a schema file.
    Partner { docs: SchemaDocs, id: String },
    /// A partner format without a schema: paths cannot be checked.
    Unchecked,
}

struct Compiler<'a> {
    file: &'a Path,
    /// The file's path under the mappings folder, used in rule locations
    /// (they reach partners in error answers; no server paths there).
    label: &'a str,
    text: &'a str,
    ctx: &'a LoadContext<'a>,
    tables: &'a mut TableCache,
    errors: Vec<LoadError>,
    input: Side,
    output: Side,
    input_prefixes: Option<BTreeMap<String, String>>,
    output_prefixes: Option<BTreeMap<String, String>>,
    output_is_xml: bool,
}

/// Compiles one file. `label` is its path under the mappings folder;
/// `name` the mapping's name (that path without version suffix and
/// extension).
pub fn compile(
    file: &Path,
    label: &str,
    name: String,
    text: &str,
    ctx: &LoadContext<'_>,
    tables: &mut TableCache,
) -> Result<Mapping, Vec<LoadError>> {
    let spec: FileSpec = toml::from_str(text).map_err(|e| {
        vec![LoadError {
            file: file.to_path_buf(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim().to_string(),
        }]
    })?;
    let mut c = Compiler {
        file,
        label,
        text,
        ctx,
        tables,
        errors: Vec::new(),
        input: Side::Unchecked,
        output: Side::Unchecked,
        input_prefixes: None,
        output_prefixes: None,
        output_is_xml: false,
    };
    let header = &spec.mapping;
    let direction = match header.direction.get_ref().as_str() {
        "inbound" => Direction::Inbound,
        "outbound" => Direction::Outbound,
        other => {
            c.err(
                &header.direction,
                format!("direction {other:?}: use \"inbound\" (partner → canonical) or \"outbound\" (canonical → partner)"),
            );
            Direction::Outbound
        }
    };
    let message_types: Vec<String> = match header.message_type.get_ref() {
        OneOrMany::One(t) => vec![t.clone()],
        OneOrMany::Many(ts) => ts.clone(),
    };
    if message_types.is_empty() {
        c.err(&header.message_type, "message_type is an empty list".into());
    }
    let mut schema_ids = Vec::new();
    for t in &message_types {
        match ctx.catalogue.schema_id(t) {
            Some(id) => schema_ids.push(id.to_string()),
            None => {
                let known: Vec<&str> = ctx.catalogue.types().collect();
                c.err(
                    &header.message_type,
                    format!("message_type {t:?} is not in the catalogue (known: {})", known.join(", ")),
                );
            }
        }
    }
    let effective_from = match parse_effective(header.effective_from.get_ref()) {
        Ok(t) => t,
        Err(m) => {
            c.err(&header.effective_from, m);
            DateTime::<Utc>::MIN_UTC
        }
    };
    let input = c.format(&spec.input, "input");
    let output = c.format(&spec.output, "output");
    let (mut input_schema, mut output_schema) = (None, None);
    match direction {
        Direction::Inbound => {
            if !matches!(output, Format::Json { .. }) {
                c.err(
                    &spec.output.format,
                    "an inbound mapping writes the canonical form, which is JSON".into(),
                );
            }
            (c.input, input_schema) = c.partner_side(&spec.input);
            c.canonical_side_has_no_schema(&spec.output);
            c.output = Side::Canonical {
                schema_ids: schema_ids.clone(),
            };
        }
        Direction::Outbound => {
            if !matches!(input, Format::Json { .. }) {
                c.err(
                    &spec.input.format,
                    "an outbound mapping reads the canonical form, which is JSON".into(),
                );
            }
            c.canonical_side_has_no_schema(&spec.input);
            c.input = Side::Canonical {
                schema_ids: schema_ids.clone(),
            };
            (c.output, output_schema) = c.partner_side(&spec.output);
        }
    }
    if let Format::Xml { .. } = &input {
        c.input_prefixes = Some(spec.input.namespaces.clone());
    }
    if let Format::XmlOut(_) = &output {
        c.output_prefixes = Some(spec.output.namespaces.clone());
        c.output_is_xml = true;
    }
    let mut rules = Vec::new();
    for r in &spec.rule {
        if let Some(rule) = c.rule(r, &[], &[], false) {
            rules.push(rule);
        }
    }
    if direction == Direction::Inbound {
        for needed in ["id", "subject"] {
            if !rules.iter().any(|r| r.to == [Seg::Key(needed.to_string())]) {
                c.errors.push(LoadError {
                    file: file.to_path_buf(),
                    line: 1,
                    message: format!(
                        "an inbound mapping must produce /{needed} (the {} of the canonical event)",
                        if needed == "id" {
                            "partner's idempotency key"
                        } else {
                            "subject that orders messages"
                        }
                    ),
                });
            }
        }
    }
    let content_type = spec.output.content_type.clone().unwrap_or_else(|| match output {
        Format::XmlOut(_) | Format::Xml { .. } => "application/xml; charset=utf-8".into(),
        Format::Json { .. } => "application/json".into(),
    });
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(Mapping {
        name,
        version: *header.version.get_ref(),
        effective_from,
        message_types,
        direction,
        description: header.description.clone().unwrap_or_default(),
        file: file.to_path_buf(),
        input,
        output,
        content_type,
        reads: super::project::Reads::of(&rules),
        rules,
        input_schema,
        output_schema,
    })
}

/// `2026-01-01` (midnight, Beijing time) or an RFC 3339 time.
fn parse_effective(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("effective_from {text:?}: use a date (2026-01-01, Beijing time) or an RFC 3339 time"))?;
    let beijing = parse_zone("Asia/Shanghai")?;
    date.and_hms_opt(0, 0, 0)
        .and_then(|n| beijing.from_local_datetime(&n).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("effective_from {text:?} is out of range"))
}

/// 1-based line of byte offset `at`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

impl Compiler<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, message: String) {
        self.errors.push(LoadError {
            file: self.file.to_path_buf(),
            line: line_of(self.text, at.span().start),
            message,
        });
    }

    fn format(&mut self, spec: &FormatSpec, which: &str) -> Format {
        match spec.format.get_ref().as_str() {
            "json" => {
                if spec.root.is_some() || !spec.namespaces.is_empty() {
                    self.err(&spec.format, format!("[{which}] root and namespaces apply to XML only"));
                }
                Format::Json {
                    pretty: spec.pretty.unwrap_or(false),
                }
            }
            "xml" => {
                let Some(root) = &spec.root else {
                    self.err(&spec.format, format!("[{which}] an XML format needs root = \"prefix:Element\""));
                    return Format::Json { pretty: false };
                };
                self.check_name(root, root.get_ref(), &spec.namespaces);
                if which == "input" {
                    Format::Xml {
                        root: root.get_ref().clone(),
                        prefixes: Prefixes::new(spec.namespaces.iter()),
                    }
                } else {
                    let encoding = match &spec.encoding {
                        None => encoding_rs::UTF_8,
                        Some(label) => match encoding_rs::Encoding::for_label(label.get_ref().as_bytes()) {
                            Some(e) if e.output_encoding() == e => e,
                            _ => {
                                self.err(
                                    label,
                                    format!("encoding {:?} cannot be written: use UTF-8, GBK or GB18030", label.get_ref()),
                                );
                                encoding_rs::UTF_8
                            }
                        },
                    };
                    Format::XmlOut(XmlStyle {
                        root: root.get_ref().clone(),
                        namespaces: spec.namespaces.iter().map(|(p, u)| (p.clone(), u.clone())).collect(),
                        encoding,
                        declaration: spec.declaration.unwrap_or(true),
                        pretty: spec.pretty.unwrap_or(false),
                    })
                }
            }
            other => {
                self.err(&spec.format, format!("format {other:?}: use \"json\" or \"xml\""));
                Format::Json { pretty: false }
            }
        }
    }

    /// The partner side's schema, read once: for checking paths at load
    /// and, compiled, for checking case inputs and outputs.
    fn partner_side(&mut self, spec: &FormatSpec) -> (Side, Option<Arc<jsonschema::Validator>>) {
        let Some(rel) = &spec.schema else { return (Side::Unchecked, None) };
        let loaded = self.load_schema(rel).and_then(|(docs, id)| {
            let doc = docs.get(&id).ok_or_else(|| format!("schema {} has no document", rel.get_ref()))?;
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(doc)
                .map_err(|e| format!("schema {} does not compile: {e}", rel.get_ref()))?;
            Ok((Side::Partner { docs, id }, Some(Arc::new(validator))))
        });
        loaded.unwrap_or_else(|m| {
            self.err(rel, m);
            (Side::Unchecked, None)
        })
    }

    /// The canonical side is described by the catalogue; a `schema` there
    /// would be silently ignored, so it is refused.
    fn canonical_side_has_no_schema(&mut self, spec: &FormatSpec) {
        if let Some(rel) = &spec.schema {
            self.err(
                rel,
                "this side is the canonical form, checked against the catalogue; remove schema".into(),
            );
        }
    }

    fn load_schema(&self, rel: &Spanned<String>) -> Result<(SchemaDocs, String), String> {
        let path = self.file.parent().unwrap_or(Path::new(".")).join(rel.get_ref());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("schema {}: {e}", rel.get_ref()))?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("schema {}:{}: {e}", rel.get_ref(), e.line()))?;
        let id = doc
            .get("$id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("file:///{}", rel.get_ref()));
        let mut docs = SchemaDocs::default();
        docs.add(&id, doc);
        Ok((docs, id))
    }

    /// Checks an XML name's prefix against the declared namespaces.
    fn check_name<T>(&mut self, at: &Spanned<T>, name: &str, namespaces: &BTreeMap<String, String>) {
        let bare = name.trim_start_matches('@');
        if bare.is_empty() || bare.contains(['{', '}', ' ', '<', '>', '&', '"']) {
            self.err(at, format!("{name:?} is not an XML name"));
            return;
        }
        if let Some((prefix, _)) = bare.split_once(':')
            && !namespaces.contains_key(prefix)
        {
            let known: Vec<&str> = namespaces.keys().map(String::as_str).collect();
            self.err(
                at,
                format!(
                    "namespace prefix {prefix:?} in {name:?} is not declared (declared: {})",
                    known.join(", ")
                ),
            );
        }
    }

    /// Compiles one rule; `src_base` / `dst_base` are the schema paths of the
    /// enclosing `each` on each side.
    fn rule(&mut self, spec: &Spanned<RuleSpec>, src_base: &[String], dst_base: &[String], in_each: bool) -> Option<Rule> {
        let r = spec.get_ref();
        let at = format!("{}:{}", self.label, line_of(self.text, spec.span().start));
        let mut to_text = r.to.get_ref().trim_start_matches('/').to_string();
        // A last step `-` appends to a list (as in JSON Patch, RFC 6902), so
        // several rules can each add one element: roles, flags.
        let append = to_text == "-" || to_text.ends_with("/-");
        if append {
            to_text.truncate(to_text.len().saturating_sub(2));
            if to_text.is_empty() || r.each.is_some() || self.output_is_xml {
                self.err(
                    &r.to,
                    "to = \"<list>/-\" appends one value to a JSON list; it needs a list path and takes no each".into(),
                );
                return None;
            }
        }
        if to_text.is_empty() {
            self.err(&r.to, "to is empty".into());
            return None;
        }
        let to: Vec<Seg> = to_text.split('/').map(|s| Seg::Key(s.to_string())).collect();
        let to_names: Vec<String> = to_text.split('/').map(str::to_string).collect();
        if let Some(ns) = self.output_prefixes.clone() {
            for (i, seg) in to_names.iter().enumerate() {
                let last = i + 1 == to_names.len();
                if (seg.starts_with('@') || seg == "#text") && !last {
                    self.err(&r.to, format!("{seg:?} must be the last step of to = {to_text:?}"));
                }
                if seg != "#text" && seg != "." {
                    self.check_name(&r.to, seg, &ns);
                }
            }
        }
        if to_text == "." && !in_each {
            self.err(&r.to, "to = \".\" (the list element itself) is only meaningful inside each".into());
        }
        let mut dst_path: Vec<String> = dst_base.to_vec();
        dst_path.extend(to_names.iter().filter(|n| n.as_str() != ".").cloned());
        let mut dst_types = self.side_types(false, &dst_path, &r.to, &to_text);
        if append {
            if let Some(types) = &dst_types
                && !types.is_empty()
                && !types.contains("array")
            {
                self.err(
                    &r.to,
                    format!(
                        "type mismatch: to = \"{to_text}/-\" appends to a list, but {to_text:?} is {} in the target schema",
                        types.iter().cloned().collect::<Vec<_>>().join("/")
                    ),
                );
            }
            // The value written is one element: its type is the items' type.
            dst_path.push("*".into());
            dst_types = self.side_types(false, &dst_path, &r.to, &to_text);
        }

        if let Some(each) = &r.each {
            for (present, what) in [
                (r.from.is_some(), "from"),
                (r.value.is_some(), "value"),
                (r.default.is_some(), "default"),
                (!r.ops.is_empty(), "ops"),
                (r.as_type.is_some(), "as"),
                (r.join.is_some(), "join"),
            ] {
                if present {
                    self.err(&r.to, format!("a rule with each cannot have {what}: put it on the rules inside"));
                }
            }
            if r.rule.is_empty() {
                self.err(each, "each needs [[rule.rule]] entries for the fields of every element".into());
            }
            let path = self.src_path(each, each.get_ref(), src_base)?;
            let mut item_base = self.src_schema_path(&path, src_base);
            let types = self.side_types(true, &item_base, each, each.get_ref());
            if let Some(types) = types
                && !types.is_empty()
                && !types.contains("array")
                && self.input_is_json()
            {
                self.err(
                    each,
                    format!(
                        "type mismatch: each = {:?} is {} in the source schema, not a list",
                        each.get_ref(),
                        types.into_iter().collect::<Vec<_>>().join("/")
                    ),
                );
            }
            item_base.push("*".into());
            // On an each rule `when` filters the elements: a relative path
            // starts at the element, as the evaluation reads it.
            let when = r.when.as_ref().and_then(|w| self.when(w, &item_base));
            let mut item_dst = dst_path.clone();
            item_dst.push("*".into());
            let children: Vec<Rule> = r.rule.iter().filter_map(|c| self.rule(c, &item_base, &item_dst, true)).collect();
            return Some(Rule {
                at,
                to,
                to_text,
                source: Source::Each(path),
                default: None,
                ops: Vec::new(),
                when,
                required: r.required,
                as_type: None,
                cdata: false,
                append: false,
                children,
            });
        }
        if !r.rule.is_empty() {
            self.err(&r.to, "nested rules need each = \"<list path>\" on this rule".into());
        }
        let when = r.when.as_ref().and_then(|w| self.when(w, src_base));
        let source = match (&r.from, &r.value) {
            (Some(_), Some(v)) => {
                self.err(v, "a rule takes from or value, not both".into());
                return None;
            }
            (None, None) => {
                self.err(
                    &r.to,
                    format!("rule for {to_text:?} needs from = \"<input path>\" or value = <constant>"),
                );
                return None;
            }
            (None, Some(v)) => match Scalar::from_toml(v.get_ref()) {
                Some(s) => Source::Const(s),
                None => {
                    self.err(v, "value must be a string, number or boolean".into());
                    return None;
                }
            },
            (Some(from), None) => {
                let texts: Vec<String> = match from.get_ref() {
                    OneOrMany::One(s) => vec![s.clone()],
                    OneOrMany::Many(v) => v.clone(),
                };
                if texts.is_empty() {
                    self.err(from, "from is an empty list".into());
                    return None;
                }
                if texts.len() == 1 && texts[0] == "$index" {
                    if !in_each {
                        self.err(from, "$index is the position in an each list; this rule is not inside one".into());
                    }
                    Source::Index
                } else {
                    let mut paths = Vec::new();
                    for t in &texts {
                        paths.push(self.src_path(from, t, src_base)?);
                    }
                    if r.join.is_some() && texts.len() < 2 {
                        self.err(from, "join needs from = [several paths]".into());
                    }
                    Source::Paths {
                        paths,
                        join: r.join.clone(),
                    }
                }
            }
        };
        let default = match &r.default {
            None => None,
            Some(d) => match Scalar::from_toml(d.get_ref()) {
                Some(s) => Some(s),
                None => {
                    self.err(d, "default must be a string, number or boolean".into());
                    None
                }
            },
        };
        let ops: Vec<Op> = r.ops.iter().filter_map(|o| self.op(o)).collect();
        let explicit = r.as_type.as_ref().and_then(|a| match a.get_ref().as_str() {
            "string" => Some(AsType::String),
            "number" => Some(AsType::Number),
            "integer" => Some(AsType::Integer),
            "boolean" => Some(AsType::Boolean),
            other => {
                self.err(a, format!("as = {other:?}: use string, number, integer or boolean"));
                None
            }
        });
        let inferred = dst_types.as_ref().and_then(|t| {
            if t.len() != 1 {
                return None;
            }
            match t.iter().next().map(String::as_str) {
                Some("string") => Some(AsType::String),
                Some("integer") => Some(AsType::Integer),
                Some("number") => Some(AsType::Number),
                Some("boolean") => Some(AsType::Boolean),
                _ => None,
            }
        });
        if let (Some(e), Some(i), Some(a)) = (explicit, inferred, &r.as_type)
            && e != i
            && !(e == AsType::Integer && i == AsType::Number)
        {
            self.err(
                a,
                format!(
                    "type mismatch: {to_text:?} is {} in the target schema but the rule says as = {:?}",
                    i.name(),
                    a.get_ref()
                ),
            );
        }
        if let Some(types) = &dst_types
            && !types.is_empty()
            && types.iter().all(|t| t == "object" || t == "array")
            && !self.output_is_xml
        {
            self.err(
                &r.to,
                format!(
                    "type mismatch: {to_text:?} is {} in the target schema; map its fields one by one",
                    types.iter().cloned().collect::<Vec<_>>().join("/")
                ),
            );
        }
        if r.cdata && !self.output_is_xml {
            self.err(&r.to, "cdata applies to XML output only".into());
        }
        Some(Rule {
            at,
            to,
            to_text,
            source,
            default,
            ops,
            when,
            required: r.required,
            as_type: explicit.or(inferred),
            cdata: r.cdata,
            append,
            children: Vec::new(),
        })
    }

    fn input_is_json(&self) -> bool {
        self.input_prefixes.is_none()
    }

    fn when(&mut self, w: &Spanned<WhenSpec>, src_base: &[String]) -> Option<Cond> {
        let spec = w.get_ref();
        let path = self.src_path(w, &spec.path, src_base)?;
        let text = |v: &toml::Value| Scalar::from_toml(v).map(|s| s.text);
        let tests: Vec<Test> = [
            spec.equals.as_ref().map(|v| text(v).map(Test::Equals)),
            spec.not_equals.as_ref().map(|v| text(v).map(Test::NotEquals)),
            spec.one_of
                .as_ref()
                .map(|vs| vs.iter().map(text).collect::<Option<Vec<_>>>().map(Test::OneOf)),
            spec.exists.map(|b| Some(Test::Exists(b))),
        ]
        .into_iter()
        .flatten()
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
        if tests.len() != 1 {
            self.err(
                w,
                "when needs exactly one of equals, not_equals, one_of (strings, numbers or booleans) or exists".into(),
            );
            return None;
        }
        tests.into_iter().next().map(|test| Cond { path, test })
    }

    /// Parses an input path and checks it against the input side's schema.
    fn src_path<T>(&mut self, at: &Spanned<T>, text: &str, src_base: &[String]) -> Option<SrcPath> {
        let absolute = text.starts_with('/');
        let body = text.trim_start_matches('/');
        if body.is_empty() || (body == "." && absolute) {
            self.err(at, format!("input path {text:?} is empty"));
            return None;
        }
        let segs: Vec<Seg> = body
            .split('/')
            .filter(|s| *s != ".")
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key(s.to_string()),
            })
            .collect();
        if let Some(ns) = self.input_prefixes.clone() {
            for s in body.split('/') {
                if s.parse::<usize>().is_err() && s != "#text" && s != "." {
                    self.check_name(at, s, &ns);
                }
            }
        }
        let path = SrcPath {
            text: text.to_string(),
            absolute,
            segs,
        };
        let full = self.src_schema_path(&path, src_base);
        self.side_types(true, &full, at, text);
        Some(path)
    }

    fn src_schema_path(&self, path: &SrcPath, src_base: &[String]) -> Vec<String> {
        let mut full: Vec<String> = if path.absolute { Vec::new() } else { src_base.to_vec() };
        full.extend(path.segs.iter().map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Index(_) => "*".into(),
        }));
        full
    }

    /// Walks a path in one side's schema. `None` when that side is not
    /// checked; reports an unknown path as an error.
    fn side_types<T>(&mut self, input: bool, path: &[String], at: &Spanned<T>, text: &str) -> Option<std::collections::BTreeSet<String>> {
        let side = if input { &self.input } else { &self.output };
        let which = if input { "input" } else { "output" };
        let segs: Vec<&str> = path.iter().map(String::as_str).collect();
        let result: Result<std::collections::BTreeSet<String>, String> = match side {
            Side::Unchecked => return None,
            Side::Canonical { schema_ids } => {
                let docs = self.ctx.catalogue.docs();
                match segs.first() {
                    None => Ok(Default::default()),
                    Some(&"data") => {
                        // A path must exist in every type the mapping serves.
                        let mut all = std::collections::BTreeSet::new();
                        let mut failed = None;
                        for id in schema_ids {
                            let Some(root) = docs.root(id) else { continue };
                            match walk_types(docs, root, &segs[1..], "/data") {
                                Ok(t) => all.extend(t),
                                Err(m) if schema_ids.len() > 1 => {
                                    let ty = id.rsplit('/').nth(1).unwrap_or(id);
                                    failed = Some(format!("{m} (type {ty})"));
                                    break;
                                }
                                Err(m) => {
                                    failed = Some(m);
                                    break;
                                }
                            }
                        }
                        match failed {
                            Some(m) => Err(m),
                            None => Ok(all),
                        }
                    }
                    Some(first) if ENVELOPE.contains(first) && segs.len() == 1 => Ok(["string".to_string()].into()),
                    Some(first) => Err(format!(
                        "/{first} is not part of the canonical event (use /data/... or one of /{})",
                        ENVELOPE.join(", /")
                    )),
                }
            }
            Side::Partner { docs, id } => match docs.root(id) {
                Some(root) => walk_types(docs, root, &segs, ""),
                None => return None,
            },
        };
        match result {
            Ok(t) => Some(t),
            Err(m) => {
                self.err(at, format!("unknown {which} path {text:?}: {m}"));
                None
            }
        }
    }

    fn op(&mut self, o: &Spanned<toml::Value>) -> Option<Op> {
        match self.op_inner(o.get_ref()) {
            Ok(op) => Some(op),
            Err(m) => {
                self.err(o, m);
                None
            }
        }
    }

    fn op_inner(&mut self, v: &toml::Value) -> Result<Op, String> {
        const KNOWN: &str =
            "trim, upper, lower, halfwidth, pad, split, replace, prefix, suffix, substring, code, lookup, unit, decimal, datetime";
        if let Some(name) = v.as_str() {
            return match name {
                "trim" => Ok(Op::Trim),
                "upper" => Ok(Op::Upper),
                "lower" => Ok(Op::Lower),
                "halfwidth" => Ok(Op::Halfwidth),
                other => Err(format!("unknown operation {other:?} (known: {KNOWN})")),
            };
        }
        let Some(table) = v.as_table().filter(|t| t.len() == 1) else {
            return Err(format!(
                "an operation is a name (\"trim\") or a table with one key ({{ pad = {{ width = 6 }} }}); known: {KNOWN}"
            ));
        };
        let Some((name, args)) = table.iter().next() else {
            return Err("empty operation".into());
        };
        let a = Args { op: name, v: args };
        Ok(match name.as_str() {
            "prefix" => Op::Prefix(a.whole_str()?),
            "suffix" => Op::Suffix(a.whole_str()?),
            "pad" => {
                a.only(&["width", "with", "side"])?;
                let with = a.str_or("with", "0")?;
                let mut chars = with.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    return Err("pad: with must be one character".into());
                };
                Op::Pad {
                    width: a.uint("width")?,
                    with: c,
                    left: match a.str_or("side", "left")?.as_str() {
                        "left" => true,
                        "right" => false,
                        other => return Err(format!("pad: side {other:?}: use left or right")),
                    },
                }
            }
            "split" => {
                a.only(&["sep", "index"])?;
                Op::Split {
                    sep: a.str("sep")?,
                    index: a.int_or("index", 0)?,
                }
            }
            "replace" => {
                a.only(&["from", "to"])?;
                Op::Replace {
                    from: a.str("from")?,
                    to: a.str("to")?,
                }
            }
            "substring" => {
                a.only(&["start", "len"])?;
                Op::Substring {
                    start: a.uint_or("start", 0)?,
                    len: if a.has("len") { Some(a.uint("len")?) } else { None },
                }
            }
            "code" => {
                a.only(&["table", "from", "to", "otherwise", "fallback"])?;
                let table = a.str("table")?;
                let file = self.file.parent().unwrap_or(Path::new(".")).join(format!("{table}.csv"));
                let map = self
                    .tables
                    .map(&file, &a.str("from")?, &a.str("to")?)
                    .map_err(|e| format!("code table {table:?}: {e}"))?;
                Op::Table(TableOp {
                    label: format!("code table {table}"),
                    map,
                    otherwise: a.otherwise()?,
                })
            }
            "lookup" => {
                a.only(&["table", "key", "column", "otherwise", "fallback"])?;
                let table = a.str("table")?;
                let file = self.ctx.reference_dir.join(format!("{table}.csv"));
                let map = self
                    .tables
                    .map(&file, &a.str("key")?, &a.str("column")?)
                    .map_err(|e| format!("reference table {table:?}: {e}"))?;
                Op::Table(TableOp {
                    label: format!("reference table {table}"),
                    map,
                    otherwise: a.otherwise()?,
                })
            }
            "unit" => {
                a.only(&["from", "to"])?;
                let (from, to) = (a.str("from")?, a.str("to")?);
                let known = "t, kg, g, mg, m3, L, mL, deg, udeg";
                let (df, ef) = unit_exponent(&from).ok_or_else(|| format!("unit: unknown unit {from:?} (known: {known})"))?;
                let (dt, et) = unit_exponent(&to).ok_or_else(|| format!("unit: unknown unit {to:?} (known: {known})"))?;
                if df != dt {
                    return Err(format!("unit: cannot convert {from} ({df}) to {to} ({dt})"));
                }
                Op::Unit { from, to, shift: ef - et }
            }
            "decimal" => {
                a.only(&["scale", "rounding"])?;
                let scale = if a.has("scale") {
                    Some(u32::try_from(a.uint("scale")?).map_err(|_| "decimal: scale too large")?)
                } else {
                    None
                };
                let rounding = a.str_or("rounding", "half-up")?;
                Op::Decimal {
                    scale,
                    rounding: Rounding::parse(&rounding)
                        .ok_or_else(|| format!("decimal: rounding {rounding:?}: use half-up, half-even, down or exact"))?,
                }
            }
            "datetime" => {
                a.only(&["from", "to", "zone", "from_zone", "to_zone"])?;
                let zone = a.str_or("zone", "Asia/Shanghai")?;
                Op::Datetime {
                    from: TimeFormat::parse(&a.str_or("from", "rfc3339")?)?,
                    to: TimeFormat::parse(&a.str_or("to", "rfc3339")?)?,
                    from_zone: parse_zone(&a.str_or("from_zone", &zone)?)?,
                    to_zone: parse_zone(&a.str_or("to_zone", &zone)?)?,
                }
            }
            other => return Err(format!("unknown operation {other:?} (known: {KNOWN})")),
        })
    }
}

/// The types at `segs` under `root`, or a message naming what is unknown.
fn walk_types(docs: &SchemaDocs, root: At<'_>, segs: &[&str], prefix: &str) -> Result<std::collections::BTreeSet<String>, String> {
    match docs.walk(root, segs) {
        Ok(ats) => Ok(docs.types(&ats)),
        Err(u) => {
            let mut at = prefix.to_string();
            for f in &u.found {
                at.push('/');
                at.push_str(f);
            }
            if u.known.is_empty() {
                Err(format!("nothing below {:?} in the schema", if at.is_empty() { "/" } else { &at }))
            } else {
                Err(format!(
                    "no {:?} at {:?} in the schema (known there: {})",
                    u.missing,
                    if at.is_empty() { "/" } else { &at },
                    u.known.join(", ")
                ))
            }
        }
    }
}

/// Arguments of one operation, with errors that name the operation.
struct Args<'a> {
    op: &'a str,
    v: &'a toml::Value,
}

impl Args<'_> {
    fn get(&self, key: &str) -> Option<&toml::Value> {
        self.v.as_table().and_then(|t| t.get(key))
    }
    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        let Some(t) = self.v.as_table() else {
            return Err(format!("{}: expected a table {{ {} }}", self.op, allowed.join(", ")));
        };
        match t.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!("{}: unknown argument {k:?} (allowed: {})", self.op, allowed.join(", "))),
            None => Ok(()),
        }
    }
    fn whole_str(&self) -> Result<String, String> {
        self.v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{}: expected a string", self.op))
    }
    fn str(&self, key: &str) -> Result<String, String> {
        match self.get(key) {
            Some(toml::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{}: {key} must be a string", self.op)),
            None => Err(format!("{}: {key} is required", self.op)),
        }
    }
    fn str_or(&self, key: &str, default: &str) -> Result<String, String> {
        if self.has(key) { self.str(key) } else { Ok(default.to_string()) }
    }
    fn int_or(&self, key: &str, default: i64) -> Result<i64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) => Ok(*i),
            Some(_) => Err(format!("{}: {key} must be an integer", self.op)),
        }
    }
    fn uint(&self, key: &str) -> Result<usize, String> {
        match self.get(key) {
            Some(toml::Value::Integer(i)) if *i >= 0 => usize::try_from(*i).map_err(|_| format!("{}: {key} too large", self.op)),
            Some(_) => Err(format!("{}: {key} must be a non-negative integer", self.op)),
            None => Err(format!("{}: {key} is required", self.op)),
        }
    }
    fn uint_or(&self, key: &str, default: usize) -> Result<usize, String> {
        if self.has(key) { self.uint(key) } else { Ok(default) }
    }
    fn otherwise(&self) -> Result<Otherwise, String> {
        if let Some(f) = self.get("fallback") {
            return Scalar::from_toml(f)
                .map(|s| Otherwise::Value(s.text))
                .ok_or_else(|| format!("{}: fallback must be a string or number", self.op));
        }
        match self.str_or("otherwise", "error")?.as_str() {
            "error" => Ok(Otherwise::Error),
            "keep" => Ok(Otherwise::Keep),
            other => Err(format!(
                "{}: otherwise {other:?}: use error or keep (or fallback = \"value\")",
                self.op
            )),
        }
    }
}

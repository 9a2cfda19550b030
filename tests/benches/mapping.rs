//! Throughput of the mapping engine on the national manifest mappings
//! (`mappings/national/manifest-created-{out,in}.toml`), both ways, beside a
//! hand-written serde + quick-xml conversion of the same document that
//! serves as the floor: what the same translation costs without a
//! declarative engine. Both sides start from bytes and end with bytes, parse
//! included.
//!
//! Run with `cargo bench --bench mapping`; the figures are in
//! `docs/performance.md` ("Mapping engine"). Before measuring, the bench
//! checks once that the engine and the hand-written code produce the same
//! document (compared as trees, so attribute and key order do not matter).

use std::collections::HashMap;
use std::hint::black_box;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use criterion::{Criterion, Throughput};
use quick_xml::Writer;
use quick_xml::events::{BytesCData, BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::reader::Reader;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use wastehub::mapping::{LoadContext, Mapping, MappingSet};
use wastehub::schema::Catalogue;

/// The bench document: 2 waste lines, every party filled in.
const CASE: &str = "in-city-licensed-two-lines";

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let catalogue = Catalogue::load(&root.join("schemas/canonical")).expect("canonical schemas load");
    let reference_dir = root.join("schemas/reference");
    let ctx = LoadContext {
        catalogue: &catalogue,
        reference_dir: &reference_dir,
    };
    let set = MappingSet::load(&root.join("mappings"), &ctx).unwrap_or_else(|e| panic!("mappings load: {e:?}"));
    let now = chrono::Utc::now();
    let out = set.in_force("national/manifest-out", now).expect("outbound mapping");
    let inb = set.in_force("national/manifest-created-in", now).expect("inbound mapping");
    let cases = root.join("mappings/national/cases");
    let json = read(&cases.join("manifest-out").join(CASE).join("input.json"));
    let xml = read(&cases.join("manifest-created-in").join(CASE).join("input.xml"));
    let hand = Hand::new(&reference_dir);

    check(out, inb, &hand, &json, &xml);

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut g = c.benchmark_group("json_to_xml");
    g.throughput(Throughput::Elements(1));
    g.bench_function("engine", |b| b.iter(|| out.apply(black_box(&json)).expect("maps")));
    g.bench_function("serde_quick_xml", |b| {
        b.iter(|| hand.canonical_to_national(black_box(&json)).expect("converts"))
    });
    g.finish();
    let mut g = c.benchmark_group("xml_to_json");
    g.throughput(Throughput::Elements(1));
    g.bench_function("engine", |b| b.iter(|| inb.apply(black_box(&xml)).expect("maps")));
    g.bench_function("serde_quick_xml", |b| {
        b.iter(|| hand.national_to_canonical(black_box(&xml)).expect("converts"))
    });
    g.finish();
    c.final_summary();
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Both implementations agree on the bench document, both ways; prints how
/// many fields each output holds.
fn check(out: &Mapping, inb: &Mapping, hand: &Hand, json: &[u8], xml: &[u8]) {
    let prefixes = out.output_prefixes();
    let engine = out.apply(json).expect("engine maps JSON → XML").body;
    let manual = hand.canonical_to_national(json).expect("hand-written JSON → XML");
    let (root_e, tree_e) = wastehub::mapping::xml_in::read(&engine, &prefixes).expect("engine XML reads");
    let (root_m, tree_m) = wastehub::mapping::xml_in::read(&manual, &prefixes).expect("hand-written XML reads");
    assert_eq!((&root_e, &tree_e), (&root_m, &tree_m), "JSON → XML outputs differ");

    let engine = inb.apply(xml).expect("engine maps XML → JSON").body;
    let manual = hand.national_to_canonical(xml).expect("hand-written XML → JSON");
    let json_e: Value = serde_json::from_slice(&engine).expect("engine JSON");
    let json_m: Value = serde_json::from_slice(&manual).expect("hand-written JSON");
    assert_eq!(json_e, json_m, "XML → JSON outputs differ");

    eprintln!(
        "bench document {CASE}: JSON → XML {} fields ({} bytes in, {} out); XML → JSON {} fields ({} bytes in, {} out)",
        leaves(&tree_e),
        json.len(),
        out.apply(json).map(|m| m.body.len()).unwrap_or(0),
        leaves(&json_e),
        xml.len(),
        engine.len(),
    );
}

/// Scalar values in a tree: XML attributes and text elements, JSON fields.
fn leaves(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.values().map(leaves).sum(),
        Value::Array(a) => a.iter().map(leaves).sum(),
        _ => 1,
    }
}

// --- hand-written conversion -------------------------------------------------

/// The canonical event, as far as the national form uses it. The same types
/// are read from canonical JSON (outbound) and written as canonical JSON
/// (inbound).
#[derive(Debug, Default, Deserialize, Serialize)]
struct CanonicalEvent {
    id: String,
    /// Read to choose the national action; the inbound mapping does not write it.
    #[serde(rename = "type", default, skip_serializing)]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jurisdiction: Option<String>,
    data: Manifest,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Manifest {
    manifest_no: String,
    transfer_type: String,
    consignor: Party,
    carrier: Party,
    receiver: Party,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cross_province_approval_no: Option<String>,
    plan_filing_no: String,
    planned_dispatch_at: String,
    planned_method_code: String,
    emergency_measures: String,
    version: u32,
    lines: Vec<Line>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Party {
    usci: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    site_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact: Option<Contact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    licence_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exemption_ref: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Line {
    waste_code: String,
    category: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    internal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    form: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hazard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    harmful_components: Option<String>,
    quantity: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    packaging: Option<Packaging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    un_number: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Quantity {
    value: String,
    unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mass_kg: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Packaging {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
}

/// Units whose quantity carries its mass separately in `mass_kg`.
const COUNTED: [&str; 5] = ["L", "m3", "piece", "box", "drum"];

/// The hand-written converter: the same rules as the two mapping files,
/// written out in Rust.
struct Hand {
    /// Division code → Chinese name (`schemas/reference/divisions.csv`).
    divisions: HashMap<String, String>,
    beijing: FixedOffset,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

impl Hand {
    fn new(reference_dir: &Path) -> Self {
        let mut divisions = HashMap::new();
        let mut csv = csv::Reader::from_path(reference_dir.join("divisions.csv")).expect("divisions.csv");
        for row in csv.records() {
            let row = row.expect("divisions row");
            divisions.insert(row[0].to_string(), row[1].to_string());
        }
        Self {
            divisions,
            beijing: FixedOffset::east_opt(8 * 3600).expect("+08:00"),
        }
    }

    /// Canonical JSON event → national XML.
    fn canonical_to_national(&self, json: &[u8]) -> Res<Vec<u8>> {
        let ev: CanonicalEvent = serde_json::from_slice(json)?;
        let d = &ev.data;
        let mut w = Writer::new(Vec::with_capacity(4096));
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.write_event(Event::Start(BytesStart::new("nx:Manifest").with_attributes([
            ("xmlns:nx", "urn:wastehub:proposed:national:v1"),
            ("schemaVersion", "1.0"),
        ])))?;
        start(&mut w, "nx:Header")?;
        leaf(&mut w, "nx:MessageId", &ev.id)?;
        let action = match ev.kind.as_str() {
            "manifest-created" => "CREATE",
            "manifest-updated" => "UPDATE",
            other => return Err(format!("unknown message type {other}").into()),
        };
        leaf(&mut w, "nx:Action", action)?;
        leaf(&mut w, "nx:SentAt", &self.beijing_from_rfc3339(&ev.time, "%Y-%m-%d %H:%M:%S")?)?;
        leaf(&mut w, "nx:ProvinceCode", "35")?;
        end(&mut w, "nx:Header")?;
        leaf(&mut w, "nx:ManifestNo", &d.manifest_no)?;
        let transfer = match d.transfer_type.as_str() {
            "IN_CITY" => "1",
            "IN_PROVINCE" => "2",
            "CROSS_PROVINCE" => "3",
            other => return Err(format!("unknown transfer type {other}").into()),
        };
        leaf(&mut w, "nx:TransferType", transfer)?;
        let division = format!("{}00", d.manifest_no.get(4..8).unwrap_or(""));
        let area = self.divisions.get(&division).ok_or("unknown division")?;
        w.create_element("nx:Origin")
            .with_attribute(("division", division.as_str()))
            .write_text_content(BytesText::new(area))?;

        party(&mut w, "nx:Consignor", &d.consignor, true)?;
        party(&mut w, "nx:Carrier", &d.carrier, false)?;
        party(&mut w, "nx:Receiver", &d.receiver, false)?;
        if d.transfer_type == "CROSS_PROVINCE" {
            let no = d.cross_province_approval_no.as_deref().ok_or("no approval number")?;
            leaf(&mut w, "nx:ApprovalNo", no)?;
        }
        leaf(&mut w, "nx:PlanFilingNo", &d.plan_filing_no)?;
        leaf(
            &mut w,
            "nx:PlannedDispatch",
            &self.beijing_from_rfc3339(&d.planned_dispatch_at, "%Y%m%d%H%M%S")?,
        )?;
        leaf(&mut w, "nx:MethodCode", &d.planned_method_code)?;
        w.create_element("nx:EmergencyMeasures")
            .write_cdata_content(BytesCData::new(d.emergency_measures.as_str()))?;
        leaf(&mut w, "nx:Version", &d.version.to_string())?;

        start(&mut w, "nx:Lines")?;
        for (i, l) in d.lines.iter().enumerate() {
            let no = (i + 1).to_string();
            w.write_event(Event::Start(BytesStart::new("nx:Line").with_attributes([("no", no.as_str())])))?;
            leaf(&mut w, "nx:WasteCode", &l.waste_code)?;
            leaf(&mut w, "nx:Category", &l.category)?;
            leaf(&mut w, "nx:Name", &l.name)?;
            opt_leaf(&mut w, "nx:InternalName", l.internal_name.as_deref())?;
            if let Some(form) = &l.form {
                let code = match form.as_str() {
                    "S" => "1",
                    "SS" => "2",
                    "L" => "3",
                    "G" => "4",
                    other => return Err(format!("unknown form {other}").into()),
                };
                leaf(&mut w, "nx:Form", code)?;
            }
            opt_leaf(&mut w, "nx:Hazard", l.hazard.as_deref())?;
            opt_leaf(&mut w, "nx:Components", l.harmful_components.as_deref())?;
            let q = &l.quantity;
            let tonnes = match q.unit.as_str() {
                "t" => Some(q.value.clone()),
                "kg" => Some(shift(&q.value, -3)?),
                u if COUNTED.contains(&u) => q.mass_kg.as_deref().map(|kg| shift(kg, -3)).transpose()?,
                _ => None,
            };
            opt_leaf(&mut w, "nx:WeightT", tonnes.as_deref())?;
            w.create_element("nx:Amount")
                .with_attribute(("unit", q.unit.as_str()))
                .write_text_content(BytesText::new(&q.value))?;
            if let Some(p) = &l.packaging {
                let count = p.count.map(|c| c.to_string());
                let mut e = BytesStart::new("nx:Packaging");
                if let Some(c) = &count {
                    e.push_attribute(("count", c.as_str()));
                }
                w.write_event(Event::Start(e))?;
                w.write_event(Event::Text(BytesText::new(p.kind.as_deref().unwrap_or(""))))?;
                end(&mut w, "nx:Packaging")?;
            }
            opt_leaf(&mut w, "nx:UnNumber", l.un_number.as_deref())?;
            end(&mut w, "nx:Line")?;
        }
        end(&mut w, "nx:Lines")?;
        end(&mut w, "nx:Manifest")?;
        Ok(w.into_inner())
    }

    /// RFC 3339 → Beijing local time in `pattern`.
    fn beijing_from_rfc3339(&self, text: &str, pattern: &str) -> Res<String> {
        Ok(DateTime::parse_from_rfc3339(text)?
            .with_timezone(&self.beijing)
            .format(pattern)
            .to_string())
    }

    /// Beijing local time in `pattern` → RFC 3339 with the +08:00 offset.
    fn rfc3339_from_beijing(&self, text: &str, pattern: &str) -> Res<String> {
        let naive = NaiveDateTime::parse_from_str(text, pattern)?;
        let local = self.beijing.from_local_datetime(&naive).single().ok_or("ambiguous time")?;
        Ok(local.to_rfc3339())
    }

    /// National XML → canonical JSON event (envelope `id`, `subject`, `time`,
    /// `jurisdiction` and `data`).
    fn national_to_canonical(&self, xml: &[u8]) -> Res<Vec<u8>> {
        #[derive(Clone, Copy, PartialEq)]
        enum In {
            Top,
            Header,
            Consignor,
            Carrier,
            Receiver,
            Line,
        }
        /// Raw national fields of one line, converted at its end.
        #[derive(Default)]
        struct RawLine {
            line: Line,
            weight_t: Option<String>,
            amount: Option<String>,
            unit: Option<String>,
        }
        let text = std::str::from_utf8(xml)?;
        let mut r = Reader::from_str(text);
        let mut ev = CanonicalEvent::default();
        let mut sent_at = String::new();
        let mut dispatch = String::new();
        let mut transfer = String::new();
        let mut contact = None;
        let mut raw = RawLine::default();
        let mut at = In::Top;
        let mut buf = String::new();
        loop {
            match r.read_event()? {
                Event::Start(e) => {
                    buf.clear();
                    let attr = |name: &str| -> Res<Option<String>> {
                        Ok(match e.try_get_attribute(name)? {
                            Some(a) => Some(a.normalized_value(quick_xml::XmlVersion::Implicit1_0)?.into_owned()),
                            None => None,
                        })
                    };
                    match e.local_name().as_ref() {
                        "Header" => at = In::Header,
                        "Consignor" => {
                            at = In::Consignor;
                            ev.data.consignor.usci = attr("usci")?.ok_or("consignor usci")?;
                        }
                        "Carrier" => {
                            at = In::Carrier;
                            ev.data.carrier.usci = attr("usci")?.ok_or("carrier usci")?;
                        }
                        "Receiver" => {
                            at = In::Receiver;
                            ev.data.receiver.usci = attr("usci")?.ok_or("receiver usci")?;
                        }
                        "Origin" => ev.jurisdiction = attr("division")?,
                        "Line" => {
                            at = In::Line;
                            raw = RawLine::default();
                        }
                        "Amount" => raw.unit = attr("unit")?,
                        "Packaging" => {
                            let count = attr("count")?.map(|c| c.trim().parse::<u32>()).transpose()?;
                            raw.line.packaging.get_or_insert_with(Packaging::default).count = count;
                        }
                        _ => {}
                    }
                }
                Event::Text(t) => buf.push_str(&t.xml10_content()),
                Event::CData(t) => buf.push_str(&t.xml10_content()),
                Event::GeneralRef(g) => {
                    let c = match g.resolve_char_ref()? {
                        Some(c) => c,
                        None => match &*g {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            other => return Err(format!("entity {other}").into()),
                        },
                    };
                    buf.push(c);
                }
                Event::End(e) => {
                    let value = std::mem::take(&mut buf);
                    let d = &mut ev.data;
                    match (at, e.local_name().as_ref()) {
                        (In::Header, "MessageId") => ev.id = value,
                        (In::Header, "SentAt") => sent_at = value,
                        (In::Header, "Header") => at = In::Top,
                        (In::Top, "ManifestNo") => d.manifest_no = value,
                        (In::Top, "TransferType") => transfer = value,
                        (In::Top, "ApprovalNo") => d.cross_province_approval_no = Some(value),
                        (In::Top, "PlanFilingNo") => d.plan_filing_no = value,
                        (In::Top, "PlannedDispatch") => dispatch = value,
                        (In::Top, "MethodCode") => d.planned_method_code = value,
                        (In::Top, "EmergencyMeasures") => d.emergency_measures = value.trim().to_string(),
                        (In::Top, "Version") => d.version = value.trim().parse()?,
                        (In::Consignor, "Name") => d.consignor.name = Some(value),
                        (In::Consignor, "SiteId") => d.consignor.site_id = Some(value),
                        (In::Consignor, "Contact") => contact = Some(value),
                        (In::Carrier, "Name") => d.carrier.name = Some(value),
                        (In::Receiver, "Name") => d.receiver.name = Some(value),
                        (In::Receiver, "SiteId") => d.receiver.site_id = Some(value),
                        (In::Receiver, "LicenceNo") => d.receiver.licence_no = Some(value),
                        (In::Receiver, "ExemptionRef") => d.receiver.exemption_ref = Some(value),
                        (In::Consignor | In::Carrier | In::Receiver, "Consignor" | "Carrier" | "Receiver") => {
                            at = In::Top;
                        }
                        (In::Line, "WasteCode") => raw.line.waste_code = value,
                        (In::Line, "Category") => raw.line.category = value,
                        (In::Line, "Name") => raw.line.name = value,
                        (In::Line, "InternalName") => raw.line.internal_name = Some(value),
                        (In::Line, "Form") => {
                            raw.line.form = Some(
                                match value.as_str() {
                                    "1" => "S",
                                    "2" => "SS",
                                    "3" => "L",
                                    "4" => "G",
                                    other => return Err(format!("unknown form {other}").into()),
                                }
                                .to_string(),
                            );
                        }
                        (In::Line, "Hazard") => raw.line.hazard = Some(value),
                        (In::Line, "Components") => raw.line.harmful_components = Some(value),
                        (In::Line, "WeightT") => raw.weight_t = Some(value),
                        (In::Line, "Amount") => raw.amount = Some(value),
                        (In::Line, "Packaging") => {
                            raw.line.packaging.get_or_insert_with(Packaging::default).kind = Some(value);
                        }
                        (In::Line, "UnNumber") => raw.line.un_number = Some(value),
                        (In::Line, "Line") => {
                            let mut raw = std::mem::take(&mut raw);
                            let unit = raw.unit.take().unwrap_or_else(|| "t".to_string());
                            if COUNTED.contains(&unit.as_str())
                                && let Some(t) = &raw.weight_t
                            {
                                raw.line.quantity.mass_kg = Some(shift(t, 3)?);
                            }
                            raw.line.quantity.value = raw.amount.or(raw.weight_t).ok_or("line without quantity")?;
                            raw.line.quantity.unit = unit;
                            d.lines.push(raw.line);
                            at = In::Top;
                        }
                        _ => {}
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let d = &mut ev.data;
        d.transfer_type = match transfer.as_str() {
            "1" => "IN_CITY",
            "2" => "IN_PROVINCE",
            "3" => "CROSS_PROVINCE",
            other => return Err(format!("unknown transfer type {other}").into()),
        }
        .to_string();
        if let Some(c) = contact {
            let mut parts = c.split(" / ");
            d.consignor.contact = Some(Contact {
                name: parts.next().map(str::to_string),
                phone: Some(parts.next().ok_or("contact without phone")?.to_string()),
            });
        }
        ev.subject = Some(format!("manifest:{}", d.manifest_no));
        if ev.jurisdiction.is_none() {
            ev.jurisdiction = Some(format!("{}00", d.manifest_no.get(4..8).unwrap_or("")));
        }
        ev.time = self.rfc3339_from_beijing(&sent_at, "%Y-%m-%d %H:%M:%S")?;
        ev.data.planned_dispatch_at = self.rfc3339_from_beijing(&dispatch, "%Y%m%d%H%M%S")?;
        Ok(serde_json::to_vec(&ev)?)
    }
}

fn start(w: &mut Writer<Vec<u8>>, name: &str) -> io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name)))
}

fn end(w: &mut Writer<Vec<u8>>, name: &str) -> io::Result<()> {
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn leaf(w: &mut Writer<Vec<u8>>, name: &str, text: &str) -> io::Result<()> {
    start(w, name)?;
    w.write_event(Event::Text(BytesText::new(text)))?;
    end(w, name)
}

fn opt_leaf(w: &mut Writer<Vec<u8>>, name: &str, text: Option<&str>) -> io::Result<()> {
    match text {
        Some(t) => leaf(w, name, t),
        None => Ok(()),
    }
}

/// One party: `usci` attribute, name, site, and (consignor) the contact as
/// "name / phone"; the receiver's licence or exemption.
fn party(w: &mut Writer<Vec<u8>>, name: &str, p: &Party, with_contact: bool) -> io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name).with_attributes([("usci", p.usci.as_str())])))?;
    opt_leaf(w, "nx:Name", p.name.as_deref())?;
    opt_leaf(w, "nx:SiteId", p.site_id.as_deref())?;
    if with_contact && let Some(c) = &p.contact {
        let joined = [c.name.as_deref(), c.phone.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" / ");
        if c.name.is_some() || c.phone.is_some() {
            leaf(w, "nx:Contact", &joined)?;
        }
    }
    opt_leaf(w, "nx:LicenceNo", p.licence_no.as_deref())?;
    opt_leaf(w, "nx:ExemptionRef", p.exemption_ref.as_deref())?;
    end(w, name)
}

/// Multiplies a plain decimal (`620`, `8.46`) by `10^places`, exactly, on
/// its digits, and drops trailing fractional zeros: `shift("620", -3)` is
/// `0.62`, `shift("0.62", 3)` is `620`.
fn shift(text: &str, places: i32) -> Res<String> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a decimal").into());
    }
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    let scale = i32::try_from(frac.len())? - places;
    let scale = if scale <= 0 {
        digits.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        0
    } else {
        scale.unsigned_abs() as usize
    };
    if digits.len() <= scale {
        digits.insert_str(0, &"0".repeat(scale + 1 - digits.len()));
    }
    let (i, f) = digits.split_at(digits.len() - scale);
    let i = i.trim_start_matches('0');
    let f = f.trim_end_matches('0');
    let i = if i.is_empty() { "0" } else { i };
    Ok(if f.is_empty() { i.to_string() } else { format!("{i}.{f}") })
}

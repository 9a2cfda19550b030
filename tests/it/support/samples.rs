//! Sample canonical events built from the shipped valid examples.

use serde_json::{Value, json};

fn example(ty: &str, file: &str) -> Value {
    let p = super::repo().join("schemas/canonical").join(ty).join("examples/valid").join(file);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("example")).expect("json")
}

/// A `manifest-created` event for manifest serial `n` (subject `manifest:<no>`).
pub fn manifest(n: u32, event_id: &str) -> Value {
    let mut data = example("manifest-created", "in-city-licensed-two-lines.json");
    let no = format!("20263502{:06}", n % 1_000_000);
    data["manifest_no"] = json!(no);
    envelope("manifest-created", event_id, &format!("manifest:{no}"), data)
}

/// A `ledger-entry` event.
pub fn ledger(event_id: &str) -> Value {
    let data = example("ledger-entry", "generation-drums-counted.json");
    envelope("ledger-entry", event_id, "ledger:HWCS20260304002", data)
}

/// A CloudEvent from the test partner.
pub fn envelope(ty: &str, id: &str, subject: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "urn:test:cell",
        "type": ty,
        "subject": subject,
        "time": "2026-11-29T08:00:00+08:00",
        "jurisdiction": "350206",
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// The Haicang park's ledger namespace.
pub const PARK_NS: &str = "http://cell.hcpark.example/ledger/1";

/// A ledger record in the Haicang park's own XML (before GBK encoding),
/// with a full-width USCI as the park's clerks type it.
pub fn park_record(batch: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="GBK"?>
<TZJL xmlns="{PARK_NS}">
  <JLID>HC-{batch}</JLID>
  <QYDM>９１３５０２０６ＭＡ２ＸＫ７Ｐ１６Ｋ</QYDM>
  <CDBH>S350206-0017</CDBH>
  <HJ>CS</HJ>
  <PCBM>{batch}</PCBM>
  <SJ>2026-03-02 10:15</SJ>
  <FWDM>398-004-22</FWDM>
  <FWMC><![CDATA[线路板生产过程中产生的废蚀铜液]]></FWMC>
  <SL dw="千克">940</SL>
  <RQ lx="IBC吨桶" sl="1">LJ-IBC-0231</RQ>
  <SSDM>MF0021</SSDM>
  <JBR yc="陈志强" js="林晓燕"/>
  <QX>危废贮存库TS001</QX>
  <XZQH>350206</XZQH>
</TZJL>"#
    )
}

/// `text` encoded in GBK.
pub fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

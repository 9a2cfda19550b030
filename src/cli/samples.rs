//! Sample canonical events for the demo and the benchmark, built from the
//! valid examples shipped beside the schemas (Chinese names, real-format
//! codes), with the identifiers varied per event.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

/// Templates read from `schemas/canonical/<type>/examples/valid/`.
pub struct Samples {
    manifest_created: Value,
    manifest_updated: Value,
    ledger: Value,
    track: Value,
}

fn read(dir: &Path, ty: &str, file: &str) -> anyhow::Result<Value> {
    let p = dir.join(ty).join("examples/valid").join(file);
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading sample {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing sample {}", p.display()))
}

impl Samples {
    /// Loads the templates from the catalogue folder.
    pub fn load(schemas: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            manifest_created: read(schemas, "manifest-created", "in-city-licensed-two-lines.json")?,
            manifest_updated: read(schemas, "manifest-updated", "quantity-revised-version-2.json")?,
            ledger: read(schemas, "ledger-entry", "generation-drums-counted.json")?,
            track: read(schemas, "track-points", "xiamen-trip-wgs84.json")?,
        })
    }

    /// Manifest number for serial `n` (Xiamen, 2026).
    pub fn manifest_no(n: u32) -> String {
        format!("20263502{:06}", n % 1_000_000)
    }

    /// `(type, subject, data)` of a `manifest-created` for serial `n`.
    pub fn manifest_created(&self, n: u32) -> (&'static str, String, Value) {
        let mut d = self.manifest_created.clone();
        d["manifest_no"] = json!(Self::manifest_no(n));
        ("manifest-created", format!("manifest:{}", Self::manifest_no(n)), d)
    }

    /// A compact `manifest-created` (one waste line, short texts): the
    /// benchmark's event of about 1 KiB.
    pub fn manifest_compact(&self, n: u32) -> (&'static str, String, Value) {
        let (ty, subject, mut d) = self.manifest_created(n);
        if let Some(lines) = d["lines"].as_array_mut() {
            lines.truncate(1);
        }
        d["emergency_measures"] = json!("防渗漏托盘、吸附棉、灭火器；泄漏时停车警戒并报告。");
        (ty, subject, d)
    }

    /// A `manifest-updated` for serial `n` at `version` (≥ 2).
    pub fn manifest_updated(&self, n: u32, version: u32) -> (&'static str, String, Value) {
        let mut d = self.manifest_updated.clone();
        d["manifest_no"] = json!(Self::manifest_no(n));
        d["version"] = json!(version.max(2));
        ("manifest-updated", format!("manifest:{}", Self::manifest_no(n)), d)
    }

    /// A `ledger-entry` for batch `n`.
    pub fn ledger(&self, n: u32) -> (&'static str, String, Value) {
        let mut d = self.ledger.clone();
        let code = format!("HWCS2026{:07}", n % 10_000_000);
        d["batch_code"] = json!(code);
        ("ledger-entry", format!("ledger:{code}"), d)
    }

    /// A `track-points` batch `seq` for manifest serial `n`.
    pub fn track(&self, n: u32, seq: u32) -> (&'static str, String, Value) {
        let mut d = self.track.clone();
        d["manifest_no"] = json!(Self::manifest_no(n));
        d["batch_seq"] = json!(seq);
        ("track-points", format!("track:{}", Self::manifest_no(n)), d)
    }
}

/// Wraps a body in a CloudEvent from `source`.
pub fn event(source: &str, id: &str, (ty, subject, data): (&str, String, Value)) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": ty,
        "subject": subject,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "jurisdiction": "350206",
        "datacontenttype": "application/json",
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Catalogue;

    #[test]
    fn every_sample_is_valid_and_the_bench_event_is_about_1_kib() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/canonical");
        let samples = Samples::load(&dir).unwrap();
        let cat = Catalogue::load(&dir).unwrap();
        for (ty, _, data) in [
            samples.manifest_created(7),
            samples.manifest_compact(7),
            samples.manifest_updated(7, 3),
            samples.ledger(7),
            samples.track(7, 1),
        ] {
            assert_eq!(cat.validate(ty, &data, ""), Ok(()), "{ty}");
        }
        let size = event("urn:bench:load", "b1", samples.manifest_compact(1)).to_string().len();
        assert!((800..=1400).contains(&size), "bench event is {size} bytes");
    }
}

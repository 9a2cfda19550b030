//! Conformance runs: does a partner's traffic meet the catalogue? A run
//! looks at the partner's recent sandbox traffic and at sample messages it
//! hands in, checks each sample exactly as ingest would (mapping, envelope,
//! what the partner may send, schema, reference data) without storing it,
//! and gives a verdict:
//!
//! - every message type the partner may send has at least one passing
//!   example (a sandbox message accepted, or a sample that passes);
//! - no sample fails;
//! - for each type, the latest sandbox exchange was accepted (earlier
//!   refusals that the partner has since fixed are listed, not held against it).
//!
//! The report is JSON (stored with the run) and a readable HTML page.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::error::{ApiError, FieldError};
use crate::ingest::auth::Partner;
use crate::model::now_millis;
use crate::store::partners::PartnerRow;
use crate::store::sandbox::{ConformanceRow, SandboxRow};

/// Most samples in one run.
pub const MAX_SAMPLES: usize = 500;
/// Largest sample, in bytes.
pub const MAX_SAMPLE_BYTES: usize = 1024 * 1024;
/// Most sandbox exchanges a run reads.
const MAX_SANDBOX: i64 = 5000;

/// One sample message handed in for a run.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Its name (the file name), for the report.
    pub name: String,
    /// The message type, for a document in the partner's own format; absent
    /// for a canonical CloudEvent (its `type` says).
    #[serde(default)]
    pub message_type: Option<String>,
    /// The bytes, base64 (documents may be GBK XML).
    pub body_base64: String,
}

/// One checked example in a report.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Example {
    /// `sandbox` or `sample`.
    pub origin: String,
    /// The sandbox record id or the sample name.
    pub name: String,
    /// The message type, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// When it arrived (sandbox only, Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<i64>,
    /// Whether it passed.
    pub passed: bool,
    /// The error code, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The error text, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The exact field errors, when it failed.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
}

/// Coverage of one message type.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Coverage {
    /// The message type.
    pub message_type: String,
    /// Passing examples.
    pub passed: usize,
    /// Failing examples.
    pub failed: usize,
    /// Whether its latest sandbox exchange was accepted (`None`: no sandbox traffic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_sandbox_accepted: Option<bool>,
    /// Whether the type counts as covered.
    pub covered: bool,
}

/// A conformance report.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// Run id (`cfr_…`).
    pub id: String,
    /// The partner.
    pub partner: String,
    /// The partner's name.
    pub partner_name: String,
    /// When it ran (Unix ms).
    pub at: i64,
    /// Who ran it.
    pub actor: String,
    /// `pass` or `fail`.
    pub verdict: String,
    /// Sandbox traffic from this time on was read (Unix ms).
    pub window_from: i64,
    /// Per allowed message type.
    pub coverage: Vec<Coverage>,
    /// Why it failed, one line each (empty when it passed).
    pub findings: Vec<String>,
    /// Every example checked, failures first.
    pub examples: Vec<Example>,
}

/// Runs a conformance check for `row` and stores it.
pub async fn run(app: &AppState, actor: &str, row: &PartnerRow, samples: &[Sample]) -> Result<Report, ApiError> {
    if samples.len() > MAX_SAMPLES {
        return Err(ApiError::too_large(format!("at most {MAX_SAMPLES} samples per run")));
    }
    let partner = Partner::registered(row);
    let now = now_millis();
    let window = i64::try_from(app.config.partners.conformance_window.0.as_millis()).unwrap_or(i64::MAX);
    let from = now.saturating_sub(window);
    let sandbox = app
        .store
        .sandbox_messages(&row.id, from, MAX_SANDBOX)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut examples: Vec<Example> = sandbox.iter().map(from_sandbox).collect();
    for s in samples {
        examples.push(check_sample(app, &partner, s));
    }
    let allowed = partner.allowed_types.clone().unwrap_or_default();
    let report = judge(row, actor, now, from, &allowed, &sandbox, examples);
    let stored = ConformanceRow {
        id: report.id.clone(),
        partner_id: row.id.clone(),
        at: now,
        actor: actor.to_string(),
        passed: report.verdict == "pass",
        report: serde_json::to_string(&report).unwrap_or_else(|_| "{}".into()),
    };
    app.store.insert_conformance(&stored).await.map_err(|e| ApiError::internal(&e))?;
    tracing::info!(partner = %row.id, run = %report.id, verdict = %report.verdict, actor, "Conformance run finished.");
    Ok(report)
}

fn from_sandbox(r: &SandboxRow) -> Example {
    let body: Value = serde_json::from_str(&r.errors).unwrap_or(Value::Null);
    let errors = body
        .get("errors")
        .and_then(|e| serde_json::from_value::<Vec<FieldError>>(e.clone()).ok())
        .unwrap_or_default();
    Example {
        origin: "sandbox".into(),
        name: r.source_event_id.clone().unwrap_or_else(|| r.id.clone()),
        message_type: r.message_type.clone(),
        received_at: Some(r.received_at),
        passed: r.outcome == "accepted",
        code: r.error_code.clone(),
        detail: body.get("detail").and_then(Value::as_str).map(str::to_string),
        errors,
    }
}

/// Checks one sample as ingest would, without storing it.
fn check_sample(app: &AppState, partner: &Partner, s: &Sample) -> Example {
    let mut ex = Example {
        origin: "sample".into(),
        name: s.name.clone(),
        message_type: s.message_type.clone(),
        received_at: None,
        passed: false,
        code: None,
        detail: None,
        errors: Vec::new(),
    };
    let result = sample_event(app, partner, s).and_then(|event| {
        if ex.message_type.is_none() {
            ex.message_type = event.get("type").and_then(Value::as_str).map(str::to_string);
        }
        crate::ingest::check(app, partner, event).map(|_| ())
    });
    match result {
        Ok(()) => ex.passed = true,
        Err(e) => {
            ex.code = Some(e.code.to_string());
            ex.detail = Some(e.detail.clone());
            ex.errors = e.errors;
        }
    }
    ex
}

/// The CloudEvent a sample amounts to: the sample itself, or the partner's
/// document mapped by its mapping for the type.
fn sample_event(app: &AppState, partner: &Partner, s: &Sample) -> Result<Value, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.body_base64.as_bytes())
        .map_err(|_| ApiError::bad_request("malformed_sample", "body_base64 is not base64"))?;
    if bytes.len() > MAX_SAMPLE_BYTES {
        return Err(ApiError::too_large(format!("a sample may be at most {MAX_SAMPLE_BYTES} bytes")));
    }
    match &s.message_type {
        Some(t) if partner.mappings.contains_key(t) => {
            let mapping = crate::ingest::document::inbound_mapping(app, partner, t)?;
            crate::ingest::document::map_document(partner, &mapping, t, &bytes)
        }
        _ => serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("the sample is not valid JSON: {e} (line {}, column {})", e.line(), e.column()),
            )
        }),
    }
}

/// The verdict from the examples (pure: unit-tested).
fn judge(
    row: &PartnerRow,
    actor: &str,
    now: i64,
    from: i64,
    allowed: &[String],
    sandbox: &[SandboxRow],
    mut examples: Vec<Example>,
) -> Report {
    let mut coverage: BTreeMap<&str, Coverage> = allowed
        .iter()
        .map(|t| {
            (
                t.as_str(),
                Coverage {
                    message_type: t.clone(),
                    ..Coverage::default()
                },
            )
        })
        .collect();
    for ex in &examples {
        if let Some(c) = ex.message_type.as_deref().and_then(|t| coverage.get_mut(t)) {
            if ex.passed {
                c.passed += 1;
            } else {
                c.failed += 1;
            }
        }
    }
    // Sandbox rows come newest first: the first seen per type is the latest.
    for r in sandbox {
        if let Some(c) = r.message_type.as_deref().and_then(|t| coverage.get_mut(t))
            && c.latest_sandbox_accepted.is_none()
        {
            c.latest_sandbox_accepted = Some(r.outcome == "accepted");
        }
    }
    let mut findings = Vec::new();
    for c in coverage.values_mut() {
        c.covered = c.passed > 0;
        if !c.covered {
            findings.push(format!("{}: no passing example", c.message_type));
        }
        if c.latest_sandbox_accepted == Some(false) {
            findings.push(format!("{}: the latest sandbox message was refused", c.message_type));
        }
    }
    for ex in examples.iter().filter(|e| e.origin == "sample" && !e.passed) {
        findings.push(format!("sample {} failed: {}", ex.name, ex.detail.as_deref().unwrap_or("refused")));
    }
    for ex in examples
        .iter()
        .filter(|e| e.message_type.as_deref().is_some_and(|t| !allowed.iter().any(|a| a == t)))
    {
        if ex.origin == "sample" && ex.passed {
            findings.push(format!(
                "sample {}: {} is not one of the partner's types",
                ex.name,
                ex.message_type.as_deref().unwrap_or("")
            ));
        }
    }
    // Failures first, then by origin and time, so the report opens on what to fix.
    examples.sort_by(|a, b| a.passed.cmp(&b.passed).then(b.received_at.cmp(&a.received_at)));
    Report {
        id: format!("cfr_{}", ulid::Ulid::generate()),
        partner: row.id.clone(),
        partner_name: row.name.clone(),
        at: now,
        actor: actor.to_string(),
        verdict: if findings.is_empty() { "pass" } else { "fail" }.into(),
        window_from: from,
        coverage: coverage.into_values().collect(),
        findings,
        examples,
    }
}

/// Reads a folder of samples for the CLI: `<dir>/<type>/<file>` are
/// documents of that type in the partner's own format (or CloudEvents, when
/// the partner has no mapping for the type); files directly in `<dir>` are
/// CloudEvents. Hidden files are skipped.
pub fn read_samples(dir: &Path) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    let mut push = |path: &Path, message_type: Option<String>| -> anyhow::Result<()> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if bytes.len() > MAX_SAMPLE_BYTES {
            anyhow::bail!("{} is larger than {MAX_SAMPLE_BYTES} bytes", path.display());
        }
        let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        out.push(Sample {
            name,
            message_type,
            body_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        });
        Ok(())
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::path);
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(&path)?.collect::<Result<_, _>>()?;
            files.sort_by_key(std::fs::DirEntry::path);
            for f in files {
                if f.path().is_file() && !f.file_name().to_string_lossy().starts_with('.') {
                    push(&f.path(), Some(name.clone()))?;
                }
            }
        } else if path.is_file() {
            push(&path, None)?;
        }
    }
    if out.len() > MAX_SAMPLES {
        anyhow::bail!("{} holds {} samples; at most {MAX_SAMPLES} per run", dir.display(), out.len());
    }
    Ok(out)
}

/// The report as text for the terminal.
pub fn render_text(v: &Value) -> String {
    let Ok(r) = serde_json::from_value::<Report>(v.clone()) else {
        return format!("{v}\n");
    };
    let mut out = format!(
        "Conformance run {} for {} ({}): {}\n\n",
        r.id,
        r.partner,
        r.partner_name,
        r.verdict.to_uppercase()
    );
    out.push_str("Coverage:\n");
    for c in &r.coverage {
        out.push_str(&format!(
            "  {:<28} {} passed, {} failed{}\n",
            c.message_type,
            c.passed,
            c.failed,
            if c.covered { "" } else { "  ← not covered" }
        ));
    }
    if !r.findings.is_empty() {
        out.push_str("\nFindings:\n");
        for f in &r.findings {
            out.push_str(&format!("  - {f}\n"));
        }
    }
    let failed: Vec<&Example> = r.examples.iter().filter(|e| !e.passed).collect();
    if !failed.is_empty() {
        out.push_str("\nFailing examples:\n");
        for e in failed {
            out.push_str(&format!(
                "  {} {} ({}): {} {}\n",
                e.origin,
                e.name,
                e.message_type.as_deref().unwrap_or("?"),
                e.code.as_deref().unwrap_or(""),
                e.detail.as_deref().unwrap_or("")
            ));
            for fe in &e.errors {
                out.push_str(&format!("      {}: {}\n", fe.path, fe.message));
            }
        }
    }
    out
}

/// The report as a self-contained HTML page (no scripts, no external assets).
pub fn render_html(r: &Report) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    };
    let when = |ms: i64| {
        // China has kept UTC+8 without daylight saving since 1991.
        chrono::DateTime::from_timestamp_millis(ms + 8 * 3_600_000)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S (UTC+8)").to_string())
            .unwrap_or_default()
    };
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>Conformance {} – {}</title>", esc(&r.partner), esc(&r.verdict)));
    h.push_str("<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}.pass{color:#064}.fail{color:#a00}code{font-size:.9em}</style></head><body>\n");
    h.push_str(&format!(
        "<h1>Conformance: {} <span class=\"{}\">{}</span></h1>\n<p>partner <code>{}</code> · run <code>{}</code> · {} · by {}</p>\n",
        esc(&r.partner_name),
        esc(&r.verdict),
        esc(&r.verdict.to_uppercase()),
        esc(&r.partner),
        esc(&r.id),
        esc(&when(r.at)),
        esc(&r.actor)
    ));
    if !r.findings.is_empty() {
        h.push_str("<h2>Findings</h2><ul>");
        for f in &r.findings {
            h.push_str(&format!("<li>{}</li>", esc(f)));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<h2>Coverage</h2><table><tr><th>Message type</th><th>Passed</th><th>Failed</th><th>Latest sandbox message</th><th>Covered</th></tr>\n");
    for c in &r.coverage {
        h.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>\n",
            esc(&c.message_type),
            c.passed,
            c.failed,
            match c.latest_sandbox_accepted {
                Some(true) => "accepted",
                Some(false) => "refused",
                None => "–",
            },
            if c.covered { "pass" } else { "fail" },
            if c.covered { "yes" } else { "no" }
        ));
    }
    h.push_str("</table>\n<h2>Examples</h2><table><tr><th>Origin</th><th>Name</th><th>Type</th><th>Result</th><th>Errors</th></tr>\n");
    for e in &r.examples {
        let mut errs = String::new();
        if let Some(d) = &e.detail {
            errs.push_str(&format!("<p>{} <code>{}</code></p>", esc(d), esc(e.code.as_deref().unwrap_or(""))));
        }
        if !e.errors.is_empty() {
            errs.push_str("<ul>");
            for fe in &e.errors {
                errs.push_str(&format!("<li><code>{}</code>: {}</li>", esc(&fe.path), esc(&fe.message)));
            }
            errs.push_str("</ul>");
        }
        h.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td class=\"{}\">{}</td><td>{}</td></tr>\n",
            esc(&e.origin),
            esc(&e.name),
            esc(e.message_type.as_deref().unwrap_or("?")),
            if e.passed { "pass" } else { "fail" },
            if e.passed { "pass" } else { "fail" },
            errs
        ));
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> PartnerRow {
        PartnerRow {
            id: "park-a".into(),
            name: "园区A".into(),
            division_code: "350505".into(),
            source: "urn:wastehub:partner:park-a".into(),
            message_types: r#"["ledger-entry","weighing"]"#.into(),
            mappings: "{}".into(),
            status: "sandbox".into(),
            resume_status: None,
            signing: None,
            signing_secret: None,
            callback_url: None,
            created_at: 0,
            updated_at: 0,
            live_at: None,
        }
    }

    fn sandbox(t: &str, at: i64, accepted: bool) -> SandboxRow {
        SandboxRow {
            id: format!("msg_{at}"),
            partner_id: "park-a".into(),
            received_at: at,
            message_type: Some(t.into()),
            source_event_id: Some(format!("e{at}")),
            http_status: if accepted { 202 } else { 422 },
            outcome: if accepted { "accepted" } else { "rejected" }.into(),
            error_code: (!accepted).then(|| "validation_failed".into()),
            errors: "[]".into(),
            event: None,
        }
    }

    fn verdict(rows: &[SandboxRow], samples: Vec<Example>) -> Report {
        let allowed = vec!["ledger-entry".to_string(), "weighing".to_string()];
        let mut examples: Vec<Example> = rows.iter().map(from_sandbox).collect();
        examples.extend(samples);
        judge(&row(), "op", 10, 0, &allowed, rows, examples)
    }

    fn sample(name: &str, t: &str, passed: bool) -> Example {
        Example {
            origin: "sample".into(),
            name: name.into(),
            message_type: Some(t.into()),
            received_at: None,
            passed,
            code: (!passed).then(|| "validation_failed".into()),
            detail: (!passed).then(|| "bad".into()),
            errors: Vec::new(),
        }
    }

    #[test]
    fn every_type_needs_a_passing_example() {
        // Newest first, as the store returns them.
        let r = verdict(&[sandbox("ledger-entry", 2, true)], vec![]);
        assert_eq!(r.verdict, "fail");
        assert_eq!(r.findings, ["weighing: no passing example"]);
        let r = verdict(&[sandbox("ledger-entry", 2, true)], vec![sample("w.json", "weighing", true)]);
        assert_eq!(r.verdict, "pass", "{:?}", r.findings);
    }

    #[test]
    fn a_fixed_refusal_is_listed_but_not_held_against_the_partner() {
        let rows = [
            sandbox("ledger-entry", 3, true),
            sandbox("ledger-entry", 1, false),
            sandbox("weighing", 2, true),
        ];
        let r = verdict(&rows, vec![]);
        assert_eq!(r.verdict, "pass", "{:?}", r.findings);
        assert_eq!(r.examples.iter().filter(|e| !e.passed).count(), 1);
        assert!(!r.examples[0].passed, "failures come first");
    }

    #[test]
    fn a_latest_refusal_or_a_failing_sample_fails_the_run() {
        let rows = [
            sandbox("ledger-entry", 3, false),
            sandbox("ledger-entry", 1, true),
            sandbox("weighing", 2, true),
        ];
        let r = verdict(&rows, vec![]);
        assert_eq!(r.findings, ["ledger-entry: the latest sandbox message was refused"]);
        let rows = [sandbox("ledger-entry", 3, true), sandbox("weighing", 2, true)];
        let r = verdict(&rows, vec![sample("bad.json", "weighing", false)]);
        assert_eq!(r.verdict, "fail");
        assert_eq!(r.findings, ["sample bad.json failed: bad"]);
    }

    #[test]
    fn the_html_report_escapes_what_partners_sent() {
        let mut s = sample("<script>x</script>.json", "weighing", false);
        s.errors = vec![FieldError {
            path: "/data/<b>".into(),
            message: "\"quoted\" & <tagged>".into(),
        }];
        let r = verdict(&[], vec![s]);
        let html = render_html(&r);
        assert!(!html.contains("<script>x") && html.contains("&lt;script&gt;x"), "{html}");
        assert!(html.contains("&quot;quoted&quot; &amp; &lt;tagged&gt;"));
        assert!(render_text(&serde_json::to_value(&r).unwrap()).contains("FAIL"));
    }
}

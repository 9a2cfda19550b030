//! `wastehub test` and `wastehub map`: running mapping files from the
//! command line, without a hub.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

use crate::config;
use crate::mapping::{MappingSet, cases};
use crate::schema::Catalogue;

/// Loads config, catalogue and mappings from `dir`, or explains why not.
pub fn load(dir: &Path) -> anyhow::Result<(Catalogue, MappingSet, crate::reference::Checker)> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let loaded = config::load_with(dir, &env).map_err(|errs| {
        anyhow::anyhow!(
            "configuration does not load:\n{}",
            errs.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        )
    })?;
    let catalogue = Catalogue::load(&loaded.paths.resolve(&loaded.config.catalogue.schemas))?;
    let set = crate::app::load_mappings(&loaded, &catalogue).map_err(|errs| {
        anyhow::anyhow!(
            "mapping files do not load:\n{}",
            errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        )
    })?;
    let data = crate::reference::ReferenceData::load(&loaded.paths.resolve(&loaded.config.catalogue.reference))?;
    let checker = crate::reference::Checker::new(&catalogue, data);
    Ok((catalogue, set, checker))
}

/// `wastehub test [PATH]`: runs the cases beside the mappings (all, or
/// those under PATH) and prints a line per case, with a diff for failures.
/// Returns the number of failed cases.
pub fn test(dir: &Path, only: Option<&Path>) -> anyhow::Result<usize> {
    let (catalogue, set, checker) = load(dir)?;
    let results = cases::run_all(&set, &catalogue, Some(&checker), only);
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for r in &results {
        let name = r.case.strip_prefix(dir).unwrap_or(&r.case).display().to_string();
        match &r.failure {
            None => writeln!(out, "ok    {name}")?,
            Some(report) => {
                failed += 1;
                writeln!(out, "FAIL  {name}")?;
                for line in report.lines() {
                    writeln!(out, "      {line}")?;
                }
            }
        }
    }
    for m in cases::without_cases(&set) {
        if only.is_none() {
            writeln!(out, "warn  {} has no cases", m.strip_prefix(dir).unwrap_or(&m).display())?;
        }
    }
    if results.is_empty() {
        bail!(
            "no cases found{}",
            only.map(|p| format!(" under {}", p.display())).unwrap_or_default()
        );
    }
    writeln!(out, "{} case(s), {} passed, {failed} failed", results.len(), results.len() - failed)?;
    Ok(failed)
}

/// Arguments of `wastehub map`.
#[derive(Debug, clap::Args)]
pub struct MapArgs {
    /// The mapping: a name (`national/manifest-out`) or a file.
    #[arg(long)]
    pub mapping: String,
    /// The document to translate.
    #[arg(long)]
    pub input: PathBuf,
    /// Show, for every output field, the rule and the input behind it.
    #[arg(long)]
    pub explain: bool,
    /// Use the version in force at this time (RFC 3339; default now).
    #[arg(long)]
    pub at: Option<String>,
    /// Config directory.
    #[arg(long, default_value = ".")]
    pub config: PathBuf,
}

/// `wastehub map`.
pub fn map(args: &MapArgs) -> anyhow::Result<()> {
    let (_, set, _) = load(&args.config)?;
    let at: DateTime<Utc> = match &args.at {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("--at {t:?} is not an RFC 3339 time"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let as_file = Path::new(&args.mapping);
    let mapping = if as_file.extension().is_some_and(|e| e == "toml") {
        let want = as_file.canonicalize().with_context(|| format!("{}", as_file.display()))?;
        set.all()
            .find(|m| m.file.canonicalize().is_ok_and(|f| f == want))
            .with_context(|| format!("{} is not among the loaded mappings", as_file.display()))?
    } else {
        match set.in_force(&args.mapping, at) {
            Some(m) => m,
            None if set.versions(&args.mapping).is_empty() => {
                let names: Vec<&str> = set.names().collect();
                bail!("no mapping named {:?} (known: {})", args.mapping, names.join(", "))
            }
            None => bail!("no version of {} is in force at {at}", args.mapping),
        }
    };
    let input = std::fs::read(&args.input).with_context(|| format!("{}", args.input.display()))?;
    let mut out = std::io::stdout().lock();
    if args.explain {
        let (mapped, steps) = mapping.explain(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
        out.write_all(&mapped.body)?;
        writeln!(out)?;
        writeln!(
            out,
            "\n# {} version {} ({}), {} field(s)",
            mapping.name,
            mapping.version,
            mapping.file.display(),
            steps.len()
        )?;
        let width = steps.iter().map(|s| s.output.chars().count()).max().unwrap_or(0);
        for s in &steps {
            let pad = width.saturating_sub(s.output.chars().count());
            writeln!(
                out,
                "{}{} = {:?}\n{}  from {} (rule {})",
                s.output,
                " ".repeat(pad),
                s.value,
                " ".repeat(width),
                s.from,
                s.rule
            )?;
        }
    } else {
        let mapped = mapping.apply(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
        out.write_all(&mapped.body)?;
        writeln!(out)?;
    }
    Ok(())
}

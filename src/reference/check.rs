//! Running the reference checks of a message type over a body: the
//! [`Checker`] holds the loaded tables and every type's [`Plan`], and turns
//! each problem into a [`FieldError`] at the value's JSON Pointer, in the
//! same shape as schema errors.
//!
//! Hot path (every ingested message): the walk follows the precomputed
//! templates over the borrowed JSON, builds the current path as a chain of
//! stack frames, and allocates only to report an error.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::{Map, Value};

use super::ReferenceData;
use super::division;
use super::plan::{Kind, Plan, Seg, escape};
use super::usci;
use super::waste::{self, Applied};
use crate::error::FieldError;
use crate::schema::Catalogue;

/// Beijing time (UTC+08:00): editions start on Beijing dates.
const BEIJING_SECONDS: i32 = 8 * 3600;

/// The reference checks of every message type, ready to run.
#[derive(Debug)]
pub struct Checker {
    data: ReferenceData,
    plans: HashMap<String, Plan>,
}

impl Checker {
    /// Combines loaded reference data with the plans the catalogue derived
    /// from its schemas.
    pub fn new(catalogue: &Catalogue, data: ReferenceData) -> Self {
        let plans = catalogue.plans().map(|(t, p)| (t.to_string(), p.clone())).collect();
        Self { data, plans }
    }

    /// The loaded tables.
    pub fn data(&self) -> &ReferenceData {
        &self.data
    }

    /// The plan of `message_type`, if it has any checks.
    pub fn plan(&self, message_type: &str) -> Option<&Plan> {
        self.plans.get(message_type).filter(|p| !p.targets.is_empty())
    }

    /// Runs every check of `message_type` on `data` (already valid against
    /// its schema). Waste codes are looked up in the edition in force on
    /// `event_time`'s date in Beijing time. Error paths are prefixed with
    /// `prefix` (`/data` at ingest). An unknown type has no checks.
    pub fn check(&self, message_type: &str, data: &Value, event_time: DateTime<FixedOffset>, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let Some(plan) = self.plan(message_type) else { return errors };
        let date = beijing_date(event_time);
        let applied = self.data.waste_codes.at(date);
        let ctx = Ctx {
            data: &self.data,
            applied: applied.as_ref(),
            date,
            prefix,
        };
        for target in &plan.targets {
            visit(data, &target.parent, &Step::Root, &mut |object, at| {
                ctx.check_member(object, at, &target.key, &target.kind, &mut errors);
            });
        }
        errors
    }
}

fn beijing_date(t: DateTime<FixedOffset>) -> NaiveDate {
    match FixedOffset::east_opt(BEIJING_SECONDS) {
        Some(cst) => t.with_timezone(&cst).date_naive(),
        None => t.date_naive(),
    }
}

struct Ctx<'a> {
    data: &'a ReferenceData,
    applied: Option<&'a Applied<'a>>,
    date: NaiveDate,
    prefix: &'a str,
}

impl Ctx<'_> {
    fn check_member(&self, object: &Map<String, Value>, at: &Step<'_>, key: &str, kind: &Kind, errors: &mut Vec<FieldError>) {
        let Some(Value::String(value)) = object.get(key) else { return };
        match kind {
            Kind::Usci => {
                if let Err(p) = usci::verify(value) {
                    errors.push(self.error(at, key, p.to_string()));
                }
            }
            Kind::Division => {
                if let Err(p) = self.data.divisions.check(value) {
                    errors.push(self.error(at, key, division::message(value, p)));
                }
            }
            Kind::WasteCode { category } => {
                if let Some(applied) = self.applied
                    && !applied.edition.contains(value)
                {
                    let when = if applied.in_force {
                        format!("in force at {}", self.date)
                    } else {
                        format!("the earliest edition loaded; {} is before it", self.date)
                    };
                    let msg = format!(
                        "waste code {value} is not in the {} edition of the National Hazardous Waste List ({when})",
                        applied.edition.name
                    );
                    errors.push(self.error(at, key, msg));
                }
                if let Some(cat_key) = category
                    && let Some(Value::String(cat)) = object.get(cat_key.as_str())
                    && waste::parse(value).is_some()
                    && !waste::category_matches(value, cat)
                {
                    let expected = waste::category_of(value).unwrap_or_default();
                    let msg = format!("category {cat} does not match waste code {value} (expected HW{expected})");
                    errors.push(self.error(at, cat_key, msg));
                }
            }
        }
    }

    fn error(&self, at: &Step<'_>, key: &str, message: String) -> FieldError {
        let mut path = String::from(self.prefix);
        at.render(&mut path);
        path.push('/');
        path.push_str(&escape(key));
        FieldError { path, message }
    }
}

/// The concrete path walked so far, as a chain of stack frames (no heap).
enum Step<'a> {
    Root,
    Key(&'a str, &'a Step<'a>),
    Index(usize, &'a Step<'a>),
}

impl Step<'_> {
    fn render(&self, out: &mut String) {
        match self {
            Step::Root => {}
            Step::Key(k, up) => {
                up.render(out);
                out.push('/');
                out.push_str(&escape(k));
            }
            Step::Index(i, up) => {
                up.render(out);
                let _ = write!(out, "/{i}");
            }
        }
    }
}

/// Calls `f` with every object the template `segs` reaches from `value`.
fn visit<'v>(value: &'v Value, segs: &'v [Seg], at: &Step<'_>, f: &mut dyn FnMut(&'v Map<String, Value>, &Step<'_>)) {
    match segs.split_first() {
        None => {
            if let Value::Object(o) = value {
                f(o, at);
            }
        }
        Some((Seg::Key(k), rest)) => {
            if let Some(v) = value.get(k.as_str()) {
                visit(v, rest, &Step::Key(k, at), f);
            }
        }
        Some((Seg::Any, rest)) => {
            if let Value::Array(items) = value {
                for (i, v) in items.iter().enumerate() {
                    visit(v, rest, &Step::Index(i, at), f);
                }
            }
        }
    }
}

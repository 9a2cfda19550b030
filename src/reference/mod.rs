//! Reference data and the identifier checks a JSON Schema pattern cannot
//! express: the USCI check character (GB 32100), division codes that exist
//! (GB/T 2260), and waste codes that exist in the edition of the National
//! Hazardous Waste List in force at the event time, with their category;
//! and the working-day calendar that legal deadlines are counted in.
//!
//! Owns: loading the CSV tables of `schemas/reference/` ([`ReferenceData`],
//! errors as `file:line` in [`ReferenceErrors`]), deriving per message type
//! where the checks apply from the schemas' `$ref`s ([`plan`]), and running
//! them ([`Checker`]). Must not: do IO after loading, or know any message
//! type by name: new schemas get the checks by following the `common`
//! convention. See `docs/reference-data.md`.

pub mod calendar;
pub mod check;
pub mod division;
pub mod error;
pub mod plan;
pub mod table;
pub mod usci;
pub mod waste;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use calendar::WorkCalendar;
pub use check::Checker;
pub use division::Divisions;
pub use error::{ReferenceError, ReferenceErrors};
pub use plan::Plan;
pub use waste::WasteCodes;

/// The division table's file name in the reference folder.
pub const DIVISIONS_FILE: &str = "divisions.csv";

/// Every reference table, loaded and validated.
#[derive(Debug)]
pub struct ReferenceData {
    /// Division codes.
    pub divisions: Divisions,
    /// Waste codes by edition.
    pub waste_codes: WasteCodes,
    /// Working days for legal deadlines.
    pub calendar: WorkCalendar,
}

impl ReferenceData {
    /// Loads `dir` (`[catalogue] reference`): `divisions.csv`,
    /// `waste-code-editions.csv` and the code lists it names. Every problem
    /// is reported, not only the first.
    pub fn load(dir: &Path) -> Result<Self, ReferenceErrors> {
        let mut errors = Vec::new();
        let divisions = Divisions::load(&dir.join(DIVISIONS_FILE), &mut errors);
        let waste_codes = WasteCodes::load(dir, &mut errors);
        let calendar = WorkCalendar::load(&dir.join(calendar::CALENDAR_FILE), &mut errors);
        if errors.is_empty() {
            Ok(Self {
                divisions,
                waste_codes,
                calendar,
            })
        } else {
            Err(ReferenceErrors(errors))
        }
    }

    /// One line for `wastehub check`: editions with their sizes and start
    /// dates, and the number of division codes.
    pub fn summary(&self) -> String {
        let editions: Vec<String> = self
            .waste_codes
            .editions()
            .iter()
            .map(|e| format!("{} ({} codes, from {})", e.name, e.len(), e.valid_from))
            .collect();
        format!(
            "waste-code edition(s) {}; {} division code(s); working-day calendar {}",
            editions.join(", "),
            self.divisions.len(),
            self.calendar.years()
        )
    }
}

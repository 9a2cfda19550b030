//! Cross-province transfer negotiation (Order No. 23 Art. 21-28; seed
//! regulation Art. 5, 25): one record per application (`xp:<application_no>`)
//! driven by the letters of the process, with the legal deadlines on the
//! working-day calendar, the whitelist short-cut, and letters between
//! provinces signed and answered with signed receipts (`crate::letters`).
//!
//! - [`model`]: the record, its states and deadlines;
//! - [`machine`]: the state machine, pure; [`receiving`]: its receiving
//!   side, when another province consults this one;
//! - [`rules`]: quantities, dates, due dates and validity caps, pure;
//! - [`whitelist`]: which entry covers a request, pure;
//! - [`workflow`]: the built-in destination [`WORKFLOW_DESTINATION`] that
//!   applies each letter to its record and sends what follows;
//! - [`deadlines`]: the periodic check that deems applications accepted and
//!   raises prompts before and after a deadline;
//! - [`inbound`]: `POST /api/v1/xp/letters`, where other provinces' hubs
//!   deliver signed letters; [`api`]: the record and its history.
//!
//! The rule that keeps it whole: a negotiation letter or whitelist entry
//! from any system other than the hub itself goes only to the workflow
//! ([`destinations`]); what the other systems then receive is what the
//! workflow sends, with the hub's province as source, so nothing reaches a
//! province that the record has not taken.

pub mod api;
pub mod deadlines;
pub mod emit;
pub mod inbound;
pub mod machine;
pub mod model;
pub mod provinces;
pub mod receiving;
pub mod rules;
pub mod whitelist;
pub mod workflow;

use crate::model::Envelope;

/// The built-in destination that applies negotiation letters; no connector
/// may take this name.
pub const WORKFLOW_DESTINATION: &str = "xp-workflow";
/// The sender recorded on messages the workflow raises itself (deemed
/// acceptance, whitelist decisions, prompts); routes never send to it.
pub const HUB_SENDER: &str = crate::prompts::HUB_SENDER;

/// The catalogue types the workflow takes.
pub fn is_negotiation_type(t: &str) -> bool {
    matches!(
        t,
        "xp-request" | "xp-acceptance" | "xp-consultation" | "xp-reply" | "xp-decision" | "whitelist-entry"
    )
}

/// Where a message goes: a negotiation letter or whitelist entry that is
/// not the hub's own goes to the workflow and nowhere else; everything else
/// by the connector routes.
pub fn destinations(env: &Envelope, own_source: &str, routed: impl FnOnce() -> Vec<String>) -> Vec<String> {
    if is_negotiation_type(&env.r#type) && env.source != own_source {
        vec![WORKFLOW_DESTINATION.to_string()]
    } else {
        routed()
    }
}

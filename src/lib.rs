//! wastehub: the integration hub of Fujian's solid and hazardous waste
//! information network.
//!
//! A message goes: [`ingest`] (authenticate, check, route) → [`store`] (one
//! transaction: message + deliveries) → 202 → [`deliver`] (ordering gate,
//! rate limit, [`connectors`]) → delivered or dead, every attempt recorded.
//! [`app::run`] assembles it; `docs/architecture.md` walks through it.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod app;
pub mod backlog;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod deliver;
pub mod error;
pub mod ingest;
pub mod letters;
pub mod mapping;
pub mod model;
pub mod partners;
pub mod prompts;
pub mod queue;
pub mod reference;
pub mod route;
pub mod schema;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod xp;

pub use app::run;

//! Integration tests: the real hub on an ephemeral port with a real database
//! (SQLite by default; PostgreSQL when WASTEHUB_TEST_POSTGRES is set).

mod support;

mod backpressure;
mod check;
mod contracts;
mod crash;
mod delivery;
mod demo;
mod departments;
mod devices;
mod file_drop;
mod fuzz;
mod health;
mod ingest;
mod journey_national;
mod journey_park;
mod journey_xp;
mod letters;
mod mappings;
mod mqtt;
mod mtls;
mod onboarding_doc;
mod ops;
mod ordering;
mod partner_cli;
mod partners;
mod poll;
mod postgres;
mod prompts_back;
mod qinqing;
mod reference;
mod shutdown;
mod soap;

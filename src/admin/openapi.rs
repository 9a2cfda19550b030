//! The OpenAPI 3.1 document of the whole HTTP API, generated from the route
//! annotations. `wastehub openapi` prints it; the committed copy lives in
//! `contracts/hub-api/openapi.json`, and a test fails when they drift.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Top-level document metadata.
#[derive(OpenApi)]
#[openapi(
    info(title = "wastehub API", description = "Ingest, trace and operations API of the wastehub integration hub."),
    modifiers(&Security),
    tags(
        (name = "ingest", description = "Partners submit CloudEvents"),
        (name = "operations", description = "Trace and replay (operator token)"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        for (name, what) in [("partner_key", "Partner API key"), ("operator_token", "Operator token")] {
            c.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build()),
            );
        }
    }
}

/// The document as pretty JSON, with the crate version.
pub fn document() -> String {
    let (_, mut doc) = crate::app::api_router().split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json().unwrap_or_default()
}

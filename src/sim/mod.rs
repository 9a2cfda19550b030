//! Partner stand-ins: small HTTP servers that play a partner's part where
//! the real system cannot be reached (the demo, the benchmark, tests). The
//! receiving ones record what they accepted so a run can be checked
//! afterwards; the department ones (`transport`, `health`) serve a generated
//! registry page by page for the `poll` connector.

pub mod health;
pub mod national;
pub mod provincial;
pub mod receiver;
pub mod registry;
pub mod synth;
pub mod transport;

#[cfg(test)]
mod tests;

/// Compiles a contract schema embedded in a simulator.
pub(crate) fn contract_schema(text: &str, what: &str) -> anyhow::Result<jsonschema::Validator> {
    let doc: serde_json::Value = serde_json::from_str(text)?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&doc)
        .map_err(|e| anyhow::anyhow!("{what} contract schema: {e}"))
}

/// Serves `app` on `listener` until `stop`, in the background.
pub(crate) fn serve(listener: tokio::net::TcpListener, app: axum::Router, stop: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    });
}

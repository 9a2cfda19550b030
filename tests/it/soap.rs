//! `http_xml` with `[outbound.soap]`: bodies travel in a SOAP envelope,
//! a receiver fault is retried, a sender fault is a dead letter, and the
//! ack code is read inside `soap:Body`.

use std::time::Duration;

use crate::support::fake_partner::{FakePartner, Reply};
use crate::support::{HubSpec, TestApp, repo, samples};

const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

fn envelope(inner: &str) -> String {
    format!("<env:Envelope xmlns:env=\"{SOAP12}\"><env:Body>{inner}</env:Body></env:Envelope>")
}

fn fault(code: &str) -> String {
    envelope(&format!(
        "<env:Fault><env:Code><env:Value>env:{code}</env:Value></env:Code><env:Reason><env:Text xml:lang=\"zh\">系统繁忙</env:Text></env:Reason></env:Fault>"
    ))
}

#[tokio::test]
async fn soap_bodies_faults_and_acks() {
    let partner = FakePartner::scripted(|req, n| {
        if req.raw.contains("20263502000002") {
            return Reply::status(400).body(&fault("Sender"));
        }
        if n == 0 {
            Reply::status(500).body(&fault("Receiver"))
        } else {
            Reply::status(200).body(&envelope(
                "<n:Ack xmlns:n=\"urn:wastehub:proposed:national:v1\"><n:Code>0000</n:Code><n:ReceiptId>S-1</n:ReceiptId></n:Ack>",
            ))
        }
    })
    .await;
    let spec = HubSpec::new()
        .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
        .destination(
            "soapy",
            &partner.url,
            "\"manifest-created\"",
            "[outbound.soap]\nversion = \"1.2\"\naction = \"urn:submitManifest\"\n[outbound.ack]\nsuccess_statuses = [200]\nnamespaces = { nx = \"urn:wastehub:proposed:national:v1\" }\nbody_field = \"/nx:Ack/nx:Code\"\nack_codes = [\"0000\"]\nreceipt_field = \"/nx:Ack/nx:ReceiptId\"\n[outbound.mappings]\n\"manifest-created\" = \"national/manifest-out\"",
        );
    let spec = HubSpec {
        connectors: spec
            .connectors
            .into_iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    if n == "soapy" {
                        t.replace("kind = \"http_json\"", "kind = \"http_xml\"")
                    } else {
                        t
                    },
                )
            })
            .collect(),
        ..spec
    };
    let app = TestApp::spawn(spec).await;
    let good = app.accept(&samples::manifest(1, "s-1")).await;
    assert!(app.wait_status(&good, "soapy", "delivered", Duration::from_secs(10)).await);
    let bad = app.accept(&samples::manifest(2, "s-2")).await;
    assert!(app.wait_status(&bad, "soapy", "dead", Duration::from_secs(10)).await);

    let requests = partner.requests();
    let first = &requests[0];
    assert!(
        first.content_type.starts_with("application/soap+xml") && first.content_type.contains("action=\"urn:submitManifest\""),
        "{}",
        first.content_type
    );
    assert!(first.raw.contains("<soap:Body><nx:Manifest"), "{}", first.raw);
    let trace = app.trace(&good).await;
    let d = &trace["deliveries"][0];
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(2), "receiver fault retried: {trace}");
    assert_eq!(d["attempts"][0]["error_class"], "soap_fault");
    assert_eq!(d["receipt"]["reference"], "S-1");
    let trace = app.trace(&bad).await;
    assert!(
        trace["deliveries"][0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("SOAP fault env:Sender: 系统繁忙"),
        "{trace}"
    );
}

//! `http_xml`: the HTTP connector for partners that speak XML. The body is
//! rendered by the destination's outbound mappings (XML); with
//! `[outbound.soap]` it travels in a SOAP 1.1 or 1.2 envelope. The partner's
//! answer is XML too, read with the same defensive reader as inbound
//! documents (no DOCTYPE, no entities, depth-limited); SOAP faults map to
//! outcomes (a sender/client fault is permanent, a receiver/server fault is
//! retried), and the ack rules' `body_field` / `receipt_field` point into
//! the answer's root element — inside `soap:Body` for SOAP — with the
//! prefixes of `ack.namespaces` (`/nx:Code`).

use serde_json::Value;

use super::{DeliveryError, Retry};
use crate::config::connector::{AckConfig, SoapConfig};
use crate::mapping::xml_in::{self, Prefixes};

const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

/// A SOAP binding.
#[derive(Clone, Debug)]
pub struct Soap {
    v12: bool,
    action: Option<String>,
}

impl Soap {
    /// From config (the version was checked at load).
    pub fn new(cfg: &SoapConfig) -> Self {
        Self {
            v12: cfg.version == "1.2",
            action: cfg.action.clone(),
        }
    }

    /// The body inside an envelope (its own XML declaration dropped; the
    /// envelope is UTF-8, so mappings for SOAP partners write UTF-8).
    pub fn wrap(&self, body: &[u8]) -> Vec<u8> {
        let inner = match body
            .strip_prefix(b"<?xml")
            .and_then(|rest| rest.windows(2).position(|w| w == b"?>").map(|i| &rest[i + 2..]))
        {
            Some(rest) => rest,
            None => body,
        };
        let ns = if self.v12 { SOAP12 } else { SOAP11 };
        let mut out = Vec::with_capacity(inner.len() + 160);
        out.extend_from_slice(
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"{ns}\"><soap:Body>").as_bytes(),
        );
        out.extend_from_slice(inner);
        out.extend_from_slice(b"</soap:Body></soap:Envelope>");
        out
    }

    /// The request's content type (1.2 carries the action in it).
    pub fn content_type(&self) -> String {
        match (self.v12, &self.action) {
            (true, Some(a)) => format!("application/soap+xml; charset=utf-8; action=\"{a}\""),
            (true, None) => "application/soap+xml; charset=utf-8".into(),
            (false, _) => "text/xml; charset=utf-8".into(),
        }
    }

    /// The `SOAPAction` header value (1.1 only).
    pub fn action_header(&self) -> Option<String> {
        (!self.v12).then(|| format!("\"{}\"", self.action.clone().unwrap_or_default()))
    }
}

/// How an answer is read for the ack rules.
#[derive(Clone, Debug)]
pub enum Answers {
    /// JSON answers (`http_json`).
    Json,
    /// XML answers with these namespace prefixes (`http_xml`), in a SOAP
    /// envelope when `soap`.
    Xml {
        /// The ack prefixes plus `soap`.
        prefixes: Prefixes,
        /// Answers are SOAP envelopes.
        soap: bool,
    },
}

impl Answers {
    /// The reading for an `http_xml` connector.
    pub fn xml(ack: &AckConfig, soap: Option<&SoapConfig>) -> Self {
        let mut ns: Vec<(String, String)> = ack.namespaces.iter().map(|(p, u)| (p.clone(), u.clone())).collect();
        if let Some(s) = soap {
            ns.push(("soap".into(), if s.version == "1.2" { SOAP12 } else { SOAP11 }.into()));
        }
        Answers::Xml {
            prefixes: Prefixes::new(ns.iter().map(|(p, u)| (p, u))),
            soap: soap.is_some(),
        }
    }

    /// The answer as a tree the ack pointers read (inside `soap:Body` for
    /// SOAP); `None` when it cannot be read.
    pub fn read(&self, body: &str) -> Option<Value> {
        match self {
            Answers::Json => serde_json::from_str(body).ok(),
            Answers::Xml { prefixes, soap } => {
                let (_, tree) = xml_in::read(body.as_bytes(), prefixes).ok()?;
                if *soap { tree.get("soap:Body").cloned() } else { Some(tree) }
            }
        }
    }

    /// A SOAP fault in the answer, as a delivery outcome: `Client`/`Sender`
    /// faults are permanent, others (`Server`/`Receiver`, …) retried.
    pub fn fault(&self, status: u16, body: &str) -> Option<DeliveryError> {
        let Answers::Xml { soap: true, .. } = self else { return None };
        let fault = self.read(body)?.get("soap:Fault")?.clone();
        let text = |p: &str| fault.pointer(p).and_then(Value::as_str).map(str::to_string);
        // 1.1: faultcode / faultstring; 1.2: Code/Value, Reason/Text.
        let code = text("/faultcode")
            .or_else(|| text("/soap:Code/soap:Value"))
            .or_else(|| {
                fault
                    .pointer("/soap:Code/soap:Value/#text")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let reason = text("/faultstring")
            .or_else(|| text("/soap:Reason/soap:Text"))
            .or_else(|| {
                fault
                    .pointer("/soap:Reason/soap:Text/#text")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let local = code.rsplit(':').next().unwrap_or_default();
        let permanent = matches!(
            local,
            "Client" | "Sender" | "VersionMismatch" | "MustUnderstand" | "DataEncodingUnknown"
        );
        Some(DeliveryError {
            retry: if permanent { Retry::Never } else { Retry::Backoff },
            class: "soap_fault",
            message: format!("SOAP fault {code}: {reason}"),
            http_status: Some(status),
            excerpt: Some(body.chars().take(512).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack() -> AckConfig {
        AckConfig {
            namespaces: [("nx".to_string(), "urn:n".to_string())].into(),
            ..AckConfig::default()
        }
    }

    #[test]
    fn xml_answers_are_read_with_the_configured_prefixes() {
        let tree = Answers::xml(&ack(), None)
            .read("<a:Ack xmlns:a=\"urn:n\"><a:Code>0000</a:Code><a:ReceiptId>R-1</a:ReceiptId></a:Ack>")
            .unwrap();
        assert_eq!(tree.pointer("/nx:Code"), Some(&Value::from("0000")));
        assert!(Answers::xml(&ack(), None).read("<!DOCTYPE x><x/>").is_none());
    }

    #[test]
    fn soap_envelopes_wrap_and_unwrap() {
        let cfg = SoapConfig {
            version: "1.1".into(),
            action: Some("urn:submit".into()),
        };
        let soap = Soap::new(&cfg);
        let wrapped = String::from_utf8(soap.wrap(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><nx:M xmlns:nx=\"urn:n\"/>")).unwrap();
        assert!(wrapped.contains("<soap:Body><nx:M xmlns:nx=\"urn:n\"/></soap:Body>"), "{wrapped}");
        assert_eq!(soap.action_header().as_deref(), Some("\"urn:submit\""));
        let answers = Answers::xml(&ack(), Some(&cfg));
        let ok = format!(
            "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><n:Ack xmlns:n=\"urn:n\"><n:Code>0000</n:Code></n:Ack></s:Body></s:Envelope>"
        );
        assert_eq!(answers.read(&ok).unwrap().pointer("/nx:Ack/nx:Code"), Some(&Value::from("0000")));
        assert!(answers.fault(200, &ok).is_none());
    }

    #[test]
    fn soap_faults_map_to_outcomes() {
        let v11 = SoapConfig {
            version: "1.1".into(),
            action: None,
        };
        let fault11 = |code: &str| {
            format!(
                "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><s:Fault><faultcode>s:{code}</faultcode><faultstring>bad</faultstring></s:Fault></s:Body></s:Envelope>"
            )
        };
        let a = Answers::xml(&ack(), Some(&v11));
        assert_eq!(a.fault(500, &fault11("Client")).unwrap().retry, Retry::Never);
        assert_eq!(a.fault(500, &fault11("Server")).unwrap().retry, Retry::Backoff);
        let v12 = SoapConfig {
            version: "1.2".into(),
            action: None,
        };
        let fault12 = |code: &str| {
            format!(
                "<e:Envelope xmlns:e=\"{SOAP12}\"><e:Body><e:Fault><e:Code><e:Value>e:{code}</e:Value></e:Code><e:Reason><e:Text xml:lang=\"zh\">格式错误</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"
            )
        };
        let a = Answers::xml(&ack(), Some(&v12));
        let e = a.fault(400, &fault12("Sender")).unwrap();
        assert_eq!((e.retry, e.class), (Retry::Never, "soap_fault"));
        assert!(e.message.contains("格式错误"), "{}", e.message);
        assert_eq!(a.fault(500, &fault12("Receiver")).unwrap().retry, Retry::Backoff);
    }
}

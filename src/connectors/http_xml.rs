//! `http_xml`: the HTTP connector for partners that speak XML. The body is
//! rendered by the destination's outbound mappings (XML, possibly in GBK);
//! the partner's answer is XML too, read with the same defensive reader as
//! inbound documents (no DOCTYPE, no entities, depth-limited), and the ack
//! rules' `body_field` / `receipt_field` point into its root element with
//! the prefixes of `ack.namespaces` (`/nx:Code`).

use serde_json::Value;

use crate::config::connector::AckConfig;
use crate::mapping::xml_in::{self, Prefixes};

/// How an answer is read for the ack rules.
#[derive(Clone, Debug)]
pub enum Answers {
    /// JSON answers (`http_json`).
    Json,
    /// XML answers with these namespace prefixes (`http_xml`).
    Xml(Prefixes),
}

impl Answers {
    /// The reading for a connector of this kind and ack rules.
    pub fn xml(ack: &AckConfig) -> Self {
        Answers::Xml(Prefixes::new(ack.namespaces.iter()))
    }

    /// The answer as a tree the ack pointers read; `None` when it cannot be
    /// read (the ack rules then find no code).
    pub fn read(&self, body: &str) -> Option<Value> {
        match self {
            Answers::Json => serde_json::from_str(body).ok(),
            Answers::Xml(prefixes) => xml_in::read(body.as_bytes(), prefixes).ok().map(|(_, tree)| tree),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_answers_are_read_with_the_configured_prefixes() {
        let ack = AckConfig {
            namespaces: [("nx".to_string(), "urn:n".to_string())].into(),
            ..AckConfig::default()
        };
        let tree = Answers::xml(&ack)
            .read("<a:Ack xmlns:a=\"urn:n\"><a:Code>0000</a:Code><a:ReceiptId>R-1</a:ReceiptId></a:Ack>")
            .unwrap();
        assert_eq!(tree.pointer("/nx:Code"), Some(&Value::from("0000")));
        assert!(Answers::xml(&ack).read("<!DOCTYPE x><x/>").is_none());
    }
}

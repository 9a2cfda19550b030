//! `[outbound.tls]`: the hub presents its client certificate to a partner
//! that requires one (mTLS) and trusts the partner's own CA; without the
//! certificate the handshake fails and the delivery is retried, not lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

use crate::support::{HubSpec, TestApp, samples};

struct Pki {
    ca_pem: String,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
    client_pem: String,
    client_key_pem: String,
    ca_der: CertificateDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "national test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params")
        .signed_by(&server_key, &issuer)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params.distinguished_name.push(DnType::CommonName, "wastehub-fj");
    let client = client_params.signed_by(&client_key, &issuer).expect("client cert");
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server: (
            server.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        ),
        client_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// An HTTPS server that requires a client certificate from `ca` and answers
/// every request 200; counts the requests that got through the handshake.
async fn mtls_partner(p: &Pki) -> (String, Arc<AtomicUsize>) {
    // The test server's own rustls picks a crypto provider explicitly (two
    // are compiled into the test binary); the hub's client brings its own.
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    roots.add(p.ca_der.clone()).expect("root");
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).build().expect("verifier");
    let mut cfg = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![p.server.0.clone()], p.server.1.clone_key())
        .expect("server config");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://127.0.0.1:{}/exchange", listener.local_addr().expect("addr").port());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                // Read the head and the body announced by Content-Length.
                loop {
                    let Ok(n) = tls.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, served)
}

#[tokio::test]
async fn the_hub_presents_its_client_certificate() {
    let p = pki();
    let (url, served) = mtls_partner(&p).await;
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let (cert, key, ca) = (
        write("client.pem", &p.client_pem),
        write("client.key", &p.client_key_pem),
        write("ca.pem", &p.ca_pem),
    );
    let spec = HubSpec::new()
        .destination(
            "with-cert",
            &url,
            "\"ledger-entry\"",
            &format!("[outbound.tls]\nclient_cert = \"{cert}\"\nclient_key = \"{key}\"\nca = \"{ca}\""),
        )
        .destination("without-cert", &url, "\"ledger-entry\"", &format!("[outbound.tls]\nca = \"{ca}\""));
    let app = TestApp::spawn(spec).await;
    let id = app.accept(&samples::ledger("tls-1")).await;
    assert!(app.wait_status(&id, "with-cert", "delivered", Duration::from_secs(10)).await);
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "only the connector with a certificate got through"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let trace = app.trace(&id).await;
    let without = trace["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .find(|d| d["destination"] == "without-cert")
        .cloned()
        .expect("delivery");
    assert_ne!(without["status"], "delivered", "{without}");
    assert_ne!(without["status"], "dead", "a refused handshake is retried: {without}");
    assert!(without["attempts"][0]["error_class"].as_str().is_some(), "{without}");
}

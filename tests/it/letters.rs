//! Letters between provinces: the committed test vectors (the format other
//! vendors implement, `docs/cross-province.md`) and the `wastehub letter` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use wastehub::letters::keys::PartnerKeys;
use wastehub::letters::sign::{letter_digest, sm2_e, sm2_z};
use wastehub::letters::{self, Algorithm, PrivateKey, PublicKey, canonical};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/letters")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn committed_vectors_verify_and_match_the_documented_values() {
    let dir = vectors();
    let expected: Value = serde_json::from_str(&read(&dir.join("vectors.json"))).expect("the committed test vectors and keys read");
    let sample: Value = serde_json::from_str(&read(&dir.join("sample-letter.json"))).expect("the committed test vectors and keys read");
    for alg in Algorithm::ALL {
        let id = alg.id();
        let want = &expected[id];
        assert!(want.is_object(), "vectors.json has no entry for {id}");
        let public = PublicKey::from_pem(&read(&dir.join(format!("{id}.pub.pem")))).expect("the committed test vectors and keys read");
        let private = PrivateKey::from_pem(&read(&dir.join(format!("{id}.key.pem")))).expect("the committed test vectors and keys read");
        assert_eq!(private.public(), &public, "{id}: key pair");
        assert_eq!(
            public.key_id(),
            want["key_id"].as_str().expect("the committed test vectors and keys read"),
            "{id}: key id"
        );
        let signed: Value =
            serde_json::from_str(&read(&dir.join(format!("{id}.signed.json")))).expect("the committed test vectors and keys read");
        // The signed letter is the sample plus the three attributes.
        let mut unsigned = signed.clone();
        for a in ["sigalg", "sigkeyid", "sigvalue"] {
            unsigned
                .as_object_mut()
                .expect("the committed test vectors and keys read")
                .remove(a);
        }
        assert_eq!(unsigned, sample, "{id}: signed letter differs from sample-letter.json");
        let canon = canonical::letter_bytes(&signed).expect("the committed test vectors and keys read");
        assert_eq!(
            String::from_utf8(canon.clone()).expect("the committed test vectors and keys read"),
            want["canonical"].as_str().expect("the committed test vectors and keys read"),
            "{id}: canonical"
        );
        let (dalg, digest) = letter_digest(alg, &canon);
        assert_eq!(
            dalg,
            want["digest_alg"].as_str().expect("the committed test vectors and keys read"),
            "{id}"
        );
        assert_eq!(
            digest,
            want["digest"].as_str().expect("the committed test vectors and keys read"),
            "{id}: digest"
        );
        let keys = PartnerKeys::new(vec![public.clone()]).expect("the committed test vectors and keys read");
        letters::verify_letter(&signed, &keys).unwrap_or_else(|e| panic!("{id}: {e}"));
        let sigvalue = signed["sigvalue"].as_str().expect("the committed test vectors and keys read");
        assert_eq!(
            sigvalue,
            want["sigvalue"].as_str().expect("the committed test vectors and keys read"),
            "{id}: vectors.json and the signed letter differ"
        );
        match alg {
            Algorithm::Ed25519 => {
                // Deterministic: signing again gives exactly the committed bytes.
                let again = letters::sign_letter(&sample, &private).expect("the committed test vectors and keys read");
                assert_eq!(
                    again["sigvalue"].as_str().expect("the committed test vectors and keys read"),
                    sigvalue,
                    "{id}: signature bytes"
                );
            }
            Algorithm::Sm2Sm3 => {
                assert_eq!(
                    hex::encode(sm2_z(public.raw()).expect("the committed test vectors and keys read")),
                    want["z"].as_str().expect("the committed test vectors and keys read"),
                    "{id}: Z"
                );
                assert_eq!(
                    hex::encode(sm2_e(public.raw(), &canon).expect("the committed test vectors and keys read")),
                    want["e"].as_str().expect("the committed test vectors and keys read"),
                    "{id}: e"
                );
            }
            Algorithm::EcdsaP256Sha256 => {}
        }
        // Flipping one bit anywhere in the signature is refused.
        let mut sig = base64::engine::general_purpose::STANDARD
            .decode(sigvalue)
            .expect("the committed test vectors and keys read");
        sig[10] ^= 1;
        let mut t = signed.clone();
        t["sigvalue"] = Value::String(base64::engine::general_purpose::STANDARD.encode(sig));
        assert!(letters::verify_letter(&t, &keys).is_err(), "{id}");
    }
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wastehub"))
        .args(args)
        .output()
        .expect("run wastehub")
}

#[test]
fn cli_keygen_sign_verify_and_refusals() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("keys");
    let sample = vectors().join("sample-letter.json");
    for alg in ["sm2-sm3", "ed25519", "ecdsa-p256-sha256"] {
        let o = cli(&[
            "letter",
            "keygen",
            "--alg",
            alg,
            "--out",
            out.to_str().expect("the committed test vectors and keys read"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let id = String::from_utf8(o.stdout)
            .expect("the committed test vectors and keys read")
            .trim()
            .to_string();
        assert_eq!(id.len(), 16);
        let private = out.join(format!("{id}.key.pem"));
        let public = out.join(format!("{id}.pub.pem"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&private)
                    .expect("the committed test vectors and keys read")
                    .permissions()
                    .mode()
                    & 0o777,
                0o600
            );
        }
        let o = cli(&[
            "letter",
            "sign",
            "--key",
            private.to_str().expect("the committed test vectors and keys read"),
            "--in",
            sample.to_str().expect("the committed test vectors and keys read"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let signed = tmp.path().join(format!("{alg}.json"));
        std::fs::write(&signed, &o.stdout).expect("the committed test vectors and keys read");
        let o = cli(&[
            "letter",
            "verify",
            "--pub",
            public.to_str().expect("the committed test vectors and keys read"),
            "--in",
            signed.to_str().expect("the committed test vectors and keys read"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("valid: signed with {alg} key {id}")));

        // Tampered letter.
        let mut v: Value = serde_json::from_slice(&std::fs::read(&signed).expect("the committed test vectors and keys read"))
            .expect("the committed test vectors and keys read");
        v["data"]["quantity"] = Value::String("99".into());
        let tampered = tmp.path().join(format!("{alg}-tampered.json"));
        std::fs::write(&tampered, v.to_string()).expect("the committed test vectors and keys read");
        let o = cli(&[
            "letter",
            "verify",
            "--pub",
            public.to_str().expect("the committed test vectors and keys read"),
            "--in",
            tampered.to_str().expect("the committed test vectors and keys read"),
        ]);
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("signature does not verify"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );

        // A public key given where a private key is expected.
        let o = cli(&[
            "letter",
            "sign",
            "--key",
            public.to_str().expect("the committed test vectors and keys read"),
            "--in",
            sample.to_str().expect("the committed test vectors and keys read"),
        ]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("expected a `-----BEGIN PRIVATE KEY-----` block"));
    }
    // Another partner's key: unknown key id.
    let other = vectors().join("ed25519.pub.pem");
    let signed = tmp.path().join("sm2-sm3.json");
    let o = cli(&[
        "letter",
        "verify",
        "--pub",
        other.to_str().expect("the committed test vectors and keys read"),
        "--in",
        signed.to_str().expect("the committed test vectors and keys read"),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown key id"));
    // Missing key file.
    let o = cli(&[
        "letter",
        "verify",
        "--pub",
        "/nonexistent.pem",
        "--in",
        signed.to_str().expect("the committed test vectors and keys read"),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.pem"));
}

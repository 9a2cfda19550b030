//! `wastehub letter`: make letter keys, sign a letter, verify a signed one
//! (the format is in `docs/cross-province.md`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::letters::keys::{PartnerKeys, pem_encode};
use crate::letters::{self, Algorithm, PrivateKey, PublicKey};

/// `wastehub letter ...`.
#[derive(Args, Debug)]
pub struct LetterArgs {
    #[command(subcommand)]
    command: LetterCommand,
}

#[derive(Subcommand, Debug)]
enum LetterCommand {
    /// Make a key pair: PRIVATE KEY (PKCS#8 PEM, mode 0600) and PUBLIC KEY (SPKI PEM); prints the key id.
    Keygen {
        /// Signature algorithm.
        #[arg(long, value_enum)]
        alg: AlgArg,
        /// Directory to write `<keyid>.key.pem` and `<keyid>.pub.pem` into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a letter (a CloudEvent JSON file); prints the signed letter.
    Sign {
        /// Private key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// The letter.
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Verify a signed letter against one or more public keys (repeat --pub during a key rotation).
    Verify {
        /// Public key(s) (SPKI PEM).
        #[arg(long = "pub", required = true)]
        public: Vec<PathBuf>,
        /// The signed letter.
        #[arg(long = "in")]
        input: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AlgArg {
    #[value(name = "sm2-sm3")]
    Sm2Sm3,
    #[value(name = "ed25519")]
    Ed25519,
    #[value(name = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
}

impl From<AlgArg> for Algorithm {
    fn from(a: AlgArg) -> Self {
        match a {
            AlgArg::Sm2Sm3 => Algorithm::Sm2Sm3,
            AlgArg::Ed25519 => Algorithm::Ed25519,
            AlgArg::EcdsaP256Sha256 => Algorithm::EcdsaP256Sha256,
        }
    }
}

/// Runs a `letter` command.
pub fn run(args: LetterArgs) -> anyhow::Result<()> {
    match args.command {
        LetterCommand::Keygen { alg, out } => keygen(alg.into(), &out),
        LetterCommand::Sign { key, input } => {
            let key = PrivateKey::from_pem(&read_limited(&key, letters::keys::MAX_PEM_BYTES)?)
                .with_context(|| format!("reading private key {}", key.display()))?;
            let letter = letters::parse_letter(read_limited(&input, letters::MAX_LETTER_BYTES)?.as_bytes())
                .with_context(|| format!("reading {}", input.display()))?;
            let signed = letters::sign_letter(&letter, &key)?;
            println!("{}", serde_json::to_string_pretty(&signed)?);
            Ok(())
        }
        LetterCommand::Verify { public, input } => {
            let mut keys = PartnerKeys::default();
            for p in &public {
                let k = PublicKey::from_pem(&read_limited(p, letters::keys::MAX_PEM_BYTES)?)
                    .with_context(|| format!("reading public key {}", p.display()))?;
                keys.add(k)?;
            }
            let letter = letters::parse_letter(read_limited(&input, letters::MAX_LETTER_BYTES)?.as_bytes())
                .with_context(|| format!("reading {}", input.display()))?;
            let key = letters::verify_letter(&letter, &keys).with_context(|| format!("{} is refused", input.display()))?;
            println!("valid: signed with {} key {}", key.algorithm(), key.key_id());
            Ok(())
        }
    }
}

fn keygen(alg: Algorithm, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (key, der) = PrivateKey::generate(alg)?;
    let id = key.public().key_id().to_string();
    let private = out.join(format!("{id}.key.pem"));
    let public = out.join(format!("{id}.pub.pem"));
    write_private(&private, &pem_encode("PRIVATE KEY", &der))?;
    std::fs::write(&public, key.public().to_pem()).with_context(|| format!("writing {}", public.display()))?;
    println!("{id}");
    eprintln!(
        "{alg} key {id}: private {} (keep secret), public {}",
        private.display(),
        public.display()
    );
    Ok(())
}

/// Writes a private key readable by the owner only, refusing to overwrite.
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(pem.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_limited(path: &Path, max: usize) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > max as u64 {
        anyhow::bail!("{} is larger than {max} bytes", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

//! `udpchat-keygen`: makes SECP384R1 (P-384) key pairs as PEM files, and
//! prints the fingerprint of a public key.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;
use udpchat_core::crypto::keyfile;
use udpchat_core::crypto::keys::StaticKey;

/// Makes SECP384R1 (P-384) key pairs for udpchat.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Makes SECP384R1 (P-384) key pairs for udpchat, as PEM files.",
    after_help = "Examples:\n  udpchat-keygen -g server                   # server.priv (0600) and server.pub here\n  udpchat-keygen -g server --out-dir /etc/udpchat --force\n  udpchat-keygen --fingerprint server.pub    # SHA256:... to compare out of band",
    group(clap::ArgGroup::new("action").required(true).args(["generate", "fingerprint"]))
)]
struct Cli {
    /// Make a key pair named NAME: NAME.priv (PKCS#8 PEM, mode 0600) and
    /// NAME.pub (SPKI PEM).
    #[arg(short = 'g', long = "generate", value_name = "NAME")]
    generate: Option<String>,
    /// Where to write the key pair.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    /// Overwrite an existing key pair.
    #[arg(long)]
    force: bool,
    /// Print the fingerprint of a public (or private) key file.
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    fingerprint: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(path) = cli.fingerprint {
        // A private key file is accepted too: its public half is printed.
        let key = match keyfile::read_public(&path) {
            Ok(key) => key,
            Err(public_error) => keyfile::read_private(&path)
                .map(|k| k.public())
                .map_err(|_| public_error)?,
        };
        println!("{}", key.fingerprint());
        return Ok(());
    }
    let name = cli
        .generate
        .expect("clap requires --generate or --fingerprint");
    std::fs::create_dir_all(&cli.out_dir)?;
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    let (private, public) = keyfile::write_key_pair(&cli.out_dir, &name, &key, cli.force)?;
    // The public half is made to be handed out: anyone may read it.
    #[cfg(unix)]
    std::fs::set_permissions(&public, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    println!(
        "wrote {} (keep it secret) and {}",
        private.display(),
        public.display()
    );
    println!("fingerprint {}", key.public().fingerprint());
    Ok(())
}

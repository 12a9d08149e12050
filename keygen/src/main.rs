//! `udpchat-keygen`: makes SECP384R1 key pairs as PEM files.
//!
//! Key generation arrives with the security issue; until then this binary
//! says so plainly instead of pretending.
#![forbid(unsafe_code)]

use clap::Parser;

/// Makes SECP384R1 (P-384) key pairs for udpchat.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Make a key pair named NAME (NAME.priv and NAME.pub).
    #[arg(short = 'g', long = "generate", value_name = "NAME")]
    generate: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "key generation is not implemented yet: udpchat traffic is plaintext in this version"
    )
}

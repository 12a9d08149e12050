//! The server's long-term key: loaded from `--key` or the data dir, made
//! there on first start.

use std::path::Path;

use anyhow::Context as _;
use udpchat_core::crypto::keyfile;
use udpchat_core::crypto::keys::StaticKey;

/// The key's file name in the data dir (`server.priv`, `server.pub`).
const NAME: &str = "server";

pub fn load_or_create(data_dir: &Path, key: Option<&Path>) -> anyhow::Result<StaticKey> {
    let (private, public) = keyfile::key_paths(data_dir, NAME);
    let path = key.unwrap_or(&private);
    let key = if key.is_some() || path.exists() {
        if let Some(warning) = keyfile::check_private_mode(path) {
            eprintln!("warning: {warning}");
        }
        keyfile::read_private(path)?
    } else {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let key = StaticKey::generate(&mut rand::rngs::OsRng);
        keyfile::write_key_pair(data_dir, NAME, &key, false)?;
        println!(
            "udpchat-server made a new key: give clients {} (--server-key)",
            public.display()
        );
        key
    };
    println!(
        "udpchat-server key fingerprint {}",
        key.public().fingerprint()
    );
    Ok(key)
}

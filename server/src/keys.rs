//! The server's long-term key: loaded from `--key` or the data dir, made
//! there on first start.

use std::path::Path;

use anyhow::Context as _;
use udpchat_core::crypto::keyfile;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::private_files;

/// The key's file name in the data dir (`server.priv`, `server.pub`).
const NAME: &str = "server";

/// The data dir is made (or kept) 0700 first, and key files in it 0600
/// (see `udpchat_core::private_files`); a `--key` elsewhere is only checked.
pub fn load_or_create(data_dir: &Path, key: Option<&Path>) -> anyhow::Result<StaticKey> {
    private_files::dir(data_dir)
        .with_context(|| format!("cannot make {} private", data_dir.display()))?;
    let (private, public) = keyfile::key_paths(data_dir, NAME);
    if key.is_none() {
        for path in [&private, &public] {
            private_files::tighten(path)
                .with_context(|| format!("cannot make {} private", path.display()))?;
        }
    }
    let path = key.unwrap_or(&private);
    let key = if key.is_some() || path.exists() {
        if let Some(warning) = keyfile::check_private_mode(path) {
            eprintln!("warning: {warning}");
        }
        keyfile::read_private(path)?
    } else {
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

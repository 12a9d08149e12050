//! Key files on disk: `NAME.priv` (PKCS#8 PEM) and `NAME.pub` (SPKI PEM),
//! both 0600 (see [`crate::private_files`]; a program that hands the public
//! half out, as `udpchat-keygen` does, opens it up itself).
//!
//! The private file is created with mode 0600 by `open(2)` itself, so the
//! secret is never on disk with wider permissions, not even briefly; with
//! `force`, an existing file is removed first rather than rewritten in place
//! (so its old mode, or a symlink in its place, is never reused).
//!
//! Reading a private key that group or others can read still works (ssh
//! refuses; we only warn): [`check_private_mode`] returns the warning for the
//! caller to print.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::keys::{KeyError, PublicKey, StaticKey};

/// A key file could not be written or read. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Unwritable { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: KeyError },
    #[error("`{name}` is not a usable key name (use letters, digits, `-`, `_` or `.`, not starting with `.`)")]
    BadName { name: String },
}

/// The paths `write_key_pair` uses for `name` in `dir`: (private, public).
pub fn key_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.priv")),
        dir.join(format!("{name}.pub")),
    )
}

/// Writes `NAME.priv` and `NAME.pub` in `dir` and returns their paths
/// (private, public). Without `force`, refuses if either exists.
pub fn write_key_pair(
    dir: &Path,
    name: &str,
    key: &StaticKey,
    force: bool,
) -> Result<(PathBuf, PathBuf), KeyFileError> {
    let valid_name = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_name {
        return Err(KeyFileError::BadName {
            name: name.to_string(),
        });
    }
    let (private_path, public_path) = key_paths(dir, name);
    if !force {
        for path in [&private_path, &public_path] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(KeyFileError::Exists { path: path.clone() });
            }
        }
    }
    let private_pem = key.to_pkcs8_pem();
    write_new(&private_path, private_pem.as_bytes(), force)?;
    if let Err(e) = write_new(&public_path, key.public().to_spki_pem().as_bytes(), force) {
        // Without its public half a fresh private key is only clutter that
        // would make the next try refuse.
        if !force {
            let _ = fs::remove_file(&private_path);
        }
        return Err(e);
    }
    Ok((private_path, public_path))
}

/// Creates `path`, 0600, and writes `contents`.
fn write_new(path: &Path, contents: &[u8], force: bool) -> Result<(), KeyFileError> {
    let unwritable = |source| KeyFileError::Unwritable {
        path: path.to_path_buf(),
        source,
    };
    if force {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(unwritable(e)),
            _ => {}
        }
    }
    crate::private_files::create_new(path, contents).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            unwritable(e)
        }
    })
}

/// Reads a private key file (PKCS#8 or SEC1 PEM, P-384).
pub fn read_private(path: &Path) -> Result<StaticKey, KeyFileError> {
    let text = read_text(path)?;
    StaticKey::from_pkcs8_pem(&text).map_err(|source| KeyFileError::Key {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a public key file (SPKI PEM, P-384).
pub fn read_public(path: &Path) -> Result<PublicKey, KeyFileError> {
    let text = read_text(path)?;
    PublicKey::from_spki_pem(&text).map_err(|source| KeyFileError::Key {
        path: path.to_path_buf(),
        source,
    })
}

/// Key files are a few hundred bytes; anything much larger is not one.
const MAX_KEY_FILE: u64 = 64 * 1024;

fn read_text(path: &Path) -> Result<zeroize::Zeroizing<String>, KeyFileError> {
    use std::io::Read;
    let unreadable = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            KeyFileError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            KeyFileError::Unreadable {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let file = fs::File::open(path).map_err(unreadable)?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    let not_a_key = || KeyFileError::Key {
        path: path.to_path_buf(),
        source: KeyError::NotPem,
    };
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(not_a_key());
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(zeroize::Zeroizing::new(text.to_string())),
        Err(_) => Err(not_a_key()),
    }
}

/// A warning to show when the private key file at `path` can be read by
/// group or others, `None` when its mode is private (or it cannot be
/// inspected: reading it reports that).
pub fn check_private_mode(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "{} can be read by other users (mode {mode:04o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::tests::{key, P256_PUBLIC_PEM};

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_a_private_file_only_its_owner_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(11);
        let (private, public) = write_key_pair(dir.path(), "server", &k, false).unwrap();
        assert_eq!(private, dir.path().join("server.priv"));
        assert_eq!(public, dir.path().join("server.pub"));
        #[cfg(unix)]
        {
            assert_eq!(mode(&private), 0o600);
            assert_eq!(mode(&public), 0o600);
        }
        assert_eq!(read_private(&private).unwrap().public(), k.public());
        assert_eq!(read_public(&public).unwrap(), k.public());
        assert_eq!(check_private_mode(&private), None);
    }

    #[test]
    fn refuses_to_overwrite_without_force_and_overwrites_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = key(12);
        write_key_pair(dir.path(), "alice", &first, false).unwrap();
        let err = write_key_pair(dir.path(), "alice", &key(13), false).unwrap_err();
        assert!(matches!(err, KeyFileError::Exists { .. }), "{err:?}");
        assert!(err.to_string().contains("alice.priv"), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        // The refused write left the first key in place.
        let private = dir.path().join("alice.priv");
        assert_eq!(read_private(&private).unwrap().public(), first.public());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Even a world-readable old file is replaced by a 0600 one.
            fs::set_permissions(&private, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let second = key(14);
        write_key_pair(dir.path(), "alice", &second, true).unwrap();
        assert_eq!(read_private(&private).unwrap().public(), second.public());
        #[cfg(unix)]
        assert_eq!(mode(&private), 0o600);
    }

    #[test]
    fn refuses_when_only_the_public_half_exists() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bob.pub"), "x").unwrap();
        let err = write_key_pair(dir.path(), "bob", &key(15), false).unwrap_err();
        assert!(err.to_string().contains("bob.pub"), "{err}");
        assert!(!dir.path().join("bob.priv").exists());
    }

    #[test]
    fn refuses_names_that_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "../x", "a/b", ".hidden"] {
            let err = write_key_pair(dir.path(), name, &key(16), false).unwrap_err();
            assert!(
                matches!(err, KeyFileError::BadName { .. }),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn read_errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pub");
        let err = read_public(&missing).unwrap_err();
        assert!(matches!(err, KeyFileError::Missing { .. }));
        assert_eq!(
            err.to_string(),
            format!("{} does not exist", missing.display())
        );

        let p256 = dir.path().join("server.pub");
        fs::write(&p256, P256_PUBLIC_PEM).unwrap();
        let err = read_public(&p256).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: this is a P-256 (prime256v1) key; udpchat needs P-384 (SECP384R1)",
                p256.display()
            )
        );

        let directory = read_private(dir.path()).unwrap_err();
        assert!(
            matches!(directory, KeyFileError::Unreadable { .. }),
            "{directory:?}"
        );

        let huge = dir.path().join("huge.pub");
        fs::write(&huge, vec![b'A'; 100_000]).unwrap();
        assert!(read_public(&huge)
            .unwrap_err()
            .to_string()
            .contains("not a PEM key"));

        let garbage = dir.path().join("garbage.priv");
        fs::write(&garbage, [0xff, 0xfe, 0x00]).unwrap();
        let err = read_private(&garbage).unwrap_err();
        assert!(
            err.to_string()
                .contains("garbage.priv: this is not a PEM key"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_private_key_is_accepted_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = write_key_pair(dir.path(), "loose", &key(17), false).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_private(&private).is_ok());
        let warning = check_private_mode(&private).unwrap();
        assert!(warning.contains("mode 0644"), "{warning}");
        assert!(warning.contains("chmod 600"), "{warning}");
    }
}

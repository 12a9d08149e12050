//! What this client trusts, kept in its data dir like ssh's known_hosts:
//!
//! - `known_servers`: one line per server address, `ADDR KEY` (the key as
//!   unpadded base64 of its 49-byte SEC1 form). A server is trusted on
//!   first use unless `--server-key` pins its key; a server whose key later
//!   differs is refused, naming both fingerprints.
//! - `users/NAME/identity.priv` (0600) and `.pub`: the user's identity key
//!   for end-to-end sessions with other clients.
//! - `users/NAME/known_users`: `USER KEY` lines, the identity keys this
//!   user has seen for others; a change is reported loudly.
//! - `users/NAME/prekeys.pem` (0600): the secret halves of the prekeys
//!   others seal offline messages to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use udpchat_core::crypto::keyfile;
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::crypto::sealed::Prekeys;
use udpchat_core::error::{code, CommandError};

/// A file of `NAME KEY` lines.
struct KeyBook {
    path: PathBuf,
    entries: BTreeMap<String, PublicKey>,
}

impl KeyBook {
    fn open(path: PathBuf) -> KeyBook {
        let mut entries = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                let mut words = line.split_whitespace();
                let (Some(name), Some(key)) = (words.next(), words.next()) else {
                    continue;
                };
                let key = STANDARD_NO_PAD
                    .decode(key)
                    .ok()
                    .and_then(|b| PublicKey::from_bytes(&b).ok());
                if let Some(key) = key {
                    entries.insert(name.to_string(), key);
                }
            }
        }
        KeyBook { path, entries }
    }

    fn get(&self, name: &str) -> Option<&PublicKey> {
        self.entries.get(name)
    }

    fn set(&mut self, name: &str, key: &PublicKey) -> Result<(), CommandError> {
        self.entries.insert(name.to_string(), key.clone());
        let text: String = self
            .entries
            .iter()
            .map(|(name, key)| format!("{name} {}\n", STANDARD_NO_PAD.encode(key.to_bytes())))
            .collect();
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        std::fs::write(&self.path, text).map_err(|e| io_error(&self.path, e))
    }
}

fn io_error(path: &Path, e: std::io::Error) -> CommandError {
    CommandError::new(
        code::INTERNAL,
        format!("cannot write {}: {e}", path.display()),
    )
}

/// What a server's offered key means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// The key expected (pinned or recorded before).
    Known,
    /// First contact: recorded now.
    FirstUse,
}

/// Decides whether to trust the key a server presents: the pinned one if
/// given, else the one recorded on first use.
pub fn check_server(
    data_dir: &Path,
    addr: SocketAddr,
    pinned: Option<&PublicKey>,
    offered: &PublicKey,
) -> Result<ServerTrust, CommandError> {
    let mut book = KeyBook::open(data_dir.join("known_servers"));
    let expected = pinned.or_else(|| book.get(&addr.to_string()));
    match expected {
        Some(expected) if expected == offered => Ok(ServerTrust::Known),
        Some(expected) => Err(CommandError::new(
            code::SERVER_KEY_CHANGED,
            format!(
                "REFUSING the server at {addr}: it presents key {}, but {} is {}; if its key really changed, {}",
                offered.fingerprint(),
                expected.fingerprint(),
                if pinned.is_some() { "the key given with --server-key" } else { "the key recorded for it" },
                if pinned.is_some() {
                    "give the new key with --server-key".to_string()
                } else {
                    format!("remove its line from {}", data_dir.join("known_servers").display())
                },
            ),
        )),
        None => {
            book.set(&addr.to_string(), offered)?;
            Ok(ServerTrust::FirstUse)
        }
    }
}

/// The directory of one user's keys.
fn user_dir(data_dir: &Path, user: &str) -> PathBuf {
    data_dir.join("users").join(user)
}

/// The user's identity key, made (0600) if missing and `create`.
pub fn identity(data_dir: &Path, user: &str, create: bool) -> Result<StaticKey, CommandError> {
    let dir = user_dir(data_dir, user);
    let (private, _) = keyfile::key_paths(&dir, "identity");
    if private.exists() {
        return keyfile::read_private(&private)
            .map_err(|e| CommandError::new(code::INTERNAL, e.to_string()));
    }
    if !create {
        return Err(CommandError::new(
            code::INTERNAL,
            format!("no identity key for {user} in {}", dir.display()),
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    keyfile::write_key_pair(&dir, "identity", &key, false)
        .map_err(|e| CommandError::new(code::INTERNAL, e.to_string()))?;
    Ok(key)
}

/// What a user's identity key means to `me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerTrust {
    Known,
    FirstSeen,
    /// The key differs from the one seen before (the new one is recorded).
    Changed {
        was: String,
        now: String,
    },
}

/// Whether `key` is the one recorded for `user`.
/// The identity keys one user has seen for others, read once and kept in
/// memory (a message from a known sender then costs no disk read).
pub struct KnownUsers {
    me: String,
    book: KeyBook,
}

impl KnownUsers {
    pub fn open(data_dir: &Path, me: &str) -> KnownUsers {
        KnownUsers {
            me: me.to_string(),
            book: KeyBook::open(user_dir(data_dir, me).join("known_users")),
        }
    }

    /// Whose book this is.
    pub fn owner(&self) -> &str {
        &self.me
    }

    /// Whether `key` is the one recorded for `user`.
    pub fn is_known(&self, user: &str, key: &PublicKey) -> bool {
        self.book.get(user) == Some(key)
    }

    /// Compares `key` with the one recorded for `user`, recording it.
    pub fn check(&mut self, user: &str, key: &PublicKey) -> PeerTrust {
        let verdict = match self.book.get(user) {
            Some(known) if known == key => return PeerTrust::Known,
            Some(known) => PeerTrust::Changed {
                was: known.fingerprint(),
                now: key.fingerprint(),
            },
            None => PeerTrust::FirstSeen,
        };
        if let Err(e) = self.book.set(user, key) {
            tracing::warn!("{}", e.message);
        }
        verdict
    }
}

/// The user's prekeys (secret halves), `users/NAME/prekeys.pem`, 0600.
pub fn load_prekeys(data_dir: &Path, user: &str) -> Result<Option<Prekeys>, CommandError> {
    let path = user_dir(data_dir, user).join("prekeys.pem");
    match std::fs::read_to_string(&path) {
        Ok(text) => Prekeys::from_pem(&text)
            .map(Some)
            .map_err(|e| CommandError::new(code::INTERNAL, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CommandError::new(
            code::INTERNAL,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Writes the prekeys, replacing the file atomically and never leaving it
/// readable by others.
pub fn save_prekeys(data_dir: &Path, user: &str, prekeys: &Prekeys) -> Result<(), CommandError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = user_dir(data_dir, user);
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let path = dir.join("prekeys.pem");
    let temp = dir.join("prekeys.pem.new");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io_error(&temp, e))?;
    file.write_all(prekeys.to_pem().as_bytes())
        .map_err(|e| io_error(&temp, e))?;
    file.sync_all().map_err(|e| io_error(&temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| io_error(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u64) -> PublicKey {
        use rand::SeedableRng;
        StaticKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed)).public()
    }

    #[test]
    fn a_server_is_trusted_on_first_use_and_refused_when_its_key_changes() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:4590".parse().unwrap();
        assert_eq!(
            check_server(dir.path(), addr, None, &key(1)),
            Ok(ServerTrust::FirstUse)
        );
        assert_eq!(
            check_server(dir.path(), addr, None, &key(1)),
            Ok(ServerTrust::Known)
        );
        let refusal = check_server(dir.path(), addr, None, &key(2)).unwrap_err();
        assert_eq!(refusal.code, code::SERVER_KEY_CHANGED);
        assert!(
            refusal.message.contains(&key(1).fingerprint())
                && refusal.message.contains(&key(2).fingerprint())
        );
        // A pinned key wins over what was recorded.
        assert_eq!(
            check_server(dir.path(), addr, Some(&key(2)), &key(2)),
            Ok(ServerTrust::Known)
        );
    }

    #[test]
    fn a_changed_identity_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            KnownUsers::open(dir.path(), "alice").check("bob", &key(1)),
            PeerTrust::FirstSeen
        );
        assert_eq!(
            KnownUsers::open(dir.path(), "alice").check("bob", &key(1)),
            PeerTrust::Known
        );
        assert!(matches!(
            KnownUsers::open(dir.path(), "alice").check("bob", &key(2)),
            PeerTrust::Changed { .. }
        ));
        assert_eq!(
            KnownUsers::open(dir.path(), "alice").check("bob", &key(2)),
            PeerTrust::Known
        );
    }

    #[test]
    fn identity_keys_are_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(identity(dir.path(), "alice", false).is_err());
        let made = identity(dir.path(), "alice", true).unwrap();
        let again = identity(dir.path(), "alice", false).unwrap();
        assert_eq!(made.public(), again.public());
        let mode = std::fs::metadata(dir.path().join("users/alice/identity.priv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

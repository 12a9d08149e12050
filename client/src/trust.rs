//! What this client trusts, kept in its data dir like ssh's known_hosts:
//!
//! - `known_servers`: one line per server address, `ADDR KEY` (the key as
//!   unpadded base64 of its 49-byte SEC1 form). A server is trusted on
//!   first use unless `--server-key` pins its key; a server whose key later
//!   differs is refused, naming both fingerprints.
//! - `users/NAME/identity.priv` and `.pub`: the user's identity key
//!   for end-to-end sessions with other clients.
//! - `users/NAME/known_users`: `USER KEY` lines, the identity keys this
//!   user has seen for others; a change is reported loudly.
//! - `users/NAME/prekeys.pem` (0600): the secret halves of the prekeys
//!   others seal offline messages to.
//!
//! Every one of these files is 0600 and every directory 0700 (see
//! `udpchat_core::private_files`): who one talks to is nobody else's
//! business. A file an older version left open is closed when next used.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use udpchat_core::crypto::keyfile;
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::crypto::sealed::Prekeys;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::private_files;

/// A file of `NAME KEY` lines.
struct KeyBook {
    path: PathBuf,
    entries: BTreeMap<String, PublicKey>,
}

impl KeyBook {
    fn open(path: PathBuf) -> KeyBook {
        if let Err(e) = private_files::tighten(&path) {
            tracing::warn!("cannot make {} private: {e}", path.display());
        }
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
            private_files::dir(dir).map_err(|e| io_error(dir, e))?;
        }
        private_files::replace(&self.path, text.as_bytes()).map_err(|e| io_error(&self.path, e))
    }
}

fn io_error(path: &Path, e: std::io::Error) -> CommandError {
    CommandError::new(
        Code::Internal,
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

/// The key the server at `addr` must have, if one is known: the pinned one
/// if given, else the one recorded on first use for it, else the one
/// recorded for another server of the same deployment (`also`: the nodes
/// of one deployment share one key). With one, the client need not ask
/// the server for its key.
pub fn known_server(
    data_dir: &Path,
    addr: SocketAddr,
    also: &[SocketAddr],
    pinned: Option<&PublicKey>,
) -> Option<PublicKey> {
    pinned.cloned().or_else(|| {
        let book = KeyBook::open(data_dir.join("known_servers"));
        std::iter::once(&addr)
            .chain(also)
            .find_map(|a| book.get(&a.to_string()).cloned())
    })
}

/// Decides whether to trust the key a server presents: the one known (see
/// [`known_server`]); with none, the one offered, recorded on first use.
pub fn check_server(
    data_dir: &Path,
    addr: SocketAddr,
    also: &[SocketAddr],
    pinned: Option<&PublicKey>,
    offered: &PublicKey,
) -> Result<ServerTrust, CommandError> {
    match known_server(data_dir, addr, also, pinned) {
        Some(expected) if &expected == offered => Ok(ServerTrust::Known),
        Some(expected) => Err(CommandError::new(
            Code::ServerKeyChanged,
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
            KeyBook::open(data_dir.join("known_servers")).set(&addr.to_string(), offered)?;
            Ok(ServerTrust::FirstUse)
        }
    }
}

/// The directory of one user's keys.
fn user_dir(data_dir: &Path, user: &str) -> PathBuf {
    data_dir.join("users").join(user)
}

/// The directory of one user's keys, made (0700, as is `users` above it)
/// if missing, closed if it was open.
pub(crate) fn make_user_dir(data_dir: &Path, user: &str) -> Result<PathBuf, CommandError> {
    let dir = user_dir(data_dir, user);
    for made in [data_dir.join("users"), dir.clone()] {
        private_files::dir(&made).map_err(|e| io_error(&made, e))?;
    }
    Ok(dir)
}

/// The user's identity key, made if missing and `create`.
pub fn identity(data_dir: &Path, user: &str, create: bool) -> Result<StaticKey, CommandError> {
    let dir = user_dir(data_dir, user);
    let (private, public) = keyfile::key_paths(&dir, "identity");
    if private.exists() {
        make_user_dir(data_dir, user)?;
        for path in [&private, &public] {
            private_files::tighten(path).map_err(|e| io_error(path, e))?;
        }
        return keyfile::read_private(&private)
            .map_err(|e| CommandError::new(Code::Internal, e.to_string()));
    }
    if !create {
        return Err(CommandError::new(
            Code::Internal,
            format!("no identity key for {user} in {}", dir.display()),
        ));
    }
    make_user_dir(data_dir, user)?;
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    keyfile::write_key_pair(&dir, "identity", &key, false)
        .map_err(|e| CommandError::new(Code::Internal, e.to_string()))?;
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

/// The user's prekeys (secret halves), `users/NAME/prekeys.pem`.
pub fn load_prekeys(data_dir: &Path, user: &str) -> Result<Option<Prekeys>, CommandError> {
    let path = user_dir(data_dir, user).join("prekeys.pem");
    private_files::tighten(&path).map_err(|e| io_error(&path, e))?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Prekeys::from_pem(&text)
            .map(Some)
            .map_err(|e| CommandError::new(Code::Internal, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CommandError::new(
            Code::Internal,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Writes the prekeys, replacing the file atomically (see
/// `private_files::replace`).
pub fn save_prekeys(data_dir: &Path, user: &str, prekeys: &Prekeys) -> Result<(), CommandError> {
    let path = make_user_dir(data_dir, user)?.join("prekeys.pem");
    private_files::replace(&path, prekeys.to_pem().as_bytes()).map_err(|e| io_error(&path, e))
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
            check_server(dir.path(), addr, &[], None, &key(1)),
            Ok(ServerTrust::FirstUse)
        );
        assert_eq!(
            check_server(dir.path(), addr, &[], None, &key(1)),
            Ok(ServerTrust::Known)
        );
        let refusal = check_server(dir.path(), addr, &[], None, &key(2)).unwrap_err();
        assert_eq!(refusal.code, Code::ServerKeyChanged);
        assert!(
            refusal.message.contains(&key(1).fingerprint())
                && refusal.message.contains(&key(2).fingerprint())
        );
        // A pinned key wins over what was recorded.
        assert_eq!(
            check_server(dir.path(), addr, &[], Some(&key(2)), &key(2)),
            Ok(ServerTrust::Known)
        );
    }

    #[test]
    fn a_servers_key_is_known_when_pinned_or_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:4590".parse().unwrap();
        let elsewhere: SocketAddr = "127.0.0.1:4591".parse().unwrap();
        assert_eq!(known_server(dir.path(), addr, &[], None), None);
        assert_eq!(
            known_server(dir.path(), addr, &[], Some(&key(2))),
            Some(key(2))
        );
        check_server(dir.path(), addr, &[], None, &key(1)).unwrap();
        assert_eq!(known_server(dir.path(), addr, &[], None), Some(key(1)));
        assert_eq!(
            known_server(dir.path(), addr, &[], Some(&key(2))),
            Some(key(2))
        );
        assert_eq!(known_server(dir.path(), elsewhere, &[], None), None);
        // Another server of the same deployment shares its key.
        assert_eq!(
            known_server(dir.path(), elsewhere, &[addr], None),
            Some(key(1))
        );
        assert_eq!(
            check_server(dir.path(), elsewhere, &[addr], None, &key(1)),
            Ok(ServerTrust::Known)
        );
        assert_eq!(
            check_server(dir.path(), elsewhere, &[addr], None, &key(3))
                .unwrap_err()
                .code,
            Code::ServerKeyChanged,
            "a node with another key is refused"
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
    fn every_file_is_owner_only_and_every_dir_too() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("client");
        let addr: SocketAddr = "127.0.0.1:4590".parse().unwrap();
        check_server(&data, addr, &[], None, &key(1)).unwrap();
        let me = identity(&data, "alice", true).unwrap();
        KnownUsers::open(&data, "alice").check("bob", &key(2));
        let prekeys = Prekeys::generate(&mut rand::rngs::OsRng, &me, 1);
        save_prekeys(&data, "alice", &prekeys).unwrap();

        let mut found = Vec::new();
        let mut dirs = vec![data.clone()];
        while let Some(at) = dirs.pop() {
            found.push((
                at.clone(),
                std::fs::metadata(&at).unwrap().permissions().mode() & 0o777,
            ));
            for entry in std::fs::read_dir(&at).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                    found.push((path, mode & 0o777));
                }
            }
        }
        let names: Vec<String> = found
            .iter()
            .filter_map(|(p, _)| p.file_name()?.to_str().map(str::to_string))
            .collect();
        for file in [
            "known_servers",
            "identity.priv",
            "identity.pub",
            "known_users",
            "prekeys.pem",
        ] {
            assert!(names.iter().any(|n| n == file), "no {file}: {names:?}");
        }
        for (path, mode) in found {
            let wanted = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, wanted, "{}", path.display());
        }
    }

    #[test]
    fn files_an_older_version_left_open_are_closed_when_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:4590".parse().unwrap();
        check_server(dir.path(), addr, &[], None, &key(1)).unwrap();
        let me = identity(dir.path(), "alice", true).unwrap();
        KnownUsers::open(dir.path(), "alice").check("bob", &key(2));
        save_prekeys(
            dir.path(),
            "alice",
            &Prekeys::generate(&mut rand::rngs::OsRng, &me, 1),
        )
        .unwrap();
        let open = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let user = dir.path().join("users/alice");
        let files = [
            dir.path().join("known_servers"),
            user.join("identity.priv"),
            user.join("identity.pub"),
            user.join("known_users"),
            user.join("prekeys.pem"),
        ];
        for file in &files {
            open(file, 0o644);
        }
        open(&user, 0o755);
        open(&dir.path().join("users"), 0o755);

        check_server(dir.path(), addr, &[], None, &key(1)).unwrap();
        identity(dir.path(), "alice", false).unwrap();
        KnownUsers::open(dir.path(), "alice");
        load_prekeys(dir.path(), "alice").unwrap().unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        for file in &files {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        assert_eq!(mode(&user), 0o700);
        assert_eq!(mode(&dir.path().join("users")), 0o700);
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

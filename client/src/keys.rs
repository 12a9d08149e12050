//! The signed-in user's keys and what this client knows of others' keys:
//! the identity key (made on first sign-in in the data dir, and put to use
//! for sessions from other clients), prekeys to publish and to open sealed
//! messages with, and the identity keys seen for other users, with a loud
//! warning when one changes.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use udpchat_core::context::{Keyring, Session};
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::crypto::sealed::{self, Prekeys, SealedMessage};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::mailbox::{Bundle, PrekeyUpload};
use udpchat_core::output::Output;
use udpchat_net::Link;

use crate::render::Printer;
use crate::trust::{self, KnownUsers, PeerTrust};

pub struct Keys {
    data_dir: PathBuf,
    link: Link,
    session: Arc<Mutex<Session>>,
    printer: Printer,
    /// The signed-in user's keys, once `identity` loaded them.
    mine: Mutex<Option<UserKeys>>,
    /// The signed-in user's known identity keys, in memory.
    known_users: Mutex<Option<KnownUsers>>,
}

/// One user's secrets, in memory while signed in.
struct UserKeys {
    user: String,
    identity: StaticKey,
}

impl Keys {
    pub fn new(
        data_dir: PathBuf,
        link: Link,
        session: Arc<Mutex<Session>>,
        printer: Printer,
    ) -> Keys {
        Keys {
            data_dir,
            link,
            session,
            printer,
            mine: Mutex::new(None),
            known_users: Mutex::new(None),
        }
    }

    /// Runs `f` on the signed-in user's book of known identity keys,
    /// loading it on first use (or after signing in as someone else).
    fn with_known_users<T>(&self, f: impl FnOnce(&mut KnownUsers) -> T) -> Option<T> {
        let me = self.session.lock().user.clone()?;
        let mut known = self.known_users.lock();
        if known.as_ref().is_none_or(|book| book.owner() != me) {
            *known = Some(KnownUsers::open(&self.data_dir, &me));
        }
        known.as_mut().map(f)
    }

    fn user_keys<T>(
        &self,
        f: impl FnOnce(&UserKeys) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let keys = self.mine.lock();
        let keys = keys.as_ref().ok_or_else(CommandError::not_signed_in)?;
        f(keys)
    }
}

impl Keyring for Keys {
    fn identity(&self, user: &str, create: bool) -> Result<PublicKey, CommandError> {
        let key = trust::identity(&self.data_dir, user, create)?;
        let public = key.public();
        self.link.set_identity(Some(key.clone()));
        *self.mine.lock() = Some(UserKeys {
            user: user.to_string(),
            identity: key,
        });
        Ok(public)
    }

    fn is_known(&self, user: &str, identity: &PublicKey) -> bool {
        self.with_known_users(|book| book.is_known(user, identity))
            .unwrap_or(false)
    }

    fn check(&self, user: &str, identity: &PublicKey) {
        let verdict = self.with_known_users(|book| book.check(user, identity));
        if let Some(PeerTrust::Changed { was, now }) = verdict {
            self.printer.emit(
                Output::new(
                    "key-changed",
                    format!("WARNING: {user}'s identity key changed (was {was}, now {now}); make sure it is really them"),
                )
                .with("user", user.to_string())
                .with("was", was)
                .with("now", now),
            );
        }
    }

    fn prekeys_to_publish(&self, user: &str, new: usize) -> Result<PrekeyUpload, CommandError> {
        self.user_keys(|keys| {
            if keys.user != user {
                return Err(CommandError::not_signed_in());
            }
            let mut rng = rand::rngs::OsRng;
            let mut prekeys = match trust::load_prekeys(&self.data_dir, user)? {
                Some(prekeys) => prekeys,
                None => Prekeys::generate(&mut rng, &keys.identity, 1),
            };
            // Fresh ids above every id used so far, so none is reused.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let first = prekeys.next_one_time_id((now % (1 << 31)) as u32);
            let one_time = prekeys.generate_one_time(&mut rng, new as u32, first);
            trust::save_prekeys(&self.data_dir, user, &prekeys)?;
            Ok(PrekeyUpload {
                signed: prekeys.signed_prekey(),
                one_time,
            })
        })
    }

    fn seal(
        &self,
        bundle: &Bundle,
        plaintext: &[u8],
        associated: &[u8],
    ) -> Result<SealedMessage, CommandError> {
        self.user_keys(|keys| {
            sealed::seal(
                &mut rand::rngs::OsRng,
                &keys.identity,
                &bundle.identity,
                &bundle.signed,
                bundle.one_time.as_ref(),
                plaintext,
                associated,
            )
            .map_err(|e| {
                CommandError::new(
                    Code::Sealed,
                    format!("cannot seal a message for {}: {e}", bundle.user),
                )
            })
        })
    }

    fn open(
        &self,
        message: &SealedMessage,
        associated: &[u8],
    ) -> Result<(PublicKey, Vec<u8>), CommandError> {
        self.user_keys(|keys| {
            let mut prekeys =
                trust::load_prekeys(&self.data_dir, &keys.user)?.ok_or_else(|| {
                    CommandError::new(Code::Sealed, "no prekeys here to open it with")
                })?;
            // The one-time prekey it used goes from this copy only: the
            // file keeps it until `spend`.
            prekeys
                .open(&keys.identity, message, associated)
                .map_err(|e| CommandError::new(Code::Sealed, e.to_string()))
        })
    }

    fn spend(&self, message: &SealedMessage) -> Result<(), CommandError> {
        let Some(id) = message.one_time_prekey_id else {
            return Ok(());
        };
        self.user_keys(|keys| {
            let Some(mut prekeys) = trust::load_prekeys(&self.data_dir, &keys.user)? else {
                return Ok(());
            };
            if prekeys.remove_one_time(id).is_some() {
                trust::save_prekeys(&self.data_dir, &keys.user, &prekeys)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    #[tokio::test]
    async fn a_one_time_prekey_stays_until_spent_and_then_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (link, _inbox) = Link::spawn_client(socket).unwrap();
        let (printer, _shown) = crate::render::Printer::new(crate::render::Format::Json);
        let session = Arc::new(Mutex::new(Session {
            server: "127.0.0.1:4590".parse().unwrap(),
            user: Some("bob".into()),
            conversation: None,
        }));
        let bob = Keys::new(dir.path().to_path_buf(), link, session, printer);
        let identity = bob.identity("bob", true).unwrap();
        let upload = bob.prekeys_to_publish("bob", 1).unwrap();
        let one_time = upload.one_time.first().cloned();
        assert!(one_time.is_some());
        let alice = StaticKey::generate(&mut rand::rngs::OsRng);
        let message = sealed::seal(
            &mut rand::rngs::OsRng,
            &alice,
            &identity,
            &upload.signed,
            one_time.as_ref(),
            b"hello",
            b"alice->bob",
        )
        .unwrap();

        // Opened, and not kept yet (the client may be killed now): it
        // opens again.
        let (from, text) = bob.open(&message, b"alice->bob").unwrap();
        assert_eq!((from, text.as_slice()), (alice.public(), &b"hello"[..]));
        assert!(
            bob.open(&message, b"alice->bob").is_ok(),
            "opens again until spent"
        );

        // Kept: its one-time prekey is gone from the data dir, and a
        // replay opens nothing.
        bob.spend(&message).unwrap();
        assert!(
            bob.open(&message, b"alice->bob").is_err(),
            "a replay opened"
        );
        bob.spend(&message).unwrap();
    }
}

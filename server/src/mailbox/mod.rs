//! The server's mailbox: prekeys for sealing, and sealed messages kept for
//! offline users until their client acknowledges them. Store calls run on
//! blocking threads; the server sees only sealed bytes. The tables are
//! [`store`].

mod postgres;
mod store;

pub use store::{MailboxStore, Quota};

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Mailbox};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::crypto::sealed::{OneTimePrekey, SignedPrekey};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::limits::RateLimit;
use udpchat_core::mailbox::{Bundle, PrekeyUpload, Stored};

use crate::store::{blocking, internal, Store};

/// The largest sealed message accepted (a 64 KiB text and its envelope).
pub const MAX_SEALED: usize = 80 * 1024;
/// What waits for one recipient at most, and one sender's share of it (a
/// quarter: a friend may leave a long conversation's worth, and it takes
/// several accounts, each made at a cost, to fill someone's mailbox).
pub const QUOTA: Quota = Quota {
    messages: 1000,
    bytes: 16 * 1024 * 1024,
    sender_messages: 250,
    sender_bytes: 4 * 1024 * 1024,
};
/// One-time prekeys of one user one asker may take: a few at once, then
/// one per [`ONE_TIME_EVERY`]. Past that, bundles come without one (the
/// message is sealed to the signed prekey alone), so no one account can
/// drain someone's one-time prekeys.
pub const ONE_TIME_BURST: u32 = 5;
pub const ONE_TIME_EVERY: Duration = Duration::from_secs(5 * 60);
/// (asker, user) pairs remembered at most.
const MAX_HANDOUTS_TRACKED: usize = 100_000;

#[derive(Clone)]
pub struct StoredMail {
    accounts: Arc<dyn Store>,
    store: Arc<dyn MailboxStore>,
    /// One-time prekeys handed out, per asker and owner.
    handouts: Arc<Mutex<RateLimit<(String, String)>>>,
}

pub use udpchat_core::now_ms;

fn no_such_user(user: &str) -> CommandError {
    CommandError::new(Code::NoSuchUser, format!("No such user signed in: {user}"))
}

impl StoredMail {
    pub fn new(accounts: Arc<dyn Store>, store: Arc<dyn MailboxStore>) -> StoredMail {
        StoredMail {
            accounts,
            store,
            handouts: Arc::new(Mutex::new(RateLimit::new(
                ONE_TIME_BURST,
                ONE_TIME_EVERY,
                MAX_HANDOUTS_TRACKED,
            ))),
        }
    }

    /// Deletes messages older than `ttl_ms`; returns them so their senders
    /// can be told.
    pub async fn expire(&self, ttl_ms: u64) -> Result<Vec<Stored>, CommandError> {
        let before = now_ms().saturating_sub(ttl_ms);
        let store = self.store.clone();
        blocking(move || store.expire(before)).await
    }
}

impl Mailbox for StoredMail {
    fn publish(
        &self,
        user: &str,
        upload: PrekeyUpload,
    ) -> BoxFuture<'static, Result<usize, CommandError>> {
        let (this, user) = (self.clone(), user.to_string());
        Box::pin(async move {
            let accounts = this.accounts.clone();
            let asked = user.clone();
            let identity = blocking(move || accounts.identity(&asked))
                .await?
                .and_then(|bytes| PublicKey::from_bytes(&bytes).ok())
                .ok_or_else(|| no_such_user(&user))?;
            // Only prekeys the user's own identity key signed are kept.
            upload.signed.verify(&identity).map_err(|_| {
                CommandError::new(
                    Code::BadRequest,
                    "the signed prekey is not signed by your identity key",
                )
            })?;
            let signed = cbor::encode(&upload.signed);
            let one_time: Vec<(u32, Vec<u8>)> = upload
                .one_time
                .iter()
                .map(|p| (p.id, cbor::encode(p)))
                .collect();
            blocking(move || this.store.publish_prekeys(&user, &signed, &one_time)).await
        })
    }

    fn bundle(
        &self,
        asker: &str,
        user: &str,
        one_time: bool,
    ) -> BoxFuture<'static, Result<(Bundle, usize), CommandError>> {
        let (this, user) = (self.clone(), user.to_string());
        let give_one_time = one_time
            && self
                .handouts
                .lock()
                .take(&(asker.to_string(), user.clone()), Instant::now())
                .is_ok();
        Box::pin(async move {
            blocking(move || -> Result<_, CommandError> {
                let identity = this.accounts.identity(&user)?.ok_or_else(|| no_such_user(&user))?;
                let identity = PublicKey::from_bytes(&identity).map_err(internal)?;
                let (signed, one_time, left) = this.store.take_prekeys(&user, give_one_time)?.ok_or_else(|| {
                    CommandError::new(
                        Code::NoPrekeys,
                        format!("{user} has never signed in with this version, so messages cannot be kept for them"),
                    )
                })?;
                let signed: SignedPrekey = cbor::decode_body(&signed).map_err(internal)?;
                let one_time: Option<OneTimePrekey> =
                    one_time.map(|p| cbor::decode_body(&p)).transpose().map_err(internal)?;
                Ok((Bundle { user, identity, signed, one_time }, left))
            })
            .await
        })
    }

    fn deposit(
        &self,
        from: &str,
        to: &str,
        sealed: Vec<u8>,
    ) -> BoxFuture<'static, Result<Stored, CommandError>> {
        let this = self.clone();
        let mut message = Stored {
            id: 0,
            from: from.to_string(),
            to: to.to_string(),
            sent_at_ms: now_ms(),
            sealed,
        };
        Box::pin(async move {
            if message.sealed.len() > MAX_SEALED {
                return Err(CommandError::new(
                    Code::TooLarge,
                    format!("a stored message may be at most {MAX_SEALED} bytes"),
                ));
            }
            blocking(move || {
                if this.accounts.identity(&message.to)?.is_none() {
                    return Err(no_such_user(&message.to));
                }
                message.id = this.store.deposit(&message, &QUOTA)?;
                Ok(message)
            })
            .await
        })
    }

    fn pending(&self, user: &str) -> BoxFuture<'static, Result<Vec<Stored>, CommandError>> {
        let (this, user) = (self.clone(), user.to_string());
        Box::pin(async move { blocking(move || this.store.pending(&user)).await })
    }

    fn take(
        &self,
        user: &str,
        id: u64,
    ) -> BoxFuture<'static, Result<Option<Stored>, CommandError>> {
        let (this, user) = (self.clone(), user.to_string());
        Box::pin(async move { blocking(move || this.store.take_stored(&user, id)).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Account, SqliteStore};
    use udpchat_core::crypto::keys::StaticKey;
    use udpchat_core::crypto::sealed::Prekeys;
    use udpchat_core::mailbox::ONE_TIME_TARGET;

    #[tokio::test]
    async fn one_asker_cannot_drain_someones_one_time_prekeys() {
        let store = Arc::new(SqliteStore::in_memory());
        let rng = &mut rand::rngs::OsRng;
        let identity = StaticKey::generate(rng);
        store
            .create_user(&Account {
                name: "bob".into(),
                password_hash: "h".into(),
            })
            .unwrap();
        store
            .set_identity("bob", &identity.public().to_bytes())
            .unwrap();
        let mut prekeys = Prekeys::generate(rng, &identity, 1);
        let one_time = prekeys.generate_one_time(rng, ONE_TIME_TARGET as u32, 1);
        let mail = StoredMail::new(store.clone(), store);
        mail.publish(
            "bob",
            PrekeyUpload {
                signed: prekeys.signed_prekey(),
                one_time,
            },
        )
        .await
        .unwrap();

        let mut with_one_time = 0;
        let mut left = 0;
        for _ in 0..60 {
            let (bundle, now_left) = mail.bundle("mallory", "bob", true).await.unwrap();
            with_one_time += usize::from(bundle.one_time.is_some());
            left = now_left;
            assert_eq!(bundle.identity, identity.public(), "still a usable bundle");
        }
        assert_eq!(with_one_time, ONE_TIME_BURST as usize);
        assert_eq!(left, ONE_TIME_TARGET - ONE_TIME_BURST as usize);
        let (bundle, _) = mail.bundle("alice", "bob", true).await.unwrap();
        assert!(bundle.one_time.is_some(), "another asker still gets one");
    }
}

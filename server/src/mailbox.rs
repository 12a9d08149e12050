//! The server's mailbox: prekeys for sealing, and sealed messages kept for
//! offline users until their client acknowledges them. Store calls run on
//! blocking threads; the server sees only sealed bytes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Mailbox};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::crypto::sealed::{OneTimePrekey, SignedPrekey};
use udpchat_core::error::{code, CommandError};
use udpchat_core::mailbox::{Bundle, PrekeyUpload, Stored};

use udpchat_core::limits::RateLimit;

use crate::store::{MailboxStore, Quota, Store, StoreError};

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

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn internal(e: impl std::fmt::Display) -> CommandError {
    tracing::error!("mailbox: {e}");
    CommandError::new(
        code::INTERNAL,
        "the server could not complete that; try again",
    )
}

fn no_such_user(user: &str) -> CommandError {
    CommandError::new(
        code::NO_SUCH_USER,
        format!("No such user signed in: {user}"),
    )
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

    async fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&StoredMail) -> Result<T, CommandError> + Send + 'static,
    ) -> Result<T, CommandError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || job(&this))
            .await
            .map_err(internal)?
    }

    /// Deletes messages older than `ttl_ms`; returns them so their senders
    /// can be told.
    pub async fn expire(&self, ttl_ms: u64) -> Result<Vec<Stored>, CommandError> {
        let before = now_ms().saturating_sub(ttl_ms);
        self.call(move |m| m.store.expire(before).map_err(internal))
            .await
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
            let identity = this
                .call({
                    let user = user.clone();
                    move |m| m.accounts.identity(&user).map_err(internal)
                })
                .await?
                .and_then(|bytes| PublicKey::from_bytes(&bytes).ok())
                .ok_or_else(|| no_such_user(&user))?;
            // Only prekeys the user's own identity key signed are kept.
            upload.signed.verify(&identity).map_err(|_| {
                CommandError::new(
                    code::BAD_REQUEST,
                    "the signed prekey is not signed by your identity key",
                )
            })?;
            let signed = cbor::encode(&upload.signed);
            let one_time: Vec<(u32, Vec<u8>)> = upload
                .one_time
                .iter()
                .map(|p| (p.id, cbor::encode(p)))
                .collect();
            this.call(move |m| {
                m.store
                    .publish_prekeys(&user, &signed, &one_time)
                    .map_err(internal)
            })
            .await
        })
    }

    fn bundle(
        &self,
        asker: &str,
        user: &str,
    ) -> BoxFuture<'static, Result<(Bundle, usize), CommandError>> {
        let (this, user) = (self.clone(), user.to_string());
        let give_one_time = self
            .handouts
            .lock()
            .expect("handouts lock")
            .take(&(asker.to_string(), user.clone()), Instant::now())
            .is_ok();
        Box::pin(async move {
            this.call(move |m| {
                let identity = m.accounts.identity(&user).map_err(internal)?.ok_or_else(|| no_such_user(&user))?;
                let identity = PublicKey::from_bytes(&identity).map_err(internal)?;
                let (signed, one_time, left) = m.store.take_prekeys(&user, give_one_time).map_err(internal)?.ok_or_else(|| {
                    CommandError::new(
                        code::NO_PREKEYS,
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
                    code::TOO_LARGE,
                    format!("a stored message may be at most {MAX_SEALED} bytes"),
                ));
            }
            this.call(move |m| {
                if m.accounts
                    .identity(&message.to)
                    .map_err(internal)?
                    .is_none()
                {
                    return Err(no_such_user(&message.to));
                }
                match m.store.deposit(&message, &QUOTA) {
                    Ok(id) => {
                        message.id = id;
                        Ok(message)
                    }
                    Err(StoreError::MailboxFull(user)) => Err(CommandError::new(
                        code::MAILBOX_FULL,
                        format!("{user}'s mailbox is full; not queued"),
                    )),
                    Err(StoreError::SenderShareFull { to, .. }) => Err(CommandError::new(
                        code::MAILBOX_FULL,
                        format!(
                            "{to} already has {} messages or {} KiB from you waiting; not queued",
                            QUOTA.sender_messages,
                            QUOTA.sender_bytes / 1024
                        ),
                    )),
                    Err(e) => Err(internal(e)),
                }
            })
            .await
        })
    }

    fn pending(&self, user: &str) -> BoxFuture<'static, Result<Vec<Stored>, CommandError>> {
        let (this, user) = (self.clone(), user.to_string());
        Box::pin(async move {
            this.call(move |m| m.store.pending(&user).map_err(internal))
                .await
        })
    }

    fn take(
        &self,
        user: &str,
        id: u64,
    ) -> BoxFuture<'static, Result<Option<Stored>, CommandError>> {
        let (this, user) = (self.clone(), user.to_string());
        Box::pin(async move {
            this.call(move |m| m.store.take_stored(&user, id).map_err(internal))
                .await
        })
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
            let (bundle, now_left) = mail.bundle("mallory", "bob").await.unwrap();
            with_one_time += usize::from(bundle.one_time.is_some());
            left = now_left;
            assert_eq!(bundle.identity, identity.public(), "still a usable bundle");
        }
        assert_eq!(with_one_time, ONE_TIME_BURST as usize);
        assert_eq!(left, ONE_TIME_TARGET - ONE_TIME_BURST as usize);
        let (bundle, _) = mail.bundle("alice", "bob").await.unwrap();
        assert!(bundle.one_time.is_some(), "another asker still gets one");
    }
}

//! The server's mailbox: prekeys for sealing, and sealed messages kept for
//! offline users until their client acknowledges them. Store calls run on
//! blocking threads; the server sees only sealed bytes.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Mailbox};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::crypto::sealed::{OneTimePrekey, SignedPrekey};
use udpchat_core::error::{code, CommandError};
use udpchat_core::mailbox::{Bundle, PrekeyUpload, Stored};

use crate::store::{MailboxStore, Store, StoreError};

/// Messages waiting for one recipient, at most.
pub const MAX_QUEUE: usize = 1000;
/// The largest sealed message accepted (a 64 KiB text and its envelope).
pub const MAX_SEALED: usize = 80 * 1024;

#[derive(Clone)]
pub struct StoredMail {
    accounts: Arc<dyn Store>,
    store: Arc<dyn MailboxStore>,
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
        StoredMail { accounts, store }
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

    fn bundle(&self, user: &str) -> BoxFuture<'static, Result<(Bundle, usize), CommandError>> {
        let (this, user) = (self.clone(), user.to_string());
        Box::pin(async move {
            this.call(move |m| {
                let identity = m.accounts.identity(&user).map_err(internal)?.ok_or_else(|| no_such_user(&user))?;
                let identity = PublicKey::from_bytes(&identity).map_err(internal)?;
                let (signed, one_time, left) = m.store.take_prekeys(&user).map_err(internal)?.ok_or_else(|| {
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
                match m.store.deposit(&message, MAX_QUEUE) {
                    Ok(id) => {
                        message.id = id;
                        Ok(message)
                    }
                    Err(StoreError::MailboxFull(user)) => Err(CommandError::new(
                        code::MAILBOX_FULL,
                        format!("{user} already has {MAX_QUEUE} messages waiting; not queued"),
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

//! Accounts: sign-up and password checks with argon2id, run on blocking
//! threads (bounded, so a burst of sign-ins can't exhaust memory) and
//! throttled per account. Unknown user and wrong password give the same
//! error and take the same time. The hashing is [`password`], the
//! throttle [`throttle`]; the users table is in `crate::store`, beside the
//! connection, as the other concerns' tables refer to it.

mod key_cache;
pub mod password;
mod postgres;
mod throttle;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use udpchat_core::context::{Accounts, BoxFuture, Source};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::limits::RateLimit;
use udpchat_core::passwords;
use zeroize::Zeroizing;

use crate::store::{blocking, internal, Account, PgStore, Store, StoreError};
use key_cache::KeyCache;
use password::Hasher;
use throttle::{Throttle, Wait};

/// Accounts one source may make per hour, by default.
pub const DEFAULT_SIGNUPS_PER_HOUR: u32 = 20;
/// Sources whose sign-ups are remembered at most.
const MAX_SIGNUP_SOURCES: usize = 100_000;

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct PasswordAccounts {
    store: Arc<dyn Store>,
    throttle: Arc<Mutex<Throttle>>,
    /// Sign-ups per source: a burst, then a steady trickle.
    signups: Arc<Mutex<RateLimit<Source>>>,
    /// Bounds concurrent hashes: each takes 19 MiB and a core.
    hashing: Arc<Semaphore>,
    /// Verified against for unknown names, so they cost what known ones do.
    decoy: Arc<String>,
    hasher: Hasher,
    /// Identity keys looked up lately, decoded ([`key_cache`]).
    keys: Arc<Mutex<KeyCache>>,
    /// With other server nodes: failed sign-ins and sign-ups are counted in
    /// the shared database (`throttle` and `signups` are then unused), at
    /// `per_hour` sign-ups an hour from one source.
    shared: Option<(Arc<PgStore>, u32)>,
}

impl PasswordAccounts {
    pub fn new(store: Arc<dyn Store>) -> PasswordAccounts {
        PasswordAccounts::with_hasher(store, Hasher::new())
    }

    /// Accounts whose new password hashes `hasher` makes.
    pub fn with_hasher(store: Arc<dyn Store>, hasher: Hasher) -> PasswordAccounts {
        let lanes = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        PasswordAccounts {
            store,
            throttle: Arc::new(Mutex::new(Throttle::new())),
            signups: Arc::new(Mutex::new(signup_limit(DEFAULT_SIGNUPS_PER_HOUR))),
            hashing: Arc::new(Semaphore::new(lanes)),
            decoy: Arc::new(hasher.hash("not a password anyone has")),
            hasher,
            keys: Arc::default(),
            shared: None,
        }
    }

    /// Lets one source make `per_hour` accounts an hour (at once, then
    /// spread over the hour).
    pub fn with_signups_per_hour(mut self, per_hour: u32) -> PasswordAccounts {
        self.signups = Arc::new(Mutex::new(signup_limit(per_hour)));
        if let Some((_, shared)) = &mut self.shared {
            *shared = per_hour.max(1);
        }
        self
    }

    /// Counts failed sign-ins and sign-ups in `store`, which other server
    /// nodes share: guessing spread over nodes is slowed as on one.
    pub fn shared_with(mut self, store: Arc<PgStore>, signups_per_hour: u32) -> PasswordAccounts {
        self.shared = Some((store, signups_per_hour.max(1)));
        self
    }

    /// Forgets `user`'s cached identity key: they signed in on another
    /// node, maybe from a new device, with another key.
    pub fn forget_key(&self, user: &str) {
        self.keys.lock().forget(user);
    }

    /// Whether `user` may be tried from `source` now.
    async fn may_try(&self, user: &str, source: Source) -> Result<(), CommandError> {
        let waiting = match &self.shared {
            Some((store, _)) => {
                let (store, user, source) = (store.clone(), user.to_string(), source.to_string());
                blocking(move || store.sign_in_allowed(&user, &source)).await?
            }
            None => self.throttle.lock().check(user, source, Instant::now()),
        };
        match waiting {
            Ok(()) => Ok(()),
            Err(Wait::Account(wait)) => Err(CommandError::new(
                Code::Throttled,
                format!(
                    "too many failed sign-ins for {user} from your address: try again in {}",
                    seconds(wait)
                ),
            )),
            Err(Wait::Source(wait)) => Err(CommandError::new(
                Code::Throttled,
                format!(
                    "too many failed sign-ins from your address: try again in {}",
                    seconds(wait)
                ),
            )),
        }
    }

    /// Counts a sign-in's outcome.
    async fn tried(&self, user: &str, source: Source, right: bool) -> Result<(), CommandError> {
        match &self.shared {
            Some((store, _)) => {
                let (store, user, source) = (store.clone(), user.to_string(), source.to_string());
                blocking(move || {
                    if right {
                        store.sign_in_succeeded(&user, &source)
                    } else {
                        store.sign_in_failed(&user, &source)
                    }
                })
                .await
            }
            None => {
                let mut throttle = self.throttle.lock();
                if right {
                    throttle.succeeded(user, source);
                } else {
                    throttle.failed(user, source, Instant::now());
                }
                Ok(())
            }
        }
    }

    /// Takes one of the sign-ups `source` may make.
    async fn may_sign_up(&self, source: Source) -> Result<(), CommandError> {
        let allowed = match &self.shared {
            Some((store, per_hour)) => {
                let (store, per_hour, source) = (store.clone(), *per_hour, source.to_string());
                blocking(move || store.take_sign_up(&source, per_hour)).await?
            }
            None => self.signups.lock().take(&source, Instant::now()),
        };
        allowed.map_err(|wait| {
            CommandError::new(
                Code::Throttled,
                format!(
                    "too many accounts made from your address: try again in {}",
                    seconds(wait)
                ),
            )
        })
    }

    /// Makes an account with no limit on who asks: for the operator.
    pub async fn create(
        &self,
        user: &str,
        password: Zeroizing<String>,
        identity: PublicKey,
    ) -> Result<(), CommandError> {
        passwords::check_new(user, &password)?;
        let store = self.store.clone();
        let hasher = self.hasher.clone();
        let name = user.to_string();
        let key = identity.clone();
        self.hashing_lane(move || {
            let password_hash = hasher.hash(&password);
            store.create_user(&Account {
                name: name.clone(),
                password_hash,
            })?;
            store.set_identity(&name, &key.to_bytes())
        })
        .await?;
        self.keys.lock().wrote(user, identity);
        Ok(())
    }

    /// Runs `job` on a blocking thread (see [`blocking`]) once a hashing
    /// lane is free.
    async fn hashing_lane<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, CommandError> {
        let _lane = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| internal("accounts: the hashing lanes are closed"))?;
        blocking(job).await
    }
}

/// `12s`, at least `1s`.
fn seconds(wait: Duration) -> String {
    format!("{}s", wait.as_secs_f64().ceil().max(1.0) as u64)
}

fn signup_limit(per_hour: u32) -> RateLimit<Source> {
    let per_hour = per_hour.max(1);
    RateLimit::new(
        per_hour,
        Duration::from_secs(3600) / per_hour,
        MAX_SIGNUP_SOURCES,
    )
}

fn bad_credentials() -> CommandError {
    CommandError::new(Code::BadCredentials, "wrong user name or password")
}

impl Accounts for PasswordAccounts {
    fn sign_up(
        &self,
        user: &str,
        password: Zeroizing<String>,
        identity: PublicKey,
        source: Source,
    ) -> BoxFuture<'static, Result<(), CommandError>> {
        let this = self.clone();
        let user = user.to_string();
        Box::pin(async move {
            passwords::check_new(&user, &password)?;
            this.may_sign_up(source).await?;
            this.create(&user, password, identity).await
        })
    }

    fn set_identity(
        &self,
        user: &str,
        identity: PublicKey,
    ) -> BoxFuture<'static, Result<(), CommandError>> {
        self.set_identity_now(user, identity)
    }

    fn identity(&self, user: &str) -> BoxFuture<'static, Result<Option<PublicKey>, CommandError>> {
        self.identity_now(user, true)
    }

    fn identity_to_check(
        &self,
        user: &str,
    ) -> BoxFuture<'static, Result<Option<PublicKey>, CommandError>> {
        self.identity_now(user, false)
    }

    fn check_password(
        &self,
        user: &str,
        password: Zeroizing<String>,
        source: Source,
    ) -> BoxFuture<'static, Result<(), CommandError>> {
        let this = self.clone();
        let user = user.to_string();
        Box::pin(async move {
            this.may_try(&user, source).await?;
            let store = this.store.clone();
            let decoy = this.decoy.clone();
            let hasher = this.hasher.clone();
            let name = user.clone();
            let verdict = this
                .hashing_lane(move || {
                    let account = store.user(&name)?;
                    let phc = account
                        .as_ref()
                        .map_or(decoy.as_str(), |a| a.password_hash.as_str());
                    let matches = hasher.matches(&password, phc);
                    if let Some(account) = account.as_ref().filter(|_| matches) {
                        if !hasher.is_current(phc) {
                            // Made with other parameters: remake it now
                            // that the password is at hand.
                            store.set_password_hash(&name, &hasher.hash(&password))?;
                            tracing::info!(user = %account.name, "password hash updated");
                        }
                    }
                    Ok(matches && account.is_some())
                })
                .await?;
            this.tried(&user, source, verdict).await?;
            if verdict {
                Ok(())
            } else {
                Err(bad_credentials())
            }
        })
    }
}

impl PasswordAccounts {
    pub(crate) fn set_identity_now(
        &self,
        user: &str,
        identity: PublicKey,
    ) -> BoxFuture<'static, Result<(), CommandError>> {
        let this = self.clone();
        let user = user.to_string();
        Box::pin(async move {
            let (store, name, key) = (this.store.clone(), user.clone(), identity.clone());
            blocking(move || store.set_identity(&name, &key.to_bytes())).await?;
            this.keys.lock().wrote(&user, identity);
            Ok(())
        })
    }

    /// `user`'s identity key: from memory if it is there, else from the
    /// store, then kept if `keep`.
    pub(crate) fn identity_now(
        &self,
        user: &str,
        keep: bool,
    ) -> BoxFuture<'static, Result<Option<PublicKey>, CommandError>> {
        if let Some(key) = self.keys.lock().get(user) {
            return Box::pin(std::future::ready(Ok(Some(key.clone()))));
        }
        let this = self.clone();
        let user = user.to_string();
        Box::pin(async move {
            let (store, name) = (this.store.clone(), user.clone());
            let began = this.keys.lock().reading();
            let bytes = blocking(move || store.identity(&name)).await?;
            let key = bytes.and_then(|b| PublicKey::from_bytes(&b).ok());
            if let Some(key) = key.as_ref().filter(|_| keep) {
                this.keys.lock().read(began, &user, key.clone());
            }
            Ok(key)
        })
    }
}

#[cfg(test)]
mod tests;

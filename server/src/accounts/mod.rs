//! Accounts: sign-up and password checks with argon2id, run on blocking
//! threads (bounded, so a burst of sign-ins can't exhaust memory) and
//! throttled per account. Unknown user and wrong password give the same
//! error and take the same time. The hashing is [`password`], the
//! throttle [`throttle`]; the users table is in `crate::store`, beside the
//! connection, as the other concerns' tables refer to it.

pub mod password;
mod postgres;
mod throttle;

use std::collections::HashMap;
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
    /// Identity keys read or written lately, decoded: `lookup` answers
    /// from here without a SQLite read or a P-384 point decoding.
    keys: Arc<Mutex<HashMap<String, PublicKey>>>,
    /// With other server nodes: failed sign-ins and sign-ups are counted in
    /// the shared database (`throttle` and `signups` are then unused), at
    /// `per_hour` sign-ups an hour from one source.
    shared: Option<(Arc<PgStore>, u32)>,
}

/// Identity keys kept in memory at most (about 200 bytes each); past it
/// the cache starts again empty.
const MAX_CACHED_KEYS: usize = 100_000;

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
        self.keys.lock().remove(user);
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
        self.remember_key(user, identity, true);
        Ok(())
    }

    /// Keeps `user`'s key in the cache: always when it was just written
    /// (`written`), or only if none is there when it was read, so that a
    /// read that raced a write cannot put the older key back.
    fn remember_key(&self, user: &str, key: PublicKey, written: bool) {
        let mut keys = self.keys.lock();
        if keys.len() >= MAX_CACHED_KEYS && !keys.contains_key(user) {
            keys.clear();
        }
        if written {
            keys.insert(user.to_string(), key);
        } else {
            keys.entry(user.to_string()).or_insert(key);
        }
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
        self.identity_now(user)
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
            this.remember_key(&user, identity, true);
            Ok(())
        })
    }

    pub(crate) fn identity_now(
        &self,
        user: &str,
    ) -> BoxFuture<'static, Result<Option<PublicKey>, CommandError>> {
        if let Some(key) = self.keys.lock().get(user) {
            return Box::pin(std::future::ready(Ok(Some(key.clone()))));
        }
        let this = self.clone();
        let user = user.to_string();
        Box::pin(async move {
            let (store, name) = (this.store.clone(), user.clone());
            let bytes = blocking(move || store.identity(&name)).await?;
            let key = bytes.and_then(|b| PublicKey::from_bytes(&b).ok());
            if let Some(key) = &key {
                this.remember_key(&user, key.clone(), false);
            }
            Ok(key)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn mallory() -> Source {
        Source::of(([192, 0, 2, 66], 4000).into())
    }

    fn owner() -> Source {
        Source::of(([198, 51, 100, 1], 4000).into())
    }

    fn key() -> PublicKey {
        udpchat_core::crypto::keys::StaticKey::generate(
            &mut argon2::password_hash::rand_core::OsRng,
        )
        .public()
    }

    #[tokio::test]
    async fn guessing_from_one_source_does_not_lock_the_owner_out() {
        let cheap = Hasher::with_memory_kib(password::MIN_MEMORY_KIB).unwrap();
        let accounts = PasswordAccounts::with_hasher(Arc::new(SqliteStore::in_memory()), cheap);
        accounts
            .sign_up(
                "alice",
                Zeroizing::new("right horse staple".into()),
                key(),
                owner(),
            )
            .await
            .unwrap();
        for _ in 0..5 {
            let _ = accounts
                .check_password("alice", Zeroizing::new("guess".into()), mallory())
                .await;
        }
        let refused = accounts
            .check_password(
                "alice",
                Zeroizing::new("right horse staple".into()),
                mallory(),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code, Code::Throttled, "{refused:?}");
        accounts
            .check_password(
                "alice",
                Zeroizing::new("right horse staple".into()),
                owner(),
            )
            .await
            .expect("the owner, from her own address, signs in");
    }

    #[tokio::test]
    async fn one_source_makes_a_bounded_number_of_accounts() {
        let cheap = Hasher::with_memory_kib(password::MIN_MEMORY_KIB).unwrap();
        let accounts = PasswordAccounts::with_hasher(Arc::new(SqliteStore::in_memory()), cheap)
            .with_signups_per_hour(3);
        for i in 0..3 {
            accounts
                .sign_up(
                    &format!("bot{i}"),
                    Zeroizing::new("a fine password!".into()),
                    key(),
                    mallory(),
                )
                .await
                .unwrap();
        }
        let refused = accounts
            .sign_up(
                "bot3",
                Zeroizing::new("a fine password!".into()),
                key(),
                mallory(),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code, Code::Throttled);
        assert!(
            refused
                .message
                .starts_with("too many accounts made from your address"),
            "{refused:?}"
        );
        accounts
            .sign_up(
                "carole",
                Zeroizing::new("a fine password!".into()),
                key(),
                owner(),
            )
            .await
            .expect("another source is not limited by mallory's");
    }

    #[tokio::test]
    async fn a_hash_made_cheaper_is_remade_at_the_next_good_sign_in() {
        let store = Arc::new(SqliteStore::in_memory());
        let key = udpchat_core::crypto::keys::StaticKey::generate(
            &mut argon2::password_hash::rand_core::OsRng,
        )
        .public();
        let cheap = Hasher::with_memory_kib(password::MIN_MEMORY_KIB).unwrap();
        PasswordAccounts::with_hasher(store.clone(), cheap)
            .sign_up(
                "alice",
                Zeroizing::new("right horse staple".into()),
                key,
                mallory(),
            )
            .await
            .unwrap();
        let stored = || store.user("alice").unwrap().unwrap().password_hash;
        let before = stored();
        assert!(before.contains("$m=64,"), "{before}");

        let standard = PasswordAccounts::new(store.clone());
        assert!(standard
            .check_password("alice", Zeroizing::new("wrong".into()), mallory())
            .await
            .is_err());
        assert_eq!(stored(), before, "a wrong password changes nothing");
        standard
            .check_password(
                "alice",
                Zeroizing::new("right horse staple".into()),
                mallory(),
            )
            .await
            .unwrap();
        let after = stored();
        assert!(after.contains("$m=19456,"), "{after}");
        standard
            .check_password(
                "alice",
                Zeroizing::new("right horse staple".into()),
                mallory(),
            )
            .await
            .unwrap();
        assert_eq!(stored(), after, "remade once");
    }

    #[tokio::test]
    async fn a_known_key_is_answered_without_waiting_and_a_new_one_replaces_it() {
        let store = Arc::new(SqliteStore::in_memory());
        let cheap = Hasher::with_memory_kib(password::MIN_MEMORY_KIB).unwrap();
        let accounts = PasswordAccounts::with_hasher(store.clone(), cheap);
        let (first, second) = (key(), key());
        accounts
            .sign_up(
                "bob",
                Zeroizing::new("a fine password!".into()),
                first.clone(),
                owner(),
            )
            .await
            .unwrap();
        // Answered at its first poll: the dispatcher serves `lookup` inline.
        let ready = |accounts: &PasswordAccounts| {
            let mut asked = accounts.identity("bob");
            let waker = std::task::Waker::noop();
            match asked
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
            {
                std::task::Poll::Ready(key) => key.unwrap(),
                std::task::Poll::Pending => panic!("the key was read from the store again"),
            }
        };
        assert_eq!(ready(&accounts), Some(first));
        accounts.set_identity("bob", second.clone()).await.unwrap();
        assert_eq!(ready(&accounts), Some(second.clone()));
        // What the cache says is what the store holds.
        let fresh = PasswordAccounts::new(store);
        assert_eq!(fresh.identity("bob").await.unwrap(), Some(second));
        assert_eq!(fresh.identity("nobody").await.unwrap(), None);
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_look_the_same_and_get_throttled() {
        let accounts = PasswordAccounts::new(Arc::new(SqliteStore::in_memory()));
        let key = udpchat_core::crypto::keys::StaticKey::generate(
            &mut argon2::password_hash::rand_core::OsRng,
        )
        .public();
        accounts
            .sign_up(
                "alice",
                Zeroizing::new("right horse staple".into()),
                key.clone(),
                mallory(),
            )
            .await
            .unwrap();
        assert_eq!(accounts.identity("alice").await.unwrap(), Some(key.clone()));
        assert_eq!(
            accounts
                .sign_up(
                    "alice",
                    Zeroizing::new("another fine one".into()),
                    key,
                    mallory()
                )
                .await
                .unwrap_err()
                .code,
            Code::NameTaken
        );
        accounts
            .check_password(
                "alice",
                Zeroizing::new("right horse staple".into()),
                mallory(),
            )
            .await
            .unwrap();
        let wrong = accounts
            .check_password("alice", Zeroizing::new("wrong".into()), mallory())
            .await
            .unwrap_err();
        let unknown = accounts
            .check_password(
                "mallory",
                Zeroizing::new("right horse staple".into()),
                mallory(),
            )
            .await
            .unwrap_err();
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.message, "wrong user name or password");
        for _ in 0..3 {
            let _ = accounts
                .check_password("alice", Zeroizing::new("wrong".into()), mallory())
                .await;
        }
        let throttled = accounts
            .check_password(
                "alice",
                Zeroizing::new("right horse staple".into()),
                mallory(),
            )
            .await
            .unwrap_err();
        assert_eq!(throttled.code, Code::Throttled, "{throttled:?}");
    }
}

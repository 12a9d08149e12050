use super::*;
use crate::store::SqliteStore;

fn mallory() -> Source {
    Source::of(([192, 0, 2, 66], 4000).into())
}

fn owner() -> Source {
    Source::of(([198, 51, 100, 1], 4000).into())
}

fn key() -> PublicKey {
    udpchat_core::crypto::keys::StaticKey::generate(&mut argon2::password_hash::rand_core::OsRng)
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
async fn a_key_looked_up_is_answered_without_waiting_and_a_new_one_replaces_it() {
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
    // A lookup answered at its first poll: the dispatcher serves `lookup`
    // inline when it is.
    let at_once = |accounts: &PasswordAccounts| {
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
    // Signed up and signed in (which checks the key his client offers),
    // but not looked up: bob's key is not held in memory.
    assert_eq!(
        accounts.identity_to_check("bob").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(accounts.keys.lock().len(), 0);
    // The first lookup reads the store (its store read may finish before
    // its first poll, so only what it leaves is checked), and keeps it.
    assert_eq!(accounts.identity("bob").await.unwrap(), Some(first.clone()));
    assert_eq!(accounts.keys.lock().len(), 1);
    assert_eq!(at_once(&accounts), Some(first));
    accounts.set_identity("bob", second.clone()).await.unwrap();
    assert_eq!(at_once(&accounts), Some(second.clone()));
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

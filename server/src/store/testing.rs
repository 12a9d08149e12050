//! The same store tests on both databases: [`on_every_store!`] makes, for
//! each test function taking a `&dyn Backend`, one test on a SQLite store
//! in memory and one on a scratch PostgreSQL database (skipped, loudly,
//! where no PostgreSQL can be had; see `udpchat_tests::postgres`).

use udpchat_tests::postgres::{scratch_database, ScratchDatabase};

use super::{Account, Backend, PgStore};

/// A PostgreSQL store on a database of its own, dropped after the store.
pub struct PgScratch {
    pub store: PgStore,
    _database: ScratchDatabase,
}

impl PgScratch {
    /// Another store on the same database: another server node.
    pub fn another_node(&self) -> PgStore {
        PgStore::open(&self._database.url, None).expect("the scratch database opens")
    }
}

/// A store on a new PostgreSQL database, or `None` if there is none here.
pub fn postgres() -> Option<PgScratch> {
    let database = scratch_database()?;
    let store = PgStore::open(&database.url, None).expect("the scratch database opens");
    Some(PgScratch {
        store,
        _database: database,
    })
}

/// Adds accounts named `users`.
pub fn with_users(store: &dyn Backend, users: &[&str]) {
    for user in users {
        store
            .create_user(&Account {
                name: user.to_string(),
                password_hash: format!("hash-of-{user}"),
            })
            .unwrap();
    }
}

/// `on_every_store!(test_a, test_b)`: each `fn test_a(store: &dyn Backend)`
/// in scope runs on SQLite and on PostgreSQL.
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&$crate::store::SqliteStore::in_memory());
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(db) = $crate::store::testing::postgres() {
                        super::$test(&db.store);
                    }
                }
            )*
        }
    };
}
pub(crate) use on_every_store;

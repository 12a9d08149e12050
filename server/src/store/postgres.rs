//! The PostgreSQL store, for several server nodes on one database: the
//! connection pool, every concern's schema (one list of migrations, as for
//! SQLite) and the users table; the group and mailbox queries are in
//! `groups/postgres.rs` and `mailbox/postgres.rs`.
//!
//! The driver is tokio-postgres with a deadpool pool (docs/DECISIONS.md).
//! The store traits are blocking, called on blocking threads as SQLite is,
//! so [`PgStore`] owns a small runtime that drives its connections and
//! each call waits on it ([`PgStore::run`]). Names compare byte by byte
//! (`COLLATE "C"`), so lists come out in the order SQLite gives them.

use std::future::Future;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{Account, Backend, Store, StoreError};

/// The schema, applied in order; `udpchat_schema.version` records how far.
const MIGRATIONS: &[&str] = &[
    r#"CREATE TABLE users (
        name TEXT COLLATE "C" PRIMARY KEY,
        password_hash TEXT NOT NULL,
        identity_key BYTEA,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    -- Offline delivery: prekeys and sealed messages.
    CREATE TABLE signed_prekeys (
        user_name TEXT COLLATE "C" PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
        prekey BYTEA NOT NULL
    );
    CREATE TABLE one_time_prekeys (
        user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        id BIGINT NOT NULL,
        prekey BYTEA NOT NULL,
        PRIMARY KEY (user_name, id)
    );
    CREATE TABLE stored_messages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recipient TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        sender TEXT COLLATE "C" NOT NULL,
        sent_at_ms BIGINT NOT NULL,
        sealed BYTEA NOT NULL
    );
    CREATE INDEX stored_by_recipient ON stored_messages (recipient, id);
    CREATE INDEX stored_by_age ON stored_messages (sent_at_ms);
    -- Group chat: groups, members with their delivery cursor (the last
    -- message their client acknowledged), and each group's message log.
    -- `seq` comes from one sequence for all groups and is never reused.
    CREATE TABLE chat_groups (
        name TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT COLLATE "C" REFERENCES users(name) ON DELETE SET NULL,
        open BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE group_members (
        group_name TEXT COLLATE "C" NOT NULL REFERENCES chat_groups(name) ON DELETE CASCADE,
        user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        cursor BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (group_name, user_name)
    );
    CREATE INDEX group_members_by_user ON group_members (user_name);
    CREATE TABLE group_messages (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        group_name TEXT COLLATE "C" NOT NULL REFERENCES chat_groups(name) ON DELETE CASCADE,
        sender TEXT COLLATE "C" NOT NULL,
        text TEXT NOT NULL,
        sent_at_ms BIGINT NOT NULL
    );
    CREATE INDEX group_messages_by_group ON group_messages (group_name, seq);"#,
    // Several nodes: each node's row, kept fresh by its heartbeat (a node
    // whose heartbeat stops is deleted by the others, and with it who was
    // signed in there), and who is signed in on which node, at what address.
    r#"CREATE TABLE nodes (
        id TEXT COLLATE "C" PRIMARY KEY,
        addr TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE signed_in (
        user_name TEXT COLLATE "C" PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
        node TEXT COLLATE "C" NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        client_addr TEXT NOT NULL,
        local_addrs TEXT[] NOT NULL DEFAULT '{}',
        since TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX signed_in_by_node ON signed_in (node);"#,
    // Several nodes count failed sign-ins and sign-ups together, so an
    // attacker spreading over nodes gets no more tries than on one.
    r#"CREATE TABLE sign_in_failures (
        key TEXT COLLATE "C" PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE sign_ups (
        source TEXT COLLATE "C" NOT NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX sign_ups_by_source ON sign_ups (source, at);"#,
    // Each node's load at its last heartbeat (JSON), for `status`.
    r#"ALTER TABLE nodes ADD COLUMN load TEXT;"#,
    // Private groups: their messages are sealed by each sender (the
    // server keeps the sealed bytes, and `text` is empty). Groups made
    // before stay as they were: not private.
    r#"ALTER TABLE chat_groups ADD COLUMN private BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE group_messages ADD COLUMN sealed BYTEA;"#,
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Taken (for the transaction) by whoever migrates, so that nodes started
/// together run each migration once.
const MIGRATION_LOCK: i64 = 0x7564_7063_6861_7431; // "udpchat1"

/// Connections one server node keeps open at most.
const POOL_SIZE: usize = 16;

/// How long to wait to connect, or for a connection from the pool.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct PgStore {
    pool: Pool,
    /// This server node's id: random, new at every start.
    node: String,
    /// The connection settings, for the listener's own connection.
    config: tokio_postgres::Config,
    /// Drives the pool's connections; every call waits on it. Shut down
    /// (without waiting) when the store drops, from whatever context.
    runtime: Option<tokio::runtime::Runtime>,
    /// Where, for messages: host, port and database, never the password.
    target: String,
    /// TLS, when the URL asks for it (`sslmode=require`: see `tls`).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`,
    /// or libpq's `key=value` form; with `sslmode=require`, over TLS,
    /// verified against the system's roots and the CA certificates in
    /// `ca`) and migrates its schema to this build's version. Refuses a
    /// schema newer than this build.
    pub fn open(url: &str, ca: Option<&std::path::Path>) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("the database URL: {e}")))?;
        // A database that does not answer is an error users see in
        // seconds, not a request that hangs (the URL may say otherwise:
        // `?connect_timeout=N`).
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(TIMEOUT);
        }
        config.application_name("udpchat-server");
        let target = describe(&config);
        let tls = super::tls::connector(&config, ca)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("udpchat-postgres")
            .enable_all()
            .build()?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
            None => Manager::from_config(config.clone(), NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let store = PgStore {
            pool,
            node: format!("{:016x}", rand::random::<u64>()),
            config,
            runtime: Some(runtime),
            target,
            tls,
        };
        store.run(store.migrate()).map_err(|e| match e {
            StoreError::Unreachable(why) => {
                StoreError::Unreachable(format!("{}: {why}", store.target))
            }
            e => e,
        })?;
        Ok(store)
    }

    /// Waits for `job` on the store's runtime. Called from blocking
    /// threads (see `store::blocking`) or outside any runtime, never from a
    /// task.
    pub(crate) fn run<T>(
        &self,
        job: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
            .handle()
            .block_on(job)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The connection settings.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector, when the database is reached over TLS.
    pub(crate) fn tls(&self) -> Option<&tokio_postgres_rustls::MakeRustlsConnect> {
        self.tls.as_ref()
    }

    /// Spawns `task` on the store's runtime (a task that talks to the
    /// database for as long as the store lives).
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(task);
        }
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// One statement on a connection from the pool: its rows.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self.client().await?.cached_query(sql, params).await?)
    }

    /// One statement on a connection from the pool: its row, if any.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.client().await?.cached_query_opt(sql, params).await?)
    }

    /// One statement on a connection from the pool: its one row.
    pub(crate) async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        Ok(self.client().await?.cached_query_one(sql, params).await?)
    }

    /// One statement on a connection from the pool: the rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        Ok(self.client().await?.cached_execute(sql, params).await?)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS udpchat_schema (version INTEGER NOT NULL)")
            .await?;
        let version: i32 = match tx
            .query_opt("SELECT version FROM udpchat_schema", &[])
            .await?
        {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO udpchat_schema (version) VALUES (0)", &[])
                    .await?;
                0
            }
        };
        let version = u32::try_from(version).unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(migration).await?;
            tx.execute("UPDATE udpchat_schema SET version = $1", &[&(i as i32 + 1)])
                .await?;
            tracing::info!(version = i + 1, "migrated the PostgreSQL schema");
        }
        tx.commit().await?;
        Ok(())
    }
}

/// `host:port/database` (or the socket's directory), without credentials.
fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// Statements prepared once per connection and kept (deadpool keeps each
/// connection's cache): a query is one round trip to the database, not
/// two (parse, then bind and execute).
#[allow(async_fn_in_trait)]
pub(crate) trait Cached: deadpool_postgres::GenericClient + Sync {
    async fn cached_query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn cached_query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    async fn cached_query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }

    async fn cached_execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}

impl<T: deadpool_postgres::GenericClient + Sync> Cached for T {}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Backend for PgStore {
    fn totals(&self) -> Result<super::Totals, StoreError> {
        self.run(async {
            let row = self.query_one(super::TOTALS, &[]).await?;
            Ok(super::Totals::from_columns(
                [row.get(0), row.get(1), row.get(2), row.get(3)],
                row.get(4),
            ))
        })
    }

    fn postgres(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<PgStore>> {
        Some(self)
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.target)
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        self.run(async {
            let row = self
                .query_one("SELECT version FROM udpchat_schema", &[])
                .await?;
            Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(0))
        })
    }
}

impl Store for PgStore {
    fn create_user(&self, account: &Account) -> Result<(), StoreError> {
        self.run(async {
            let inserted = self
                .execute(
                    "INSERT INTO users (name, password_hash) VALUES ($1, $2)
                     ON CONFLICT (name) DO NOTHING",
                    &[&account.name, &account.password_hash],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::UserExists(account.name.clone()));
            }
            Ok(())
        })
    }

    fn user(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.run(async {
            let row = self
                .query_opt(
                    "SELECT name, password_hash FROM users WHERE name = $1",
                    &[&name],
                )
                .await?;
            Ok(row.map(|row| Account {
                name: row.get(0),
                password_hash: row.get(1),
            }))
        })
    }

    fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        self.run(async {
            self.execute(
                "UPDATE users SET password_hash = $2 WHERE name = $1",
                &[&name, &password_hash],
            )
            .await?;
            Ok(())
        })
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.run(async {
            let removed = self
                .execute("DELETE FROM users WHERE name = $1", &[&name])
                .await?;
            Ok(removed > 0)
        })
    }

    fn users(&self) -> Result<Vec<String>, StoreError> {
        self.run(async {
            let rows = self
                .query("SELECT name FROM users ORDER BY name", &[])
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn set_identity(&self, name: &str, identity: &[u8]) -> Result<(), StoreError> {
        self.run(async {
            let updated = self
                .execute(
                    "UPDATE users SET identity_key = $2 WHERE name = $1",
                    &[&name, &identity],
                )
                .await?;
            if updated == 0 {
                return Err(StoreError::NoSuchUser(name.to_string()));
            }
            Ok(())
        })
    }

    fn identity(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(async {
            let row = self
                .query_opt("SELECT identity_key FROM users WHERE name = $1", &[&name])
                .await?;
            Ok(row.and_then(|row| row.get::<_, Option<Vec<u8>>>(0)))
        })
    }
}

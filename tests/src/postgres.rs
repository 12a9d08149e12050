//! PostgreSQL for tests: a scratch database per test, on the cluster that
//! `UDPCHAT_TEST_DATABASE` names (CI starts one with `.ci/postgres.sh`), or
//! else on a throw-away cluster this process starts with that script and a
//! watchdog stops when the process ends. When no PostgreSQL can be started
//! the tests that need one skip, saying so loudly on stderr; when
//! `UDPCHAT_TEST_DATABASE` is set, one that cannot be used is a failure.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// A database made for one test, dropped (with its connections) after it.
pub struct ScratchDatabase {
    /// Its URL, for `--database` and the store.
    pub url: String,
    name: String,
    cluster: &'static str,
}

impl ScratchDatabase {
    /// Runs `sql` on this database with `psql`; the rows it returned, one
    /// per line, columns separated by `|`.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let _ = psql(
            self.cluster,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A new, empty database, or `None` (said loudly, once) when no
/// PostgreSQL can be had here.
pub fn scratch_database() -> Option<ScratchDatabase> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = cluster()?;
    let name = format!(
        "udpchat_test_{}_{}_{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    if let Err(e) = psql(cluster, &format!("CREATE DATABASE {name}")) {
        panic!("cannot make a scratch database on {cluster}: {e}");
    }
    Some(ScratchDatabase {
        url: with_database(cluster, &name),
        name,
        cluster,
    })
}

/// The cluster's URL (its `postgres` database), found or started once
/// (for a child process to use as its `UDPCHAT_TEST_DATABASE`); `None`,
/// said loudly, where there is none.
pub fn cluster() -> Option<&'static str> {
    static CLUSTER: OnceLock<Option<String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            if let Some(url) = std::env::var("UDPCHAT_TEST_DATABASE")
                .ok()
                .filter(|url| !url.is_empty())
            {
                if let Err(e) = psql(&url, "SELECT 1") {
                    panic!("UDPCHAT_TEST_DATABASE={url} cannot be used: {e}");
                }
                return Some(url);
            }
            match start_cluster() {
                Ok(url) => Some(url),
                Err(why) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "\n\
                         ********************************************************************\n\
                         * SKIPPED: the PostgreSQL tests of this process did not run:\n\
                         *   {why}\n\
                         * Install PostgreSQL (apt-get install postgresql), or set\n\
                         * UDPCHAT_TEST_DATABASE=postgres://... (CI does; see .ci/run).\n\
                         ********************************************************************"
                    );
                    None
                }
            }
        })
        .as_deref()
}

/// Starts a cluster with `.ci/postgres.sh`, stopped when this process
/// exits.
fn start_cluster() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("udpchat-pg-test.{}", std::process::id()));
    postgres_sh(&dir, &[])
}

/// `.ci/postgres.sh start DIR --until THIS-PROCESS EXTRA`: the URL it
/// printed, or why it failed.
fn postgres_sh(dir: &Path, extra: &[&str]) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/postgres.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(dir)
        .args(["--until", &std::process::id().to_string()])
        .args(extra)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A cluster of its own that takes TCP connections on 127.0.0.1 over TLS
/// only, with a certificate signed by a CA made for it; stopped when
/// dropped.
pub struct TlsCluster {
    /// `postgres://udpchat@127.0.0.1:PORT/postgres?sslmode=require`.
    pub url: String,
    /// The CA's certificate (PEM), which verifies the cluster's.
    pub ca: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl TlsCluster {
    /// Starts one, or `None` (said loudly) where PostgreSQL cannot be
    /// started; where CI gave a PostgreSQL (`UDPCHAT_TEST_DATABASE`), one
    /// that cannot be started is a failure.
    pub fn start() -> Option<TlsCluster> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        cluster()?;
        let dir = std::env::temp_dir().join(format!(
            "udpchat-pg-tls.{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A port free now (a cluster started beside may take it first:
        // then the script fails, and so does the test, saying why).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = postgres_sh(&dir, &["--tls", &port.to_string()])
            .unwrap_or_else(|why| panic!("cannot start PostgreSQL with TLS: {why}"));
        Some(TlsCluster {
            url,
            ca: dir.join("ca.crt"),
            dir,
        })
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/postgres.sh");
        let _ = Command::new("bash")
            .arg(&script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Runs one statement with `psql`; its rows, unaligned.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `url` with its database replaced by `name` (a URL's path, or a
/// `key=value` string's `dbname`).
fn with_database(url: &str, name: &str) -> String {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return format!("{url} dbname={name}");
    };
    let scheme = &url[..url.len() - rest.len()];
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    format!("{scheme}{authority}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u:p@%2Ftmp%2Fpg:5432/postgres", "t1"),
            "postgres://u:p@%2Ftmp%2Fpg:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://h/db?sslmode=disable", "t1"),
            "postgresql://h/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("host=/tmp user=u", "t1"),
            "host=/tmp user=u dbname=t1"
        );
    }
}

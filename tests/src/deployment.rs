//! Where servers keep their state, for tests that run the same way on
//! both databases: the embedded SQLite file in a data dir, or a scratch
//! PostgreSQL database ([`crate::postgres`]) that several server nodes
//! share. [`on_every_store!`](crate::on_every_store) runs a test on each.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::postgres::{scratch_database, ScratchDatabase};
use crate::{binary, take, Client, Server};

/// Two nodes, with alice signed up on the first and bob on the second
/// (alice has heard that bob came).
pub struct AliceAndBob {
    pub alice: Client,
    pub bob: Client,
    pub one: Server,
    pub two: Server,
}

/// One deployment: its data dir (the first node's, holding the server key
/// every node shares) and, on PostgreSQL, its database.
pub struct Deployment {
    dir: tempfile::TempDir,
    database: Option<ScratchDatabase>,
}

impl Deployment {
    /// The default: SQLite in the data dir.
    pub fn sqlite() -> Deployment {
        Deployment {
            dir: tempfile::tempdir().expect("temp dir"),
            database: None,
        }
    }

    /// On a new PostgreSQL database; `None` (said loudly) where there is
    /// no PostgreSQL.
    pub fn postgres() -> Option<Deployment> {
        Some(Deployment {
            dir: tempfile::tempdir().expect("temp dir"),
            database: Some(scratch_database()?),
        })
    }

    /// Which database, for messages: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self.database {
            Some(_) => "postgres",
            None => "sqlite",
        }
    }

    /// The PostgreSQL database, if this deployment is on one.
    pub fn database(&self) -> Option<&ScratchDatabase> {
        self.database.as_ref()
    }

    /// The first node's data dir: the server key, and SQLite's file.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--database URL`, on PostgreSQL.
    fn database_args(&self) -> Vec<OsString> {
        match &self.database {
            Some(db) => vec!["--database".into(), db.url.clone().into()],
            None => Vec::new(),
        }
    }

    /// Starts the first node (on 127.0.0.1, an ephemeral port) with extra
    /// arguments; it makes the deployment's key on first start.
    pub fn start(&self, extra: &[&str]) -> Server {
        let mut args: Vec<OsString> = self.database_args();
        args.extend(extra.iter().map(OsString::from));
        Server::start_with_os(self.data_dir(), "127.0.0.1:0", &args)
    }

    /// Starts another node on the same database (PostgreSQL only): a data
    /// dir of its own, named `name`, and the deployment's key. Start the
    /// first node once before, so that the key exists.
    pub fn start_node(&self, name: &str, extra: &[&str]) -> Server {
        let (dir, mut args) = self.node(name);
        args.extend(extra.iter().map(OsString::from));
        Server::start_with_os(&dir, "127.0.0.1:0", &args)
    }

    /// Starts a node on `host`, inside its network namespace, at its
    /// address and [`SERVER_PORT`](crate::nat::SERVER_PORT) (PostgreSQL
    /// only: the database is reached on its Unix socket, which no network
    /// namespace hides). The first node (`first`) makes the deployment's
    /// key; start it before the others.
    pub fn start_node_on(&self, host: &crate::nat::Host, name: &str, first: bool) -> Server {
        let bind = std::net::SocketAddrV4::new(host.addr, crate::nat::SERVER_PORT).to_string();
        if first {
            return Server::start_in_netns_with(
                &host.netns,
                self.data_dir(),
                &bind,
                &self.database_args(),
            );
        }
        let (dir, args) = self.node(name);
        Server::start_in_netns_with(&host.netns, &dir, &bind, &args)
    }

    /// Another node's data dir, named `name`, and its arguments: the
    /// database and the deployment's key.
    fn node(&self, name: &str) -> (PathBuf, Vec<OsString>) {
        assert!(
            self.database.is_some(),
            "several nodes share a PostgreSQL database"
        );
        let dir: PathBuf = self.data_dir().join("nodes").join(name);
        std::fs::create_dir_all(&dir).expect("node data dir");
        let mut args: Vec<OsString> = self.database_args();
        args.push("--key".into());
        args.push(self.data_dir().join("server.priv").into());
        (dir, args)
    }

    /// Starts two nodes and signs up alice on the first and bob on the
    /// second; returns once alice heard bob come (presence across nodes).
    pub fn alice_and_bob_on_two_nodes(&self) -> AliceAndBob {
        let one = self.start(&[]);
        let two = self.start_node("two", &[]);
        let mut alice = Client::sign_up(one.addr, "alice");
        let bob = Client::sign_up(two.addr, "bob");
        take(&mut alice, "presence", |e| {
            e["user"] == "bob" && e["online"] == true
        });
        AliceAndBob {
            alice,
            bob,
            one,
            two,
        }
    }

    /// Runs `udpchat-server ARGS` (an operator's command: `user ...`,
    /// `group ...`, `migrate`) on this deployment, with `stdin` as input.
    pub fn operator(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(binary("udpchat-server"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(self.database_args())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run udpchat-server");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write the operator's input");
        child.wait_with_output().expect("udpchat-server ran")
    }

    /// [`Deployment::operator`] that must succeed; its standard output.
    pub fn operator_ok(&self, args: &[&str]) -> String {
        let out = self.operator(args, "");
        assert!(
            out.status.success(),
            "udpchat-server {args:?} on {}: {}",
            self.kind(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

/// `on_every_store!(test_a, test_b)`: each `fn test_a(deployment:
/// Deployment)` in scope runs once on SQLite (`on_sqlite::test_a`) and once
/// on PostgreSQL (`on_postgres::test_a`, skipped loudly where there is no
/// PostgreSQL).
#[macro_export]
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test($crate::deployment::Deployment::sqlite());
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(deployment) = $crate::deployment::Deployment::postgres() {
                        super::$test(deployment);
                    }
                }
            )*
        }
    };
}

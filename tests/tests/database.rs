//! End to end: choosing the database. Without `--database` the server keeps
//! everything in SQLite in its data dir; with `--database postgres://...`
//! in PostgreSQL, which several server nodes (each its own data dir, all
//! with the deployment's one key) share: an account, mail and a group's
//! log written through one node are there for a user who signs in on
//! another. The schema is versioned: `udpchat-server migrate` brings it up
//! to date, and a server refuses a schema newer than it knows.
//!
//! Not yet across nodes (issue 15, later parts): presence, `list`, live
//! pushes and take-over of a sign-in. These tests use only what the shared
//! store gives.

use std::process::Command;

use serde_json::json;
use udpchat_tests::deployment::Deployment;
use udpchat_tests::{binary, password, Client};

#[test]
fn without_a_database_url_everything_is_in_the_data_dir_and_with_one_nothing_is() {
    let sqlite = Deployment::sqlite();
    let server = sqlite.start(&[]);
    drop(Client::sign_up(server.addr, "alice"));
    assert!(sqlite.data_dir().join("udpchat.sqlite3").exists());
    assert_eq!(sqlite.operator_ok(&["user", "list"]), "alice\n");
    let status = sqlite.operator_ok(&["status"]);
    assert!(
        status.starts_with("SQLite ") && status.contains("one node"),
        "{status}"
    );

    let Some(postgres) = Deployment::postgres() else {
        return;
    };
    let server = postgres.start(&[]);
    drop(Client::sign_up(server.addr, "bob"));
    assert!(
        !postgres.data_dir().join("udpchat.sqlite3").exists(),
        "the server on PostgreSQL made a SQLite file"
    );
    assert_eq!(postgres.operator_ok(&["user", "list"]), "bob\n");
    let db = postgres.database().unwrap();
    assert_eq!(db.query("SELECT name FROM users"), "bob");
}

/// `udpchat-server --database URL user list`, which must fail: its stderr.
fn refused(url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(binary("udpchat-server"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database", url, "user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{url} was accepted");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn an_unknown_database_url_is_one_clear_line() {
    let stderr = refused("mysql://root@localhost/chat");
    assert_eq!(
        stderr.lines().next(),
        Some("Error: --database: expected postgres://USER:PASSWORD@HOST/DATABASE or sqlite:PATH")
    );

    // A PostgreSQL that is not there: said, with where, and no password.
    let stderr = refused("postgres://udpchat:hunter2@127.0.0.1:1/udpchat?connect_timeout=5");
    assert_eq!(
        stderr.lines().next(),
        Some("Error: no connection to PostgreSQL: 127.0.0.1:1/udpchat: Connection refused (os error 111)"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn migrate_brings_the_schema_up_and_a_newer_schema_is_refused() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let migrated = deployment.operator_ok(&["migrate"]);
    assert!(
        migrated.starts_with("PostgreSQL ") && migrated.trim_end().ends_with("schema at version 5"),
        "{migrated}"
    );
    // Again: nothing to do, the same version.
    assert_eq!(deployment.operator_ok(&["migrate"]), migrated);

    // A later udpchat-server moved the schema on: this one stops, saying so.
    let db = deployment.database().unwrap();
    db.query("UPDATE udpchat_schema SET version = 99");
    let out = deployment.operator(&["user", "list"], "");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "the database's schema is version 99, newer than this udpchat-server knows (5)"
        ),
        "{stderr}"
    );
}

#[test]
fn what_one_node_stored_is_there_for_a_user_who_signs_in_on_another() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let one = deployment.start(&[]);
    let two = deployment.start_node("two", &[]);
    assert_ne!(one.addr, two.addr);

    // An account the operator made, and groups, in the shared database.
    let out = deployment.operator(&["user", "add", "carole"], &password("carole"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob_dir = Client::away(one.addr, "bob");
    let mut alice = Client::sign_up(one.addr, "alice");
    deployment.operator_ok(&["group", "add", "group1", "alice", "bob", "carole"]);

    // alice writes to bob (away) and to the group, through node one.
    alice.line("send bob kept on node one");
    assert_eq!(alice.expect("queued")["to"], "bob");
    alice.line("gsend group1 hello from node one");
    let sent = alice.expect("group-sent");

    // bob comes back on node two: the mail and the group's message are
    // there, once each.
    let pw = password("bob");
    let mut bob = Client::start_in(two.addr, bob_dir.path(), &["-u", "bob", "-p", &pw]);
    let mail = bob.expect_where("message", |m| m["stored"] == true);
    assert_eq!(
        (&mail["from"], &mail["text"]),
        (&json!("alice"), &json!("kept on node one"))
    );
    // bob's client acknowledged it to node two; alice, on node one, is
    // told it was delivered.
    let delivered = alice.expect_where("delivered", |d| d["stored"] == true);
    assert_eq!(delivered["to"], "bob");
    let said = bob.expect_where("group-message", |m| m["group"] == "group1");
    assert_eq!(said["seq"], sent["seq"]);
    assert_eq!(said["text"], "hello from node one");

    // carole, whom the operator made, signs in on node two and catches up
    // on the group the same way.
    let mut carole = Client::sign_in(two.addr, "carole");
    let said = carole.expect_where("group-message", |m| m["group"] == "group1");
    assert_eq!(said["text"], "hello from node one");
    carole.line("group history group1");
    assert_eq!(
        carole.expect("group-history")["messages"][0]["text"],
        "hello from node one"
    );

    // One order across nodes: carole's message through node two comes
    // after alice's through node one.
    carole.line("gsend group1 and from node two");
    let later = carole.expect("group-sent");
    assert!(
        later["seq"].as_u64() > sent["seq"].as_u64(),
        "{later} {sent}"
    );
}

#[test]
fn a_database_over_tls_is_verified_before_anything_is_sent() {
    let Some(tls) = udpchat_tests::postgres::TlsCluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let migrate = |extra: &[&str]| {
        Command::new(binary("udpchat-server"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--database", &tls.url])
            .args(extra)
            .arg("migrate")
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run udpchat-server")
    };
    // Without the CA that signed it, the database's certificate is not
    // trusted: nothing is sent, and the operator is told why in one line.
    let out = migrate(&[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let port = tls
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert_eq!(
        stderr.lines().next(),
        Some(
            format!(
                "Error: no connection to PostgreSQL: 127.0.0.1:{port}/postgres: invalid peer certificate: UnknownIssuer"
            )
            .as_str()
        ),
        "{stderr}"
    );

    // With it, the server runs on that database: a user signs up and is
    // listed, over TLS.
    let ca = tls.ca.to_str().unwrap();
    let out = migrate(&["--database-ca", ca]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = udpchat_tests::Server::start_with(
        dir.path(),
        "127.0.0.1:0",
        &["--database", &tls.url, "--database-ca", ca],
    );
    let mut alice = Client::sign_up(server.addr, "alice");
    drop(Client::sign_up(server.addr, "bob"));
    alice.line("group create pals bob");
    alice.expect("group-created");
    let users = Command::new(binary("udpchat-server"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database", &tls.url, "--database-ca", ca, "user", "list"])
        .output()
        .expect("run udpchat-server");
    assert_eq!(String::from_utf8_lossy(&users.stdout), "alice\nbob\n");

    // The cluster takes no plain TCP (the URL without sslmode=require is
    // refused), so what worked above went over TLS.
    let plain = tls.url.split('?').next().unwrap();
    let out = Command::new(binary("udpchat-server"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database", plain, "migrate"])
        .output()
        .expect("run udpchat-server");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no encryption"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

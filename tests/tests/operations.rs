//! End to end: what an operator watches. The metrics endpoint
//! (`--metrics ADDR`) shows who is signed in, what waits in the queues,
//! how long pushes took to be acknowledged and how much mail waits, as
//! the server works; `udpchat-server status` says what the database holds
//! and, on PostgreSQL, each node's load as of its last heartbeat.

use serde_json::json;
use udpchat_tests::deployment::{AliceAndBob, Deployment};
use udpchat_tests::operations::{metric, read_until};
use udpchat_tests::{on_every_store, take, Client};

fn the_metrics_endpoint_follows_sessions_deliveries_and_mail(deployment: Deployment) {
    let server = deployment.start(&["--metrics", "127.0.0.1:0"]);
    let (status, body) = server.scrape("/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(metric(&body, "udpchat_signed_in"), Some(0.0), "{body}");
    assert_eq!(metric(&body, "udpchat_mail_waiting"), Some(0.0), "{body}");
    assert_eq!(
        metric(&body, "udpchat_push_delivery_seconds_count"),
        Some(0.0),
        "{body}"
    );

    drop(Client::away(server.addr, "carole"));
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    alice.line("group create pals bob");
    alice.expect("group-created");
    take(&mut bob, "groups", |e| e["groups"] == json!(["pals"]));
    let before = metric(
        &server.scrape("/metrics").1,
        "udpchat_push_delivery_seconds_count",
    )
    .unwrap();
    alice.line("gsend pals hello pals");
    assert_eq!(bob.expect("group-message")["text"], "hello pals");
    alice.line("send carole are you there?");
    assert_eq!(alice.expect("queued")["to"], "carole");

    // bob's acknowledgement of the group message reaches the server just
    // after bob printed it: read until the histogram counted it.
    let body = read_until("the group message's delivery", || {
        let body = server.scrape("/metrics").1;
        match metric(&body, "udpchat_push_delivery_seconds_count") {
            Some(n) if n > before => Ok(body),
            _ => Err(body),
        }
    });
    assert_eq!(metric(&body, "udpchat_signed_in"), Some(2.0), "{body}");
    assert!(metric(&body, "udpchat_sessions").unwrap() >= 2.0, "{body}");
    assert_eq!(metric(&body, "udpchat_accounts"), Some(3.0), "{body}");
    assert_eq!(metric(&body, "udpchat_groups"), Some(1.0), "{body}");
    assert_eq!(metric(&body, "udpchat_mail_waiting"), Some(1.0), "{body}");
    assert_eq!(
        metric(&body, "udpchat_mail_recipients"),
        Some(1.0),
        "{body}"
    );
    assert!(
        body.contains("# TYPE udpchat_push_delivery_seconds histogram\n"),
        "{body}"
    );
    // Every bucket line counts at most what the +Inf bucket counts.
    let all = metric(&body, "udpchat_push_delivery_seconds_bucket{le=\"+Inf\"}").unwrap();
    assert_eq!(
        all,
        metric(&body, "udpchat_push_delivery_seconds_count").unwrap()
    );

    // The operator's `status` says what the database holds.
    let status = deployment.operator_ok(&["status"]);
    assert!(
        status.contains(
            "3 accounts, 1 groups, 1 messages waiting for 1 offline users (the oldest sent "
        ),
        "{status}"
    );

    // Only /metrics is served.
    assert_eq!(server.scrape("/").0, "HTTP/1.1 404 Not Found");
    drop(bob);
    drop(alice);
}

on_every_store!(the_metrics_endpoint_follows_sessions_deliveries_and_mail);

#[test]
fn status_shows_each_nodes_load_from_its_heartbeat() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let AliceAndBob {
        mut alice,
        mut bob,
        one: _one,
        two: _two,
    } = deployment.alice_and_bob_on_two_nodes();
    alice.line("group create pals bob");
    alice.expect("group-created");
    take(&mut bob, "groups", |e| e["groups"] == json!(["pals"]));
    alice.line("gsend pals across nodes");
    assert_eq!(bob.expect("group-message")["text"], "across nodes");

    // Each node writes its load at its heartbeat (every 2 s): read until
    // both rows show their one session and what they delivered.
    let status = read_until("both nodes' load", || {
        let status = deployment.operator_ok(&["status"]);
        let loads: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("  1 sessions, "))
            .collect();
        let delivered = |l: &&str| !l.contains("last minute: 0 pushes delivered");
        if loads.len() == 2 && loads.iter().all(delivered) {
            Ok(status)
        } else {
            Err(status)
        }
    });
    assert!(
        status.contains("2 accounts, 1 groups, 0 messages waiting for 0 offline users\n"),
        "{status}"
    );
    assert!(status.contains(" (p50 <= "), "{status}");
    assert!(status.ends_with("2 nodes, 2 users signed in\n"), "{status}");
}

#[test]
fn a_scraper_that_sends_junk_or_nothing_gets_an_error_and_stops_no_one() {
    use std::io::{Read as _, Write as _};
    let server = Deployment::sqlite().start(&["--metrics", "127.0.0.1:0"]);
    let addr = server.metrics.unwrap();
    // One connection says nothing at all, and holds its slot.
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    // Another sends a head as long as allowed, with no end of line.
    let mut junk = std::net::TcpStream::connect(addr).unwrap();
    junk.set_read_timeout(Some(udpchat_tests::FAILSAFE))
        .unwrap();
    junk.write_all(&[b'A'; 8 * 1024]).unwrap();
    let mut answer = String::new();
    junk.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    // Meanwhile the metrics are served.
    let (status, body) = server.scrape("/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(metric(&body, "udpchat_signed_in"), Some(0.0), "{body}");
}

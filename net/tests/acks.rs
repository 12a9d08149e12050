//! When a client acknowledges a push: in the turn it reads it when someone
//! may wait on that acknowledgement, or with the next packet when the push
//! is one of a stream nobody waits on (a group's messages), so that one
//! ACK answers two. Each push type says which it is, in the registry.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use udpchat_core::context::{Client, Sender};
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::error::CommandError;
use udpchat_core::packet::{Encoded, Packet, Push};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush, Registry};
use udpchat_core::secure::SecureConfig;
use udpchat_core::transport;
use udpchat_core::wire::Pattern;
use udpchat_net::{Inbound, Inbox, Link, Peer};

/// A push of a stream: its acknowledgement may wait for the next packet.
struct Tick;

/// A push someone waits on: acknowledged at once.
struct Word;

#[derive(Serialize, Deserialize)]
struct Count(u32);

impl Packet for Tick {
    const TAG: &'static str = "tick";
}

impl Push for Tick {
    const SERVER_ONLY: bool = false;
    const ACK_AT_ONCE: bool = false;
    type Body = Count;
}

impl OnPush for Tick {
    async fn on_push(_: Client, _: Sender, _: Count) -> Result<(), CommandError> {
        Ok(())
    }
}

impl Packet for Word {
    const TAG: &'static str = "word";
}

impl Push for Word {
    const SERVER_ONLY: bool = false;
    type Body = Count;
}

impl OnPush for Word {
    async fn on_push(_: Client, _: Sender, _: Count) -> Result<(), CommandError> {
        Ok(())
    }
}

register! {
    Command::new(Tick::TAG, "A test's push of a stream.").on_push::<Tick>()
}

register! {
    Command::new(Word::TAG, "A test's push someone waits on.").on_push::<Word>()
}

/// Both ends hold an acknowledgement up to a minute, and so wait that long
/// before sending a packet again: within a test, an ACK held is one that
/// never comes, and one that comes was not held.
fn patient() -> SecureConfig {
    let server = SecureConfig::server();
    SecureConfig {
        transport: transport::Config {
            max_ack_delay: Duration::from_secs(60),
            max_backoff: Duration::from_secs(60),
            ..server.transport
        },
        ..server
    }
}

/// A sender, and a receiver it has a session with.
async fn pair() -> (Link, Link, Inbox, Peer) {
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    let public = key.public();
    let (receiver, start) = Link::server(
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        key,
        patient(),
    )
    .unwrap();
    let inbox = start.inbox();
    let (sender, start) = Link::server(
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        StaticKey::generate(&mut rand::rngs::OsRng),
        patient(),
    )
    .unwrap();
    let _ = start.inbox();
    let peer = sender
        .connect(receiver.local_addr(), public, Pattern::Nk)
        .await
        .unwrap();
    (sender, receiver, inbox, peer)
}

/// Waits for the next push in `inbox`: the receiver has read it.
async fn read(inbox: &mut Inbox) {
    loop {
        let arrived = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .expect("the push never came")
            .expect("the inbox closed");
        if matches!(arrived, Inbound::Envelope(_)) {
            return;
        }
    }
}

async fn acknowledged(fate: impl Future<Output = Result<(), CommandError>>) {
    tokio::time::timeout(Duration::from_secs(10), fate)
        .await
        .expect("the push was never acknowledged")
        .expect("the push failed");
}

#[test]
fn each_push_type_says_whether_its_acknowledgement_goes_at_once() {
    let registry = Registry::global();
    assert!(!registry.ack_at_once("tick"));
    assert!(registry.ack_at_once("word"));
    // Not a push of this registry: at once, as before anything was known.
    assert!(registry.ack_at_once("no-such-push"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_a_stream_waits_for_the_next_and_one_ack_answers_both() {
    let (sender, _receiver, mut inbox, peer) = pair().await;
    let mut first = Box::pin(sender.push(peer, Encoded::push::<Tick>(&Count(1))));
    read(&mut inbox).await;
    // Read, and its acknowledgement held: nothing going back carries it.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut first)
            .await
            .is_err(),
        "a push of a stream was acknowledged alone"
    );
    // The second makes two: one ACK goes at once, for both.
    let second = sender.push(peer, Encoded::push::<Tick>(&Count(2)));
    read(&mut inbox).await;
    acknowledged(first).await;
    acknowledged(second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_someone_waits_on_is_acknowledged_in_the_turn_it_is_read() {
    let (sender, _receiver, mut inbox, peer) = pair().await;
    let word = sender.push(peer, Encoded::push::<Word>(&Count(1)));
    read(&mut inbox).await;
    acknowledged(word).await;
}

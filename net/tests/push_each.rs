//! One packet pushed to each of several sessions in one operation: every
//! live session receives it once, and each session's caller hears that
//! session's own fate, a session that is gone included. Pushes made when
//! the driver comes to them carry what was gathered until then.

use std::time::Duration;

use tokio::net::UdpSocket;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::packet::{decode_body, Encoded};
use udpchat_core::wire::Pattern;
use udpchat_net::{Arrival, Inbound, Inbox, Link, Peer, Then};

mod common;

use common::{Note, Number};

/// A client listening on loopback, and the sender's session to it.
async fn receiver(sender: &Link) -> (Link, Inbox, Peer) {
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    let (link, inbox) = Link::spawn_client(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
    link.set_identity(Some(key.clone()));
    let peer = sender
        .connect(link.local_addr(), key.public(), Pattern::Ik)
        .await
        .unwrap();
    (link, inbox, peer)
}

async fn next_number(inbox: &mut Inbox) -> usize {
    loop {
        let arrived = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .expect("the push never came")
            .expect("the inbox closed");
        if let Inbound::Envelope(Arrival { envelope, .. }) = arrived {
            let Number(n) = decode_body(&envelope.body).expect("a note");
            return n;
        }
    }
}

/// The first `count` fates told on `heard`, sorted.
async fn fates_told<T: Ord + std::fmt::Debug>(
    heard: &mut tokio::sync::mpsc::UnboundedReceiver<(T, bool)>,
    count: usize,
) -> Vec<(T, bool)> {
    let mut told = Vec::new();
    for _ in 0..count {
        let fate = tokio::time::timeout(Duration::from_secs(10), heard.recv())
            .await
            .unwrap_or_else(|_| panic!("a fate never came; told {told:?}"))
            .unwrap();
        told.push(fate);
    }
    told.sort();
    told
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_push_to_several_sessions_reaches_each_once_and_each_hears_its_own_fate() {
    let (sender, _) = Link::spawn_client(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
    sender.set_identity(Some(StaticKey::generate(&mut rand::rngs::OsRng)));
    let (_a, mut inbox_a, to_a) = receiver(&sender).await;
    let (_b, mut inbox_b, to_b) = receiver(&sender).await;
    let (_c, _inbox_c, to_c) = receiver(&sender).await;
    sender.forget(to_c);

    let (fates, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let then = |who: &'static str| -> Then {
        let fates = fates.clone();
        Box::new(move |result| {
            let _ = fates.send((who, result.is_ok()));
        })
    };
    sender.push_each_then(
        Encoded::push::<Note>(&Number(7)),
        vec![(to_a, then("a")), (to_c, then("gone")), (to_b, then("b"))],
    );
    let told = fates_told(&mut heard, 3).await;
    assert_eq!(told, [("a", true), ("b", true), ("gone", false)]);
    assert_eq!(next_number(&mut inbox_a).await, 7);
    assert_eq!(next_number(&mut inbox_b).await, 7);
    // Once each.
    sender.push_each_then(
        Encoded::push::<Note>(&Number(8)),
        vec![(to_a, then("a")), (to_b, then("b"))],
    );
    assert_eq!(next_number(&mut inbox_a).await, 8);
    assert_eq!(next_number(&mut inbox_b).await, 8);
}

/// `push_each_made` runs its maker when the driver comes to it, not when
/// it is called: what the caller gathers meanwhile goes in the pushes it
/// makes, in order, and each push's fate is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_made_when_the_driver_comes_to_them_carry_what_was_gathered_until_then() {
    let (sender, _) = Link::spawn_client(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
    sender.set_identity(Some(StaticKey::generate(&mut rand::rngs::OsRng)));
    let (_a, mut inbox_a, to_a) = receiver(&sender).await;

    let gathered = std::sync::Arc::new(std::sync::Mutex::new(vec![1]));
    let (fates, mut heard) = tokio::sync::mpsc::unbounded_channel();
    // Held while more is gathered: the driver, come to the operation,
    // waits for it, so the maker runs after what follows, whenever the
    // driver comes.
    {
        let mut gathering = gathered.lock().unwrap();
        let gathered = gathered.clone();
        sender.push_each_made(Box::new(move || {
            let numbers = std::mem::take(&mut *gathered.lock().unwrap());
            numbers
                .into_iter()
                .map(|n| {
                    let fates = fates.clone();
                    let then: Then = Box::new(move |result| {
                        let _ = fates.send((n, result.is_ok()));
                    });
                    (Encoded::push::<Note>(&Number(n)), vec![(to_a, then)])
                })
                .collect()
        }));
        gathering.extend([2, 3]);
    }

    for n in 1..=3 {
        assert_eq!(next_number(&mut inbox_a).await, n, "in the order gathered");
    }
    let told = fates_told(&mut heard, 3).await;
    assert_eq!(told, [(1, true), (2, true), (3, true)]);
}

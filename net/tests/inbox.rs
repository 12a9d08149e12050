//! A client's pushes: each is acknowledged once its reader is done with
//! it (dropped its [`Arrival`]), so that what a client shows is what its
//! senders hear arrived. A dispatcher that falls behind for longer than a
//! hold lasts gets what the transport took in kept past a full inbox,
//! never dropped, while the driver stops reading the socket.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::packet::{decode_body, Encoded};
use udpchat_core::wire::Pattern;
use udpchat_net::{Arrival, Inbound, Inbox, Link, Peer, INBOX_CAPACITY};

mod common;

use common::{Note, Number};

/// A request a reader sends and nobody answers.
struct Ask;

impl udpchat_core::packet::Packet for Ask {
    const TAG: &'static str = "ask";
}

impl udpchat_core::packet::Request for Ask {
    type Body = Number;
    type Reply = Number;
}

/// A receiving client (its Link and inbox), whose pushes' acknowledgements
/// are held for `hold` at most, and a sending one with an end-to-end
/// session to it.
async fn two_clients(hold: Duration) -> (Link, Inbox, Link, Peer) {
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    let mut config = Link::client_config();
    config.transport.max_ack_hold = hold;
    let (receiver, inbox) =
        Link::spawn_client_with(UdpSocket::bind("127.0.0.1:0").await.unwrap(), config).unwrap();
    receiver.set_identity(Some(key.clone()));
    let (sender, _) = Link::spawn_client(UdpSocket::bind("127.0.0.1:0").await.unwrap()).unwrap();
    sender.set_identity(Some(StaticKey::generate(&mut rand::rngs::OsRng)));
    let peer = sender
        .connect(receiver.local_addr(), key.public(), Pattern::Ik)
        .await
        .unwrap();
    (receiver, inbox, sender, peer)
}

/// Longer than any test here: a hold ends only when its reader is done.
const UNTIL_DONE: Duration = Duration::from_secs(600);
/// Shorter than a reader that falls behind: the transport's holds end by
/// themselves, and the sender goes on.
const BRIEF: Duration = Duration::from_millis(20);

/// The next push in the inbox (its number, and its arrival, kept).
async fn next_push(inbox: &mut Inbox) -> (usize, Arrival) {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .expect("a push within 10 s")
            .expect("the inbox open");
        if let Inbound::Envelope(arrival) = next {
            let Number(n) = decode_body(&arrival.envelope.body).expect("a note");
            return (n, arrival);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_acknowledged_once_its_reader_is_done_with_it() {
    let (_receiver, mut inbox, sender, peer) = two_clients(UNTIL_DONE).await;
    let first = tokio::spawn(sender.push(peer, Encoded::push::<Note>(&Number(0))));
    let (n, first_arrival) = next_push(&mut inbox).await;
    assert_eq!(n, 0);
    // A second push gets through while the first is held: delivery does
    // not wait, only the acknowledgement does.
    let second = tokio::spawn(sender.push(peer, Encoded::push::<Note>(&Number(1))));
    let (n, second_arrival) = next_push(&mut inbox).await;
    assert_eq!(n, 1);
    assert!(
        !first.is_finished() && !second.is_finished(),
        "acknowledged while their reader still had them"
    );
    drop(first_arrival);
    tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("acknowledged once read")
        .unwrap()
        .expect("delivered");
    assert!(!second.is_finished(), "the second is still held");
    drop(second_arrival);
    tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("acknowledged once read")
        .unwrap()
        .expect("delivered");
}

/// The reader is done with `arrival` while its link stops: the push is
/// acknowledged as the link stops, not left to fail at its sender.
async fn done_with_as_it_stops(
    arrival: Arrival,
    stopping: JoinHandle<()>,
    push: JoinHandle<Result<(), CommandError>>,
) {
    drop(arrival);
    stopping.await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), push)
        .await
        .expect("acknowledged as the link stopped, not left to fail")
        .unwrap()
        .expect("delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_being_handled_when_the_link_stops_is_acknowledged_once_done() {
    let (receiver, mut inbox, sender, peer) = two_clients(UNTIL_DONE).await;
    let push = tokio::spawn(sender.push(peer, Encoded::push::<Note>(&Number(7))));
    let (_, arrival) = next_push(&mut inbox).await;
    // The client leaves while it shows the push: the driver has stopped
    // reading by the time the push is done with (a moment to get there;
    // were the release first, it would pass without the driver waiting).
    let stopping = tokio::spawn(async move { receiver.stop().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stopping.is_finished(),
        "stopped before its push was done with"
    );
    done_with_as_it_stops(arrival, stopping, push).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_when_the_link_stops_fails_at_once_and_the_push_it_checked_is_acknowledged(
) {
    let (receiver, mut inbox, sender, peer) = two_clients(UNTIL_DONE).await;
    let push = tokio::spawn(sender.push(peer, Encoded::push::<Note>(&Number(7))));
    let (_, arrival) = next_push(&mut inbox).await;
    // Its reader asks something before it is done with it (a client checks
    // the sender of a message with the server), and the answer has not
    // come when the client leaves: the driver stops reading, so none will.
    let check = tokio::spawn(receiver.request(arrival.from, Encoded::request::<Ask>(&Number(1))));
    let stopping = tokio::spawn(async move { receiver.stop().await });
    let asked = tokio::time::timeout(Duration::from_secs(10), check)
        .await
        .expect("the check fails when the link stops, not when its holds end")
        .unwrap();
    assert_eq!(asked.unwrap_err().code, Code::Unreachable);
    // Done with the push then: its acknowledgement still goes, so its
    // sender does not keep it for the next sign-in too.
    done_with_as_it_stops(arrival, stopping, push).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_waits_for_the_pushes_held_and_their_acknowledgements() {
    let (receiver, mut inbox, sender, peer) = two_clients(UNTIL_DONE).await;
    // Nothing held: settled at once.
    tokio::time::timeout(Duration::from_secs(10), receiver.settle())
        .await
        .expect("settled with nothing held");
    let push = tokio::spawn(sender.push(peer, Encoded::push::<Note>(&Number(3))));
    let (_, arrival) = next_push(&mut inbox).await;
    let settling = tokio::spawn({
        let receiver = receiver.clone();
        async move { receiver.settle().await }
    });
    // Signing out waits here while the push is shown.
    let early = tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await;
    assert!(early.is_err(), "nothing else comes");
    assert!(!settling.is_finished(), "settled while a push was held");
    drop(arrival);
    tokio::time::timeout(Duration::from_secs(10), settling)
        .await
        .expect("settled once the push was done with")
        .unwrap();
    // The acknowledgement went before `settle` said so: the sender hears
    // it arrived while the receiver stays as it is (not stopped).
    tokio::time::timeout(Duration::from_secs(10), push)
        .await
        .expect("acknowledged")
        .unwrap()
        .expect("delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_past_a_full_inbox_wait_for_the_reader_and_none_acknowledged_is_lost() {
    const PUSHES: usize = INBOX_CAPACITY + 1_000;
    let (_receiver, mut inbox, sender, peer) = two_clients(BRIEF).await;
    let pushes: Vec<_> = (0..PUSHES)
        .map(|n| tokio::spawn(sender.push(peer, Encoded::push::<Note>(&Number(n)))))
        .collect();

    // Nobody reads until the inbox is full (and more has come since).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while inbox.len() < INBOX_CAPACITY {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the inbox never filled: {} waiting",
            inbox.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let reader = tokio::spawn(async move {
        let mut numbers = BTreeSet::new();
        // Until all came, or nothing more comes for a while.
        while numbers.len() < PUSHES {
            match tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await {
                Ok(Some(Inbound::Envelope(Arrival { envelope, .. }))) => {
                    let Number(n) = decode_body(&envelope.body).expect("a note");
                    assert!(numbers.insert(n), "note {n} came twice");
                }
                Ok(Some(Inbound::Closed { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
        numbers
    });
    // Each push was acknowledged, so each must reach the reader.
    for push in pushes {
        push.await.unwrap().expect("acknowledged");
    }
    let numbers = reader.await.unwrap();
    assert_eq!(
        PUSHES - numbers.len(),
        0,
        "acknowledged notes that never reached the reader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_stopped_with_pushes_held_hands_them_to_the_reader_first() {
    const PUSHES: usize = INBOX_CAPACITY + 1_000;
    let (receiver, mut inbox, sender, peer) = two_clients(BRIEF).await;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let pushes: Vec<_> = (0..PUSHES)
        .map(|n| {
            let push = sender.push(peer, Encoded::push::<Note>(&Number(n)));
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let pushed = push.await;
                if pushed.is_ok() {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                pushed
            })
        })
        .collect();
    // Nobody reads until more was acknowledged than the inbox holds: the
    // rest waits in the driver.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acknowledged.load(Ordering::SeqCst) <= INBOX_CAPACITY {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} acknowledged",
            acknowledged.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The client leaves while its reader is behind; the reader goes on
    // reading until the inbox closes.
    let stopping = tokio::spawn(async move { receiver.stop().await });
    // The reader starts a moment later, so that the driver is stopping
    // with pushes still held (were it first, room would free up and they
    // would go anyway; the test passes either way with the driver right).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut numbers = BTreeSet::new();
    while let Some(next) = inbox.recv().await {
        if let Inbound::Envelope(Arrival { envelope, .. }) = next {
            let Number(n) = decode_body(&envelope.body).expect("a note");
            numbers.insert(n);
        }
    }
    stopping.await.unwrap();
    // What was not acknowledged fails at the sender; the rest arrived.
    sender.stop().await;
    let mut lost = Vec::new();
    for (n, push) in pushes.into_iter().enumerate() {
        if push.await.unwrap().is_ok() && !numbers.contains(&n) {
            lost.push(n);
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged notes never reached the reader (of {} that did)",
        lost.len(),
        numbers.len()
    );
}

//! End to end, on raw sessions: a group member who was away gets what
//! they missed from the server's log (the backlog, packed several
//! messages a push), and then the rest live, each message once and in the
//! group's order, even when they sign in while the group is busy.

use std::collections::BTreeMap;
use std::time::Duration;

use udpchat_commands::group::create::{Create, CreateBody};
use udpchat_commands::group_message::GroupMessage;
use udpchat_commands::group_messages::GroupMessages;
use udpchat_commands::gsend::{Accepted, GroupLine, GroupSend};
use udpchat_commands::logout::Logout;
use udpchat_commands::signin::SignIn;
use udpchat_commands::signup::SignUp;
use udpchat_core::group::GroupMessage as Line;
use udpchat_core::packet::{decode_body, decode_reply, Encoded, Packet, PushBody};
use udpchat_tests::raw::RawClient;
use udpchat_tests::Server;

/// The next `count` group messages pushed to `member`, and in how many
/// pushes they came; other pushes (the group listing, presence) are
/// skipped.
fn group_lines(member: &RawClient, name: &str, count: usize) -> (Vec<Line>, usize) {
    let (mut got, mut pushes) = (Vec::<Line>::new(), 0);
    while got.len() < count {
        let (tag, body) = member
            .next_push(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{name}: only {} of {count} messages came", got.len()));
        if tag == GroupMessage::TAG {
            got.push(decode_body::<PushBody<GroupMessage>>(&body).unwrap());
        } else if tag == GroupMessages::TAG {
            got.extend(
                decode_body::<PushBody<GroupMessages>>(&body)
                    .unwrap()
                    .messages,
            );
        } else {
            continue;
        }
        pushes += 1;
    }
    (got, pushes)
}

/// `away` signed up and signed out again, and alice signed in with a
/// group "team" of them all: alice, then the members away.
fn team_with_members_away(server: &Server, away: &[&str]) -> (RawClient, Vec<RawClient>) {
    let localhost = "127.0.0.1".parse().unwrap();
    let members: Vec<RawClient> = away
        .iter()
        .map(|name| {
            let member = RawClient::connect(server, localhost);
            member.sign::<SignUp>(name).expect("signed up");
            member.ask::<Logout>(&()).expect("signed out");
            member
        })
        .collect();
    let alice = RawClient::connect(server, localhost);
    alice.sign::<SignUp>("alice").expect("alice signed up");
    alice
        .ask::<Create>(&CreateBody {
            group: "team".into(),
            open: false,
            members: away.iter().map(|name| name.to_string()).collect(),
            private: false,
        })
        .expect("team created");
    (alice, members)
}

#[test]
fn a_member_back_after_an_absence_gets_what_they_missed_several_messages_a_push() {
    const MISSED: usize = 40;
    let server = Server::start();
    let (alice, mut away) = team_with_members_away(&server, &["bob"]);
    let bob = away.pop().expect("bob");
    for i in 0..MISSED {
        alice
            .ask::<GroupSend>(&GroupLine {
                group: "team".into(),
                text: format!("message {i} while bob was away"),
                sealed: None,
                members: None,
            })
            .expect("accepted");
    }

    bob.sign::<SignIn>("bob").expect("bob back");
    let (got, pushes) = group_lines(&bob, "bob", MISSED);
    let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
    let sent: Vec<String> = (0..MISSED)
        .map(|i| format!("message {i} while bob was away"))
        .collect();
    // A duplicate would have taken the place of a later message.
    assert_eq!(texts, sent, "every message once, in the order sent");
    assert!(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "in the group's order"
    );
    // Each push is a datagram sealed, sent and acknowledged: 40 short
    // messages take a handful, not 40.
    assert!(
        pushes <= MISSED / 4,
        "{MISSED} messages took {pushes} pushes"
    );
}

/// Members who sign in while a group is busy (a sender keeping eight
/// messages going, so that commits follow each other back to back under
/// the group's lock) each get every message once, in the group's order:
/// what they missed from the store, then the rest live, with no gap and
/// no repeat where the two meet.
#[test]
fn members_signing_in_while_the_group_is_busy_get_every_message_once_in_order() {
    const ROUNDS: usize = 40;
    const AT_ONCE: usize = 8;
    let server = Server::start();
    let (alice, late) = team_with_members_away(&server, &["bob", "carol"]);

    // After rounds 10 and 20 alice waits until bob, then carol, starts
    // signing in, so that her later rounds come while they do.
    let (rounds_done, rounds) = std::sync::mpsc::sync_channel(0);
    let (go, going) = std::sync::mpsc::channel::<()>();
    let sending = std::thread::spawn(move || {
        let mut placed = BTreeMap::new();
        for round in 0..ROUNDS {
            let lines: Vec<Encoded> = (0..AT_ONCE)
                .map(|i| {
                    Encoded::request::<GroupSend>(&GroupLine {
                        group: "team".into(),
                        text: format!("round {round} line {i}"),
                        sealed: None,
                        members: None,
                    })
                })
                .collect();
            for (i, reply) in alice.requests_at_once(lines).into_iter().enumerate() {
                let accepted: Accepted = decode_reply(&reply.expect("accepted")).unwrap();
                placed.insert(accepted.seq, format!("round {round} line {i}"));
            }
            if round == ROUNDS / 4 || round == ROUNDS / 2 {
                rounds_done.send(round).expect("the test waits");
                going.recv().expect("the test lets alice go on");
            }
        }
        placed
    });
    for (member, name) in late.iter().zip(["bob", "carol"]) {
        rounds.recv().expect("alice is sending");
        go.send(()).expect("alice waits");
        member.sign::<SignIn>(name).expect("back");
    }
    let placed = sending.join().expect("alice sent every line");
    assert_eq!(placed.len(), ROUNDS * AT_ONCE, "one place each");

    for (member, name) in late.iter().zip(["bob", "carol"]) {
        let (got, _) = group_lines(member, name, placed.len());
        let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
        let expected: Vec<u64> = placed.keys().copied().collect();
        assert_eq!(seqs, expected, "{name}: missing, repeated or out of order");
        for line in &got {
            assert_eq!(line.text, placed[&line.seq], "{name}: message {}", line.seq);
        }
    }
}

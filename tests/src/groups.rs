//! What group tests check on clients: the group messages they got, and
//! that a burst reached every member once each, in one order.

use crate::{take, Client};

/// The next `count` group messages, as (seq, from, text).
pub fn group_messages(
    client: &mut Client,
    group: &str,
    count: usize,
) -> Vec<(u64, String, String)> {
    (0..count)
        .map(|_| {
            let m = take(client, "group-message", |e| e["group"] == group);
            (
                m["seq"].as_u64().expect("seq"),
                m["from"].as_str().unwrap().to_string(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Checks a crowd's burst in `group`: each of the first `senders` of
/// `members` sent `per_sender` messages (their `group-sent` events give
/// each its place), and every member got every message but their own, once
/// each, in that one order, with the same text as everyone else. `who(m)`
/// names member `m` in a failure.
pub fn one_order_once_each(
    members: &mut [Client],
    names: &[String],
    senders: usize,
    per_sender: usize,
    group: &str,
    who: impl Fn(usize) -> String,
) {
    use std::collections::BTreeMap;
    // Each sender learns where the server put each of its messages.
    let mut order: BTreeMap<u64, String> = BTreeMap::new();
    for (s, sender) in members.iter_mut().take(senders).enumerate() {
        for _ in 0..per_sender {
            let seq = sender.expect("group-sent")["seq"].as_u64().unwrap();
            order.insert(seq, names[s].clone());
        }
    }
    assert_eq!(order.len(), senders * per_sender, "one place each");
    let mut texts: BTreeMap<u64, String> = BTreeMap::new();
    for (m, member) in members.iter_mut().enumerate() {
        let own = if m < senders { per_sender } else { 0 };
        let got = group_messages(member, group, senders * per_sender - own);
        let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
        let expected: Vec<u64> = order
            .iter()
            .filter(|(_, from)| **from != names[m])
            .map(|(seq, _)| *seq)
            .collect();
        assert_eq!(
            seqs,
            expected,
            "{}: missing, repeated or out of order",
            who(m)
        );
        for (seq, from, text) in got {
            assert_eq!(from, order[&seq]);
            let same = texts.entry(seq).or_insert_with(|| text.clone());
            assert_eq!(*same, text, "everyone sees the same message {seq}");
        }
    }
}

/// The client leaves; nothing of a group came again after what the test
/// took.
pub fn no_more_group_messages(client: Client) {
    let (_, rest) = client.finish();
    let again: Vec<u64> = rest
        .iter()
        .filter(|e| e["event"] == "group-message")
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert!(again.is_empty(), "duplicates: {again:?}");
}

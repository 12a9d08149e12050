use super::*;
use crate::store::testing::{on_every_store, with_users};
use crate::store::Backend;
use udpchat_core::trims::Trims;

fn names(users: &[&str]) -> Vec<String> {
    users.iter().map(|u| u.to_string()).collect()
}

fn groups_are_made_once_with_known_members(store: &dyn Backend) {
    with_users(store, &["alice", "bob"]);
    let info = store
        .create_group(
            "group1",
            Some("alice"),
            Kind::default(),
            &names(&["alice", "bob"]),
        )
        .unwrap();
    assert_eq!(info.members, ["alice", "bob"]);
    assert_eq!(info.owner.as_deref(), Some("alice"));
    assert!(matches!(
        store.create_group("group1", None, Kind::default(), &[]),
        Err(StoreError::GroupExists(_))
    ));
    assert!(matches!(
        store.create_group("group2", None, Kind::default(), &names(&["zed"])),
        Err(StoreError::NoSuchUser(_))
    ));
    assert!(
        store.group("group2").unwrap().is_none(),
        "nothing half made"
    );
    assert_eq!(store.groups_of("bob").unwrap(), std::slice::from_ref(&info));
    assert_eq!(store.groups().unwrap(), [info]);
}

fn the_log_is_ordered_bounded_and_for_members_only(store: &dyn Backend) {
    with_users(store, &["alice", "bob", "carol"]);
    store
        .create_group(
            "group1",
            Some("alice"),
            Kind::default(),
            &names(&["alice", "bob"]),
        )
        .unwrap();
    let seqs: Vec<u64> = (0..5)
        .map(|i| {
            let (message, members) = store
                .append("group1", "alice", &format!("m{i}"), i, Some(3))
                .unwrap();
            assert_eq!(members, [("alice".to_string(), 0), ("bob".to_string(), 0)]);
            message.seq
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let kept = store.messages_after("group1", 0).unwrap();
    assert_eq!(
        kept.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m2", "m3", "m4"]
    );
    assert_eq!(store.last_messages("group1", 2).unwrap()[0].text, "m3");
    assert!(matches!(
        store.append("group1", "carol", "hi", 0, Some(3)),
        Err(StoreError::NotAMember { .. })
    ));
    assert!(matches!(
        store.append("nogroup", "carol", "hi", 0, Some(3)),
        Err(StoreError::NoSuchGroup(_))
    ));
    // A new member starts after what was said before it joined.
    store.add_members("group1", &names(&["carol"])).unwrap();
    assert_eq!(store.cursor("group1", "carol").unwrap(), Some(seqs[4]));
    store
        .advance_cursors(&[("group1".into(), "bob".into(), seqs[3])])
        .unwrap();
    store
        .advance_cursors(&[("group1".into(), "bob".into(), seqs[1])])
        .unwrap();
    assert_eq!(
        store.cursor("group1", "bob").unwrap(),
        Some(seqs[3]),
        "never back"
    );
}

fn a_group_commit_stores_each_message_in_order_and_refuses_only_strangers(store: &dyn Backend) {
    with_users(store, &["alice", "bob", "carol"]);
    store
        .create_group("group1", None, Kind::default(), &names(&["alice", "bob"]))
        .unwrap();
    let draft = |from: &str, text: &str| Draft {
        from: from.into(),
        post: Post::Plain(text.into()),
        time_ms: 7,
    };
    let (appended, members) = store
        .append_all(
            "group1",
            &[
                draft("alice", "one"),
                draft("carol", "sneaky"),
                draft("bob", "two"),
            ],
            Some(10),
        )
        .unwrap();
    assert_eq!(members.len(), 2);
    assert!(matches!(appended[1], Err(StoreError::NotAMember { .. })));
    let (one, two) = (appended[0].as_ref().unwrap(), appended[2].as_ref().unwrap());
    assert_eq!((one.text.as_str(), two.text.as_str()), ("one", "two"));
    assert!(one.seq < two.seq);
    let log: Vec<String> = store
        .messages_after("group1", 0)
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(log, ["one", "two"], "committed, and nothing of carol's");
    assert!(matches!(
        store.append_all("nogroup", &[draft("alice", "x")], Some(10)),
        Err(StoreError::NoSuchGroup(_))
    ));
}

fn owners_hand_over_and_the_last_one_out_deletes_the_group(store: &dyn Backend) {
    with_users(store, &["alice", "bob", "carol"]);
    store
        .create_group(
            "group1",
            Some("alice"),
            Kind::default(),
            &names(&["alice", "bob", "carol"]),
        )
        .unwrap();
    store.append("group1", "bob", "hi", 0, Some(10)).unwrap();
    let (info, removed) = store
        .remove_members("group1", &names(&["alice", "zed"]))
        .unwrap();
    assert_eq!(removed, ["alice"]);
    assert_eq!(info.owner.as_deref(), Some("bob"));
    let (info, _) = store
        .remove_members("group1", &names(&["bob", "carol"]))
        .unwrap();
    assert!(info.members.is_empty());
    assert!(store.group("group1").unwrap().is_none());
    // The name is free again, and numbers are not reused.
    store
        .create_group("group1", None, Kind::default(), &names(&["alice"]))
        .unwrap();
    assert!(store.messages_after("group1", 0).unwrap().is_empty());
    let (message, _) = store
        .append("group1", "alice", "again", 0, Some(10))
        .unwrap();
    assert_eq!(message.seq, 2);
}

fn a_private_group_keeps_only_sealed_lines_for_its_members_as_they_are(store: &dyn Backend) {
    with_users(store, &["alice", "bob", "carol"]);
    let private = Kind {
        open: false,
        private: true,
    };
    let info = store
        .create_group("secret", Some("alice"), private, &names(&["alice", "bob"]))
        .unwrap();
    assert!(info.private);
    assert!(store.group("secret").unwrap().unwrap().private);
    assert!(store.groups_of("bob").unwrap()[0].private);
    store
        .create_group("open", None, Kind::default(), &names(&["alice"]))
        .unwrap();
    let sealed = |members: &[&str]| Draft {
        from: "alice".into(),
        post: Post::Sealed {
            line: vec![0xa5; 40],
            members: members_digest(members),
        },
        time_ms: 9,
    };
    let plain = Draft {
        from: "alice".into(),
        post: Post::Plain("in the clear".into()),
        time_ms: 9,
    };
    let (appended, _) = store
        .append_all(
            "secret",
            &[
                plain.clone(),
                sealed(&["alice", "bob", "carol"]),
                sealed(&["bob", "alice"]),
            ],
            Some(10),
        )
        .unwrap();
    assert!(matches!(appended[0], Err(StoreError::NotSealed(_))));
    assert!(matches!(appended[1], Err(StoreError::MembersChanged(_))));
    let stored = appended[2].as_ref().unwrap();
    assert_eq!(stored.text, "");
    assert_eq!(stored.sealed.as_deref(), Some(&[0xa5; 40][..]));
    let log = store.messages_after("secret", 0).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].sealed, stored.sealed, "stored as sealed");
    // carol joins: what was sealed for alice and bob alone is refused.
    store.add_members("secret", &names(&["carol"])).unwrap();
    let (appended, _) = store
        .append_all("secret", &[sealed(&["alice", "bob"])], Some(10))
        .unwrap();
    assert!(matches!(appended[0], Err(StoreError::MembersChanged(_))));
    let (appended, _) = store
        .append_all("open", &[sealed(&["alice"]), plain], Some(10))
        .unwrap();
    assert!(matches!(appended[0], Err(StoreError::NotPrivate(_))));
    assert!(appended[1].is_ok());
}

/// A group of alice and bob in `store`.
fn group1(store: &dyn Backend) {
    with_users(store, &["alice", "bob"]);
    store
        .create_group(
            "group1",
            Some("alice"),
            Kind::default(),
            &["alice".to_string(), "bob".to_string()],
        )
        .unwrap();
}

/// Appends `text` to group1 as the server's commit does.
fn commit(store: &dyn Backend, trims: &Trims<String>, text: &str) {
    let trim_to = trims.due("group1", 1);
    store
        .append("group1", "alice", text, 0, trim_to)
        .expect("appended");
    trims.committed("group1", 1, trim_to);
}

fn log_texts(store: &dyn Backend) -> Vec<String> {
    let log = store.messages_after("group1", 0).unwrap();
    log.into_iter().map(|m| m.text).collect()
}

fn a_log_keeps_its_newest_messages_and_never_much_more(store: &dyn Backend) {
    group1(store);
    let trims = Trims::new(64);
    for i in 0..200usize {
        commit(store, &trims, &format!("m{i}"));
        let kept = log_texts(store);
        // The newest 64 (or all so far) are there, in order, and
        // fewer than 64 / 16 more.
        let oldest = (i + 1).saturating_sub(64);
        let newest: Vec<String> = (oldest..=i).map(|n| format!("m{n}")).collect();
        assert!(kept.ends_with(&newest), "after m{i}: {kept:?}");
        assert!(kept.len() < 64 + 4, "after m{i}: {} kept", kept.len());
    }
}

fn a_server_restarted_after_every_few_messages_still_trims(store: &dyn Backend) {
    group1(store);
    for start in 0..40 {
        // Each start counts from nothing, as a new server does.
        let trims = Trims::new(64);
        for i in 0..3 {
            commit(store, &trims, &format!("s{start} m{i}"));
        }
        assert!(log_texts(store).len() < 64 + 4, "after start {start}");
    }
}

on_every_store!(
    a_private_group_keeps_only_sealed_lines_for_its_members_as_they_are,
    groups_are_made_once_with_known_members,
    the_log_is_ordered_bounded_and_for_members_only,
    a_group_commit_stores_each_message_in_order_and_refuses_only_strangers,
    owners_hand_over_and_the_last_one_out_deletes_the_group,
    a_log_keeps_its_newest_messages_and_never_much_more,
    a_server_restarted_after_every_few_messages_still_trims,
);

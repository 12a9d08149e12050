use super::*;

fn session(index: u32) -> PeerId {
    PeerId(index)
}

/// Where the server sees session `index`'s client.
fn at(index: u32) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 4000 + index as u16))
}

#[test]
fn one_name_per_address_and_one_address_per_name() {
    let mut p = Presence::new();
    assert!(p.sign_in("alice", session(1), at(1)).is_empty());
    assert_eq!(p.claim("alice", session(2)), Claim::HeldBy(session(1)));
    assert_eq!(p.claim("alice", session(1)), Claim::Already);
    assert_eq!(p.claim("bob", session(1)), Claim::Free);
    // The same client signing in under another name leaves the old one.
    assert_eq!(
        p.sign_in("alicia", session(1), at(1)),
        vec!["alice".to_string()]
    );
    assert_eq!(p.users_from("", 10), (vec!["alicia".into()], 1));
    // Taking a name over moves it.
    p.sign_in("alicia", session(3), at(3));
    assert_eq!(p.session_of("alicia"), Some(session(3)));
    assert_eq!(p.user_at(session(1)), None);
    assert_eq!(p.sign_out(session(3)).as_deref(), Some("alicia"));
    assert!(p.is_empty());
}

#[test]
fn a_clients_own_addresses_are_kept_while_it_is_signed_in_and_only_usable_ones() {
    let mut p = Presence::new();
    let lan: SocketAddr = "10.0.1.2:5000".parse().unwrap();
    let unusable: [SocketAddr; 3] = [
        "0.0.0.0:5000".parse().unwrap(),
        "10.0.1.2:0".parse().unwrap(),
        "224.0.0.1:5000".parse().unwrap(),
    ];
    p.set_local(session(1), &[lan]);
    assert!(p.local_of(session(1)).is_empty(), "not signed in");
    p.sign_in("alice", session(1), at(1));
    let mut given = unusable.to_vec();
    given.extend(std::iter::repeat_n(lan, 20));
    p.set_local(session(1), &given);
    assert_eq!(p.local_of(session(1)), vec![lan; MAX_LOCAL_ADDRESSES]);
    // Signed in elsewhere, or out: forgotten.
    p.sign_in("alice", session(2), at(2));
    assert!(p.local_of(session(1)).is_empty());
    p.set_local(session(2), &[lan]);
    p.sign_out(session(2));
    assert!(p.local_of(session(2)).is_empty());
}

#[test]
fn where_a_signed_in_client_is_seen_follows_its_path_and_goes_with_it() {
    let mut p = Presence::new();
    assert_eq!(p.addr_of(session(1)), None, "not signed in");
    p.sign_in("alice", session(1), at(1));
    p.sign_in("bob", session(2), at(2));
    assert_eq!(p.addr_of(session(1)), Some(at(1)));
    // Alice's path moved (a new NAT mapping): lookups give the new one.
    let moved: SocketAddr = "198.51.100.7:6000".parse().unwrap();
    p.moved(session(1), moved);
    assert_eq!(p.addr_of(session(1)), Some(moved));
    assert_eq!(p.addr_of(session(2)), Some(at(2)), "bob did not move");
    // A session that is not signed in is not recorded by moving.
    p.moved(session(9), moved);
    assert_eq!(p.addr_of(session(9)), None);
    // Alice signs in from another client: the old one is forgotten.
    p.sign_in("alice", session(3), at(3));
    assert_eq!(p.addr_of(session(1)), None);
    assert_eq!(p.addr_of(session(3)), Some(at(3)));
    p.sign_out(session(3));
    assert_eq!(p.addr_of(session(3)), None);
}

fn change(user: &str, online: bool) -> PresenceChange {
    PresenceChange {
        user: user.to_string(),
        online,
    }
}

fn sorted(mut heard: Vec<(PeerId, Vec<PresenceChange>)>) -> Vec<(PeerId, Vec<PresenceChange>)> {
    heard.sort_by_key(|(peer, _)| peer.0);
    heard
}

/// Records `changes` and takes the batch.
fn heard(p: &mut Presence, changes: &[PresenceChange]) -> Vec<(PeerId, Vec<PresenceChange>)> {
    for c in changes {
        p.record(c.clone());
    }
    p.take_audience()
}

#[test]
fn a_session_hears_only_what_changed_after_it_signed_in() {
    for limit in [10, 0] {
        let mut p = Presence::with_broadcast_limit(limit);
        p.sign_in("carole", session(3), at(3));
        p.watch(session(3), "bob");
        // bob leaves; the batch is still being gathered when alice
        // signs in (a fellow group member: she watches bob).
        p.record(change("bob", false));
        p.sign_in("alice", session(1), at(1));
        p.watch(session(1), "bob");
        p.record(change("bob", true));
        assert_eq!(
            sorted(p.take_audience()),
            vec![
                (session(1), vec![change("bob", true)]),
                (session(3), vec![change("bob", false), change("bob", true)]),
            ],
            "limit {limit}"
        );
        assert!(p.take_audience().is_empty(), "a batch is sent once");
    }
}

#[test]
fn under_the_limit_everyone_hears_everything_but_their_own() {
    let mut p = Presence::with_broadcast_limit(3);
    p.sign_in("alice", session(1), at(1));
    p.sign_in("bob", session(2), at(2));
    let changes = [change("bob", true), change("carole", false)];
    assert_eq!(
        sorted(heard(&mut p, &changes)),
        vec![
            (session(1), changes.to_vec()),
            (session(2), vec![change("carole", false)]),
        ]
    );
}

#[test]
fn past_the_limit_only_watchers_hear() {
    let mut p = Presence::with_broadcast_limit(2);
    for (i, name) in ["alice", "bob", "carole"].into_iter().enumerate() {
        p.sign_in(name, session(i as u32 + 1), at(i as u32 + 1));
    }
    assert!(p.watch(session(1), "dave"));
    assert!(p.watch(session(3), "dave"));
    assert!(p.watch(session(3), "bob"));
    // bob watching himself hears nothing of himself.
    assert!(p.watch(session(2), "bob"));
    let changes = [
        change("dave", true),
        change("bob", false),
        change("eve", true),
    ];
    assert_eq!(
        sorted(heard(&mut p, &changes)),
        vec![
            (session(1), vec![change("dave", true)]),
            (session(3), vec![change("dave", true), change("bob", false)]),
        ]
    );
    // A session that signs out stops watching.
    p.sign_out(session(3));
    p.sign_in("frank", session(4), at(4));
    assert_eq!(
        sorted(heard(&mut p, &[change("dave", false)])),
        vec![(session(1), vec![change("dave", false)])]
    );
    assert!(p.watchers.get("bob").is_some_and(|w| w.len() == 1));
}

#[test]
fn a_session_watches_a_bounded_number_of_users() {
    let mut p = Presence::new();
    p.sign_in("alice", session(1), at(1));
    for i in 0..MAX_WATCHED {
        assert!(p.watch(session(1), &format!("u{i}")));
    }
    assert!(!p.watch(session(1), "one-too-many"));
    assert!(p.watch(session(1), "u0"), "watching again is not more");
    p.sign_out(session(1));
    assert!(p.watchers.is_empty() && p.watching.is_empty());
}

#[test]
fn users_from_shows_a_bounded_sorted_page_and_the_total() {
    let mut p = Presence::new();
    for (i, name) in ["bob", "alice", "alicia", "al", "carole"]
        .into_iter()
        .enumerate()
    {
        p.sign_in(name, session(i as u32), at(i as u32));
    }
    assert_eq!(
        p.users_from("ali", 10),
        (vec!["alice".into(), "alicia".into()], 2)
    );
    assert_eq!(p.users_from("", 2), (vec!["al".into(), "alice".into()], 5));
    assert_eq!(p.users_from("zed", 10), (vec![], 0));
}

fn there(node: &str, port: u16) -> Elsewhere {
    Elsewhere {
        node: node.into(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        local: Vec::new(),
    }
}

#[test]
fn users_on_other_nodes_are_listed_claimed_and_gone_with_their_node() {
    let mut p = Presence::new();
    p.sign_in("bob", session(1), at(1));
    p.sign_in("dave", session(2), at(2));
    assert_eq!(p.sign_in_elsewhere("alice", there("n2", 1000)), None);
    p.sign_in_elsewhere("carole", there("n3", 1001));
    p.sign_in_elsewhere("erin", there("n2", 1002));
    // One sorted list across nodes, and a count that includes them.
    assert_eq!(
        p.users_from("", 10),
        (
            ["alice", "bob", "carole", "dave", "erin"]
                .map(Name::from)
                .to_vec(),
            5
        )
    );
    assert_eq!(p.users_from("", 2).1, 5);
    assert_eq!(p.users_from("c", 10), (vec!["carole".into()], 1));
    assert_eq!(p.claim("alice", session(9)), Claim::Elsewhere("n2".into()));
    assert_eq!(p.len(), 2, "only those signed in here");

    // alice signs in here: no longer elsewhere.
    p.sign_in("alice", session(3), at(3));
    assert_eq!(p.claim("alice", session(3)), Claim::Already);
    assert!(p.elsewhere("alice").is_none());
    // bob moves to n3: his session here is signed out.
    assert_eq!(
        p.sign_in_elsewhere("bob", there("n3", 1003)),
        Some(session(1))
    );
    assert_eq!(p.user_at(session(1)), None);
    // A sign-out from a node bob is not on changes nothing.
    assert!(!p.sign_out_elsewhere("bob", "n2"));
    let mut gone = p.node_gone("n3");
    gone.sort();
    assert_eq!(gone, ["bob", "carole"]);
    assert_eq!(
        p.users_from("", 10).0,
        ["alice", "dave", "erin"].map(String::from).to_vec()
    );
}

use std::sync::Arc;

use parking_lot::Mutex;
use udpchat_core::context::Session;
use udpchat_core::history::{Conversation, History, Line, State};

use super::history::KEPT_LINES;
use super::*;

fn session(user: &str) -> Arc<Mutex<Session>> {
    Arc::new(Mutex::new(Session {
        server: "127.0.0.1:9".parse().unwrap(),
        user: Some(user.into()),
        conversation: None,
    }))
}

/// A printer nobody reads.
fn printer() -> crate::render::Printer {
    crate::render::Printer::new(crate::render::Format::Json).0
}

fn bob() -> Conversation {
    Conversation::User("bob".into())
}

fn line(conversation: Conversation, from: &str, text: &str, time_ms: u64) -> Line {
    Line {
        conversation,
        from: from.into(),
        text: text.into(),
        time_ms,
        number: None,
        message_id: None,
        outgoing: from == "alice",
        state: if from == "alice" {
            State::Sending
        } else {
            State::Received
        },
    }
}

fn texts(kept: &[udpchat_core::history::Kept]) -> Vec<&str> {
    kept.iter().map(|k| k.line.text.as_str()).collect()
}

#[test]
fn a_conversation_reads_back_in_time_order_with_what_became_of_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().into(), session("alice"), printer());
    let history: &dyn History = &store;
    let hi = history
        .keep(&line(bob(), "alice", "hi bob", 1_000), None)
        .unwrap();
    history
        .keep(&line(bob(), "bob", "hi alice", 2_000), None)
        .unwrap();
    let away = history
        .keep(&line(bob(), "alice", "are you there?", 3_000), None)
        .unwrap();
    // A message that was written before, kept by the server, came later.
    let mut kept = line(bob(), "bob", "written while you were away", 1_500);
    kept.number = Some(77);
    kept.state = State::Kept;
    history.keep(&kept, None).unwrap();
    // The same stored message again (another copy) is kept once.
    history.keep(&kept, None).unwrap();
    history.settle(hi, State::Delivered, None).unwrap();
    history.settle(away, State::Queued, Some(9)).unwrap();
    history
        .settle_kept("bob", 9, State::DeliveredLater)
        .unwrap();

    let last = history.last(&bob(), 10).unwrap();
    assert_eq!(
        texts(&last),
        [
            "hi bob",
            "written while you were away",
            "hi alice",
            "are you there?"
        ]
    );
    let states: Vec<State> = last.iter().map(|k| k.line.state).collect();
    assert_eq!(
        states,
        [
            State::Delivered,
            State::Kept,
            State::Received,
            State::DeliveredLater
        ]
    );
    assert_eq!(
        texts(&history.last(&bob(), 2).unwrap()),
        ["hi alice", "are you there?"]
    );
    assert!(history
        .last(&Conversation::Group("bob".into()), 10)
        .unwrap()
        .is_empty());
    assert_eq!(history.named("bob").unwrap(), Some(bob()));
    assert_eq!(history.named("carole").unwrap(), None);
    // What became of a line already written is an update of it.
    history.settle(hi, State::Failed, None).unwrap();
    assert_eq!(
        history.last(&bob(), 10).unwrap()[0].line.state,
        State::Failed
    );
}

#[test]
fn a_groups_lines_read_back_in_the_groups_order_not_as_they_came() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().into(), session("bob"), printer());
    let history: &dyn History = &store;
    let group = || Conversation::Group("group1".into());
    let numbered = |from: &str, text: &str, time_ms: u64, seq: u64| Line {
        number: Some(seq),
        message_id: None,
        ..line(group(), from, text, time_ms)
    };
    // bob's own line is kept when the server's answer comes (number 3);
    // eve's, numbered before it, comes after, with a later time (her
    // clock was read first, the commit numbered hers first).
    for kept in [
        numbered("alice", "hi", 1_000, 1),
        numbered("bob", "hello everyone", 1_005, 3),
        numbered("eve", "hey, how r u guys doing?", 1_006, 2),
        numbered("alice", "one millisecond", 1_010, 5),
        numbered("eve", "the same millisecond", 1_010, 4),
    ] {
        history.keep(&kept, None).unwrap();
    }
    let kept = history.last(&group(), 10).unwrap();
    assert_eq!(
        texts(&kept),
        [
            "hi",
            "hey, how r u guys doing?",
            "hello everyone",
            "the same millisecond",
            "one millisecond"
        ]
    );
    assert_eq!(
        texts(&history.last(&group(), 2).unwrap()),
        ["the same millisecond", "one millisecond"]
    );
}

#[test]
fn the_newest_number_that_came_in_a_group_is_read_back_by_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let group = || Conversation::Group("group1".into());
    let numbered = |from: &str, seq: u64| Line {
        number: Some(seq),
        message_id: None,
        ..line(group(), from, "hi", 1_000 + seq)
    };
    {
        let store = LocalStore::new(dir.path().into(), session("alice"), printer());
        let history: &dyn History = &store;
        assert_eq!(history.newest_number(&group()).unwrap(), None);
        for kept in [numbered("bob", 2), numbered("eve", 4), numbered("alice", 7)] {
            history.keep(&kept, None).unwrap();
        }
        // Numbered stored mail in a direct conversation is another count.
        history
            .keep(
                &Line {
                    number: Some(99),
                    message_id: None,
                    ..line(Conversation::User("group1".into()), "bob", "hi", 1)
                },
                None,
            )
            .unwrap();
        assert_eq!(history.newest_number(&group()).unwrap(), Some(4));
    }
    // The client started again.
    let store = LocalStore::new(dir.path().into(), session("alice"), printer());
    let history: &dyn History = &store;
    assert_eq!(
        history.newest_number(&group()).unwrap(),
        Some(4),
        "her own line (7) is not one that came"
    );
    assert_eq!(
        history
            .newest_number(&Conversation::Group("other".into()))
            .unwrap(),
        None
    );
}

#[test]
fn lines_that_come_in_another_conversation_are_unread_until_theirs_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let session = session("alice");
    let store = LocalStore::new(dir.path().into(), session.clone(), printer());
    let history: &dyn History = &store;
    history
        .keep(&line(bob(), "bob", "read at once", 1), None)
        .unwrap();
    assert_eq!(history.unread_count(), 0, "no conversation on: shown whole");

    session.lock().conversation = Some("bob".into());
    history
        .keep(&line(bob(), "bob", "in his conversation", 2), None)
        .unwrap();
    let carole = Conversation::User("carole".into());
    let group = Conversation::Group("g".into());
    history
        .keep(&line(carole.clone(), "carole", "lunch?", 3), None)
        .unwrap();
    history
        .keep(&line(carole.clone(), "carole", "at noon", 5), None)
        .unwrap();
    history
        .keep(&line(group.clone(), "dave", "hi all", 4), None)
        .unwrap();
    history
        .keep(&line(carole.clone(), "alice", "written there", 6), None)
        .unwrap();
    assert_eq!(history.unread_count(), 2);
    let unread = history.unread().unwrap();
    let listed: Vec<(String, usize, &str)> = unread
        .iter()
        .map(|u| {
            (
                u.conversation.name().to_string(),
                u.count,
                u.last.as_ref().map_or("", |l| l.text.as_str()),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("carole".to_string(), 2, "at noon"),
            ("g".to_string(), 1, "hi all")
        ],
        "most recent first, with the newest line"
    );
    drop(store);

    // Still unread after a restart.
    let store = LocalStore::new(dir.path().into(), session, printer());
    let history: &dyn History = &store;
    assert_eq!(history.unread().unwrap().len(), 2);
    let opened = history.last(&carole, 10).unwrap();
    assert!(
        opened.iter().filter(|k| k.unread).count() == 2,
        "shown as unread once"
    );
    assert_eq!(history.unread_count(), 1);
    assert!(history.last(&carole, 10).unwrap().iter().all(|k| !k.unread));
}

#[test]
fn search_finds_every_word_anywhere_and_takes_wildcards_literally() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().into(), session("alice"), printer());
    let history: &dyn History = &store;
    let carole = Conversation::User("carole".into());
    history
        .keep(&line(bob(), "bob", "Lunch on Friday?", 1), None)
        .unwrap();
    history
        .keep(
            &line(carole.clone(), "carole", "friday lunch is on me", 2),
            None,
        )
        .unwrap();
    history
        .keep(&line(carole, "carole", "100% sure_ly", 3), None)
        .unwrap();
    history.keep(&line(bob(), "bob", "lunch", 4), None).unwrap();
    let found = history.search(&["friday", "LUNCH"], 20).unwrap();
    assert_eq!(texts(&found), ["Lunch on Friday?", "friday lunch is on me"]);
    assert_eq!(found[1].line.conversation.name(), "carole");
    assert_eq!(
        texts(&history.search(&["0%"], 20).unwrap()),
        ["100% sure_ly"]
    );
    assert!(history.search(&["1_0"], 20).unwrap().is_empty());
    assert_eq!(
        texts(&history.search(&["lunch"], 1).unwrap()),
        ["lunch"],
        "the newest"
    );
    assert!(history.search(&[], 20).is_err());
}

#[test]
fn conversations_written_in_turn_each_keep_their_newest_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().into(), session("alice"), printer());
    let history: &dyn History = &store;
    let carol = Conversation::User("carol".into());
    // Lines to bob and carol in turn: before, only the conversation whose
    // lines' ids met a multiple of 1,000 was ever trimmed (carol's).
    let slack = KEPT_LINES / 16;
    let total = (KEPT_LINES + slack + 150) as u64;
    for i in 0..total {
        for (conversation, from) in [(bob(), "bob"), (carol.clone(), "carol")] {
            history
                .keep(&line(conversation, from, &format!("line {i}"), i), None)
                .unwrap();
        }
    }
    for conversation in [bob(), carol] {
        let kept = history.last(&conversation, 1_000_000).unwrap();
        assert!(kept.len() >= KEPT_LINES, "{conversation}: the newest stay");
        assert!(
            kept.len() < KEPT_LINES + slack,
            "{conversation}: older lines went ({} kept)",
            kept.len()
        );
        assert_eq!(
            kept.last().unwrap().line.text,
            format!("line {}", total - 1)
        );
    }
}

#[test]
fn a_first_version_file_is_renamed_and_its_group_lines_become_the_groups_history() {
    let dir = tempfile::tempdir().unwrap();
    let user_dir = dir.path().join("users/alice");
    std::fs::create_dir_all(&user_dir).unwrap();
    {
        let old = Connection::open(user_dir.join(OLD_FILE)).unwrap();
        old.execute_batch(
            "CREATE TABLE received_chains (group_name TEXT NOT NULL, sender TEXT NOT NULL,
                 chains BLOB NOT NULL, PRIMARY KEY (group_name, sender)) STRICT;
             CREATE TABLE lines (group_name TEXT NOT NULL, seq INTEGER NOT NULL,
                 sender TEXT NOT NULL, text TEXT NOT NULL, sent_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (group_name, seq)) STRICT;
             INSERT INTO lines VALUES ('g', 1, 'bob', 'before the upgrade', 10);
             INSERT INTO lines VALUES ('g', 2, 'alice', 'mine', 20);",
        )
        .unwrap();
    }
    let store = LocalStore::new(dir.path().into(), session("alice"), printer());
    let history: &dyn History = &store;
    let group = Conversation::Group("g".into());
    let kept = history.last(&group, 10).unwrap();
    assert_eq!(texts(&kept), ["before the upgrade", "mine"]);
    assert!(kept[1].line.outgoing && !kept[0].line.outgoing);
    assert!(!user_dir.join(OLD_FILE).exists());
    assert!(user_dir.join(FILE).exists());
    // The group's line comes again from the server: kept once.
    let mut again = line(group.clone(), "bob", "before the upgrade", 10);
    again.number = Some(1);
    history.keep(&again, None).unwrap();
    assert_eq!(
        texts(&history.last(&group, 10).unwrap()),
        ["before the upgrade", "mine"]
    );
}

#[test]
fn lines_waiting_to_be_written_are_written_when_the_client_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().into(), session("alice"), printer());
    let history: &dyn History = &store;
    for i in 0..3 {
        history
            .keep(&line(bob(), "bob", &format!("line {i}"), i), None)
            .unwrap();
    }
    store.flush();
    let file = dir.path().join("users/alice").join(FILE);
    let count = |db: &Connection| -> i64 {
        db.query_row("SELECT count(*) FROM conversation_lines", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&Connection::open(&file).unwrap()), 3, "flushed");
    history
        .keep(&line(bob(), "bob", "the last", 9), None)
        .unwrap();
    drop(store);
    assert_eq!(
        count(&Connection::open(&file).unwrap()),
        4,
        "written as it went"
    );
}

#[test]
fn a_line_that_came_shows_once_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (printer, mut shown) = crate::render::Printer::new(crate::render::Format::Json);
    let store = LocalStore::new(dir.path().into(), session("alice"), printer);
    let history: &dyn History = &store;
    let output = udpchat_core::output::Output::new("message", "hi").with("text", "hi alice");
    history
        .keep(&line(bob(), "bob", "hi alice", 1), Some(output))
        .unwrap();
    store.flush();
    let Ok(crate::render::Printed::Line(printed)) = shown.try_recv() else {
        panic!("not shown");
    };
    assert!(printed.contains("hi alice"), "{printed}");
    let file = dir.path().join("users/alice").join(FILE);
    let kept: String = Connection::open(file)
        .unwrap()
        .query_row("SELECT text FROM conversation_lines", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, "hi alice", "written before it showed");
}

#[test]
fn a_line_that_comes_again_in_a_later_process_shows_once_and_another_under_its_number_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut stored = line(bob(), "bob", "written while you were away", 1_500);
    stored.number = Some(77);
    stored.state = State::Kept;
    let shows = |text: &str| udpchat_core::output::Output::new("message", text).with("text", text);
    {
        let (printer, _shown) = crate::render::Printer::new(crate::render::Format::Json);
        let store = LocalStore::new(dir.path().into(), session("alice"), printer);
        let history: &dyn History = &store;
        history.keep(&stored, Some(shows(&stored.text))).unwrap();
        store.flush();
    }

    // A later client process is handed it again while alice talks to
    // carol, and then a server that started afresh hands it another
    // message under the same number.
    let (printer, mut shown) = crate::render::Printer::new(crate::render::Format::Json);
    let talking = session("alice");
    talking.lock().conversation = Some("carol".into());
    let store = LocalStore::new(dir.path().into(), talking, printer);
    let history: &dyn History = &store;
    history.keep(&stored, Some(shows(&stored.text))).unwrap();
    store.flush();
    assert_eq!(history.unread_count(), 0, "not unread: read before");
    let mut other = line(bob(), "bob", "another message", 9_000);
    other.number = Some(77);
    history.keep(&other, Some(shows(&other.text))).unwrap();
    store.flush();
    assert_eq!(history.unread_count(), 1);
    let mut printed = Vec::new();
    while let Ok(crate::render::Printed::Line(line)) = shown.try_recv() {
        printed.push(line);
    }
    assert_eq!(printed.len(), 1, "{printed:?}");
    assert!(printed[0].contains("another message"), "{printed:?}");
    assert_eq!(
        texts(&history.last(&bob(), 10).unwrap()),
        ["written while you were away", "another message"]
    );
}

#[test]
fn a_line_that_came_is_found_by_its_number_before_it_is_written_without_writing_it() {
    let dir = tempfile::tempdir().unwrap();
    let (printer, mut shown) = crate::render::Printer::new(crate::render::Format::Json);
    let store = Arc::new(LocalStore::new(
        dir.path().into(),
        session("alice"),
        printer,
    ));
    let numbered = |text: &str, number: u64| {
        let mut line = line(bob(), "bob", text, number);
        line.number = Some(number);
        line
    };
    let shows = |text: &str| udpchat_core::output::Output::new("message", text).with("text", text);
    store.keep(&numbered("written", 7), None).unwrap();
    store.flush();

    // The file is busy (its lock held here): what comes now waits.
    let db = store.open.lock().as_ref().unwrap().files.db.clone();
    let busy = db.lock();
    store
        .keep(&numbered("waiting", 8), Some(shows("waiting")))
        .unwrap();
    let (found, came) = std::sync::mpsc::channel();
    let asking = store.clone();
    std::thread::spawn(move || {
        let _ = found.send(asking.came(&bob(), 8));
    });
    let came = came
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("came() waited for the file");
    assert_eq!(came.unwrap().unwrap().line.text, "waiting");
    assert!(shown.try_recv().is_err(), "written (and shown) to be found");
    drop(busy);

    store.flush();
    assert_eq!(store.came(&bob(), 7).unwrap().unwrap().line.text, "written");
    assert_eq!(store.came(&bob(), 8).unwrap().unwrap().line.text, "waiting");
    assert!(store.came(&bob(), 9).unwrap().is_none());
    assert!(store
        .came(&Conversation::User("carol".into()), 8)
        .unwrap()
        .is_none());
}

#[test]
fn a_second_version_file_keeps_its_lines_and_a_direct_messages_id_is_found_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let user_dir = dir.path().join("users/alice");
    std::fs::create_dir_all(&user_dir).unwrap();
    {
        // Version 2's table, with a line in it.
        let old = Connection::open(user_dir.join(FILE)).unwrap();
        old.execute_batch(
            "CREATE TABLE conversation_lines (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,
                 name TEXT NOT NULL, sender TEXT NOT NULL, text TEXT NOT NULL,
                 time_ms INTEGER NOT NULL, number INTEGER, outgoing INTEGER NOT NULL,
                 state TEXT NOT NULL, unread INTEGER NOT NULL DEFAULT 0) STRICT;
             INSERT INTO conversation_lines (id, kind, name, sender, text, time_ms, outgoing, state)
                 VALUES (1, 'user', 'bob', 'bob', 'before the upgrade', 10, 0, 'received');
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store = LocalStore::new(dir.path().into(), session("alice"), printer());
    let history: &dyn History = &store;
    let mut direct = line(bob(), "bob", "after it", 20);
    direct.message_id = Some(0xfeed);
    history.keep(&direct, None).unwrap();
    let found = history
        .came_with_id(&bob(), 0xfeed)
        .unwrap()
        .expect("found");
    assert_eq!(found.line.text, "after it");
    store.flush();
    let kept = history.last(&bob(), 10).unwrap();
    assert_eq!(texts(&kept), ["before the upgrade", "after it"]);
    assert_eq!(kept[1].line.message_id, Some(0xfeed));
    assert_eq!(kept[0].line.message_id, None);
    assert!(history.came_with_id(&bob(), 0xfeed).unwrap().is_some());
    // An id is not a number, nor the other way round.
    assert!(history.came(&bob(), 0xfeed).unwrap().is_none());
    assert!(history.came_with_id(&bob(), 1).unwrap().is_none());
}

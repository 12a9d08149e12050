//! When a group commit trims the group's log to its newest messages.
//!
//! Finding where the newest `keep` begin walks `keep` entries of the
//! group's index (no b-tree counts its entries), and deleting the oldest
//! rewrites pages at the log's far end: at one commit a message, that was
//! about a third of SQLite's work for each (PERFORMANCE.md, seventeenth
//! part). So a commit trims only once the log may have grown by a
//! sixteenth of `keep` since the last trim: a group holds its newest
//! `keep` messages and fewer than `keep / 16` more (1,000 and up to 1,061).
//!
//! What was appended since the last trim is known only in memory: after a
//! start, a group's first commit trims whatever the log holds. A server
//! restarted after every few messages therefore still never holds more.
//! Each server node sharing a database counts its own commits, so with N
//! nodes a group holds fewer than `N * keep / 16` more.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Groups counted at most: past it the counts start again, which only
/// makes each group's next commit trim.
const GROUPS_COUNTED: usize = 4096;

/// Messages appended to each group since its log was last trimmed.
pub(super) struct Trims {
    keep: usize,
    since: Mutex<HashMap<String, usize>>,
}

impl Trims {
    /// Logs kept to their newest `keep` messages (and fewer than
    /// `keep / 16` more).
    pub(super) fn new(keep: usize) -> Trims {
        Trims {
            keep,
            since: Mutex::new(HashMap::new()),
        }
    }

    /// How many messages the log may hold past `keep` before a commit
    /// trims it: a sixteenth of `keep`, at least one.
    fn slack(&self) -> usize {
        (self.keep / 16).max(1)
    }

    /// What the commit of `count` messages to `group` trims the log to,
    /// if it trims it. The caller holds the group's lock until
    /// [`Trims::committed`].
    pub(super) fn due(&self, group: &str, count: usize) -> Option<usize> {
        match self.since.lock().get(group) {
            Some(&since) if since + count < self.slack() => None,
            _ => Some(self.keep),
        }
    }

    /// The commit of `count` messages to `group` went in, trimmed to
    /// `trimmed` or not.
    pub(super) fn committed(&self, group: &str, count: usize, trimmed: Option<usize>) {
        let mut since = self.since.lock();
        if trimmed.is_some() {
            if since.len() >= GROUPS_COUNTED && !since.contains_key(group) {
                since.clear();
            }
            since.insert(group.to_string(), 0);
        } else if let Some(since) = since.get_mut(group) {
            *since += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::store::Kind;
    use crate::store::testing::{on_every_store, with_users};
    use crate::store::Backend;

    /// A group of alice and bob in `store`.
    fn group(store: &dyn Backend) {
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
    fn commit(store: &dyn Backend, trims: &Trims, text: &str) {
        let trim_to = trims.due("group1", 1);
        store
            .append("group1", "alice", text, 0, trim_to)
            .expect("appended");
        trims.committed("group1", 1, trim_to);
    }

    fn texts(store: &dyn Backend) -> Vec<String> {
        let log = store.messages_after("group1", 0).unwrap();
        log.into_iter().map(|m| m.text).collect()
    }

    fn a_log_keeps_its_newest_messages_and_never_much_more(store: &dyn Backend) {
        group(store);
        let trims = Trims::new(64);
        for i in 0..200usize {
            commit(store, &trims, &format!("m{i}"));
            let kept = texts(store);
            // The newest 64 (or all so far) are there, in order, and
            // fewer than 64 / 16 more.
            let oldest = (i + 1).saturating_sub(64);
            let newest: Vec<String> = (oldest..=i).map(|n| format!("m{n}")).collect();
            assert!(kept.ends_with(&newest), "after m{i}: {kept:?}");
            assert!(kept.len() < 64 + 4, "after m{i}: {} kept", kept.len());
        }
    }

    fn a_server_restarted_after_every_few_messages_still_trims(store: &dyn Backend) {
        group(store);
        for start in 0..40 {
            // Each start counts from nothing, as a new server does.
            let trims = Trims::new(64);
            for i in 0..3 {
                commit(store, &trims, &format!("s{start} m{i}"));
            }
            assert!(texts(store).len() < 64 + 4, "after start {start}");
        }
    }

    on_every_store!(
        a_log_keeps_its_newest_messages_and_never_much_more,
        a_server_restarted_after_every_few_messages_still_trims,
    );

    #[test]
    fn a_commit_of_many_messages_trims_at_once() {
        let trims = Trims::new(64);
        trims.committed("group1", 1, Some(64));
        assert_eq!(trims.due("group1", 3), None);
        assert_eq!(trims.due("group1", 4), Some(64));
        // Another group was never trimmed here: its first commit trims.
        assert_eq!(trims.due("group2", 1), Some(64));
    }

    #[test]
    fn counting_too_many_groups_starts_the_counts_again() {
        let trims = Trims::new(64);
        for g in 0..GROUPS_COUNTED {
            trims.committed(&format!("g{g}"), 1, Some(64));
        }
        assert_eq!(trims.due("g0", 1), None);
        trims.committed("one more", 1, Some(64));
        assert_eq!(trims.due("one more", 1), None);
        assert_eq!(trims.due("g0", 1), Some(64), "forgotten, so trimmed next");
    }
}

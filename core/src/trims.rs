//! When a log kept to its newest entries is trimmed: a group's messages on
//! the server (its newest [`crate::group::HISTORY_LIMIT`]), a
//! conversation's lines in a client's history file.
//!
//! Both live in SQLite, where finding where the newest `keep` begin walks
//! `keep` entries of an index (no b-tree counts its entries), and deleting
//! the oldest rewrites pages at the log's far end. At every commit that
//! was a tenth to a quarter of the server's CPU for a group's message
//! (PERFORMANCE.md, seventeenth part). So a commit trims a log only once
//! it may have grown by a sixteenth of `keep` since its last trim: a log
//! holds its newest `keep` entries and fewer than `keep / 16` more.
//!
//! What went in since the last trim is known only in memory: after a
//! start, a log's first commit trims whatever it holds, so a process
//! restarted after every few entries still never holds more. Writers that
//! share a database (server nodes on one PostgreSQL) each count their
//! own: with N of them, a log holds fewer than `N * keep / 16` more.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use parking_lot::Mutex;

/// Logs counted at most: past it the counts start again, which only makes
/// each log's next commit trim.
const LOGS_COUNTED: usize = 4096;

/// Entries that went into each log (by `K`, its name) since its last trim.
pub struct Trims<K> {
    keep: usize,
    since: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq> Trims<K> {
    /// Logs kept to their newest `keep` entries (and fewer than `keep / 16`
    /// more).
    pub fn new(keep: usize) -> Trims<K> {
        Trims {
            keep,
            since: Mutex::new(HashMap::new()),
        }
    }

    /// How many entries a log may hold past `keep` before a commit trims
    /// it: a sixteenth of `keep`, at least one.
    pub fn slack(&self) -> usize {
        (self.keep / 16).max(1)
    }

    /// What the commit of `count` entries to `log` trims it to, if it trims
    /// it. Commits to one log take turns until [`Trims::committed`].
    pub fn due<Q>(&self, log: &Q, count: usize) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.since.lock().get(log) {
            Some(&since) if since + count < self.slack() => None,
            _ => Some(self.keep),
        }
    }

    /// The commit of `count` entries to `log` went in, trimmed (what
    /// [`Trims::due`] said) or not.
    pub fn committed<Q>(&self, log: &Q, count: usize, trimmed: Option<usize>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut since = self.since.lock();
        if trimmed.is_some() {
            if since.len() >= LOGS_COUNTED && !since.contains_key(log) {
                since.clear();
            }
            since.insert(log.to_owned(), 0);
        } else if let Some(since) = since.get_mut(log) {
            *since += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_trimmed_at_its_first_commit_then_once_a_sixteenth_went_in() {
        let trims: Trims<String> = Trims::new(64);
        assert_eq!(trims.due("group1", 1), Some(64), "never trimmed here");
        trims.committed("group1", 1, Some(64));
        for _ in 0..3 {
            assert_eq!(trims.due("group1", 1), None);
            trims.committed("group1", 1, None);
        }
        assert_eq!(trims.due("group1", 1), Some(64), "4 = 64 / 16 went in");
        // Another log was never trimmed here: its first commit trims.
        assert_eq!(trims.due("group2", 1), Some(64));
    }

    #[test]
    fn a_commit_of_many_entries_trims_at_once() {
        let trims: Trims<String> = Trims::new(64);
        trims.committed("group1", 1, Some(64));
        assert_eq!(trims.due("group1", 3), None);
        assert_eq!(trims.due("group1", 4), Some(64));
    }

    #[test]
    fn a_commit_that_failed_to_trim_leaves_the_trim_due() {
        let trims: Trims<String> = Trims::new(64);
        trims.committed("group1", 1, Some(64));
        trims.committed("group1", 3, None);
        // Due, but the commit failed: nothing is counted.
        assert_eq!(trims.due("group1", 1), Some(64));
        assert_eq!(trims.due("group1", 1), Some(64));
    }

    #[test]
    fn counting_too_many_logs_starts_the_counts_again() {
        let trims: Trims<String> = Trims::new(64);
        for log in 0..LOGS_COUNTED {
            trims.committed(&format!("g{log}"), 1, Some(64));
        }
        assert_eq!(trims.due("g0", 1), None);
        trims.committed("one more", 1, Some(64));
        assert_eq!(trims.due("one more", 1), None);
        assert_eq!(trims.due("g0", 1), Some(64), "forgotten, so trimmed next");
    }
}

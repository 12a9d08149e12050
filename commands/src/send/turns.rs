//! The order a user wrote their messages to someone in, kept for the
//! messages that end up on the server. Several messages on their way to a
//! client that vanished fail together, and each is then sealed into the
//! recipient's mailbox: the server keeps them, and hands them over, in the
//! order the deposits reach it. Each message takes a turn when it is
//! written, and is kept only after every message written to that user
//! before it was delivered, kept or given up, so the recipient reads them
//! in the order they were written.
//!
//! Like the stored messages remembered in `stored`, this is state of the
//! client process, which is one client; turns are per sender and recipient
//! name, so a process that signs in as someone else does not wait for the
//! first user's messages.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Sender and recipient.
type Pair = (String, String);

/// The turns not yet over between one sender and one recipient.
struct Queue {
    next: u64,
    open: BTreeSet<u64>,
    /// Woken whenever a turn is over.
    over: Arc<Notify>,
}

fn queues() -> parking_lot::MappedMutexGuard<'static, HashMap<Pair, Queue>> {
    static QUEUES: Mutex<Option<HashMap<Pair, Queue>>> = Mutex::new(None);
    parking_lot::MutexGuard::map(QUEUES.lock(), |queues| {
        queues.get_or_insert_with(HashMap::new)
    })
}

/// One message's place among those from `from` to `to`; its turn is over
/// when it is dropped.
#[derive(Debug)]
pub struct Turn {
    pair: Pair,
    number: u64,
}

impl Turn {
    /// The next turn from `from` to `to`, after every one taken before.
    pub fn take(from: &str, to: &str) -> Turn {
        let pair = (from.to_string(), to.to_string());
        let mut queues = queues();
        let queue = queues.entry(pair.clone()).or_insert_with(|| Queue {
            next: 0,
            open: BTreeSet::new(),
            over: Arc::new(Notify::new()),
        });
        let number = queue.next;
        queue.next += 1;
        queue.open.insert(number);
        Turn { pair, number }
    }

    /// Whether every turn taken before this one is over.
    pub fn is_first(&self) -> bool {
        self.over().is_none()
    }

    /// Resolves once every turn taken before this one is over.
    pub async fn wait(&self) {
        while let Some(over) = self.over() {
            let notified = over.notified();
            tokio::pin!(notified);
            // Registered before looking again, so no wake-up is missed.
            notified.as_mut().enable();
            if self.is_first() {
                return;
            }
            notified.await;
        }
    }

    /// `None` when this is the first turn still open; else what wakes
    /// when a turn is over.
    fn over(&self) -> Option<Arc<Notify>> {
        let queues = queues();
        let queue = queues.get(&self.pair)?;
        (queue.open.first() != Some(&self.number)).then(|| queue.over.clone())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut queues = queues();
        if let Some(queue) = queues.get_mut(&self.pair) {
            queue.open.remove(&self.number);
            queue.over.notify_waiters();
            if queue.open.is_empty() {
                queues.remove(&self.pair);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_turn_waits_for_every_earlier_one_whatever_order_they_end_in() {
        let first = Turn::take("alice", "bob");
        let second = Turn::take("alice", "bob");
        let third = Turn::take("alice", "bob");
        // Another pair's turns are their own.
        let other = Turn::take("alice", "carol");
        assert!(first.is_first() && other.is_first());
        assert!(!second.is_first() && !third.is_first());

        let (done, mut kept) = tokio::sync::mpsc::unbounded_channel();
        for (name, turn) in [("third", third), ("second", second)] {
            let done = done.clone();
            tokio::spawn(async move {
                turn.wait().await;
                done.send(name).unwrap();
                // Kept, then over.
                drop(turn);
            });
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(kept.try_recv().is_err(), "both wait for the first");
        drop(first);
        assert_eq!(kept.recv().await, Some("second"));
        assert_eq!(kept.recv().await, Some("third"));
        drop(other);
        let queues = queues();
        for to in ["bob", "carol"] {
            let pair = ("alice".to_string(), to.to_string());
            assert!(!queues.contains_key(&pair), "nothing left of {pair:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_whose_elders_are_over_does_not_wait() {
        let first = Turn::take("dave", "erin");
        let second = Turn::take("dave", "erin");
        let third = Turn::take("dave", "erin");
        drop(second);
        drop(first);
        assert!(third.is_first());
        tokio::time::timeout(Duration::from_secs(1), third.wait())
            .await
            .expect("no wait");
    }
}

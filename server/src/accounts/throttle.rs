//! Throttling of failed sign-ins, so guessing is slow but nobody can lock
//! anyone else out. Two counts, both sans-IO (time is passed in):
//!
//! - per account *and* source: after a few failures each further attempt
//!   from that source at that account waits, the wait doubling per
//!   failure up to a cap. Another source (the account's owner, say) is
//!   not affected: a correct password from a source that has not been
//!   failing still signs in.
//! - per source, whatever the account: guessing across many accounts
//!   from one place is slowed the same way, after more free failures.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use udpchat_core::limits::Source;

/// Failures at one account from one source allowed before any wait.
const FREE_FAILURES: u32 = 3;
/// Failures from one source, at any accounts, allowed before any wait.
const FREE_FAILURES_PER_SOURCE: u32 = 10;
/// The first wait; doubles per further failure.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A key with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys tracked at most per count; the stalest are forgotten past it.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failures by key, with waits that grow after `free` of them.
#[derive(Debug)]
struct Count<K> {
    free: u32,
    failures: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> Count<K> {
    fn new(free: u32) -> Count<K> {
        Count {
            free,
            failures: HashMap::new(),
        }
    }

    fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let Some(f) = self.failures.get(key) else {
            return Ok(());
        };
        remaining(f.count, self.free, now.saturating_duration_since(f.last))
    }

    fn failed(&mut self, key: K, now: Instant) {
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(&key) {
            self.forget_stale(now);
        }
        let entry = self.failures.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(entry.last) > FORGET_AFTER {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
    }

    fn forget_stale(&mut self, now: Instant) {
        self.failures
            .retain(|_, f| now.saturating_duration_since(f.last) <= FORGET_AFTER);
        if self.failures.len() >= MAX_TRACKED {
            // Still full of fresh entries: drop the oldest half.
            let mut lasts: Vec<Instant> = self.failures.values().map(|f| f.last).collect();
            lasts.sort();
            let cutoff = lasts[lasts.len() / 2];
            self.failures.retain(|_, f| f.last > cutoff);
        }
    }
}

/// Failed sign-ins, by account and source and by source alone. Unknown
/// names count like known ones, so throttling tells nothing about which
/// names exist.
#[derive(Debug)]
pub struct Throttle {
    at_account: Count<(String, Source)>,
    from_source: Count<Source>,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

/// Why a sign-in must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Too many failures at this account from this source.
    Account(Duration),
    /// Too many failures from this source.
    Source(Duration),
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle {
            at_account: Count::new(FREE_FAILURES),
            from_source: Count::new(FREE_FAILURES_PER_SOURCE),
        }
    }

    /// Ok when `name` may be tried from `source` now; otherwise how long
    /// until it may.
    pub fn check(&self, name: &str, source: Source, now: Instant) -> Result<(), Wait> {
        self.at_account
            .check(&(name.to_string(), source), now)
            .map_err(Wait::Account)?;
        self.from_source.check(&source, now).map_err(Wait::Source)
    }

    pub fn failed(&mut self, name: &str, source: Source, now: Instant) {
        self.at_account.failed((name.to_string(), source), now);
        self.from_source.failed(source, now);
    }

    /// A right password: this source's failures at this account are
    /// forgiven (not its failures elsewhere: one account of one's own must
    /// not reset guessing at others).
    pub fn succeeded(&mut self, name: &str, source: Source) {
        self.at_account.failures.remove(&(name.to_string(), source));
    }
}

/// Ok when `count` failures, the last `since` ago, impose no wait now;
/// otherwise how long until they do not.
fn remaining(count: u32, free: u32, since: Duration) -> Result<(), Duration> {
    if since > FORGET_AFTER {
        return Ok(());
    }
    match wait_after(count, free) {
        Some(wait) if since < wait => Err(wait - since),
        _ => Ok(()),
    }
}

/// The same decision as [`Throttle::check`], on failures counted
/// elsewhere (shared by several server nodes): for the account from this
/// source, and for the source, each `(failures, since the last)`.
pub fn shared_check(
    at_account: Option<(u32, Duration)>,
    from_source: Option<(u32, Duration)>,
) -> Result<(), Wait> {
    if let Some((count, since)) = at_account {
        remaining(count, FREE_FAILURES, since).map_err(Wait::Account)?;
    }
    if let Some((count, since)) = from_source {
        remaining(count, FREE_FAILURES_PER_SOURCE, since).map_err(Wait::Source)?;
    }
    Ok(())
}

/// A failure older than this starts the count afresh.
pub const FORGET_FAILURES_AFTER: Duration = FORGET_AFTER;

/// The wait imposed after `count` failures, `free` of them without one.
fn wait_after(count: u32, free: u32) -> Option<Duration> {
    let over = count.checked_sub(free)?;
    Some(
        FIRST_WAIT
            .saturating_mul(1u32 << over.min(16))
            .min(MAX_WAIT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(last: u8) -> Source {
        Source::of(std::net::SocketAddr::from(([192, 0, 2, last], 4000)))
    }

    #[test]
    fn waits_grow_after_a_few_failures_and_are_capped() {
        let start = Instant::now();
        let mut throttle = Throttle::new();
        let mallory = source(66);
        for _ in 0..FREE_FAILURES {
            assert!(throttle.check("alice", mallory, start).is_ok());
            throttle.failed("alice", mallory, start);
        }
        let wait = |t: &Throttle, at| t.check("alice", mallory, at);
        assert_eq!(
            wait(&throttle, start),
            Err(Wait::Account(Duration::from_secs(1)))
        );
        assert!(wait(&throttle, start + Duration::from_secs(1)).is_ok());
        throttle.failed("alice", mallory, start);
        assert_eq!(
            wait(&throttle, start),
            Err(Wait::Account(Duration::from_secs(2)))
        );
        for _ in 0..20 {
            throttle.failed("alice", mallory, start);
        }
        assert_eq!(
            wait(&throttle, start),
            Err(Wait::Account(MAX_WAIT)),
            "never more than the cap"
        );
        // Success from there clears that account's count there.
        throttle.succeeded("alice", mallory);
        assert!(
            throttle.check("alice", mallory, start).is_err(),
            "the source's own count stays"
        );
    }

    #[test]
    fn failures_from_one_source_do_not_lock_the_owner_out() {
        let start = Instant::now();
        let mut throttle = Throttle::new();
        let (mallory, alice) = (source(66), source(1));
        for _ in 0..50 {
            throttle.failed("alice", mallory, start);
        }
        assert!(throttle.check("alice", mallory, start).is_err());
        assert_eq!(
            throttle.check("alice", alice, start),
            Ok(()),
            "alice, from her own address, may still try"
        );
    }

    #[test]
    fn guessing_across_accounts_from_one_source_is_slowed() {
        let start = Instant::now();
        let mut throttle = Throttle::new();
        let mallory = source(66);
        for i in 0..FREE_FAILURES_PER_SOURCE {
            let name = format!("user{i}");
            assert!(throttle.check(&name, mallory, start).is_ok());
            throttle.failed(&name, mallory, start);
        }
        assert_eq!(
            throttle.check("someone-new", mallory, start),
            Err(Wait::Source(Duration::from_secs(1)))
        );
        assert!(throttle.check("someone-new", source(7), start).is_ok());
    }

    #[test]
    fn old_failures_are_forgotten() {
        let start = Instant::now();
        let mut throttle = Throttle::new();
        let mallory = source(66);
        for _ in 0..20 {
            throttle.failed("alice", mallory, start);
        }
        let later = start + FORGET_AFTER + Duration::from_secs(1);
        assert!(throttle.check("alice", mallory, later).is_ok());
        throttle.failed("alice", mallory, later);
        assert!(
            throttle.check("alice", mallory, later).is_ok(),
            "one fresh failure after a long quiet is free"
        );
    }
}

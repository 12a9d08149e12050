//! Per-account throttling of failed sign-ins: after a few failures each
//! further attempt must wait, the wait doubling per failure up to a cap, so
//! guessing is slow but an attacker can't lock a user out for long.
//! Sans-IO: time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Failures allowed before any wait.
const FREE_FAILURES: u32 = 3;
/// The first wait; doubles per further failure.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait: the most a user can be kept out by someone else.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// An account with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Accounts tracked at most; the stalest are forgotten past it.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed sign-ins by account name (known or not: unknown names are
/// throttled alike, so throttling tells nothing about which names exist).
#[derive(Debug, Default)]
pub struct Throttle {
    failures: HashMap<String, Failures>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle::default()
    }

    /// Ok when `name` may try now; otherwise how long until it may.
    pub fn check(&self, name: &str, now: Instant) -> Result<(), Duration> {
        let Some(f) = self.failures.get(name) else {
            return Ok(());
        };
        let Some(wait) = wait_after(f.count) else {
            return Ok(());
        };
        let ready = f.last + wait;
        if now >= ready {
            Ok(())
        } else {
            Err(ready - now)
        }
    }

    pub fn failed(&mut self, name: &str, now: Instant) {
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(name) {
            self.forget_stale(now);
        }
        let entry = self.failures.entry(name.to_string()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(entry.last) > FORGET_AFTER {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
    }

    pub fn succeeded(&mut self, name: &str) {
        self.failures.remove(name);
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

/// The wait imposed after `count` failures, if any.
fn wait_after(count: u32) -> Option<Duration> {
    let over = count.checked_sub(FREE_FAILURES)?;
    Some(
        FIRST_WAIT
            .saturating_mul(1u32 << over.min(16))
            .min(MAX_WAIT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_after_a_few_failures_and_are_capped() {
        let start = Instant::now();
        let mut throttle = Throttle::new();
        for _ in 0..FREE_FAILURES {
            assert!(throttle.check("alice", start).is_ok());
            throttle.failed("alice", start);
        }
        assert_eq!(throttle.check("alice", start), Err(Duration::from_secs(1)));
        assert!(throttle
            .check("alice", start + Duration::from_secs(1))
            .is_ok());
        throttle.failed("alice", start);
        assert_eq!(throttle.check("alice", start), Err(Duration::from_secs(2)));
        for _ in 0..20 {
            throttle.failed("alice", start);
        }
        assert_eq!(
            throttle.check("alice", start),
            Err(MAX_WAIT),
            "never more than the cap"
        );
        // Others are not affected.
        assert!(throttle.check("bob", start).is_ok());
        // Success clears it.
        throttle.succeeded("alice");
        assert!(throttle.check("alice", start).is_ok());
    }

    #[test]
    fn old_failures_are_forgotten() {
        let start = Instant::now();
        let mut throttle = Throttle::new();
        for _ in 0..10 {
            throttle.failed("alice", start);
        }
        let later = start + FORGET_AFTER + Duration::from_secs(1);
        throttle.failed("alice", later);
        assert!(
            throttle.check("alice", later).is_ok(),
            "one fresh failure after a long quiet is free"
        );
    }
}

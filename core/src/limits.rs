//! Per-source rate limits, sans-IO (time is passed in).
//!
//! A [`Source`] is what one party on the internet controls: an IPv4
//! address, or an IPv6 /64 (one subscriber's prefix; counting single IPv6
//! addresses would let anyone pick a fresh one per attempt). A
//! [`RateLimit`] is a token bucket per key with a bounded number of keys,
//! so a flood of spoofed sources costs bounded memory: a bucket that has
//! filled up again is the same as none and is the first to be forgotten.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The party behind an address, for per-source limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(addr: SocketAddr) -> Source {
        Source::of_ip(addr.ip())
    }

    pub fn of_ip(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Source(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per key: `burst` at once, then `rate` per second.
#[derive(Debug)]
pub struct RateLimit<K> {
    burst: f64,
    rate: f64,
    max_keys: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> RateLimit<K> {
    /// `burst` at once, then one per `every`; at most `max_keys` keys
    /// remembered.
    pub fn new(burst: u32, every: Duration, max_keys: usize) -> RateLimit<K> {
        RateLimit {
            burst: f64::from(burst.max(1)),
            rate: 1.0 / every.as_secs_f64().max(1e-9),
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key`; if none is left, says how long until one
    /// is.
    pub fn take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        self.take_n(key, 1.0, now)
    }

    /// Whether `key` has a token now, without taking it.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.buckets.get(key) {
            None => Ok(()),
            Some(bucket) => self.wait(self.refilled(bucket, now), 1.0),
        }
    }

    /// Takes `n` tokens (a cost: bytes, say) or none.
    pub fn take_n(&mut self, key: &K, n: f64, now: Instant) -> Result<(), Duration> {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.forget_full(now);
        }
        let burst = self.burst;
        let tokens = match self.buckets.get(key) {
            Some(bucket) => self.refilled(bucket, now),
            None => burst,
        };
        self.wait(tokens, n)?;
        self.buckets.insert(
            key.clone(),
            Bucket {
                tokens: tokens - n,
                last: now,
            },
        );
        Ok(())
    }

    /// Keys remembered now (for tests and memory accounting).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        (bucket.tokens + elapsed * self.rate).min(self.burst)
    }

    fn wait(&self, tokens: f64, n: f64) -> Result<(), Duration> {
        if tokens >= n {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((n - tokens) / self.rate).min(1e9)))
        }
    }

    /// Drops the buckets that are full again (as good as absent); if the
    /// table is still full, the oldest half.
    fn forget_full(&mut self, now: Instant) {
        let (burst, rate) = (self.burst, self.rate);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
        if self.buckets.len() >= self.max_keys {
            let mut lasts: Vec<Instant> = self.buckets.values().map(|b| b.last).collect();
            lasts.sort_unstable();
            let cutoff = lasts[lasts.len() / 2];
            self.buckets.retain(|_, b| b.last > cutoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_source_is_its_64_prefix_and_mapped_ipv4_is_ipv4() {
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:5".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:6".parse().unwrap();
        let c: SocketAddr = "[2001:db8:1:3::1]:5".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:1".parse().unwrap();
        let plain: SocketAddr = "10.0.0.1:2".parse().unwrap();
        assert_eq!(Source::of(mapped), Source::of(plain));
        assert_eq!(Source::of(a).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_burst_then_one_per_period_per_key() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(3, Duration::from_secs(10), 100);
        for _ in 0..3 {
            assert!(limit.take(&"a", t0).is_ok());
        }
        assert_eq!(limit.take(&"a", t0), Err(Duration::from_secs(10)));
        assert!(limit.take(&"b", t0).is_ok(), "another key has its own");
        assert!(limit.check(&"a", t0 + Duration::from_secs(5)).is_err());
        assert!(limit.take(&"a", t0 + Duration::from_secs(10)).is_ok());
        assert!(limit.take(&"a", t0 + Duration::from_secs(10)).is_err());
        // Never more than the burst, however long the quiet.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limit.take(&"a", later).is_ok());
        }
        assert!(limit.take(&"a", later).is_err());
    }

    #[test]
    fn memory_is_bounded_and_full_buckets_go_first() {
        let t0 = Instant::now();
        let t5 = t0 + Duration::from_secs(5);
        let mut limit = RateLimit::new(2, Duration::from_secs(1), 100);
        // One-off keys, long enough ago to be full again by t5...
        for key in 0..99u32 {
            limit.take(&key, t0).unwrap();
        }
        // ...and a key that is really being limited.
        limit.take(&u32::MAX, t5).unwrap();
        limit.take(&u32::MAX, t5).unwrap();
        assert_eq!(limit.len(), 100);
        limit.take(&1000, t5).unwrap();
        assert_eq!(limit.len(), 2, "the full buckets were forgotten");
        assert!(limit.check(&u32::MAX, t5).is_err(), "not the limited one");
        // A flood of fresh keys never grows the table past its bound.
        for key in 2000..12_000u32 {
            let _ = limit.take(&key, t5);
            assert!(limit.len() <= 100);
        }
    }
}

//! What the driver carries now, for an operator to watch: sessions, what
//! waits in its queues, and how long pushes took to be acknowledged.

use std::time::Duration;

/// Upper bounds of the delivery-latency buckets, in milliseconds (the
/// last bucket has none).
pub const LATENCY_BOUNDS_MS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/// A histogram of delivery latencies, counted from when a push was queued
/// to when its last fragment was acknowledged (so it includes queueing and
/// retransmission, as a user waits for it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latencies {
    /// Counts per bucket; the last counts what exceeds every bound.
    pub buckets: [u64; LATENCY_BOUNDS_MS.len() + 1],
    pub count: u64,
    pub sum: Duration,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let ms = latency.as_millis();
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|&bound| ms <= u128::from(bound))
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum += latency;
    }

    /// What was recorded after `earlier` (a snapshot of this one).
    pub fn since(&self, earlier: &Latencies) -> Latencies {
        let mut buckets = self.buckets;
        for (now, then) in buckets.iter_mut().zip(earlier.buckets) {
            *now = now.saturating_sub(then);
        }
        Latencies {
            buckets,
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
        }
    }

    /// The upper bound of the bucket holding quantile `q` (0 to 1), or
    /// None when nothing was recorded; past the last bound, the last
    /// bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = LATENCY_BOUNDS_MS[i.min(LATENCY_BOUNDS_MS.len() - 1)];
                return Some(Duration::from_millis(bound));
            }
        }
        LATENCY_BOUNDS_MS
            .last()
            .map(|&ms| Duration::from_millis(ms))
    }
}

/// The driver's load at one moment, with totals since it started.
#[derive(Debug, Clone, Default)]
pub struct Load {
    /// Sessions open (handshaking or established).
    pub sessions: usize,
    /// HELLOs waiting for their P-384 work.
    pub handshakes_waiting: usize,
    /// Messages sent and neither acknowledged nor failed yet (pushes and
    /// requests; replies are not counted).
    pub in_flight: usize,
    /// Bytes of messages queued or in flight.
    pub queued_bytes: usize,
    /// Bytes of messages partly arrived.
    pub reassembly_bytes: usize,
    /// Pushes acknowledged, with how long each took.
    pub delivered: Latencies,
    /// Pushes that failed (their session stopped answering or closed).
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets_and_since_subtracts_a_snapshot() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile(0.5), None);
        for ms in [0, 1, 3, 3, 3, 40, 40, 40, 40, 900] {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.count, 10);
        assert_eq!(l.quantile(0.5), Some(Duration::from_millis(5)));
        assert_eq!(l.quantile(0.6), Some(Duration::from_millis(50)));
        assert_eq!(l.quantile(0.2), Some(Duration::from_millis(1)));
        assert_eq!(l.quantile(0.99), Some(Duration::from_millis(1_000)));
        let snapshot = l.clone();
        l.record(Duration::from_secs(60));
        let recent = l.since(&snapshot);
        assert_eq!(recent.count, 1);
        assert_eq!(recent.sum, Duration::from_secs(60));
        // Past every bound: the last bound says "at least this".
        assert_eq!(recent.quantile(0.5), Some(Duration::from_secs(30)));
    }
}

//! Round-trip time estimation for one peer (RFC 9002 section 5) and the two
//! durations derived from it: the probe timeout and the loss delay.
//!
//! A receiver may hold an acknowledgement up to its `max_ack_delay`
//! (`peer.rs`): the ACK says how long, and a sample is adjusted by it as
//! RFC 9002 5.3 says; the probe timeout allows for the whole delay.

use std::time::Duration;

/// RFC 9002 kGranularity: no timer is shorter than this.
pub(crate) const GRANULARITY: Duration = Duration::from_millis(1);

/// Kept in microseconds (`u32`, up to 71 minutes): 20 bytes a peer where
/// four `Duration`s took 72.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    latest: u32,
    smoothed: u32,
    var: u32,
    min: u32,
    has_sample: bool,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn duration(us: u32) -> Duration {
    Duration::from_micros(us.into())
}

impl RttEstimator {
    pub fn new(initial: Duration) -> RttEstimator {
        let initial = micros(initial);
        RttEstimator {
            latest: initial,
            smoothed: initial,
            var: initial / 2,
            min: initial,
            has_sample: false,
        }
    }

    /// Takes a round trip measured elsewhere (the handshake) while no
    /// acknowledgement gave one: the first ACKs of a session may be held
    /// by the receiving application, and say nothing of the path.
    pub fn seed(&mut self, measured: Duration) {
        if !self.has_sample {
            self.update(measured, Duration::ZERO);
        }
    }

    /// Takes a round trip measured at the sender, of which the peer says
    /// it held the acknowledgement `ack_delay` (already capped at its
    /// `max_ack_delay`).
    pub fn update(&mut self, measured: Duration, ack_delay: Duration) {
        let (measured, ack_delay) = (micros(measured), micros(ack_delay));
        if !self.has_sample {
            self.has_sample = true;
            self.latest = measured;
            self.min = measured;
            self.smoothed = measured;
            self.var = measured / 2;
            return;
        }
        self.min = self.min.min(measured);
        // RFC 9002 5.3: the peer's delay comes off, but never below the
        // least round trip seen.
        let sample = if measured >= self.min.saturating_add(ack_delay) {
            measured - ack_delay
        } else {
            measured
        };
        self.latest = sample;
        let deviation = self.smoothed.abs_diff(sample);
        // In u64: three quarters or seven eighths of a u32 times 7 overflows.
        self.var = ((u64::from(self.var) * 3 + u64::from(deviation)) / 4) as u32;
        self.smoothed = ((u64::from(self.smoothed) * 7 + u64::from(sample)) / 8) as u32;
    }

    /// The probe timeout before any backoff.
    pub fn pto(&self) -> Duration {
        duration(self.smoothed) + (duration(self.var) * 4).max(GRANULARITY)
    }

    /// How long after a later packet was acknowledged an older one counts as
    /// lost (RFC 9002 kTimeThreshold = 9/8).
    pub fn loss_delay(&self) -> Duration {
        (duration(self.latest.max(self.smoothed)) * 9 / 8).max(GRANULARITY)
    }

    #[cfg(test)]
    pub fn smoothed(&self) -> Duration {
        duration(self.smoothed)
    }

    #[cfg(test)]
    pub fn min(&self) -> Duration {
        duration(self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn before_any_sample_the_initial_rtt_rules() {
        let rtt = RttEstimator::new(333 * MS);
        // RFC 9002: PTO = smoothed + 4 * (initial / 2) = 3 * initial.
        assert_eq!(rtt.pto(), 999 * MS);
        assert_eq!(rtt.loss_delay(), 333 * MS * 9 / 8);
    }

    #[test]
    fn the_first_sample_replaces_the_initial_guess() {
        let mut rtt = RttEstimator::new(333 * MS);
        rtt.update(20 * MS, Duration::ZERO);
        assert_eq!(rtt.smoothed(), 20 * MS);
        assert_eq!(rtt.pto(), 20 * MS + 40 * MS);
    }

    #[test]
    fn the_time_the_peer_held_its_ack_comes_off_but_not_below_the_minimum() {
        let mut rtt = RttEstimator::new(333 * MS);
        rtt.update(10 * MS, Duration::ZERO);
        // 35 ms measured, 25 of them the ACK waiting at the peer.
        rtt.update(35 * MS, 25 * MS);
        assert_eq!(rtt.smoothed(), 10 * MS, "the sample counted as 10 ms");
        // A delay that would take the sample under the minimum is ignored.
        rtt.update(12 * MS, 25 * MS);
        assert_eq!(rtt.smoothed(), 10 * MS * 7 / 8 + 12 * MS / 8);
        assert_eq!(rtt.min(), 10 * MS);
    }

    #[test]
    fn later_samples_are_smoothed_and_the_minimum_kept() {
        let mut rtt = RttEstimator::new(333 * MS);
        rtt.update(20 * MS, Duration::ZERO);
        rtt.update(100 * MS, Duration::ZERO);
        assert_eq!(rtt.smoothed(), 20 * MS * 7 / 8 + 100 * MS / 8);
        assert_eq!(rtt.min(), 20 * MS);
        // The latest sample counts for loss detection even before it moves
        // the average much.
        assert_eq!(rtt.loss_delay(), 100 * MS * 9 / 8);
    }

    #[test]
    fn timers_never_go_below_the_granularity() {
        let mut rtt = RttEstimator::new(Duration::ZERO);
        rtt.update(Duration::ZERO, Duration::ZERO);
        rtt.update(Duration::ZERO, Duration::ZERO);
        assert_eq!(rtt.pto(), GRANULARITY);
        assert_eq!(rtt.loss_delay(), GRANULARITY);
    }
}

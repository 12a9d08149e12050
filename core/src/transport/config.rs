//! The endpoint's limits and timers ([`Config`]), and the check that the
//! wire format can carry them.

use std::time::Duration;

use super::packet;

/// The endpoint's limits and timers. Both ends of a conversation should use
/// the same values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// No datagram produced is larger.
    pub max_datagram: usize,
    /// The largest message [`Endpoint::send`] accepts and a receiver
    /// reassembles.
    pub max_message: usize,
    /// The round-trip time assumed before the first measurement.
    pub initial_rtt: Duration,
    /// Transmissions of one fragment before its message fails.
    pub max_tries: u32,
    /// The longest one probe timeout grows to by doubling.
    pub max_backoff: Duration,
    /// Fragments in flight per peer; more wait in a queue.
    pub window: usize,
    /// An incomplete message with no new fragment for this long is dropped.
    pub reassembly_timeout: Duration,
    /// Bytes of out-of-order messages one peer may leave waiting.
    pub max_reassembly_bytes: usize,
    /// Bytes of messages queued for one peer and not yet finished; past
    /// it [`Endpoint::send`] refuses more ([`SendError::QueueFull`]).
    pub max_queued_bytes: usize,
    /// The same, all peers together.
    pub max_queued_total: usize,
    /// Bytes all peers together may leave waiting in reassembly (the next
    /// expected messages included).
    pub max_reassembly_total: usize,
    /// A peer with nothing outstanding and no traffic for this long is
    /// forgotten.
    pub idle_timeout: Duration,
    /// How long a receiver may hold an acknowledgement, hoping to send it
    /// on a DATA packet going the same way (RFC 9000 13.2.1): it goes at
    /// once after a second unacknowledged packet, a gap or a duplicate.
    /// A sender's probe timeout allows for it.
    pub max_ack_delay: Duration,
    /// How long an application may hold an acknowledgement back until it
    /// is done with a message ([`Endpoint::hold_ack`]) at most: one that
    /// waits on something else (the network) does not keep its peer
    /// waiting beyond it. Longer than SQLite waits for a busy file (5 s),
    /// so that a client's line is acknowledged once written, or once
    /// writing it failed and it was shown anyway; far shorter than a
    /// sender's ten tries (some 15 s at least), which it never fails.
    ///
    /// [`Endpoint::hold_ack`]: super::Endpoint::hold_ack
    pub max_ack_hold: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_datagram: 1200,
            max_message: 256 * 1024,
            initial_rtt: Duration::from_millis(333),
            max_tries: 10,
            max_backoff: Duration::from_secs(4),
            window: 256,
            reassembly_timeout: Duration::from_secs(30),
            max_reassembly_bytes: 4 * 1024 * 1024,
            max_queued_bytes: 32 * 1024 * 1024,
            max_queued_total: 512 * 1024 * 1024,
            max_reassembly_total: 64 * 1024 * 1024,
            idle_timeout: Duration::from_secs(120),
            max_ack_delay: Duration::from_millis(25),
            max_ack_hold: Duration::from_secs(6),
        }
    }
}

impl Config {
    /// Checks the limits fit the wire format.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let min = (packet::DATA_HEADER_LEN + 1).max(packet::ACK_HEADER_LEN + packet::ACK_RANGE_LEN);
        if self.max_datagram < min {
            return Err(ConfigError::DatagramTooSmall {
                max_datagram: self.max_datagram,
                min,
            });
        }
        let fragments = self.max_message.div_ceil(self.fragment_payload());
        if fragments > usize::from(u16::MAX) {
            return Err(ConfigError::TooManyFragments {
                max_message: self.max_message,
                fragments,
            });
        }
        if self.window == 0 {
            return Err(ConfigError::EmptyWindow);
        }
        if self.max_tries == 0 {
            return Err(ConfigError::NoTries);
        }
        Ok(())
    }

    /// Payload bytes in one DATA datagram.
    pub(super) fn fragment_payload(&self) -> usize {
        self.max_datagram - packet::DATA_HEADER_LEN
    }
}

/// A [`Config`] the wire format cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("max_datagram of {max_datagram} bytes is too small: the least is {min}")]
    DatagramTooSmall { max_datagram: usize, min: usize },
    #[error("max_message of {max_message} bytes takes {fragments} fragments; at most 65535 fit")]
    TooManyFragments {
        max_message: usize,
        fragments: usize,
    },
    #[error("the window must allow at least one fragment in flight")]
    EmptyWindow,
    #[error("max_tries must be at least 1")]
    NoTries,
}

//! [`SecureConfig`]: the endpoint's tuning, with a server's and a client's
//! defaults.

use std::time::Duration;

use super::SWEEP_EVERY;
use crate::transport;
use crate::wire;

/// Tuning.
#[derive(Debug, Clone)]
pub struct SecureConfig {
    pub transport: transport::Config,
    /// The first wait for a WELCOME; doubles per retry.
    pub handshake_retry: Duration,
    /// HELLOs sent before a session is given up.
    pub handshake_tries: u32,
    /// A session nothing was heard on for this long is closed (once its
    /// messages in flight are done).
    pub session_idle: Duration,
    /// A session the application confirmed (its user signed in;
    /// [`super::SecureEndpoint::confirm`]) that nothing was heard on for
    /// this long is closed at once, its messages in flight failing: the
    /// server's presence timeout. Any datagram on the session counts,
    /// keepalives and acknowledgements included. `None`: only
    /// [`SecureConfig::session_idle`] applies.
    pub confirmed_silence: Option<Duration>,
    /// HELLOs per second taken calmly; past that (or with
    /// [`SecureConfig::busy_queue`] waiting) the responder is under load
    /// and asks for cookies ([`super::cookie`]).
    pub calm_handshakes_per_sec: u32,
    /// Queued HELLOs at which the responder counts as under load.
    pub busy_queue: usize,
    /// HELLOs waiting for their P-384 work, at most; more are dropped.
    pub handshake_queue: usize,
    /// Under load, the HELLOs one source (an IPv4 address, an IPv6 /64)
    /// may have answered: a burst, then this many per second.
    pub handshakes_per_source_burst: u32,
    pub handshakes_per_source_per_sec: u32,
    /// A session this side answered is closed if the application has not
    /// confirmed it ([`super::SecureEndpoint::confirm`]) this long after it
    /// opened, or after the application released it again (and its
    /// messages are delivered). `None`: sessions need no confirming.
    pub unconfirmed_timeout: Option<Duration>,
    /// Sessions waiting for confirmation at most; the oldest goes first.
    pub max_unconfirmed: usize,
    /// Sessions one source (an IPv4 address, an IPv6 /64) may hold with
    /// this side as responder; more HELLOs from it are refused.
    pub max_sessions_per_source: usize,
    /// Bytes one relay ([`super::relay`]) carries at most, both ways together.
    pub relay_budget: u64,
    /// A session used lately that sent nothing for this long sends a
    /// keepalive, to keep NAT mappings open ([`super::path`]); `None`: never.
    pub keepalive: Option<Duration>,
}

impl SecureConfig {
    /// How often idle and silent sessions are looked for: often enough
    /// that a silent one closes within a quarter of
    /// [`SecureConfig::confirmed_silence`] past it.
    pub(super) fn sweep_every(&self) -> Duration {
        /// Sessions are not looked through more often than this.
        const MIN_SWEEP_EVERY: Duration = Duration::from_millis(100);
        match self.confirmed_silence {
            Some(silence) => SWEEP_EVERY.min(silence / 4).max(MIN_SWEEP_EVERY),
            None => SWEEP_EVERY,
        }
    }

    /// A server's: sessions that do not sign in within a minute close, a
    /// source holds at most 1,000, and reassembly takes at most 64 MiB in
    /// all (requests are at most 96 KiB).
    pub fn server() -> SecureConfig {
        let default = SecureConfig::default();
        SecureConfig {
            transport: transport::Config {
                max_message: 128 * 1024,
                max_reassembly_bytes: 256 * 1024,
                max_reassembly_total: 64 * 1024 * 1024,
                ..default.transport
            },
            unconfirmed_timeout: Some(Duration::from_secs(60)),
            max_unconfirmed: 20_000,
            max_sessions_per_source: 1_000,
            ..default
        }
    }
}

impl Default for SecureConfig {
    fn default() -> Self {
        SecureConfig {
            transport: transport::Config {
                max_datagram: wire::MAX_DATAGRAM - wire::DATA_OVERHEAD,
                ..transport::Config::default()
            },
            handshake_retry: Duration::from_millis(500),
            handshake_tries: 6,
            session_idle: Duration::from_secs(30 * 60),
            confirmed_silence: None,
            calm_handshakes_per_sec: 200,
            busy_queue: 16,
            handshake_queue: 256,
            handshakes_per_source_burst: 10,
            handshakes_per_source_per_sec: 5,
            unconfirmed_timeout: None,
            max_unconfirmed: usize::MAX,
            max_sessions_per_source: usize::MAX,
            relay_budget: 64 * 1024 * 1024,
            keepalive: None,
        }
    }
}

//! [`Session`]: the sealed channel a handshake leaves behind. Each packet is
//! AES-256-GCM under this direction's key, with the packet counter as the
//! nonce (4 zero bytes, then the counter big-endian) and the caller's packet
//! header as associated data; the receiver refuses tampered, replayed and
//! too-old packets ([`ReplayWindow`]).
//!
//! Usage limits, per direction and session:
//! - after [`SEND_REKEY_AFTER`] (2^20) packets, or [`REKEY_AFTER_MS`]
//!   (10 minutes) after the handshake for a session that carried a message
//!   since (never for one that carried only keepalives and
//!   acknowledgements), [`Session::needs_rekey`] turns true: the caller
//!   should run a new handshake and move to the new session;
//! - at [`SEND_LIMIT`] (2^22) packets `seal` refuses
//!   ([`SessionError::Exhausted`]) and `open` refuses counters at or past
//!   it. Both stay well below the 2^23 messages-per-key bound that keeps
//!   AES-GCM's confidentiality and integrity margins comfortable for
//!   packets of at most 1200 bytes.
//!
//! A session keeps its two 32-byte keys; the expanded AES schedule and
//! GHASH key of a direction (992 bytes) are kept only while it is busy
//! ([`Key`]). A direction used once in a while (a keepalive and its ACK,
//! every 10 s) expands its key on the stack for each packet, about 200 ns
//! (AES-NI), wiped when the call returns; one used twice within a second
//! keeps its expansion until the endpoint, which looks at its busy
//! sessions every second, finds it unused for a second or two
//! ([`Session::cool`]). An idle session then costs a few hundred
//! bytes, which is what lets one server hold 100,000 of them, and a busy
//! one pays nothing per packet.

use aes_gcm::Aes256Gcm;
use zeroize::Zeroizing;

use super::handshake::Keys;
use super::replay::{ReplayError, ReplayWindow};
use super::symmetric::{cipher, open_with, seal_in_place_with, CipherKey, HASH_LEN, TAG_LEN};

/// Packets after which a new handshake should start.
pub const SEND_REKEY_AFTER: u64 = 1 << 20;
/// Packets after which `seal` refuses.
pub const SEND_LIMIT: u64 = 1 << 22;
/// Age (ms) after which a new handshake should start, once the session
/// carried a message. One that carried only keepalives and
/// acknowledgements is not re-keyed for its age: its keys protect nothing
/// a user said, and 100,000 idle clients re-keying even hourly are 28
/// P-384 handshakes a second on their server (a tenth of a core here).
/// Its first message re-keys it (that message still goes under the old
/// keys, which the new ones replace within a round trip).
pub const REKEY_AFTER_MS: u64 = 10 * 60 * 1000;

/// Which side of the handshake this session was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// Why a packet could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("the session has sent its {SEND_LIMIT} packets; a new handshake is needed")]
    Exhausted,
    #[error("packet does not decrypt: wrong session, or tampered with")]
    Decrypt,
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("packet counter {counter} is beyond what a peer may send")]
    CounterOutOfRange { counter: u64 },
}

/// One direction's key, expanded only while it is busy.
struct Key {
    key: CipherKey,
    /// Zeroized when dropped (the `aes` crate's `zeroize` feature).
    expanded: Option<Box<Aes256Gcm>>,
    /// The second ([`Session::at`]) it was last used in, and how often
    /// in it (up to 2).
    second: u32,
    uses: u8,
}

impl Key {
    fn new(key: &CipherKey) -> Key {
        Key {
            key: Zeroizing::new(**key),
            expanded: None,
            second: 0,
            uses: 0,
        }
    }

    /// Runs `f` with the expanded key; expands it for good when this is
    /// its second use within one second.
    fn with<R>(&mut self, second: u32, f: impl FnOnce(&Aes256Gcm) -> R) -> R {
        if self.second != second {
            self.second = second;
            self.uses = 0;
        }
        self.uses = self.uses.saturating_add(1).min(2);
        if self.expanded.is_none() && self.uses >= 2 {
            self.expanded = Some(Box::new(cipher(&self.key)));
        }
        match &self.expanded {
            Some(expanded) => f(expanded),
            None => f(&cipher(&self.key)),
        }
    }

    /// Drops the expansion if the key was not used in this second or the
    /// one before.
    fn cool(&mut self, second: u32) {
        if self.second.saturating_add(1) < second {
            self.expanded = None;
        }
    }
}

/// One end of an established channel.
pub struct Session {
    send: Key,
    receive: Key,
    next_send: u64,
    window: ReplayWindow,
    established_ms: u64,
    handshake_hash: [u8; HASH_LEN],
    /// In the endpoint's list of sessions to cool ([`Session::to_cool`]).
    listed: bool,
    /// The endpoint's clock, in whole seconds ([`Session::at`]).
    second: u32,
}

impl Session {
    pub fn new(keys: Keys, role: Role) -> Session {
        let (send, receive) = match role {
            Role::Initiator => (&keys.initiator_to_responder, &keys.responder_to_initiator),
            Role::Responder => (&keys.responder_to_initiator, &keys.initiator_to_responder),
        };
        Session {
            send: Key::new(send),
            receive: Key::new(receive),
            next_send: 0,
            window: ReplayWindow::new(),
            established_ms: keys.established_ms(),
            handshake_hash: *keys.handshake_hash(),
            listed: false,
            second: 0,
        }
    }

    /// The counter the next `seal` will use (the caller puts it in the
    /// packet header it passes to `seal`).
    pub fn next_counter(&self) -> u64 {
        self.next_send
    }

    /// Encrypts `plaintext` with `header` as associated data; returns the
    /// counter used and the ciphertext (plaintext + 16-byte tag).
    pub fn seal(
        &mut self,
        header: &[u8],
        plaintext: &[u8],
    ) -> Result<(u64, Vec<u8>), SessionError> {
        let mut sealed = Vec::with_capacity(header.len() + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(header);
        sealed.extend_from_slice(plaintext);
        let counter = self.seal_in_place(&mut sealed, header.len())?;
        sealed.drain(..header.len());
        Ok((counter, sealed))
    }

    /// Encrypts `datagram[header_len..]` in place with the header before it
    /// as associated data, and appends the tag; returns the counter used
    /// (the caller wrote [`Session::next_counter`] in the header).
    pub fn seal_in_place(
        &mut self,
        datagram: &mut Vec<u8>,
        header_len: usize,
    ) -> Result<u64, SessionError> {
        let counter = self.next_send;
        if counter >= SEND_LIMIT {
            return Err(SessionError::Exhausted);
        }
        let second = self.second;
        self.send.with(second, |cipher| {
            seal_in_place_with(cipher, counter, datagram, header_len)
        });
        self.next_send += 1;
        Ok(counter)
    }

    /// Decrypts a packet sealed by the peer under `counter` with `header`.
    /// Refuses a tampered packet, and one whose counter was already
    /// accepted or fell behind the replay window.
    pub fn open(
        &mut self,
        counter: u64,
        header: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        if counter >= SEND_LIMIT {
            return Err(SessionError::CounterOutOfRange { counter });
        }
        self.window.check(counter)?;
        let second = self.second;
        let plaintext = self
            .receive
            .with(second, |cipher| {
                open_with(cipher, counter, header, ciphertext)
            })
            .map_err(|_| SessionError::Decrypt)?;
        self.window.mark(counter);
        Ok(plaintext)
    }

    /// Whether the caller should start a new handshake: this side has sent
    /// [`SEND_REKEY_AFTER`] packets, or the session `carried` a message
    /// since the handshake (as the caller knows) and `now_ms` is
    /// [`REKEY_AFTER_MS`] past it.
    pub fn needs_rekey(&self, now_ms: u64, carried: bool) -> bool {
        self.next_send >= SEND_REKEY_AFTER
            || (carried && now_ms.saturating_sub(self.established_ms) >= REKEY_AFTER_MS)
    }

    /// Sets the clock `seal` and `open` go by, in whole seconds of the
    /// endpoint's: a direction used twice within one second keeps its key
    /// expanded.
    pub fn at(&mut self, second: u32) -> &mut Session {
        self.second = second;
        self
    }

    /// Whether the endpoint should list this session to cool: true once,
    /// when a direction has just kept its key expanded.
    pub fn to_cool(&mut self) -> bool {
        let new = self.keeps_expanded() && !self.listed;
        self.listed |= new;
        new
    }

    /// Called by the endpoint now and then, at `second`: a direction not
    /// used in this second or the one before gives back its expanded key.
    /// Returns whether one is still kept (the session stays listed).
    pub fn cool(&mut self, second: u32) -> bool {
        self.send.cool(second);
        self.receive.cool(second);
        self.listed = self.keeps_expanded();
        self.listed
    }

    fn keeps_expanded(&self) -> bool {
        self.send.expanded.is_some() || self.receive.expanded.is_some()
    }

    /// Whether a direction keeps its key expanded (for tests).
    #[cfg(test)]
    pub(crate) fn expanded(&self) -> (bool, bool) {
        (
            self.send.expanded.is_some(),
            self.receive.expanded.is_some(),
        )
    }

    /// The handshake hash both ends share.
    pub fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.handshake_hash
    }

    #[cfg(test)]
    pub(crate) fn with_send_counter(keys: Keys, role: Role, next_send: u64) -> Session {
        let mut session = Session::new(keys, role);
        session.next_send = next_send;
        session
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("next_send", &self.next_send)
            .field("established_ms", &self.established_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::handshake::{ClientHello, ReplayGuard, ServerHandshake};
    use crate::crypto::keys::tests::key;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    pub(crate) const NOW: u64 = 1_700_000_000_000;

    /// Keys for both ends of a real NK handshake: (client's, server's).
    pub(crate) fn key_pair(seed: u64) -> (Keys, Keys) {
        let mut rng = StdRng::seed_from_u64(seed);
        let server = key(100);
        let (state, msg1) = ClientHello::start(&mut rng, &server.public(), b"", NOW).unwrap();
        let (server_keys, msg2, _) =
            ServerHandshake::respond(&mut rng, &server, &msg1, NOW, b"", &mut ReplayGuard::new())
                .unwrap();
        let (client_keys, _) = state.read(&msg2).unwrap();
        (client_keys, server_keys)
    }

    pub(crate) fn sessions(seed: u64) -> (Session, Session) {
        let (client, server) = key_pair(seed);
        (
            Session::new(client, Role::Initiator),
            Session::new(server, Role::Responder),
        )
    }

    #[test]
    fn data_flows_both_ways() {
        let (mut client, mut server) = sessions(1);
        let (counter, sealed) = client.seal(b"hdr", b"hello server").unwrap();
        assert_eq!(counter, 0);
        assert_eq!(
            server.open(counter, b"hdr", &sealed).unwrap(),
            b"hello server"
        );
        let (counter, sealed) = server.seal(b"hdr", b"hello client").unwrap();
        assert_eq!(
            client.open(counter, b"hdr", &sealed).unwrap(),
            b"hello client"
        );
        assert_eq!(client.next_counter(), 1);
        assert_eq!(client.handshake_hash(), server.handshake_hash());
    }

    #[test]
    fn sealing_in_place_is_sealing_after_the_header() {
        let (mut client, mut server) = sessions(2);
        let mut datagram = b"hdrhello server".to_vec();
        assert_eq!(client.seal_in_place(&mut datagram, 3).unwrap(), 0);
        assert_eq!(&datagram[..3], b"hdr");
        assert_eq!(
            server.open(0, b"hdr", &datagram[3..]).unwrap(),
            b"hello server"
        );
        // The same bytes as sealing apart, under the next counter.
        let (mut again, _) = sessions(2);
        let (_, sealed) = again.seal(b"hdr", b"hello server").unwrap();
        assert_eq!(&datagram[3..], &sealed[..]);
        assert_eq!(client.next_counter(), 1);
    }

    #[test]
    fn a_key_is_kept_expanded_while_busy_and_given_back_when_quiet() {
        let (mut client, mut server) = sessions(9);
        let exchange = |client: &mut Session, server: &mut Session, second: u32| {
            let (counter, sealed) = client.at(second).seal(b"", b"ping").unwrap();
            server.at(second).open(counter, b"", &sealed).unwrap();
        };
        exchange(&mut client, &mut server, 0);
        exchange(&mut client, &mut server, 1);
        assert_eq!(
            client.expanded(),
            (false, false),
            "once a second: expanded on the stack"
        );
        exchange(&mut client, &mut server, 1);
        assert_eq!(client.expanded(), (true, false), "twice in a second: kept");
        assert_eq!(server.expanded(), (false, true));
        assert!(client.to_cool() && !client.to_cool(), "listed once");
        assert!(client.cool(2), "used the second before");
        assert_eq!(client.expanded(), (true, false));
        assert!(!client.cool(3), "quiet for a second");
        assert_eq!(client.expanded(), (false, false), "given back");
        // A kept expansion and a fresh one seal the same way.
        exchange(&mut client, &mut server, 3);
    }

    #[test]
    fn a_replayed_packet_is_refused() {
        let (mut client, mut server) = sessions(2);
        let (counter, sealed) = client.seal(b"", b"once").unwrap();
        server.open(counter, b"", &sealed).unwrap();
        assert_eq!(
            server.open(counter, b"", &sealed),
            Err(SessionError::Replay(ReplayError::Duplicate { counter }))
        );
    }

    #[test]
    fn reordered_packets_within_the_window_are_accepted() {
        let (mut client, mut server) = sessions(3);
        let packets: Vec<_> = (0..300)
            .map(|i: u32| client.seal(b"", &i.to_be_bytes()).unwrap())
            .collect();
        for (counter, sealed) in packets.iter().rev() {
            let plain = server.open(*counter, b"", sealed).unwrap();
            assert_eq!(plain, (*counter as u32).to_be_bytes());
        }
    }

    #[test]
    fn tampering_with_any_byte_or_the_header_is_refused() {
        let (mut client, mut server) = sessions(4);
        let (counter, sealed) = client.seal(b"header", b"payload").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                server.open(counter, b"header", &bad),
                Err(SessionError::Decrypt)
            );
        }
        assert_eq!(
            server.open(counter, b"headeR", &sealed),
            Err(SessionError::Decrypt)
        );
        assert_eq!(
            server.open(counter + 1, b"header", &sealed),
            Err(SessionError::Decrypt)
        );
        assert_eq!(
            server.open(counter, b"header", &sealed[..10]),
            Err(SessionError::Decrypt)
        );
        // Failed attempts did not burn the counter.
        assert_eq!(
            server.open(counter, b"header", &sealed).unwrap(),
            b"payload"
        );
    }

    #[test]
    fn a_session_does_not_open_its_own_packets() {
        let (mut client, _) = sessions(5);
        let (counter, sealed) = client.seal(b"", b"echo").unwrap();
        assert_eq!(
            client.open(counter, b"", &sealed),
            Err(SessionError::Decrypt)
        );
    }

    #[test]
    fn seal_refuses_past_the_send_limit() {
        let (client_keys, server_keys) = key_pair(6);
        let mut client = Session::with_send_counter(client_keys, Role::Initiator, SEND_LIMIT - 1);
        let mut server = Session::new(server_keys, Role::Responder);
        assert!(client.needs_rekey(NOW, true));
        let (counter, sealed) = client.seal(b"", b"last").unwrap();
        assert_eq!(counter, SEND_LIMIT - 1);
        assert_eq!(server.open(counter, b"", &sealed).unwrap(), b"last");
        assert_eq!(client.seal(b"", b"one more"), Err(SessionError::Exhausted));
        assert_eq!(
            server.open(SEND_LIMIT, b"", &sealed),
            Err(SessionError::CounterOutOfRange {
                counter: SEND_LIMIT
            })
        );
    }

    #[test]
    fn rekey_is_due_after_many_packets_or_ten_minutes_once_a_message_went() {
        let (client_keys, _) = key_pair(7);
        let client = Session::new(client_keys, Role::Initiator);
        assert!(!client.needs_rekey(NOW, true));
        assert!(!client.needs_rekey(NOW + REKEY_AFTER_MS - 1, true));
        assert!(client.needs_rekey(NOW + REKEY_AFTER_MS, true));
        // Keys that carried nothing are not re-keyed for their age.
        assert!(!client.needs_rekey(NOW + REKEY_AFTER_MS, false));
        assert!(!client.needs_rekey(NOW + 24 * 60 * 60 * 1000, false));
        let (client_keys, _) = key_pair(8);
        let busy = Session::with_send_counter(client_keys, Role::Initiator, SEND_REKEY_AFTER);
        assert!(busy.needs_rekey(NOW, false));
    }
}

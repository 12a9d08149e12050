//! Meetings: how two clients find a path to each other across NATs, with
//! the server they both talk to as the rendezvous (ICE, RFC 8445, cut to
//! what udpchat needs).
//!
//! When alice wants bob and holds no session with him, her `lookup` asks
//! the server for a meeting. The server gives both a [`Ticket`] (an id and
//! a secret key) over their encrypted sessions: alice in the reply, with
//! bob's candidates, and bob in a push, with alice's. A *candidate* is an
//! address the other may be reached at: its reflexive address (where the
//! server sees it: its NAT's mapping) and its host addresses (its own
//! interfaces, for a peer on the same LAN).
//!
//! Both sides then send a PROBE check to each of the other's candidates at
//! once, and again after 50, 100, 200 ... ms, [`CHECKS`] per address over
//! about 6 s. A check leaving a NAT opens a mapping toward the other's
//! address, so the other's next check gets in. Each side answers every
//! check of the meeting where it came from; a check from an address that
//! is not a candidate (the peer's NAT mapping toward this side, a
//! peer-reflexive candidate) is checked back at once, as is any candidate
//! whose check just came in (ICE's triggered checks). An answer to one of
//! this side's checks makes that address [`SecureEvent::Reachable`]: the
//! application picks one and opens its session there.
//!
//! Checks and answers carry the meeting id and a MAC under the meeting key,
//! so only the two clients and the server can make them, and an answer
//! must echo the nonce of a check sent to the address it comes from. An
//! answer is the size of its check (no amplification); checks stop at an
//! answer or after [`CHECKS`], to at most [`MAX_TARGETS`] addresses per
//! meeting, and one client keeps at most [`MAX_MEETINGS`].
//!
//! When no check is answered (a symmetric NAT gives each destination its
//! own port, so the peer's checks come from a port nobody was told), the
//! session goes through the server: the application opens it toward the
//! meeting's *relay address* ([`relay_addr`]: the meeting id in the
//! discard-only prefix 100::/64 of RFC 6666, which no real peer has). What
//! is sent there leaves wrapped in a RELAY packet to the server, which
//! passes it to the other side as it is; RELAY packets from the server are
//! unwrapped and taken in as if they came from the relay address. The
//! session's handshake and keys are the two clients' own: the server
//! relays bytes it cannot read.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use rand::RngCore;
use zeroize::Zeroizing;

use super::{cookie, Rejected, SecureEndpoint, SecureEvent};
use crate::wire::{self, Packet};

/// A meeting's secret key, in bytes.
pub const KEY_LEN: usize = 32;
/// Checks sent to one address at most.
pub const CHECKS: u32 = 8;
/// The wait after the first check to an address; it doubles after each.
pub const FIRST_RETRY: Duration = Duration::from_millis(50);
/// Addresses checked per meeting at most (candidates, then peer-reflexive).
pub const MAX_TARGETS: usize = 10;
/// Meetings one client keeps at most; the least lately used goes first.
pub const MAX_MEETINGS: usize = 256;
/// A meeting nothing went through for this long is forgotten (a session
/// relayed through it is kept alive far more often).
pub const MEETING_IDLE: Duration = Duration::from_secs(10 * 60);

/// What the server gives both sides of a meeting.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ticket {
    pub id: u64,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("id", &self.id).finish()
    }
}

impl Ticket {
    /// A fresh meeting, from the system's random source.
    pub fn random() -> Ticket {
        Ticket::new(&mut rand::rngs::OsRng)
    }

    /// A PROBE of this meeting: a check, or (`answer`) the answer to the
    /// check with `nonce`.
    pub fn probe(&self, answer: bool, nonce: u64) -> Vec<u8> {
        probe(&self.key, answer, self.id, nonce)
    }

    /// A fresh meeting.
    pub fn new(rng: &mut impl RngCore) -> Ticket {
        let mut key = vec![0u8; KEY_LEN];
        rng.fill_bytes(&mut key);
        Ticket {
            id: rng.next_u64(),
            key,
        }
    }
}

/// The address a session through the server's relay is opened toward:
/// `[100::<meeting id>]:0`.
pub fn relay_addr(meeting: u64) -> SocketAddr {
    let word = |shift: u32| (meeting >> shift) as u16;
    let ip = Ipv6Addr::new(0x0100, 0, 0, 0, word(48), word(32), word(16), word(0));
    SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, 0))
}

/// The meeting whose relay address `addr` is, if it is one.
pub fn relayed_meeting(addr: SocketAddr) -> Option<u64> {
    let SocketAddr::V6(v6) = addr else {
        return None;
    };
    let s = v6.ip().segments();
    if s[..4] != [0x0100, 0, 0, 0] || v6.port() != 0 {
        return None;
    }
    Some(s[4..].iter().fold(0u64, |id, &w| (id << 16) | u64::from(w)))
}

/// One address being checked.
struct Target {
    addr: SocketAddr,
    /// Checks sent so far, and their nonces.
    nonces: Vec<u64>,
    /// When the next check goes, if one does.
    next: Option<Instant>,
    answered: bool,
}

struct Meeting {
    key: Zeroizing<Vec<u8>>,
    /// The server that relays for it, if the application may use it.
    relay: Option<SocketAddr>,
    targets: Vec<Target>,
    last_used: Instant,
}

impl Meeting {
    fn add_target(&mut self, addr: SocketAddr, now: Instant) {
        let full = self.targets.len() >= MAX_TARGETS;
        match self.targets.iter_mut().find(|t| t.addr == addr) {
            // Checked before and not answered: check again now (a check
            // from there just showed the way is open).
            Some(target) if !target.answered && (target.nonces.len() as u32) < CHECKS => {
                target.next = Some(now);
            }
            Some(_) => {}
            None if !full => self.targets.push(Target {
                addr,
                nonces: Vec::new(),
                next: Some(now),
                answered: false,
            }),
            None => {}
        }
    }
}

/// This client's meetings.
#[derive(Default)]
pub(super) struct Meetings {
    by_id: HashMap<u64, Meeting>,
    pub(super) checks_sent: u64,
}

impl Meetings {
    /// Starts checking `candidates` for `ticket`'s meeting (or adds them
    /// to it); `relay` is the server that relays for it.
    pub(super) fn meet(
        &mut self,
        now: Instant,
        ticket: &Ticket,
        candidates: &[SocketAddr],
        relay: Option<SocketAddr>,
    ) {
        if !self.by_id.contains_key(&ticket.id) && self.by_id.len() >= MAX_MEETINGS {
            if let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, m)| m.last_used)
                .map(|(id, _)| *id)
            {
                self.by_id.remove(&oldest);
            }
        }
        let meeting = self.by_id.entry(ticket.id).or_insert_with(|| Meeting {
            key: Zeroizing::new(ticket.key.clone()),
            relay,
            targets: Vec::new(),
            last_used: now,
        });
        meeting.last_used = now;
        meeting.relay = meeting.relay.or(relay);
        for &addr in candidates {
            if relayed_meeting(addr).is_none() && !addr.ip().is_unspecified() && addr.port() != 0 {
                meeting.add_target(addr, now);
            }
        }
    }

    /// Forgets a meeting.
    pub(super) fn end(&mut self, id: u64) {
        self.by_id.remove(&id);
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.by_id
            .values()
            .flat_map(|m| m.targets.iter().filter_map(|t| t.next))
            .min()
    }

    /// Sends the checks that are due; forgets idle meetings.
    pub(super) fn on_timeout(
        &mut self,
        now: Instant,
        rng: &mut impl RngCore,
        out: &mut impl Extend<(SocketAddr, Vec<u8>)>,
    ) {
        self.by_id
            .retain(|_, m| now.saturating_duration_since(m.last_used) < MEETING_IDLE);
        for (&id, meeting) in &mut self.by_id {
            for target in &mut meeting.targets {
                if target.next.is_none_or(|at| at > now) {
                    continue;
                }
                let nonce = rng.next_u64();
                target.nonces.push(nonce);
                let sent = target.nonces.len() as u32;
                target.next = (sent < CHECKS).then(|| now + FIRST_RETRY * (1 << (sent - 1)));
                self.checks_sent += 1;
                out.extend([(target.addr, probe(&meeting.key, false, id, nonce))]);
            }
        }
    }

    /// Takes in a PROBE from `from`: a check is answered (and its address
    /// checked back); an answer to a check of ours makes its address
    /// reachable.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_probe(
        &mut self,
        now: Instant,
        from: SocketAddr,
        answer: bool,
        id: u64,
        nonce: u64,
        signed: &[u8],
        mac: &[u8],
        out: &mut impl Extend<(SocketAddr, Vec<u8>)>,
    ) -> Result<Option<SecureEvent>, Rejected> {
        let meeting = self.by_id.get_mut(&id).ok_or(Rejected::Unexpected)?;
        if !cookie::verify(&meeting.key, signed, mac) {
            return Err(Rejected::Unauthentic);
        }
        meeting.last_used = now;
        if !answer {
            out.extend([(from, probe(&meeting.key, true, id, nonce))]);
            meeting.add_target(from, now);
            return Ok(None);
        }
        let target = meeting
            .targets
            .iter_mut()
            .find(|t| t.addr == from && t.nonces.contains(&nonce))
            .ok_or(Rejected::Unexpected)?;
        target.next = None;
        if std::mem::replace(&mut target.answered, true) {
            return Ok(None);
        }
        Ok(Some(SecureEvent::Reachable {
            meeting: id,
            addr: from,
        }))
    }

    /// Where a datagram for `to` goes, and as what: a relay address's
    /// datagram goes to its meeting's server in a RELAY packet (`None`: its
    /// meeting is gone, so it is dropped); any other goes as it is.
    pub(super) fn route(
        &mut self,
        now: Instant,
        to: SocketAddr,
        datagram: Vec<u8>,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let Some(id) = relayed_meeting(to) else {
            return Some((to, datagram));
        };
        let meeting = self.by_id.get_mut(&id)?;
        meeting.last_used = now;
        Some((meeting.relay?, wire::relay_datagram(id, &datagram)))
    }

    /// The relay address a RELAY packet of meeting `id` from `from` is
    /// taken in as: only from the meeting's own server.
    pub(super) fn unwrap(&mut self, now: Instant, from: SocketAddr, id: u64) -> Option<SocketAddr> {
        let meeting = self.by_id.get_mut(&id)?;
        if meeting.relay != Some(from) {
            return None;
        }
        meeting.last_used = now;
        Some(relay_addr(id))
    }
}

impl SecureEndpoint {
    /// Checks `candidates` for the meeting `ticket` names (or adds them to
    /// it); `relay`: the server that relays for it, if sessions may go
    /// through [`relay_addr`]. A [`SecureEvent::Reachable`] follows for
    /// each candidate that answers.
    pub fn meet(
        &mut self,
        now: Instant,
        ticket: &Ticket,
        candidates: &[SocketAddr],
        relay: Option<SocketAddr>,
    ) {
        self.meetings.meet(now, ticket, candidates, relay);
        self.meetings
            .on_timeout(now, &mut self.rng, &mut self.outbox);
    }

    /// Forgets a meeting: no more checks, no more relaying for it.
    pub fn end_meeting(&mut self, meeting: u64) {
        self.meetings.end(meeting);
    }

    /// Takes a PROBE from `from`: a check is answered and checked back at
    /// once; an answer to one of ours may make its address reachable.
    pub(super) fn take_probe(
        &mut self,
        now: Instant,
        from: SocketAddr,
        probe: &Packet<'_>,
    ) -> Result<(), Rejected> {
        let &Packet::Probe {
            answer,
            meeting,
            nonce,
            signed,
            mac,
        } = probe
        else {
            return Err(Rejected::Unexpected);
        };
        let event = self.meetings.handle_probe(
            now,
            from,
            answer,
            meeting,
            nonce,
            signed,
            mac,
            &mut self.outbox,
        )?;
        self.events.extend(event);
        self.meetings
            .on_timeout(now, &mut self.rng, &mut self.outbox);
        Ok(())
    }

    /// A client takes a RELAY from `from`: only from its meeting's server,
    /// and only the two clients' own session, handled as if it came from
    /// the meeting's relay address.
    pub(super) fn take_relayed(
        &mut self,
        now: Instant,
        now_ms: u64,
        from: SocketAddr,
        meeting: u64,
        inner: &[u8],
    ) -> Result<(), Rejected> {
        let via = self
            .meetings
            .unwrap(now, from, meeting)
            .ok_or(Rejected::Unexpected)?;
        match Packet::parse(inner) {
            Ok(
                Packet::Hello { .. }
                | Packet::Welcome { .. }
                | Packet::Data { .. }
                | Packet::CookieReply { .. },
            ) => self.handle_packet(now, now_ms, via, inner),
            _ => Err(Rejected::Unexpected),
        }
    }
}

fn probe(key: &[u8], answer: bool, meeting: u64, nonce: u64) -> Vec<u8> {
    let signed = wire::probe_signed(answer, meeting, nonce);
    let mac = cookie::mac(key, &signed);
    Packet::Probe {
        answer,
        meeting,
        nonce,
        signed: &signed,
        mac: &mac,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_address_names_its_meeting_and_no_real_address_does() {
        for id in [0, 1, 0x0102_0304_0506_0708, u64::MAX] {
            assert_eq!(relayed_meeting(relay_addr(id)), Some(id));
        }
        for real in [
            "127.0.0.1:4590",
            "[::1]:4590",
            "[100::1]:80",
            "[2001:db8::1]:0",
        ] {
            assert_eq!(relayed_meeting(real.parse().unwrap()), None, "{real}");
        }
    }

    fn ticket(id: u64) -> Ticket {
        Ticket {
            id,
            key: vec![7; KEY_LEN],
        }
    }

    #[test]
    fn checks_back_off_and_stop_after_the_last() {
        let t0 = Instant::now();
        let mut meetings = Meetings::default();
        let peer: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        meetings.meet(t0, &ticket(1), &[peer], None);
        let mut out = Vec::new();
        let mut rng = rand::thread_rng();
        let mut at = t0;
        let mut times = Vec::new();
        while let Some(next) = meetings.poll_timeout() {
            at = next;
            meetings.on_timeout(at, &mut rng, &mut out);
            times.push(at.duration_since(t0).as_millis());
        }
        assert_eq!(times, [0, 50, 150, 350, 750, 1550, 3150, 6350]);
        assert_eq!(out.len(), CHECKS as usize);
        assert!(out
            .iter()
            .all(|(to, d)| *to == peer && d.len() == wire::PROBE_LEN));
        assert!(at < t0 + MEETING_IDLE);
    }

    #[test]
    fn a_check_is_answered_and_checked_back_and_an_answer_makes_it_reachable() {
        let t0 = Instant::now();
        let mut rng = rand::thread_rng();
        let (alice_at, bob_at): (SocketAddr, SocketAddr) = (
            "198.51.100.1:1000".parse().unwrap(),
            "198.51.100.2:2000".parse().unwrap(),
        );
        let (mut alice, mut bob) = (Meetings::default(), Meetings::default());
        // bob knows of the meeting but not where alice is seen from.
        alice.meet(t0, &ticket(9), &[bob_at], None);
        bob.meet(t0, &ticket(9), &[], None);
        let mut out = Vec::new();
        alice.on_timeout(t0, &mut rng, &mut out);
        let (to, check) = out.pop().unwrap();
        assert_eq!(to, bob_at);
        let take = |m: &mut Meetings, from, bytes: &[u8], out: &mut Vec<_>| {
            let Ok(Packet::Probe {
                answer,
                meeting,
                nonce,
                signed,
                mac,
            }) = Packet::parse(bytes)
            else {
                panic!("not a probe")
            };
            m.handle_probe(t0, from, answer, meeting, nonce, signed, mac, out)
        };
        assert_eq!(take(&mut bob, alice_at, &check, &mut out), Ok(None));
        // The answer, then a check back to alice (peer-reflexive).
        let (to, answer) = out.remove(0);
        assert_eq!(to, alice_at);
        bob.on_timeout(t0, &mut rng, &mut out);
        assert_eq!(out.pop().map(|(to, _)| to), Some(alice_at));
        assert_eq!(
            take(&mut alice, bob_at, &answer, &mut Vec::new()),
            Ok(Some(SecureEvent::Reachable {
                meeting: 9,
                addr: bob_at
            }))
        );
        // Once only; an answer from elsewhere, or a forged one, is refused.
        assert_eq!(take(&mut alice, bob_at, &answer, &mut Vec::new()), Ok(None));
        let elsewhere: SocketAddr = "203.0.113.9:9".parse().unwrap();
        assert_eq!(
            take(&mut alice, elsewhere, &answer, &mut Vec::new()),
            Err(Rejected::Unexpected)
        );
        let mut forged = answer.clone();
        forged[12] ^= 1;
        assert_eq!(
            take(&mut alice, bob_at, &forged, &mut Vec::new()),
            Err(Rejected::Unauthentic)
        );
        let mut other = ticket(10);
        other.key = vec![8; KEY_LEN];
        let mut stranger = Meetings::default();
        stranger.meet(t0, &other, &[], None);
        assert_eq!(
            take(&mut stranger, alice_at, &check, &mut Vec::new()),
            Err(Rejected::Unexpected)
        );
    }

    #[test]
    fn relayed_datagrams_go_to_the_meetings_server_and_come_only_from_it() {
        let t0 = Instant::now();
        let server: SocketAddr = "198.51.100.1:4590".parse().unwrap();
        let mut meetings = Meetings::default();
        meetings.meet(t0, &ticket(5), &[], Some(server));
        let via = relay_addr(5);
        let (to, bytes) = meetings.route(t0, via, vec![1, 3, 0]).unwrap();
        assert_eq!(to, server);
        assert_eq!(
            Packet::parse(&bytes),
            Ok(Packet::Relay {
                meeting: 5,
                inner: &[1, 3, 0]
            })
        );
        assert_eq!(meetings.route(t0, relay_addr(6), vec![1]), None);
        let direct: SocketAddr = "10.0.0.2:1".parse().unwrap();
        assert_eq!(meetings.route(t0, direct, vec![1]), Some((direct, vec![1])));
        assert_eq!(meetings.unwrap(t0, server, 5), Some(via));
        assert_eq!(meetings.unwrap(t0, direct, 5), None);
        assert_eq!(meetings.unwrap(t0, server, 6), None);
    }
}

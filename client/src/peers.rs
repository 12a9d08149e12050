//! The client's end-to-end sessions with other clients: opened on the
//! first message to a user, on the path a meeting finds (see
//! `udpchat_core::secure::meeting`), and reused after.
//!
//! Opening one: the `lookup` that found the user brought a meeting ticket
//! and the user's candidates (where the server sees their client, then its
//! own addresses). This client checks them all while the other client,
//! told by the server, checks back; the first answer, and any better one
//! within [`NOMINATE_WITHIN`] (IPv6 before IPv4, the client's own address
//! before where the server sees it; no wait when the first is the best),
//! is where the session goes. No answer
//! within [`PUNCH_WAIT`] (a symmetric NAT on the way): the session goes
//! through the server's relay, still end to end encrypted, and moves to a
//! direct path if a check is answered later (while the checks last).
//!
//! A path can break under a session (a NAT rebooted and forgot its
//! mappings): a message not acknowledged within [`STALL_AFTER`] makes the
//! client ask the server for a new meeting with the user, and move the
//! session to the path it finds (direct again, or the relay); what was in
//! flight goes again there at once.
//!
//! One opening at a time per user, so messages to one user keep their
//! order; none waits for another user's, and no lock is held while a
//! meeting runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use udpchat_core::context::{
    BoxFuture, Delivery, Path, PeerId, PeerLinks, PeerPath, Session, Whereabouts,
};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::packet::Encoded;
use udpchat_core::secure::meeting::{self, Ticket};
use udpchat_core::wire::Pattern;
use udpchat_net::Link;

use crate::server::{ServerConnector, SignInEpoch};

/// How long a meeting's checks may go unanswered before the session goes
/// through the relay.
pub const PUNCH_WAIT: Duration = Duration::from_millis(500);
/// As long, for a meeting without a relay (the user is on another server
/// node). No answer by then means no path: where the server sees the user
/// was checked too, so the message is kept for them on the server instead
/// (their node hands it over at once).
pub const PUNCH_WAIT_WITHOUT_RELAY: Duration = Duration::from_secs(2);
/// After the first answer, how long a better candidate may still answer
/// (no wait when the first is the best there is).
pub const NOMINATE_WITHIN: Duration = Duration::from_millis(50);
/// A message not acknowledged for this long makes the client look for a
/// new path to its peer.
pub const STALL_AFTER: Duration = Duration::from_secs(2);
/// A session looks for a new path at most this often.
const REFIND_EVERY: Duration = Duration::from_secs(10);
/// Relayed peers whose address (as the server sees them) is remembered.
const MAX_RELAYED: usize = 256;

/// Addresses that answered a meeting's checks.
type Answers = tokio::sync::mpsc::UnboundedReceiver<SocketAddr>;

/// An open session, by the address the server sees the peer at and its
/// identity key.
type Key = (SocketAddr, Vec<u8>);

#[derive(Debug, Clone)]
struct Open {
    peer: PeerId,
    user: String,
    /// Where the server sees the peer's client.
    seen_at: SocketAddr,
    /// Where the session's packets go (a relay address when relayed).
    addr: SocketAddr,
    /// When a new path was last looked for.
    refound: Option<tokio::time::Instant>,
    /// The whereabouts it was opened to, while the server, which promised
    /// to say when the user comes or goes, has said nothing of them on the
    /// sign-in it was told on (see [`PeerLinks::known`]).
    vouched: Option<(Whereabouts, SignInEpoch)>,
}

pub struct PeerSessions {
    me: Weak<PeerSessions>,
    link: Link,
    server: Arc<ServerConnector>,
    session: Arc<Mutex<Session>>,
    open: Mutex<HashMap<Key, Open>>,
    /// Per user, held while a session with them is being opened.
    opening: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per relayed meeting, where the server sees the peer.
    relayed: Mutex<HashMap<u64, SocketAddr>>,
    /// This client's own addresses, for peers on its network.
    local: Vec<SocketAddr>,
}

impl PeerSessions {
    pub fn new(
        link: Link,
        server: Arc<ServerConnector>,
        session: Arc<Mutex<Session>>,
        local: Vec<SocketAddr>,
    ) -> Arc<PeerSessions> {
        Arc::new_cyclic(|me| PeerSessions {
            me: me.clone(),
            link,
            server,
            session,
            open: Mutex::new(HashMap::new()),
            opening: Mutex::new(HashMap::new()),
            relayed: Mutex::new(HashMap::new()),
            local,
        })
    }

    fn this(&self) -> Arc<PeerSessions> {
        self.me.upgrade().expect("the sessions outlive their sends")
    }

    /// Opens the session `key` names, on the path a meeting finds; or, if
    /// one with the same client is open where the server saw it before
    /// (its NAT rebooted, it roamed), moves that one there.
    async fn open_session(
        self: &Arc<Self>,
        key: &Key,
        to: &Whereabouts,
    ) -> Result<Open, CommandError> {
        let moved_from = self
            .open
            .lock()
            .iter()
            .find(|(k, o)| o.user == to.user && k.1 == key.1)
            .map(|(k, o)| (k.clone(), o.clone()));
        // The lookup asked for no meeting (a session seemed open): ask now.
        let asked = match (&to.meeting, self.needs_meeting(&to.user)) {
            (None, false) => self
                .server
                .whereabouts(&to.user, true)
                .await
                .filter(|found| found.identity == to.identity && found.seen_at == to.seen_at),
            _ => None,
        };
        let to = asked.as_ref().unwrap_or(to);
        let (addr, answers) = self.reach(to).await?;
        let open = match moved_from {
            Some((old_key, old)) => {
                tracing::debug!(user = to.user, %addr, "its client moved: the session follows");
                self.link.migrate(old.peer, addr);
                self.open.lock().remove(&old_key);
                Open {
                    seen_at: to.seen_at,
                    addr,
                    vouched: self.vouch(to),
                    ..old
                }
            }
            None => Open {
                peer: self
                    .link
                    .connect(addr, to.identity.clone(), Pattern::Ik)
                    .await?,
                user: to.user.clone(),
                seen_at: to.seen_at,
                addr,
                refound: None,
                vouched: self.vouch(to),
            },
        };
        if let Some(answers) = answers {
            self.move_over_when_direct(key.clone(), open.peer, answers);
        }
        self.open.lock().insert(key.clone(), open.clone());
        Ok(open)
    }

    /// The session opened for `key` may have lost its path: asks the server
    /// for a new meeting with its user and moves the session to the path
    /// found (at most once per [`REFIND_EVERY`]).
    async fn find_again(self: &Arc<Self>, key: &Key, to: &Whereabouts) {
        let now = tokio::time::Instant::now();
        let gate = self.gate(&to.user);
        let _opening = gate.lock().await;
        {
            let mut open = self.open.lock();
            let Some(session) = open.get_mut(key) else {
                return;
            };
            if session
                .refound
                .is_some_and(|at| now.duration_since(at) < REFIND_EVERY)
            {
                return;
            }
            session.refound = Some(now);
        }
        let Some(found) = self.server.whereabouts(&to.user, true).await else {
            return;
        };
        if found.identity != to.identity {
            // Another client of theirs now: what waits on this session
            // fails at once (and `send` takes it there), and the next
            // message opens a session with that client.
            self.close_if(|k, _| k == key);
            return;
        }
        let moved = (found.seen_at, found.identity.to_bytes());
        if let Err(e) = self.open_session(&moved, &found).await {
            tracing::debug!(user = to.user, "no new path: {}", e.message);
        }
    }

    /// Where the session with `to` goes: the best candidate that answered
    /// the meeting's checks, or the relay; an error when none answered and
    /// the meeting has no relay.
    async fn reach(&self, to: &Whereabouts) -> Result<(SocketAddr, Option<Answers>), CommandError> {
        let Some(ticket) = to.meeting.clone() else {
            // No meeting (the server gave none): where the server sees it.
            return Ok((to.seen_at, None));
        };
        let candidates = candidates(to, self.link.local_addr());
        let server = self.session.lock().server;
        self.remember_relayed(ticket.id, to.seen_at);
        let id = ticket.id;
        let relay = to.relay.then_some(server);
        let mut answers = self.link.meet(ticket, candidates.clone(), relay);
        let wait = if to.relay {
            PUNCH_WAIT
        } else {
            PUNCH_WAIT_WITHOUT_RELAY
        };
        let Ok(Some(first)) = tokio::time::timeout(wait, answers.recv()).await else {
            if !to.relay {
                return Err(CommandError::new(
                    Code::Unreachable,
                    format!(
                        "no path to {}'s client answered (it is on another server node, which relays for none here)",
                        to.user
                    ),
                ));
            }
            tracing::debug!(user = to.user, "no direct path answered: relayed");
            return Ok((meeting::relay_addr(id), Some(answers)));
        };
        let rank = |addr: &SocketAddr| {
            candidates
                .iter()
                .position(|c| c == addr)
                .unwrap_or(candidates.len())
        };
        let mut best = first;
        let deadline = tokio::time::Instant::now() + NOMINATE_WITHIN;
        while rank(&best) > 0 {
            let Ok(Some(other)) = tokio::time::timeout_at(deadline, answers.recv()).await else {
                break;
            };
            if rank(&other) < rank(&best) {
                best = other;
            }
        }
        Ok((best, None))
    }

    /// A session gone through the relay moves to a direct path if one of
    /// its meeting's checks is answered later, while they last.
    fn move_over_when_direct(self: &Arc<Self>, key: Key, peer: PeerId, mut answers: Answers) {
        let this = self.clone();
        tokio::spawn(async move {
            let checks_end = meeting::FIRST_RETRY * (1 << meeting::CHECKS);
            let Ok(Some(direct)) = tokio::time::timeout(checks_end, answers.recv()).await else {
                return;
            };
            let mut open = this.open.lock();
            if let Some(session) = open.get_mut(&key).filter(|s| s.peer == peer) {
                tracing::debug!(user = session.user, %direct, "moved from the relay to a direct path");
                session.addr = direct;
                this.link.migrate(peer, direct);
            }
        });
    }

    fn remember_relayed(&self, meeting: u64, seen_at: SocketAddr) {
        let mut relayed = self.relayed.lock();
        if relayed.len() >= MAX_RELAYED {
            relayed.clear();
        }
        relayed.insert(meeting, seen_at);
    }

    /// How a packet from `addr` came, and the address to show for it (for
    /// one relayed, where the server sees its sender).
    pub fn shown(&self, addr: SocketAddr) -> (SocketAddr, Path) {
        match meeting::relayed_meeting(addr) {
            Some(id) => {
                let relayed = self.relayed.lock();
                (relayed.get(&id).copied().unwrap_or(addr), Path::Relay)
            }
            None => (addr, Path::Direct),
        }
    }

    fn close_if(&self, gone: impl Fn(&Key, &Open) -> bool) {
        let mut open = self.open.lock();
        open.retain(|key, o| {
            let close = gone(key, o);
            if close {
                self.link.forget(o.peer);
            }
            !close
        });
    }

    /// What a session opened to `to` may be written to by, on this
    /// sign-in: `to` itself, if the server will say when its user comes
    /// or goes.
    fn vouch(&self, to: &Whereabouts) -> Option<(Whereabouts, SignInEpoch)> {
        let epoch = self.server.sign_in_epoch()?;
        to.watched.then(|| {
            let found = Whereabouts {
                meeting: None,
                ..to.clone()
            };
            (found, epoch)
        })
    }

    fn gate(&self, user: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut opening = self.opening.lock();
        // Gates nobody holds or waits for go, so the map stays small.
        opening.retain(|_, gate| Arc::strong_count(gate) > 1);
        opening.entry(user.to_string()).or_default().clone()
    }
}

impl PeerLinks for PeerSessions {
    fn send_push(
        &self,
        to: Whereabouts,
        push: Encoded,
    ) -> BoxFuture<'static, Result<Delivery, CommandError>> {
        // Over the session open with `to`'s client, or a new one on the
        // path its meeting finds.
        let this = self.this();
        Box::pin(async move {
            let key = (to.seen_at, to.identity.to_bytes());
            let gate = this.gate(&to.user);
            let opening = gate.lock().await;
            // Fresh whereabouts from the server vouch for the session anew.
            let existing = this.open.lock().get_mut(&key).map(|session| {
                if to.watched {
                    session.vouched = this.vouch(&to);
                }
                session.clone()
            });
            let open = match existing {
                Some(open) => open,
                None => this.open_session(&key, &to).await?,
            };
            let delivery = this.link.push(open.peer, push);
            drop(opening);
            let delivery: Delivery = Box::pin(async move {
                let mut delivery = std::pin::pin!(delivery);
                let result = match tokio::time::timeout(STALL_AFTER, &mut delivery).await {
                    Ok(result) => result,
                    Err(_) => {
                        this.find_again(&key, &to).await;
                        delivery.await
                    }
                };
                if result.is_err() {
                    // A dead session is not reused: the next send opens anew.
                    this.close_if(|_, o| o.peer == open.peer);
                }
                let now_at = this
                    .open
                    .lock()
                    .values()
                    .find(|o| o.peer == open.peer)
                    .map_or(open.addr, |o| o.addr);
                result.map(|()| path_of(now_at))
            });
            Ok(delivery)
        })
    }

    fn needs_meeting(&self, user: &str) -> bool {
        !self.open.lock().values().any(|o| o.user == user)
    }

    fn known(&self, user: &str) -> Option<Whereabouts> {
        let epoch = self.server.sign_in_epoch()?;
        self.open.lock().values().find_map(|o| match &o.vouched {
            Some((found, on)) if o.user == user && *on == epoch => Some(Whereabouts {
                // Already vouched for: sending to it does not vouch again.
                watched: false,
                ..found.clone()
            }),
            _ => None,
        })
    }

    fn changed(&self, user: &str) {
        for o in self.open.lock().values_mut().filter(|o| o.user == user) {
            o.vouched = None;
        }
    }

    /// The server says another client is coming: check its candidates
    /// (the first is where the server sees it) and answer its checks.
    fn meet(&self, ticket: Ticket, candidates: Vec<SocketAddr>) {
        if let Some(seen_at) = candidates.first() {
            self.remember_relayed(ticket.id, *seen_at);
        }
        let own = self.link.local_addr();
        let usable = candidates
            .into_iter()
            .filter(|c| can_send_to(own, *c))
            .collect();
        let server = self.session.lock().server;
        drop(self.link.meet(ticket, usable, Some(server)));
    }

    fn list(&self) -> Vec<PeerPath> {
        let mut list: Vec<PeerPath> = self
            .open
            .lock()
            .values()
            .map(|o| PeerPath {
                user: o.user.clone(),
                addr: if path_of(o.addr) == Path::Relay {
                    o.seen_at
                } else {
                    o.addr
                },
                path: path_of(o.addr),
            })
            .collect();
        list.sort_by(|a, b| a.user.cmp(&b.user));
        list
    }

    fn local_addresses(&self) -> Vec<SocketAddr> {
        self.local.clone()
    }

    fn gone(&self, user: &str) {
        let this = self.this();
        let user = user.to_string();
        tokio::spawn(async move {
            if this.needs_meeting(&user) {
                return;
            }
            // The notice may lag behind the user's sign-in on another
            // client, which a `send` already found and is talking to: that
            // session stays (the server says where the user is now).
            let now_at = this.server.signed_in_at(&user).await;
            this.close_if(|(seen_at, _), o| o.user == user && Some(*seen_at) != now_at);
        });
    }
}

fn path_of(addr: SocketAddr) -> Path {
    match meeting::relayed_meeting(addr) {
        Some(_) => Path::Relay,
        None => Path::Direct,
    }
}

/// Whether a socket bound to `own` can send to `to`: an IPv4 socket only to
/// IPv4; an IPv6 one (dual-stack) to both.
fn can_send_to(own: SocketAddr, to: SocketAddr) -> bool {
    own.is_ipv6() || to.is_ipv4()
}

/// The addresses to check for `to`, best first: IPv6 before IPv4 (RFC
/// 8421), and in each family the client's own addresses (a shared LAN,
/// no NAT between) before where the server sees it.
fn candidates(to: &Whereabouts, own: SocketAddr) -> Vec<SocketAddr> {
    let mut all: Vec<(bool, bool, SocketAddr)> = to
        .local
        .iter()
        .map(|a| (a.is_ipv4(), false, *a))
        .chain([(to.seen_at.is_ipv4(), true, to.seen_at)])
        .filter(|(_, _, a)| can_send_to(own, *a))
        .collect();
    all.sort_by_key(|(v4, reflexive, _)| (*v4, *reflexive));
    let mut out: Vec<SocketAddr> = Vec::new();
    for (_, _, addr) in all {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::crypto::keys::StaticKey;

    fn whereabouts(seen_at: &str, local: &[&str]) -> Whereabouts {
        Whereabouts {
            user: "bob".into(),
            identity: StaticKey::generate(&mut rand::thread_rng()).public(),
            seen_at: seen_at.parse().unwrap(),
            local: local.iter().map(|a| a.parse().unwrap()).collect(),
            meeting: None,
            relay: true,
            watched: false,
        }
    }

    #[test]
    fn ipv6_goes_first_then_own_addresses_before_where_the_server_sees_it() {
        let to = whereabouts(
            "198.51.100.2:40000",
            &["10.0.1.3:5000", "[2001:db8::3]:5000", "198.51.100.2:40000"],
        );
        let dual: SocketAddr = "[::]:5000".parse().unwrap();
        let order: Vec<String> = candidates(&to, dual)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            order,
            ["[2001:db8::3]:5000", "10.0.1.3:5000", "198.51.100.2:40000"]
        );
        // An IPv4-only socket checks only IPv4 addresses.
        let v4: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        assert_eq!(candidates(&to, v4).len(), 2);
    }
}

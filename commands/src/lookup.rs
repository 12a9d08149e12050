//! `lookup` (packet): asks the server where a signed-in user can be reached
//! and what the user's identity key is, so that `send` can open an
//! end-to-end session with that client directly.
//!
//! Where: the address the server sees the user's client at and the
//! client's own addresses (candidates). With `meet`, the server also
//! arranges a meeting ([`udpchat_core::secure::meeting`]): the asker gets
//! its ticket in the reply, the user's client gets it in a `punch` push
//! with the asker's candidates, so both check each other's addresses at
//! once and open their NATs to each other; and the server opens a relay
//! for the meeting, for when no address answers.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Origin, Server, Whereabouts};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve};
use udpchat_core::secure::meeting::Ticket;

use crate::punch::{Punch, PunchBody};

/// `lookup`: the request and its handler.
pub struct Lookup;

impl Packet for Lookup {
    const TAG: &'static str = "lookup";
}

impl Request for Lookup {
    type Body = LookupRequest;
    type Reply = Found;
}

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct LookupRequest {
    pub user: String,
    /// Arrange a meeting (the asker has no session with the user's client).
    #[serde(default)]
    pub meet: bool,
}

/// The reply body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Found {
    pub user: String,
    /// `IP:PORT` as the server sees the user's client.
    pub addr: String,
    /// The key the user's client proves in the end-to-end handshake.
    pub identity: PublicKey,
    /// The client's own addresses (`IP:PORT`), as it gave them at sign-in.
    #[serde(default)]
    pub local: Vec<String>,
    /// The meeting arranged, when one was asked for.
    #[serde(default)]
    pub meeting: Option<Ticket>,
    /// Whether the server relays for the meeting when no address answers:
    /// not when `user` is signed in on another server node.
    #[serde(default = "relayed")]
    pub relay: bool,
    /// The asker will be told when `user` comes or goes (it watches them),
    /// so it may send to this client again without asking.
    #[serde(default)]
    pub watched: bool,
}

/// A server that does not say relays for every meeting it arranges.
fn relayed() -> bool {
    true
}

register! {
    Command::new(Lookup::TAG, "Find where a signed-in user's client can be reached, and its identity key.")
        .serve::<Lookup>()
}

/// Asks the server where `user`'s client is and for its identity key (and
/// with `meet`, for a meeting with it); warns the user if the key is not
/// the one seen before.
pub async fn lookup(client: &Client, user: &str, meet: bool) -> Result<Whereabouts, CommandError> {
    let found = client
        .server()
        .request::<Lookup>(&request(user, meet))
        .await?;
    let found = whereabouts(user, found)?;
    client.keys().check(user, &found.identity);
    Ok(found)
}

/// The request body for `user` (with `meet`: a meeting too).
pub fn request(user: &str, meet: bool) -> LookupRequest {
    LookupRequest {
        user: user.to_string(),
        meet,
    }
}

/// What the server's reply about `user` says.
pub fn whereabouts(user: &str, found: Found) -> Result<Whereabouts, CommandError> {
    let seen_at = found.addr.parse().map_err(|_| {
        CommandError::new(
            Code::BadReply,
            format!("the server gave a bad address for {user}"),
        )
    })?;
    Ok(Whereabouts {
        user: user.to_string(),
        identity: found.identity,
        seen_at,
        local: addresses(&found.local),
        meeting: found.meeting,
        relay: found.relay,
        watched: found.watched,
    })
}

/// The addresses among `given` that parse (a bad one is left out).
pub fn addresses(given: &[String]) -> Vec<SocketAddr> {
    given.iter().filter_map(|a| a.parse().ok()).collect()
}

pub fn no_such_user(user: &str) -> CommandError {
    CommandError::new(Code::NoSuchUser, format!("No such user signed in: {user}"))
}

/// The identity key `user`'s client proves.
async fn identity_of(server: &Server, user: &str) -> Result<PublicKey, CommandError> {
    server
        .accounts()
        .identity(user)
        .await?
        .ok_or_else(|| no_such_user(user))
}

/// `user` signed in on another server node: where that node sees the
/// client. A meeting asked for is arranged without a relay (a relay lives
/// on one node, and this one cannot reach the other's clients): the
/// `punch` goes to the user's client through its node, so both still
/// check each other's addresses and open their NATs (see
/// docs/OPERATIONS.md).
async fn elsewhere(
    server: &Server,
    origin: Origin,
    me: String,
    user: String,
    meet: bool,
    watched: bool,
) -> Result<Found, CommandError> {
    let there = server
        .presence()
        .lock()
        .elsewhere(&user)
        .cloned()
        .ok_or_else(|| no_such_user(&user))?;
    let identity = identity_of(server, &user).await?;
    let meeting = meet
        .then(|| server.arrange_meeting(origin.peer, None))
        .flatten();
    if let Some(ticket) = &meeting {
        server.push_user::<Punch>(&user, &punch(server, origin, me, ticket));
    }
    Ok(Found {
        user,
        addr: there.addr.to_string(),
        identity,
        local: there.local.iter().map(ToString::to_string).collect(),
        meeting,
        relay: false,
        watched,
    })
}

/// The `punch` that tells the other client of a meeting `origin` asked
/// for, with the asker's candidates: where the server sees it, then its own.
fn punch(server: &Server, origin: Origin, me: String, ticket: &Ticket) -> PunchBody {
    let local = server.presence().lock().local_of(origin.peer);
    PunchBody {
        from: me,
        meeting: ticket.clone(),
        candidates: std::iter::once(origin.addr)
            .chain(local)
            .map(|a| a.to_string())
            .collect(),
    }
}

impl Serve for Lookup {
    async fn serve(
        server: Server,
        origin: Origin,
        body: LookupRequest,
    ) -> Result<Found, CommandError> {
        let me = crate::signed_in_user(&server, origin)?;
        let LookupRequest { user, meet } = body;
        let watched = crate::watch(&server, origin, &user);
        let Some(peer) = server.session_of(&user) else {
            return elsewhere(&server, origin, me, user, meet, watched).await;
        };
        let addr = server
            .peer_addr(peer)
            .await
            .ok_or_else(|| no_such_user(&user))?;
        let identity = identity_of(&server, &user).await?;
        let meeting = (meet && peer != origin.peer)
            .then(|| server.arrange_meeting(origin.peer, Some(peer)))
            .flatten();
        if let Some(ticket) = &meeting {
            server.push::<Punch>(peer, &punch(&server, origin, me, ticket));
        }
        let local = server.presence().lock().local_of(peer);
        Ok(Found {
            user,
            addr: addr.to_string(),
            identity,
            local: local.iter().map(ToString::to_string).collect(),
            meeting,
            relay: true,
            watched,
        })
    }
}

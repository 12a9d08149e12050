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
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server, Whereabouts};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{code, CommandError};
use udpchat_core::registry::{ArgKind, Command};
use udpchat_core::secure::meeting::Ticket;

use crate::punch::Punch;

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lookup {
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
}

inventory::submit! {
    Command {
        name: "lookup",
        aliases: &[],
        usage: "lookup <user>",
        summary: "Find where a signed-in user's client can be reached, and its identity key.",
        examples: &[],
        args: &[ArgKind::User],
        module: module_path!(),
        shell: None,
        serve: Some(serve),
        on_push: None,
    }
}

/// Asks the server where `user`'s client is and for its identity key (and
/// with `meet`, for a meeting with it); warns the user if the key is not
/// the one seen before.
pub async fn lookup(client: &Client, user: &str, meet: bool) -> Result<Whereabouts, CommandError> {
    let reply = client.request("lookup", request(user, meet)).await?;
    let found = whereabouts(user, &reply)?;
    client.check_identity(user, &found.identity);
    Ok(found)
}

/// The request body for `user` (with `meet`: a meeting too).
pub fn request(user: &str, meet: bool) -> Vec<u8> {
    cbor::encode(&Lookup {
        user: user.to_string(),
        meet,
    })
}

/// What the server's reply about `user` says.
pub fn whereabouts(user: &str, reply: &[u8]) -> Result<Whereabouts, CommandError> {
    let found: Found = crate::decode(reply)?;
    let seen_at = found.addr.parse().map_err(|_| {
        CommandError::new(
            code::BAD_REPLY,
            format!("the server gave a bad address for {user}"),
        )
    })?;
    Ok(Whereabouts {
        user: user.to_string(),
        identity: found.identity,
        seen_at,
        local: addresses(&found.local),
        meeting: found.meeting,
    })
}

/// The addresses among `given` that parse (a bad one is left out).
pub fn addresses(given: &[String]) -> Vec<SocketAddr> {
    given.iter().filter_map(|a| a.parse().ok()).collect()
}

pub fn no_such_user(user: &str) -> CommandError {
    CommandError::new(
        code::NO_SUCH_USER,
        format!("No such user signed in: {user}"),
    )
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let me = crate::signed_in_user(&server, origin)?;
        let Lookup { user, meet } = crate::decode(&body)?;
        crate::watch(&server, origin, &user);
        let peer = server
            .presence()
            .lock()
            .expect("presence lock")
            .addr_of(&user);
        let peer = peer.ok_or_else(|| no_such_user(&user))?;
        let addr = server
            .peer_addr(peer)
            .await
            .ok_or_else(|| no_such_user(&user))?;
        let identity = server
            .accounts()
            .identity(&user)
            .await?
            .ok_or_else(|| no_such_user(&user))?;
        let local = |peer| {
            let presence = server.presence().lock().expect("presence lock");
            presence.local_of(peer)
        };
        let meeting = (meet && peer != origin.peer)
            .then(|| server.arrange_meeting(origin.peer, peer))
            .flatten();
        if let Some(ticket) = &meeting {
            // The asker's candidates: where the server sees it, then its own.
            let candidates = std::iter::once(origin.addr)
                .chain(local(origin.peer))
                .map(|a| a.to_string())
                .collect();
            server.push(
                peer,
                "punch",
                cbor::encode(&Punch {
                    from: me,
                    meeting: ticket.clone(),
                    candidates,
                }),
            );
        }
        Ok(cbor::encode(&Found {
            user,
            addr: addr.to_string(),
            identity,
            local: local(peer).iter().map(ToString::to_string).collect(),
            meeting,
        }))
    })
}

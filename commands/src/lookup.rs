//! `lookup` (packet): asks the server where a signed-in user can be reached
//! and what the user's identity key is, so that `send` can open an
//! end-to-end session with that client directly.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{code, CommandError};
use udpchat_core::registry::{ArgKind, Command};

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lookup {
    pub user: String,
}

/// The reply body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Found {
    pub user: String,
    /// `IP:PORT` as the server sees the user's client.
    pub addr: String,
    /// The key the user's client proves in the end-to-end handshake.
    pub identity: PublicKey,
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

/// Asks the server for `user`'s address and identity key; warns the user
/// if the key is not the one seen before.
pub async fn lookup(client: &Client, user: &str) -> Result<(SocketAddr, PublicKey), CommandError> {
    let reply = client
        .request(
            "lookup",
            cbor::encode(&Lookup {
                user: user.to_string(),
            }),
        )
        .await?;
    let found: Found = crate::decode(&reply)?;
    let addr = found.addr.parse().map_err(|_| {
        CommandError::new(
            code::BAD_REPLY,
            format!("the server gave a bad address for {user}"),
        )
    })?;
    client.check_identity(user, &found.identity);
    Ok((addr, found.identity))
}

pub fn no_such_user(user: &str) -> CommandError {
    CommandError::new(
        code::NO_SUCH_USER,
        format!("No such user signed in: {user}"),
    )
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        crate::signed_in_user(&server, origin)?;
        let Lookup { user } = crate::decode(&body)?;
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
        Ok(cbor::encode(&Found {
            user,
            addr: addr.to_string(),
            identity,
        }))
    })
}

//! `presence` (packet): the server tells signed-in clients when someone
//! signs in or goes offline, so `list` and completion stay current without
//! polling: `bob is online`, `bob went offline`. On a busy server only the
//! users a client asked about (see [`crate::watch`]).

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Sender, Server};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::presence::PresenceChange;
use udpchat_core::registry::Command;

/// The push body: the changes the server gathered, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct PresenceChanges {
    pub changes: Vec<PresenceChange>,
}

inventory::submit! {
    Command {
        name: "presence",
        aliases: &[],
        usage: "presence",
        summary: "Someone signed in or went offline.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: None,
        on_push: Some(on_push),
    }
}

/// Tells every other signed-in client that `user` came or went.
pub fn announce(server: &Server, user: &str, online: bool) {
    server.announce(PresenceChange {
        user: user.to_string(),
        online,
    });
}

/// The packet for one batch of changes (the server picks, per client,
/// which ones it hears: `Presence::audience`).
pub fn body(changes: Vec<PresenceChange>) -> Vec<u8> {
    cbor::encode(&PresenceChanges { changes })
}

fn on_push(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let Some(PresenceChanges { changes }) = crate::from_server(&sender, &body)? else {
            return Ok(());
        };
        for PresenceChange { user, online } in changes {
            if !online {
                client.peer_gone(&user);
            }
            let text = if online {
                format!("{user} is online")
            } else {
                format!("{user} went offline")
            };
            client.emit(
                Output::new("presence", text)
                    .with("user", user)
                    .with("online", online),
            );
        }
        Ok(())
    })
}

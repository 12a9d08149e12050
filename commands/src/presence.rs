//! `presence` (packet): the server tells signed-in clients when someone
//! signs in or goes offline, so `list` and completion stay current without
//! polling: `bob is online`, `bob went offline`. On a busy server only the
//! users a client asked about (see [`crate::watch`]).

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Sender, Server};
use udpchat_core::error::CommandError;
use udpchat_core::event::{Event, Names};
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Push};
use udpchat_core::presence::PresenceChange;
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush};

/// `presence`: the push and its handler.
pub struct Presence;

impl Packet for Presence {
    const TAG: &'static str = "presence";
}

impl Push for Presence {
    const SERVER_ONLY: bool = true;
    const ACK_AT_ONCE: bool = false;
    type Body = PresenceChanges;
}

/// The push body: the changes the server gathered, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct PresenceChanges {
    pub changes: Vec<PresenceChange>,
}

register! {
    Command::new(Presence::TAG, "Someone signed in or went offline.")
        .on_push::<Presence>()
}

register! {
    Event::new("presence").on_its_own().names(learn)
}

/// Tells every other signed-in client that `user` came or went.
pub fn announce(server: &Server, user: &str, online: bool) {
    server.announce(PresenceChange {
        user: user.to_string(),
        online,
    });
}

impl OnPush for Presence {
    async fn on_push(client: Client, _: Sender, body: PresenceChanges) -> Result<(), CommandError> {
        for PresenceChange { user, online } in body.changes {
            // Signed in again, maybe elsewhere: ask where before writing.
            client.peers().changed(&user);
            if !online {
                client.peers().gone(&user);
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
    }
}

/// Who came online, who went.
fn learn(output: &Output, names: &mut dyn Names) {
    let Some(user) = output.field("user") else {
        return;
    };
    match output
        .data
        .get("online")
        .and_then(serde_json::Value::as_bool)
    {
        Some(true) => names.went_online(user),
        Some(false) => names.went_offline(user),
        None => {}
    }
}

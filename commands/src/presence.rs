//! `presence` (packet): the server tells signed-in clients when someone
//! signs in or goes offline, so `list` and completion stay current without
//! polling: `bob is online`, `bob went offline`.

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Sender, Server};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

/// The push body.
#[derive(Debug, Serialize, Deserialize)]
pub struct PresenceChange {
    pub user: String,
    pub online: bool,
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
    let others: Vec<_> = {
        let presence = server.presence().lock().expect("presence lock");
        presence
            .users()
            .into_iter()
            .filter(|u| u != user)
            .filter_map(|u| presence.addr_of(&u))
            .collect()
    };
    let body = cbor::encode(&PresenceChange {
        user: user.to_string(),
        online,
    });
    for peer in others {
        server.push(peer, "presence", body.clone());
    }
}

fn on_push(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let Some(PresenceChange { user, online }) = crate::from_server(&sender, &body)? else {
            return Ok(());
        };
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
        Ok(())
    })
}

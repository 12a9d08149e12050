//! `ping` (packet): proves a peer is alive. The server pings a client that
//! holds a name someone else asks for; clients ping the server to check it.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Origin, Sender, Server};
use udpchat_core::error::CommandError;
use udpchat_core::packet::{Packet, Push, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush, Serve};

/// `ping`: a request a client sends the server, and a push the server
/// sends a client.
pub struct Ping;

impl Packet for Ping {
    const TAG: &'static str = "ping";
}

impl Request for Ping {
    type Body = ();
    type Reply = Pong;
}

impl Push for Ping {
    const SERVER_ONLY: bool = false;
    type Body = ();
}

/// The reply: who the server thinks this session is signed in as, so a
/// client the server signed out (say, after missed keepalives) notices.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pong {
    pub user: Option<String>,
}

register! {
    Command::new(Ping::TAG, "Check that a peer answers.")
        .serve::<Ping>()
        .on_push::<Ping>()
}

impl Serve for Ping {
    async fn serve(server: Server, origin: Origin, _: ()) -> Result<Pong, CommandError> {
        Ok(Pong {
            user: server.user_at(origin.peer),
        })
    }
}

impl OnPush for Ping {
    // The transport's acknowledgement is the answer; nothing to show.
    async fn on_push(_: Client, _: Sender, _: ()) -> Result<(), CommandError> {
        Ok(())
    }
}

//! `ping` (packet): proves a peer is alive. The server pings a client that
//! holds a name someone else asks for; clients ping the server to check it.

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Sender, Server};
use udpchat_core::error::CommandError;
use udpchat_core::registry::Command;

inventory::submit! {
    Command {
        name: "ping",
        aliases: &[],
        usage: "ping",
        summary: "Check that a peer answers.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: Some(serve),
        on_push: Some(on_push),
    }
}

/// The reply: who the server thinks this session is signed in as, so a
/// client the server signed out (say, after missed keepalives) notices.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pong {
    pub user: Option<String>,
}

fn serve(server: Server, origin: Origin, _body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let user = crate::signed_in_user(&server, origin).ok();
        Ok(cbor::encode(&Pong { user }))
    })
}

// The transport's acknowledgement is the answer; nothing to show.
fn on_push(
    _client: Client,
    _from: Sender,
    _body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async { Ok(()) })
}

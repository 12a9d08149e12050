//! `ping` (packet): proves a peer is alive. The server pings a client that
//! holds a name someone else asks for; clients ping the server to check it.

use std::net::SocketAddr;

use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
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

fn serve(_server: Server, _origin: Origin, _body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async { Ok(cbor::encode(&())) })
}

// The transport's acknowledgement is the answer; nothing to show.
fn on_push(
    _client: Client,
    _from: SocketAddr,
    _body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async { Ok(()) })
}

//! `going-down` (packet): the server tells every signed-in client it is
//! shutting down.

use std::net::SocketAddr;

use udpchat_core::context::{BoxFuture, Client};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

inventory::submit! {
    Command {
        name: "going-down",
        aliases: &[],
        usage: "going-down",
        summary: "The server is shutting down.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: None,
        on_push: Some(on_push),
    }
}

fn on_push(
    client: Client,
    from: SocketAddr,
    _body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let mut session = client.session().lock().expect("session lock");
        // Only our own server may say so.
        if session.server != from {
            return Ok(());
        }
        session.user = None;
        drop(session);
        client.emit(
            Output::new("server-down", "server is going down: you are signed out")
                .with("server", from.to_string()),
        );
        Ok(())
    })
}

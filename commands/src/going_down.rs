//! `going-down` (packet): the server tells every signed-in client it is
//! shutting down.

use udpchat_core::context::{BoxFuture, Client, Sender};
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
    sender: Sender,
    _body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        // Only our own server may say so.
        if !sender.from_server {
            return Ok(());
        }
        let server = {
            let mut session = client.session().lock().expect("session lock");
            session.user = None;
            session.server
        };
        client.emit(
            Output::new("server-down", "server is going down: you are signed out")
                .with("server", server.to_string()),
        );
        Ok(())
    })
}

//! `logout` (`signout`, `dereg`): leaves the server; the name is free again.

use std::time::Duration;

use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

const USAGE: &str = "logout";

inventory::submit! {
    Command {
        name: "logout",
        aliases: &["signout", "dereg"],
        usage: USAGE,
        summary: "Sign out from the server.",
        examples: &["logout"],
        args: &[],
        module: module_path!(),
        shell: Some(shell),
        serve: Some(serve),
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        // `dereg <user>` from the seeds names the user: accept our own name.
        args.at_most(1, USAGE)?;
        let user = client.user()?;
        if let Some(named) = args.get(0) {
            if named != user {
                return Err(CommandError::new(
                    "usage",
                    format!("signed in as {user}, not {named}"),
                ));
            }
        }
        sign_out(&client).await
    })
}

/// How long signing out waits for messages still on their way: long
/// enough for a recipient who vanished to be given up on and the message
/// sealed into their mailbox instead.
pub const FINISH_WITHIN: Duration = Duration::from_secs(90);

/// Messages still on their way are finished first (delivered, or kept for
/// their recipients on the server), and the user is told so.
pub async fn finish_deliveries(client: &Client) {
    let unfinished = client.unfinished();
    if unfinished == 0 {
        return;
    }
    client.emit(
        Output::new(
            "finishing",
            format!(
                "{unfinished} message{} still on the way: delivering or keeping for later first",
                if unfinished == 1 { "" } else { "s" }
            ),
        )
        .with("count", unfinished),
    );
    if let Err(e) = client.settle(FINISH_WITHIN).await {
        client.emit(Output::error(&e));
    }
}

/// Signs out if signed in, once what is on its way is finished; used by
/// `logout`, `exit` and `connect`.
pub async fn sign_out(client: &Client) -> Result<(), CommandError> {
    finish_deliveries(client).await;
    let Some(user) = client.session().lock().expect("session lock").user.take() else {
        return Ok(());
    };
    client.forget_password();
    client.request("logout", cbor::encode(&())).await?;
    client.emit(Output::new("signed-out", format!("Signed out {user}")).with("user", user));
    Ok(())
}

fn serve(server: Server, origin: Origin, _body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let user = server
            .presence()
            .lock()
            .expect("presence lock")
            .sign_out(origin.peer);
        if let Some(user) = user {
            crate::presence::announce(&server, &user, false);
            server.keep_session(origin.peer, false);
        }
        Ok(cbor::encode(&()))
    })
}

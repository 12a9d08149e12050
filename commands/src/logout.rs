//! `logout` (`signout`, `dereg`): leaves the server; the name is free again.

use std::time::Duration;

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

/// `logout`: the request, its shell command and its handler.
pub struct Logout;

impl Packet for Logout {
    const TAG: &'static str = "logout";
}

impl Request for Logout {
    type Body = ();
    type Reply = ();
}

register! {
    Command::new(Logout::TAG, "Sign out from the server.")
        .aliases(&["signout", "dereg"])
        // The seeds' `dereg <user>` names the user: our own name is
        // accepted, and not shown.
        .args(&[Arg::optional("user", ArgKind::User).hidden()])
        .examples(&["logout"])
        .shell::<Logout>()
        .serve::<Logout>()
}

impl Shell for Logout {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let user = client.user()?;
        if let Some(named) = args.get(0) {
            if named != user {
                return Err(CommandError::new(
                    Code::Usage,
                    format!("signed in as {user}, not {named}"),
                ));
            }
        }
        sign_out(&client).await
    }
}

/// How long signing out waits for messages still on their way: long
/// enough for a recipient who vanished to be given up on and the message
/// sealed into their mailbox instead.
pub const FINISH_WITHIN: Duration = Duration::from_secs(90);

/// Messages still on their way are finished first (delivered, or kept for
/// their recipients on the server), and the user is told so.
pub async fn finish_deliveries(client: &Client) {
    let unfinished = client.tasks().unfinished();
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
    if let Err(e) = client.tasks().settle(FINISH_WITHIN).await {
        client.emit(Output::error(&e));
    }
}

/// Signs out if signed in, once what is on its way is finished; used by
/// `logout`, `exit` and `connect`.
pub async fn sign_out(client: &Client) -> Result<(), CommandError> {
    finish_deliveries(client).await;
    // What came is handled and acknowledged first: a sender that heard
    // the user left before its message was would keep it on the server,
    // to be shown again at the next sign-in (the soak saw it).
    client.settle_pushes().await;
    crate::private::report_unread(client);
    let Some(user) = client.session().lock().user.take() else {
        return Ok(());
    };
    client.server().forget_password();
    client.server().request::<Logout>(&()).await?;
    client.emit(Output::new("signed-out", format!("Signed out {user}")).with("user", user));
    Ok(())
}

impl Serve for Logout {
    async fn serve(server: Server, origin: Origin, _: ()) -> Result<(), CommandError> {
        let user = server.presence().lock().sign_out(origin.peer);
        if let Some(user) = user {
            crate::presence::announce(&server, &user, false);
            server.keep_session(origin.peer, false);
        }
        Ok(())
    }
}

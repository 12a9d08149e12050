//! `punch` (packet): the server tells a client that another is about to
//! open a session with it, with the meeting it arranged and the other's
//! candidates (see `lookup`). The client checks those addresses at once,
//! so that both NATs open toward each other (hole punching), and answers
//! the other's checks. Taken only from the server: a peer cannot make this
//! client send checks anywhere.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{BoxFuture, Client, Sender};
use udpchat_core::error::CommandError;
use udpchat_core::names::check_user_name;
use udpchat_core::registry::Command;
use udpchat_core::secure::meeting::Ticket;

/// The push body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Punch {
    /// Who is coming.
    pub from: String,
    pub meeting: Ticket,
    /// Where the server sees that client, then its own addresses.
    pub candidates: Vec<String>,
}

inventory::submit! {
    Command {
        name: "punch",
        aliases: &[],
        usage: "punch",
        summary: "Another client is about to open a session with this one.",
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
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let Some(Punch {
            from,
            meeting,
            candidates,
        }) = crate::from_server(&sender, &body)?
        else {
            return Ok(());
        };
        check_user_name(&from)?;
        client.meet(meeting, crate::lookup::addresses(&candidates));
        Ok(())
    })
}

//! `gsend <group> <message...>` (also `group send`): sends a line to a
//! group through the server, which stores it, gives it its place in the
//! group's order and hands it to every other member. `sent to group1`
//! follows once the server has stored it; members who are offline get it
//! when they sign in.

use serde::{Deserialize, Serialize};
use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::CommandError;
use udpchat_core::names::check_group_name;
use udpchat_core::output::Output;
use udpchat_core::registry::{ArgKind, Command};

use crate::message::check_text;

const USAGE: &str = "gsend <group> <message...>";

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSend {
    pub group: String,
    pub text: String,
}

/// The reply body: where the server put the message in the group's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub seq: u64,
    pub time_ms: u64,
}

inventory::submit! {
    Command {
        name: "gsend",
        aliases: &[],
        usage: USAGE,
        summary: "Send a message to every member of a group.",
        examples: &["gsend group1 hello everyone"],
        args: &[ArgKind::Group, ArgKind::Text],
        module: module_path!(),
        shell: Some(shell),
        serve: Some(serve),
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move { send(&client, &args, USAGE).await })
}

/// Sends `<group> <message...>` from `args`; `usage` names the command
/// the user typed (`gsend` or `group send`).
pub async fn send(client: &Client, args: &Args, usage: &str) -> Result<(), CommandError> {
    let group = args.required(0, usage)?.to_string();
    check_group_name(&group)?;
    let text = args.rest(1).to_string();
    check_text(&text)?;
    client.user()?;
    let request = GroupSend {
        group: group.clone(),
        text,
    };
    let Accepted { seq, time_ms } =
        crate::decode(&client.request("gsend", cbor::encode(&request)).await?)?;
    client.emit(
        Output::new("group-sent", format!("sent to {group}"))
            .with("group", group)
            .with("seq", seq)
            .with("time", time_ms),
    );
    Ok(())
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let from = crate::signed_in_user(&server, origin)?;
        let GroupSend { group, text } = crate::decode(&body)?;
        check_group_name(&group)?;
        check_text(&text)?;
        let message = server.groups().send(&from, &group, text).await?;
        Ok(cbor::encode(&Accepted {
            seq: message.seq,
            time_ms: message.time_ms,
        }))
    })
}

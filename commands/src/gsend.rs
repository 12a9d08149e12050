//! `gsend <group> <message...>` (also `group send`): sends a line to a
//! group through the server, which stores it, gives it its place in the
//! group's order and hands it to every other member. `sent to group1`
//! follows once the server has stored it; members who are offline get it
//! when they sign in.

use serde::{Deserialize, Serialize};
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::event::{Event, Pen};
use udpchat_core::names::check_group_name;
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use crate::message::check_text;

/// `gsend`: the request, its shell command and its handler.
pub struct GroupSend;

impl Packet for GroupSend {
    const TAG: &'static str = "gsend";
}

impl Request for GroupSend {
    type Body = GroupLine;
    type Reply = Accepted;
}

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLine {
    pub group: String,
    pub text: String,
}

/// The reply body: where the server put the message in the group's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub seq: u64,
    pub time_ms: u64,
}

register! {
    Command::new(GroupSend::TAG, "Send a message to every member of a group.")
        .args(&[Arg::one("group", ArgKind::Group), Arg::text("message")])
        .examples(&["gsend group1 hello everyone"])
        .shell::<GroupSend>()
        .serve::<GroupSend>()
}

register! {
    Event::new("group-sent").look(look)
}

impl Shell for GroupSend {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        send(&client, &args).await
    }
}

/// Sends `<group> <message...>` from a checked line (`gsend` or `group
/// send`).
pub async fn send(client: &Client, args: &Args) -> Result<(), CommandError> {
    let group = args.word(0).to_string();
    check_group_name(&group)?;
    let text = args.rest(1).to_string();
    check_text(&text)?;
    client.user()?;
    let request = GroupLine {
        group: group.clone(),
        text,
    };
    let Accepted { seq, time_ms } = client.server().request::<GroupSend>(&request).await?;
    client.emit(
        Output::new("group-sent", format!("sent to {group}"))
            .with("group", group)
            .with("seq", seq)
            .with("time", time_ms),
    );
    Ok(())
}

impl Serve for GroupSend {
    async fn serve(
        server: Server,
        origin: Origin,
        body: GroupLine,
    ) -> Result<Accepted, CommandError> {
        let from = crate::signed_in_user(&server, origin)?;
        let GroupLine { group, text } = body;
        check_group_name(&group)?;
        check_text(&text)?;
        let message = server.groups().send(&from, &group, text).await?;
        Ok(Accepted {
            seq: message.seq,
            time_ms: message.time_ms,
        })
    }
}

/// Nothing at all inside the group's own conversation (every line would
/// be followed by one).
fn look(output: &Output, pen: &dyn Pen) -> Option<String> {
    if pen.is_partner(output, "group") {
        return None;
    }
    Some(pen.plain(output))
}

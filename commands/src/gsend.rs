//! `gsend <group> <message...>` (also `group send`): sends a line to a
//! group through the server, which stores it, gives it its place in the
//! group's order and hands it to every other member. `sent to group1`
//! follows once the server has stored it; members who are offline get it
//! when they sign in.

use serde::{Deserialize, Serialize};
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::cbor;
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::crypto::sender_keys::SealedLine;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::event::{Event, Pen};
use udpchat_core::group::{Post, MEMBERS_DIGEST_LEN};
use udpchat_core::history::{Conversation, Line, State};
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

/// The request body: `text` for a group that is not private; for one
/// that is, `sealed` (a CBOR `crypto::sender_keys::SealedLine`), empty
/// `text`, and the digest of the members it was sealed for
/// (`udpchat_core::group::members_digest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLine {
    pub group: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub sealed: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub members: Option<Vec<u8>>,
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
    let me = client.user()?;
    let Accepted { seq, time_ms } = if crate::private::is_private(client, &group).await? {
        crate::private::send(client, &group, &text, Vec::new(), Vec::new()).await?
    } else {
        let request = GroupLine {
            group: group.clone(),
            text: text.clone(),
            sealed: None,
            members: None,
        };
        client.server().request::<GroupSend>(&request).await?
    };
    crate::history::keep(
        client,
        &Line {
            conversation: Conversation::Group(group.clone()),
            from: me,
            text,
            time_ms,
            number: Some(seq),
            message_id: None,
            outgoing: true,
            state: State::Sent,
        },
        None,
    );
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
        let GroupLine {
            group,
            text,
            sealed,
            members,
        } = body;
        check_group_name(&group)?;
        let post = match (sealed, members) {
            (None, None) => {
                check_text(&text)?;
                Post::Plain(text)
            }
            (Some(line), Some(members)) => sealed_post(line, &members)?,
            _ => {
                return Err(CommandError::bad_request(
                    "a sealed line comes with the digest of its members, and only then",
                ))
            }
        };
        let message = server.groups().send(&from, &group, post).await?;
        Ok(Accepted {
            seq: message.seq,
            time_ms: message.time_ms,
        })
    }
}

/// A private group's line as the server takes it: no larger than a
/// client seals, a well-formed `SealedLine`, and a digest of the right
/// length. What it says is for the members alone.
fn sealed_post(line: Vec<u8>, members: &[u8]) -> Result<Post, CommandError> {
    if line.len() > crate::private::MAX_LINE {
        return Err(CommandError::new(
            Code::TooLarge,
            format!(
                "a sealed line may be at most {} bytes",
                crate::private::MAX_LINE
            ),
        ));
    }
    cbor::decode_body::<SealedLine>(&line).map_err(CommandError::bad_request)?;
    let members: [u8; MEMBERS_DIGEST_LEN] = members
        .try_into()
        .map_err(|_| CommandError::bad_request("the members' digest is 16 bytes"))?;
    Ok(Post::Sealed { line, members })
}

/// Nothing at all inside the group's own conversation (every line would
/// be followed by one).
fn look(output: &Output, pen: &dyn Pen) -> Option<String> {
    if pen.is_partner(output, "group") {
        return None;
    }
    Some(pen.plain(output))
}

//! `group members <group>`: who is in a group, its owner, and whether it
//! is open.

use serde::{Deserialize, Serialize};
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::group::GroupInfo;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use super::{group_name, render, GROUP};

/// `group members`: the request, its shell command and its handler.
pub struct GroupMembers;

impl Packet for GroupMembers {
    const TAG: &'static str = GROUP;
}

impl Request for GroupMembers {
    const OP: Option<&'static str> = Some("members");
    type Body = Named;
    type Reply = GroupInfo;
}

/// The request body of the subcommands that name only a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub group: String,
}

impl Named {
    /// `<group>` from a checked line.
    pub fn from_args(args: &Args) -> Result<Named, CommandError> {
        Ok(Named {
            group: group_name(args.word(0))?,
        })
    }
}

register! {
    Command::sub(GROUP, "members", "Show a group's members, its owner and whether it is open.")
        .args(&[Arg::one("group", ArgKind::Group)])
        .examples(&["group members group1"])
        .shell::<GroupMembers>()
        .serve::<GroupMembers>()
}

impl Shell for GroupMembers {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let info = client
            .server()
            .request::<GroupMembers>(&Named::from_args(&args)?)
            .await?;
        let owner = match &info.owner {
            Some(owner) => format!("owner {owner}"),
            None => "set up by the operator".to_string(),
        };
        crate::private::learn(&client, std::slice::from_ref(&info), false);
        let open = if info.open { ", open to all" } else { "" };
        let private = if info.private {
            ", end-to-end encrypted"
        } else {
            ", not private"
        };
        let text = format!(
            "Members of {} ({owner}{open}{private}): {}",
            info.name,
            info.members.join(", ")
        );
        client.emit(render("group-members", text, &info));
        Ok(())
    }
}

impl Serve for GroupMembers {
    async fn serve(server: Server, origin: Origin, body: Named) -> Result<GroupInfo, CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        server.groups().info(&user, &body.group).await
    }
}

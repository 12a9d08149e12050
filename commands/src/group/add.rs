//! `group add <group> <user...>`: the owner adds members.

use serde::{Deserialize, Serialize};
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::group::GroupInfo;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use super::{check_users, group_name, render, user_names, GROUP};

/// `group add`: the request, its shell command and its handler.
pub struct Add;

impl Packet for Add {
    const TAG: &'static str = GROUP;
}

impl Request for Add {
    const OP: Option<&'static str> = Some("add");
    type Body = Members;
    type Reply = GroupInfo;
}

/// The request body of `group add` and `group remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    pub group: String,
    pub users: Vec<String>,
}

impl Members {
    /// `<group> <user...>` from a checked line.
    pub fn from_args(args: &Args) -> Result<Members, CommandError> {
        Ok(Members {
            group: group_name(args.word(0))?,
            users: user_names(args.words_from(1))?,
        })
    }
}

register! {
    Command::sub(GROUP, "add", "Add members to a group you own.")
        .args(&[Arg::one("group", ArgKind::Group), Arg::many("user", ArgKind::User)])
        .examples(&["group add group1 dave"])
        .shell::<Add>()
        .serve::<Add>()
}

impl Shell for Add {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let request = Members::from_args(&args)?;
        let info = client.server().request::<Add>(&request).await?;
        let text = format!(
            "Added {} to {}; members: {}",
            request.users.join(", "),
            info.name,
            info.members.join(", ")
        );
        client.emit(render("group-members", text, &info));
        Ok(())
    }
}

impl Serve for Add {
    async fn serve(
        server: Server,
        origin: Origin,
        body: Members,
    ) -> Result<GroupInfo, CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        check_users(&body.users)?;
        server.groups().add(&user, &body.group, body.users).await
    }
}

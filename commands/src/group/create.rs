//! `group create <group> [--open] [--plain] [user...]`: makes a group
//! owned by the one who asks, with them and the users named in it;
//! `--open` lets anyone join. A group is private (its messages are end to
//! end encrypted by their senders) unless made `--plain`.

use serde::{Deserialize, Serialize};
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::group::{GroupInfo, Kind};
use udpchat_core::names::check_group_name;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use super::{check_users, group_name, render, user_names, GROUP};

/// The flag that makes a new group open to `group join`.
const OPEN_FLAG: &str = "--open";
/// The flag that makes a new group not private: the server reads its
/// messages, and a member added later can read what came before.
const PLAIN_FLAG: &str = "--plain";

/// `group create`: the request, its shell command and its handler.
pub struct Create;

impl Packet for Create {
    const TAG: &'static str = GROUP;
}

impl Request for Create {
    const OP: Option<&'static str> = Some("create");
    type Body = CreateBody;
    type Reply = GroupInfo;
}

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBody {
    pub group: String,
    pub open: bool,
    pub members: Vec<String>,
    /// End-to-end encrypted (a client that does not say is one that
    /// cannot seal: its group is not private).
    #[serde(default)]
    pub private: bool,
}

register! {
    Command::sub(GROUP, "create", "Make a group you own, with these members (--open: anyone may join; --plain: not end-to-end encrypted).")
        .args(&[
            Arg::one("group", ArgKind::Group),
            Arg::flag(OPEN_FLAG),
            Arg::flag(PLAIN_FLAG),
            Arg::any("user", ArgKind::User),
        ])
        .examples(&["group create group1 bob charlie eve", "group create lobby --open"])
        .shell::<Create>()
        .serve::<Create>()
}

impl Shell for Create {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let request = CreateBody {
            group: group_name(args.word(0))?,
            open: args.flag(OPEN_FLAG),
            members: user_names(args.words_from(1))?,
            private: !args.flag(PLAIN_FLAG),
        };
        let info = client.server().request::<Create>(&request).await?;
        crate::private::learn(&client, std::slice::from_ref(&info), false);
        let open = if info.open { ", open to all" } else { "" };
        let plain = if info.private {
            ""
        } else {
            ", not private (the server reads its messages)"
        };
        let text = format!(
            "Created group {}{open}{plain}: {}",
            info.name,
            info.members.join(", ")
        );
        client.emit(render("group-created", text, &info));
        Ok(())
    }
}

impl Serve for Create {
    async fn serve(
        server: Server,
        origin: Origin,
        body: CreateBody,
    ) -> Result<GroupInfo, CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        check_group_name(&body.group)?;
        check_users(&body.members)?;
        server
            .groups()
            .create(
                &user,
                &body.group,
                Kind {
                    open: body.open,
                    private: body.private,
                },
                body.members,
            )
            .await
    }
}

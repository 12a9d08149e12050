//! `group remove <group> <user...>`: the owner removes members; removing
//! oneself is leaving.

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::group::GroupInfo;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use super::add::Members;
use super::{check_users, render, GROUP};

/// `group remove`: the request, its shell command and its handler.
pub struct Remove;

impl Packet for Remove {
    const TAG: &'static str = GROUP;
}

impl Request for Remove {
    const OP: Option<&'static str> = Some("remove");
    type Body = Members;
    type Reply = GroupInfo;
}

register! {
    Command::sub(GROUP, "remove", "Remove members from a group you own.")
        .args(&[Arg::one("group", ArgKind::Group), Arg::many("user", ArgKind::User)])
        .examples(&["group remove group1 dave"])
        .shell::<Remove>()
        .serve::<Remove>()
}

impl Shell for Remove {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let request = Members::from_args(&args)?;
        let info = client.server().request::<Remove>(&request).await?;
        if request.users.contains(&client.user()?) {
            // Removing oneself is leaving; the group may be gone now.
            client.emit(super::leave::left(&request.group));
            return Ok(());
        }
        let text = format!(
            "Removed {} from {}; members: {}",
            request.users.join(", "),
            info.name,
            info.members.join(", ")
        );
        client.emit(render("group-members", text, &info));
        Ok(())
    }
}

impl Serve for Remove {
    async fn serve(
        server: Server,
        origin: Origin,
        body: Members,
    ) -> Result<GroupInfo, CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        check_users(&body.users)?;
        server.groups().remove(&user, &body.group, body.users).await
    }
}

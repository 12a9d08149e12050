//! `group join <group>`: joins an open group.

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::group::GroupInfo;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use super::members::Named;
use super::{render, GROUP};

/// `group join`: the request, its shell command and its handler.
pub struct Join;

impl Packet for Join {
    const TAG: &'static str = GROUP;
}

impl Request for Join {
    const OP: Option<&'static str> = Some("join");
    type Body = Named;
    type Reply = GroupInfo;
}

register! {
    Command::sub(GROUP, "join", "Join an open group.")
        .args(&[Arg::one("group", ArgKind::Group)])
        .examples(&["group join lobby"])
        .shell::<Join>()
        .serve::<Join>()
}

impl Shell for Join {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let info = client
            .server()
            .request::<Join>(&Named::from_args(&args)?)
            .await?;
        crate::private::learn(&client, std::slice::from_ref(&info), false);
        let mut text = format!("Joined {}; members: {}", info.name, info.members.join(", "));
        if info.private {
            text.push_str(&format!("\n({})", crate::private::JOINED_NOTE));
        }
        let mut joined = render("group-joined", text, &info);
        if info.private {
            joined = joined.with("note", crate::private::JOINED_NOTE);
        }
        client.emit(joined);
        Ok(())
    }
}

impl Serve for Join {
    async fn serve(server: Server, origin: Origin, body: Named) -> Result<GroupInfo, CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        server.groups().join(&user, &body.group).await
    }
}

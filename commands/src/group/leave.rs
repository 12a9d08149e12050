//! `group leave <group>`: leaves a group; the group goes with its last
//! member.

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use super::members::Named;
use super::GROUP;

/// `group leave`: the request, its shell command and its handler.
pub struct LeaveGroup;

impl Packet for LeaveGroup {
    const TAG: &'static str = GROUP;
}

impl Request for LeaveGroup {
    const OP: Option<&'static str> = Some("leave");
    type Body = Named;
    type Reply = ();
}

register! {
    Command::sub(GROUP, "leave", "Leave a group.")
        .args(&[Arg::one("group", ArgKind::Group)])
        .examples(&["group leave lobby"])
        .shell::<LeaveGroup>()
        .serve::<LeaveGroup>()
}

impl Shell for LeaveGroup {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let request = Named::from_args(&args)?;
        client.server().request::<LeaveGroup>(&request).await?;
        client.groups().keys(|k| k.forget(&request.group))?;
        client.emit(left(&request.group));
        Ok(())
    }
}

impl Serve for LeaveGroup {
    async fn serve(server: Server, origin: Origin, body: Named) -> Result<(), CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        server.groups().leave(&user, &body.group).await
    }
}

/// `Left group1`.
pub fn left(group: &str) -> Output {
    Output::new("group-left", format!("Left {group}")).with("group", group.to_string())
}

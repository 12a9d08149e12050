//! `group send <group> <message...>`: the same as `gsend`.

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::Client;
use udpchat_core::error::CommandError;
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

use super::GROUP;

/// `group send`: the shell command.
pub struct GroupSendLine;

register! {
    Command::sub(GROUP, "send", "Send a message to every member of a group (as gsend).")
        .args(&[Arg::one("group", ArgKind::Group), Arg::text("message")])
        .examples(&["group send group1 hello everyone"])
        .shell::<GroupSendLine>()
}

impl Shell for GroupSendLine {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        crate::gsend::send(&client, &args).await
    }
}

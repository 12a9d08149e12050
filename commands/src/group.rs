//! `group <subcommand> <group> ...`: group chat. A member's line reaches
//! every other member, through the server, in the one order the server
//! accepted the lines in (see `udpchat_core::group`).
//!
//! - `group create NAME [--open] [USER...]`, `group add NAME USER...`,
//!   `group remove NAME USER...` (the owner), `group join NAME` (open
//!   groups), `group leave NAME`, `group members NAME`: [`manage`]
//! - `group send NAME message...`: the same as `gsend` ([`crate::gsend`])
//! - `group history NAME [N]`: [`history`]
//!
//! On the wire the tag `group` carries a [`GroupRequest`]; messages travel
//! as `gsend` (client to server) and `group-message` (server to client),
//! and a member's groups as `groups`.

pub mod history;
pub mod manage;

use serde::{Deserialize, Serialize};
use udpchat_core::args::Args;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::{code, CommandError};
use udpchat_core::registry::{ArgKind, Command};

const USAGE: &str = "group <subcommand> ...";

/// The subcommands, for completion and the usage error.
const SUBCOMMANDS: &[&str] = &[
    "create", "add", "remove", "join", "leave", "members", "send", "history",
];

/// The request body of `group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum GroupRequest {
    /// Replies with the new group's `GroupInfo`.
    Create {
        group: String,
        open: bool,
        members: Vec<String>,
    },
    /// Replies with the group's `GroupInfo`.
    Add { group: String, users: Vec<String> },
    /// Replies with the group's `GroupInfo`.
    Remove { group: String, users: Vec<String> },
    /// Replies with the group's `GroupInfo`.
    Join { group: String },
    /// Replies with `null`.
    Leave { group: String },
    /// Replies with the group's `GroupInfo`.
    Members { group: String },
    /// Replies with a `history::History`.
    History { group: String, count: u32 },
}

inventory::submit! {
    Command {
        name: "group",
        aliases: &[],
        usage: USAGE,
        summary: "Group chat: create, add, remove, join, leave, members, send, history.",
        examples: &[
            "group create group1 bob charlie eve",
            "group send group1 hello everyone",
            "group history group1 50",
            "group members group1",
            "group add group1 dave",
            "group remove group1 dave",
            "group create lobby --open",
            "group join lobby",
            "group leave lobby",
        ],
        args: &[ArgKind::Word(SUBCOMMANDS), ArgKind::Group, ArgKind::Users],
        module: module_path!(),
        shell: Some(shell),
        serve: Some(serve),
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let rest = Args::parse(args.rest(1));
        match args.get(0).unwrap_or_default() {
            "create" => manage::create(&client, &rest).await,
            "add" => manage::add(&client, &rest).await,
            "remove" => manage::remove(&client, &rest).await,
            "join" => manage::join(&client, &rest).await,
            "leave" => manage::leave(&client, &rest).await,
            "members" => manage::members(&client, &rest).await,
            "send" => crate::gsend::send(&client, &rest, "group send <group> <message...>").await,
            "history" => history::shell(&client, &rest).await,
            "" => Err(subcommands(format!("usage: {USAGE}"))),
            other => Err(subcommands(format!("unknown group subcommand {other:?}"))),
        }
    })
}

fn subcommands(first: String) -> CommandError {
    CommandError::new(
        code::USAGE,
        format!("{first}; subcommands: {}", SUBCOMMANDS.join(", ")),
    )
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let user = crate::signed_in_user(&server, origin)?;
        let request: GroupRequest = crate::decode(&body)?;
        match request {
            GroupRequest::History { group, count } => {
                history::serve(&server, &user, &group, count).await
            }
            request => manage::serve(&server, &user, request).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::cbor;

    #[test]
    fn requests_survive_the_wire() {
        let request = GroupRequest::Create {
            group: "group1".into(),
            open: false,
            members: vec!["bob".into(), "eve".into()],
        };
        let back: GroupRequest = crate::decode(&cbor::encode(&request)).unwrap();
        assert_eq!(back, request);
        assert!(crate::decode::<GroupRequest>(b"\x01\x02").is_err());
    }
}

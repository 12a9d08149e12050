//! `groups`: the groups I am a member of, with their members, as the seeds
//! show them: `You are member of group1: alice, bob, charlie, eve`. The
//! server also pushes this list at sign-in, and again when someone adds
//! the user to a group or removes the user from one (with a `note`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Sender, Server};
use udpchat_core::error::{code, CommandError};
use udpchat_core::group::GroupInfo;
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

const USAGE: &str = "groups";

/// The reply body, and the body of the server's push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub groups: Vec<GroupInfo>,
    /// Why the server pushed the list (`alice added you to group1`).
    #[serde(default)]
    pub note: Option<String>,
}

inventory::submit! {
    Command {
        name: "groups",
        aliases: &[],
        usage: USAGE,
        summary: "List the groups you are a member of, with their members.",
        examples: &["groups"],
        args: &[],
        module: module_path!(),
        shell: Some(shell),
        serve: Some(serve),
        on_push: Some(on_push),
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        args.at_most(0, USAGE)?;
        client.user()?;
        let listing: Listing = crate::decode(&client.request("groups", cbor::encode(&())).await?)?;
        client.emit(render(&listing));
        Ok(())
    })
}

fn serve(server: Server, origin: Origin, _body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let user = crate::signed_in_user(&server, origin)?;
        let groups = server.groups().of_member(&user).await?;
        Ok(cbor::encode(&Listing { groups, note: None }))
    })
}

fn on_push(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        if !sender.from_server {
            return Err(CommandError::new(
                code::UNVERIFIED,
                "dropped a list of groups that did not come from the server",
            ));
        }
        let listing: Listing = crate::decode(&body)?;
        client.emit(render(&listing));
        Ok(())
    })
}

/// One line per group; the JSON has the names (`groups`) and each
/// group's members (`members`).
pub fn render(listing: &Listing) -> Output {
    let mut lines: Vec<String> = listing.note.iter().cloned().collect();
    if listing.groups.is_empty() {
        lines.push("You are not a member of any group".to_string());
    }
    let mut members = Map::new();
    for group in &listing.groups {
        lines.push(format!(
            "You are member of {}: {}",
            group.name,
            group.members.join(", ")
        ));
        members.insert(group.name.clone(), Value::from(group.members.clone()));
    }
    let names: Vec<String> = listing.groups.iter().map(|g| g.name.clone()).collect();
    let mut output = Output::new("groups", lines.join("\n"))
        .with("groups", names)
        .with("members", members);
    if let Some(note) = &listing.note {
        output = output.with("note", note.clone());
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_the_seed_shows() {
        let listing = Listing {
            groups: vec![GroupInfo {
                name: "group1".into(),
                owner: None,
                open: false,
                members: ["alice", "bob", "charlie", "eve"]
                    .map(String::from)
                    .to_vec(),
            }],
            note: None,
        };
        let out = render(&listing);
        assert_eq!(
            out.text,
            "You are member of group1: alice, bob, charlie, eve"
        );
        assert_eq!(
            out.to_json(),
            r#"{"event":"groups","groups":["group1"],"members":{"group1":["alice","bob","charlie","eve"]}}"#
        );
        let none = render(&Listing {
            groups: vec![],
            note: Some("alice removed you from group1".into()),
        });
        assert_eq!(
            none.text,
            "alice removed you from group1\nYou are not a member of any group"
        );
    }
}

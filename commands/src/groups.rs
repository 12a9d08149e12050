//! `groups`: the groups I am a member of, with their members, as the seeds
//! show them: `You are member of group1: alice, bob, charlie, eve`. The
//! server also pushes this list at sign-in, and again when someone adds
//! the user to a group or removes the user from one (with a `note`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use udpchat_core::args::Args;
use udpchat_core::context::{Client, Origin, Sender, Server};
use udpchat_core::error::CommandError;
use udpchat_core::event::{strings, Event, Names};
use udpchat_core::group::GroupInfo;
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Push, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush, Serve, Shell};

/// `groups`: the request, its shell command, its handler, and the push of
/// the same list.
pub struct Groups;

impl Packet for Groups {
    const TAG: &'static str = "groups";
}

impl Request for Groups {
    type Body = ();
    type Reply = Listing;
}

impl Push for Groups {
    const SERVER_ONLY: bool = true;
    type Body = Listing;
}

/// The reply body, and the body of the server's push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub groups: Vec<GroupInfo>,
    /// Why the server pushed the list (`alice added you to group1`).
    #[serde(default)]
    pub note: Option<String>,
}

register! {
    Command::new(Groups::TAG, "List the groups you are a member of, with their members.")
        .examples(&["groups"])
        .shell::<Groups>()
        .serve::<Groups>()
        .on_push::<Groups>()
}

register! {
    Event::new("groups").names(learn)
}

impl Shell for Groups {
    async fn run(client: Client, _: Args) -> Result<(), CommandError> {
        client.user()?;
        let listing = client.server().request::<Groups>(&()).await?;
        crate::private::learn(&client, &listing.groups, true);
        client.emit(render(&listing));
        Ok(())
    }
}

impl Serve for Groups {
    async fn serve(server: Server, origin: Origin, _: ()) -> Result<Listing, CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        let groups = server.groups().of_member(&user).await?;
        Ok(Listing { groups, note: None })
    }
}

impl OnPush for Groups {
    async fn on_push(client: Client, _: Sender, listing: Listing) -> Result<(), CommandError> {
        crate::private::learn(&client, &listing.groups, true);
        client.emit(render(&listing));
        Ok(())
    }
}

/// The groups this user is in; fellow members are people one may talk to.
fn learn(output: &Output, names: &mut dyn Names) {
    if output.data.get("groups").is_some() {
        names.set_groups(&strings(output, "groups"));
    }
    if let Some(Value::Object(members)) = output.data.get("members") {
        for list in members.values() {
            for member in list.as_array().into_iter().flatten() {
                if let Some(member) = member.as_str() {
                    names.met(member);
                }
            }
        }
    }
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
                private: true,
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

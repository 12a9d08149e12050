//! Who is in a group: `group create|add|remove|join|leave|members`. The
//! owner (whoever created the group) adds and removes members; anyone may
//! join an open group; any member may leave, and the group goes with its
//! last member.

use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{Client, Reply, Server};
use udpchat_core::error::{code, CommandError};
use udpchat_core::group::{GroupInfo, MAX_MEMBERS};
use udpchat_core::names::{check_group_name, check_user_name};
use udpchat_core::output::Output;

use super::GroupRequest;

/// The flag that makes a new group open to `group join`.
const OPEN_FLAG: &str = "--open";

pub async fn create(client: &Client, args: &Args) -> Result<(), CommandError> {
    const USAGE: &str = "group create <group> [--open] [user...]";
    let group = group_name(args, USAGE)?;
    let words = words_after_name(args);
    let open = words.iter().any(|w| w == OPEN_FLAG);
    let members = user_names(words.into_iter().filter(|w| w != OPEN_FLAG))?;
    let info = ask(
        client,
        GroupRequest::Create {
            group,
            open,
            members,
        },
    )
    .await?;
    let open = if info.open { ", open to all" } else { "" };
    let text = format!(
        "Created group {}{open}: {}",
        info.name,
        info.members.join(", ")
    );
    client.emit(render("group-created", text, &info));
    Ok(())
}

pub async fn add(client: &Client, args: &Args) -> Result<(), CommandError> {
    let (group, users) = group_and_users(args, "group add <group> <user...>")?;
    let info = ask(
        client,
        GroupRequest::Add {
            group,
            users: users.clone(),
        },
    )
    .await?;
    let text = format!(
        "Added {} to {}; members: {}",
        users.join(", "),
        info.name,
        info.members.join(", ")
    );
    client.emit(render("group-members", text, &info));
    Ok(())
}

pub async fn remove(client: &Client, args: &Args) -> Result<(), CommandError> {
    let (group, users) = group_and_users(args, "group remove <group> <user...>")?;
    let request = GroupRequest::Remove {
        group: group.clone(),
        users: users.clone(),
    };
    let reply = client.request("group", cbor::encode(&request)).await?;
    let me = client.user()?;
    if users.contains(&me) {
        // Removing oneself is leaving; the group may be gone now.
        client.emit(left(&group));
        return Ok(());
    }
    let info: GroupInfo = crate::decode(&reply)?;
    let text = format!(
        "Removed {} from {}; members: {}",
        users.join(", "),
        info.name,
        info.members.join(", ")
    );
    client.emit(render("group-members", text, &info));
    Ok(())
}

pub async fn join(client: &Client, args: &Args) -> Result<(), CommandError> {
    const USAGE: &str = "group join <group>";
    let group = group_name(args, USAGE)?;
    args.at_most(1, USAGE)?;
    let info = ask(client, GroupRequest::Join { group }).await?;
    let text = format!("Joined {}; members: {}", info.name, info.members.join(", "));
    client.emit(render("group-joined", text, &info));
    Ok(())
}

pub async fn leave(client: &Client, args: &Args) -> Result<(), CommandError> {
    const USAGE: &str = "group leave <group>";
    let group = group_name(args, USAGE)?;
    args.at_most(1, USAGE)?;
    let request = GroupRequest::Leave {
        group: group.clone(),
    };
    client.request("group", cbor::encode(&request)).await?;
    client.emit(left(&group));
    Ok(())
}

pub async fn members(client: &Client, args: &Args) -> Result<(), CommandError> {
    const USAGE: &str = "group members <group>";
    let group = group_name(args, USAGE)?;
    args.at_most(1, USAGE)?;
    let info = ask(client, GroupRequest::Members { group }).await?;
    let owner = match &info.owner {
        Some(owner) => format!("owner {owner}"),
        None => "set up by the operator".to_string(),
    };
    let open = if info.open { ", open to all" } else { "" };
    let text = format!(
        "Members of {} ({owner}{open}): {}",
        info.name,
        info.members.join(", ")
    );
    client.emit(render("group-members", text, &info));
    Ok(())
}

/// The server side of every request but `history`.
pub async fn serve(server: &Server, user: &str, request: GroupRequest) -> Reply {
    let groups = server.groups();
    let info = match request {
        GroupRequest::Create {
            group,
            open,
            members,
        } => {
            check_group_name(&group)?;
            check_users(&members)?;
            groups.create(user, &group, open, members).await?
        }
        GroupRequest::Add { group, users } => {
            check_users(&users)?;
            groups.add(user, &group, users).await?
        }
        GroupRequest::Remove { group, users } => {
            check_users(&users)?;
            groups.remove(user, &group, users).await?
        }
        GroupRequest::Join { group } => groups.join(user, &group).await?,
        GroupRequest::Leave { group } => {
            groups.leave(user, &group).await?;
            return Ok(cbor::encode(&()));
        }
        GroupRequest::Members { group } => groups.info(user, &group).await?,
        GroupRequest::History { .. } => {
            return Err(CommandError::bad_request(
                "history is not a membership change",
            ))
        }
    };
    Ok(cbor::encode(&info))
}

/// A group event: its text, and the group's name, owner, openness and
/// members as JSON fields.
pub fn render(event: &'static str, text: String, info: &GroupInfo) -> Output {
    Output::new(event, text)
        .with("group", info.name.clone())
        .with("owner", info.owner.clone())
        .with("open", info.open)
        .with("members", info.members.clone())
}

fn left(group: &str) -> Output {
    Output::new("group-left", format!("Left {group}")).with("group", group.to_string())
}

async fn ask(client: &Client, request: GroupRequest) -> Result<GroupInfo, CommandError> {
    let reply = client.request("group", cbor::encode(&request)).await?;
    crate::decode(&reply)
}

fn group_name(args: &Args, usage: &str) -> Result<String, CommandError> {
    let group = args.required(0, usage)?;
    check_group_name(group)?;
    Ok(group.to_string())
}

fn words_after_name(args: &Args) -> Vec<String> {
    (1..args.len())
        .filter_map(|i| args.get(i))
        .map(str::to_string)
        .collect()
}

fn group_and_users(args: &Args, usage: &str) -> Result<(String, Vec<String>), CommandError> {
    let group = group_name(args, usage)?;
    let users = user_names(words_after_name(args))?;
    if users.is_empty() {
        return Err(CommandError::usage(usage));
    }
    Ok((group, users))
}

/// Checked, without repeats, in the order given.
fn user_names(words: impl IntoIterator<Item = String>) -> Result<Vec<String>, CommandError> {
    let mut users: Vec<String> = Vec::new();
    for word in words {
        check_user_name(&word)?;
        if !users.contains(&word) {
            users.push(word);
        }
    }
    check_users(&users)?;
    Ok(users)
}

fn check_users(users: &[String]) -> Result<(), CommandError> {
    if users.len() > MAX_MEMBERS {
        return Err(CommandError::new(
            code::TOO_LARGE,
            format!("a group has at most {MAX_MEMBERS} members"),
        ));
    }
    users.iter().try_for_each(|u| check_user_name(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_event_carries_its_members() {
        let info = GroupInfo {
            name: "group1".into(),
            owner: Some("alice".into()),
            open: false,
            members: vec!["alice".into(), "bob".into()],
        };
        let out = render("group-members", "x".into(), &info);
        assert_eq!(
            out.to_json(),
            r#"{"event":"group-members","group":"group1","owner":"alice","open":false,"members":["alice","bob"]}"#
        );
    }

    #[test]
    fn names_are_checked_and_repeats_dropped() {
        let args = Args::parse("group1 bob bob eve");
        let (group, users) = group_and_users(&args, "u").unwrap();
        assert_eq!(group, "group1");
        assert_eq!(users, ["bob", "eve"]);
        let bad = group_and_users(&Args::parse("group1 b:b"), "u").unwrap_err();
        assert_eq!(bad.code, code::INVALID_NAME);
        let bad = group_and_users(&Args::parse("-g bob"), "u").unwrap_err();
        assert_eq!(bad.code, code::INVALID_NAME);
        assert!(bad.message.contains("group name"), "{}", bad.message);
        let none = group_and_users(&Args::parse("group1"), "u").unwrap_err();
        assert_eq!(none.code, code::USAGE);
    }
}

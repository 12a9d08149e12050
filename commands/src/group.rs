//! `group <subcommand> <group> ...`: group chat. A member's line reaches
//! every other member, through the server, in the one order the server
//! accepted the lines in (see `udpchat_core::group`).
//!
//! Each subcommand is a module of its own, registered with `group` as its
//! parent: the registry hands `group create ...` to [`create`], and on the
//! wire a request tagged `group` to the subcommand its body's `op` names.
//! Who may do what: the owner (whoever created the group) adds and
//! removes members; anyone may join an open group; any member may leave,
//! and the group goes with its last member. Messages travel as `gsend`
//! (client to server) and `group-message` (server to client), and a
//! member's groups as `groups`.

pub mod add;
pub mod create;
pub mod history;
pub mod join;
pub mod leave;
pub mod members;
pub mod remove;
pub mod send;

use udpchat_core::error::{Code, CommandError};
use udpchat_core::event::{strings, Event, Names};
use udpchat_core::group::{GroupInfo, MAX_MEMBERS};
use udpchat_core::names::{check_group_name, check_user_name};
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::Command;

/// The parent of every group subcommand, and their wire tag.
pub const GROUP: &str = "group";

register! {
    Command::new(GROUP, "Group chat").subcommands()
}

register! {
    Event::new("group-created").names(joined)
}

register! {
    Event::new("group-joined").names(joined)
}

register! {
    Event::new("group-left").names(left)
}

/// A group event: its text, and the group's name, owner, openness,
/// members and privacy as JSON fields.
pub fn render(event: &'static str, text: String, info: &GroupInfo) -> Output {
    Output::new(event, text)
        .with("group", info.name.clone())
        .with("owner", info.owner.clone())
        .with("open", info.open)
        .with("members", info.members.clone())
        .with("private", info.private)
}

/// This user made or joined a group: one more group, and its members are
/// people one may talk to.
fn joined(output: &Output, names: &mut dyn Names) {
    if let Some(group) = output.field("group") {
        names.joined(group);
    }
    strings(output, "members").iter().for_each(|m| names.met(m));
}

/// This user left a group.
fn left(output: &Output, names: &mut dyn Names) {
    if let Some(group) = output.field("group") {
        names.left(group);
    }
}

/// A group name, checked.
fn group_name(name: &str) -> Result<String, CommandError> {
    check_group_name(name)?;
    Ok(name.to_string())
}

/// Checked, without repeats, in the order given.
fn user_names<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, CommandError> {
    let mut users: Vec<String> = Vec::new();
    for word in words {
        check_user_name(word)?;
        if !users.iter().any(|u| u == word) {
            users.push(word.to_string());
        }
    }
    check_users(&users)?;
    Ok(users)
}

/// At most [`MAX_MEMBERS`] names, each a valid user name.
fn check_users(users: &[String]) -> Result<(), CommandError> {
    if users.len() > MAX_MEMBERS {
        return Err(CommandError::new(
            Code::TooLarge,
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
            private: true,
        };
        let out = render("group-members", "x".into(), &info);
        assert_eq!(
            out.to_json(),
            r#"{"event":"group-members","group":"group1","owner":"alice","open":false,"members":["alice","bob"],"private":true}"#
        );
    }

    #[test]
    fn names_are_checked_and_repeats_dropped() {
        assert_eq!(group_name("group1").unwrap(), "group1");
        let users = user_names(["bob", "bob", "eve"]).unwrap();
        assert_eq!(users, ["bob", "eve"]);
        let bad = user_names(["b:b"]).unwrap_err();
        assert_eq!(bad.code, Code::InvalidName);
        let bad = group_name("-g").unwrap_err();
        assert_eq!(bad.code, Code::InvalidName);
        assert!(bad.message.contains("group name"), "{}", bad.message);
    }
}

//! The names the shell completes: users online now (from the latest `list`
//! reply, later from presence pushes), users met otherwise (messages,
//! deliveries) and groups.
//!
//! Commands cannot reach the client's own types, so the roster learns from
//! the events the client shows ([`Roster::observe`]): each kind of event
//! says what it changes in its own module (its
//! [`Event`](udpchat_core::event::Event) descriptor's `names`), through the
//! [`Names`] interface this implements.
//!
//! It keeps only what is a name (see `udpchat_core::names`): the shell
//! shows these in its completion menu, so text from elsewhere that is not
//! a name (a server's list holding escape sequences, say) never gets there.

use std::collections::BTreeSet;

use udpchat_core::event::Names;
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;
use udpchat_core::registry::Registry;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Roster {
    online: BTreeSet<String>,
    known: BTreeSet<String>,
    groups: BTreeSet<String>,
    /// The signed-in user, never offered as someone to talk to.
    me: Option<String>,
}

impl Roster {
    /// Learns what an event shows about who is around.
    pub fn observe(&mut self, output: &Output) {
        if let Some(names) = Registry::global().event(output.event).and_then(|e| e.names) {
            names(output, self);
        }
    }

    /// User names with whether each is online: online users first, then
    /// known ones, each sorted.
    pub fn users(&self) -> impl Iterator<Item = (&str, bool)> {
        let online = self.online.iter().map(|u| (u.as_str(), true));
        online.chain(self.known.iter().map(|u| (u.as_str(), false)))
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(String::as_str)
    }

    pub fn is_group(&self, name: &str) -> bool {
        self.groups.contains(name)
    }
}

impl Names for Roster {
    /// Replaces who is online (a fresh `list`); whoever leaves that list is
    /// still a known user.
    fn set_online(&mut self, users: &[&str]) {
        let online: BTreeSet<String> = users
            .iter()
            .filter(|u| is_name(u))
            .map(|u| u.to_string())
            .collect();
        self.known.extend(std::mem::take(&mut self.online));
        self.known.retain(|u| !online.contains(u));
        self.online = online;
    }

    fn went_online(&mut self, user: &str) {
        if is_name(user) && Some(user) != self.me.as_deref() {
            self.known.remove(user);
            self.online.insert(user.to_string());
        }
    }

    fn went_offline(&mut self, user: &str) {
        if self.online.remove(user) {
            self.known.insert(user.to_string());
        }
    }

    fn met(&mut self, user: &str) {
        if is_name(user) && !self.online.contains(user) && Some(user) != self.me.as_deref() {
            self.known.insert(user.to_string());
        }
    }

    fn set_groups(&mut self, groups: &[&str]) {
        self.groups = groups
            .iter()
            .filter(|g| is_name(g))
            .map(|g| g.to_string())
            .collect();
    }

    fn joined(&mut self, group: &str) {
        if is_name(group) {
            self.groups.insert(group.to_string());
        }
    }

    fn left(&mut self, group: &str) {
        self.groups.remove(group);
    }

    fn signed_in_as(&mut self, user: &str) {
        self.me = Some(user.to_string()).filter(|u| is_name(u));
    }

    fn is_group(&self, name: &str) -> bool {
        Roster::is_group(self, name)
    }
}

/// A user or group name (they follow the same rules).
fn is_name(name: &str) -> bool {
    check_user_name(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn users(roster: &Roster) -> Vec<(&str, bool)> {
        roster.users().collect()
    }

    #[test]
    fn online_users_come_first_and_stay_known_after_leaving() {
        let mut roster = Roster::default();
        roster.observe(
            &Output::new("message", "")
                .with("from", "zoe")
                .with("text", "hi"),
        );
        roster.observe(
            &Output::new("users", "")
                .with("users", vec!["carole", "bob"])
                .with("total", 2),
        );
        assert_eq!(
            users(&roster),
            [("bob", true), ("carole", true), ("zoe", false)]
        );
        roster.set_online(&["carole"]);
        assert_eq!(
            users(&roster),
            [("carole", true), ("bob", false), ("zoe", false)]
        );
        let presence = |user: &str, online: bool| {
            Output::new("presence", "")
                .with("user", user)
                .with("online", online)
        };
        roster.observe(&presence("zoe", true));
        roster.observe(&presence("carole", false));
        assert_eq!(
            users(&roster),
            [("zoe", true), ("bob", false), ("carole", false)]
        );
    }

    #[test]
    fn a_partial_list_adds_who_it_shows_and_keeps_the_rest() {
        let mut roster = Roster::default();
        roster.set_online(&["bob"]);
        // One page of many: bob is not on it, but that says nothing of him.
        roster.observe(
            &Output::new("users", "")
                .with("users", vec!["al", "alice"])
                .with("total", 5000),
        );
        roster.observe(
            &Output::new("users", "")
                .with("users", vec!["carole"])
                .with("total", 1)
                .with("prefix", "c"),
        );
        assert_eq!(
            users(&roster),
            [
                ("al", true),
                ("alice", true),
                ("bob", true),
                ("carole", true)
            ]
        );
    }

    #[test]
    fn deliveries_and_conversations_make_users_known() {
        let mut roster = Roster::default();
        roster.observe(&Output::new("delivered", "").with("to", "bob"));
        roster.observe(&Output::new("conversation", "").with("with", "dave"));
        roster.observe(&Output::new("conversation", "").with("with", Value::Null));
        assert_eq!(users(&roster), [("bob", false), ("dave", false)]);
    }

    #[test]
    fn groups_come_from_a_groups_event() {
        let mut roster = Roster::default();
        roster.observe(&Output::new("groups", "").with("groups", vec!["group1", "devs"]));
        assert!(roster.is_group("group1"));
        assert_eq!(roster.groups().collect::<Vec<_>>(), ["devs", "group1"]);
        roster.observe(&Output::new("conversation", "").with("with", "group1"));
        assert_eq!(users(&roster), [], "a group is not a user");
    }

    #[test]
    fn oneself_and_fellow_members() {
        let mut roster = Roster::default();
        roster.observe(&Output::new("signed-in", "").with("user", "alice"));
        let mut members = serde_json::Map::new();
        members.insert("group1".into(), serde_json::json!(["alice", "eve"]));
        roster.observe(
            &Output::new("groups", "")
                .with("groups", vec!["group1"])
                .with("members", members),
        );
        roster.observe(
            &Output::new("presence", "")
                .with("user", "alice")
                .with("online", true),
        );
        assert_eq!(users(&roster), [("eve", false)]);
    }

    #[test]
    fn groups_made_joined_and_left_are_followed() {
        let mut roster = Roster::default();
        roster.observe(&Output::new("group-created", "").with("group", "devs"));
        roster.observe(&Output::new("group-joined", "").with("group", "lobby"));
        roster.observe(&Output::new("group-left", "").with("group", "devs"));
        roster.observe(&Output::new("group-message", "").with("from", "bob"));
        assert_eq!(roster.groups().collect::<Vec<_>>(), ["lobby"]);
        assert_eq!(users(&roster), [("bob", false)]);
    }

    #[test]
    fn what_is_not_a_name_is_never_offered() {
        let mut roster = Roster::default();
        let hostile = "bob\u{1b}]0;pwned\u{7}";
        roster.observe(
            &Output::new("users", "")
                .with("users", vec![hostile, "carole"])
                .with("total", 2),
        );
        roster.observe(&Output::new("message", "").with("from", hostile));
        roster.observe(&Output::new("groups", "").with("groups", vec![hostile, "devs"]));
        roster.observe(
            &Output::new("presence", "")
                .with("user", "\u{9b}2J")
                .with("online", true),
        );
        assert_eq!(users(&roster), [("carole", true)]);
        assert_eq!(roster.groups().collect::<Vec<_>>(), ["devs"]);
    }
}

//! Tab completion, from the registry: the first word completes to command
//! names and aliases; for a command with subcommands, the second to their
//! names; each later word to what the command declares for that position
//! (its `Arg`s): user names (online first, then known), group names,
//! command names. Free text and passwords get nothing. In conversation mode
//! only `/command` lines complete.

use std::sync::Arc;

use parking_lot::Mutex;
use reedline::{Completer, CompletionResult, Span, Suggestion};
use udpchat_core::args::{arg_at, ArgKind, Takes};
use udpchat_core::context::Client;
use udpchat_core::registry::{Command, Registry};

use crate::shell::conversation::{self, Typed};
use crate::shell::roster::Roster;
use crate::shell::style::{name_style, Look};

/// The words of a line with their byte offsets.
pub fn words(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push((s, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, &text[s..]));
    }
    words
}

/// The completer reedline calls on Tab (on the shell's thread).
pub struct ChatCompleter {
    pub registry: &'static Registry,
    pub client: Client,
    pub roster: Arc<Mutex<Roster>>,
    pub look: Look,
}

impl Completer for ChatCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let conversation = self.client.conversation();
        let roster = self.roster.lock();
        CompletionResult::fresh(suggest(
            self.registry,
            &roster,
            conversation.as_deref(),
            self.look,
            line,
            pos,
        ))
    }
}

/// The suggestions for `line` with the cursor at byte `pos`.
pub fn suggest(
    registry: &Registry,
    roster: &Roster,
    conversation: Option<&str>,
    look: Look,
    line: &str,
    pos: usize,
) -> Vec<Suggestion> {
    let Some(head) = line.get(..pos) else {
        return Vec::new();
    };
    let Typed::Command(command_text) = conversation::read(head, conversation) else {
        return Vec::new();
    };
    let words = words(command_text);
    let typing_new_word = words.is_empty() || command_text.ends_with(char::is_whitespace);
    let (index, partial) = match words.last() {
        Some(&(_, word)) if !typing_new_word => (words.len() - 1, word),
        _ => (words.len(), ""),
    };
    let span = Span::new(pos - partial.len(), pos);
    let candidates = if index == 0 {
        command_words(registry)
    } else {
        let Some(command) = registry.shell(words[0].1) else {
            return Vec::new();
        };
        // A subcommand's arguments start after its own word.
        let (command, first) = match (command.has_subcommands, words.get(1)) {
            (false, _) => (command, 1),
            (true, _) if index == 1 => {
                return finish(subcommand_words(registry, command), partial, span);
            }
            (true, Some(&(_, word))) => match registry.subcommand(command.name, word) {
                Some(sub) => (sub, 2),
                None => return Vec::new(),
            },
            (true, None) => return Vec::new(),
        };
        match arg_at(command.args, index - first) {
            // A name already in the list is not offered again.
            Some(arg) if matches!(arg.takes, Takes::Many | Takes::Any) => {
                let listed = &words[first.min(index)..index];
                candidates(registry, roster, look, arg.kind)
                    .into_iter()
                    .filter(|c| !listed.iter().any(|&(_, w)| w == c.value))
                    .collect()
            }
            Some(arg) => candidates(registry, roster, look, arg.kind),
            None => Vec::new(),
        }
    };
    finish(candidates, partial, span)
}

/// The candidates that start with what is typed (case aside), to replace it.
fn finish(candidates: Vec<Suggestion>, partial: &str, span: Span) -> Vec<Suggestion> {
    let lowered = partial.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| c.value.to_lowercase().starts_with(&lowered))
        .map(|c| Suggestion {
            span,
            append_whitespace: true,
            ..c
        })
        .collect()
}

fn suggestion(value: &str, description: String) -> Suggestion {
    Suggestion {
        value: value.to_string(),
        description: Some(description),
        ..Suggestion::default()
    }
}

/// Every name and alias a user can type, described by the command's summary.
fn command_words(registry: &Registry) -> Vec<Suggestion> {
    registry
        .shell_words()
        .filter_map(|word| registry.shell(word).map(|c| (word, c)))
        .map(|(word, command): (&str, &Command)| {
            let description = if word == command.name {
                command.summary.to_string()
            } else {
                format!("= {}: {}", command.name, command.summary)
            };
            suggestion(word, description)
        })
        .collect()
}

/// The subcommands of `command`, described by their summaries.
fn subcommand_words(registry: &Registry, command: &Command) -> Vec<Suggestion> {
    registry
        .subcommands(command.name)
        .into_iter()
        .map(|sub| suggestion(sub.name, sub.summary.to_string()))
        .collect()
}

fn candidates(registry: &Registry, roster: &Roster, look: Look, kind: ArgKind) -> Vec<Suggestion> {
    let users = || {
        roster.users().map(move |(user, online)| Suggestion {
            style: look.colour().then(|| name_style(user)),
            ..suggestion(user, if online { "online" } else { "known" }.to_string())
        })
    };
    let groups = || {
        roster.groups().map(move |group| Suggestion {
            style: look.colour().then(|| name_style(group)),
            ..suggestion(group, "group".to_string())
        })
    };
    match kind {
        ArgKind::User => users().collect(),
        ArgKind::Group => groups().collect(),
        ArgKind::UserOrGroup => users().chain(groups()).collect(),
        ArgKind::Command => command_words(registry),
        ArgKind::Host
        | ArgKind::Port
        | ArgKind::Number
        | ArgKind::Text
        | ArgKind::Password
        | ArgKind::Flag => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::args::Arg;
    use udpchat_core::event::Names;
    use udpchat_core::registry::NoOp;

    const fn command(
        name: &'static str,
        aliases: &'static [&'static str],
        args: &'static [Arg],
    ) -> Command {
        Command::new(name, "test")
            .aliases(aliases)
            .args(args)
            .module("test")
            .shell::<NoOp>()
    }

    const fn sub(name: &'static str, args: &'static [Arg]) -> Command {
        Command::sub("group", name, "test")
            .args(args)
            .module("test")
            .shell::<NoOp>()
    }

    /// The subcommands, as the registry lists them: sorted.
    const GROUP_WORDS: &[&str] = &["add", "create", "join", "leave", "members", "remove"];
    const GROUP_ONLY: &[Arg] = &[Arg::one("group", ArgKind::Group)];
    const GROUP_AND_USERS: &[Arg] = &[
        Arg::one("group", ArgKind::Group),
        Arg::many("user", ArgKind::User),
    ];
    static SEND: Command = command(
        "send",
        &["msg"],
        &[Arg::one("user", ArgKind::User), Arg::text("message")],
    );
    static SIGNUP: Command = command(
        "signup",
        &[],
        &[Arg::one("user", ArgKind::User), Arg::password()],
    );
    static GROUP: Command = Command::new("group", "test").module("test").subcommands();
    static GROUP_CREATE: Command = sub("create", GROUP_AND_USERS);
    static GROUP_ADD: Command = sub("add", GROUP_AND_USERS);
    static GROUP_REMOVE: Command = sub("remove", GROUP_AND_USERS);
    static GROUP_JOIN: Command = sub("join", GROUP_ONLY);
    static GROUP_LEAVE: Command = sub("leave", GROUP_ONLY);
    static GROUP_MEMBERS: Command = sub("members", GROUP_ONLY);
    static CHAT: Command = command("chat", &[], &[Arg::one("with", ArgKind::UserOrGroup)]);
    static HELP: Command = command("help", &[], &[Arg::optional("command", ArgKind::Command)]);
    static CONNECT: Command = command(
        "connect",
        &[],
        &[
            Arg::one("ip", ArgKind::Host),
            Arg::one("port", ArgKind::Port),
        ],
    );
    static PACKET: Command = Command::new("message", "test").module("test");

    fn registry() -> &'static Registry {
        static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        REGISTRY.get_or_init(|| {
            Registry::build(
                vec![
                    &SEND,
                    &SIGNUP,
                    &GROUP,
                    &GROUP_CREATE,
                    &GROUP_ADD,
                    &GROUP_REMOVE,
                    &GROUP_JOIN,
                    &GROUP_LEAVE,
                    &GROUP_MEMBERS,
                    &CHAT,
                    &HELP,
                    &CONNECT,
                    &PACKET,
                ],
                Vec::new(),
            )
        })
    }

    fn roster() -> Roster {
        let mut roster = Roster::default();
        roster.met("zoe");
        roster.set_online(&["carole", "bob"]);
        roster.set_groups(&["group1", "devs"]);
        roster
    }

    /// The values offered for `line` with the cursor where `|` is.
    fn offered(conversation: Option<&str>, line: &str) -> Vec<String> {
        let pos = line.find('|').expect("a cursor");
        let line = line.replace('|', "");
        suggest(
            registry(),
            &roster(),
            conversation,
            Look::new(false),
            &line,
            pos,
        )
        .into_iter()
        .map(|s| s.value)
        .collect()
    }

    #[test]
    fn the_first_word_completes_to_names_and_aliases() {
        assert_eq!(offered(None, "se|"), ["send"]);
        assert_eq!(offered(None, "M|"), ["msg"]);
        assert_eq!(offered(None, "s|"), ["send", "signup"]);
        assert_eq!(
            offered(None, "|"),
            ["chat", "connect", "group", "help", "msg", "send", "signup"],
            "packet types are not offered"
        );
        let only = suggest(registry(), &roster(), None, Look::new(false), "  sen", 5);
        assert_eq!(only[0].span, Span::new(2, 5));
        assert!(only[0].append_whitespace);
        assert_eq!(only[0].description.as_deref(), Some("test"));
    }

    #[test]
    fn users_complete_online_first_then_known() {
        assert_eq!(offered(None, "send |"), ["bob", "carole", "zoe"]);
        assert_eq!(offered(None, "msg B|"), ["bob"]);
        assert_eq!(offered(None, "send z|"), ["zoe"]);
        let users = suggest(registry(), &roster(), None, Look::new(false), "send ", 5);
        assert_eq!(users[0].description.as_deref(), Some("online"));
        assert_eq!(users[2].description.as_deref(), Some("known"));
        assert_eq!(users[0].span, Span::new(5, 5));
    }

    #[test]
    fn the_cursor_decides_the_word() {
        assert_eq!(offered(None, "send b| see you"), ["bob"]);
        assert_eq!(offered(None, "se| bob hi"), ["send"]);
    }

    #[test]
    fn free_text_passwords_hosts_and_ports_get_nothing() {
        assert!(offered(None, "send bob |").is_empty());
        assert!(offered(None, "send bob b|").is_empty());
        assert!(offered(None, "send bob hello b|").is_empty());
        assert_eq!(offered(None, "signup |"), ["bob", "carole", "zoe"]);
        assert!(offered(None, "signup alice |").is_empty());
        assert!(offered(None, "connect |").is_empty());
        assert!(offered(None, "connect 10.0.0.1 |").is_empty());
    }

    #[test]
    fn unknown_commands_and_extra_words_get_nothing() {
        assert!(offered(None, "sned |").is_empty());
        assert!(offered(None, "chat bob |").is_empty());
    }

    #[test]
    fn subcommands_then_their_groups_and_users() {
        assert_eq!(offered(None, "group |"), GROUP_WORDS);
        assert_eq!(offered(None, "group cr|"), ["create"]);
        assert_eq!(offered(None, "group add |"), ["devs", "group1"]);
        assert_eq!(offered(None, "group add group1 c|"), ["carole"]);
        // Every member named after the group completes, not just the first.
        assert_eq!(offered(None, "group add group1 bob z|"), ["zoe"]);
        assert_eq!(offered(None, "group add group1 bob |"), ["carole", "zoe"]);
    }

    #[test]
    fn a_conversation_partner_is_a_user_or_a_group() {
        assert_eq!(
            offered(None, "chat |"),
            ["bob", "carole", "zoe", "devs", "group1"]
        );
        assert_eq!(offered(None, "chat g|"), ["group1"]);
    }

    #[test]
    fn help_completes_command_words() {
        assert_eq!(offered(None, "help s|"), ["send", "signup"]);
    }

    #[test]
    fn in_a_conversation_only_slash_commands_complete() {
        let bob = Some("bob");
        assert!(offered(bob, "se|").is_empty());
        assert!(offered(bob, "hello b|").is_empty());
        assert!(offered(bob, "//se|").is_empty());
        assert_eq!(offered(bob, "/se|"), ["send"]);
        assert_eq!(offered(bob, " /send c|"), ["carole"]);
        let slash = suggest(registry(), &roster(), bob, Look::new(false), "/se", 3);
        assert_eq!(slash[0].span, Span::new(1, 3));
    }

    #[test]
    fn names_are_coloured_in_the_menu_only_with_colours_on() {
        let plain = suggest(registry(), &roster(), None, Look::new(false), "send ", 5);
        assert!(plain.iter().all(|s| s.style.is_none()));
        let coloured = suggest(registry(), &roster(), None, Look::new(true), "send ", 5);
        assert_eq!(coloured[0].style, Some(name_style("bob")));
    }
}

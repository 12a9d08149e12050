//! A command's arguments: declared once in its descriptor ([`Arg`]), from
//! which its usage line, the check of a typed line and completion all
//! come; and a typed line split into words ([`Args`]), with the last
//! free-text argument kept verbatim (a message keeps its own spacing).

use crate::error::CommandError;

/// What an argument is, for completion and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A user name.
    User,
    /// A group name.
    Group,
    /// A user or a group name: whom a conversation is with.
    UserOrGroup,
    /// A command name.
    Command,
    /// An IP address or host.
    Host,
    /// A port number.
    Port,
    /// A number.
    Number,
    /// Free text to the end of the line.
    Text,
    /// A password: never completed, and a line holding one is never kept
    /// in history.
    Password,
    /// A literal word, such as `--open`.
    Flag,
}

/// How many words an argument takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Exactly one: `<user>`.
    One,
    /// One or none: `[prefix]`.
    Optional,
    /// One or more: `<user...>`.
    Many,
    /// Any number: `[user...]`.
    Any,
    /// The rest of the line, spacing kept: `<message...>`. Whether an
    /// empty one will do is the command's to say (an empty message has an
    /// error of its own).
    Rest,
    /// The rest of the line, if any: `[password]`.
    OptionalRest,
    /// The word itself, anywhere after the command: `[--open]`.
    Flag,
}

/// One argument of a command, as its descriptor declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    /// As the usage line shows it: `user`, `message`, `--open`.
    pub name: &'static str,
    pub kind: ArgKind,
    pub takes: Takes,
    /// Shown in the usage line (an argument kept only for the seeds'
    /// sake, such as `dereg <user>`, is accepted but not shown).
    pub shown: bool,
}

impl Arg {
    const fn new(name: &'static str, kind: ArgKind, takes: Takes) -> Arg {
        Arg {
            name,
            kind,
            takes,
            shown: true,
        }
    }

    /// `<name>`
    pub const fn one(name: &'static str, kind: ArgKind) -> Arg {
        Arg::new(name, kind, Takes::One)
    }

    /// `[name]`
    pub const fn optional(name: &'static str, kind: ArgKind) -> Arg {
        Arg::new(name, kind, Takes::Optional)
    }

    /// `<name...>`: one or more words.
    pub const fn many(name: &'static str, kind: ArgKind) -> Arg {
        Arg::new(name, kind, Takes::Many)
    }

    /// `[name...]`: any number of words.
    pub const fn any(name: &'static str, kind: ArgKind) -> Arg {
        Arg::new(name, kind, Takes::Any)
    }

    /// `<name...>`: free text to the end of the line.
    pub const fn text(name: &'static str) -> Arg {
        Arg::new(name, ArgKind::Text, Takes::Rest)
    }

    /// `[password]`: the rest of the line, asked for when left off.
    pub const fn password() -> Arg {
        Arg::new("password", ArgKind::Password, Takes::OptionalRest)
    }

    /// `[--open]`: a word that may come anywhere after the command.
    pub const fn flag(word: &'static str) -> Arg {
        Arg::new(word, ArgKind::Flag, Takes::Flag)
    }

    /// Accepted, but left out of the usage line.
    pub const fn hidden(self) -> Arg {
        Arg {
            shown: false,
            ..self
        }
    }

    fn is_positional(&self) -> bool {
        self.takes != Takes::Flag
    }

    /// Whether it takes every word from its place on.
    fn takes_the_rest(&self) -> bool {
        matches!(
            self.takes,
            Takes::Many | Takes::Any | Takes::Rest | Takes::OptionalRest
        )
    }

    fn usage(&self) -> String {
        let name = self.name;
        match self.takes {
            Takes::One => format!("<{name}>"),
            Takes::Optional | Takes::OptionalRest | Takes::Flag => format!("[{name}]"),
            Takes::Many | Takes::Rest => format!("<{name}...>"),
            Takes::Any => format!("[{name}...]"),
        }
    }
}

/// The usage line of a command: its words (`send`, `group create`) and
/// its arguments as declared.
pub fn usage(words: &str, args: &[Arg]) -> String {
    let mut line = words.to_string();
    for arg in args.iter().filter(|a| a.shown) {
        line.push(' ');
        line.push_str(&arg.usage());
    }
    line
}

/// The argument a word at `index` (0 = the first after the command's
/// words, flags not counted) fills, if any.
pub fn arg_at(args: &[Arg], index: usize) -> Option<&Arg> {
    args.iter()
        .filter(|a| a.is_positional())
        .enumerate()
        .find(|(i, arg)| *i == index || (*i < index && arg.takes_the_rest()))
        .map(|(_, arg)| arg)
}

/// The words after a command's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    line: String,
    /// Byte offsets of each word in `line`, flags left out.
    spans: Vec<(usize, usize)>,
    /// The declared flags the line holds.
    flags: Vec<&'static str>,
    /// The usage line, for a command's own usage errors.
    usage: String,
}

impl Args {
    /// Splits what follows `words` (`send`, `group create`) and checks it
    /// against the declared `args`: too few or too many words is a usage
    /// error naming the usage line.
    pub fn checked(words: &str, args: &[Arg], rest: &str) -> Result<Args, CommandError> {
        let usage = usage(words, args);
        let declared = |word: &str| {
            args.iter()
                .find(|a| a.takes == Takes::Flag && a.name == word)
                .map(|a| a.name)
        };
        let mut flags = Vec::new();
        let mut positional = Vec::new();
        let mut rest_from = None;
        for (start, end) in spans(rest) {
            let word = &rest[start..end];
            // Past the start of free text, every word is part of it.
            if rest_from.is_none() {
                if let Some(flag) = declared(word) {
                    flags.push(flag);
                    continue;
                }
                if let Some(arg) = arg_at(args, positional.len()) {
                    if matches!(arg.takes, Takes::Rest | Takes::OptionalRest) {
                        rest_from = Some(positional.len());
                    }
                }
            }
            positional.push((start, end));
        }
        let fixed: Vec<&Arg> = args.iter().filter(|a| a.is_positional()).collect();
        let needed = fixed
            .iter()
            .filter(|a| matches!(a.takes, Takes::One | Takes::Many))
            .count();
        let open_ended = fixed.iter().any(|a| a.takes_the_rest());
        if positional.len() < needed || (!open_ended && positional.len() > fixed.len()) {
            return Err(CommandError::usage(&usage));
        }
        Ok(Args {
            line: rest.to_string(),
            spans: positional,
            flags,
            usage,
        })
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The word at `index`, if present.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.spans.get(index).map(|&(s, e)| &self.line[s..e])
    }

    /// The word at `index`; empty if absent (never, for an argument
    /// declared as required: the line was checked).
    pub fn word(&self, index: usize) -> &str {
        self.get(index).unwrap_or_default()
    }

    /// Every word from `index` on.
    pub fn words_from(&self, index: usize) -> Vec<&str> {
        (index..self.len()).filter_map(|i| self.get(i)).collect()
    }

    /// Everything from word `index` to the end of the line, spacing kept
    /// (trailing whitespace trimmed); empty when there is nothing.
    pub fn rest(&self, index: usize) -> &str {
        match self.spans.get(index) {
            Some(&(s, _)) => self.line[s..].trim_end(),
            None => "",
        }
    }

    /// Whether the line holds the declared flag `word`.
    pub fn flag(&self, word: &str) -> bool {
        self.flags.contains(&word)
    }

    /// The command's usage line.
    pub fn usage(&self) -> &str {
        &self.usage
    }

    /// A usage error, with what was wrong: `usage: LINE (why)`.
    pub fn usage_error(&self, why: &str) -> CommandError {
        CommandError::usage(&format!("{} ({why})", self.usage))
    }
}

/// The byte spans of the words of `text`.
fn spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// Splits a shell line into its command word and the rest.
pub fn split_command(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start();
    if line.is_empty() {
        return None;
    }
    match line.find(char::is_whitespace) {
        Some(i) => Some((&line[..i], &line[i..])),
        None => Some((line, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    const SEND: &[Arg] = &[Arg::one("user", ArgKind::User), Arg::text("message")];
    const CREATE: &[Arg] = &[
        Arg::one("group", ArgKind::Group),
        Arg::flag("--open"),
        Arg::any("user", ArgKind::User),
    ];
    const LIST: &[Arg] = &[Arg::optional("prefix", ArgKind::User)];
    const SIGNIN: &[Arg] = &[Arg::one("user", ArgKind::User), Arg::password()];
    const LOGOUT: &[Arg] = &[Arg::optional("user", ArgKind::User).hidden()];

    #[test]
    fn message_text_keeps_its_spacing() {
        let (cmd, rest) = split_command("  send bob  Hello   there  ").unwrap();
        assert_eq!(cmd, "send");
        let args = Args::checked("send", SEND, rest).unwrap();
        assert_eq!(args.get(0), Some("bob"));
        assert_eq!(args.rest(1), "Hello   there");
        assert_eq!(args.rest(5), "");
        assert!(split_command("   ").is_none());
    }

    #[test]
    fn usage_lines_come_from_the_declared_arguments() {
        assert_eq!(usage("send", SEND), "send <user> <message...>");
        assert_eq!(
            usage("group create", CREATE),
            "group create <group> [--open] [user...]"
        );
        assert_eq!(usage("list", LIST), "list [prefix]");
        assert_eq!(usage("signin", SIGNIN), "signin <user> [password]");
        assert_eq!(usage("logout", LOGOUT), "logout");
        assert_eq!(
            usage(
                "group add",
                &[
                    Arg::one("group", ArgKind::Group),
                    Arg::many("user", ArgKind::User)
                ]
            ),
            "group add <group> <user...>"
        );
    }

    #[test]
    fn a_line_is_checked_against_them() {
        let usage_of = |words, args, rest| Args::checked(words, args, rest).map(|_| ());
        let error = usage_of("send", SEND, "").unwrap_err();
        assert_eq!(error.code, Code::Usage);
        assert_eq!(error.message, "usage: send <user> <message...>");
        // An empty message is the command's to judge.
        assert!(usage_of("send", SEND, "bob   ").is_ok());
        assert!(usage_of("list", LIST, "al").is_ok());
        assert!(usage_of("list", LIST, "al bo").is_err());
        assert!(usage_of("logout", LOGOUT, "alice").is_ok());
        assert!(usage_of("logout", LOGOUT, "alice bob").is_err());
        assert!(usage_of("signin", SIGNIN, "alice my pass phrase").is_ok());
        let signin = Args::checked("signin", SIGNIN, "alice  my pass ").unwrap();
        assert_eq!(signin.rest(1), "my pass");
    }

    #[test]
    fn flags_come_anywhere_and_are_not_positional() {
        let args = Args::checked("group create", CREATE, "lobby bob --open eve").unwrap();
        assert!(args.flag("--open"));
        assert_eq!(args.words_from(0), ["lobby", "bob", "eve"]);
        let args = Args::checked("group create", CREATE, "lobby").unwrap();
        assert!(!args.flag("--open"));
        assert!(Args::checked("group create", CREATE, "--open").is_err());
        // Inside free text a flag's word is just a word.
        let with_text = &[Arg::flag("--open"), Arg::text("message")];
        let args = Args::checked("x", with_text, "hi --open").unwrap();
        assert_eq!(args.rest(0), "hi --open");
    }

    #[test]
    fn the_argument_under_each_word() {
        assert_eq!(arg_at(SEND, 0).map(|a| a.name), Some("user"));
        assert_eq!(arg_at(SEND, 5).map(|a| a.name), Some("message"));
        assert_eq!(arg_at(CREATE, 3).map(|a| a.name), Some("user"));
        assert_eq!(arg_at(LIST, 1), None);
    }

    #[test]
    fn a_commands_own_usage_error_names_the_line() {
        let args = Args::checked(
            "group history",
            &[
                Arg::one("group", ArgKind::Group),
                Arg::optional("N", ArgKind::Number),
            ],
            "g 0",
        )
        .unwrap();
        assert_eq!(
            args.usage_error("N is a number from 1 to 1000").message,
            "usage: group history <group> [N] (N is a number from 1 to 1000)"
        );
    }
}

//! The command registry: every command or packet type is one
//! [`Command`] descriptor, submitted with `inventory::submit!` from its own
//! module in `udpchat-commands`, and gathered here once at start.
//!
//! The registry is the only place a name is mapped to code: the server's and
//! the client's dispatchers look tags and shell words up here.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::args::Args;
use crate::context::{BoxFuture, Client, Origin, Reply, Sender, Server};
use crate::envelope::EnvelopeError;
use crate::error::CommandError;

/// Runs a shell line's command on the client.
pub type ShellFn = fn(Client, Args) -> BoxFuture<'static, Result<(), CommandError>>;
/// Handles a request on the server.
pub type ServeFn = fn(Server, Origin, Vec<u8>) -> BoxFuture<'static, Reply>;
/// Handles a packet pushed to the client (by the server or another client).
pub type PushFn = fn(Client, Sender, Vec<u8>) -> BoxFuture<'static, Result<(), CommandError>>;

/// What an argument is, for completion and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A user name.
    User,
    /// User names, as many as are typed (the last argument).
    Users,
    /// A group name.
    Group,
    /// A user or a group name: whom a conversation is with.
    UserOrGroup,
    /// A command name.
    Command,
    /// One of these fixed words.
    Word(&'static [&'static str]),
    /// An IP address or host.
    Host,
    /// A port number.
    Port,
    /// Free text to the end of the line.
    Text,
    /// A password: never completed, and a line holding one is never kept
    /// in history.
    Password,
}

/// One command or packet type.
#[derive(Debug)]
pub struct Command {
    /// The shell word and the wire tag.
    pub name: &'static str,
    /// Other shell words for it (`login` for `signin`).
    pub aliases: &'static [&'static str],
    /// `send <user> <message...>`
    pub usage: &'static str,
    /// One sentence for `help`.
    pub summary: &'static str,
    /// Example lines for `help COMMAND`.
    pub examples: &'static [&'static str],
    /// The arguments, in order, for completion.
    pub args: &'static [ArgKind],
    /// `module_path!()` of the module that submitted it.
    pub module: &'static str,
    /// The shell side, for commands a user types.
    pub shell: Option<ShellFn>,
    /// The server side, for requests the server answers.
    pub serve: Option<ServeFn>,
    /// The client side, for packets pushed to a client.
    pub on_push: Option<PushFn>,
}

impl Command {
    /// Whether a user can type it (packet-only types are hidden).
    pub fn is_shell(&self) -> bool {
        self.shell.is_some()
    }
}

inventory::collect!(Command);

/// Every registered command, indexed by name and alias.
#[derive(Debug)]
pub struct Registry {
    commands: Vec<&'static Command>,
    words: BTreeMap<&'static str, &'static Command>,
}

impl Registry {
    /// The registry of everything submitted to inventory, built on first use.
    ///
    /// # Panics
    /// When two commands share a name or alias (naming both modules).
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| Registry::build(inventory::iter::<Command>.into_iter().collect()))
    }

    /// Builds a registry from these descriptors.
    ///
    /// # Panics
    /// When two descriptors share a name or alias, naming both modules: a
    /// silent overwrite would route packets to the wrong handler.
    pub fn build(mut commands: Vec<&'static Command>) -> Registry {
        commands.sort_by_key(|c| c.name);
        let mut words: BTreeMap<&'static str, &'static Command> = BTreeMap::new();
        for &command in &commands {
            assert!(
                crate::envelope::valid_tag(command.name),
                "command name {:?} in {} is not a valid tag",
                command.name,
                command.module
            );
            for &word in std::iter::once(&command.name).chain(command.aliases) {
                if let Some(other) = words.insert(word, command) {
                    panic!(
                        "command word {word:?} is registered twice: by `{}` in {} and by `{}` in {}",
                        other.name, other.module, command.name, command.module
                    );
                }
            }
        }
        Registry { commands, words }
    }

    /// Every command, sorted by name.
    pub fn commands(&self) -> &[&'static Command] {
        &self.commands
    }

    /// The commands a user can type, sorted by name.
    pub fn shell_commands(&self) -> impl Iterator<Item = &'static Command> + '_ {
        self.commands.iter().copied().filter(|c| c.is_shell())
    }

    /// A shell word (name or alias).
    pub fn shell(&self, word: &str) -> Option<&'static Command> {
        self.words.get(word).copied().filter(|c| c.is_shell())
    }

    /// A wire tag (names only, never aliases).
    pub fn tag(&self, tag: &str) -> Result<&'static Command, EnvelopeError> {
        self.words
            .get(tag)
            .copied()
            .filter(|c| c.name == tag)
            .ok_or_else(|| EnvelopeError::UnknownCommand(tag.to_string()))
    }

    /// Every word a user can type: names and aliases, sorted.
    pub fn shell_words(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.words
            .iter()
            .filter(|(_, c)| c.is_shell())
            .map(|(w, _)| *w)
    }

    /// The typed word closest to `word`, for `did you mean ...?`.
    pub fn suggest(&self, word: &str) -> Option<&'static str> {
        self.shell_words()
            .map(|w| (edit_distance(word, w), w))
            .filter(|&(d, w)| d <= 2.max(w.len() / 3) && d < w.len())
            .min()
            .map(|(_, w)| w)
    }
}

/// Edit distance counting a swap of two neighbours as one edit (optimal
/// string alignment), since `lsit` for `list` is the commonest slip.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_shell(_: Client, _: Args) -> BoxFuture<'static, Result<(), CommandError>> {
        Box::pin(async { Ok(()) })
    }

    const fn command(
        name: &'static str,
        aliases: &'static [&'static str],
        module: &'static str,
    ) -> Command {
        Command {
            name,
            aliases,
            usage: name,
            summary: "test",
            examples: &[],
            args: &[],
            module,
            shell: Some(noop_shell),
            serve: None,
            on_push: None,
        }
    }

    static SIGNIN: Command = command("signin", &["login", "reg"], "mod_a");
    static LIST: Command = command("list", &[], "mod_b");
    static CLASH: Command = command("logon", &["login"], "mod_c");
    static PACKET: Command = Command {
        shell: None,
        ..command("message", &[], "mod_d")
    };

    #[test]
    fn lookup_by_name_and_alias() {
        let registry = Registry::build(vec![&SIGNIN, &LIST, &PACKET]);
        assert_eq!(registry.shell("login").unwrap().name, "signin");
        assert_eq!(registry.shell("list").unwrap().name, "list");
        assert!(
            registry.shell("message").is_none(),
            "packet types are not shell words"
        );
        assert_eq!(registry.tag("message").unwrap().name, "message");
        assert_eq!(
            registry.tag("login").unwrap_err(),
            EnvelopeError::UnknownCommand("login".into())
        );
        assert_eq!(registry.suggest("lsit"), Some("list"));
        assert_eq!(registry.suggest("signn"), Some("signin"));
        assert_eq!(registry.suggest("xyzzy"), None);
    }

    #[test]
    fn a_duplicate_word_panics_naming_both_modules() {
        let err = std::panic::catch_unwind(|| Registry::build(vec![&SIGNIN, &CLASH])).unwrap_err();
        let message = err.downcast_ref::<String>().unwrap();
        assert!(message.contains("\"login\""), "{message}");
        assert!(
            message.contains("mod_a") && message.contains("mod_c"),
            "{message}"
        );
    }
}

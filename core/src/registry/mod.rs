//! The registry: every shell command, subcommand and packet type is one
//! [`Command`] descriptor, and every event with a look of its own one
//! [`Event`] descriptor, each submitted with [`register!`](crate::register)
//! from its own module in `udpchat-commands` and gathered here once.
//!
//! The registry is the only place a name is mapped to code: the server's
//! and the client's dispatchers look wire tags, shell words and event
//! kinds up here. Handlers are written against typed packets
//! ([`crate::packet`]) through the traits [`Shell`], [`Serve`], [`OnPush`]
//! and [`Answer`]; the builder methods turn them into the plain function
//! pointers the registry holds, decoding bodies and encoding replies on
//! the way, so a handler never sees bytes.

mod command;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::OnceLock;

pub use command::*;

use crate::args::{self, Args};
use crate::envelope::EnvelopeError;
use crate::error::{Code, CommandError};
use crate::event::Event;
use crate::packet::op_of;

/// Submits a [`Command`] or [`Event`] descriptor to the registry, naming
/// the module it comes from (for the duplicate-name panic).
#[macro_export]
macro_rules! register {
    ($descriptor:expr) => {
        $crate::inventory::submit! { $descriptor.module(module_path!()) }
    };
}

/// Every registered command and event, indexed by name and alias.
#[derive(Debug)]
pub struct Registry {
    commands: Vec<&'static Command>,
    words: BTreeMap<&'static str, &'static Command>,
    /// Per command with subcommands: its subcommands by name and alias.
    subcommands: BTreeMap<&'static str, BTreeMap<&'static str, &'static Command>>,
    events: BTreeMap<&'static str, &'static Event>,
}

impl Registry {
    /// The registry of everything submitted to inventory, built on first use.
    ///
    /// # Panics
    /// When a descriptor breaks a rule of [`Registry::build`].
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            Registry::build(
                inventory::iter::<Command>.into_iter().collect(),
                inventory::iter::<Event>.into_iter().collect(),
            )
        })
    }

    /// Builds a registry from these descriptors.
    ///
    /// # Panics
    /// Naming the modules at fault: when two commands (or two subcommands
    /// of one command, or two events) share a word; when a name is not a
    /// valid tag; when a handler's packet type has another tag than its
    /// command's name (or, for a subcommand, than its parent's, with its
    /// name as the `op`); when a subcommand's parent is missing or does
    /// not take subcommands. A silent overwrite would route packets to the
    /// wrong handler.
    pub fn build(mut commands: Vec<&'static Command>, events: Vec<&'static Event>) -> Registry {
        commands.sort_by_key(|c| (c.parent, c.name));
        let mut words: BTreeMap<&'static str, &'static Command> = BTreeMap::new();
        let mut subcommands: BTreeMap<&'static str, BTreeMap<&'static str, &'static Command>> =
            BTreeMap::new();
        for &command in &commands {
            assert!(
                crate::envelope::valid_tag(command.name),
                "command name {:?} in {} is not a valid tag",
                command.name,
                command.module
            );
            for (tag, op, _) in command.wires() {
                let (want_tag, want_op) = match command.parent {
                    Some(parent) => (parent, Some(command.name)),
                    None => (command.name, None),
                };
                assert!(
                    tag == want_tag && op == want_op,
                    "`{}` in {} handles packets tagged {tag:?} (op {op:?}), not {want_tag:?} (op {want_op:?})",
                    command.words(),
                    command.module
                );
            }
            let index = match command.parent {
                Some(parent) => subcommands.entry(parent).or_default(),
                None => &mut words,
            };
            for &word in std::iter::once(&command.name).chain(command.aliases) {
                if let Some(other) = index.insert(word, command) {
                    panic!(
                        "command word {word:?} is registered twice: by `{}` in {} and by `{}` in {}",
                        other.words(),
                        other.module,
                        command.words(),
                        command.module
                    );
                }
            }
        }
        for (parent, children) in &subcommands {
            let child = children.values().next().expect("a parent has a subcommand");
            match words.get(parent) {
                Some(command) if command.has_subcommands => {}
                _ => panic!(
                    "`{}` in {} is a subcommand of {parent:?}, which is not a command that takes subcommands",
                    child.words(),
                    child.module
                ),
            }
        }
        let mut by_name: BTreeMap<&'static str, &'static Event> = BTreeMap::new();
        for event in events {
            if let Some(other) = by_name.insert(event.name, event) {
                panic!(
                    "event {:?} is registered twice: in {} and in {}",
                    event.name, other.module, event.module
                );
            }
        }
        commands.retain(|c| c.parent.is_none());
        Registry {
            commands,
            words,
            subcommands,
            events: by_name,
        }
    }

    /// Every command (not subcommands), sorted by name.
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

    /// The subcommands of `parent`, sorted by name (aliases left out).
    pub fn subcommands(&self, parent: &str) -> Vec<&'static Command> {
        self.subcommands
            .get(parent)
            .map(|children| by_name(children).collect())
            .unwrap_or_default()
    }

    /// A subcommand of `parent` by its word (name or alias).
    pub fn subcommand(&self, parent: &str, word: &str) -> Option<&'static Command> {
        self.subcommands.get(parent)?.get(word).copied()
    }

    /// Every command and subcommand.
    pub fn all(&self) -> impl Iterator<Item = &'static Command> + '_ {
        self.commands
            .iter()
            .copied()
            .chain(self.subcommands.values().flat_map(by_name))
    }

    /// A wire tag (names only, never aliases).
    pub fn tag(&self, tag: &str) -> Result<&'static Command, EnvelopeError> {
        self.words
            .get(tag)
            .copied()
            .filter(|c| c.name == tag)
            .ok_or_else(|| EnvelopeError::UnknownCommand(tag.to_string()))
    }

    /// Whether a push tagged `tag` is acknowledged in the turn it is read
    /// ([`Push::ACK_AT_ONCE`](crate::packet::Push::ACK_AT_ONCE)); a tag no
    /// push of this registry has is (it is refused, and nobody should
    /// send it again; only a push's descriptor says otherwise).
    pub fn ack_at_once(&self, tag: &str) -> bool {
        self.tag(tag).map_or(true, |c| c.ack_at_once)
    }

    /// Whether a client holds the acknowledgement of a push tagged `tag`
    /// until it is kept ([`Push::HELD_UNTIL_KEPT`](crate::packet::Push::HELD_UNTIL_KEPT));
    /// a tag no push of this registry has is, as every push was before
    /// any said otherwise (its reader drops it, and lets it go, at once).
    pub fn held_until_kept(&self, tag: &str) -> bool {
        self.tag(tag).map_or(true, |c| c.held_until_kept)
    }

    /// The command that handles a request tagged `tag` with this body: the
    /// tag's command, or for a command with subcommands, the one the
    /// body's `op` names.
    pub fn request(&self, tag: &str, body: &[u8]) -> Result<&'static Command, CommandError> {
        let command = self
            .tag(tag)
            .map_err(|_| CommandError::unknown_command(tag))?;
        if !command.has_subcommands {
            return Ok(command);
        }
        let op = op_of(body).ok_or_else(|| {
            CommandError::bad_request(format!("a {tag} request names no subcommand (op)"))
        })?;
        self.subcommands
            .get(tag)
            .and_then(|children| children.get(op.as_str()))
            .filter(|c| c.name == op)
            .copied()
            .ok_or_else(|| CommandError::unknown_command(&format!("{tag} {op}")))
    }

    /// The command a shell line runs and its checked arguments: the
    /// command word's command, or the subcommand named next.
    pub fn line(&self, line: &str) -> Option<Result<(&'static Command, Args), CommandError>> {
        let (word, rest) = args::split_command(line)?;
        Some(self.resolve(word, rest))
    }

    fn resolve(&self, word: &str, rest: &str) -> Result<(&'static Command, Args), CommandError> {
        let command = self.shell(word).ok_or_else(|| self.unknown_command(word))?;
        if !command.has_subcommands {
            return Ok((
                command,
                Args::checked(&command.words(), command.args, rest)?,
            ));
        }
        let list = || {
            let names: Vec<&str> = self
                .subcommands(command.name)
                .iter()
                .map(|c| c.name)
                .collect();
            format!("subcommands: {}", names.join(", "))
        };
        let Some((sub, rest)) = args::split_command(rest) else {
            return Err(CommandError::new(
                Code::Usage,
                format!("usage: {}; {}", command.usage(), list()),
            ));
        };
        let child = self.subcommand(command.name, sub).ok_or_else(|| {
            CommandError::new(
                Code::Usage,
                format!("unknown {} subcommand {sub:?}; {}", command.name, list()),
            )
        })?;
        Ok((child, Args::checked(&child.words(), child.args, rest)?))
    }

    /// Every word a user can type: names and aliases, sorted.
    pub fn shell_words(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.words
            .iter()
            .filter(|(_, c)| c.is_shell())
            .map(|(w, _)| *w)
    }

    /// The typed word closest to `word`, for `did you mean ...?`: the
    /// closest name or alias within a third of the typed word's length (one
    /// edit up to five letters, two up to eight: as rustc and cargo judge
    /// it), counting a swap of two neighbours as one edit (`lsit`) and
    /// ignoring case. `foo` is not close to `who`.
    pub fn suggest(&self, word: &str) -> Option<&'static str> {
        self.closest(word, |typed, _| typed.max(3) / 3)
    }

    /// The command `word` may be a mistyping of, judged generously: within
    /// a third of the command's length, two edits at least (`sign`,
    /// `sigup`). A password typed after it must not reach the shell's
    /// history, so this errs on the side of a match.
    pub fn mistyped(&self, word: &str) -> Option<&'static str> {
        self.closest(word, |_, command| {
            2.max(command / 3).min(command.saturating_sub(1))
        })
    }

    /// The closest typed word within `edits(typed length, word length)`
    /// (in characters), ignoring case, a swap of two neighbours one edit.
    fn closest(&self, word: &str, edits: impl Fn(usize, usize) -> usize) -> Option<&'static str> {
        let typed = word.to_lowercase();
        let length = typed.chars().count();
        self.shell_words()
            .map(|w| (strsim::osa_distance(&typed, w), w))
            .filter(|&(d, w)| d <= edits(length, w.chars().count()))
            .min()
            .map(|(_, w)| w)
    }

    /// `unknown command: foo`, with `did you mean ...?` when one is close.
    pub fn unknown_command(&self, word: &str) -> CommandError {
        let mut error = CommandError::unknown_command(word);
        match self.suggest(word) {
            Some(close) => error.message.push_str(&format!(" (did you mean {close}?)")),
            None => error.message.push_str(" (type help for the list)"),
        }
        error
    }

    /// The descriptor of an event kind, if it has one.
    pub fn event(&self, name: &str) -> Option<&'static Event> {
        self.events.get(name).copied()
    }

    /// Every event kind with a descriptor, sorted by name.
    pub fn events(&self) -> impl Iterator<Item = &'static Event> + '_ {
        self.events.values().copied()
    }

    /// Every type a handler decodes from the network (each once), for the
    /// fuzz targets, sorted by type name; with the tags that carry it.
    pub fn body_types(&self) -> Vec<(BodyType, Vec<&'static str>)> {
        let mut types: BTreeMap<&'static str, (BodyType, Vec<&'static str>)> = BTreeMap::new();
        for command in self.all() {
            for (tag, _, bodies) in command.wires() {
                for body in bodies {
                    let entry = types.entry((body.name)()).or_insert((*body, Vec::new()));
                    if !entry.1.contains(&tag) {
                        entry.1.push(tag);
                    }
                }
            }
        }
        types.into_values().collect()
    }
}

/// The commands of a word index, once each (by name, aliases left out).
fn by_name<'a>(
    words: &'a BTreeMap<&'static str, &'static Command>,
) -> impl Iterator<Item = &'static Command> + 'a {
    words
        .iter()
        .filter(|(word, c)| **word == c.name)
        .map(|(_, c)| *c)
}

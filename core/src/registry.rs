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

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::args::{self, Arg, Args};
use crate::context::{BoxFuture, Client, Origin, Reply, Sender, Server};
use crate::envelope::EnvelopeError;
use crate::error::{Code, CommandError};
use crate::event::Event;
use crate::packet::{decode_body, op_of, round_trips, Push, PushBody, Request};

/// Submits a [`Command`] or [`Event`] descriptor to the registry, naming
/// the module it comes from (for the duplicate-name panic).
#[macro_export]
macro_rules! register {
    ($descriptor:expr) => {
        $crate::inventory::submit! { $descriptor.module(module_path!()) }
    };
}

/// A shell command: what a typed line does on the client.
pub trait Shell: 'static {
    /// Runs the line; its arguments were checked against the declared
    /// ones before.
    fn run(client: Client, args: Args) -> impl Future<Output = Result<(), CommandError>> + Send;
}

/// A request the server answers.
pub trait Serve: Request {
    fn serve(
        server: Server,
        origin: Origin,
        body: Self::Body,
    ) -> impl Future<Output = Result<Self::Reply, CommandError>> + Send;
}

/// A request a client answers (from its server or another client).
pub trait Answer: Request {
    fn answer(
        client: Client,
        sender: Sender,
        body: Self::Body,
    ) -> impl Future<Output = Result<Self::Reply, CommandError>> + Send;
}

/// A push a client handles.
pub trait OnPush: Push {
    fn on_push(
        client: Client,
        sender: Sender,
        body: PushBody<Self>,
    ) -> impl Future<Output = Result<(), CommandError>> + Send;
}

/// A shell command that does nothing: for registries made in tests.
#[derive(Debug)]
pub struct NoOp;

impl Shell for NoOp {
    async fn run(_: Client, _: Args) -> Result<(), CommandError> {
        Ok(())
    }
}

/// Runs a shell line's command on the client.
pub type ShellFn = fn(Client, Args) -> BoxFuture<'static, Result<(), CommandError>>;
/// Answers a request on the server.
pub type ServeFn = fn(Server, Origin, Vec<u8>) -> BoxFuture<'static, Reply>;
/// Answers a request on a client.
pub type AnswerFn = fn(Client, Sender, Vec<u8>) -> BoxFuture<'static, Reply>;
/// Handles a packet pushed to the client (by the server or another client).
pub type PushFn = fn(Client, Sender, Vec<u8>) -> BoxFuture<'static, Result<(), CommandError>>;

/// A type that travels in a body, with the check the fuzz targets run on
/// it ([`round_trips`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyType {
    pub name: fn() -> &'static str,
    pub check: fn(&[u8]) -> bool,
}

impl BodyType {
    const fn of<T: Serialize + DeserializeOwned>() -> BodyType {
        BodyType {
            name: std::any::type_name::<T>,
            check: round_trips::<T>,
        }
    }
}

/// A handler and where its packets travel.
#[derive(Debug, Clone, Copy)]
pub struct Wired<F> {
    /// The wire tag.
    pub tag: &'static str,
    /// A subcommand's `op`.
    pub op: Option<&'static str>,
    pub run: F,
    /// The types its packets carry (a request's body and reply, a push's
    /// body).
    pub bodies: &'static [BodyType],
}

struct RequestTypes<R>(PhantomData<R>);
impl<R: Request> RequestTypes<R> {
    const ALL: &'static [BodyType] = &[BodyType::of::<R::Body>(), BodyType::of::<R::Reply>()];
}

struct PushTypes<P>(PhantomData<P>);
impl<P: Push> PushTypes<P> {
    const ALL: &'static [BodyType] = &[BodyType::of::<P::Body>()];
}

/// One shell command, subcommand or packet type.
#[derive(Debug)]
pub struct Command {
    /// The shell word, and the wire tag of the packets it handles (a
    /// subcommand's is its parent's, with this name as the `op`).
    pub name: &'static str,
    /// For a subcommand (`group create`), its command.
    pub parent: Option<&'static str>,
    /// Other shell words for it (`login` for `signin`).
    pub aliases: &'static [&'static str],
    /// One sentence for `help`.
    pub summary: &'static str,
    /// Its arguments: the usage line, the check of a typed line and
    /// completion come from these.
    pub args: &'static [Arg],
    /// Example lines for `help COMMAND`.
    pub examples: &'static [&'static str],
    /// `module_path!()` of the module that registered it.
    pub module: &'static str,
    /// It is typed with a subcommand (`group create ...`), each registered
    /// on its own with this command as its parent.
    pub has_subcommands: bool,
    /// The shell side, for commands a user types.
    pub shell: Option<ShellFn>,
    /// The server side, for requests the server answers.
    pub serve: Option<Wired<ServeFn>>,
    /// The client side, for requests a client answers.
    pub answer: Option<Wired<AnswerFn>>,
    /// The client side, for packets pushed to a client.
    pub on_push: Option<Wired<PushFn>>,
}

fn run_shell<S: Shell>(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(S::run(client, args))
}

fn run_serve<R: Serve>(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let body = decode_body::<R::Body>(&body)?;
        let reply = R::serve(server, origin, body).await?;
        Ok(crate::cbor::encode(&reply))
    })
}

fn run_answer<R: Answer>(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let body = decode_body::<R::Body>(&body)?;
        let reply = R::answer(client, sender, body).await?;
        Ok(crate::cbor::encode(&reply))
    })
}

/// The one check of who may push what: a push only the server may send is
/// refused from anyone else, and the user told once, before its handler
/// runs.
fn run_on_push<P: OnPush>(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        if P::SERVER_ONLY && !sender.from_server {
            return Err(not_from_the_server(P::TAG, &sender));
        }
        let body = decode_body::<PushBody<P>>(&body)?;
        P::on_push(client, sender, body).await
    })
}

/// What a client says of a push only its server may send that came from
/// elsewhere.
pub fn not_from_the_server(tag: &str, sender: &Sender) -> CommandError {
    CommandError::new(
        Code::Unverified,
        format!(
            "dropped a {tag} packet from {} that did not come from the server",
            sender.addr
        ),
    )
}

impl Command {
    /// A command or packet type named `name` (a shell word and wire tag),
    /// with one sentence for `help`.
    pub const fn new(name: &'static str, summary: &'static str) -> Command {
        Command {
            name,
            parent: None,
            aliases: &[],
            summary,
            args: &[],
            examples: &[],
            module: "",
            has_subcommands: false,
            shell: None,
            serve: None,
            answer: None,
            on_push: None,
        }
    }

    /// A subcommand of `parent` (`group`), typed `parent name ...`.
    pub const fn sub(parent: &'static str, name: &'static str, summary: &'static str) -> Command {
        Command {
            parent: Some(parent),
            ..Command::new(name, summary)
        }
    }

    /// Set by [`register!`](crate::register).
    pub const fn module(self, module: &'static str) -> Command {
        Command { module, ..self }
    }

    pub const fn aliases(self, aliases: &'static [&'static str]) -> Command {
        Command { aliases, ..self }
    }

    pub const fn args(self, args: &'static [Arg]) -> Command {
        Command { args, ..self }
    }

    pub const fn examples(self, examples: &'static [&'static str]) -> Command {
        Command { examples, ..self }
    }

    /// It is typed with a subcommand, each registered on its own.
    pub const fn subcommands(self) -> Command {
        Command {
            has_subcommands: true,
            ..self
        }
    }

    /// What a typed line does: `S::run`.
    pub const fn shell<S: Shell>(self) -> Command {
        Command {
            shell: Some(run_shell::<S>),
            ..self
        }
    }

    /// How the server answers an `R`: `R::serve`.
    pub const fn serve<R: Serve>(self) -> Command {
        Command {
            serve: Some(Wired {
                tag: R::TAG,
                op: R::OP,
                run: run_serve::<R>,
                bodies: RequestTypes::<R>::ALL,
            }),
            ..self
        }
    }

    /// How a client answers an `R`: `R::answer`.
    pub const fn answer<R: Answer>(self) -> Command {
        Command {
            answer: Some(Wired {
                tag: R::TAG,
                op: R::OP,
                run: run_answer::<R>,
                bodies: RequestTypes::<R>::ALL,
            }),
            ..self
        }
    }

    /// How a client handles a `P` pushed to it: `P::on_push`.
    pub const fn on_push<P: OnPush>(self) -> Command {
        Command {
            on_push: Some(Wired {
                tag: P::TAG,
                op: None,
                run: run_on_push::<P>,
                bodies: PushTypes::<P>::ALL,
            }),
            ..self
        }
    }

    /// Whether a user can type it (packet types are hidden).
    pub fn is_shell(&self) -> bool {
        self.shell.is_some() || self.has_subcommands
    }

    /// The words that type it: `send`, `group create`.
    pub fn words(&self) -> String {
        match self.parent {
            Some(parent) => format!("{parent} {}", self.name),
            None => self.name.to_string(),
        }
    }

    /// Its usage line, from its declared arguments.
    pub fn usage(&self) -> String {
        if self.has_subcommands {
            return format!("{} <subcommand> ...", self.name);
        }
        args::usage(&self.words(), self.args)
    }

    /// Every wired handler: the tags and body types it takes.
    fn wires(
        &self,
    ) -> impl Iterator<Item = (&'static str, Option<&'static str>, &'static [BodyType])> {
        let serve = self.serve.map(|w| (w.tag, w.op, w.bodies));
        let answer = self.answer.map(|w| (w.tag, w.op, w.bodies));
        let push = self.on_push.map(|w| (w.tag, w.op, w.bodies));
        serve.into_iter().chain(answer).chain(push)
    }
}

inventory::collect!(Command);

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
            .map(|children| {
                children
                    .iter()
                    .filter(|(word, c)| **word == c.name)
                    .map(|(_, c)| *c)
                    .collect()
            })
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
            .chain(self.subcommands.values().flat_map(|children| {
                children
                    .iter()
                    .filter(|(word, c)| **word == c.name)
                    .map(|(_, c)| *c)
            }))
    }

    /// A wire tag (names only, never aliases).
    pub fn tag(&self, tag: &str) -> Result<&'static Command, EnvelopeError> {
        self.words
            .get(tag)
            .copied()
            .filter(|c| c.name == tag)
            .ok_or_else(|| EnvelopeError::UnknownCommand(tag.to_string()))
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
    /// closest name or alias within a third of its length (at least 2
    /// edits), counting a swap of two neighbours as one edit (`lsit`).
    pub fn suggest(&self, word: &str) -> Option<&'static str> {
        self.shell_words()
            .map(|w| (strsim::osa_distance(word, w), w))
            .filter(|&(d, w)| d <= 2.max(w.len() / 3) && d < w.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::ArgKind;
    use crate::packet::Packet;

    struct Message;
    impl Packet for Message {
        const TAG: &'static str = "message";
    }
    impl Push for Message {
        const SERVER_ONLY: bool = false;
        type Body = String;
    }
    impl OnPush for Message {
        async fn on_push(_: Client, _: Sender, _: String) -> Result<(), CommandError> {
            Ok(())
        }
    }

    struct Create;
    impl Packet for Create {
        const TAG: &'static str = "group";
    }
    impl Request for Create {
        const OP: Option<&'static str> = Some("create");
        type Body = (String,);
        type Reply = ();
    }
    impl Serve for Create {
        async fn serve(_: Server, _: Origin, _: (String,)) -> Result<(), CommandError> {
            Ok(())
        }
    }

    const fn command(
        name: &'static str,
        aliases: &'static [&'static str],
        module: &'static str,
    ) -> Command {
        Command::new(name, "test")
            .aliases(aliases)
            .module(module)
            .shell::<NoOp>()
    }

    static SIGNIN: Command = command("signin", &["login", "reg"], "mod_a");
    static LIST: Command =
        command("list", &[], "mod_b").args(&[Arg::optional("prefix", ArgKind::User)]);
    static CLASH: Command = command("logon", &["login"], "mod_c");
    static PACKET: Command = Command::new("message", "test")
        .module("mod_d")
        .on_push::<Message>();
    static MISTAGGED: Command = Command::new("note", "test")
        .module("mod_e")
        .on_push::<Message>();
    static GROUP: Command = Command::new("group", "Group chat")
        .module("mod_f")
        .subcommands();
    static GROUP_CREATE: Command = Command::sub("group", "create", "Make a group")
        .module("mod_g")
        .args(&[
            Arg::one("group", ArgKind::Group),
            Arg::any("user", ArgKind::User),
        ])
        .shell::<NoOp>()
        .serve::<Create>();
    static ORPHAN: Command = Command::sub("list", "all", "test")
        .module("mod_h")
        .shell::<NoOp>();

    fn registry(commands: Vec<&'static Command>) -> Registry {
        Registry::build(commands, Vec::new())
    }

    fn panic_message(build: impl FnOnce() -> Registry + std::panic::UnwindSafe) -> String {
        let err = std::panic::catch_unwind(build).unwrap_err();
        err.downcast_ref::<String>().unwrap().clone()
    }

    #[test]
    fn lookup_by_name_and_alias() {
        let registry = registry(vec![&SIGNIN, &LIST, &PACKET]);
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
        let message = panic_message(|| registry(vec![&SIGNIN, &CLASH]));
        assert!(message.contains("\"login\""), "{message}");
        assert!(
            message.contains("mod_a") && message.contains("mod_c"),
            "{message}"
        );
    }

    #[test]
    fn a_handler_for_another_tag_panics_naming_its_module() {
        let message = panic_message(|| registry(vec![&MISTAGGED]));
        assert!(
            message.contains("mod_e") && message.contains("\"message\""),
            "{message}"
        );
    }

    #[test]
    fn a_subcommand_needs_a_parent_that_takes_subcommands() {
        let message = panic_message(|| registry(vec![&LIST, &ORPHAN]));
        assert!(
            message.contains("mod_h") && message.contains("list all"),
            "{message}"
        );
    }

    #[test]
    fn a_line_reaches_its_subcommand_and_a_request_its_op() {
        let registry = registry(vec![&GROUP, &GROUP_CREATE, &LIST]);
        let (command, args) = registry.line("group create devs bob").unwrap().unwrap();
        assert_eq!(command.words(), "group create");
        assert_eq!(args.words_from(0), ["devs", "bob"]);
        assert_eq!(command.usage(), "group create <group> [user...]");
        assert_eq!(GROUP.usage(), "group <subcommand> ...");
        let unknown = registry.line("group frobnicate x").unwrap().unwrap_err();
        assert_eq!(unknown.code, Code::Usage);
        assert_eq!(
            unknown.message,
            "unknown group subcommand \"frobnicate\"; subcommands: create"
        );
        let bare = registry.line("group").unwrap().unwrap_err();
        assert_eq!(
            bare.message,
            "usage: group <subcommand> ...; subcommands: create"
        );
        let short = registry.line("group create").unwrap().unwrap_err();
        assert_eq!(short.message, "usage: group create <group> [user...]");
        assert!(registry.line("   ").is_none());
        assert_eq!(
            registry.line("lsit").unwrap().unwrap_err().message,
            "unknown command: lsit (did you mean list?)"
        );

        let body = crate::packet::Encoded::request::<Create>(&("devs".to_string(),));
        assert_eq!(body.tag(), "group");
        let served = registry.request("group", body.body()).unwrap();
        assert_eq!(served.words(), "group create");
        #[derive(serde::Serialize)]
        struct Op {
            op: &'static str,
        }
        let other = crate::cbor::encode(&Op { op: "rename" });
        assert_eq!(
            registry.request("group", &other).unwrap_err().code,
            Code::UnknownCommand
        );
        assert_eq!(
            registry
                .request("group", &crate::cbor::encode(&1))
                .unwrap_err()
                .code,
            Code::BadRequest
        );
    }

    #[test]
    fn every_body_type_is_listed_once_with_its_tags() {
        let registry = registry(vec![&GROUP, &GROUP_CREATE, &PACKET]);
        let types: Vec<(String, Vec<&str>)> = registry
            .body_types()
            .into_iter()
            .map(|(t, tags)| ((t.name)().to_string(), tags))
            .collect();
        assert_eq!(
            types,
            [
                ("()".to_string(), vec!["group"]),
                ("(alloc::string::String,)".to_string(), vec!["group"]),
                ("alloc::string::String".to_string(), vec!["message"]),
            ]
        );
    }
}

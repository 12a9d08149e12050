//! A command's descriptor and how it is built: the typed handler traits
//! ([`Shell`], [`Serve`], [`Answer`], [`OnPush`]), the builder that turns
//! them into the plain function pointers the registry holds (decoding
//! bodies before a handler and encoding its reply after), and the one
//! check of who may push what.

use std::future::Future;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::args::{self, Arg, Args};
use crate::context::{BoxFuture, Client, Origin, Reply, Sender, Server};
use crate::error::{Code, CommandError};
use crate::packet::{decode_body, round_trips, Push, PushBody, Request};

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
    /// For a push: whether it is acknowledged in the turn it is read
    /// ([`Push::ACK_AT_ONCE`](crate::packet::Push::ACK_AT_ONCE)).
    pub ack_at_once: bool,
    /// For a push: whether a client holds its acknowledgement until kept
    /// ([`Push::HELD_UNTIL_KEPT`](crate::packet::Push::HELD_UNTIL_KEPT)).
    pub held_until_kept: bool,
}

fn run_shell<S: Shell>(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(S::run(client, args))
}

/// A request's body decoded, its handler run, its reply encoded: how the
/// server's and a client's answers are made alike.
async fn answered<R: Request, F>(body: Vec<u8>, handle: impl FnOnce(R::Body) -> F) -> Reply
where
    F: Future<Output = Result<R::Reply, CommandError>>,
{
    let body = decode_body::<R::Body>(&body)?;
    Ok(crate::cbor::encode(&handle(body).await?))
}

fn run_serve<R: Serve>(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(answered::<R, _>(body, move |body| {
        R::serve(server, origin, body)
    }))
}

fn run_answer<R: Answer>(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Reply> {
    Box::pin(answered::<R, _>(body, move |body| {
        R::answer(client, sender, body)
    }))
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
            ack_at_once: true,
            held_until_kept: true,
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
            ack_at_once: P::ACK_AT_ONCE,
            held_until_kept: P::HELD_UNTIL_KEPT,
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
    pub(super) fn wires(
        &self,
    ) -> impl Iterator<Item = (&'static str, Option<&'static str>, &'static [BodyType])> {
        let serve = self.serve.map(|w| (w.tag, w.op, w.bodies));
        let answer = self.answer.map(|w| (w.tag, w.op, w.bodies));
        let push = self.on_push.map(|w| (w.tag, w.op, w.bodies));
        serve.into_iter().chain(answer).chain(push)
    }
}

inventory::collect!(Command);

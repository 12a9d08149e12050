//! The registry's rules, on descriptors made here: lookups by word and
//! tag, the panics that name the modules at fault, subcommands and their
//! `op`, the body types the fuzz targets take.

use super::*;
use crate::args::{Arg, ArgKind};
use crate::context::{Client, Origin, Sender, Server};
use crate::packet::{Packet, Push, Request};

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
    for (typed, close) in [
        ("LIST", Some("list")),
        ("lst", Some("list")),
        ("foo", None),
        ("x", None),
    ] {
        assert_eq!(registry.suggest(typed), close, "{typed}");
    }
    assert_eq!(
        registry.line("foo").unwrap().unwrap_err().message,
        "unknown command: foo (type help for the list)"
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

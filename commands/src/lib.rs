//! Every shell command, subcommand and packet type of udpchat, one module
//! each. Each module declares its packet types ([`udpchat_core::packet`]),
//! implements its handlers, and registers one
//! [`Command`](udpchat_core::registry::Command) descriptor (and any
//! [`Event`](udpchat_core::event::Event) with a look of its own) with
//! [`register!`](udpchat_core::register); nothing else lists them. See
//! CONTRIBUTING.md for how to add one.
#![forbid(unsafe_code)]

use udpchat_core::context::{Origin, Server};
use udpchat_core::error::CommandError;

pub mod bundle;
pub mod chat;
pub mod connect;
pub mod deposit;
pub mod exit;
pub mod going_down;
pub mod group;
pub mod group_message;
pub mod group_messages;
pub mod groups;
pub mod gsend;
pub mod help;
pub mod history;
pub mod leave;
pub mod list;
pub mod logout;
pub mod lookup;
pub mod mail_status;
pub mod message;
pub mod peers;
pub mod ping;
pub mod prekeys;
pub mod presence;
pub mod private;
pub mod punch;
pub mod receipt;
pub mod search;
pub mod send;
pub mod signin;
pub mod signup;
pub mod stored;
pub mod unread;
pub mod whois;

/// The longest message text, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;

/// Makes sure the linker keeps this crate, and with it every command's
/// inventory submission: the binaries call it once at start.
pub fn link() {}

/// The name signed in at the request's origin, or `not-signed-in`.
pub(crate) fn signed_in_user(server: &Server, origin: Origin) -> Result<String, CommandError> {
    server
        .user_at(origin.peer)
        .ok_or_else(CommandError::not_signed_in)
}

/// The client asking (`origin`) hears from now on when `user` comes or
/// goes, even on a server too busy to tell everyone (see
/// `udpchat_core::presence`). Called by the requests that show interest
/// in someone: looking them up, checking their key, writing to them.
/// False when it already watches as many as it may.
pub(crate) fn watch(server: &Server, origin: Origin, user: &str) -> bool {
    server.presence().lock().watch(origin.peer, user)
}

#[cfg(test)]
mod tests {
    use udpchat_core::registry::{Command, Registry};

    /// One line per command and subcommand: how it is typed (its usage
    /// line, for a shell command) or its name (a packet type), then what
    /// handles it: `shell`, `serve` (the server answers its requests),
    /// `answer` (a client does), `push` (a client takes it pushed, and
    /// acknowledges it at once), `push(ack-held)` (the acknowledgement may
    /// wait for the next packet).
    fn line(command: &Command) -> String {
        let typed = if command.is_shell() {
            command.usage()
        } else {
            command.name.to_string()
        };
        let sides: Vec<&str> = [
            (command.shell.is_some(), "shell"),
            (command.serve.is_some(), "serve"),
            (command.answer.is_some(), "answer"),
            (
                command.on_push.is_some(),
                if command.ack_at_once {
                    "push"
                } else {
                    "push(ack-held)"
                },
            ),
        ]
        .iter()
        .filter(|(has, _)| *has)
        .map(|(_, side)| *side)
        .collect();
        format!("{typed}: {}", sides.join(" "))
            .trim_end()
            .to_string()
    }

    /// The registry holds exactly these: a command cannot vanish, nor its
    /// usage line change, unnoticed. Adding one adds its line here.
    #[test]
    fn the_registry_holds_exactly_these_commands() {
        let registry = Registry::global();
        let lines: Vec<String> = registry.all().map(line).collect();
        assert_eq!(
            lines,
            [
                "bundle: serve",
                "chat <user|group>: shell",
                "connect <ip> <port>: shell",
                "deposit: serve",
                "exit: shell",
                "going-down: push",
                "group <subcommand> ...:",
                "group-message: push(ack-held)",
                "group-messages: push(ack-held)",
                "groups: shell serve push",
                "gsend <group> <message...>: shell serve",
                "help [command]: shell",
                "history <user|group> [N]: shell",
                "leave: shell",
                "list [prefix]: shell serve",
                "logout: shell serve",
                "lookup: serve",
                "mail-status: push",
                "message: push",
                "peers: shell",
                "ping: serve push",
                "prekeys: serve push",
                "presence: push(ack-held)",
                "punch: push",
                "receipt: serve",
                "search <words...>: shell",
                "send <user> <message...>: shell",
                "signin <user> [password]: shell serve",
                "signup <user> [password]: shell serve",
                "stored: push",
                "unread: shell",
                "whois: serve",
                "group add <group> <user...>: shell serve",
                "group create <group> [--open] [--plain] [user...]: shell serve",
                "group history <group> [N]: shell serve",
                "group join <group>: shell serve",
                "group leave <group>: shell serve",
                "group members <group>: shell serve",
                "group remove <group> <user...>: shell serve",
                "group send <group> <message...>: shell",
            ]
        );
    }

    #[test]
    fn the_seed_aliases_resolve() {
        let registry = Registry::global();
        for (alias, name) in [
            ("login", "signin"),
            ("reg", "signin"),
            ("msg", "send"),
            ("signout", "logout"),
            ("dereg", "logout"),
        ] {
            assert_eq!(registry.shell(alias).map(|c| c.name), Some(name), "{alias}");
        }
    }

    #[test]
    fn did_you_mean_suggests_only_close_words() {
        let registry = Registry::global();
        for (typed, close) in [
            ("lsit", Some("list")),
            ("hisotry", Some("history")),
            ("sedn", Some("send")),
            ("Unread", Some("unread")),
            ("foo", None),
            ("fo", None),
            ("sign", None),
        ] {
            assert_eq!(registry.suggest(typed), close, "{typed}");
        }
        assert_eq!(
            registry.unknown_command("foo").message,
            "unknown command: foo (type help for the list)"
        );
    }

    #[test]
    fn every_command_is_documented_and_handled_somewhere() {
        for command in Registry::global().all() {
            assert!(
                !command.summary.is_empty(),
                "{} has no summary",
                command.words()
            );
            assert!(
                command.is_shell()
                    || command.serve.is_some()
                    || command.on_push.is_some()
                    || command.answer.is_some(),
                "{} has no handler",
                command.words()
            );
        }
    }
}

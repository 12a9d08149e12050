//! Every shell command and packet type of udpchat, one module each. Each
//! module submits one [`Command`](udpchat_core::registry::Command)
//! descriptor to the registry with `inventory::submit!`; nothing else lists
//! them. See CONTRIBUTING.md for how to add one.
#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;
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
pub mod groups;
pub mod gsend;
pub mod help;
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
pub mod punch;
pub mod receipt;
pub mod send;
pub mod signin;
pub mod signup;
pub mod stored;
pub mod whois;

/// The longest message text, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;

/// Makes sure the linker keeps this crate, and with it every command's
/// inventory submission: the binaries call it once at start.
pub fn link() {}

/// Decodes a request or reply body, mapping failure to `bad-request`.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, CommandError> {
    udpchat_core::cbor::decode_body(body).map_err(CommandError::bad_request)
}

/// Decodes the body of a packet only the server may push: `None` (and the
/// packet ignored) when another client sent it.
pub(crate) fn from_server<T: DeserializeOwned>(
    sender: &udpchat_core::context::Sender,
    body: &[u8],
) -> Result<Option<T>, CommandError> {
    if !sender.from_server {
        return Ok(None);
    }
    decode(body).map(Some)
}

/// The name signed in at the request's origin, or `not-signed-in`.
pub(crate) fn signed_in_user(server: &Server, origin: Origin) -> Result<String, CommandError> {
    let presence = server.presence().lock().expect("presence lock");
    presence
        .user_at(origin.peer)
        .map(str::to_string)
        .ok_or_else(CommandError::not_signed_in)
}

/// The client asking (`origin`) hears from now on when `user` comes or
/// goes, even on a server too busy to tell everyone (see
/// `udpchat_core::presence`). Called by the requests that show interest
/// in someone: looking them up, checking their key, writing to them.
pub(crate) fn watch(server: &Server, origin: Origin, user: &str) {
    server
        .presence()
        .lock()
        .expect("presence lock")
        .watch(origin.peer, user);
}

/// `unknown command: foo`, with `did you mean ...?` when one is close.
pub fn unknown_command(registry: &udpchat_core::registry::Registry, word: &str) -> CommandError {
    let mut error = CommandError::unknown_command(word);
    match registry.suggest(word) {
        Some(close) => error.message.push_str(&format!(" (did you mean {close}?)")),
        None => error.message.push_str(" (type help for the list)"),
    }
    error
}

#[cfg(test)]
mod tests {
    use udpchat_core::registry::Registry;

    #[test]
    fn the_registry_holds_exactly_these_commands() {
        let names: Vec<&str> = Registry::global()
            .commands()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "bundle",
                "chat",
                "connect",
                "deposit",
                "exit",
                "going-down",
                "group",
                "group-message",
                "groups",
                "gsend",
                "help",
                "leave",
                "list",
                "logout",
                "lookup",
                "mail-status",
                "message",
                "peers",
                "ping",
                "prekeys",
                "presence",
                "punch",
                "receipt",
                "send",
                "signin",
                "signup",
                "stored",
                "whois",
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
    fn every_command_is_documented_and_handled_somewhere() {
        for command in Registry::global().commands() {
            assert!(
                !command.summary.is_empty(),
                "{} has no summary",
                command.name
            );
            assert!(
                command.usage.starts_with(command.name),
                "{}'s usage must start with its name",
                command.name
            );
            assert!(
                command.shell.is_some() || command.serve.is_some() || command.on_push.is_some(),
                "{} has no handler",
                command.name
            );
        }
    }
}

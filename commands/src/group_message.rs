//! `group-message` (packet): a group's message, pushed by the server to
//! each member: `[group1] <bob>: hello everyone`. The body is a
//! `udpchat_core::group::GroupMessage`. Only the server this client is
//! signed in to may push one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use udpchat_core::context::{BoxFuture, Client, Sender};
use udpchat_core::error::{code, CommandError};
use udpchat_core::group::GroupMessage;
use udpchat_core::names::{check_group_name, check_user_name};
use udpchat_core::output::{continued, Output};
use udpchat_core::registry::Command;

use crate::message::check_text;

inventory::submit! {
    Command {
        name: "group-message",
        aliases: &[],
        usage: "group-message",
        summary: "A group's message, from the server.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: None,
        on_push: Some(on_push),
    }
}

fn on_push(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        if !sender.from_server {
            return Err(CommandError::new(
                code::UNVERIFIED,
                "dropped a group message that did not come from the server",
            ));
        }
        let message: GroupMessage = crate::decode(&body)?;
        check_group_name(&message.group)?;
        check_user_name(&message.from)?;
        check_text(&message.text)?;
        let (server, user) = {
            let session = client.session().lock().expect("session lock");
            (session.server, session.user.clone().unwrap_or_default())
        };
        if first_showing(server, &user, &message) {
            client.emit(render(&message));
        }
        Ok(())
    })
}

/// Whether `message` is newer than the last one shown from its group.
/// The server delivers each message once, in order; a message comes again
/// only if the server lost track of an acknowledgement (it crashed just
/// after one), and sequence numbers are never reused, so the last number
/// shown per group is all it takes to show each message once. Commands
/// keep no state of their own but this: the client process is one client.
fn first_showing(server: SocketAddr, user: &str, message: &GroupMessage) -> bool {
    type Key = (SocketAddr, String, String);
    static SHOWN: Mutex<Option<HashMap<Key, u64>>> = Mutex::new(None);
    let mut shown = SHOWN.lock().expect("shown lock");
    let last = shown
        .get_or_insert_with(HashMap::new)
        .entry((server, user.to_string(), message.group.clone()))
        .or_insert(0);
    if message.seq <= *last {
        return false;
    }
    *last = message.seq;
    true
}

/// `[group1] <bob>: hello everyone`
pub fn line(message: &GroupMessage) -> String {
    format!(
        "[{}] <{}>: {}",
        message.group,
        message.from,
        continued(&message.text)
    )
}

fn render(message: &GroupMessage) -> Output {
    Output::new("group-message", line(message))
        .with("group", message.group.clone())
        .with("from", message.from.clone())
        .with("text", message.text.clone())
        .with("seq", message.seq)
        .with("time", message.time_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64) -> GroupMessage {
        GroupMessage {
            group: "group1".into(),
            seq,
            from: "bob".into(),
            text: "hello everyone".into(),
            time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn renders_as_the_seed_shows() {
        let out = render(&message(4));
        assert_eq!(out.text, "[group1] <bob>: hello everyone");
        assert_eq!(
            out.to_json(),
            r#"{"event":"group-message","group":"group1","from":"bob","text":"hello everyone","seq":4,"time":1700000000000}"#
        );
    }

    #[test]
    fn a_message_shown_once_is_not_shown_again() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(first_showing(server, "carol", &message(5)));
        assert!(!first_showing(server, "carol", &message(5)));
        assert!(!first_showing(server, "carol", &message(3)));
        assert!(first_showing(server, "carol", &message(6)));
        assert!(first_showing(server, "dave", &message(5)), "per user");
    }
}

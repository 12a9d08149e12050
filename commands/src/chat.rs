//! `chat <user|group>`: conversation mode, as in the seeds where a user
//! picks one-to-one or group chat and then just types. This command only
//! records whom the conversation is with (in the client's session); the
//! shell turns every plain line typed after it into a message to them, runs
//! lines starting with `/` as commands, and `leave` ends it.

use udpchat_core::args::Args;
use udpchat_core::context::{BoxFuture, Client};
use udpchat_core::error::{code, CommandError};
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;
use udpchat_core::registry::{ArgKind, Command};

const USAGE: &str = "chat <user|group>";

inventory::submit! {
    Command {
        name: "chat",
        aliases: &["talk"],
        usage: USAGE,
        summary: "Talk to a user or group: plain lines go to them (/leave ends it).",
        examples: &["chat bob", "chat group1"],
        args: &[ArgKind::UserOrGroup],
        module: module_path!(),
        shell: Some(shell),
        serve: None,
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        args.at_most(1, USAGE)?;
        let with = args.required(0, USAGE)?.to_string();
        // Group names follow the user-name rules too.
        check_user_name(&with)?;
        let me = client.user()?;
        if with == me {
            return Err(CommandError::new(
                code::USAGE,
                "you cannot chat with yourself",
            ));
        }
        client.session().lock().expect("session lock").conversation = Some(with.clone());
        client.emit(started(&with));
        Ok(())
    })
}

fn started(with: &str) -> Output {
    Output::new(
        "conversation",
        format!("Talking to {with}: type to send, /leave to stop, /help for commands"),
    )
    .with("with", with)
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::registry::Registry;

    #[test]
    fn says_whom_the_conversation_is_with() {
        let out = started("bob");
        assert_eq!(
            out.text,
            "Talking to bob: type to send, /leave to stop, /help for commands"
        );
        assert_eq!(out.to_json(), r#"{"event":"conversation","with":"bob"}"#);
    }

    #[test]
    fn help_page_snapshot() {
        assert_eq!(
            crate::help::page(Registry::global().shell("talk").unwrap()),
            "usage: chat <user|group>\n\
             Talk to a user or group: plain lines go to them (/leave ends it).\n\
             aliases: talk\n\
             examples:\n  chat bob\n  chat group1"
        );
    }
}

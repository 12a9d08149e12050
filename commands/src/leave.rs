//! `leave`: ends conversation mode (see `chat`), back to the command prompt.
//! Inside a conversation it is typed `/leave`, like every command there;
//! Ctrl-D does the same.

use udpchat_core::args::Args;
use udpchat_core::context::{BoxFuture, Client};
use udpchat_core::error::{code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

const USAGE: &str = "leave";

inventory::submit! {
    Command {
        name: "leave",
        aliases: &[],
        usage: USAGE,
        summary: "End a conversation started with chat, back to the command prompt.",
        examples: &["/leave"],
        args: &[],
        module: module_path!(),
        shell: Some(shell),
        serve: None,
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        args.at_most(0, USAGE)?;
        let with = client
            .session()
            .lock()
            .expect("session lock")
            .conversation
            .take();
        match with {
            Some(with) => {
                client.emit(ended(&with));
                Ok(())
            }
            None => Err(CommandError::new(
                code::USAGE,
                "not in a conversation (start one with `chat USER`)",
            )),
        }
    })
}

fn ended(with: &str) -> Output {
    Output::new("conversation", format!("Left the conversation with {with}"))
        .with("with", serde_json::Value::Null)
        .with("left", with)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_whom_it_left() {
        let out = ended("bob");
        assert_eq!(out.text, "Left the conversation with bob");
        assert_eq!(
            out.to_json(),
            r#"{"event":"conversation","with":null,"left":"bob"}"#
        );
    }
}

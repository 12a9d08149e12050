//! `leave`: ends conversation mode (see `chat`), back to the command prompt.
//! Inside a conversation it is typed `/leave`, like every command there;
//! Ctrl-D does the same.

use udpchat_core::args::Args;
use udpchat_core::context::Client;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

/// `leave`: the shell command.
pub struct Leave;

register! {
    Command::new("leave", "End a conversation started with chat, back to the command prompt.")
        .examples(&["/leave"])
        .shell::<Leave>()
}

impl Shell for Leave {
    async fn run(client: Client, _: Args) -> Result<(), CommandError> {
        let with = client.session().lock().conversation.take();
        match with {
            Some(with) => {
                client.emit(ended(&with));
                Ok(())
            }
            None => Err(CommandError::new(
                Code::Usage,
                "not in a conversation (start one with `chat USER`)",
            )),
        }
    }
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

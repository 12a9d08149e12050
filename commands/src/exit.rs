//! `exit` (`quit`): signs out, then leaves the client.

use udpchat_core::args::Args;
use udpchat_core::context::Client;
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

/// `exit`: the shell command.
pub struct Exit;

register! {
    Command::new("exit", "Sign out and leave.")
        .aliases(&["quit"])
        .examples(&["exit"])
        .shell::<Exit>()
}

impl Shell for Exit {
    async fn run(client: Client, _: Args) -> Result<(), CommandError> {
        // Leaving must work even when the server is gone.
        let signed_out = crate::logout::sign_out(&client).await;
        client.quit();
        client.emit(Output::new("exit", "Goodbye"));
        signed_out
    }
}

//! `exit` (`quit`): signs out, then leaves the client.

use udpchat_core::args::Args;
use udpchat_core::context::{BoxFuture, Client};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

const USAGE: &str = "exit";

inventory::submit! {
    Command {
        name: "exit",
        aliases: &["quit"],
        usage: USAGE,
        summary: "Sign out and leave.",
        examples: &["exit"],
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
        // Leaving must work even when the server is gone.
        let signed_out = crate::logout::sign_out(&client).await;
        client.quit();
        client.emit(Output::new("exit", "Goodbye"));
        signed_out
    })
}

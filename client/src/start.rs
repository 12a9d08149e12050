//! Signing up or in at start (`-u USER [-p PASSWORD | --password-stdin]
//! [--signup]`), through the same code as the typed commands.

use udpchat_commands::signin::{self, How};
use udpchat_core::context::{Client, Zeroizing};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;

use crate::state::InputLines;

/// The first line of stdin, as a password.
pub async fn password_line(lines: &InputLines) -> anyhow::Result<Zeroizing<String>> {
    match lines.lock().await.next_line().await? {
        Some(line) if !line.is_empty() => Ok(Zeroizing::new(line)),
        _ => anyhow::bail!("--password-stdin: no password on the first line of stdin"),
    }
}

/// Signs `user` up or in; an error is shown like any command's, and
/// given back.
pub async fn sign_in(
    client: &Client,
    user: &str,
    password: Option<Zeroizing<String>>,
    signup: bool,
) -> Result<(), CommandError> {
    let how = if signup { How::SignUp } else { How::SignIn };
    let signed_in = signin::sign_in(client, how, user, password).await;
    if let Err(e) = &signed_in {
        client.emit(Output::error(e));
    }
    signed_in
}

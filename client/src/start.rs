//! Signing up or in at start (`-u USER [-p PASSWORD | --password-stdin]
//! [--signup]`), through the same code as the typed commands.

use udpchat_commands::signin::{sign_in as send_credentials, Credentials};
use udpchat_core::context::{Client, Zeroizing};
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;

use crate::state::InputLines;

/// The first line of stdin, as a password.
pub async fn password_line(lines: &InputLines) -> anyhow::Result<Zeroizing<String>> {
    match lines.lock().await.next_line().await? {
        Some(line) if !line.is_empty() => Ok(Zeroizing::new(line)),
        _ => anyhow::bail!("--password-stdin: no password on the first line of stdin"),
    }
}

/// Signs `user` up or in; errors are shown like any command's.
pub async fn sign_in(
    client: &Client,
    user: &str,
    password: Option<Zeroizing<String>>,
    signup: bool,
) {
    let result = async {
        check_user_name(user)?;
        let password = match password {
            Some(password) => password,
            None => {
                client
                    .read_password(format!("password for {user}: "))
                    .await?
            }
        };
        let identity = client.identity(user, true)?;
        let credentials = Credentials {
            user: user.to_string(),
            password,
            identity,
            local: udpchat_commands::signin::own_addresses(client),
        };
        send_credentials(
            client,
            if signup { "signup" } else { "signin" },
            credentials,
        )
        .await?;
        Ok::<(), udpchat_core::error::CommandError>(())
    }
    .await;
    if let Err(e) = result {
        client.emit(Output::error(&e));
    }
}

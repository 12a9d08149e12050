//! `udpchat-server user add|remove|list`: account provisioning for
//! operators, on the same store the server uses (SQLite's WAL lets it run
//! beside a live server; PostgreSQL is shared by every node anyway).

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::names::check_user_name;
use zeroize::Zeroizing;

use crate::accounts::PasswordAccounts;
use crate::store::{blocking, Backend};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is asked for (or read from stdin).
    Add { name: String },
    /// Delete an account.
    Remove { name: String },
    /// List the accounts.
    List,
}

/// Store calls run on blocking threads here too (a PostgreSQL store waits
/// on its own runtime, which a task must not do).
pub async fn run(store: Arc<dyn Backend>, command: UserCommand) -> anyhow::Result<()> {
    let message = |e: udpchat_core::error::CommandError| anyhow::anyhow!(e.message);
    match command {
        UserCommand::Add { name } => {
            check_user_name(&name).map_err(|e| anyhow::anyhow!(e.message))?;
            let password = read_password(&name)?;
            // The user's client makes its own identity key when it first
            // signs in; until then a placeholder that nobody holds.
            let placeholder = StaticKey::generate(&mut rand::rngs::OsRng).public();
            let accounts = PasswordAccounts::new(store);
            accounts
                .create(&name, password, placeholder)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            println!("added {name}");
        }
        UserCommand::Remove { name } => {
            let removed = name.clone();
            if !blocking(move || store.remove_user(&removed))
                .await
                .map_err(message)?
            {
                bail!("no user {name}");
            }
            println!("removed {name}");
        }
        UserCommand::List => {
            for name in blocking(move || store.users()).await.map_err(message)? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

/// From the terminal without echo (asked twice), or one line of stdin.
fn read_password(name: &str) -> anyhow::Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(rpassword::prompt_password(format!(
            "password for {name}: "
        ))?);
        let again = Zeroizing::new(rpassword::prompt_password("again: ")?);
        if first != again {
            bail!("the passwords differ");
        }
        return Ok(first);
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if password.is_empty() {
        bail!("no password on stdin");
    }
    Ok(password)
}

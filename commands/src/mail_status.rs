//! `mail-status` (packet): the server tells a sender what became of a
//! message it left for an offline user: delivered, or expired unread.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{BoxFuture, Client, Path, Sender};
use udpchat_core::error::{code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Delivered,
    Expired,
}

/// The push body.
#[derive(Debug, Serialize, Deserialize)]
pub struct MailStatus {
    pub to: String,
    pub id: u64,
    pub outcome: Outcome,
}

inventory::submit! {
    Command {
        name: "mail-status",
        aliases: &[],
        usage: "mail-status",
        summary: "What became of a message left for an offline user.",
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
        let Some(MailStatus { to, id, outcome }) = crate::from_server(&sender, &body)? else {
            return Ok(());
        };
        match outcome {
            Outcome::Delivered => client.emit(
                crate::send::delivered(&to, Path::Stored)
                    .with("id", id)
                    .with("stored", true),
            ),
            Outcome::Expired => client.emit(
                Output::error(&CommandError::new(
                    code::DELIVERY_FAILED,
                    format!("your message to {to} expired before they came back"),
                ))
                .with("to", to)
                .with("id", id),
            ),
        }
        Ok(())
    })
}

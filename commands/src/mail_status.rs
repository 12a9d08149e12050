//! `mail-status` (packet): the server tells a sender what became of a
//! message it left for an offline user: delivered, or expired unread.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Path, Sender};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::history::State;
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Push};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush};

/// `mail-status`: the push and its handler.
pub struct MailStatus;

impl Packet for MailStatus {
    const TAG: &'static str = "mail-status";
}

impl Push for MailStatus {
    const SERVER_ONLY: bool = true;
    type Body = Status;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Delivered,
    Expired,
}

/// The push body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub to: String,
    pub id: u64,
    pub outcome: Outcome,
}

register! {
    Command::new(MailStatus::TAG, "What became of a message left for an offline user.")
        .on_push::<MailStatus>()
}

impl OnPush for MailStatus {
    async fn on_push(client: Client, _: Sender, body: Status) -> Result<(), CommandError> {
        let Status { to, id, outcome } = body;
        let state = match outcome {
            Outcome::Delivered => State::DeliveredLater,
            Outcome::Expired => State::Expired,
        };
        if let Err(e) = client.history().settle_kept(&to, id, state) {
            tracing::warn!("history: {}", e.message);
        }
        match outcome {
            Outcome::Delivered => client.emit(
                crate::send::delivered(&to, Path::Stored)
                    .with("id", id)
                    .with("stored", true),
            ),
            Outcome::Expired => client.emit(
                Output::error(&CommandError::new(
                    Code::DeliveryFailed,
                    format!("your message to {to} expired before they came back"),
                ))
                .with("to", to)
                .with("id", id),
            ),
        }
        Ok(())
    }
}

//! `receipt` (packet): a client acknowledges a stored message it has shown;
//! the server deletes it and, if the sender is online, tells it
//! `delivered to bob`.

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::CommandError;
use udpchat_core::registry::Command;

use crate::mail_status::{MailStatus, Outcome};

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Receipt {
    pub id: u64,
}

inventory::submit! {
    Command {
        name: "receipt",
        aliases: &[],
        usage: "receipt",
        summary: "Acknowledge a stored message so the server deletes it.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: Some(serve),
        on_push: None,
    }
}

pub async fn acknowledge(client: &Client, id: u64) -> Result<(), CommandError> {
    client
        .request("receipt", cbor::encode(&Receipt { id }))
        .await?;
    Ok(())
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let user = crate::signed_in_user(&server, origin)?;
        let Receipt { id } = crate::decode(&body)?;
        if let Some(message) = server.mailbox().take(&user, id).await? {
            let sender = server
                .presence()
                .lock()
                .expect("presence lock")
                .addr_of(&message.from);
            if let Some(sender) = sender {
                let status = MailStatus {
                    to: user,
                    id,
                    outcome: Outcome::Delivered,
                };
                server.push(sender, "mail-status", cbor::encode(&status));
            }
        }
        Ok(cbor::encode(&()))
    })
}

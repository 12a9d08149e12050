//! `receipt` (packet): a client acknowledges a stored message it has shown;
//! the server deletes it and, if the sender is online, tells it
//! `delivered to bob`.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve};

use crate::mail_status::{MailStatus, Outcome, Status};

/// `receipt`: the request and its handler.
pub struct Receipt;

impl Packet for Receipt {
    const TAG: &'static str = "receipt";
}

impl Request for Receipt {
    type Body = ReceiptBody;
    type Reply = ();
}

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReceiptBody {
    pub id: u64,
}

register! {
    Command::new(Receipt::TAG, "Acknowledge a stored message so the server deletes it.")
        .serve::<Receipt>()
}

pub async fn acknowledge(client: &Client, id: u64) -> Result<(), CommandError> {
    client
        .server()
        .request::<Receipt>(&ReceiptBody { id })
        .await
}

impl Serve for Receipt {
    async fn serve(server: Server, origin: Origin, body: ReceiptBody) -> Result<(), CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        let id = body.id;
        if let Some(message) = server.mailbox().take(&user, id).await? {
            let status = Status {
                to: user,
                id,
                outcome: Outcome::Delivered,
            };
            server.push_user::<MailStatus>(&message.from, &status);
        }
        Ok(())
    }
}

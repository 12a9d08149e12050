//! `deposit` (packet): a message for a user who is offline, sealed end to
//! end by the sender, handed to the server to keep. The reply comes only
//! after the server's store committed it. If the recipient signed in
//! meanwhile, it is handed over at once.

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::{code, CommandError};
use udpchat_core::mailbox::associated;
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Deposit {
    pub to: String,
    /// A CBOR `SealedMessage`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// The reply body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Deposited {
    pub id: u64,
}

inventory::submit! {
    Command {
        name: "deposit",
        aliases: &[],
        usage: "deposit",
        summary: "Leave a sealed message on the server for an offline user.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: Some(serve),
        on_push: None,
    }
}

/// Seals `text` for `to` and leaves it on the server; shows
/// `queued for bob (offline)`.
pub async fn queue(client: &Client, from: &str, to: &str, text: &str) -> Result<(), CommandError> {
    let bundle = crate::bundle::fetch(client, to).await?;
    let sealed = client.seal(&bundle, text.as_bytes(), &associated(from, to))?;
    let body = Deposit {
        to: to.to_string(),
        sealed: cbor::encode(&sealed),
    };
    let Deposited { id } = crate::decode(&client.request("deposit", cbor::encode(&body)).await?)?;
    client.emit(
        Output::new("queued", format!("queued for {to} (offline)"))
            .with("to", to.to_string())
            .with("id", id),
    );
    Ok(())
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let from = crate::signed_in_user(&server, origin)?;
        let Deposit { to, sealed } = crate::decode(&body)?;
        if to == from {
            return Err(CommandError::new(
                code::USAGE,
                "you cannot leave a message for yourself",
            ));
        }
        let stored = server.mailbox().deposit(&from, &to, sealed).await?;
        let id = stored.id;
        let online = server
            .presence()
            .lock()
            .expect("presence lock")
            .addr_of(&to);
        if let Some(peer) = online {
            crate::stored::hand_over(&server, peer, vec![stored]).await;
        }
        Ok(cbor::encode(&Deposited { id }))
    })
}

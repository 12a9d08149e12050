//! `prekeys` (packet): a client publishes its signed prekey and one-time
//! prekeys, so others can seal messages for it while it is offline. The
//! server pushes `prekeys` back to the owner when few one-time prekeys are
//! left, and the client tops them up.

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Sender, Server};
use udpchat_core::error::CommandError;
use udpchat_core::mailbox::{PrekeyUpload, ONE_TIME_TARGET};
use udpchat_core::registry::Command;

/// The reply to an upload, and the body of the server's "more, please".
#[derive(Debug, Serialize, Deserialize)]
pub struct Held {
    /// One-time prekeys the server holds for the user.
    pub one_time: usize,
}

inventory::submit! {
    Command {
        name: "prekeys",
        aliases: &[],
        usage: "prekeys",
        summary: "Publish prekeys so messages can be sealed for you while you are away.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: Some(serve),
        on_push: Some(on_push),
    }
}

/// Publishes the signed prekey, then tops the one-time prekeys up to
/// [`ONE_TIME_TARGET`].
pub async fn publish(client: &Client, user: &str) -> Result<(), CommandError> {
    let held = upload(client, client.prekeys_to_publish(user, 0)?).await?;
    if held < ONE_TIME_TARGET {
        upload(
            client,
            client.prekeys_to_publish(user, ONE_TIME_TARGET - held)?,
        )
        .await?;
    }
    Ok(())
}

async fn upload(client: &Client, upload: PrekeyUpload) -> Result<usize, CommandError> {
    let Held { one_time } =
        crate::decode(&client.request("prekeys", cbor::encode(&upload)).await?)?;
    Ok(one_time)
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let user = crate::signed_in_user(&server, origin)?;
        let upload: PrekeyUpload = crate::decode(&body)?;
        let one_time = server.mailbox().publish(&user, upload).await?;
        Ok(cbor::encode(&Held { one_time }))
    })
}

fn on_push(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let _: Held = crate::decode(&body)?;
        let user = client.user()?;
        if sender.from_server {
            publish(&client, &user).await?;
        }
        Ok(())
    })
}

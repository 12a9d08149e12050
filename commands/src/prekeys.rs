//! `prekeys` (packet): a client publishes its signed prekey and one-time
//! prekeys, so others can seal messages for it while it is offline. The
//! server pushes `prekeys` back to the owner when few one-time prekeys are
//! left, and the client tops them up.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Origin, Sender, Server};
use udpchat_core::error::CommandError;
use udpchat_core::mailbox::{PrekeyUpload, ONE_TIME_TARGET};
use udpchat_core::packet::{Packet, Push, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush, Serve};

/// `prekeys`: a client's upload (a request), and the server's "more,
/// please" (a push).
pub struct Prekeys;

impl Packet for Prekeys {
    const TAG: &'static str = "prekeys";
}

impl Request for Prekeys {
    type Body = PrekeyUpload;
    type Reply = Held;
}

impl Push for Prekeys {
    const SERVER_ONLY: bool = true;
    type Body = Held;
}

/// The reply to an upload, and the body of the server's "more, please".
#[derive(Debug, Serialize, Deserialize)]
pub struct Held {
    /// One-time prekeys the server holds for the user.
    pub one_time: usize,
}

register! {
    Command::new(Prekeys::TAG, "Publish prekeys so messages can be sealed for you while you are away.")
        .serve::<Prekeys>()
        .on_push::<Prekeys>()
}

/// Publishes the signed prekey, then tops the one-time prekeys up to
/// [`ONE_TIME_TARGET`].
pub async fn publish(client: &Client, user: &str) -> Result<(), CommandError> {
    let held = upload(client, client.keys().prekeys_to_publish(user, 0)?).await?;
    if held < ONE_TIME_TARGET {
        let more = client
            .keys()
            .prekeys_to_publish(user, ONE_TIME_TARGET - held)?;
        upload(client, more).await?;
    }
    Ok(())
}

async fn upload(client: &Client, upload: PrekeyUpload) -> Result<usize, CommandError> {
    let Held { one_time } = client.server().request::<Prekeys>(&upload).await?;
    Ok(one_time)
}

impl Serve for Prekeys {
    async fn serve(
        server: Server,
        origin: Origin,
        upload: PrekeyUpload,
    ) -> Result<Held, CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        let one_time = server.mailbox().publish(&user, upload).await?;
        Ok(Held { one_time })
    }
}

impl OnPush for Prekeys {
    async fn on_push(client: Client, _: Sender, _: Held) -> Result<(), CommandError> {
        let user = client.user()?;
        publish(&client, &user).await
    }
}

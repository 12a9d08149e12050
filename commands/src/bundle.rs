//! `bundle` (packet): a sender asks for what it needs to seal a message for
//! a user who is offline: the user's identity key, signed prekey and one
//! one-time prekey (each handed out once).

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::mailbox::{Bundle, ONE_TIME_LOW};
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve};

use crate::prekeys::{Held, Prekeys};

/// `bundle`: the request and its handler.
pub struct BundleOf;

impl Packet for BundleOf {
    const TAG: &'static str = "bundle";
}

impl Request for BundleOf {
    type Body = BundleRequest;
    type Reply = Bundle;
}

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct BundleRequest {
    pub user: String,
    /// Without a one-time prekey (for a private group's key).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed_only: bool,
}

register! {
    Command::new(BundleOf::TAG, "Fetch what is needed to seal a message for an offline user.")
        .serve::<BundleOf>()
}

/// `user`'s bundle; warns if the identity key is not the one seen before.
pub async fn fetch(client: &Client, user: &str) -> Result<Bundle, CommandError> {
    fetch_as(client, user, false).await
}

/// `user`'s bundle, without a one-time prekey when `signed_only`.
pub async fn fetch_as(
    client: &Client,
    user: &str,
    signed_only: bool,
) -> Result<Bundle, CommandError> {
    let request = BundleRequest {
        user: user.to_string(),
        signed_only,
    };
    let bundle = client.server().request::<BundleOf>(&request).await?;
    client.keys().check(user, &bundle.identity);
    Ok(bundle)
}

impl Serve for BundleOf {
    async fn serve(
        server: Server,
        origin: Origin,
        body: BundleRequest,
    ) -> Result<Bundle, CommandError> {
        let asker = crate::signed_in_user(&server, origin)?;
        let BundleRequest { user, signed_only } = body;
        crate::watch(&server, origin, &user);
        let (bundle, left) = server.mailbox().bundle(&asker, &user, !signed_only).await?;
        if left < ONE_TIME_LOW {
            // Ask the owner for more, if it is online to answer.
            server.push_user::<Prekeys>(&user, &Held { one_time: left });
        }
        Ok(bundle)
    }
}

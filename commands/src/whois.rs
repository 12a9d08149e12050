//! `whois` (packet): the identity key the server lists for a user, signed
//! in or not. A client checks with it that a direct message's sender holds
//! the named user's key (the sender may have signed out since sending).

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve};

/// `whois`: the request and its handler.
pub struct Whois;

impl Packet for Whois {
    const TAG: &'static str = "whois";
}

impl Request for Whois {
    type Body = WhoisRequest;
    type Reply = Identity;
}

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct WhoisRequest {
    pub user: String,
}

/// The reply body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub identity: PublicKey,
}

register! {
    Command::new(Whois::TAG, "The identity key the server lists for a user.")
        .serve::<Whois>()
}

/// `user`'s identity key, as the server lists it; warns if it is not the
/// one seen before.
pub async fn identity(client: &Client, user: &str) -> Result<PublicKey, CommandError> {
    let request = WhoisRequest {
        user: user.to_string(),
    };
    let Identity { identity, .. } = client.server().request::<Whois>(&request).await?;
    client.keys().check(user, &identity);
    Ok(identity)
}

impl Serve for Whois {
    async fn serve(
        server: Server,
        origin: Origin,
        body: WhoisRequest,
    ) -> Result<Identity, CommandError> {
        crate::signed_in_user(&server, origin)?;
        let WhoisRequest { user } = body;
        crate::watch(&server, origin, &user);
        let identity =
            server.accounts().identity(&user).await?.ok_or_else(|| {
                CommandError::new(Code::NoSuchUser, format!("No such user: {user}"))
            })?;
        Ok(Identity { user, identity })
    }
}

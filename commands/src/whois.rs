//! `whois` (packet): the identity key the server lists for a user, signed
//! in or not. A client checks with it that a direct message's sender holds
//! the named user's key (the sender may have signed out since sending).

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{code, CommandError};
use udpchat_core::registry::{ArgKind, Command};

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Whois {
    pub user: String,
}

/// The reply body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub identity: PublicKey,
}

inventory::submit! {
    Command {
        name: "whois",
        aliases: &[],
        usage: "whois <user>",
        summary: "The identity key the server lists for a user.",
        examples: &[],
        args: &[ArgKind::User],
        module: module_path!(),
        shell: None,
        serve: Some(serve),
        on_push: None,
    }
}

/// `user`'s identity key, as the server lists it; warns if it is not the
/// one seen before.
pub async fn identity(client: &Client, user: &str) -> Result<PublicKey, CommandError> {
    let reply = client
        .request(
            "whois",
            cbor::encode(&Whois {
                user: user.to_string(),
            }),
        )
        .await?;
    let Identity { identity, .. } = crate::decode(&reply)?;
    client.check_identity(user, &identity);
    Ok(identity)
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        crate::signed_in_user(&server, origin)?;
        let Whois { user } = crate::decode(&body)?;
        crate::watch(&server, origin, &user);
        let identity = server.accounts().identity(&user).await?.ok_or_else(|| {
            CommandError::new(code::NO_SUCH_USER, format!("No such user: {user}"))
        })?;
        Ok(cbor::encode(&Identity { user, identity }))
    })
}

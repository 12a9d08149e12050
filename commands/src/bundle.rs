//! `bundle` (packet): a sender asks for what it needs to seal a message for
//! a user who is offline: the user's identity key, signed prekey and one
//! one-time prekey (each handed out once).

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::CommandError;
use udpchat_core::mailbox::{Bundle, ONE_TIME_LOW};
use udpchat_core::registry::{ArgKind, Command};

use crate::prekeys::Held;

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct BundleRequest {
    pub user: String,
}

inventory::submit! {
    Command {
        name: "bundle",
        aliases: &[],
        usage: "bundle <user>",
        summary: "Fetch what is needed to seal a message for an offline user.",
        examples: &[],
        args: &[ArgKind::User],
        module: module_path!(),
        shell: None,
        serve: Some(serve),
        on_push: None,
    }
}

/// `user`'s bundle; warns if the identity key is not the one seen before.
pub async fn fetch(client: &Client, user: &str) -> Result<Bundle, CommandError> {
    let reply = client
        .request(
            "bundle",
            cbor::encode(&BundleRequest {
                user: user.to_string(),
            }),
        )
        .await?;
    let bundle: Bundle = crate::decode(&reply)?;
    client.check_identity(user, &bundle.identity);
    Ok(bundle)
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let asker = crate::signed_in_user(&server, origin)?;
        let BundleRequest { user } = crate::decode(&body)?;
        crate::watch(&server, origin, &user);
        let (bundle, left) = server.mailbox().bundle(&asker, &user).await?;
        if left < ONE_TIME_LOW {
            // Ask the owner for more, if it is here to answer.
            let owner = server
                .presence()
                .lock()
                .expect("presence lock")
                .addr_of(&user);
            if let Some(owner) = owner {
                server.push(owner, "prekeys", cbor::encode(&Held { one_time: left }));
            }
        }
        Ok(cbor::encode(&bundle))
    })
}

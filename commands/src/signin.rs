//! `signin <user>` (`login`, `reg`): registers this client's address under a
//! name. A name already signed in from another live client is refused; one
//! whose client no longer answers is taken over.

use serde::{Deserialize, Serialize};
use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::{code, CommandError};
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;
use udpchat_core::presence::Claim;
use udpchat_core::registry::{ArgKind, Command};

const USAGE: &str = "signin <user>";

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignIn {
    pub user: String,
}

/// The reply body.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: String,
}

inventory::submit! {
    Command {
        name: "signin",
        aliases: &["login", "reg"],
        usage: USAGE,
        summary: "Sign in to the server under a name.",
        examples: &["signin alice", "login bob"],
        args: &[ArgKind::User],
        module: module_path!(),
        shell: Some(shell),
        serve: Some(serve),
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        args.at_most(1, USAGE)?;
        let user = args.required(0, USAGE)?.to_string();
        check_user_name(&user)?;
        sign_in(&client, &user).await
    })
}

/// Signs in as `user` and tells the user so.
pub async fn sign_in(client: &Client, user: &str) -> Result<(), CommandError> {
    let reply = client
        .request(
            "signin",
            cbor::encode(&SignIn {
                user: user.to_string(),
            }),
        )
        .await?;
    let signed_in: SignedIn = crate::decode(&reply)?;
    client.session().lock().expect("session lock").user = Some(signed_in.user.clone());
    client.emit(
        Output::new("signed-in", format!("Signed in as {}", signed_in.user))
            .with("user", signed_in.user),
    );
    Ok(())
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let SignIn { user } = crate::decode(&body)?;
        check_user_name(&user)?;
        let claim = server
            .presence()
            .lock()
            .expect("presence lock")
            .claim(&user, origin.addr);
        if let Claim::HeldBy(holder) = claim {
            // Only a client that still answers keeps its name: one that
            // vanished without signing out must not lock its user out.
            if server.probe(holder).await {
                return Err(CommandError::new(
                    code::NAME_TAKEN,
                    format!("{user} is already signed in from another client"),
                ));
            }
        }
        server
            .presence()
            .lock()
            .expect("presence lock")
            .sign_in(&user, origin.addr);
        Ok(cbor::encode(&SignedIn { user }))
    })
}

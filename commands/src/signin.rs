//! `signin <user> [password]` (`login`, `reg`): signs in to an account. The
//! password, if left off the line, is asked for without echo. A name
//! signed in from another live client is refused; one whose client no
//! longer answers is taken over.

use serde::{Deserialize, Serialize};
use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server, Zeroizing};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{code, CommandError};
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;
use udpchat_core::presence::Claim;
use udpchat_core::registry::{ArgKind, Command};

const USAGE: &str = "signin <user> [password]";

/// The request body of `signin` and `signup`: the password travels only
/// inside the encrypted session; the identity key is the public half of
/// the key this user's client holds for end-to-end sessions.
#[derive(Debug, Serialize, Deserialize)]
pub struct Credentials {
    pub user: String,
    pub password: Zeroizing<String>,
    pub identity: PublicKey,
    /// The client's own addresses (`IP:PORT`), which other clients on its
    /// network may reach it at (see `lookup`).
    #[serde(default)]
    pub local: Vec<String>,
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
        summary: "Sign in to your account (the password is asked for if left off).",
        examples: &["signin alice", "login bob"],
        args: &[ArgKind::User, ArgKind::Password],
        module: module_path!(),
        shell: Some(shell),
        serve: Some(serve),
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let credentials = credentials(&client, &args, USAGE).await?;
        sign_in(&client, "signin", credentials).await
    })
}

/// The user and password of a `signin`/`signup` line, asking for the
/// password when the line has none.
pub async fn credentials(
    client: &Client,
    args: &Args,
    usage: &str,
) -> Result<Credentials, CommandError> {
    let user = args.required(0, usage)?.to_string();
    check_user_name(&user)?;
    // The rest of the line, spaces and all, is the password.
    let password = match args.rest(1) {
        "" => {
            client
                .read_password(format!("password for {user}: "))
                .await?
        }
        password => Zeroizing::new(password.to_string()),
    };
    // A new account makes its identity key; signing in elsewhere makes one
    // for this device too (the others are warned that it changed).
    let identity = client.identity(&user, true)?;
    Ok(Credentials {
        user,
        password,
        identity,
        local: own_addresses(client),
    })
}

/// The client's own addresses, as `signin` and `signup` carry them.
pub fn own_addresses(client: &Client) -> Vec<String> {
    client
        .local_addresses()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Sends `cmd` (`signin` or `signup`) and records the session.
pub async fn sign_in(
    client: &Client,
    cmd: &'static str,
    credentials: Credentials,
) -> Result<(), CommandError> {
    let password = credentials.password.clone();
    // The server sends kept messages and groups right after its reply:
    // they wait until "Signed in" is shown (or the sign-in failed).
    let hold = HoldServerPushes::new(client);
    let reply = client.request(cmd, cbor::encode(&credentials)).await?;
    let SignedIn { user } = crate::decode(&reply)?;
    client.session().lock().expect("session lock").user = Some(user.clone());
    client.remember_password(&user, password);
    if cmd == "signup" {
        client.emit(
            Output::new("signed-up", format!("Account {user} created")).with("user", user.clone()),
        );
    }
    client
        .emit(Output::new("signed-in", format!("Signed in as {user}")).with("user", user.clone()));
    drop(hold);
    // Without published prekeys nobody can leave this user a message.
    if let Err(e) = crate::prekeys::publish(client, &user).await {
        client.emit(Output::error(&CommandError::new(
            &e.code,
            format!(
                "signed in, but messages cannot be kept for you while away: {}",
                e.message
            ),
        )));
    }
    Ok(())
}

/// Holds the server's pushes until dropped.
struct HoldServerPushes<'a>(&'a Client);

impl HoldServerPushes<'_> {
    fn new(client: &Client) -> HoldServerPushes<'_> {
        client.hold_server_pushes(true);
        HoldServerPushes(client)
    }
}

impl Drop for HoldServerPushes<'_> {
    fn drop(&mut self) {
        self.0.hold_server_pushes(false);
    }
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let Credentials {
            user,
            password,
            identity,
            local,
        } = crate::decode(&body)?;
        check_user_name(&user)?;
        server
            .accounts()
            .check_password(&user, password, origin.source())
            .await?;
        admit(&server, origin, user, Some(identity), &local).await
    })
}

/// Puts an authenticated `user` online at `origin`, unless another live
/// client holds the name; records `identity` as the user's key only once
/// the sign-in is sure to go ahead (a refused sign-in changes nothing).
/// Signing in again on a session already signed in as `user` changes
/// nothing either: the others are not told twice. `local`: the client's
/// own addresses, as it gave them (bad ones are left out).
pub async fn admit(
    server: &Server,
    origin: Origin,
    user: String,
    identity: Option<PublicKey>,
    local: &[String],
) -> Reply {
    let local = crate::lookup::addresses(local);
    let claim = server
        .presence()
        .lock()
        .expect("presence lock")
        .claim(&user, origin.peer);
    match claim {
        Claim::Already => return Ok(cbor::encode(&SignedIn { user })),
        // Only a client that still answers keeps its name: one that
        // vanished without signing out must not lock its user out.
        Claim::HeldBy(holder) if server.probe(holder).await => {
            return Err(CommandError::new(
                code::NAME_TAKEN,
                format!("{user} is already signed in from another client"),
            ));
        }
        Claim::HeldBy(_) | Claim::Free => {}
    }
    if let Some(identity) = identity {
        if server.accounts().identity(&user).await?.as_ref() != Some(&identity) {
            server.accounts().set_identity(&user, identity).await?;
        }
    }
    let (displaced, taken_from) = {
        let mut presence = server.presence().lock().expect("presence lock");
        let taken_from = presence.addr_of(&user);
        let displaced = presence.sign_in(&user, origin.peer);
        presence.set_local(origin.peer, &local);
        (displaced, taken_from)
    };
    server.keep_session(origin.peer, true);
    if let Some(old) = taken_from {
        server.keep_session(old, false);
    }
    for old in displaced {
        crate::presence::announce(server, &old, false);
    }
    crate::presence::announce(server, &user, true);
    crate::stored::deliver_pending(server, &user, origin.peer).await;
    // The user's groups, then what was said in them meanwhile: after the
    // reply, so that "signed in" shows first.
    let (later, name, peer) = (server.clone(), user.clone(), origin.peer);
    server.after_reply(
        peer,
        Box::new(move || later.groups().signed_in(&name, peer)),
    );
    Ok(cbor::encode(&SignedIn { user }))
}

//! `signin <user> [password]` (`login`, `reg`): signs in to an account. The
//! password, if left off the line, is asked for without echo. A name
//! signed in from another live client is refused; one whose client no
//! longer answers is taken over.

use serde::{Deserialize, Serialize};
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server, Zeroizing};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::event::{Event, Names};
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::passwords;
use udpchat_core::presence::Claim;
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use crate::signup::SignUp;

/// `signin`: the request, its shell command and its handler.
pub struct SignIn;

impl Packet for SignIn {
    const TAG: &'static str = "signin";
}

impl Request for SignIn {
    type Body = Credentials;
    type Reply = SignedIn;
}

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
    /// When the server holds another identity key for the account (the
    /// user signs in from a new device): `false`, refuse with `new-device`
    /// and change nothing; `true`, replace it. Left out (a client before
    /// this field): replace it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_key: Option<bool>,
}

/// The reply body.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: String,
}

register! {
    Command::new(SignIn::TAG, "Sign in to your account (the password is asked for if left off).")
        .aliases(&["login", "reg"])
        .args(&[Arg::one("user", ArgKind::User), Arg::password()])
        .examples(&["signin alice", "login bob"])
        .shell::<SignIn>()
        .serve::<SignIn>()
}

register! {
    Event::new("signed-in").names(me)
}

impl Shell for SignIn {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        sign_in(&client, How::SignIn, args.word(0), typed_password(&args)).await?;
        crate::unread::at_sign_in(&client);
        Ok(())
    }
}

/// Signing in to an account, or making one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    SignIn,
    SignUp,
}

/// The password typed after the user name (the rest of the line, spaces
/// and all), if any.
pub fn typed_password(args: &Args) -> Option<Zeroizing<String>> {
    Some(args.rest(1))
        .filter(|p| !p.is_empty())
        .map(|p| Zeroizing::new(p.to_string()))
}

/// Signs `user` in (or up), asking for the password when none is given;
/// records the session and publishes prekeys. The typed commands, the
/// sign-in at start and the one after the server came back all come here.
pub async fn sign_in(
    client: &Client,
    how: How,
    user: &str,
    password: Option<Zeroizing<String>>,
) -> Result<(), CommandError> {
    check_user_name(user)?;
    let prompt = format!("password for {user}: ");
    let password = match (password, how) {
        (Some(password), _) => password,
        (None, How::SignIn) => client.read_password(prompt).await?,
        (None, How::SignUp) => client.read_new_password(prompt).await?,
    };
    // Said at once, not after a round trip: the server checks it again.
    if how == How::SignUp {
        passwords::check_new(user, &password)?;
    }
    // A new account makes its identity key; signing in elsewhere makes one
    // for this device too (the others are warned that it changed).
    let identity = client.keys().identity(user, true)?;
    let mut credentials = Credentials {
        user: user.to_string(),
        password: password.clone(),
        identity,
        local: own_addresses(client),
        replace_key: Some(false),
    };
    // The server sends kept messages and groups with its reply: they wait
    // until "Signed in" is shown (or the sign-in failed).
    let hold = client.server().hold_pushes();
    let signed_in = match how {
        How::SignIn => client.server().request::<SignIn>(&credentials).await,
        How::SignUp => client.server().request::<SignUp>(&credentials).await,
    };
    let SignedIn { user } = match signed_in {
        Err(e) if e.code == Code::NewDevice => {
            // Said plainly, and only on the user's word.
            let step = new_device_step(user);
            if !client
                .confirm(format!("{step}. Use this device? [y/N] "))
                .await
            {
                return Err(CommandError::new(
                    Code::NewDevice,
                    format!("{step}: nothing was changed (confirm in the shell, or sign in with --new-device)"),
                ));
            }
            credentials.replace_key = Some(true);
            client.emit(
                Output::new(
                    "new-device",
                    format!(
                        "{user}'s identity key is now this device's: contacts are told it changed"
                    ),
                )
                .with("user", user.to_string()),
            );
            client.server().request::<SignIn>(&credentials).await?
        }
        other => other?,
    };
    client.session().lock().user = Some(user.clone());
    client.server().remember_password(&user, password);
    if how == How::SignUp {
        client.emit(
            Output::new("signed-up", format!("Account {user} created")).with("user", user.clone()),
        );
    }
    client
        .emit(Output::new("signed-in", format!("Signed in as {user}")).with("user", user.clone()));
    drop(hold);
    // Without published prekeys nobody can leave this user a message.
    if let Err(e) = crate::prekeys::publish(client, &user).await {
        // Signed out meanwhile (the server went, and the client moved to
        // another): the next sign-in publishes them.
        if client.session().lock().user.as_deref() != Some(user.as_str()) {
            return Ok(());
        }
        client.emit(Output::error(&CommandError::new(
            e.code,
            format!(
                "signed in, but messages cannot be kept for you while away: {}",
                e.message
            ),
        )));
    }
    Ok(())
}

/// What signing in from a new device means, said before it is done.
pub fn new_device_step(user: &str) -> String {
    format!(
        "this is a new device for {user}: contacts will be told your key changed, and messages waiting for your other device cannot be opened here"
    )
}

/// The client's own addresses, as `signin` and `signup` carry them.
fn own_addresses(client: &Client) -> Vec<String> {
    client
        .peers()
        .local_addresses()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Who this client is now.
fn me(output: &Output, names: &mut dyn Names) {
    if let Some(user) = output.field("user") {
        names.signed_in_as(user);
    }
}

impl Serve for SignIn {
    async fn serve(
        server: Server,
        origin: Origin,
        body: Credentials,
    ) -> Result<SignedIn, CommandError> {
        let Credentials {
            user,
            password,
            identity,
            local,
            replace_key,
        } = body;
        check_user_name(&user)?;
        server
            .accounts()
            .check_password(&user, password, origin.source())
            .await?;
        let identity = Offered {
            key: identity,
            replace: replace_key != Some(false),
        };
        admit(&server, origin, user, Some(identity), &local).await
    }
}

fn taken(user: &str) -> CommandError {
    CommandError::new(
        Code::NameTaken,
        format!("{user} is already signed in from another client"),
    )
}

/// The identity key a signing-in client offers, and whether it may replace
/// another the server holds for the account (a new device).
pub struct Offered {
    pub key: PublicKey,
    pub replace: bool,
}

/// Puts an authenticated `user` online at `origin`, unless another live
/// client holds the name, or `identity` is not the account's key and may
/// not replace it (`new-device`, told only to whoever has the password);
/// records it as the user's key only once the sign-in is sure to go ahead
/// (a refused sign-in changes nothing).
/// Signing in again on a session already signed in as `user` changes
/// nothing either: the others are not told twice. `local`: the client's
/// own addresses, as it gave them (bad ones are left out).
pub async fn admit(
    server: &Server,
    origin: Origin,
    user: String,
    identity: Option<Offered>,
    local: &[String],
) -> Result<SignedIn, CommandError> {
    let local = crate::lookup::addresses(local);
    let claim = server.presence().lock().claim(&user, origin.peer);
    match claim {
        Claim::Already => return Ok(SignedIn { user }),
        // Only a client that still answers keeps its name: one that
        // vanished without signing out must not lock its user out.
        Claim::HeldBy(holder) if server.probe(holder).await => {
            return Err(taken(&user));
        }
        // The same on another server node: that node asks its client.
        Claim::Elsewhere(node) if server.probe_elsewhere(&user, &node).await => {
            return Err(taken(&user));
        }
        Claim::HeldBy(_) | Claim::Elsewhere(_) | Claim::Free => {}
    }
    if let Some(Offered { key, replace }) = identity {
        match server.accounts().identity_to_check(&user).await? {
            Some(held) if held == key => {}
            Some(_) if !replace => {
                return Err(CommandError::new(
                    Code::NewDevice,
                    format!("{user} signs in with another identity key on another device"),
                ))
            }
            _ => server.accounts().set_identity(&user, key).await?,
        }
    }
    let (displaced, taken_from) = {
        let mut presence = server.presence().lock();
        let taken_from = presence.session_of(&user);
        let displaced = presence.sign_in(&user, origin.peer, origin.addr);
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
    // What was kept for the user, their groups, then what was said in
    // them meanwhile (the client shows it all after "Signed in").
    crate::stored::deliver_pending(server, &user, origin.peer).await;
    server.groups().signed_in(&user, origin.peer);
    server.settled().await;
    Ok(SignedIn { user })
}

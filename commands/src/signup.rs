//! `signup <user> [password]`: creates an account and signs in to it. The
//! server keeps only an argon2id hash of the password.

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::names::check_user_name;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use crate::signin::{admit, sign_in, typed_password, Credentials, How, SignedIn};

/// `signup`: the request, its shell command and its handler.
pub struct SignUp;

impl Packet for SignUp {
    const TAG: &'static str = "signup";
}

impl Request for SignUp {
    type Body = Credentials;
    type Reply = SignedIn;
}

register! {
    Command::new(SignUp::TAG, "Create an account and sign in (the password is asked for if left off).")
        .aliases(&["register"])
        .args(&[Arg::one("user", ArgKind::User), Arg::password()])
        .examples(&["signup alice", "signup u1 s3cret-enough"])
        .shell::<SignUp>()
        .serve::<SignUp>()
}

impl Shell for SignUp {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        sign_in(&client, How::SignUp, args.word(0), typed_password(&args)).await?;
        crate::unread::at_sign_in(&client);
        Ok(())
    }
}

impl Serve for SignUp {
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
            ..
        } = body;
        check_user_name(&user)?;
        server
            .accounts()
            .sign_up(&user, password, identity, origin.source())
            .await?;
        admit(&server, origin, user, None, &local).await
    }
}

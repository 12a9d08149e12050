//! `signup <user> [password]`: creates an account and signs in to it. The
//! server keeps only an argon2id hash of the password.

use udpchat_core::args::Args;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::CommandError;
use udpchat_core::names::check_user_name;
use udpchat_core::registry::{ArgKind, Command};

use crate::signin::{admit, credentials, sign_in, Credentials};

const USAGE: &str = "signup <user> [password]";

inventory::submit! {
    Command {
        name: "signup",
        aliases: &["register"],
        usage: USAGE,
        summary: "Create an account and sign in (the password is asked for if left off).",
        examples: &["signup alice", "signup u1 s3cret-enough"],
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
        sign_in(&client, "signup", credentials).await
    })
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
            .sign_up(&user, password, identity, origin.source())
            .await?;
        admit(&server, origin, user, None, &local).await
    })
}

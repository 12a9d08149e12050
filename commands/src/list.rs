//! `list`: the users signed in now, as `Signed In Users: bob, carole`.

use serde::{Deserialize, Serialize};
use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::Command;

const USAGE: &str = "list";

/// The reply body: every signed-in name, sorted.
#[derive(Debug, Serialize, Deserialize)]
pub struct Users {
    pub users: Vec<String>,
}

inventory::submit! {
    Command {
        name: "list",
        aliases: &["who"],
        usage: USAGE,
        summary: "List the other users signed in now.",
        examples: &["list"],
        args: &[],
        module: module_path!(),
        shell: Some(shell),
        serve: Some(serve),
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        args.at_most(0, USAGE)?;
        let me = client.user()?;
        let Users { users } = crate::decode(&client.request("list", cbor::encode(&())).await?)?;
        let others: Vec<String> = users.into_iter().filter(|u| *u != me).collect();
        client.emit(render(&others));
        Ok(())
    })
}

fn render(others: &[String]) -> Output {
    let text = if others.is_empty() {
        "Signed In Users: (nobody else)".to_string()
    } else {
        format!("Signed In Users: {}", others.join(", "))
    };
    Output::new("users", text).with("users", others.to_vec())
}

fn serve(server: Server, origin: Origin, _body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        crate::signed_in_user(&server, origin)?;
        let users = server.presence().lock().expect("presence lock").users();
        Ok(cbor::encode(&Users { users }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_the_seed_shows() {
        let out = render(&["Bob".to_string(), "Carole".to_string()]);
        assert_eq!(out.text, "Signed In Users: Bob, Carole");
        assert_eq!(
            out.to_json(),
            r#"{"event":"users","users":["Bob","Carole"]}"#
        );
    }
}

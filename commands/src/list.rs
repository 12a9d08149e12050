//! `list`: the other users signed in now, as `Signed In Users: bob, carole`.
//! On a busy server the reply is one page: the first [`PAGE`] names (from
//! those starting with an optional prefix) and how many there are in all.

use serde::{Deserialize, Serialize};
use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Origin, Reply, Server};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::{ArgKind, Command};

const USAGE: &str = "list [prefix]";
/// Names in one reply at most: 200 names of up to 32 bytes fit one packet
/// body many times over, and a screen could not show more.
pub const PAGE: usize = 200;

/// The request body: list the names that start with `prefix`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListRequest {
    #[serde(default)]
    pub prefix: String,
}

/// The reply body: the first names (sorted) that match, besides the asker,
/// and how many match in all.
#[derive(Debug, Serialize, Deserialize)]
pub struct Users {
    pub users: Vec<String>,
    pub total: usize,
}

inventory::submit! {
    Command {
        name: "list",
        aliases: &["who"],
        usage: USAGE,
        summary: "List the other users signed in now (those whose names start with a prefix).",
        examples: &["list", "list al"],
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
        client.user()?;
        let prefix = args.get(0).unwrap_or_default().to_string();
        let request = cbor::encode(&ListRequest {
            prefix: prefix.clone(),
        });
        let users: Users = crate::decode(&client.request("list", request).await?)?;
        client.emit(render(&prefix, &users));
        Ok(())
    })
}

fn render(prefix: &str, Users { users, total }: &Users) -> Output {
    let mut text = if users.is_empty() && prefix.is_empty() {
        "Signed In Users: (nobody else)".to_string()
    } else if users.is_empty() {
        format!("Signed In Users: (nobody whose name starts with {prefix})")
    } else {
        format!("Signed In Users: {}", users.join(", "))
    };
    if users.len() < *total {
        text.push_str(&format!(
            " ... and {} more (list <prefix> narrows it)",
            total - users.len()
        ));
    }
    let mut output = Output::new("users", text)
        .with("users", users.clone())
        .with("total", *total);
    if !prefix.is_empty() {
        output = output.with("prefix", prefix);
    }
    output
}

fn serve(server: Server, origin: Origin, body: Vec<u8>) -> BoxFuture<'static, Reply> {
    Box::pin(async move {
        let me = crate::signed_in_user(&server, origin)?;
        let ListRequest { prefix } = crate::decode(&body)?;
        let presence = server.presence().lock().expect("presence lock");
        // One more than a page, in case the asker is among them.
        let (mut users, mut total) = presence.users_from(&prefix, PAGE + 1);
        if let Some(at) = users.iter().position(|u| *u == me) {
            users.remove(at);
            total -= 1;
        }
        users.truncate(PAGE);
        Ok(cbor::encode(&Users { users, total }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(names: &[&str], total: usize) -> Users {
        Users {
            users: names.iter().map(|n| n.to_string()).collect(),
            total,
        }
    }

    #[test]
    fn renders_as_the_seed_shows() {
        let out = render("", &users(&["Bob", "Carole"], 2));
        assert_eq!(out.text, "Signed In Users: Bob, Carole");
        assert_eq!(
            out.to_json(),
            r#"{"event":"users","users":["Bob","Carole"],"total":2}"#
        );
    }

    #[test]
    fn says_how_many_a_page_leaves_out_and_what_a_prefix_found() {
        let out = render("", &users(&["al", "alice"], 1002));
        assert_eq!(
            out.text,
            "Signed In Users: al, alice ... and 1000 more (list <prefix> narrows it)"
        );
        assert_eq!(
            render("zed", &users(&[], 0)).text,
            "Signed In Users: (nobody whose name starts with zed)"
        );
        assert_eq!(
            render("", &users(&[], 0)).text,
            "Signed In Users: (nobody else)"
        );
    }
}

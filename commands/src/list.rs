//! `list`: the other users signed in now, as `Signed In Users: bob, carole`.
//! On a busy server the reply is one page: the first [`PAGE`] names (from
//! those starting with an optional prefix) and how many there are in all.

use serde::{Deserialize, Serialize};
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::event::{strings, Event, Names};
use udpchat_core::names::Name;
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

/// Names in one reply at most: 200 names of up to 32 bytes fit one packet
/// body many times over, and a screen could not show more.
pub const PAGE: usize = 200;

/// `list`: the request, its shell command and its handler.
pub struct List;

impl Packet for List {
    const TAG: &'static str = "list";
}

impl Request for List {
    type Body = ListRequest;
    type Reply = Users;
}

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
    /// The presence's own names, shared (see [`Name`]).
    pub users: Vec<Name>,
    pub total: usize,
}

register! {
    Command::new(List::TAG, "List the other users signed in now (those whose names start with a prefix).")
        .aliases(&["who"])
        .args(&[Arg::optional("prefix", ArgKind::User)])
        .examples(&["list", "list al"])
        .shell::<List>()
        .serve::<List>()
}

register! {
    Event::new("users").names(learn)
}

impl Shell for List {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        client.user()?;
        let prefix = args.get(0).unwrap_or_default().to_string();
        let request = ListRequest {
            prefix: prefix.clone(),
        };
        let users = client.server().request::<List>(&request).await?;
        client.emit(render(&prefix, &users));
        Ok(())
    }
}

impl Serve for List {
    async fn serve(
        server: Server,
        origin: Origin,
        body: ListRequest,
    ) -> Result<Users, CommandError> {
        let me = crate::signed_in_user(&server, origin)?;
        let presence = server.presence().lock();
        // One more than a page, in case the asker is among them.
        let found = presence.users_from(&body.prefix, PAGE + 1);
        Ok(others(&me, &body.prefix, found))
    }
}

/// A page of the names that start with `prefix`, and how many do in all
/// (as `Presence::users_from` gives them), with the asker `me` left out of
/// both: of the names if the page holds them, and of the total whenever
/// their name starts with `prefix` (they are signed in, so counted).
fn others(me: &str, prefix: &str, (mut users, mut total): (Vec<Name>, usize)) -> Users {
    if let Some(at) = users.iter().position(|u| u.as_str() == me) {
        users.remove(at);
    }
    if prefix.is_empty() || me.starts_with(prefix) {
        total = total.saturating_sub(1);
    }
    users.truncate(PAGE);
    Users { users, total }
}

/// Who is online: the whole list replaces what the shell knew; a page or
/// a prefix shows some of who is online, not who is not.
fn learn(output: &Output, names: &mut dyn Names) {
    let users = strings(output, "users");
    let whole = output.data.get("prefix").is_none()
        && output.data.get("total").and_then(serde_json::Value::as_u64) == Some(users.len() as u64);
    if whole {
        names.set_online(&users);
    } else {
        users.iter().for_each(|user| names.went_online(user));
    }
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
        .with("users", users.iter().map(Name::as_str).collect::<Vec<_>>())
        .with("total", *total);
    if !prefix.is_empty() {
        output = output.with("prefix", prefix);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(names: &[&str], total: usize) -> Users {
        Users {
            users: names.iter().map(|&n| n.into()).collect(),
            total,
        }
    }

    fn page<S: Into<Name>>(names: impl IntoIterator<Item = S>) -> Vec<Name> {
        names.into_iter().map(Into::into).collect()
    }

    #[test]
    fn the_asker_is_left_out_of_the_names_and_the_total() {
        // On the page: out of both.
        let found = (page(["al", "bob", "me"]), 3);
        let got = others("me", "", found);
        assert_eq!((got.users, got.total), (page(["al", "bob"]), 2));
        // Past the page (1,000 match, the asker's name sorts after the
        // first 201): still out of the total.
        let first = page((0..=PAGE).map(|i| format!("a{i:04}")));
        let got = others("zoe", "", (first.clone(), 1000));
        assert_eq!(got.total, 999, "the asker is not one of the others");
        assert_eq!(got.users, first[..PAGE].to_vec());
        // A prefix the asker's name does not start with: nothing to take.
        let got = others("zoe", "a", (first.clone(), 1000));
        assert_eq!(got.total, 1000);
        let got = others("ann", "a", (first, 1000));
        assert_eq!(got.total, 999);
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

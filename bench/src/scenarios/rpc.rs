//! `rpc`: N signed-in clients (default 64) asking the server `list`, then
//! `lookup` (a key lookup: another user's address and identity key), over
//! their encrypted sessions, each keeping `window` requests outstanding.
//! Requests/s and latency, and the same run's UDP echo baseline.

use udpchat_commands::list::{List, ListRequest, Users};
use udpchat_commands::lookup::{Lookup, LookupRequest};

use super::udp_echo::{baseline, Shape};
use super::{params_with, reply_bytes, request_bytes, Ctx};
use crate::clients::{sign_up_many, SimClient};
use crate::load::{self, Plan};
use crate::report::{Latency, Report, Row};
use crate::server::Target;

/// Sign-ups run at once while setting up (each is an argon2 hash).
pub const SIGNUP_PARALLEL: usize = 8;

/// The datagram sizes of a `list` request and its reply among `clients`
/// signed-in users.
pub fn list_shape(clients: usize, window: usize) -> Shape {
    // The asker is not among the names listed.
    let users = Users {
        users: (1..clients)
            .map(|i| format!("rpc00000000-{i}").into())
            .collect(),
        total: clients - 1,
    };
    Shape {
        clients,
        window,
        request_bytes: request_bytes::<List>(&ListRequest::default()),
        reply_bytes: reply_bytes::<List>(&users),
    }
}

/// Measures `list` or `lookup` on signed-in clients: one row.
pub async fn measure(
    name: &str,
    target: &Target,
    clients: &[SimClient],
    plan: Plan,
    lookup: bool,
) -> Row {
    // Each client looks up the next one's user (on another node, when
    // clients alternate between nodes).
    let pairs: Vec<(SimClient, String)> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), clients[(i + 1) % clients.len()].user.clone()))
        .collect();
    let outcome = load::closed_loop(
        name,
        &pairs,
        plan,
        target.pid,
        move |(client, other)| async move {
            if lookup {
                client.lookup(&other).await.map(|_| ())
            } else {
                client.list().await.map(|_| ())
            }
        },
    )
    .await;
    let mut row = Row::new(name, "req/s", outcome.ok, outcome.seconds);
    row.errors = outcome.errors;
    row.latency = Latency::of(&outcome.hist);
    row.server = outcome.server;
    row.generator = outcome.generator;
    if let Some(e) = outcome.first_error {
        row = row.with("first_error", e);
    }
    row
}

/// Signs up the rpc clients (not measured).
pub async fn setup(ctx: &Ctx, target: &Target) -> anyhow::Result<Vec<SimClient>> {
    sign_up_many(
        &target.server,
        &ctx.users("rpc"),
        ctx.clients,
        SIGNUP_PARALLEL,
    )
    .await
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let shape = list_shape(ctx.clients, ctx.window);
    let lookup_bytes = request_bytes::<Lookup>(&LookupRequest {
        user: "rpc00000000-1".into(),
        meet: false,
    });
    let mut report = Report::new(
        "rpc",
        params_with(ctx, serde_json::json!({ "shape": shape })),
    );
    let base = baseline(shape, ctx.plan()).await?;
    let target = ctx.server()?;
    let clients = setup(ctx, &target).await?;
    let list = measure("list", &target, &clients, ctx.plan(), false)
        .await
        .against(Some(&base));
    let lookup = measure("lookup", &target, &clients, ctx.plan(), true)
        .await
        .with("request_bytes", lookup_bytes)
        .against(Some(&base));
    report.baseline = Some(base);
    report.rows.push(list);
    report.rows.push(lookup);
    report.note(format!(
        "{} signed-in clients, each with its own UDP socket and Link, window {}; list request {} B, reply {} B (the echo baseline uses these sizes)",
        ctx.clients, ctx.window, shape.request_bytes, shape.reply_bytes
    ));
    report.note("lookup answers from memory (presence, and the identity keys looked up lately; SQLite on a blocking thread for one not among them); list reads only the presence");
    Ok(report)
}

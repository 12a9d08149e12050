//! `nodes`: several server nodes on one PostgreSQL against one node, in
//! the same run. Three deployments, each started fresh: one node on its
//! SQLite file (the default), one node on PostgreSQL, and N nodes on
//! PostgreSQL. On each, `rpc`'s `list` and `lookup` (clients alternate
//! between the nodes, and each looks up a user on the next node), and
//! `fanout` with the sender alone on the first node and every other member
//! on the others, so that every delivery crosses nodes (through the
//! database: a commit, a NOTIFY, a read of the log on each other node);
//! and sign-ins at a fixed rate, by accounts spread over the nodes (each
//! an argon2 verification, the shared attempt counts, the `signed_in` row
//! and its NOTIFY, read by every other node). Each row's ratio is to the
//! same row on one SQLite node.
//!
//! PostgreSQL: a database of its own per deployment, on the cluster
//! `UDPCHAT_TEST_DATABASE` names, or on a throw-away cluster started with
//! `.ci/postgres.sh` (see docs/OPERATIONS.md).

use super::{params_with, rpc, Ctx};
use crate::clients::SimClient;
use crate::report::{Report, Row};
use crate::server::Target;

/// Nodes in the several-node deployment [default].
pub const NODES: usize = 3;

/// Sign-ins per second during the sign-in rows [default; quick: 5].
pub const SIGNIN_RATE: f64 = 10.0;

/// What to measure on each deployment: `nodes` does everything; `rpc
/// --nodes N` and `fanout --nodes N` their own part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    Both,
    Rpc,
    Fanout,
}

impl Parts {
    fn rpc(self) -> bool {
        self != Parts::Fanout
    }

    fn fanout(self) -> bool {
        self != Parts::Rpc
    }

    fn name(self) -> &'static str {
        match self {
            Parts::Both => "nodes",
            Parts::Rpc => "rpc-nodes",
            Parts::Fanout => "fanout-nodes",
        }
    }
}
/// Group sizes measured [default; quick: 10].
pub const MEMBERS: [usize; 2] = [10, 100];

pub async fn run(
    ctx: &Ctx,
    nodes: usize,
    members: &[usize],
    parts: Parts,
) -> anyhow::Result<Report> {
    let nodes = nodes.max(2);
    let members = if parts.fanout() { members } else { &[] };
    let mut report = Report::new(
        parts.name(),
        params_with(
            ctx,
            serde_json::json!({ "nodes": nodes, "members": members }),
        ),
    );
    report.ratio_to = "x sqlite";
    let one = ctx.server()?;
    let sqlite = deployment_rows(ctx, &[one], members, parts, "sqlite 1 node").await?;
    let Some(db1) = udpchat_tests::postgres::scratch_database() else {
        anyhow::bail!("no PostgreSQL: set UDPCHAT_TEST_DATABASE or install PostgreSQL");
    };
    let pg1 = ctx.source.start_nodes(1, &db1.url)?;
    let pg1 = deployment_rows(ctx, &pg1, members, parts, "postgres 1 node").await?;
    let db_n = udpchat_tests::postgres::scratch_database().expect("the cluster is there");
    let pg_n = ctx.source.start_nodes(nodes, &db_n.url)?;
    let label = format!("postgres {nodes} nodes");
    let pg_n = deployment_rows(ctx, &pg_n, members, parts, &label).await?;
    for (i, row) in sqlite.iter().enumerate() {
        report.rows.push(row.clone().against(Some(row)));
        for other in [&pg1, &pg_n] {
            report.rows.push(other[i].clone().against(Some(row)));
        }
    }
    report.note(format!(
        "ratios are to the same row on one SQLite node; {} clients for list and lookup, alternating between the nodes, each looking up a user on the next node; fanout: the sender alone on the first node, the other members on the other nodes, so that on N nodes every delivery crosses nodes",
        ctx.clients
    ));
    report.note("server CPU is the first node's only (several nodes run as several processes)");
    Ok(report)
}

/// `list`, `lookup` and fanout rows on one deployment (its nodes), those
/// `parts` asks for.
async fn deployment_rows(
    ctx: &Ctx,
    nodes: &[Target],
    members: &[usize],
    parts: Parts,
    label: &str,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    if parts.rpc() {
        rows.extend(rpc_rows(ctx, nodes, label).await?);
    }
    if parts == Parts::Both {
        rows.push(signin_row(ctx, nodes, label).await?);
    }
    let n = nodes.len();
    // The sender (member 0) on node 0; the others on the other nodes.
    let place = move |i: usize| {
        if i == 0 || n == 1 {
            0
        } else {
            1 + (i - 1) % (n - 1)
        }
    };
    let plan = crate::load::Plan {
        window: 8,
        ..ctx.plan()
    };
    let shape = super::fanout::Shape {
        members,
        senders: 1,
        kinds: &[super::fanout::Kind::Plain],
    };
    let fanout = super::fanout::group_rows(
        ctx,
        nodes,
        &place,
        &shape,
        plan,
        &format!("{label}: fanout"),
    )
    .await?;
    rows.extend(fanout);
    Ok(rows)
}

/// Sign-ins at [`SIGNIN_RATE`] (open loop) for the measured stretch, by
/// accounts spread over the nodes.
async fn signin_row(ctx: &Ctx, nodes: &[Target], label: &str) -> anyhow::Result<Row> {
    use super::signin_storm::{storm_at, STORM_ACCOUNTS};
    let mut accounts = Vec::new();
    for k in 0..STORM_ACCOUNTS {
        let node = &nodes[k % nodes.len()];
        accounts.extend(
            crate::clients::sign_up_many(&node.server, &ctx.users(&format!("in{k}n")), 1, 1)
                .await?,
        );
    }
    let rate = if ctx.quick { 5.0 } else { SIGNIN_RATE };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let storm = tokio::spawn(storm_at(accounts, rate, stop.clone(), ctx.warmup));
    tokio::time::sleep(ctx.warmup).await;
    let watch = crate::procfs::Watch::start(nodes[0].pid);
    tokio::time::sleep(ctx.duration).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let server = watch.usage();
    let mut row = storm.await?;
    row.name = format!("{label}: sign-in at {rate}/s");
    row.server = server;
    Ok(row)
}

/// `list` and `lookup` with clients alternating between the nodes.
async fn rpc_rows(ctx: &Ctx, nodes: &[Target], label: &str) -> anyhow::Result<Vec<Row>> {
    let mut clients: Vec<SimClient> = Vec::new();
    let per_node = ctx.clients.div_ceil(nodes.len());
    let signed_up: Vec<Vec<SimClient>> = {
        let mut all = Vec::new();
        for (k, node) in nodes.iter().enumerate() {
            let prefix = ctx.users(&format!("rpc{k}n"));
            all.push(
                crate::clients::sign_up_many(&node.server, &prefix, per_node, rpc::SIGNUP_PARALLEL)
                    .await?,
            );
        }
        all
    };
    // Alternating: client i on node i % N, so that the next one is on the
    // next node.
    for i in 0..per_node {
        for node in &signed_up {
            clients.push(node[i].clone());
        }
    }
    let list = rpc::measure(
        &format!("{label}: list"),
        &nodes[0],
        &clients,
        ctx.plan(),
        false,
    )
    .await;
    let lookup = rpc::measure(
        &format!("{label}: lookup"),
        &nodes[0],
        &clients,
        ctx.plan(),
        true,
    )
    .await;
    Ok(vec![list, lookup])
}

//! `udpchat-bench`: measures udpchat on this machine, side by side with
//! what the machine allows (a UDP echo baseline) and with a real chat
//! server (ngircd, through `bench/peers/ngircd.sh`), in one run. Each
//! scenario prints a table and writes `OUT/SCENARIO.json`; see
//! docs/PERFORMANCE.md for what each measures and the figures.
#![forbid(unsafe_code)]

mod clients;
mod fanout_track;
mod irc;
mod load;
mod procfs;
mod raw;
mod relay;
mod report;
mod scenarios;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::report::Report;
use crate::scenarios::fanout::IrcPeer;
use crate::scenarios::Ctx;
use crate::server::ServerSource;

/// Load generator and baselines for udpchat.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Measures udpchat against a UDP echo baseline and a real IRC server, on this machine, in one run.",
    after_help = "Examples:\n  udpchat-bench --quick all                 # every scenario, briefly (CI smoke)\n  udpchat-bench rpc --clients 64 --duration 10\n  udpchat-bench p2p --loss 0.05\n  udpchat-bench conversation --client-bin OLD/udpchat --server-bin OLD/udpchat-server\n  udpchat-bench flood --rate 6000           # junk HELLOs beside a steady load\n  bench/peers/ngircd.sh                     # fanout against ngircd, side by side"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Args)]
struct Common {
    /// Short runs with few clients: finishes in under a minute (CI smoke).
    #[arg(long, global = true)]
    quick: bool,
    /// Seconds each measured stretch lasts [default: 10, quick 1; soak 3600, quick 30].
    #[arg(long, global = true, value_name = "SECS")]
    duration: Option<f64>,
    /// Seconds run before each measured stretch, not counted [default: 2, quick 0.3].
    #[arg(long, global = true, value_name = "SECS")]
    warmup: Option<f64>,
    /// Seeds the loss relay and anything else random that shapes a run.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Simulated clients for request-reply loads [default: 64, quick 8].
    #[arg(long, global = true)]
    clients: Option<usize>,
    /// Requests each client keeps outstanding.
    #[arg(long, global = true, default_value_t = 2)]
    window: usize,
    /// Use this running server instead of starting one (needs --server-key).
    #[arg(long, global = true, value_name = "ADDR", requires = "server_key")]
    server: Option<SocketAddr>,
    /// The running server's public key (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    server_key: Option<PathBuf>,
    /// The udpchat-server binary to start [default: next to this one].
    #[arg(long, global = true, value_name = "FILE")]
    server_bin: Option<PathBuf>,
    /// Where the JSON results go.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "target/bench-results"
    )]
    out: PathBuf,
    /// No progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Debug, Args, Clone)]
struct NodesArgs {
    /// Nodes in the several-node deployment.
    #[arg(long, default_value_t = scenarios::nodes::NODES)]
    nodes: usize,
    /// Group sizes for the fan-out rows [default: 10,100; quick 10].
    #[arg(long, value_delimiter = ',')]
    members: Vec<usize>,
}

#[derive(Debug, Args, Clone)]
struct RpcArgs {
    /// Also on N server nodes sharing one PostgreSQL (clients alternating
    /// between them, each looking up a user on the next node), against one
    /// SQLite node and one PostgreSQL node in the same run (as `nodes`).
    #[arg(long, value_name = "N")]
    nodes: Option<usize>,
}

#[derive(Debug, Args, Clone)]
struct FanoutArgs {
    /// Group sizes (members in all, the sender included) [default: 10,100,1000; quick 10].
    #[arg(long, value_delimiter = ',')]
    members: Vec<usize>,
    /// On N server nodes sharing one PostgreSQL instead (the sender alone
    /// on the first, every other member on the others, so that every
    /// delivery crosses nodes), against one SQLite node and one PostgreSQL
    /// node in the same run (as `nodes`) [default members: 10,100].
    #[arg(long, value_name = "N")]
    nodes: Option<usize>,
    /// Messages not yet at every member, at most (per sender).
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Members sending at once, each keeping --inflight messages going
    /// (udpchat rows only: the IRC rows keep one sender).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    senders: u16,
    /// Also run the load through this IRC server (see bench/peers/ngircd.sh).
    #[arg(long, value_name = "ADDR")]
    irc: Option<SocketAddr>,
    /// The IRC server's process id, for its CPU and memory.
    #[arg(long, value_name = "PID", requires = "irc")]
    irc_pid: Option<u32>,
}

#[derive(Debug, Args, Clone)]
struct StormArgs {
    /// Sign-ins per second during the storm [default: 10, quick 5].
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Debug, Args, Clone)]
struct P2pArgs {
    /// Drop this fraction of datagrams each way, through a relay (0..1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Messages unacknowledged at most.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Open the session through the server's relay, as for two clients a
    /// symmetric NAT keeps apart (a server is started for it).
    #[arg(long)]
    through_server: bool,
    /// The message sizes to measure, in bytes [default: 100,1024,16384]
    /// (one alone, to profile it).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
}

#[derive(Debug, Args, Clone)]
struct ConversationArgs {
    /// The udpchat client binary to run [default: next to this one].
    #[arg(long, value_name = "FILE")]
    client_bin: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
struct PresenceArgs {
    /// Idle signed-in clients, one server per count [default: 1000,10000,100000; quick 50].
    #[arg(long, value_delimiter = ',')]
    counts: Vec<usize>,
    /// Seconds of idling measured [default: 30, quick 3].
    #[arg(long)]
    idle: Option<f64>,
    /// The server's --presence-limit (signed-in users up to which everyone
    /// hears of every sign-in) [default: the server's, 1000].
    #[arg(long)]
    presence_limit: Option<usize>,
}

#[derive(Debug, Args, Clone)]
struct FloodCli {
    /// Junk HELLOs per second, all attacking sockets together.
    #[arg(long, default_value_t = scenarios::flood::RATE)]
    rate: f64,
    /// Attacking sockets, one per loopback address from 127.0.0.2 (1..=250).
    #[arg(long, default_value_t = scenarios::flood::SOURCES,
          value_parser = clap::value_parser!(u8).range(1..=250))]
    sources: u8,
    /// `list` requests per second per signed-in client (--clients of them
    /// [default: 32, quick 8]).
    #[arg(long, default_value_t = scenarios::flood::LIST_RATE)]
    list_rate: f64,
    /// Only the spoofed flood: no phase whose attackers use their cookies,
    /// nor one of KEY REQUESTs.
    #[arg(long)]
    spoofed_only: bool,
}

#[derive(Debug, Args, Clone)]
struct FragmentsCli {
    /// Sessions holding fragments [default: 50, quick 5].
    #[arg(long)]
    sessions: Option<usize>,
    /// KiB of fragments each session sends [default: 5120, quick 1024].
    #[arg(long, value_name = "KIB")]
    per_session_kib: Option<usize>,
    /// Datagrams per second, all sessions together.
    #[arg(long, default_value_t = scenarios::fragments::RATE)]
    rate: f64,
    /// Seconds watched after the last fragment [default: 40, quick 3].
    #[arg(long, value_name = "SECS")]
    hold: Option<f64>,
}

#[derive(Debug, Args, Clone)]
struct OfflineArgs {
    /// Messages queued for the offline user [default: 1000, quick 50].
    #[arg(long)]
    messages: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// The baseline: a minimal UDP echo server, same load, same sizes.
    UdpEcho,
    /// Signed-in clients asking `list` and `lookup` as fast as replies come.
    Rpc(RpcArgs),
    /// New encrypted sessions per second, against the P-384 bound.
    Handshake,
    /// The rpc p99 with and without sign-ins (argon2) at a fixed rate.
    SigninStorm(StormArgs),
    /// Two clients: 100 B, 1 KiB, 16 KiB messages end to end.
    P2p(P2pArgs),
    /// One sender, a group of M members (and an IRC channel with --irc).
    Fanout(FanoutArgs),
    /// Several server nodes on one PostgreSQL against one node (SQLite and
    /// PostgreSQL) in the same run: list, lookup, and fan-out whose every
    /// delivery crosses nodes. PostgreSQL: UDPCHAT_TEST_DATABASE, or a
    /// throw-away cluster (.ci/postgres.sh).
    Nodes(NodesArgs),
    /// Two real udpchat clients (the binaries) writing to each other.
    Conversation(ConversationArgs),
    /// K idle signed-in clients keeping alive: memory and CPU per client.
    Presence(PresenceArgs),
    /// Queueing and draining messages for an offline user.
    Offline(OfflineArgs),
    /// Junk HELLOs (spoofed, then with cookies) beside a steady `list`
    /// load and sign-ins every 250 ms.
    Flood(FloodCli),
    /// Sessions sending the first fragments of large messages, never the
    /// last: the server's memory.
    Fragments(FragmentsCli),
    /// Sessions opened and never signed in: the server's memory.
    Bare {
        /// Handshakes made [default: 100000, quick 500].
        #[arg(long)]
        handshakes: Option<usize>,
    },
    /// An hour of real clients signing in, messaging, signing out: lost, duplicated, RSS.
    Soak(scenarios::soak::SoakArgs),
    /// Every scenario, in this order.
    All {
        #[command(flatten)]
        fanout: FanoutArgs,
    },
    /// (internal) The baseline's echo server.
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        bind: SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Scenario::EchoServer { bind } = cli.scenario {
        return server::run_echo_server(bind);
    }
    let common = cli.common;
    if common.no_progress {
        load::disable_progress();
    }
    let quick = common.quick;
    let source = match (common.server, common.server_key.clone()) {
        (Some(addr), Some(key)) => ServerSource::Running { addr, key },
        _ => ServerSource::Spawn(
            common
                .server_bin
                .clone()
                .unwrap_or_else(server::default_server_binary),
        ),
    };
    let seconds = |v: Option<f64>, full: f64, short: f64| {
        Duration::from_secs_f64(v.unwrap_or(if quick { short } else { full }).max(0.0))
    };
    let ctx = Ctx {
        source,
        duration: match cli.scenario {
            Scenario::Soak(_) => seconds(common.duration, 3600.0, 30.0),
            _ => seconds(common.duration, 10.0, 1.0),
        },
        warmup: seconds(common.warmup, 2.0, 0.3),
        quick,
        seed: common.seed,
        clients: common.clients.unwrap_or(if quick { 8 } else { 64 }).max(2),
        window: common.window.max(1),
        run_tag: format!("{:06x}", rand::random::<u32>() & 0xff_ffff),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let reports = runtime.block_on(run(&ctx, common.clients, cli.scenario));
    let mut failed = false;
    for report in &reports {
        report.print();
        let path = report.write(&common.out)?;
        println!("  wrote {}", path.display());
        failed |= report
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("failed"));
    }
    // Sockets and tasks of the last scenario go with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if failed {
        anyhow::bail!("a scenario failed (see its report)");
    }
    Ok(())
}

/// `clients`: `--clients` as given (some scenarios have their own default).
async fn run(ctx: &Ctx, clients: Option<usize>, scenario: Scenario) -> Vec<Report> {
    let quick = ctx.quick;
    let fanout = |args: &FanoutArgs| {
        let members = if !args.members.is_empty() {
            args.members.clone()
        } else if quick {
            vec![10]
        } else {
            scenarios::fanout::MEMBERS.to_vec()
        };
        let irc = args.irc.map(|addr| IrcPeer {
            addr,
            pid: args.irc_pid,
        });
        let (inflight, senders) = (args.inflight, usize::from(args.senders));
        async move { scenarios::fanout::run(ctx, &members, inflight, senders, irc).await }
    };
    let nodes_members = |members: &[usize]| {
        if !members.is_empty() {
            members.to_vec()
        } else if quick {
            vec![10]
        } else {
            scenarios::nodes::MEMBERS.to_vec()
        }
    };
    let storm_rate = |args: &StormArgs| args.rate.unwrap_or(if quick { 5.0 } else { 10.0 });
    let presence_counts = |args: &PresenceArgs| {
        if !args.counts.is_empty() {
            args.counts.clone()
        } else if quick {
            vec![50]
        } else {
            scenarios::presence::COUNTS.to_vec()
        }
    };
    let idle = |args: &PresenceArgs| {
        Duration::from_secs_f64(args.idle.unwrap_or(if quick { 3.0 } else { 30.0 }))
    };
    let client_bin = |args: &ConversationArgs| {
        args.client_bin
            .clone()
            .unwrap_or_else(scenarios::conversation::default_client_binary)
    };
    let messages = |args: &OfflineArgs| args.messages.unwrap_or(if quick { 50 } else { 1000 });
    let flood_ctx =
        ctx.with_clients(clients.unwrap_or(if quick { 8 } else { scenarios::flood::CLIENTS }));
    let flood = |args: &FloodCli| scenarios::flood::FloodArgs {
        rate: args.rate.max(1.0),
        sources: usize::from(args.sources),
        list_rate: args.list_rate.max(0.1),
        cookie_phase: !args.spoofed_only,
    };
    let fragments = |args: &FragmentsCli| scenarios::fragments::FragmentArgs {
        sessions: args
            .sessions
            .unwrap_or(if quick {
                5
            } else {
                scenarios::fragments::SESSIONS
            })
            .max(1),
        per_session: args.per_session_kib.map_or(
            if quick {
                1 << 20
            } else {
                scenarios::fragments::PER_SESSION
            },
            |k| k << 10,
        ),
        rate: args.rate.max(1.0),
        hold: Duration::from_secs_f64(
            args.hold
                .unwrap_or(if quick {
                    3.0
                } else {
                    scenarios::fragments::HOLD.as_secs_f64()
                })
                .max(0.0),
        ),
    };
    match scenario {
        Scenario::UdpEcho => vec![settle("udp-echo", scenarios::udp_echo::run(ctx).await)],
        Scenario::Rpc(RpcArgs { nodes: None }) => {
            vec![settle("rpc", scenarios::rpc::run(ctx).await)]
        }
        Scenario::Rpc(RpcArgs { nodes: Some(n) }) => vec![settle(
            "rpc-nodes",
            scenarios::nodes::run(ctx, n, &[], scenarios::nodes::Parts::Rpc).await,
        )],
        Scenario::Fanout(FanoutArgs {
            nodes: Some(n),
            members,
            ..
        }) => {
            let members = nodes_members(&members);
            vec![settle(
                "fanout-nodes",
                scenarios::nodes::run(ctx, n, &members, scenarios::nodes::Parts::Fanout).await,
            )]
        }
        Scenario::Handshake => vec![settle("handshake", scenarios::handshake::run(ctx).await)],
        Scenario::SigninStorm(args) => vec![settle(
            "signin-storm",
            scenarios::signin_storm::run(ctx, storm_rate(&args)).await,
        )],
        Scenario::P2p(args) => vec![settle(
            "p2p",
            scenarios::p2p::run(
                ctx,
                args.loss,
                args.inflight,
                args.through_server,
                args.sizes.clone(),
            )
            .await,
        )],
        Scenario::Fanout(args) => vec![settle("fanout", fanout(&args).await)],
        Scenario::Nodes(args) => {
            let members = nodes_members(&args.members);
            vec![settle(
                "nodes",
                scenarios::nodes::run(ctx, args.nodes, &members, scenarios::nodes::Parts::Both)
                    .await,
            )]
        }
        Scenario::Conversation(args) => vec![settle(
            "conversation",
            scenarios::conversation::run(ctx, &client_bin(&args)).await,
        )],
        Scenario::Presence(args) => vec![settle(
            "presence",
            scenarios::presence::run(
                ctx,
                &presence_counts(&args),
                idle(&args),
                args.presence_limit,
            )
            .await,
        )],
        Scenario::Offline(args) => vec![settle(
            "offline",
            scenarios::offline::run(ctx, messages(&args)).await,
        )],
        Scenario::Flood(args) => vec![settle(
            "flood",
            scenarios::flood::run(&flood_ctx, flood(&args)).await,
        )],
        Scenario::Bare { handshakes } => {
            let count = handshakes.unwrap_or(if ctx.quick {
                500
            } else {
                scenarios::bare::COUNT
            });
            vec![settle("bare", scenarios::bare::run(ctx, count).await)]
        }
        Scenario::Fragments(args) => vec![settle(
            "fragments",
            scenarios::fragments::run(ctx, fragments(&args)).await,
        )],
        Scenario::Soak(args) => vec![settle("soak", scenarios::soak::run(ctx, &args).await)],
        Scenario::All {
            fanout: fanout_args,
        } => {
            let presence = PresenceArgs {
                counts: Vec::new(),
                idle: None,
                presence_limit: None,
            };
            vec![
                settle("udp-echo", scenarios::udp_echo::run(ctx).await),
                settle("rpc", scenarios::rpc::run(ctx).await),
                settle("handshake", scenarios::handshake::run(ctx).await),
                settle(
                    "signin-storm",
                    scenarios::signin_storm::run(ctx, storm_rate(&StormArgs { rate: None })).await,
                ),
                settle("p2p", scenarios::p2p::run(ctx, 0.0, 16, false, None).await),
                settle("fanout", fanout(&fanout_args).await),
                settle(
                    "conversation",
                    scenarios::conversation::run(
                        ctx,
                        &client_bin(&ConversationArgs { client_bin: None }),
                    )
                    .await,
                ),
                settle(
                    "presence",
                    scenarios::presence::run(
                        ctx,
                        &presence_counts(&presence),
                        idle(&presence),
                        None,
                    )
                    .await,
                ),
                settle(
                    "offline",
                    scenarios::offline::run(ctx, messages(&OfflineArgs { messages: None })).await,
                ),
                settle(
                    "flood",
                    scenarios::flood::run(
                        &flood_ctx,
                        flood(&FloodCli {
                            rate: scenarios::flood::RATE,
                            sources: scenarios::flood::SOURCES,
                            list_rate: scenarios::flood::LIST_RATE,
                            spoofed_only: false,
                        }),
                    )
                    .await,
                ),
                settle(
                    "fragments",
                    scenarios::fragments::run(
                        ctx,
                        fragments(&FragmentsCli {
                            sessions: None,
                            per_session_kib: None,
                            rate: scenarios::fragments::RATE,
                            hold: None,
                        }),
                    )
                    .await,
                ),
            ]
        }
        Scenario::EchoServer { .. } => Vec::new(),
    }
}

/// A scenario's report, or one saying why there is none: "not
/// available" when the server does not know a command the scenario needs
/// (a feature not built yet), "failed" otherwise.
fn settle(scenario: &str, result: anyhow::Result<Report>) -> Report {
    result.unwrap_or_else(|e| {
        let error = format!("{e:#}");
        let reason = if error.contains(udpchat_core::error::Code::UnknownCommand.as_str()) {
            format!("not available yet: the server does not know a command this scenario needs ({error})")
        } else {
            format!("failed: {error}")
        };
        Report::unavailable(scenario, serde_json::Value::Null, reason)
    })
}

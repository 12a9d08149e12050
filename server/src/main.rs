//! `udpchat-server`: accounts, presence and the list of who is online, on
//! 127.0.0.1:4590 unless told otherwise. `udpchat-server user ...` and
//! `udpchat-server group ...` manage accounts and groups in the same data
//! dir without starting the server.
#![forbid(unsafe_code)]

mod accounts;
mod cluster;
mod dispatch;
mod groups;
mod keys;
mod mailbox;
mod metrics;
mod operator;
mod state;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::UdpSocket;
use udpchat_net::Link;

/// The udpchat server.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "The udpchat server: accounts, presence and the list of who is online.",
    after_help = "Examples:\n  udpchat-server                          # listen on 127.0.0.1:4590, data in ./udpchat-data\n  udpchat-server --bind 0.0.0.0:9090      # every interface, port 9090\n  udpchat-server -sp 9090                 # port 9090 (seed B's form)\n  udpchat-server --key /etc/udpchat/server.priv\n  udpchat-server --database postgres://udpchat:PASSWORD@db.example/udpchat   # one of several nodes (docs/OPERATIONS.md)\n  udpchat-server user add alice           # create an account (asks for the password)\n  udpchat-server user list\n  udpchat-server group add group1 alice bob charlie eve   # a group only the operator manages"
)]
struct Cli {
    /// Address and port to listen on.
    #[arg(long, short = 'b', value_name = "ADDR", default_value = udpchat_core::DEFAULT_SERVER)]
    bind: SocketAddr,
    /// The port to listen on, at --bind's address (seed B's `-sp PORT`).
    #[arg(long = "sp", value_name = "PORT")]
    port: Option<u16>,
    /// Where the server keeps its key and its database.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "udpchat-data",
        global = true
    )]
    data_dir: PathBuf,
    /// The database: postgres://USER:PASSWORD@HOST/DATABASE for several
    /// nodes on one PostgreSQL, or sqlite:PATH [default: the SQLite file
    /// udpchat.sqlite3 in the data dir]
    #[arg(
        long,
        value_name = "URL",
        env = "UDPCHAT_DATABASE",
        global = true,
        hide_env_values = true
    )]
    database: Option<String>,
    /// Serve metrics (sessions, queue depths, delivery latency, mail
    /// waiting) at http://ADDR/metrics in the Prometheus text format; keep
    /// ADDR private (e.g. 127.0.0.1:9590): it has no authentication
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// CA certificates (PEM) to verify PostgreSQL's certificate with, over
    /// TLS (`sslmode=require` in the URL), beside the system's roots
    #[arg(long, value_name = "FILE", env = "UDPCHAT_DATABASE_CA", global = true)]
    database_ca: Option<PathBuf>,
    /// The server's private key (PKCS#8 PEM); default DATA_DIR/server.priv,
    /// made on first start.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Sign out a client not heard from for this long (clients send a
    /// keepalive three times per timeout).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    presence_timeout: u64,
    /// Up to this many signed in, all hear who comes and goes; past it, only
    /// those who asked about the user (looked up, messaged) or share a group
    #[arg(long, value_name = "USERS", default_value_t = udpchat_core::presence::BROADCAST_LIMIT)]
    presence_limit: usize,
    /// Memory per password hash (argon2id); lower only for tests and
    /// benchmarks (hashes are remade at the next sign-in)
    #[arg(long, value_name = "KIB", default_value_t = accounts::password::DEFAULT_MEMORY_KIB)]
    password_memory: u32,
    /// Accounts one address (an IPv4 address or an IPv6 /64) may make per
    /// hour.
    #[arg(long, value_name = "N", default_value_t = accounts::DEFAULT_SIGNUPS_PER_HOUR)]
    signups_per_hour: u32,
    /// Sessions one address (an IPv4 address or an IPv6 /64) may hold.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    sessions_per_address: usize,
    /// Under a handshake flood, new sessions one address may open per
    /// second (the others get a cookie round trip first).
    #[arg(long, value_name = "N", default_value_t = 20)]
    handshakes_per_address: u32,
    /// Threads that work out new sessions' handshakes (P-384), beside the
    /// network thread [default: one per core]; 0 works them out on the
    /// network thread, between its datagrams.
    #[arg(long, value_name = "N")]
    handshake_threads: Option<usize>,
    /// Delete messages kept for offline users after this long, telling
    /// their senders.
    #[arg(long, value_name = "SECS", default_value_t = 7 * 24 * 3600)]
    offline_ttl: u64,
    /// Bytes the relay carries at most for one pair of clients that could
    /// not reach each other directly (both ways, end to end encrypted);
    /// 0 turns the relay off.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    relay_budget: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage accounts (the server may be running).
    #[command(subcommand)]
    User(operator::UserCommand),
    /// Manage groups (the server may be running).
    #[command(subcommand)]
    Group(groups::admin::GroupCommand),
    /// Bring the database's schema up to this version's, then stop (the
    /// server also does this when it starts).
    Migrate,
    /// The nodes sharing the database, and how many users are signed in on
    /// each.
    Status,
}

/// jemalloc, for the C code too (SQLite): at 10,000 idle clients each
/// costs the server 140-300 bytes less than under glibc's malloc, which
/// kept more of what the sign-ins' argon2 and SQLite work had used
/// (docs/PERFORMANCE.md, sixteenth part). The `jemalloc` feature is on by
/// default; `bench/peers/server-heap.sh` builds without it.
#[cfg(all(target_os = "linux", feature = "jemalloc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse_from(udpchat_core::seed_flags::rewritten(std::env::args_os()));
    if let Some(port) = cli.port {
        cli.bind.set_port(port);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "udpchat=info,udpchat_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    udpchat_commands::link();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command.take() {
        Some(Command::User(command)) => {
            let store = open_store(&cli)?;
            runtime.block_on(operator::run(store, command))
        }
        Some(Command::Group(command)) => {
            let store = open_store(&cli)?;
            groups::admin::run(&*store, command)
        }
        Some(Command::Migrate) => {
            let store = open_store(&cli)?;
            println!(
                "{}: schema at version {}",
                store.describe(),
                store.schema_version()?
            );
            Ok(())
        }
        Some(Command::Status) => {
            let store = open_store(&cli)?;
            let postgres = store.clone().postgres();
            for line in cluster::status(&*store, postgres.as_deref())? {
                println!("{line}");
            }
            Ok(())
        }
        None => {
            // Opened before the runtime's tasks start: opening blocks.
            let store = open_store(&cli)?;
            runtime.block_on(serve(cli, store))
        }
    }
}

/// The store the command line names.
fn open_store(cli: &Cli) -> anyhow::Result<Arc<dyn store::Backend>> {
    store::open(
        cli.database.as_deref(),
        cli.database_ca.as_deref(),
        &cli.data_dir,
    )
}

async fn serve(cli: Cli, store: Arc<dyn store::Backend>) -> anyhow::Result<()> {
    let key = keys::load_or_create(&cli.data_dir, cli.key.as_deref())?;
    tracing::info!(database = %store.describe(), "store open");
    let hasher = accounts::password::Hasher::with_memory_kib(cli.password_memory)
        .map_err(|e| anyhow::anyhow!(e))
        .context("--password-memory")?;
    if cli.password_memory < accounts::password::DEFAULT_MEMORY_KIB {
        tracing::warn!(
            kib = cli.password_memory,
            "password hashes take less memory than OWASP's minimum: for tests and benchmarks only"
        );
    }
    let mut accounts = accounts::PasswordAccounts::with_hasher(store.clone(), hasher)
        .with_signups_per_hour(cli.signups_per_hour);
    if let Some(shared) = store.clone().postgres() {
        // Other nodes may share the database: count attempts there.
        accounts = accounts.shared_with(shared, cli.signups_per_hour);
    }
    let groups_store: Arc<dyn groups::GroupStore> = store.clone();
    let mailbox = mailbox::StoredMail::new(store.clone(), store.clone());
    // Listening before the server says it is: scrapers may come at once.
    let metrics_listener = match cli.metrics {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics: cannot listen on {addr}"))?;
            // Tests and scripts read this line: the port is known only now.
            println!(
                "udpchat-server metrics at http://{}/metrics",
                listener.local_addr()?
            );
            Some(listener)
        }
        None => None,
    };
    let socket = UdpSocket::bind(cli.bind)
        .await
        .with_context(|| format!("cannot listen on {}", cli.bind))?;
    let config = udpchat_core::secure::SecureConfig {
        max_sessions_per_source: cli.sessions_per_address,
        handshakes_per_source_per_sec: cli.handshakes_per_address,
        handshakes_per_source_burst: cli.handshakes_per_address.saturating_add(10),
        relay_budget: cli.relay_budget.saturating_mul(1024 * 1024),
        // A signed-in client not heard from for this long is signed out:
        // its session closes, and with it the sign-in.
        confirmed_silence: Some(Duration::from_secs(cli.presence_timeout.max(1))),
        ..udpchat_core::secure::SecureConfig::server()
    };
    let (link, driver) = Link::server(socket, key, config)?;
    // Tests and scripts wait for this line: the port is known only now.
    println!("udpchat-server listening on {}", link.local_addr());
    let cluster = store.clone().postgres().map(cluster::Cluster::new);
    let server = Arc::new(state::ServerState::new(
        link.clone(),
        accounts,
        mailbox,
        groups_store,
        cli.presence_limit,
        cluster.clone(),
    ));
    let requests = Arc::<parking_lot::Mutex<dispatch::Admission>>::default();
    let metrics = metrics::Metrics::new(link.clone(), server.clone(), requests.clone(), store);
    if let Some(listener) = metrics_listener {
        tokio::spawn(metrics::endpoint::serve(listener, metrics.clone()));
    }
    if let Some(cluster) = &cluster {
        cluster.start(&server, link.local_addr(), metrics).await?;
    }
    let handshake_threads = cli.handshake_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    driver.handshake_threads(handshake_threads).run_on_thread(
        "udpchat-net",
        dispatch::Dispatcher::new(server.clone(), link.clone(), requests),
    )?;
    tokio::spawn(server.clone().send_presence(Duration::from_millis(100)));
    tokio::spawn(
        server
            .clone()
            .expire_mail(Duration::from_secs(cli.offline_ttl.max(1))),
    );
    shutdown_signal().await;
    let stats = link.stats().await;
    tracing::info!(
        datagrams = stats.relayed_datagrams,
        bytes = stats.relayed_bytes,
        refused = stats.relay_refused,
        "relayed between clients"
    );
    server.going_down(Duration::from_secs(2)).await;
    println!("udpchat-server stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

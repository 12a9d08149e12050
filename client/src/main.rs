//! `udpchat`: the client. An interactive shell when stdin is a terminal;
//! otherwise one command per input line and one event per output line
//! (`--json` for JSON objects).
#![forbid(unsafe_code)]

mod dispatch;
mod render;
mod shell;
mod state;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::UdpSocket;
use udpchat_core::context::Client;
use udpchat_core::transport::Config;
use udpchat_net::Link;

/// The udpchat client.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "The udpchat client: sign in, see who is online and chat.",
    after_help = "Examples:\n  udpchat -u alice                         # sign in as alice on 127.0.0.1:4590\n  udpchat -u bob --server 10.0.0.5:9090    # another server\n  printf 'list\\n' | udpchat -u carole --json   # scripted, one JSON event per line"
)]
struct Cli {
    /// Sign in under this name at start.
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    /// The server's address.
    #[arg(short = 's', long, value_name = "HOST:PORT", default_value = udpchat_core::DEFAULT_SERVER)]
    server: String,
    /// Local address to listen on for messages from other clients.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:0")]
    bind: SocketAddr,
    /// Scripted mode: write each event as one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    udpchat_commands::link();

    let server = resolve(&cli.server).await?;
    let socket = UdpSocket::bind(cli.bind)
        .await
        .with_context(|| format!("cannot listen on {}", cli.bind))?;
    let (link, incoming) = Link::spawn(socket, Config::default())?;
    let interactive = std::io::stdin().is_terminal() && !cli.json;
    let (printer, outputs) = render::Printer::new(if cli.json {
        render::Format::Json
    } else {
        render::Format::Text
    });
    if cli.json {
        // Scripts learn the client's own address (peers see it in messages).
        printer.emit(
            udpchat_core::output::Output::new("ready", "")
                .with("addr", link.local_addr().to_string()),
        );
    }
    let state = Arc::new(state::ClientState::new(server, link, printer));
    let client: Client = state.clone();
    tokio::spawn(dispatch::serve_pushes(
        client.clone(),
        state.link().clone(),
        incoming,
    ));

    if interactive {
        shell::interactive(client, state.clone(), cli.user, outputs).await
    } else {
        tokio::spawn(render::print_lines(outputs));
        shell::scripted(client, state, cli.user).await;
        Ok(())
    }
}

/// `HOST:PORT`, looked up once at start.
async fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host(server)
        .await
        .with_context(|| format!("cannot resolve server address {server:?} (use HOST:PORT)"))?;
    addrs
        .next()
        .with_context(|| format!("no address for {server}"))
}

//! `udpchat`: the client. An interactive shell when stdin is a terminal;
//! otherwise one command per input line and one event per output line
//! (`--json` for JSON objects).
#![forbid(unsafe_code)]

mod command_line;
mod config;
mod dispatch;
mod keys;
mod local;
mod outcome;
mod peers;
mod render;
mod server;
mod shell;
mod socket;
mod start;
mod state;
mod tasks;
mod trust;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::AsyncBufReadExt;
use udpchat_core::context::Client;
use udpchat_core::crypto::keyfile;
use udpchat_net::Link;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mut cli, in_force) = command_line::parse()?;
    if let Some(command_line::Command::Config) = cli.command {
        println!("{in_force}");
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    udpchat_commands::link();

    // Only its owner may enter the data dir, however it came to be.
    udpchat_core::private_files::dir(&cli.data_dir)
        .with_context(|| format!("cannot make {} private", cli.data_dir.display()))?;
    let servers = resolve(&cli.server).await?;
    let socket = socket::bind(cli.bind)?;
    let own = socket::own_addresses(socket.local_addr()?);
    let pinned = match &cli.server_key {
        Some(path) => Some(keyfile::read_public(path)?),
        None => None,
    };
    let (link, inbound) = Link::spawn_client(socket)?;
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
    let lines: state::InputLines = Arc::new(tokio::sync::Mutex::new(
        tokio::io::BufReader::new(tokio::io::stdin()).lines(),
    ));
    let passwords = if interactive {
        state::PasswordSource::Terminal
    } else {
        state::PasswordSource::Input(lines.clone())
    };
    let state = Arc::new(state::ClientState::new(
        servers,
        link,
        printer,
        cli.data_dir.clone(),
        pinned,
        state::Asking {
            passwords,
            new_device: cli.new_device,
        },
        own,
    ));
    let client: Client = state.clone();
    tokio::spawn(dispatch::serve_pushes(
        client.clone(),
        state.clone(),
        inbound,
    ));
    tokio::spawn(server::keepalive::run(
        client.clone(),
        state.clone(),
        std::time::Duration::from_secs(cli.presence_timeout.max(1)),
    ));
    let outputs = if interactive {
        Some(outputs)
    } else {
        tokio::spawn(render::print_lines(outputs));
        None
    };
    if let Some(user) = &cli.user {
        let password = match (cli.password.take(), cli.password_stdin) {
            (Some(password), _) => Some(zeroize::Zeroizing::new(password)),
            (None, true) => Some(start::password_line(&lines).await?),
            (None, false) => None,
        };
        match start::sign_in(&client, user, password, cli.signup).await {
            Ok(()) => udpchat_commands::unread::at_sign_in(&client),
            Err(e) => state.printer().outcome().sign_in_failed(&e),
        }
    }
    if let Some(outputs) = outputs {
        let bell = !cli.no_bell;
        shell::interactive(
            client,
            state.clone(),
            outputs,
            cli.data_dir,
            bell,
            cli.colour,
        )
        .await
    } else {
        shell::scripted(client, state.clone(), lines).await;
        std::process::exit(state.printer().outcome().code())
    }
}

/// `HOST:PORT[,HOST:PORT...]`, looked up once at start: every address of
/// every name, in order, each once.
async fn resolve(servers: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let mut all: Vec<SocketAddr> = Vec::new();
    for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let addrs = tokio::net::lookup_host(server)
            .await
            .with_context(|| format!("cannot resolve server address {server:?} (use HOST:PORT)"))?;
        for addr in addrs {
            if !all.contains(&addr) {
                all.push(addr);
            }
        }
    }
    anyhow::ensure!(!all.is_empty(), "no address for {servers}");
    Ok(all)
}

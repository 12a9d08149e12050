//! `udpchat`: the client. An interactive shell when stdin is a terminal;
//! otherwise one command per input line and one event per output line
//! (`--json` for JSON objects).
#![forbid(unsafe_code)]

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
use clap::Parser;
use tokio::io::AsyncBufReadExt;
use udpchat_core::context::Client;
use udpchat_core::crypto::keyfile;
use udpchat_net::Link;

/// Examples, and what a scripted run's exit status means (see `outcome`).
const AFTER_HELP: &str = "Examples:
  udpchat -u alice                           # sign in as alice on 127.0.0.1:4590 (asks the password)
  udpchat -u alice --signup                  # create the account first
  udpchat -u bob --server 10.0.0.5:9090 --server-key server.pub
  udpchat -u bob -sip 10.0.0.5 -sp 9090      # the same server, as seed B writes it
  printf 's3cret-enough\\nlist\\n' | udpchat -u carole --password-stdin --json   # scripted

Exit status of a scripted run (stdin not a terminal, or --json):
  0  everything worked
  1  a command, or the delivery of a message you wrote, failed
  2  the command line itself was wrong
  3  the sign-in at start (-u) failed
  4  no udpchat server answered";

/// The udpchat client.
#[derive(Debug, Parser)]
#[command(version, about = "The udpchat client: sign in, see who is online and chat.", after_help = AFTER_HELP)]
struct Cli {
    /// Sign in under this name at start.
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    /// The password for -u (visible to other local users in the process
    /// list: prefer the prompt or --password-stdin).
    #[arg(short = 'p', long, value_name = "PASSWORD", requires = "user")]
    password: Option<String>,
    /// Read the password for -u from the first line of stdin.
    #[arg(long, requires = "user", conflicts_with = "password")]
    password_stdin: bool,
    /// Create the account -u names (then sign in).
    #[arg(long, requires = "user")]
    signup: bool,
    /// The server's public key (PEM); without it the key is trusted on
    /// first use and must not change after.
    #[arg(long, value_name = "FILE")]
    server_key: Option<std::path::PathBuf>,
    /// The server's address; several, comma-separated (or a name with
    /// several addresses), for servers of one deployment sharing one
    /// database and one key: when one goes, the client moves to the next
    /// and signs in again by itself.
    #[arg(short = 's', long, value_name = "HOST:PORT[,HOST:PORT...]", default_value = udpchat_core::DEFAULT_SERVER)]
    server: String,
    /// The server's IP address or name, for its port see --sp (seed B's
    /// `-sip IP -sp PORT`; the same as --server IP:PORT).
    #[arg(long = "sip", value_name = "IP", conflicts_with = "server")]
    server_ip: Option<String>,
    /// The server's port (seed B's `-sp PORT`), at 127.0.0.1 unless --sip
    /// says otherwise.
    #[arg(long = "sp", value_name = "PORT", conflicts_with = "server")]
    server_port: Option<u16>,
    /// Local address to listen on for messages from other clients
    /// [default: `[::]:0`, taking IPv4 and IPv6, or `0.0.0.0:0` without IPv6].
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// The server's presence timeout: the client sends a keepalive three times
    /// per timeout, and says the server is lost after a whole one unanswered.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    presence_timeout: u64,
    /// Scripted mode: write each event as one JSON object per line.
    #[arg(long)]
    json: bool,
    /// In the interactive shell, do not ring the terminal's bell when a
    /// direct message comes from someone you are not in a conversation
    /// with.
    #[arg(long)]
    no_bell: bool,
    /// Where the client keeps its files: known servers, identity keys,
    /// your conversations, the shell's history.
    #[arg(long, value_name = "DIR", default_value = "./udpchat-data/client")]
    data_dir: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse_from(udpchat_core::seed_flags::rewritten(std::env::args_os()));
    if cli.server_ip.is_some() || cli.server_port.is_some() {
        cli.server = seed_server(cli.server_ip.as_deref(), cli.server_port);
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
        passwords,
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
        shell::interactive(client, state.clone(), outputs, cli.data_dir, !cli.no_bell).await
    } else {
        shell::scripted(client, state.clone(), lines).await;
        std::process::exit(state.printer().outcome().code())
    }
}

/// The server seed B's `-sip IP -sp PORT` names, as `--server` takes it;
/// the default's IP or port where one is left off.
fn seed_server(ip: Option<&str>, port: Option<u16>) -> String {
    let default: SocketAddr = udpchat_core::DEFAULT_SERVER
        .parse()
        .expect("the default server is an address");
    let port = port.unwrap_or(default.port());
    match ip {
        None => SocketAddr::new(default.ip(), port).to_string(),
        Some(ip) => match ip.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port).to_string(),
            Err(_) => format!("{ip}:{port}"),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_bs_server_ip_and_port_make_one_address() {
        assert_eq!(seed_server(Some("10.0.0.5"), Some(9090)), "10.0.0.5:9090");
        assert_eq!(seed_server(None, Some(9090)), "127.0.0.1:9090");
        assert_eq!(seed_server(Some("::1"), None), "[::1]:4590");
        assert_eq!(seed_server(Some("chat.example"), Some(1)), "chat.example:1");
    }

    #[test]
    fn sip_and_sp_do_not_mix_with_server() {
        let parsed = Cli::try_parse_from(udpchat_core::seed_flags::rewritten(
            ["udpchat", "-sip", "10.0.0.5", "-s", "10.0.0.6:1"].map(Into::into),
        ));
        assert!(parsed.is_err());
    }
}

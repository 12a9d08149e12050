//! The client's command line, merged with its config file (see `config`):
//! flags first, then the file, then the built-in defaults.

use std::net::SocketAddr;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{self, Colour, Source};

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
#[command(name = "udpchat", version, about = "The udpchat client: sign in, see who is online and chat.", after_help = AFTER_HELP)]
pub struct Cli {
    /// Sign in under this name at start.
    #[arg(short = 'u', long = "user", value_name = "USER", global = true)]
    pub user: Option<String>,
    /// The password for -u (visible to other local users in the process
    /// list: prefer the prompt or --password-stdin).
    #[arg(short = 'p', long, value_name = "PASSWORD", global = true)]
    pub password: Option<String>,
    /// Read the password for -u from the first line of stdin.
    #[arg(long, conflicts_with = "password", global = true)]
    pub password_stdin: bool,
    /// Create the account -u names (then sign in).
    #[arg(long, global = true)]
    pub signup: bool,
    /// Signing in from a new device (the server holds another identity key
    /// for the account) replaces that key with this device's without
    /// asking: contacts are told it changed, and messages waiting for the
    /// other device cannot be opened here. The shell asks instead.
    #[arg(long, global = true)]
    pub new_device: bool,
    /// The server's public key (PEM); without it the key is trusted on
    /// first use and must not change after.
    #[arg(long, value_name = "FILE", global = true)]
    pub server_key: Option<std::path::PathBuf>,
    /// The server's address; several, comma-separated (or a name with
    /// several addresses), for servers of one deployment sharing one
    /// database and one key: when one goes, the client moves to the next
    /// and signs in again by itself.
    #[arg(short = 's', long, value_name = "HOST:PORT[,HOST:PORT...]", default_value = udpchat_core::DEFAULT_SERVER, global = true)]
    pub server: String,
    /// The server's IP address or name, for its port see --sp (seed B's
    /// `-sip IP -sp PORT`; the same as --server IP:PORT).
    #[arg(
        long = "sip",
        value_name = "IP",
        conflicts_with = "server",
        global = true
    )]
    pub server_ip: Option<String>,
    /// The server's port (seed B's `-sp PORT`), at 127.0.0.1 unless --sip
    /// says otherwise.
    #[arg(
        long = "sp",
        value_name = "PORT",
        conflicts_with = "server",
        global = true
    )]
    pub server_port: Option<u16>,
    /// Local address to listen on for messages from other clients
    /// [default: `[::]:0`, taking IPv4 and IPv6, or `0.0.0.0:0` without IPv6].
    #[arg(long, value_name = "ADDR", global = true)]
    pub bind: Option<SocketAddr>,
    /// The server's presence timeout: the client sends a keepalive three times
    /// per timeout, and says the server is lost after a whole one unanswered.
    #[arg(long, value_name = "SECS", default_value_t = 30, global = true)]
    pub presence_timeout: u64,
    /// Scripted mode: write each event as one JSON object per line.
    #[arg(long, global = true)]
    pub json: bool,
    /// In the interactive shell, do not ring the terminal's bell when a
    /// direct message comes from someone you are not in a conversation
    /// with.
    #[arg(long, global = true)]
    pub no_bell: bool,
    /// Where the client keeps its files: known servers, identity keys,
    /// your conversations, the shell's history.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./udpchat-data/client",
        global = true
    )]
    pub data_dir: std::path::PathBuf,
    /// When to colour the shell: auto (on a terminal, unless NO_COLOR is
    /// set), always or never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = Colour::Auto, alias = "color", global = true)]
    pub colour: Colour,
    /// The config file [default: ~/.config/udpchat/config.toml, else
    /// config.toml in the data dir, if either exists].
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `udpchat` may be asked to do instead of chatting.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the settings in force and where each came from (flags, the
    /// config file, defaults), as TOML a config file can take.
    Config,
}

/// Parses the command line (seed B's `-sip` and `-sp` too) and takes what
/// it left to defaults from the config file; the settings in force, as
/// `udpchat config` shows them.
pub fn parse() -> anyhow::Result<(Cli, String)> {
    let args = udpchat_core::seed_flags::rewritten(std::env::args_os());
    let matches = Cli::command().get_matches_from(args);
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if cli.server_ip.is_some() || cli.server_port.is_some() {
        cli.server = seed_server(cli.server_ip.as_deref(), cli.server_port);
    }
    let found = config::find(cli.config.as_deref(), &cli.data_dir)?;
    let file = found.settings;
    let mut bell = !cli.no_bell;
    let froms = [
        config::merge(
            &matches,
            &["server", "server_ip", "server_port"],
            &mut cli.server,
            file.server,
        ),
        config::merge(&matches, &["user"], &mut cli.user, file.user.map(Some)),
        config::merge(&matches, &["data_dir"], &mut cli.data_dir, file.data_dir),
        config::merge(
            &matches,
            &["server_key"],
            &mut cli.server_key,
            file.server_key.map(Some),
        ),
        config::merge(&matches, &["colour"], &mut cli.colour, file.colour),
        config::merge(&matches, &["no_bell"], &mut bell, file.bell),
        config::merge(
            &matches,
            &["presence_timeout"],
            &mut cli.presence_timeout,
            file.presence_timeout,
        ),
    ];
    cli.no_bell = !bell;
    if cli.user.is_none() && (cli.password.is_some() || cli.password_stdin || cli.signup) {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--password, --password-stdin and --signup need a user: -u USER (or user in the config file)",
            )
            .exit();
    }
    let path = |p: &std::path::Path| config::toml_value(p.display().to_string());
    let values = [
        Some(config::toml_value(cli.server.clone())),
        cli.user.clone().map(config::toml_value),
        Some(path(&cli.data_dir)),
        cli.server_key.as_deref().map(path),
        Some(config::toml_value(cli.colour.word())),
        Some(config::toml_value(bell)),
        Some(config::toml_value(cli.presence_timeout as i64)),
    ];
    let names = [
        "server",
        "user",
        "data_dir",
        "server_key",
        "colour",
        "bell",
        "presence_timeout",
    ];
    let settings: Vec<(&str, Option<String>, Source)> = names
        .into_iter()
        .zip(values)
        .zip(froms)
        .map(|((name, value), from)| (name, value, from))
        .collect();
    Ok((cli, config::shown(found.path.as_deref(), &settings)))
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

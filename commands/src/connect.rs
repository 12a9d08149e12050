//! `connect <ip> <port>`: points the client at another server, without
//! signing in (signing out of the current one first).

use std::net::{IpAddr, SocketAddr};

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::Client;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

use crate::ping::Ping;

/// `connect`: the shell command.
pub struct Connect;

register! {
    Command::new("connect", "Use the server at IP and PORT (does not sign in).")
        .args(&[Arg::one("ip", ArgKind::Host), Arg::one("port", ArgKind::Port)])
        .examples(&["connect 127.0.0.1 4590"])
        .shell::<Connect>()
}

impl Shell for Connect {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let server = parse(args.word(0), args.word(1))?;
        // Signing out of the old server is best effort: it may be the
        // reason for switching.
        let _ = crate::logout::sign_out(&client).await;
        client.session().lock().server = server;
        client.server().request::<Ping>(&()).await.map_err(|e| {
            CommandError::new(
                Code::Unreachable,
                format!("no answer from the server at {server}: {}", e.message),
            )
        })?;
        client.emit(
            Output::new("connected", format!("Connected to server at {server}"))
                .with("server", server.to_string()),
        );
        Ok(())
    }
}

fn parse(ip: &str, port: &str) -> Result<SocketAddr, CommandError> {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| CommandError::new(Code::Usage, format!("not an IP address: {ip}")))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| CommandError::new(Code::Usage, format!("not a port: {port}")))?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_refuses_nonsense() {
        assert_eq!(
            parse("127.0.0.1", "4590").unwrap(),
            "127.0.0.1:4590".parse().unwrap()
        );
        assert_eq!(parse("localhost", "4590").unwrap_err().code, Code::Usage);
        assert_eq!(parse("127.0.0.1", "0").unwrap_err().code, Code::Usage);
        assert_eq!(parse("127.0.0.1", "99999").unwrap_err().code, Code::Usage);
    }
}

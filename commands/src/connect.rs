//! `connect <ip> <port>`: points the client at another server, without
//! signing in (signing out of the current one first).

use std::net::{IpAddr, SocketAddr};

use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client};
use udpchat_core::error::{code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::registry::{ArgKind, Command};

const USAGE: &str = "connect <ip> <port>";

inventory::submit! {
    Command {
        name: "connect",
        aliases: &[],
        usage: USAGE,
        summary: "Use the server at IP and PORT (does not sign in).",
        examples: &["connect 127.0.0.1 4590"],
        args: &[ArgKind::Host, ArgKind::Port],
        module: module_path!(),
        shell: Some(shell),
        serve: None,
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        args.at_most(2, USAGE)?;
        let server = parse(args.required(0, USAGE)?, args.required(1, USAGE)?)?;
        // Signing out of the old server is best effort: it may be the
        // reason for switching.
        let _ = crate::logout::sign_out(&client).await;
        client.session().lock().expect("session lock").server = server;
        client
            .request("ping", cbor::encode(&()))
            .await
            .map_err(|e| {
                CommandError::new(
                    code::UNREACHABLE,
                    format!("no answer from the server at {server}: {}", e.message),
                )
            })?;
        client.emit(
            Output::new("connected", format!("Connected to server at {server}"))
                .with("server", server.to_string()),
        );
        Ok(())
    })
}

fn parse(ip: &str, port: &str) -> Result<SocketAddr, CommandError> {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| CommandError::new(code::USAGE, format!("not an IP address: {ip}")))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| CommandError::new(code::USAGE, format!("not a port: {port}")))?;
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
        assert_eq!(parse("localhost", "4590").unwrap_err().code, code::USAGE);
        assert_eq!(parse("127.0.0.1", "0").unwrap_err().code, code::USAGE);
        assert_eq!(parse("127.0.0.1", "99999").unwrap_err().code, code::USAGE);
    }
}

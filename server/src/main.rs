//! `udpchat-server`: registers users, keeps presence and answers the
//! clients' requests, on 127.0.0.1:4590 unless told otherwise.
#![forbid(unsafe_code)]

mod dispatch;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::UdpSocket;
use udpchat_core::transport::Config;
use udpchat_net::Link;

/// The udpchat server.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "The udpchat server: accounts, presence and the list of who is online.",
    after_help = "Examples:\n  udpchat-server                      # listen on 127.0.0.1:4590\n  udpchat-server --bind 0.0.0.0:9090  # listen on every interface, port 9090"
)]
struct Cli {
    /// Address and port to listen on.
    #[arg(long, short = 'b', value_name = "ADDR", default_value = udpchat_core::DEFAULT_SERVER)]
    bind: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "udpchat=info,udpchat_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    udpchat_commands::link();

    let socket = UdpSocket::bind(cli.bind)
        .await
        .with_context(|| format!("cannot listen on {}", cli.bind))?;
    let (link, incoming) = Link::spawn(socket, Config::default())?;
    // Tests and scripts wait for this line: the port is known only now.
    println!("udpchat-server listening on {}", link.local_addr());
    let server = Arc::new(state::ServerState::new(link.clone()));
    dispatch::run(server.clone(), link, incoming, shutdown_signal()).await;
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

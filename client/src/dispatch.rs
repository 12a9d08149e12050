//! The client's one dispatcher: a shell line goes to its command's `shell`
//! side, a pushed packet to its command's `on_push` side, both looked up in
//! the registry.

use tokio::sync::mpsc::UnboundedReceiver;
use udpchat_core::args::{split_command, Args};
use udpchat_core::context::Client;
use udpchat_core::envelope::Kind;
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::Registry;
use udpchat_net::{Incoming, Link};

/// Runs one shell line; errors are shown, never fatal.
pub async fn run_line(client: &Client, line: &str) {
    let Some((word, rest)) = split_command(line) else {
        return;
    };
    let registry = Registry::global();
    let result = match registry.shell(word).and_then(|c| c.shell) {
        Some(shell) => shell(client.clone(), Args::parse(rest)).await,
        None => Err(udpchat_commands::unknown_command(registry, word)),
    };
    if let Err(e) = result {
        client.emit(Output::error(&e));
    }
}

/// Hands every pushed packet to its command until the link stops.
pub async fn serve_pushes(client: Client, link: Link, mut incoming: UnboundedReceiver<Incoming>) {
    let registry = Registry::global();
    while let Some(Incoming { from, envelope }) = incoming.recv().await {
        let on_push = registry.tag(&envelope.cmd).ok().and_then(|c| c.on_push);
        match (envelope.kind, on_push) {
            (Kind::Push, Some(on_push)) => {
                if let Err(e) = on_push(client.clone(), from, envelope.body).await {
                    tracing::warn!(%from, cmd = envelope.cmd, "ignored a bad packet: {e}");
                }
            }
            (Kind::Request, _) => {
                // A client answers no requests yet; say so rather than
                // leave the asker waiting.
                link.reply(
                    from,
                    &envelope.cmd,
                    envelope.id,
                    Err(CommandError::unknown_command(&envelope.cmd)),
                );
            }
            _ => tracing::debug!(%from, cmd = envelope.cmd, "ignored an unknown packet"),
        }
    }
}

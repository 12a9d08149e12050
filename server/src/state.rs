//! The server's state as command handlers see it: presence and the link to
//! the clients.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, ServerContext};
use udpchat_core::presence::Presence;
use udpchat_net::Link;

/// How long a signed-in client has to answer a probe before its name is
/// given to a new sign-in.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct ServerState {
    presence: Mutex<Presence>,
    link: Link,
}

impl ServerState {
    pub fn new(link: Link) -> ServerState {
        ServerState {
            presence: Mutex::new(Presence::new()),
            link,
        }
    }

    /// Tells every signed-in client the server is going down and waits,
    /// at most `patience`, for them to acknowledge.
    pub async fn going_down(&self, patience: Duration) {
        let clients = self.presence.lock().expect("presence lock").addrs();
        tracing::info!(
            clients = clients.len(),
            "going down: telling the signed-in clients"
        );
        let notices: Vec<_> = clients
            .into_iter()
            .map(|addr| self.link.push(addr, "going-down", cbor::encode(&())))
            .collect();
        let _ = tokio::time::timeout(patience, async {
            for notice in notices {
                let _ = notice.await;
            }
        })
        .await;
    }
}

impl ServerContext for ServerState {
    fn presence(&self) -> &Mutex<Presence> {
        &self.presence
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'static, bool> {
        let ping = self.link.push(addr, "ping", cbor::encode(&()));
        Box::pin(
            async move { matches!(tokio::time::timeout(PROBE_TIMEOUT, ping).await, Ok(Ok(()))) },
        )
    }

    fn push(&self, addr: SocketAddr, cmd: &'static str, body: Vec<u8>) {
        let delivery = self.link.push(addr, cmd, body);
        tokio::spawn(async move {
            if let Err(e) = delivery.await {
                tracing::debug!(%addr, cmd, "push failed: {e}");
            }
        });
    }
}

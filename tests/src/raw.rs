//! A hostile client: speaks the protocol through `udpchat-net` directly,
//! not through the `udpchat` binary, so a test can send what no honest
//! client would (junk in a mailbox, a flood of requests) and read the
//! server's raw answers.

use std::net::{IpAddr, SocketAddr};

use tokio::runtime::Runtime;
use udpchat_commands::signin::{Credentials, SignedIn};
use udpchat_core::context::Zeroizing;
use udpchat_core::crypto::keyfile;
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::envelope::Envelope;
use udpchat_core::error::CommandError;
use udpchat_core::packet::{decode_reply, Encoded, Request};
use udpchat_core::wire::Pattern;
use udpchat_net::{Inbound, Link, Peer};

use crate::{password, Server};

/// One session to the server, on a socket of its own.
pub struct RawClient {
    runtime: Runtime,
    link: Link,
    server: Peer,
    identity: StaticKey,
    /// What the server pushed, in arrival order.
    pushes: std::sync::Mutex<std::sync::mpsc::Receiver<Envelope>>,
}

impl RawClient {
    /// Opens a session to `server` from a socket bound to `ip`.
    pub fn connect(server: &Server, ip: IpAddr) -> RawClient {
        let runtime = Runtime::new().expect("tokio runtime");
        let key = keyfile::read_public(&server.public_key()).expect("server key");
        let (pushed, pushes) = std::sync::mpsc::channel();
        let (link, server_peer) = runtime.block_on(async {
            let socket = tokio::net::UdpSocket::bind(SocketAddr::new(ip, 0))
                .await
                .expect("bind");
            let (link, mut inbound) = Link::spawn_client(socket).expect("link");
            // Kept for a test that asks (`next_push`); nobody answers them.
            tokio::spawn(async move {
                while let Some(next) = inbound.recv().await {
                    if let Inbound::Envelope(arrival) = next {
                        let _ = pushed.send(arrival.envelope);
                    }
                }
            });
            let peer = link
                .connect(server.addr, key, Pattern::Nk)
                .await
                .expect("connect");
            (link, peer)
        });
        RawClient {
            runtime,
            link,
            server: server_peer,
            identity: StaticKey::generate(&mut rand::rngs::OsRng),
            pushes: std::sync::Mutex::new(pushes),
        }
    }

    /// Keeps the session with the server alive, as the real client does
    /// (an empty transport message every `every`), until this client is
    /// dropped (its runtime ends the task): a server signs out whoever stays silent past its presence
    /// timeout, and a test that waits on something else between requests
    /// would otherwise find itself signed out.
    pub fn keep_alive_every(&self, every: std::time::Duration) {
        let (link, server) = (self.link.clone(), self.server);
        self.runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // A keepalive that failed is followed by the next one.
                let _ = link.keep_alive(server).await;
            }
        });
    }

    /// The next push the server sent (its tag and body), waiting for it at
    /// most `within`.
    pub fn next_push(&self, within: std::time::Duration) -> Option<(String, Vec<u8>)> {
        let pushes = self.pushes.lock().unwrap_or_else(|e| e.into_inner());
        let envelope = pushes.recv_timeout(within).ok()?;
        Some((envelope.cmd, envelope.body))
    }

    /// This client's identity key (the one [`RawClient::sign`] registers).
    pub fn identity(&self) -> &StaticKey {
        &self.identity
    }

    /// A request and its reply's bytes (or the server's error).
    pub fn request(&self, request: Encoded) -> Result<Vec<u8>, CommandError> {
        self.runtime
            .block_on(self.link.request(self.server, request))
    }

    /// `body` as an `R`, and its reply.
    pub fn ask<R: Request>(&self, body: &R::Body) -> Result<R::Reply, CommandError> {
        decode_reply(&self.request(Encoded::request::<R>(body))?)
    }

    /// An IK session with the client at `addr`, with this client's own
    /// identity key.
    async fn session_with(
        &self,
        addr: SocketAddr,
        identity: PublicKey,
    ) -> Result<Peer, CommandError> {
        self.link.set_identity(Some(self.identity.clone()));
        self.link.connect(addr, identity, Pattern::Ik).await
    }

    /// Pushes a packet straight to another client; waits for its
    /// acknowledgement.
    pub fn push_to_client(
        &self,
        addr: SocketAddr,
        identity: PublicKey,
        push: Encoded,
    ) -> Result<(), CommandError> {
        self.runtime.block_on(async {
            let peer = self.session_with(addr, identity).await?;
            self.link.push(peer, push).await
        })
    }

    /// A request straight to another client; its answer.
    pub fn request_to_client(
        &self,
        addr: SocketAddr,
        identity: PublicKey,
        request: Encoded,
    ) -> Result<Vec<u8>, CommandError> {
        self.runtime.block_on(async {
            let peer = self.session_with(addr, identity).await?;
            self.link.request(peer, request).await
        })
    }

    /// [`RawClient::push_to_client`], given up after `within` (a client
    /// that is gone is otherwise waited for until the handshake's own
    /// timeout).
    pub fn push_to_client_within(
        &self,
        addr: SocketAddr,
        identity: PublicKey,
        push: Encoded,
        within: std::time::Duration,
    ) -> Result<(), CommandError> {
        self.runtime.block_on(async {
            let push = async {
                let peer = self.session_with(addr, identity).await?;
                self.link.push(peer, push).await
            };
            tokio::time::timeout(within, push)
                .await
                .unwrap_or_else(|_| {
                    Err(CommandError::new(
                        udpchat_core::error::Code::Unreachable,
                        "no answer in time",
                    ))
                })
        })
    }

    /// Sends every request at once; their replies in order.
    pub fn requests_at_once(&self, requests: Vec<Encoded>) -> Vec<Result<Vec<u8>, CommandError>> {
        let pending: Vec<_> = requests
            .into_iter()
            .map(|request| self.link.request(self.server, request))
            .collect();
        self.runtime.block_on(async move {
            let tasks: Vec<_> = pending.into_iter().map(tokio::spawn).collect();
            let mut replies = Vec::new();
            for task in tasks {
                replies.push(task.await.expect("request task"));
            }
            replies
        })
    }

    /// `signup` or `signin` (`R`) as `user`, with the harness's password
    /// for them and this client's identity key.
    pub fn sign<R>(&self, user: &str) -> Result<SignedIn, CommandError>
    where
        R: Request<Body = Credentials, Reply = SignedIn>,
    {
        let credentials = Credentials {
            user: user.to_string(),
            password: Zeroizing::new(password(user)),
            identity: self.identity.public(),
            local: Vec::new(),
            replace_key: None,
        };
        self.ask::<R>(&credentials)
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.link.forget(self.server);
    }
}

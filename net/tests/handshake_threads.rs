//! A server whose new sessions' handshakes are worked out on threads of
//! their own (`Start::handshake_threads`): a burst of clients all get a
//! session, and requests on them are answered.

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use udpchat_core::context::Reply;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::packet::{Encoded, Packet, Request};
use udpchat_core::secure::{PeerId, SecureConfig};
use udpchat_core::wire::Pattern;
use udpchat_net::{Arrival, Link, Owner};

/// A request the test's server echoes.
struct Echo;

#[derive(Serialize, Deserialize)]
struct Text(String);

impl Packet for Echo {
    const TAG: &'static str = "echo";
}

impl Request for Echo {
    type Body = Text;
    type Reply = Text;
}

struct Echoer;

impl Owner for Echoer {
    fn arrived(&mut self, arrival: Arrival) -> Option<Reply> {
        arrival
            .is_request()
            .then(|| Ok(arrival.envelope.body.clone()))
    }

    fn closed(&mut self, _: PeerId) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_clients_all_get_sessions_worked_out_on_the_handshake_threads() {
    const CLIENTS: usize = 24;
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    let public = key.public();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = SecureConfig {
        calm_handshakes_per_sec: 10_000,
        ..SecureConfig::server()
    };
    let (server, start) = Link::server(socket, key, config).unwrap();
    start.handshake_threads(2).run(Echoer);
    let to = server.local_addr();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (client, _inbox) = Link::spawn_client(socket).unwrap();
        let public = public.clone();
        clients.push(tokio::spawn(async move {
            let peer = client.connect(to, public, Pattern::Nk).await?;
            let said = format!("client {i}");
            let reply = client
                .request(peer, Encoded::request::<Echo>(&Text(said.clone())))
                .await?;
            let Text(back) = udpchat_core::packet::decode_reply(&reply)?;
            assert_eq!(back, said);
            Ok::<_, udpchat_core::error::CommandError>(())
        }));
    }
    for client in clients {
        client.await.unwrap().unwrap();
    }
    let stats = server.stats().await;
    assert_eq!(stats.sessions_opened, CLIENTS as u64);
    assert_eq!(stats.handshakes_answered, CLIENTS as u64);
}

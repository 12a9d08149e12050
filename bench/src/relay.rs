//! A lossy UDP relay between two peers on real sockets, for `p2p --loss P`:
//! the initiator sends to the relay's `addr`; the relay forwards to the
//! responder from a socket of its own, and the responder's answers back to
//! whoever last wrote to `addr`. Each datagram, either way, is dropped with
//! probability `loss`, decided by a generator seeded from `--seed`, so a
//! run's losses are reproducible (as far as the OS's timing is).

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A running relay; stops when dropped.
pub struct Relay {
    /// Where the initiator sends.
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Relay {
    /// A relay to `responder` losing `loss` of the datagrams each way.
    pub async fn start(responder: SocketAddr, loss: f64, seed: u64) -> anyhow::Result<Relay> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let initiator: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let addr = front.local_addr()?;
        let forward = {
            let (front, back, initiator) = (front.clone(), back.clone(), initiator.clone());
            let mut rng = StdRng::seed_from_u64(seed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((len, from)) = front.recv_from(&mut buf).await {
                    *initiator.lock() = Some(from);
                    if !rng.gen_bool(loss) {
                        let _ = back.send_to(&buf[..len], responder).await;
                    }
                }
            })
        };
        let backward = {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((len, _)) = back.recv_from(&mut buf).await {
                    let to = *initiator.lock();
                    if let Some(to) = to {
                        if !rng.gen_bool(loss) {
                            let _ = front.send_to(&buf[..len], to).await;
                        }
                    }
                }
            })
        };
        Ok(Relay {
            addr,
            tasks: vec![forward, backward],
        })
    }
}

//! The endpoint on the simulated network, tested for what a user of the
//! transport would notice: messages whole, once, in order, under loss,
//! duplication, reordering, restarts and peers that vanish; and decoders and
//! buffers that hold against garbage and floods.
//!
//! Message bodies carry their index in their first 8 bytes, so a receiver
//! can tell which message it got and check every byte against the sender's.

mod acks;
mod bulk;
mod lifecycle;
mod robustness;

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::sim::{LinkConfig, NodeId, Sim};
use super::{Event, MessageId};

/// 10% loss, 5% duplication, 5% reordering, 10-15 ms one way.
fn lossy() -> LinkConfig {
    LinkConfig {
        loss: 0.10,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(30),
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        mtu: 1500,
    }
}

/// `count` sizes, log-uniform in 1..=max so that small and large messages
/// both abound, with every size in `special` at spread-out places.
fn mixed_sizes(count: usize, max: usize, special: &[usize], seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let ln_max = (max as f64).ln();
    let mut sizes: Vec<usize> = (0..count)
        .map(|_| ((rng.gen::<f64>() * ln_max).exp().round() as usize).clamp(1, max))
        .collect();
    for (k, &size) in special.iter().enumerate() {
        sizes[k * count / special.len()] = size;
    }
    sizes
}

/// Sizes at and around fragment boundaries, and the extremes.
fn boundary_sizes(stride: usize, max: usize) -> Vec<usize> {
    vec![
        1,
        max,
        stride - 1,
        stride,
        stride + 1,
        2 * stride,
        2 * stride + 1,
        7 * stride,
        max - 1,
    ]
}

const POOL_SPAN: usize = 64 * 1024;
const MAX_BODY: usize = 256 * 1024;

struct Bodies {
    pool: Vec<u8>,
}

impl Bodies {
    fn new() -> Bodies {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut pool = Vec::with_capacity(POOL_SPAN + MAX_BODY);
        while pool.len() < POOL_SPAN + MAX_BODY {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            pool.extend_from_slice(&state.to_le_bytes());
        }
        Bodies { pool }
    }

    fn offset(index: usize) -> usize {
        index * 4099 % POOL_SPAN
    }

    fn body(&self, index: usize, len: usize) -> Vec<u8> {
        let off = Bodies::offset(index);
        let mut body = self.pool[off..off + len].to_vec();
        let tag = (index as u64).to_le_bytes();
        let k = len.min(8);
        body[..k].copy_from_slice(&tag[..k]);
        body
    }

    fn matches(&self, index: usize, message: &[u8]) -> bool {
        let off = Bodies::offset(index);
        let k = message.len().min(8);
        message[..k] == (index as u64).to_le_bytes()[..k]
            && message[k..] == self.pool[off + k..off + message.len()]
    }
}

/// Messages from one node to another and what became of them.
struct Stream {
    from: NodeId,
    to: NodeId,
    sizes: Vec<usize>,
    ids: Vec<MessageId>,
    /// Indices in the order they were received.
    received: Vec<usize>,
    /// The latest index received by the receiver's current incarnation.
    last: Option<usize>,
    delivered: BTreeSet<MessageId>,
    failed: BTreeSet<MessageId>,
}

impl Stream {
    fn finished(&self) -> bool {
        self.delivered.len() + self.failed.len() == self.ids.len()
    }

    fn outstanding(&self) -> BTreeSet<MessageId> {
        self.ids
            .iter()
            .filter(|id| !self.delivered.contains(id) && !self.failed.contains(id))
            .copied()
            .collect()
    }
}

/// Checks every event as it comes: a body arrives whole, at its receiver,
/// never twice and never before an earlier one from the same sender.
struct Traffic {
    bodies: Bodies,
    streams: Vec<Stream>,
}

impl Traffic {
    fn new() -> Traffic {
        Traffic {
            bodies: Bodies::new(),
            streams: Vec::new(),
        }
    }

    /// A new stream; it replaces any earlier one between the same nodes (a
    /// restarted sender numbers its messages anew).
    fn stream(&mut self, from: NodeId, to: NodeId) -> usize {
        self.streams.push(Stream {
            from,
            to,
            sizes: Vec::new(),
            ids: Vec::new(),
            received: Vec::new(),
            last: None,
            delivered: BTreeSet::new(),
            failed: BTreeSet::new(),
        });
        self.streams.len() - 1
    }

    fn send(&mut self, sim: &mut Sim, stream: usize, size: usize) -> MessageId {
        let s = &mut self.streams[stream];
        let body = self.bodies.body(s.sizes.len(), size);
        let id = sim.send(s.from, s.to, body).expect("send");
        s.sizes.push(size);
        s.ids.push(id);
        id
    }

    /// The receiver restarted: its deliveries start over.
    fn receiver_restarted(&mut self, stream: usize) {
        self.streams[stream].last = None;
    }

    fn latest(&mut self, from: NodeId, to: NodeId) -> &mut Stream {
        self.streams
            .iter_mut()
            .rev()
            .find(|s| s.from == from && s.to == to)
            .expect("event for an unknown stream")
    }

    fn drain(&mut self, sim: &mut Sim) {
        let nodes: BTreeSet<NodeId> = self.streams.iter().flat_map(|s| [s.from, s.to]).collect();
        for node in nodes {
            while let Some(event) = sim.poll_event(node) {
                self.check(node, event);
            }
        }
    }

    fn check(&mut self, node: NodeId, event: Event<NodeId>) {
        match event {
            Event::Received { from, message, .. } => {
                let bodies = &self.bodies;
                let s = self
                    .streams
                    .iter_mut()
                    .rev()
                    .find(|s| s.from == from && s.to == node)
                    .expect("unknown stream");
                let index = match message.get(..8) {
                    Some(tag) => u64::from_le_bytes(tag.try_into().unwrap()) as usize,
                    None => s.last.map_or(0, |i| i + 1),
                };
                assert!(
                    index < s.sizes.len(),
                    "{from}->{node}: message {index} was never sent"
                );
                assert!(
                    s.last.iter().all(|&last| index > last),
                    "{from}->{node}: message {index} after {:?}",
                    s.last
                );
                assert_eq!(
                    message.len(),
                    s.sizes[index],
                    "{from}->{node}: message {index} has the wrong size"
                );
                assert!(
                    bodies.matches(index, &message),
                    "{from}->{node}: message {index} is corrupt"
                );
                s.last = Some(index);
                s.received.push(index);
            }
            Event::Delivered { to, id } => {
                let s = self.latest(node, to);
                assert!(
                    s.ids.binary_search(&id).is_ok(),
                    "{node}->{to}: {id:?} delivered but never sent"
                );
                assert!(
                    !s.failed.contains(&id) && s.delivered.insert(id),
                    "{node}->{to}: {id:?} reported twice"
                );
            }
            Event::DeliveryFailed { to, id } => {
                let s = self.latest(node, to);
                assert!(
                    s.ids.binary_search(&id).is_ok(),
                    "{node}->{to}: {id:?} failed but never sent"
                );
                assert!(
                    !s.delivered.contains(&id) && s.failed.insert(id),
                    "{node}->{to}: {id:?} reported twice"
                );
            }
        }
    }

    /// Every message of the stream received exactly once, in order, and
    /// Delivered at the sender.
    fn assert_perfect(&self, stream: usize) {
        let s = &self.streams[stream];
        assert_eq!(
            s.received,
            (0..s.sizes.len()).collect::<Vec<_>>(),
            "{}->{}: received",
            s.from,
            s.to
        );
        assert!(
            s.failed.is_empty(),
            "{}->{}: {} failed",
            s.from,
            s.to,
            s.failed.len()
        );
        assert_eq!(
            s.delivered.len(),
            s.ids.len(),
            "{}->{}: delivered",
            s.from,
            s.to
        );
    }

    fn perfect(&self, stream: usize) -> bool {
        let s = &self.streams[stream];
        s.received.len() == s.sizes.len() && s.delivered.len() == s.ids.len()
    }
}

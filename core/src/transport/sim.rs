//! A simulated network for [`Endpoint`]s: a virtual clock, links with seeded
//! loss, duplication, reordering, delay, jitter and an MTU, and a harness
//! that runs any number of endpoints against each other. Every run is
//! reproducible from its seed; nothing here waits for real time.
//!
//! The clock is an `Instant` taken once at start plus the virtual time
//! elapsed; `Instant` has no other constructor, and nothing depends on its
//! absolute value.
//!
//! Jitter alone never reorders a link (arrivals stay first in, first out,
//! as on most real paths); reordering is its own knob, which holds chosen
//! datagrams back by `reorder_delay` so that later ones overtake them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Config, Endpoint, Event, MessageId, SendError};

/// An endpoint in the simulation, and the peer key the others know it by.
pub type NodeId = u8;

/// Decides, by content, to drop a datagram (`true`) before the link sees it.
pub type DropFilter = Box<dyn FnMut(&[u8]) -> bool>;

/// One direction of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_delay`.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// One-way delay before jitter.
    pub delay: Duration,
    /// Up to this much more delay, uniformly.
    pub jitter: Duration,
    /// Larger datagrams are dropped.
    pub mtu: usize,
}

impl Default for LinkConfig {
    /// A perfect link with 10 ms of delay.
    fn default() -> LinkConfig {
        LinkConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            mtu: 1500,
        }
    }
}

impl LinkConfig {
    /// The longest a datagram that arrives at all can take.
    pub fn worst_delay(&self) -> Duration {
        self.delay + self.jitter + self.reorder_delay
    }
}

/// What the network did with the datagrams it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub too_big: u64,
    pub cut: u64,
    pub filtered: u64,
    pub delivered: u64,
    /// Delivered, and the endpoint returned a [`super::PacketError`].
    pub rejected: u64,
    pub largest: usize,
}

struct Link {
    config: LinkConfig,
    /// Arrival of the latest datagram not held back: jitter never lets a
    /// datagram arrive before it.
    fifo: Instant,
    cut: bool,
    filter: Option<DropFilter>,
}

struct Datagram {
    at: Instant,
    order: u64,
    from: NodeId,
    to: NodeId,
    bytes: Vec<u8>,
}

impl PartialEq for Datagram {
    fn eq(&self, other: &Datagram) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Datagram {}

impl PartialOrd for Datagram {
    fn partial_cmp(&self, other: &Datagram) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Datagram {
    fn cmp(&self, other: &Datagram) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

struct Node {
    endpoint: Endpoint<NodeId>,
    events: VecDeque<Event<NodeId>>,
}

pub struct Sim {
    start: Instant,
    now: Instant,
    rng: StdRng,
    nodes: Vec<Node>,
    default_link: LinkConfig,
    links: BTreeMap<(NodeId, NodeId), Link>,
    queue: BinaryHeap<Reverse<Datagram>>,
    order: u64,
    stats: Stats,
}

impl Sim {
    pub fn new(seed: u64) -> Sim {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            rng: StdRng::seed_from_u64(seed),
            nodes: Vec::new(),
            default_link: LinkConfig::default(),
            links: BTreeMap::new(),
            queue: BinaryHeap::new(),
            order: 0,
            stats: Stats::default(),
        }
    }

    /// The link every direction uses unless [`Sim::set_link`] said otherwise.
    pub fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
        for link in self.links.values_mut() {
            link.config = self.default_link.clone();
        }
    }

    pub fn set_link(&mut self, from: NodeId, to: NodeId, config: LinkConfig) {
        self.link(from, to).config = config;
    }

    /// Drops everything from `from` to `to` while `cut` holds, datagrams
    /// already on the way included.
    pub fn cut(&mut self, from: NodeId, to: NodeId, cut: bool) {
        self.link(from, to).cut = cut;
    }

    pub fn set_filter(&mut self, from: NodeId, to: NodeId, filter: Option<DropFilter>) {
        self.link(from, to).filter = filter;
    }

    /// Adds an endpoint with an incarnation drawn from the seed.
    pub fn add_endpoint(&mut self, config: Config) -> NodeId {
        let id = NodeId::try_from(self.nodes.len()).expect("at most 256 nodes");
        let incarnation = self.rng.gen();
        self.nodes.push(Node {
            endpoint: Endpoint::new(config, incarnation),
            events: VecDeque::new(),
        });
        id
    }

    /// The process behind `node` restarts: a new endpoint, a new
    /// incarnation, the same address. Undrained events are lost with it.
    pub fn restart(&mut self, node: NodeId) {
        let incarnation = self.rng.gen();
        let n = &mut self.nodes[usize::from(node)];
        n.endpoint = Endpoint::new(n.endpoint.config().clone(), incarnation);
        n.events.clear();
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn endpoint(&self, node: NodeId) -> &Endpoint<NodeId> {
        &self.nodes[usize::from(node)].endpoint
    }

    /// For calls the harness has no wrapper for; follow with [`Sim::flush`].
    pub fn endpoint_mut(&mut self, node: NodeId) -> &mut Endpoint<NodeId> {
        &mut self.nodes[usize::from(node)].endpoint
    }

    pub fn send(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Vec<u8>,
    ) -> Result<MessageId, SendError> {
        let now = self.now;
        let id = self.endpoint_mut(from).send(now, to, message)?;
        self.flush(from);
        Ok(id)
    }

    pub fn poll_event(&mut self, node: NodeId) -> Option<Event<NodeId>> {
        self.nodes[usize::from(node)].events.pop_front()
    }

    /// Runs until `done` holds (checked before every step) or `limit` of
    /// virtual time has passed or nothing is left to happen; returns
    /// whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        let horizon = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if !self.step_before(horizon) {
                return done(self);
            }
        }
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(duration, |_| false);
    }

    /// One step: the clock moves to the next arrival or timer, arrivals are
    /// handled, then due timers, and every datagram produced goes onto the
    /// links. False when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        let horizon = self.now + Duration::from_secs(100 * 365 * 24 * 3600);
        self.step_before(horizon)
    }

    fn step_before(&mut self, horizon: Instant) -> bool {
        let arrival = self.queue.peek().map(|Reverse(d)| d.at);
        let timer = self
            .nodes
            .iter()
            .filter_map(|n| n.endpoint.poll_timeout())
            .min();
        let Some(next) = arrival.into_iter().chain(timer).min() else {
            return false;
        };
        if next > horizon {
            self.now = self.now.max(horizon);
            return false;
        }
        self.now = self.now.max(next);
        while self.queue.peek().is_some_and(|Reverse(d)| d.at <= self.now) {
            let Some(Reverse(datagram)) = self.queue.pop() else {
                break;
            };
            self.deliver(datagram);
        }
        for i in 0..self.nodes.len() {
            let endpoint = &mut self.nodes[i].endpoint;
            if endpoint.poll_timeout().is_some_and(|at| at <= self.now) {
                endpoint.handle_timeout(self.now);
                let after = endpoint.poll_timeout();
                assert!(
                    after.iter().all(|&at| at > self.now),
                    "node {i}: handle_timeout left a timer due at {:?} (now {:?})",
                    after.map(|at| at - self.start),
                    self.elapsed(),
                );
            }
            self.flush(i as NodeId);
        }
        true
    }

    fn deliver(&mut self, datagram: Datagram) {
        let Some(node) = self.nodes.get_mut(usize::from(datagram.to)) else {
            return;
        };
        if self
            .links
            .get(&(datagram.from, datagram.to))
            .is_some_and(|l| l.cut)
        {
            self.stats.cut += 1;
            return;
        }
        self.stats.delivered += 1;
        if node
            .endpoint
            .handle_datagram(self.now, datagram.from, &datagram.bytes)
            .is_err()
        {
            self.stats.rejected += 1;
        }
        self.flush(datagram.to);
    }

    /// Moves everything `node` has to send onto the links and collects its
    /// events.
    pub fn flush(&mut self, node: NodeId) {
        let now = self.now;
        let n = &mut self.nodes[usize::from(node)];
        let max = n.endpoint.config().max_datagram;
        let mut out = Vec::new();
        while let Some(transmit) = n.endpoint.poll_transmit(now) {
            assert!(
                transmit.contents.len() <= max,
                "node {node} produced a datagram of {} bytes; max_datagram is {max}",
                transmit.contents.len()
            );
            out.push(transmit);
        }
        n.events
            .extend(std::iter::from_fn(|| n.endpoint.poll_event()));
        for transmit in out {
            self.transmit(node, transmit.destination, transmit.contents);
        }
    }

    fn link(&mut self, from: NodeId, to: NodeId) -> &mut Link {
        link_entry(&mut self.links, &self.default_link, self.now, from, to)
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>) {
        self.stats.sent += 1;
        self.stats.largest = self.stats.largest.max(bytes.len());
        let now = self.now;
        let link = link_entry(&mut self.links, &self.default_link, now, from, to);
        if link.cut {
            self.stats.cut += 1;
            return;
        }
        if link.filter.as_mut().is_some_and(|drop| drop(&bytes)) {
            self.stats.filtered += 1;
            return;
        }
        if bytes.len() > link.config.mtu {
            self.stats.too_big += 1;
            return;
        }
        if self.rng.gen::<f64>() < link.config.loss {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.gen::<f64>() < link.config.duplicate {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut arrivals = [now; 2];
        for at in &mut arrivals[..copies] {
            let jitter = link.config.jitter.mul_f64(self.rng.gen::<f64>());
            *at = (now + link.config.delay + jitter).max(link.fifo);
            if self.rng.gen::<f64>() < link.config.reorder {
                self.stats.reordered += 1;
                *at += link.config.reorder_delay;
            } else {
                link.fifo = *at;
            }
        }
        if copies == 2 {
            self.order += 1;
            let copy = Datagram {
                at: arrivals[1],
                order: self.order,
                from,
                to,
                bytes: bytes.clone(),
            };
            self.queue.push(Reverse(copy));
        }
        self.order += 1;
        self.queue.push(Reverse(Datagram {
            at: arrivals[0],
            order: self.order,
            from,
            to,
            bytes,
        }));
    }
}

fn link_entry<'a>(
    links: &'a mut BTreeMap<(NodeId, NodeId), Link>,
    default: &LinkConfig,
    now: Instant,
    from: NodeId,
    to: NodeId,
) -> &'a mut Link {
    links.entry((from, to)).or_insert_with(|| Link {
        config: default.clone(),
        fifo: now,
        cut: false,
        filter: None,
    })
}

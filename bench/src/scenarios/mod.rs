//! The scenarios, one module each. Each starts its own server on 127.0.0.1
//! (unless `--server` names one), measures, and returns a [`Report`].

pub mod bare;
pub mod conversation;
pub mod fanout;
pub mod flood;
pub mod fragments;
pub mod handshake;
pub mod nodes;
pub mod offline;
pub mod p2p;
pub mod presence;
pub mod rpc;
pub mod signin_storm;
pub mod soak;
pub mod udp_echo;

use std::time::Duration;

use udpchat_core::cbor;
use udpchat_core::envelope::{Envelope, Kind};
use udpchat_core::packet::{Encoded, Push, Request};
use udpchat_core::wire;

use crate::load::Plan;
use crate::server::{ServerSource, Target};

/// Bytes the reliable transport adds to a message that fits one datagram:
/// its 10-byte header and the DATA fields (pn, msg_seq, base_seq,
/// frag_index, frag_count), per docs/PROTOCOL.md section 4.
pub const TRANSPORT_DATA_OVERHEAD: usize = 10 + 8 + 4 + 4 + 2 + 2;

/// The UDP payload that carries a packet under `tag` with `body` (one
/// fragment).
fn datagram_bytes(tag: &str, kind: Kind, body: &[u8]) -> usize {
    // A request id in the hundreds of thousands: 5 bytes of CBOR.
    let envelope = Envelope::encode_parts(tag, 100_000, kind, body).len();
    envelope + TRANSPORT_DATA_OVERHEAD + wire::DATA_OVERHEAD
}

/// The UDP payload of an `R` request with `body`.
pub fn request_bytes<R: Request>(body: &R::Body) -> usize {
    let (tag, body) = Encoded::request::<R>(body).into_parts();
    datagram_bytes(tag, Kind::Request, &body)
}

/// The UDP payload of the answer `reply` to an `R` request.
pub fn reply_bytes<R: Request>(reply: &R::Reply) -> usize {
    datagram_bytes(R::TAG, Kind::Reply, &cbor::encode(reply))
}

/// The UDP payload of a `P` push with `body`.
pub fn push_bytes<P: Push>(body: &P::Body) -> usize {
    let (tag, body) = Encoded::push::<P>(body).into_parts();
    datagram_bytes(tag, Kind::Push, &body)
}

/// What every scenario is given.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub source: ServerSource,
    /// The measured stretch of each phase.
    pub duration: Duration,
    /// Run before each measured stretch, not counted.
    pub warmup: Duration,
    pub quick: bool,
    pub seed: u64,
    /// Simulated clients for request-reply loads.
    pub clients: usize,
    /// Requests each client keeps outstanding.
    pub window: usize,
    /// A tag in every user name, so runs against one `--server` differ.
    pub run_tag: String,
}

impl Ctx {
    pub fn plan(&self) -> Plan {
        Plan {
            warmup: self.warmup,
            measure: self.duration,
            window: self.window,
            pace: None,
        }
    }

    /// Starts this scenario's server.
    pub fn server(&self) -> anyhow::Result<Target> {
        self.source.start()
    }

    /// A server that opens sessions as fast as it can for any one address
    /// (the bench's many clients come from a few loopback addresses): for
    /// the scenarios that measure handshakes, not the per-address limit
    /// that `flood` measures.
    pub fn server_for_handshakes(&self, extra: &[&str]) -> anyhow::Result<Target> {
        let mut args = vec!["--handshakes-per-address", "10000000"];
        args.extend_from_slice(extra);
        self.source.start_with(&args)
    }

    /// The same with `clients` simulated clients.
    pub fn with_clients(&self, clients: usize) -> Ctx {
        Ctx {
            clients: clients.max(2),
            ..self.clone()
        }
    }

    /// A user name prefix for a group of simulated users.
    pub fn users(&self, what: &str) -> String {
        format!("{what}{}", self.run_tag)
    }

    /// Parameters every report records.
    pub fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "duration_s": self.duration.as_secs_f64(),
            "warmup_s": self.warmup.as_secs_f64(),
            "quick": self.quick,
            "seed": self.seed,
            "clients": self.clients,
            "window": self.window,
            "server": match &self.source {
                ServerSource::Spawn(bin) => format!("spawned {}", bin.display()),
                ServerSource::Running { addr, .. } => addr.to_string(),
            },
        })
    }
}

/// Adds `extra` to the common parameters.
pub fn params_with(ctx: &Ctx, extra: serde_json::Value) -> serde_json::Value {
    let mut params = ctx.params();
    if let (Some(p), serde_json::Value::Object(extra)) = (params.as_object_mut(), extra) {
        p.extend(extra);
    }
    params
}

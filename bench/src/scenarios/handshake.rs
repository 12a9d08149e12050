//! `handshake`: new encrypted sessions per second, offered at rising
//! concurrency until the rate stops growing (saturation). One session is a
//! NK handshake (HELLO, WELCOME) and a first request on it (`ping`, which
//! needs no sign-in), so it counts only sessions that really carry data.
//!
//! The bound: each NK handshake costs the server three P-384 scalar
//! multiplications (the `es` and `ee` Diffie-Hellman and its ephemeral key)
//! and the client three more. The same run measures one ECDH and the
//! server's whole `ServerHandshake::respond` in this process, and reports
//! the measured rate as a ratio to `1 / (3 x ECDH)` and to
//! `1 / respond`: what one core could do if the handshake were nothing but
//! its elliptic-curve work.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::SeedableRng;
use udpchat_commands::ping::Ping;
use udpchat_core::crypto::handshake::{ClientHello, ReplayGuard, ServerHandshake};
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::packet::{Encoded, Packet as _};
use udpchat_core::wire::Pattern;
use udpchat_net::Link;

use super::{params_with, Ctx};
use crate::clients::{drain, loopback_for, open_link};
use crate::load::{self, Plan};
use crate::report::{Latency, Report, Row};
use crate::server::ServerRef;

/// Client Links the handshakes are spread over.
const LINKS: usize = 16;

/// The cost of the elliptic-curve work, microseconds per operation.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CurveCost {
    /// One P-384 ECDH (variable-base scalar multiplication).
    pub ecdh_us: f64,
    /// One key pair: a random scalar and its public point (a fixed-base
    /// scalar multiplication).
    pub keygen_us: f64,
    /// Decompressing and checking a 49-byte public key.
    pub decode_point_us: f64,
    /// The server's whole side of one NK handshake.
    pub respond_us: f64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn per_op_us(start: Instant, n: u32) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Measures the curve operations on this thread, `n` of each.
pub fn curve_cost(n: u32, seed: u64) -> CurveCost {
    let mut rng = StdRng::seed_from_u64(seed);
    let secret = p384::SecretKey::random(&mut rng);
    let peer = p384::SecretKey::random(&mut rng).public_key();
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(p384::ecdh::diffie_hellman(
            secret.to_nonzero_scalar(),
            peer.as_affine(),
        ));
    }
    let ecdh_us = per_op_us(start, n);

    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(StaticKey::generate(&mut rng).public());
    }
    let keygen_us = per_op_us(start, n);

    let point = StaticKey::generate(&mut rng).public().to_bytes();
    let start = Instant::now();
    for _ in 0..n {
        // As a handshake's ephemeral is decoded: never seen before.
        std::hint::black_box(PublicKey::from_bytes_once(&point).expect("valid point"));
    }
    let decode_point_us = per_op_us(start, n);

    let server = StaticKey::generate(&mut rng);
    let server_public = server.public();
    let hellos: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            ClientHello::start(&mut rng, &server_public, &[0], now_ms())
                .expect("client hello")
                .1
        })
        .collect();
    let mut guard = ReplayGuard::new();
    let start = Instant::now();
    for hello in &hellos {
        std::hint::black_box(
            ServerHandshake::respond(&mut rng, &server, hello, now_ms(), &[], &mut guard)
                .expect("server respond"),
        );
    }
    let respond_us = per_op_us(start, n);
    CurveCost {
        ecdh_us,
        keygen_us,
        decode_point_us,
        respond_us,
    }
}

/// One session: handshake, a first request answered, then dropped here
/// (the server keeps it until it idles out).
pub(crate) async fn one_session(link: Link, server: ServerRef) -> anyhow::Result<()> {
    let peer = link
        .connect(server.addr, server.key.clone(), Pattern::Nk)
        .await
        .map_err(|e| anyhow::anyhow!("connect: {}", e.message))?;
    let reply = link.request(peer, Encoded::request::<Ping>(&())).await;
    link.forget(peer);
    reply
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{}: {}", Ping::TAG, e.message))
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let levels: Vec<usize> = if ctx.quick {
        vec![1, 8]
    } else {
        vec![1, 2, 4, 8, 16, 32, 64]
    };
    let cost_ops = if ctx.quick { 50 } else { 400 };
    let mut report = Report::new(
        "handshake",
        params_with(
            ctx,
            serde_json::json!({ "concurrency": levels, "links": LINKS }),
        ),
    );
    let seed = ctx.seed;
    let cost = tokio::task::spawn_blocking(move || curve_cost(cost_ops, seed)).await?;
    let bound_ecdh = 1e6 / (3.0 * cost.ecdh_us);
    let bound_respond = 1e6 / cost.respond_us;

    let target = ctx.server_for_handshakes(&[])?;
    let mut links = Vec::with_capacity(LINKS);
    for i in 0..LINKS {
        let (link, inbound) = open_link(loopback_for(i)).await?;
        drain(inbound);
        links.push(link);
    }
    let mut best: Option<Row> = None;
    for &level in &levels {
        let clients: Vec<(Link, ServerRef)> = (0..level)
            .map(|i| (links[i % LINKS].clone(), target.server.clone()))
            .collect();
        let plan = Plan {
            window: 1,
            ..ctx.plan()
        };
        let outcome = load::closed_loop(
            &format!("handshake c={level}"),
            &clients,
            plan,
            target.pid,
            |(link, server)| one_session(link, server),
        )
        .await;
        let rate = outcome.rate();
        let mut row = Row::new(
            format!("c={level}"),
            "sessions/s",
            outcome.ok,
            outcome.seconds,
        )
        .with("concurrency", level)
        .with("x_bound_3ecdh", rate / bound_ecdh)
        .with("x_bound_respond", rate / bound_respond);
        row.errors = outcome.errors;
        row.latency = Latency::of(&outcome.hist);
        row.server = outcome.server;
        row.generator = outcome.generator;
        if let Some(e) = outcome.first_error {
            row = row.with("first_error", e);
        }
        if best.as_ref().is_none_or(|b| row.rate > b.rate) {
            best = Some(row.clone());
        }
        report.rows.push(row);
    }
    // The bound, as a row of its own so the table shows it.
    let mut bound = Row::new("bound 1/(3 ecdh)", "sessions/s", 0, 0.0);
    bound.rate = bound_ecdh;
    report.rows.push(bound);
    let mut respond = Row::new("bound 1/respond", "sessions/s", 0, 0.0);
    respond.rate = bound_respond;
    report.rows.push(respond);
    report.params["curve_cost_us"] = serde_json::to_value(cost)?;
    if let Some(best) = best {
        report.note(format!(
            "saturation: {:.0} sessions/s at {} = {:.2} x the one-core bound of 3 ECDH ({:.0}/s; one ECDH {:.0} us, keygen {:.0} us, point decode {:.0} us) and {:.2} x 1/respond ({:.0}/s, respond {:.0} us)",
            best.rate,
            best.name,
            best.rate / bound_ecdh,
            bound_ecdh,
            cost.ecdh_us,
            cost.keygen_us,
            cost.decode_point_us,
            best.rate / bound_respond,
            bound_respond,
            cost.respond_us
        ));
    }
    report.note("a session = NK handshake + one `ping` request answered; the bench's clients do the same elliptic-curve work as the server, on the same cores");
    Ok(report)
}

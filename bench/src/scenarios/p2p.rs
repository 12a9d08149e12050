//! `p2p`: two clients, one sending `message` packets to the other over
//! their end-to-end IK session (the whole stack: envelope, reliable
//! transport with fragments, AES-GCM sessions, UDP), for 100 B, 1 KiB and
//! 16 KiB texts. The sender keeps `inflight` messages unacknowledged; the
//! receiver counts arrivals straight off its Link's inbound channel (the
//! client's dispatcher, which would also look the sender up on the server
//! and print the message, is left out). With `--loss P` the datagrams pass
//! a relay that drops P of them each way. With `--through-server` the
//! session goes through a udpchat server's relay (a meeting as two clients
//! past a symmetric NAT get one): the relay's cost beside the direct path.
//!
//! Latency is one-way, send call to arrival (both ends are in this
//! process, so one clock serves); the push-to-acknowledgement time is in
//! `extra`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use udpchat_commands::message::{Message, MessageBody};
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::packet::{decode_body, Encoded, Packet as _};
use udpchat_core::wire::Pattern;
use udpchat_net::{Arrival, Inbound, Link, Peer};

use super::udp_echo::{baseline, Shape};
use super::{params_with, push_bytes, Ctx};
use crate::clients::{command_error, open_link, SimClient};
use crate::load::{self, histogram, micros, Plan};
use crate::procfs;
use crate::relay::Relay;
use crate::report::{Latency, Report, Row};

/// The message sizes measured.
pub const SIZES: [usize; 3] = [100, 1024, 16 * 1024];

/// What the receiver has seen, for the phase being measured.
struct Arrivals {
    base: Instant,
    /// Messages sent from this many ns after `base` on are counted...
    from_ns: AtomicU64,
    /// ...and up to this many.
    until_ns: AtomicU64,
    count: AtomicU64,
    one_way: Mutex<Histogram<u64>>,
}

/// A message text of `size` bytes that says when it was sent.
fn text(seq: u64, sent_ns: u64, size: usize) -> String {
    let mut text = format!("{seq} {sent_ns} ");
    let pad = size.saturating_sub(text.len());
    text.push_str(&"x".repeat(pad));
    text
}

fn sent_ns(text: &str) -> Option<u64> {
    text.split(' ').nth(1)?.parse().ok()
}

fn receive(mut inbound: udpchat_net::Inbox, arrivals: Arc<Arrivals>) {
    tokio::spawn(async move {
        while let Some(next) = inbound.recv().await {
            let Inbound::Envelope(Arrival { envelope, .. }) = next else {
                continue;
            };
            if envelope.cmd != Message::TAG {
                continue;
            }
            let Ok(message) = decode_body::<MessageBody>(&envelope.body) else {
                continue;
            };
            let Some(sent) = sent_ns(&message.text) else {
                continue;
            };
            let now = arrivals.base.elapsed().as_nanos() as u64;
            if sent >= arrivals.from_ns.load(Ordering::Relaxed)
                && sent < arrivals.until_ns.load(Ordering::Relaxed)
            {
                arrivals.count.fetch_add(1, Ordering::Relaxed);
                arrivals
                    .one_way
                    .lock()
                    .saturating_record((now.saturating_sub(sent) / 1000).max(1));
            }
        }
    });
}

#[derive(Clone)]
struct Sender {
    link: Link,
    peer: Peer,
    size: usize,
    seq: Arc<AtomicU64>,
    base: Instant,
}

impl Sender {
    async fn send(self) -> anyhow::Result<()> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let sent = self.base.elapsed().as_nanos() as u64;
        let body = MessageBody {
            from: "p2p-a".into(),
            text: text(seq, sent, self.size),
            id: Some(seq),
            again: false,
        };
        self.link
            .push(self.peer, Encoded::push::<Message>(&body))
            .await
            .map_err(command_error)
    }
}

/// `sizes`: the message sizes to measure, when not [`SIZES`].
pub async fn run(
    ctx: &Ctx,
    loss: f64,
    inflight: usize,
    through_server: bool,
    sizes: Option<Vec<usize>>,
) -> anyhow::Result<Report> {
    let sizes: Vec<usize> = match sizes {
        Some(sizes) => sizes,
        None if ctx.quick => vec![100, 16 * 1024],
        None => SIZES.to_vec(),
    };
    let mut report = Report::new(
        "p2p",
        params_with(
            ctx,
            serde_json::json!({
                "loss": loss,
                "inflight": inflight,
                "sizes": sizes,
                "through_server": through_server,
            }),
        ),
    );
    let probe = MessageBody {
        from: "p2p-a".into(),
        text: text(100_000, 1_000_000_000_000, 100),
        id: Some(100_000),
        again: false,
    };
    let shape = Shape {
        clients: 1,
        window: inflight,
        request_bytes: push_bytes::<Message>(&probe),
        // A transport ACK of one range, sealed: header 10 + 8 + 1 + 16.
        reply_bytes: 35 + udpchat_core::wire::DATA_OVERHEAD,
    };
    let base_row = baseline(shape, ctx.plan()).await?;

    let (a, _a_inbound) = open_link("127.0.0.1".parse()?).await?;
    let (b, b_inbound) = open_link("127.0.0.1".parse()?).await?;
    let b_key = StaticKey::generate(&mut rand::rngs::OsRng);
    a.set_identity(Some(StaticKey::generate(&mut rand::rngs::OsRng)));
    b.set_identity(Some(b_key.clone()));
    let relay = if loss > 0.0 {
        Some(Relay::start(b.local_addr(), loss, ctx.seed).await?)
    } else {
        None
    };
    let to = relay.as_ref().map_or(b.local_addr(), |r| r.addr);
    let (to, _server) = if through_server {
        let (addr, server) = meet_through_server(ctx, &a, &b, &b_key).await?;
        (addr, Some(server))
    } else {
        (to, None)
    };
    let peer = a
        .connect(to, b_key.public(), Pattern::Ik)
        .await
        .map_err(|e| anyhow::anyhow!("connect: {}", e.message))?;
    let base = Instant::now();
    let arrivals = Arc::new(Arrivals {
        base,
        from_ns: AtomicU64::new(u64::MAX),
        until_ns: AtomicU64::new(u64::MAX),
        count: AtomicU64::new(0),
        one_way: Mutex::new(histogram()),
    });
    receive(b_inbound, arrivals.clone());

    for size in sizes {
        let plan = Plan {
            window: inflight,
            ..ctx.plan()
        };
        let start_ns = micros(base.elapsed()) * 1000;
        arrivals.count.store(0, Ordering::Relaxed);
        *arrivals.one_way.lock() = histogram();
        arrivals
            .from_ns
            .store(start_ns + plan.warmup.as_nanos() as u64, Ordering::Relaxed);
        arrivals.until_ns.store(
            start_ns + (plan.warmup + plan.measure).as_nanos() as u64,
            Ordering::Relaxed,
        );
        let sender = Sender {
            link: a.clone(),
            peer,
            size,
            seq: Arc::default(),
            base,
        };
        let own = procfs::own();
        let outcome = load::closed_loop(
            &format!("p2p {size} B"),
            &[sender],
            plan,
            None,
            Sender::send,
        )
        .await;
        let own_cpu = procfs::own()
            .zip(own)
            .map(|(after, before)| after.cpu_s - before.cpu_s);
        // Give the last counted messages a moment to land.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let arrived = arrivals.count.load(Ordering::Relaxed);
        let mut row = Row::new(format!("{size} B"), "msg/s", arrived, outcome.seconds)
            .with("bytes", size)
            .with("acked", outcome.ok)
            .against(Some(&base_row));
        let mib_per_s = row.rate * size as f64 / (1024.0 * 1024.0);
        row = row.with("mib_per_s", mib_per_s);
        if let Some(ack) = Latency::of(&outcome.hist) {
            row = row.with("ack_p50_us", ack.p50).with("ack_p99_us", ack.p99);
        }
        if let Some(cpu) = own_cpu {
            row = row.with("bench_cpu_s", cpu);
        }
        if let Some(e) = outcome.first_error {
            row = row.with("first_error", e);
        }
        row.errors = outcome.errors;
        row.latency = Latency::of(&arrivals.one_way.lock());
        report.rows.push(row);
    }
    report.baseline = Some(base_row);
    report.note(format!(
        "one sender, {inflight} messages unacknowledged at most; arrivals counted at the receiving Link's inbound channel (no client dispatcher, no per-message sender lookup); latency = one-way; both clients and their drivers run in the bench process{}",
        match (loss > 0.0, through_server) {
            (true, _) => format!(", through a relay dropping {:.1}% each way", loss * 100.0),
            (false, true) => ", through the udpchat server's relay (a meeting's relay address; the server started with a budget that does not run out)".to_string(),
            (false, false) => String::new(),
        }
    ));
    report.note(format!(
        "echo baseline: 1 client x window {inflight}, {} B requests, {} B replies (a 100 B message and its ACK)",
        shape.request_bytes, shape.reply_bytes
    ));
    drop(relay);
    Ok(report)
}

/// Signs `a` and `b` up on a server it starts, arranges a meeting as `a`
/// (`lookup` with `meet`) and gives both ends its ticket: the relay
/// address `a` opens its session to, and what keeps the server running.
async fn meet_through_server(
    ctx: &Ctx,
    a: &Link,
    b: &Link,
    b_key: &StaticKey,
) -> anyhow::Result<(
    std::net::SocketAddr,
    (crate::server::Target, [SimClient; 2]),
)> {
    use udpchat_commands::lookup::{Lookup, LookupRequest};
    use udpchat_commands::signup::SignUp;
    use udpchat_core::secure::meeting;
    let target = ctx.source.start_with(&["--relay-budget", "1000000"])?;
    let mut alice = SimClient::on_link(a, &target.server, "p2p-a".into()).await?;
    let mut bob =
        SimClient::on_link_as(b, &target.server, "p2p-b".into(), Arc::new(b_key.clone())).await?;
    for client in [&mut alice, &mut bob] {
        client.sign::<SignUp>().await?;
        client.keep_alive(std::time::Duration::from_secs(10));
    }
    let found = alice
        .ask::<Lookup>(&LookupRequest {
            user: "p2p-b".into(),
            meet: true,
        })
        .await?;
    let ticket = found
        .meeting
        .ok_or_else(|| anyhow::anyhow!("the server arranged no meeting"))?;
    let server = target.server.addr;
    drop(b.meet(ticket.clone(), Vec::new(), Some(server)));
    drop(a.meet(ticket.clone(), Vec::new(), Some(server)));
    Ok((meeting::relay_addr(ticket.id), (target, [alice, bob])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_has_its_size_and_its_send_time() {
        let t = text(7, 123_456, 100);
        assert_eq!(t.len(), 100);
        assert_eq!(sent_ns(&t), Some(123_456));
    }
}

//! `fragments`: sessions that hold partial messages (issue 11, finding 3).
//!
//! N sessions (default 50), each an NK session made by hand
//! ([`RawSession`]: nobody signs in, nothing the transport checks needs
//! it), each send the first fragments of many large messages and never
//! the last: for messages 0, 1, 2, ... every fragment but the last of
//! [`FRAGMENTS`], full size, until `per_session` bytes of payload are sent.
//! The server's transport keeps each incomplete message until its
//! reassembly timeout (30 s after its latest fragment), within its
//! per-peer reassembly bound. Sent round robin over the sessions at a
//! paced rate (a bounded loop).
//!
//! Reported: the server's resident memory (`/proc`) before, through the
//! sending and then over a hold with nothing sent (default 40 s, past the
//! 30 s reassembly timeout): its growth, per session, and whether it came
//! back. Then a second wave, as much again from N fresh sessions: memory
//! the server freed but the allocator kept is reused by it, memory still
//! held is not. Last, whether the server still answers a new client.

use std::time::{Duration, Instant};

use udpchat_commands::ping::Ping;
use udpchat_core::packet::Encoded;

use super::{params_with, Ctx};
use crate::clients::{drain, loopback_for, SimClient};
use crate::procfs::{self, Sample, Usage};
use crate::raw::{RawSession, FRAGMENT_PAYLOAD};
use crate::report::{Report, Row};
use crate::server::Target;

/// Sessions holding fragments.
pub const SESSIONS: usize = 50;
/// Fragment payload each session sends, bytes: more than the server's
/// per-peer reassembly bound (4 MiB, plus one message of 256 KiB), so the
/// bound, not the sender, decides what is held.
pub const PER_SESSION: usize = 5 << 20;
/// Datagrams per second, all sessions together.
pub const RATE: f64 = 20_000.0;
/// Seconds watched after the last fragment.
pub const HOLD: Duration = Duration::from_secs(40);
/// Fragments per message: the message claims 100 x 1,140 B = 114,000 B,
/// under the largest message the server takes (128 KiB; a fragment of a
/// message claiming more is refused unread).
const FRAGMENTS: u16 = 100;
/// How often the server's memory is read while sending, and after.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
const HOLD_SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct FragmentArgs {
    pub sessions: usize,
    pub per_session: usize,
    pub rate: f64,
    pub hold: Duration,
}

pub async fn run(ctx: &Ctx, args: FragmentArgs) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "fragments",
        params_with(
            ctx,
            serde_json::json!({
                "sessions": args.sessions,
                "per_session_bytes": args.per_session,
                "rate": args.rate,
                "hold_s": args.hold.as_secs_f64(),
                "fragments_per_message": FRAGMENTS,
                "fragment_payload": FRAGMENT_PAYLOAD,
            }),
        ),
    );
    let target = ctx.server_for_handshakes(&[])?;
    let pid = target.pid;
    let sample = || pid.and_then(procfs::sample);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sample();
    let mut timeline = Timeline {
        pid,
        start: Instant::now(),
        points: Vec::new(),
    };

    let first = connect(&target, args.sessions).await?;
    let connected = sample();
    let wave1 = send_wave(first, args, &mut timeline).await;
    let after_wave1 = sample();
    let wave1_end_s = timeline.now_s();

    // Holding: nothing sent; the partial messages time out.
    let hold_start = Instant::now();
    while hold_start.elapsed() < args.hold {
        tokio::time::sleep(HOLD_SAMPLE_EVERY.min(args.hold)).await;
        timeline.sample();
    }
    let hold_s = hold_start.elapsed().as_secs_f64();
    let after_hold = sample();

    // A second wave from fresh sessions: if the first wave's fragments
    // were freed (and kept by the allocator), it reuses that memory; if
    // they are still held, it grows the server by as much again.
    let second = connect(&target, args.sessions).await?;
    let wave2 = send_wave(second, args, &mut timeline).await;
    let after_wave2 = sample();
    let answers = still_answers(&target).await;

    let usage = |a: Option<Sample>, b: Option<Sample>| a.zip(b).map(|(a, b)| Usage::between(a, b));
    let mut row1 = wave1.row("wave 1: fragments sent", args.sessions);
    row1.server = usage(connected, after_wave1);
    let mut hold = Row::new("hold, nothing sent", "s", 0, hold_s);
    hold.server = usage(after_wave1, after_hold);
    let mut row2 = wave2
        .row("wave 2: fresh sessions", args.sessions)
        .with("server_answers_after", answers);
    row2.server = usage(after_hold, after_wave2);

    if let (Some(b), Some(w1), Some(h), Some(w2)) = (before, after_wave1, after_hold, after_wave2) {
        let growth = w1.rss_kib.saturating_sub(b.rss_kib);
        let left = h.rss_kib.saturating_sub(b.rss_kib);
        let growth2 = w2.rss_kib.saturating_sub(h.rss_kib);
        let mib = |kib: u64| kib as f64 / 1024.0;
        row1 = row1
            .with("rss_before_kib", b.rss_kib)
            .with("rss_after_sessions_kib", connected.map_or(0, |c| c.rss_kib))
            .with("rss_after_kib", w1.rss_kib)
            .with("rss_growth_kib", growth)
            .with(
                "rss_growth_per_session_kib",
                growth / args.sessions.max(1) as u64,
            );
        hold = hold
            .with("rss_after_hold_kib", h.rss_kib)
            .with("rss_left_kib", left)
            .with("growth_left_fraction", left as f64 / growth.max(1) as f64);
        // When the memory came back (to within a tenth of the growth).
        let back_at = timeline
            .points
            .iter()
            .find(|&&(t, kib)| t > wave1_end_s && kib <= b.rss_kib + growth / 10)
            .map(|&(t, _)| t - wave1_end_s);
        if let Some(t) = back_at {
            hold = hold.with("back_within_tenth_after_s", t);
        }
        row2 = row2
            .with("rss_after_kib", w2.rss_kib)
            .with("rss_growth_kib", growth2)
            .with("growth_x_wave1", growth2 as f64 / growth.max(1) as f64);
        report.note(format!(
            "wave 1: server RSS {:.1} MiB before, {:.1} MiB with {} sessions open, {:.1} MiB after {:.1} MiB of fragments in {:.1} s: +{:.1} MiB ({:.2} MiB per session)",
            mib(b.rss_kib),
            mib(connected.map_or(0, |c| c.rss_kib)),
            args.sessions,
            mib(w1.rss_kib),
            wave1.bytes as f64 / (1 << 20) as f64,
            wave1.seconds,
            mib(growth),
            mib(growth) / args.sessions.max(1) as f64,
        ));
        report.note(format!(
            "hold: {:.1} MiB {hold_s:.0} s after the last fragment ({:.0}% of the growth left{})",
            mib(h.rss_kib),
            100.0 * left as f64 / growth.max(1) as f64,
            back_at.map_or(String::new(), |t| format!(
                "; back within a tenth after {t:.0} s"
            )),
        ));
        report.note(format!(
            "wave 2 ({} fresh sessions, as much again): +{:.1} MiB over the hold's {:.1} MiB, {:.2} x wave 1's growth",
            args.sessions,
            mib(growth2),
            mib(h.rss_kib),
            growth2 as f64 / growth.max(1) as f64,
        ));
    }
    report.params["rss_timeline_s_kib"] = serde_json::to_value(&timeline.points)?;
    report.rows.extend([row1, hold, row2]);
    report.note(format!(
        "each session: {} messages (msg_seq 0 up), every fragment but the last of {FRAGMENTS} ({FRAGMENT_PAYLOAD} B each), never completed, round robin over the sessions at {:.0} datagrams/s; sessions are NK handshakes made by hand from 127.0.0.1, not signed in",
        wave1.messages, args.rate
    ));
    report.note("the server's transport drops an incomplete message 30 s after its latest fragment; RSS is what the process holds, so memory freed but kept by the allocator still counts (wave 2 tells the two apart)");
    Ok(report)
}

/// The server's RSS over the run: (seconds from its start, KiB).
struct Timeline {
    pid: Option<u32>,
    start: Instant,
    points: Vec<(f64, u64)>,
}

impl Timeline {
    fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn sample(&mut self) {
        if let Some(s) = self.pid.and_then(procfs::sample) {
            self.points.push((self.now_s(), s.rss_kib));
        }
    }
}

/// `n` raw sessions, one after the other.
async fn connect(target: &Target, n: usize) -> anyhow::Result<Vec<RawSession>> {
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        sessions.push(RawSession::connect(loopback_for(i), &target.server).await?);
    }
    Ok(sessions)
}

/// What one wave sent.
struct Wave {
    sent: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    messages: usize,
}

impl Wave {
    fn row(&self, name: &str, sessions: usize) -> Row {
        let mut row = Row::new(name, "datagrams/s", self.sent, self.seconds)
            .with("sessions", sessions)
            .with("messages_per_session", self.messages)
            .with("bytes_sent", self.bytes);
        row.errors = self.errors;
        if let Some(e) = &self.first_error {
            row = row.with("first_error", e.clone());
        }
        row
    }
}

/// Sends every session's fragments, round robin, at `args.rate`; the
/// sessions are dropped at the end (the server keeps them).
async fn send_wave(
    mut sessions: Vec<RawSession>,
    args: FragmentArgs,
    timeline: &mut Timeline,
) -> Wave {
    let per_message = usize::from(FRAGMENTS - 1) * FRAGMENT_PAYLOAD;
    let messages = args.per_session.div_ceil(per_message).max(1);
    let total = messages * usize::from(FRAGMENTS - 1) * sessions.len();
    let payload = vec![0x42u8; FRAGMENT_PAYLOAD];
    let started = Instant::now();
    let mut next_sample = started;
    let mut wave = Wave {
        sent: 0,
        bytes: 0,
        errors: 0,
        first_error: None,
        seconds: 0.0,
        messages,
    };
    let mut sent = 0usize;
    while sent < total {
        let now = Instant::now();
        if now >= next_sample {
            timeline.sample();
            next_sample = now + SAMPLE_EVERY;
        }
        let due = ((now.duration_since(started).as_secs_f64() * args.rate) as usize).min(total);
        while sent < due {
            let session = &mut sessions[sent % args.sessions];
            let k = sent / args.sessions;
            let msg_seq = (k / usize::from(FRAGMENTS - 1)) as u32;
            let frag_index = (k % usize::from(FRAGMENTS - 1)) as u16;
            let fragment = session.fragment(msg_seq, 0, frag_index, FRAGMENTS, &payload);
            match session.send_transport(&fragment).await {
                Ok(n) => wave.bytes += n as u64,
                Err(e) => {
                    wave.errors += 1;
                    wave.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    wave.sent = sent as u64;
    wave.seconds = started.elapsed().as_secs_f64();
    // Let the server take in the last datagrams before it is sampled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    timeline.sample();
    wave
}

/// Whether a new client still gets a session and a `ping` answered.
async fn still_answers(target: &Target) -> bool {
    let attempt = async {
        let (client, inbound) =
            SimClient::connect(&target.server, loopback_for(0), "after".into()).await?;
        drain(inbound);
        client.request(Encoded::request::<Ping>(&())).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(20), attempt).await,
        Ok(Ok(_))
    )
}

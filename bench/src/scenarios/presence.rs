//! `presence`: K idle signed-in clients (1,000 and up), each pinging the
//! server every 10 s as the real client does (three times per the
//! server's 30 s presence timeout). One server per K. Reported: what the
//! server's resident memory grew by per signed-in client, the server CPU
//! the keepalives cost (per ping and as a share of one core) over a
//! measured idle stretch, and the time it took to sign the K clients in
//! (each sign-in is a handshake, an argon2 hash and a committed insert; up
//! to the server's presence limit, 1,000, it also tells every client
//! already online that one more came, in batches every 100 ms).
//!
//! One UDP socket (and Link) per client, spread over 127.0.0.1, .2, ...
//! (20,000 per address); past [`MAX_SOCKETS`] (the process may open about
//! 20,000 files here) several clients share a socket, each with a session
//! of its own, which the server cannot tell apart from separate clients.
//!
//! Before each K, the baseline: the same K clients on as many sockets
//! send a datagram of a keepalive's size to the UDP echo server on the
//! same schedule ([`udp_echo::keepalives`]); a keepalive's server CPU is
//! also given as a ratio to what the echo server spent per ping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use udpchat_commands::signup::SignUp;
use udpchat_core::crypto::session::REKEY_AFTER_MS;
use udpchat_net::Link;

use super::{params_with, udp_echo, Ctx};
use crate::clients::{drain, keep_pinging, loopback_for, open_link, Pings, SimClient, KEEPALIVE};
use crate::load::{for_each_bounded, histogram, micros};
use crate::procfs::{self, Stretch};
use crate::report::{Latency, Report, Row};

/// The default client counts.
pub const COUNTS: [usize; 3] = [1_000, 10_000, 100_000];
/// Sockets the bench opens at most; more clients share them.
pub const MAX_SOCKETS: usize = 15_000;
/// The server's argon2 memory per password hash here, in KiB (its least):
/// at the default 19 MiB each sign-in costs 27 ms of a core, and 100,000
/// of them would take 45 minutes before anything idle is measured. What an
/// idle client costs does not depend on how its password was checked.
const PASSWORD_MEMORY_KIB: &str = "64";

/// Sign-ins running at once (the server hashes two at a time here).
const SIGNIN_PARALLEL: usize = 4;
/// Waited after sign-ins, for their presence pushes to drain.
const SETTLE: Duration = Duration::from_secs(3);

/// `presence_limit`: the server's `--presence-limit`, when not its default.
pub async fn run(
    ctx: &Ctx,
    counts: &[usize],
    idle: Duration,
    presence_limit: Option<usize>,
) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "presence",
        params_with(
            ctx,
            serde_json::json!({
                "counts": counts,
                "idle_s": idle.as_secs_f64(),
                "keepalive_s": KEEPALIVE.as_secs_f64(),
                "presence_limit": presence_limit,
            }),
        ),
    );
    let limit = presence_limit.map(|n| n.to_string());
    let mut server_args = vec!["--password-memory", PASSWORD_MEMORY_KIB];
    if let Some(limit) = &limit {
        server_args.extend(["--presence-limit", limit.as_str()]);
    }
    for &k in counts {
        // The baseline first, while the bench's sockets are free for it.
        let echo = match udp_echo::keepalives(k, k.min(MAX_SOCKETS), KEEPALIVE, idle).await {
            Ok(row) => Some(row),
            Err(e) => {
                report.note(format!("K={k}: the echo baseline failed: {e:#}"));
                None
            }
        };
        match measure(ctx, k, idle, &server_args).await {
            Ok(mut row) => {
                let per_ping = |row: &Row| row.server_cpu_per_op_us().filter(|us| *us > 0.0);
                if let Some((ours, echo_us)) = per_ping(&row).zip(echo.as_ref().and_then(per_ping))
                {
                    row = row
                        .with("echo_cpu_us_per_ping", echo_us)
                        .with("cpu_per_ping_x_echo", ours / echo_us);
                    report.note(format!(
                        "K={k}: server CPU per keepalive {ours:.1} us = {:.2}x the echo server's {echo_us:.1} us at the same rate and addresses",
                        ours / echo_us
                    ));
                }
                if let Some(rekeyed) = row
                    .extra
                    .get("rekeys_in_idle")
                    .and_then(|n| n.as_u64())
                    .filter(|n| *n > 0)
                {
                    report.note(format!(
                        "K={k}: {rekeyed} sessions re-keyed during the idle stretch ({} s after their sign-in): a P-384 handshake each, in the server's CPU above",
                        REKEY_AFTER_MS / 1000
                    ));
                }
                report.rows.extend(echo);
                report.rows.push(row);
            }
            Err(e) => {
                report.rows.extend(echo);
                report.note(format!("K={k} failed: {e:#}"));
            }
        }
    }
    report.note(format!(
        "each client pings every {}s (the real client's keepalive: three per 30 s presence timeout); memory per client = server RSS after the sign-ins minus RSS before, over K (and over the second half of the sign-ins alone)",
        KEEPALIVE.as_secs()
    ));
    report.note(format!(
        "the server runs with --password-memory {PASSWORD_MEMORY_KIB} (KiB per argon2 hash instead of 19 MiB), so that K sign-ins take minutes, not hours; an idle client's cost does not depend on it (signin-storm measures the standard cost)"
    ));
    Ok(report)
}

async fn measure(ctx: &Ctx, k: usize, idle: Duration, server_args: &[&str]) -> anyhow::Result<Row> {
    let target = ctx.server_for_handshakes(server_args)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = target.pid.and_then(procfs::sample);
    let sockets = k.min(MAX_SOCKETS);
    let mut links = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let (link, inbound) = open_link(loopback_for(i)).await?;
        drain(inbound);
        links.push(link);
    }
    // Sign the K clients in; each pings from then on.
    let prefix = ctx.users("idle");
    let server = target.server.clone();
    let pings = Arc::new(Pings::default());
    let started = Instant::now();
    // Sign in the first half, note the server's memory, then the rest:
    // the growth over the second half is what one more client costs,
    // apart from what the first sign-ins' argon2 hashing left allocated.
    let half = k / 2;
    let mut keepers = Vec::with_capacity(k);
    // One of the clients, to ask the server who is signed in at the end.
    let mut asker: Option<SimClient> = None;
    let mut rss_half = None;
    let mut sign_in_latency = histogram();
    let mut sign_in_failures = 0u64;
    let mut first_error = None;
    for range in [0..half, half..k] {
        let (links, server, prefix, pings) =
            (links.clone(), server.clone(), prefix.clone(), pings.clone());
        let signed = for_each_bounded(
            &format!("signing in {}..{}", range.start, range.end),
            range.collect(),
            SIGNIN_PARALLEL,
            move |i| {
                let link = links[i % links.len()].clone();
                let server = server.clone();
                let user = format!("{prefix}-{i}");
                let pings = pings.clone();
                async move {
                    let t0 = Instant::now();
                    let client = SimClient::on_link(&link, &server, user).await?;
                    client.sign::<SignUp>().await?;
                    let took = t0.elapsed();
                    let keeper = {
                        let client = client.clone();
                        keep_pinging(KEEPALIVE, pings, move || {
                            let client = client.clone();
                            async move { client.link.keep_alive(client.server).await.is_ok() }
                        })
                    };
                    anyhow::Ok((keeper, took, client))
                }
            },
        )
        .await;
        // A sign-in that fails (the server too busy to answer in time)
        // is counted, not fatal: the others stay signed in.
        for result in signed {
            match result {
                Ok((keeper, took, client)) => {
                    keepers.push(keeper);
                    asker.get_or_insert(client);
                    sign_in_latency.saturating_record(micros(took).max(1));
                }
                Err(e) => {
                    sign_in_failures += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        if rss_half.is_none() {
            tokio::time::sleep(SETTLE).await;
            rss_half = target.pid.and_then(procfs::sample);
        }
    }
    let sign_in_s = started.elapsed().as_secs_f64();
    // Let the presence pushes of the last sign-ins drain.
    tokio::time::sleep(SETTLE).await;

    let rekeyed_before = rekeys(&links).await;
    let watched = Stretch::start(target.pid);
    pings.start();
    tokio::time::sleep(idle).await;
    pings.stop();
    let (usage, generated) = watched.usage();
    // Sessions that signed in re-key 10 minutes later (a P-384 handshake
    // on the server each): a stretch that starts that late measures them
    // too, and says so.
    let rekeyed = rekeys(&links).await.saturating_sub(rekeyed_before);
    let after = target.pid.and_then(procfs::sample);
    let pinged = pings.answered();
    // Keepalives alone kept every client signed in: the server still
    // lists them all (`list`'s total counts the others: K - 1 when all
    // are).
    let signed_in_after = match &asker {
        Some(asker) => asker.list_total().await.ok(),
        None => None,
    };

    let mut row = Row::new(format!("K={k}"), "pings/s", pinged, idle.as_secs_f64())
        .with("clients", k)
        .with("sockets", sockets)
        .with("signed_in", keepers.len())
        .with("sign_in_failures", sign_in_failures)
        .with("sign_in_s", sign_in_s)
        .with("rekeys_in_idle", rekeyed);
    if let Some(listed) = signed_in_after {
        row = row.with("listed_after", listed);
    }
    if let Some(l) = Latency::of(&sign_in_latency) {
        row = row
            .with("sign_in_p50_us", l.p50)
            .with("sign_in_p99_us", l.p99);
    }
    if let Some(e) = first_error {
        row = row.with("first_error", e);
    }
    row.errors = pings.unanswered();
    row.latency = pings.latency();
    row.server = usage;
    row.generator = generated;
    if let (Some(before), Some(half_way), Some(after)) = (before, rss_half, after) {
        let per_client = |from: u64, clients: usize| {
            after.rss_kib.saturating_sub(from) as f64 * 1024.0 / clients.max(1) as f64
        };
        row = row
            .with("rss_before_kib", before.rss_kib)
            .with("rss_half_kib", half_way.rss_kib)
            .with("rss_after_kib", after.rss_kib)
            .with("rss_per_client_bytes", per_client(before.rss_kib, k))
            .with(
                "rss_per_client_second_half_bytes",
                per_client(half_way.rss_kib, k - half),
            );
    }
    if let Some(usage) = usage {
        row = row
            .with("cpu_share_of_one_core", usage.cpu_s / idle.as_secs_f64())
            .with(
                "cpu_us_per_ping",
                if pinged > 0 {
                    usage.cpu_s * 1e6 / pinged as f64
                } else {
                    0.0
                },
            );
    }
    drop(keepers);
    Ok(row)
}

/// Re-keys the bench's clients finished so far, over all their links.
async fn rekeys(links: &[Link]) -> u64 {
    let mut total = 0;
    for link in links {
        total += link.stats().await.rekeys;
    }
    total
}

//! `flood`: junk HELLOs beside the normal load (issue 11, finding 2).
//!
//! K signed-in clients (default 32) ask `list` at a steady rate each
//! (default 20/s: not flat out, a load the server takes easily), while
//! every 250 ms a fresh client opens an NK session and signs in to one of
//! 8 accounts made beforehand. Three phases on one server, each a warm-up
//! and a measured stretch:
//!
//! 1. **calm**: no attack; the same run's baseline.
//! 2. **spoofed flood**: junk HELLOs at `rate` (default 6,000/s) from
//!    `sources` UDP sockets on 127.0.0.2, .3, ... Each is a real HELLO with
//!    its AEAD part corrupted and a valid mac1 ([`raw::junk_hello`]), so only
//!    P-384 work finds it out. The attackers read their sockets (bytes back
//!    are counted) but never use a cookie: a flood from spoofed addresses.
//! 3. **cookie flood** (unless `--spoofed-only`): the same, but each
//!    attacker sends its HELLOs with the mac2 of the last cookie it got:
//!    what the per-source limit holds.
//! 4. **KEY REQUEST flood** (unless `--spoofed-only`): KEY REQUESTs at
//!    `rate` from the same sockets, each answered with the server's key
//!    (anyone may ask, from any address: what one costs the server).
//!
//! Reported per phase: the `list` rate, p50/p99 and errors; the sign-ins'
//! time from connect to signed in (p50, max, how many within 2 s, and
//! failures); the server's CPU (from `/proc`) and the datagrams the kernel
//! dropped at its socket; the junk sent and the bytes that came back to
//! the attackers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use udpchat_core::wire;

use super::rpc::{measure, setup, SIGNUP_PARALLEL};
use super::{params_with, Ctx};
use crate::clients::{sign_up_many, SimClient};
use crate::load::Plan;
use crate::procfs;
use crate::raw;
use crate::report::{Report, Row};
use crate::server::Target;

mod attackers;
mod signins;

use attackers::{Flood, JunkCount};
use signins::{sign_ins, Account, Signins};

/// Junk HELLOs per second, all sources together.
pub const RATE: f64 = 6_000.0;
/// Attacking sockets, one per address from 127.0.0.2 up.
pub const SOURCES: u8 = 8;
/// `list` requests per second per signed-in client.
pub const LIST_RATE: f64 = 20.0;
/// Signed-in clients asking `list` when `--clients` is not given.
pub const CLIENTS: usize = 32;
/// A fresh client signs in this often.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// The target for an honest sign-in under the flood.
const SIGNIN_TARGET: Duration = Duration::from_secs(2);
/// A sign-in not done by then counts as failed (the client itself gives
/// up sooner: six HELLOs unanswered take about 31.5 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(40);
/// Different junk HELLOs the attackers cycle through (each costs the
/// bench a real message 1 to make; the server's replay guard would only
/// see a repeat after the AEAD, which junk never passes).
const JUNK_POOL: usize = 256;

/// What the flood is shaped by.
#[derive(Debug, Clone, Copy)]
pub struct FloodArgs {
    pub rate: f64,
    pub sources: usize,
    pub list_rate: f64,
    pub cookie_phase: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    None,
    /// Cookie replies are read and thrown away.
    Spoofed,
    /// Each attacker stamps its junk with its latest cookie.
    Cookies,
    /// KEY REQUESTs instead of HELLOs: each is answered with the server's
    /// key, unauthenticated, from any address.
    KeyRequests,
}

impl Attack {
    fn phase(self) -> &'static str {
        match self {
            Attack::None => "calm",
            Attack::Spoofed => "spoofed flood",
            Attack::Cookies => "cookie flood",
            Attack::KeyRequests => "KEY REQUEST flood",
        }
    }
}

pub async fn run(ctx: &Ctx, args: FloodArgs) -> anyhow::Result<Report> {
    let plan = Plan {
        window: 1,
        pace: Some(Duration::from_secs_f64(1.0 / args.list_rate.max(0.01))),
        ..ctx.plan()
    };
    let mut report = Report::new(
        "flood",
        params_with(
            ctx,
            serde_json::json!({
                "junk_rate": args.rate,
                "sources": args.sources,
                "list_rate_per_client": args.list_rate,
                "list_offered_rate": plan.offered_rate(ctx.clients),
                "signin_every_ms": PROBE_EVERY.as_millis() as u64,
                "cookie_phase": args.cookie_phase,
            }),
        ),
    );
    let mut attacks = vec![Attack::None, Attack::Spoofed];
    if args.cookie_phase {
        attacks.extend([Attack::Cookies, Attack::KeyRequests]);
    }
    let target = ctx.server()?;
    let clients = setup(ctx, &target).await?;
    // Each sign-in has an account of its own that nobody holds: a name
    // held by a vanished client would make the server probe that client
    // first, and the wait would be counted as the sign-in's.
    let per_phase = ((plan.warmup + plan.measure).as_secs_f64() / PROBE_EVERY.as_secs_f64()).ceil()
        as usize
        + 1;
    let accounts = sign_up_many(
        &target.server,
        &ctx.users("probe"),
        per_phase * attacks.len(),
        SIGNUP_PARALLEL,
    )
    .await?;
    for account in &accounts {
        account.sign_out().await?;
    }
    let accounts: Vec<Account> = accounts
        .into_iter()
        .map(|a| (a.user.clone(), a.identity.clone()))
        .collect();
    report.params["signin_accounts"] = accounts.len().into();
    let key = target.server.key.clone();
    let pool = tokio::task::spawn_blocking(move || {
        (0..JUNK_POOL)
            .map(|_| raw::junk_hello(&mut rand::rngs::OsRng, &key))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await??;
    report.params["junk_bytes"] = pool[0].len().into();
    let pool = Arc::new(pool);

    let mut calm: Option<Phase> = None;
    for (attack, accounts) in attacks.into_iter().zip(accounts.chunks(per_phase)) {
        let phase = phase(attack, &target, &clients, accounts, &pool, plan, args).await?;
        let rows = phase.rows(calm.as_ref());
        report.rows.extend(rows);
        if let Some(calm) = &calm {
            report.note(phase.summary(calm));
        }
        if attack == Attack::None {
            calm = Some(phase);
        }
    }
    report.note(format!(
        "{} signed-in clients ask `list` every {:.0} ms each (paced, one outstanding: {:.0}/s offered); latency is from each request's start; a reply later than the pace lowers the rate achieved",
        ctx.clients,
        1e3 / args.list_rate,
        plan.offered_rate(ctx.clients).unwrap_or(0.0)
    ));
    report.note(format!(
        "every {} ms a fresh client (its own socket on 127.0.1.x) opens an NK session and signs in (argon2id on the server) to an account made beforehand and signed out, one per sign-in; its time runs from the connect to the sign-in reply; one not signed in after {} s counts as failed",
        PROBE_EVERY.as_millis(),
        PROBE_TIMEOUT.as_secs()
    ));
    report.note(format!(
        "junk: {} B HELLOs, a real NK message 1 with its AEAD part corrupted and a valid mac1, from {} sockets on 127.0.0.2..; server CPU and kernel drops are over each phase's measured stretch",
        report.params["junk_bytes"], args.sources
    ));
    Ok(report)
}

/// What one phase measured.
struct Phase {
    attack: Attack,
    list: Row,
    signins: Signins,
    junk: Option<JunkCount>,
    /// Datagrams the kernel dropped at the server's socket.
    drops: Option<u64>,
}

async fn phase(
    attack: Attack,
    target: &Target,
    clients: &[SimClient],
    accounts: &[Account],
    pool: &Arc<Vec<Vec<u8>>>,
    plan: Plan,
    args: FloodArgs,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let stop_at = measure_from + plan.measure;
    let flood = match attack {
        Attack::None => None,
        Attack::Spoofed | Attack::Cookies => Some(
            Flood::start(
                &target.server,
                pool.clone(),
                args,
                attack == Attack::Cookies,
                stop_at,
            )
            .await?,
        ),
        Attack::KeyRequests => {
            let requests = Arc::new(vec![wire::Packet::KeyRequest.encode()]);
            Some(Flood::start(&target.server, requests, args, false, stop_at).await?)
        }
    };
    let probes = tokio::spawn(sign_ins(
        target.server.clone(),
        accounts.to_vec(),
        measure_from,
        stop_at,
    ));
    // The kernel's drops at the server's socket over the measured stretch.
    let addr = target.server.addr;
    let drops = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before = procfs::udp_drops(addr);
        tokio::time::sleep_until(stop_at.into()).await;
        procfs::udp_drops(addr)
            .zip(before)
            .map(|(a, b)| a.saturating_sub(b))
    });
    let list = measure(
        &format!("list, {}", attack.phase()),
        target,
        clients,
        plan,
        false,
    )
    .await;
    let drops = drops.await?;
    let junk = match flood {
        Some(flood) => Some(flood.finish().await),
        None => None,
    };
    let signins = probes.await?;
    Ok(Phase {
        attack,
        list,
        signins,
        junk,
        drops,
    })
}

impl Phase {
    fn rows(&self, calm: Option<&Phase>) -> Vec<Row> {
        let name = self.attack.phase();
        let mut list = self.list.clone();
        if let Some(drops) = self.drops {
            list = list.with("server_socket_drops", drops);
        }
        if let Some(usage) = list.server {
            let share = usage.cpu_s / list.seconds.max(1e-9);
            list = list.with("server_cpu_share", share);
        }
        if let Some(calm) = calm {
            // Not `against`: the table's ratio column is the echo's.
            let rate_x_calm = list.rate / calm.list.rate.max(1e-9);
            list = list.with("rate_x_calm", rate_x_calm);
            if let (Some(a), Some(b)) = (calm.list.latency, list.latency) {
                list = list.with("p99_x_calm", b.p99 as f64 / a.p99.max(1) as f64);
            }
            if let (Some(a), Some(b)) = (calm.list.server, list.server) {
                list = list.with("server_cpu_x_calm", b.cpu_s / a.cpu_s.max(1e-9));
            }
        }
        let mut rows = vec![list, self.signins.row(name)];
        if let Some(junk) = &self.junk {
            rows.push(junk.row(name));
        }
        rows
    }

    /// One line comparing this phase with the calm one.
    fn summary(&self, calm: &Phase) -> String {
        let p99 = |p: &Phase| p.list.latency.map_or(0, |l| l.p99);
        let cpu = |p: &Phase| {
            p.list
                .server
                .map_or(0.0, |u| u.cpu_s / p.list.seconds.max(1e-9))
        };
        let signin = |p: &Phase| {
            p.signins
                .latency()
                .map_or("none signed in".to_string(), |l| {
                    format!("p50 {} ms, max {} ms", l.p50 / 1000, l.max / 1000)
                })
        };
        let junk = self.junk.as_ref().map_or(String::new(), |j| {
            format!(
                "; junk {:.0}/s, {:.3} B back per B sent",
                j.rate(),
                j.bytes_in_per_out()
            )
        });
        format!(
            "{}: list p99 {} us (calm {} us, x{:.2}), {} errors; sign-ins {} of {} within {} s ({}; calm {}), {} failed; server CPU {:.0}% of a core (calm {:.0}%){junk}",
            self.attack.phase(),
            p99(self),
            p99(calm),
            p99(self) as f64 / p99(calm).max(1) as f64,
            self.list.errors,
            self.signins.within_target,
            self.signins.started(),
            SIGNIN_TARGET.as_secs(),
            signin(self),
            signin(calm),
            self.signins.failed,
            cpu(self) * 100.0,
            cpu(calm) * 100.0,
        )
    }
}

//! `signin-storm`: what a burst of sign-ins (each an argon2id verification,
//! ~19 MiB and tens of milliseconds of a core, on the server's blocking
//! threads) does to everyone else. The `rpc` `list` load runs once alone
//! and once while other clients sign in at a fixed rate (open loop: one
//! every 1/rate seconds, whether or not the last one finished); the table
//! shows the rpc p99 both ways, and the sign-ins' own rate and latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use udpchat_commands::signin::SignIn;

use super::rpc::{list_shape, measure, setup, SIGNUP_PARALLEL};
use super::udp_echo::baseline;
use super::{params_with, Ctx};
use crate::clients::{sign_up_many, SimClient};
use crate::load::{histogram, micros};
use crate::report::{Latency, Report, Row};

/// Accounts the storm signs in to, round robin.
pub(super) const STORM_ACCOUNTS: usize = 8;

/// Milliseconds of one argon2id verification with the server's parameters
/// (m = 19 MiB, t = 2, p = 1; docs/PROTOCOL.md section 6), on this thread.
fn argon2_verify_ms(runs: u32) -> f64 {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let phc = argon2
        .hash_password(b"bench password", &salt)
        .expect("argon2 hash")
        .to_string();
    let hash = PasswordHash::new(&phc).expect("PHC string");
    let start = Instant::now();
    for _ in 0..runs {
        argon2
            .verify_password(b"bench password", &hash)
            .expect("argon2 verify");
    }
    start.elapsed().as_secs_f64() * 1e3 / f64::from(runs.max(1))
}

pub async fn run(ctx: &Ctx, rate: f64) -> anyhow::Result<Report> {
    let shape = list_shape(ctx.clients, ctx.window);
    let mut report = Report::new(
        "signin-storm",
        params_with(
            ctx,
            serde_json::json!({ "signin_rate": rate, "storm_accounts": STORM_ACCOUNTS, "shape": shape }),
        ),
    );
    let runs = if ctx.quick { 2 } else { 10 };
    let argon2_ms = tokio::task::spawn_blocking(move || argon2_verify_ms(runs)).await?;
    report.params["argon2_verify_ms"] = argon2_ms.into();
    let base = baseline(shape, ctx.plan()).await?;
    let target = ctx.server()?;
    let clients = setup(ctx, &target).await?;
    let storm = sign_up_many(
        &target.server,
        &ctx.users("storm"),
        STORM_ACCOUNTS,
        SIGNUP_PARALLEL,
    )
    .await?;

    let calm = measure("list, no storm", &target, &clients, ctx.plan(), false)
        .await
        .against(Some(&base));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let storm_task = tokio::spawn(storm_at(storm, rate, stop.clone(), ctx.warmup));
    let stormy = measure(
        &format!("list, storm {rate}/s"),
        &target,
        &clients,
        ctx.plan(),
        false,
    )
    .await
    .against(Some(&base));
    stop.store(true, Ordering::Relaxed);
    let signins = storm_task.await?;

    if let (Some(a), Some(b)) = (calm.latency, stormy.latency) {
        report.note(format!(
            "rpc p99 {} us without the storm, {} us with {rate} sign-ins/s: x{:.2}",
            a.p99,
            b.p99,
            b.p99 as f64 / a.p99.max(1) as f64
        ));
    }
    report.note(format!(
        "each sign-in verifies an argon2id hash (m=19 MiB, t=2) on one of the server's blocking threads, at most one per core at a time; one verification takes {argon2_ms:.1} ms of a core here (measured in this run)"
    ));
    report.baseline = Some(base);
    report.rows.push(calm);
    report.rows.push(stormy);
    report.rows.push(signins);
    Ok(report)
}

/// Signs in at `rate` per second until `stop`; the sign-ins' row (counted
/// after `warmup`, like the load it runs beside).
pub(super) async fn storm_at(
    accounts: Vec<SimClient>,
    rate: f64,
    stop: Arc<std::sync::atomic::AtomicBool>,
    warmup: Duration,
) -> Row {
    let hist = Arc::new(Mutex::new(histogram()));
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let measure_from = start + warmup;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    let mut inflight = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let client = accounts[n % accounts.len()].clone();
        n += 1;
        let (hist, ok, errors) = (hist.clone(), ok.clone(), errors.clone());
        inflight.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let result = client.sign::<SignIn>().await;
            if t0 < measure_from {
                return;
            }
            match result {
                Ok(()) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                    hist.lock().saturating_record(micros(t0.elapsed()).max(1));
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let seconds = measure_from.elapsed().as_secs_f64();
    for task in inflight {
        let _ = task.await;
    }
    let mut row = Row::new(
        format!("signin at {rate}/s"),
        "signins/s",
        ok.load(Ordering::Relaxed),
        seconds,
    )
    .with("offered_rate", rate);
    row.errors = errors.load(Ordering::Relaxed);
    row.latency = Latency::of(&hist.lock());
    row
}

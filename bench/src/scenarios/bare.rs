//! `bare`: sessions opened and never signed in (issue 11, finding 3).
//!
//! K NK handshakes, each followed by one `ping` (which needs no sign-in)
//! so that it is a session carrying data, spread over a few sockets and
//! made by the real client driver (cookie replies and all), `parallel` at
//! once; nobody signs in. The server keeps at most 20,000 sessions
//! waiting for a sign-in (the oldest go first) and closes each a minute
//! after it opened. Reported: the server's RSS before, after each tenth of
//! the handshakes, at the end, and once a minute has passed, and its CPU.

use std::time::Duration;

use super::handshake::one_session;
use super::{params_with, Ctx};
use crate::clients::{drain, loopback_for, open_link};
use crate::load;
use crate::procfs;
use crate::report::{Report, Row};

/// Handshakes made, by default.
pub const COUNT: usize = 100_000;
/// Sockets they are spread over, and handshakes in flight at once.
const LINKS: usize = 16;
const PARALLEL: usize = 64;

pub async fn run(ctx: &Ctx, count: usize) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "bare",
        params_with(
            ctx,
            serde_json::json!({ "handshakes": count, "links": LINKS, "parallel": PARALLEL }),
        ),
    );
    let target = ctx.server_for_handshakes(&[])?;
    let sample = || target.pid.and_then(procfs::sample);
    let mut links = Vec::with_capacity(LINKS);
    for i in 0..LINKS {
        let (link, inbound) = open_link(loopback_for(i)).await?;
        drain(inbound);
        links.push(link);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sample();
    let watch = procfs::Watch::start(target.pid);
    let started = std::time::Instant::now();
    let step = count.div_ceil(10).max(1);
    let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
    let mut rss_steps = Vec::new();
    let mut done = 0;
    while done < count {
        let n = step.min(count - done);
        let items: Vec<usize> = (done..done + n).collect();
        let (links, server) = (links.clone(), target.server.clone());
        let results =
            load::for_each_bounded(&format!("handshakes {done}.."), items, PARALLEL, move |i| {
                one_session(links[i % LINKS].clone(), server.clone())
            })
            .await;
        for result in results {
            match result {
                Ok(()) => ok += 1,
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        done += n;
        if let Some(s) = sample() {
            rss_steps.push(serde_json::json!({ "handshakes": done, "rss_kib": s.rss_kib }));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let usage = watch.usage();
    let after = sample();
    // A minute on (and a sweep), every one of them has been closed.
    let wait = if ctx.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(75)
    };
    tokio::time::sleep(wait).await;
    let later = sample();

    let mut row = Row::new("bare handshakes", "sessions/s", ok, seconds)
        .with("rss_steps", serde_json::Value::from(rss_steps));
    row.errors = errors;
    row.server = usage;
    if let Some(e) = first_error {
        row = row.with("first_error", e);
    }
    if let (Some(before), Some(after)) = (before, after) {
        let grew = after.rss_kib.saturating_sub(before.rss_kib);
        row = row
            .with("rss_before_kib", before.rss_kib)
            .with("rss_after_kib", after.rss_kib)
            .with("rss_growth_kib", grew);
        report.note(format!(
            "server RSS {:.1} MiB before, {:.1} MiB after {ok} bare sessions (+{:.1} MiB)",
            before.rss_kib as f64 / 1024.0,
            after.rss_kib as f64 / 1024.0,
            grew as f64 / 1024.0
        ));
    }
    if let Some(later) = later {
        row = row.with("rss_later_kib", later.rss_kib);
        report.note(format!(
            "{:.0} s later: {:.1} MiB",
            wait.as_secs_f64(),
            later.rss_kib as f64 / 1024.0
        ));
    }
    report.rows.push(row);
    Ok(report)
}

//! The one load generator every request-reply scenario uses, so that the
//! UDP echo baseline and udpchat are driven the same way: each simulated
//! client keeps `window` operations outstanding (a new one starts as soon
//! as one completes: a closed loop, as fast as replies come; or, with a
//! `pace`, at most one per pace per slot: a steady load at a fixed rate),
//! for a warm-up that is not counted and then a measured stretch. Latency
//! is recorded per operation in an HDR histogram (microseconds, 3
//! significant digits).
//!
//! Also the progress bars (indicatif) that long stretches show on a
//! terminal; they are hidden when stderr is not one, or with
//! `--no-progress`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

use crate::procfs::{Stretch, Usage};

static PROGRESS: AtomicBool = AtomicBool::new(true);

/// Turns the progress bars off (`--no-progress`).
pub fn disable_progress() {
    PROGRESS.store(false, Ordering::Relaxed);
}

fn draw_target() -> ProgressDrawTarget {
    if PROGRESS.load(Ordering::Relaxed) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar counting `total` things (clients signed in, members joined).
pub fn count_bar(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), draw_target());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// A bar over a stretch of time.
fn time_bar(label: &str, total: Duration) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total.as_millis() as u64), draw_target());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:30}] {elapsed}/{duration} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// A histogram of microseconds, from 1 us to 10 minutes.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// How long to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Run, not counted, before measuring.
    pub warmup: Duration,
    /// The measured stretch.
    pub measure: Duration,
    /// Operations each client keeps outstanding.
    pub window: usize,
    /// `None`: each slot starts its next operation as soon as the last
    /// completes. `Some(p)`: at most one every `p` (the first after a
    /// random part of `p`, so clients spread out); a slot whose operation
    /// took longer than `p` starts the next at once, and the slots it
    /// missed are not made up, so late replies lower the rate achieved
    /// (the outcome's rate shows it) rather than pile up requests.
    pub pace: Option<Duration>,
}

impl Plan {
    /// The operations per second this plan offers over `clients`, when paced.
    pub fn offered_rate(&self, clients: usize) -> Option<f64> {
        self.pace
            .map(|p| (clients * self.window.max(1)) as f64 / p.as_secs_f64().max(1e-9))
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Operations that succeeded in the measured stretch.
    pub ok: u64,
    pub errors: u64,
    /// The measured stretch, as it really lasted.
    pub seconds: f64,
    pub hist: Histogram<u64>,
    /// The first error seen, to tell the reader what went wrong.
    pub first_error: Option<String>,
    /// What the watched process (the server) used in the measured stretch.
    pub server: Option<Usage>,
    /// What the bench itself used in the same stretch.
    pub generator: Option<Usage>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Runs `op` against every client in a closed loop of `plan.window`
/// outstanding operations each (paced by `plan.pace`, if set); `server` is
/// the process whose CPU and memory over the measured stretch the outcome
/// reports.
pub async fn closed_loop<C, F, Fut>(
    label: &str,
    clients: &[C],
    plan: Plan,
    server: Option<u32>,
    op: F,
) -> Outcome
where
    C: Clone + Send + Sync + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.measure;
    let done = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let bar = time_bar(label, plan.warmup + plan.measure);
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let watched = Stretch::start(server);
        tokio::time::sleep_until(end.into()).await;
        watched.usage()
    });
    let ticker = {
        let (bar, done) = (bar.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.set_position(start.elapsed().as_millis() as u64);
                bar.set_message(format!("{} ops", done.load(Ordering::Relaxed)));
            }
        })
    };
    let mut workers = Vec::new();
    for client in clients {
        for _ in 0..plan.window.max(1) {
            let (client, op, done, first_error) = (
                client.clone(),
                op.clone(),
                done.clone(),
                first_error.clone(),
            );
            let pace = plan.pace;
            workers.push(tokio::spawn(async move {
                let mut hist = histogram();
                let (mut ok, mut errors) = (0u64, 0u64);
                let mut slot = pace.map(|p| start + p.mul_f64(rand::random::<f64>()));
                loop {
                    if let (Some(at), Some(p)) = (slot.as_mut(), pace) {
                        tokio::time::sleep_until((*at).into()).await;
                        *at = (*at + p).max(Instant::now());
                    }
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let result = op(client.clone()).await;
                    let counted = t0 >= measure_from && Instant::now() <= end;
                    match result {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            if counted {
                                ok += 1;
                                hist.saturating_record(micros(t0.elapsed()).max(1));
                            }
                        }
                        Err(e) => {
                            if counted {
                                errors += 1;
                            }
                            first_error.lock().get_or_insert_with(|| format!("{e:#}"));
                            // An error that comes back at once must not spin.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                (ok, errors, hist)
            }));
        }
    }
    let mut outcome = Outcome {
        ok: 0,
        errors: 0,
        seconds: plan.measure.as_secs_f64(),
        hist: histogram(),
        first_error: None,
        server: None,
        generator: None,
    };
    for worker in workers {
        if let Ok((ok, errors, hist)) = worker.await {
            outcome.ok += ok;
            outcome.errors += errors;
            let _ = outcome.hist.add(&hist);
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    outcome.first_error = first_error.lock().take();
    (outcome.server, outcome.generator) = sampler.await.unwrap_or_default();
    outcome
}

/// Runs `f` over `items` with at most `parallel` at once, ticking a bar;
/// returns the results in order.
pub async fn for_each_bounded<T, R, F, Fut>(
    label: &str,
    items: Vec<T>,
    parallel: usize,
    f: F,
) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let bar = count_bar(label, items.len() as u64);
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let f = Arc::new(f);
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let permit = limit.clone().acquire_owned().await.expect("semaphore open");
        let (f, bar) = (f.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let result = f(item).await;
            bar.inc(1);
            drop(permit);
            result
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("a bench task panicked"));
    }
    bar.finish_and_clear();
    results
}

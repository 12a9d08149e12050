//! What an operator watches: sessions, what waits in the queues, how long
//! pushes take to be acknowledged, and what the database holds. The same
//! figures feed the metrics endpoint (`--metrics ADDR`, the Prometheus
//! text format) and, on PostgreSQL, each node's row for `udpchat-server
//! status` (written at every heartbeat).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use udpchat_net::{Latencies, Link, Load, LATENCY_BOUNDS_MS};

use crate::dispatch::Admission;
use crate::state::ServerState;
use crate::store::{blocking, Backend, Totals};

pub mod endpoint;

/// How far back a node's summary looks ([`NodeLoad`]).
pub const WINDOW: Duration = Duration::from_secs(60);

/// A node's load as its row carries it (JSON) and `status` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeLoad {
    pub sessions: usize,
    pub signed_in: usize,
    pub requests_in_hand: usize,
    pub handshakes_waiting: usize,
    /// Messages sent and not yet acknowledged, and the bytes queued.
    pub in_flight: usize,
    pub queued_bytes: usize,
    /// Over the last [`WINDOW`]: pushes acknowledged, with the latency
    /// quantiles' bucket bounds, and pushes failed.
    pub delivered: u64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub failed: u64,
}

impl NodeLoad {
    /// One line for `status`.
    pub fn describe(&self) -> String {
        let kib = self.queued_bytes.div_ceil(1024);
        let mut line = format!(
            "{} sessions, {} requests in hand, {} handshakes waiting, {} messages in flight ({kib} KiB); last minute: {} pushes delivered",
            self.sessions, self.requests_in_hand, self.handshakes_waiting, self.in_flight, self.delivered
        );
        if let (Some(p50), Some(p99)) = (self.p50_ms, self.p99_ms) {
            let _ = write!(line, " (p50 <= {p50} ms, p99 <= {p99} ms)");
        }
        let _ = write!(line, ", {} failed", self.failed);
        line
    }
}

/// Reads the figures; one per server.
pub struct Metrics {
    link: Link,
    /// Weak: the heartbeat holds the metrics, and must not keep the
    /// server alive.
    state: Weak<ServerState>,
    requests: Arc<Mutex<Admission>>,
    store: Arc<dyn Backend>,
    /// Snapshots of the delivery figures, oldest first, reaching back at
    /// least [`WINDOW`] when the node is that old.
    history: Mutex<VecDeque<(Instant, Latencies, u64)>>,
}

impl Metrics {
    pub fn new(
        link: Link,
        state: Arc<ServerState>,
        requests: Arc<Mutex<Admission>>,
        store: Arc<dyn Backend>,
    ) -> Arc<Metrics> {
        Arc::new(Metrics {
            link,
            state: Arc::downgrade(&state),
            requests,
            store,
            history: Mutex::new(VecDeque::new()),
        })
    }

    /// The node's load now, with the delivery figures of the last
    /// [`WINDOW`] (or since the node started).
    pub async fn node_load(&self) -> NodeLoad {
        let load = self.link.load().await;
        let now = Instant::now();
        let (recent, failed) = {
            let mut history = self.history.lock();
            history.push_back((now, load.delivered.clone(), load.failed));
            // Keep the newest snapshot at least WINDOW old as the base.
            while history
                .get(1)
                .is_some_and(|(at, _, _)| now.duration_since(*at) >= WINDOW)
            {
                history.pop_front();
            }
            let (_, base, base_failed) = &history[0];
            (
                load.delivered.since(base),
                load.failed.saturating_sub(*base_failed),
            )
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        NodeLoad {
            sessions: load.sessions,
            signed_in: self.signed_in().0,
            requests_in_hand: self.requests.lock().in_all(),
            handshakes_waiting: load.handshakes_waiting,
            in_flight: load.in_flight,
            queued_bytes: load.queued_bytes,
            delivered: recent.count,
            p50_ms: recent.quantile(0.5).map(ms),
            p99_ms: recent.quantile(0.99).map(ms),
            failed,
        }
    }

    /// Users signed in on this node and on the others (none once the
    /// server is gone).
    fn signed_in(&self) -> (usize, usize) {
        self.state.upgrade().map_or((0, 0), |state| {
            (state.signed_in_here(), state.users_elsewhere())
        })
    }

    /// Every figure, in the Prometheus text format (version 0.0.4).
    pub async fn prometheus(&self) -> String {
        let load = self.link.load().await;
        let stats = self.link.stats().await;
        let store = self.store.clone();
        let totals = blocking(move || store.totals()).await;
        let mut out = Exposition::default();
        gauges(&mut out, &load, self);
        out.histogram(
            "udpchat_push_delivery_seconds",
            "Time from a push being queued to its acknowledgement by the client.",
            &load.delivered,
        );
        out.counter(
            "udpchat_pushes_failed_total",
            "Pushes never acknowledged (the client stopped answering).",
            load.failed,
        );
        out.counter("udpchat_rejected_datagrams_total", "Datagrams dropped unanswered: garbage, unknown sessions, failed authentication, replays.", stats.rejected);
        out.counter(
            "udpchat_handshakes_answered_total",
            "HELLOs that got their P-384 work.",
            stats.handshakes_answered,
        );
        out.counter(
            "udpchat_rekeys_total",
            "Sessions re-keyed (a client's re-key HELLO admitted).",
            stats.rekeys,
        );
        out.counter(
            "udpchat_handshakes_shed_total",
            "HELLOs dropped before their P-384 work (over a limit, or waiting too long).",
            stats.handshakes_shed,
        );
        out.counter(
            "udpchat_cookies_sent_total",
            "HELLOs answered with a cookie instead of P-384 work.",
            stats.cookies_sent,
        );
        out.counter(
            "udpchat_relayed_bytes_total",
            "Bytes the relay carried between clients.",
            stats.relayed_bytes,
        );
        match totals {
            Ok(totals) => store_gauges(&mut out, &totals),
            Err(e) => tracing::warn!("metrics: the store was not counted: {}", e.message),
        }
        out.text
    }
}

fn gauges(out: &mut Exposition, load: &Load, metrics: &Metrics) {
    let (here, elsewhere) = metrics.signed_in();
    out.gauge(
        "udpchat_sessions",
        "Sessions open (handshaking or established).",
        load.sessions as u64,
    );
    out.gauge(
        "udpchat_signed_in",
        "Users signed in on this node.",
        here as u64,
    );
    out.gauge(
        "udpchat_signed_in_elsewhere",
        "Users signed in on the other nodes.",
        elsewhere as u64,
    );
    out.gauge(
        "udpchat_requests_in_hand",
        "Requests being served.",
        metrics.requests.lock().in_all() as u64,
    );
    out.gauge(
        "udpchat_handshakes_waiting",
        "HELLOs waiting for their P-384 work.",
        load.handshakes_waiting as u64,
    );
    out.gauge(
        "udpchat_in_flight_messages",
        "Messages sent and not yet acknowledged.",
        load.in_flight as u64,
    );
    out.gauge(
        "udpchat_queued_bytes",
        "Bytes of messages queued or in flight.",
        load.queued_bytes as u64,
    );
    out.gauge(
        "udpchat_reassembly_bytes",
        "Bytes of messages partly arrived.",
        load.reassembly_bytes as u64,
    );
}

fn store_gauges(out: &mut Exposition, totals: &Totals) {
    out.gauge(
        "udpchat_accounts",
        "Accounts in the database.",
        totals.accounts,
    );
    out.gauge("udpchat_groups", "Groups in the database.", totals.groups);
    out.gauge(
        "udpchat_mail_waiting",
        "Messages kept for users who were offline.",
        totals.mail,
    );
    out.gauge(
        "udpchat_mail_recipients",
        "Users with messages waiting.",
        totals.mail_recipients,
    );
    let oldest = totals
        .oldest_mail_ms
        .map_or(0, |ms| crate::mailbox::now_ms().saturating_sub(ms) / 1000);
    out.gauge(
        "udpchat_mail_oldest_seconds",
        "Age of the oldest message waiting (0 when none).",
        oldest,
    );
}

/// The text format, one metric family at a time.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "gauge");
        let _ = writeln!(self.text, "{name} {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "counter");
        let _ = writeln!(self.text, "{name} {value}");
    }

    fn histogram(&mut self, name: &str, help: &str, latencies: &Latencies) {
        self.family(name, help, "histogram");
        let mut seen = 0;
        for (bound, n) in LATENCY_BOUNDS_MS.iter().zip(latencies.buckets) {
            seen += n;
            let le = *bound as f64 / 1000.0;
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{le}\"}} {seen}");
        }
        let _ = writeln!(
            self.text,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            latencies.count
        );
        let _ = writeln!(self.text, "{name}_sum {}", latencies.sum.as_secs_f64());
        let _ = writeln!(self.text, "{name}_count {}", latencies.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_ends_with_every_count() {
        let mut latencies = Latencies::default();
        for ms in [1, 3, 3, 40_000] {
            latencies.record(Duration::from_millis(ms));
        }
        let mut out = Exposition::default();
        out.histogram("x_seconds", "X.", &latencies);
        let text = out.text;
        assert!(text.starts_with("# HELP x_seconds X.\n# TYPE x_seconds histogram\n"));
        assert!(text.contains("x_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{le=\"0.005\"} 3\n"));
        assert!(text.contains("x_seconds_bucket{le=\"30\"} 3\n"));
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("x_seconds_count 4\n"));
        assert!(text.contains("x_seconds_sum 40.007\n"));
    }

    #[test]
    fn a_node_load_reads_as_one_line_and_survives_its_row() {
        let load = NodeLoad {
            sessions: 3,
            signed_in: 2,
            requests_in_hand: 1,
            handshakes_waiting: 0,
            in_flight: 4,
            queued_bytes: 1500,
            delivered: 120,
            p50_ms: Some(2),
            p99_ms: Some(25),
            failed: 1,
        };
        assert_eq!(
            load.describe(),
            "3 sessions, 1 requests in hand, 0 handshakes waiting, 4 messages in flight (2 KiB); \
             last minute: 120 pushes delivered (p50 <= 2 ms, p99 <= 25 ms), 1 failed"
        );
        let row = serde_json::to_string(&load).unwrap();
        assert_eq!(serde_json::from_str::<NodeLoad>(&row).unwrap(), load);
    }
}

//! The soak's tally: what became of every message, the errors by kind,
//! the server's readings, and the report made of them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{json, Value};

use super::EXIT_WAIT;
use crate::procfs::{self, Usage};
use crate::report::{Report, Row};

/// Texts of lost or duplicated messages listed in the report, at most.
const LISTED: usize = 100;

/// What the sender's client said about a message.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// Nothing yet (or nothing ever, if the session ended without it).
    None,
    Delivered,
    Queued,
    /// An `error` event naming the recipient, with its code.
    Failed(String),
}

#[derive(Debug)]
pub(super) struct Msg {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) outcome: Outcome,
    /// `message` events with this text at its recipient.
    pub(super) received: u32,
    pub(super) stored: u32,
    pub(super) unverified: u32,
    /// `message` events with this text at another client.
    pub(super) misdelivered: u32,
}

#[derive(Debug, Default)]
pub(super) struct ErrorKind {
    pub(super) count: u64,
    pub(super) example: String,
    /// Events that named a recipient (about a message).
    pub(super) about_a_message: u64,
}

#[derive(Debug, Default)]
pub(super) struct Tracker {
    pub(super) messages: HashMap<String, Msg>,
    pub(super) order: Vec<String>,
    pub(super) errors: BTreeMap<String, ErrorKind>,
    /// Sessions signed in.
    pub(super) sessions: u64,
    pub(super) signin_failures: u64,
    /// Clients that did not exit within [`EXIT_WAIT`] (killed).
    pub(super) hung: u64,
    /// Clients that exited with a failure status.
    pub(super) bad_exits: u64,
    /// Sign-outs that had to finish deliveries first (`finishing`).
    pub(super) finishing: u64,
    /// `message` events whose text is not one of ours.
    pub(super) unexpected: u64,
    /// `delivered`/`queued` events for no message in flight.
    pub(super) stray_outcomes: u64,
    /// `delivered` events with `"stored": true`: a queued message was
    /// taken from its recipient's mailbox.
    pub(super) mailbox_receipts: u64,
    /// Errors the harness itself hit (a client would not start, ...).
    pub(super) harness: Vec<String>,
}

impl Tracker {
    pub(super) fn error(&mut self, code: &str, message: &str, about_a_message: bool) {
        let kind = self
            .errors
            .entry(format!("{code}: {}", normalize(message)))
            .or_default();
        kind.count += 1;
        if kind.example.is_empty() {
            kind.example = message.to_string();
        }
        kind.about_a_message += u64::from(about_a_message);
    }

    pub(super) fn received(&mut self, user: usize, event: &Value) {
        let text = event["text"].as_str().unwrap_or("");
        let Some(msg) = self.messages.get_mut(text) else {
            self.unexpected += 1;
            return;
        };
        if msg.to != user {
            msg.misdelivered += 1;
            return;
        }
        msg.received += 1;
        msg.stored += u32::from(event["stored"] == true);
        msg.unverified += u32::from(event["verified"] == false);
    }
}

/// An error message with names and numbers made generic, so that errors
/// of one kind count together: `u6` and `17` become `uN` and `N`.
fn normalize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_digits = false;
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

/// One reading of the server: seconds since the start, RSS KiB, CPU s.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    pub(super) t: f64,
    pub(super) rss_kib: u64,
    pub(super) cpu_s: f64,
}

/// Least-squares slope of RSS over time, KiB per hour.
fn slope_kib_per_hour(readings: &[Reading]) -> Option<f64> {
    if readings.len() < 2 {
        return None;
    }
    let n = readings.len() as f64;
    let mean_t = readings.iter().map(|r| r.t).sum::<f64>() / n;
    let mean_r = readings.iter().map(|r| r.rss_kib as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for r in readings {
        num += (r.t - mean_t) * (r.rss_kib as f64 - mean_r);
        den += (r.t - mean_t) * (r.t - mean_t);
    }
    (den > 0.0).then(|| num / den * 3600.0)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn summarize(
    report: &mut Report,
    tracker: &Tracker,
    names: &[String],
    readings: &[Reading],
    before: Option<procfs::Sample>,
    peak_kib: Option<u64>,
    loops_s: f64,
    drain_s: f64,
    logs: &Path,
) {
    let mut count = BTreeMap::<&str, u64>::new();
    let mut lost = Vec::new();
    let mut failed_unreceived = Vec::new();
    let mut duplicated = Vec::new();
    let mut misdelivered = 0;
    for text in &tracker.order {
        let m = &tracker.messages[text];
        let outcome = match &m.outcome {
            Outcome::None => "no_outcome",
            Outcome::Delivered => "delivered",
            Outcome::Queued => "queued",
            Outcome::Failed(_) => "failed",
        };
        *count.entry(outcome).or_default() += 1;
        *count.entry("received").or_default() += u64::from(m.received > 0);
        *count.entry("received_stored").or_default() += u64::from(m.stored > 0);
        *count.entry("received_direct").or_default() += u64::from(m.received > m.stored);
        *count.entry("received_unverified").or_default() += u64::from(m.unverified > 0);
        misdelivered += u64::from(m.misdelivered);
        let who = format!("{} -> {}: {text} ({outcome})", names[m.from], names[m.to]);
        if m.received == 0 {
            match m.outcome {
                Outcome::Failed(_) => failed_unreceived.push(who),
                _ => lost.push(who),
            }
        } else if m.received > 1 {
            duplicated.push(format!("{who} x{}", m.received));
        }
    }
    let sent = tracker.order.len() as u64;
    let get = |k: &str| count.get(k).copied().unwrap_or(0);
    let errors_total: u64 = tracker.errors.values().map(|e| e.count).sum();

    let mut messages = Row::new("messages", "msg/s", sent, loops_s);
    messages.errors = (lost.len() + failed_unreceived.len()) as u64;
    messages = messages
        .with("sent", sent)
        .with("delivered", get("delivered"))
        .with("queued", get("queued"))
        .with("failed", get("failed"))
        .with("no_outcome", get("no_outcome"))
        .with("received", get("received"))
        .with("received_direct", get("received_direct"))
        .with("received_stored", get("received_stored"))
        .with("received_unverified", get("received_unverified"))
        .with("lost", lost.len() as u64)
        .with("failed_not_received", failed_unreceived.len() as u64)
        .with("duplicated", duplicated.len() as u64)
        .with("misdelivered", misdelivered)
        .with("unexpected", tracker.unexpected)
        .with("stray_outcomes", tracker.stray_outcomes)
        .with("mailbox_receipts", tracker.mailbox_receipts)
        .with("drain_s", drain_s)
        .with(
            "lost_list",
            lost.iter().take(LISTED).cloned().collect::<Vec<_>>(),
        )
        .with(
            "failed_list",
            failed_unreceived
                .iter()
                .take(LISTED)
                .cloned()
                .collect::<Vec<_>>(),
        )
        .with(
            "duplicated_list",
            duplicated.iter().take(LISTED).cloned().collect::<Vec<_>>(),
        );
    let errors: serde_json::Map<String, Value> = tracker
        .errors
        .iter()
        .map(|(kind, e)| {
            (
                kind.clone(),
                json!({ "count": e.count, "about_a_message": e.about_a_message, "example": e.example }),
            )
        })
        .collect();
    messages = messages.with("errors", Value::Object(errors));
    report.rows.push(messages);

    let mut signins = Row::new("sign-ins", "sign-in/s", tracker.sessions, loops_s)
        .with("signin_failures", tracker.signin_failures)
        .with("finishing", tracker.finishing)
        .with("hung_killed", tracker.hung)
        .with("bad_exits", tracker.bad_exits);
    signins.errors = tracker.signin_failures + tracker.hung + tracker.bad_exits;

    let (first, last) = (readings.first(), readings.last());
    if let (Some(first), Some(last)) = (first, last) {
        let max = readings.iter().map(|r| r.rss_kib).max().unwrap_or(0);
        let half: Vec<Reading> = readings
            .iter()
            .copied()
            .filter(|r| r.t >= last.t / 2.0)
            .collect();
        let slope = slope_kib_per_hour(readings);
        let slope_half = slope_kib_per_hour(&half);
        let cpu = last.cpu_s - first.cpu_s;
        let span = (last.t - first.t).max(1e-9);
        signins.server = Some(Usage {
            cpu_s: cpu,
            rss_kib: last.rss_kib,
            peak_rss_kib: peak_kib.unwrap_or(max),
        });
        let per_signin = if tracker.sessions > 0 {
            (last.rss_kib as f64 - first.rss_kib as f64) * 1024.0 / tracker.sessions as f64
        } else {
            0.0
        };
        let rss = Row::new("server", "readings", readings.len() as u64, span)
            .with("rss_before_accounts_kib", before.map(|s| s.rss_kib))
            .with("rss_start_kib", first.rss_kib)
            .with("rss_end_kib", last.rss_kib)
            .with("rss_max_kib", max)
            .with("peak_rss_kib", peak_kib)
            .with("rss_slope_kib_per_hour", slope)
            .with("rss_slope_second_half_kib_per_hour", slope_half)
            .with("rss_growth_bytes_per_signin", per_signin)
            .with("cpu_s", cpu)
            .with("cpu_percent_of_a_core", cpu / span * 100.0)
            .with(
                "readings",
                readings
                    .iter()
                    .map(|r| json!([(r.t * 10.0).round() / 10.0, r.rss_kib, r.cpu_s]))
                    .collect::<Vec<_>>(),
            );
        report.note(format!(
            "server RSS: start {:.1} MiB, end {:.1} MiB, max {:.1} MiB; slope {} (second half {}); {:.0} B per sign-in; CPU {cpu:.1} s ({:.1}% of a core)",
            first.rss_kib as f64 / 1024.0,
            last.rss_kib as f64 / 1024.0,
            max as f64 / 1024.0,
            slope.map_or("-".into(), |s| format!("{s:+.0} KiB/h")),
            slope_half.map_or("-".into(), |s| format!("{s:+.0} KiB/h")),
            per_signin,
            cpu / span * 100.0,
        ));
        report.rows.push(signins);
        report.rows.push(rss);
    } else {
        report.rows.push(signins);
        report.note("no /proc readings of the server (not started by the bench)");
    }

    report.note(format!(
        "{sent} messages in {} sign-ins over {loops_s:.0} s: {} delivered, {} queued (offline recipient), {} failed, {} without an outcome; received {} ({} direct, {} from the mailbox, {} marked unverified); lost {}, failed and not received {}, duplicated {}, misdelivered {misdelivered}; drain {drain_s:.0} s",
        tracker.sessions,
        get("delivered"),
        get("queued"),
        get("failed"),
        get("no_outcome"),
        get("received"),
        get("received_direct"),
        get("received_stored"),
        get("received_unverified"),
        lost.len(),
        failed_unreceived.len(),
        duplicated.len(),
    ));
    report.note(format!(
        "{errors_total} error events; {} sign-in failures, {} clients killed after {EXIT_WAIT:?}, {} failed exits, {} sign-outs that finished deliveries first",
        tracker.signin_failures, tracker.hung, tracker.bad_exits, tracker.finishing
    ));
    for (kind, e) in &tracker.errors {
        report.note(format!("error x{}: {kind}", e.count));
    }
    for text in lost.iter().chain(&failed_unreceived).take(20) {
        report.note(format!("not received: {text}"));
    }
    for text in duplicated.iter().take(20) {
        report.note(format!("duplicated: {text}"));
    }
    for problem in tracker.harness.iter().take(20) {
        report.note(format!("harness: {problem}"));
    }
    report.note(format!(
        "event log, clients' stderr and server log in {}",
        logs.display()
    ));
    if !lost.is_empty()
        || !failed_unreceived.is_empty()
        || !duplicated.is_empty()
        || misdelivered > 0
    {
        report.reason = Some(format!(
            "failed: {} lost, {} failed (sender told), {} duplicated, {misdelivered} misdelivered",
            lost.len(),
            failed_unreceived.len(),
            duplicated.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_one_kind_count_together() {
        assert_eq!(
            normalize("message to u6 was not delivered: timeout after 12s"),
            "message to uN was not delivered: timeout after Ns"
        );
    }

    #[test]
    fn a_flat_series_has_no_slope_and_a_line_its_own() {
        let flat: Vec<Reading> = (0..10)
            .map(|i| Reading {
                t: f64::from(i) * 30.0,
                rss_kib: 1000,
                cpu_s: 0.0,
            })
            .collect();
        assert_eq!(slope_kib_per_hour(&flat), Some(0.0));
        let rising: Vec<Reading> = (0..10)
            .map(|i| Reading {
                t: f64::from(i) * 360.0,
                rss_kib: 1000 + 10 * i as u64,
                cpu_s: 0.0,
            })
            .collect();
        let slope = slope_kib_per_hour(&rising).unwrap();
        assert!((slope - 100.0).abs() < 1e-6, "{slope}");
        assert_eq!(slope_kib_per_hour(&flat[..1]), None);
    }
}

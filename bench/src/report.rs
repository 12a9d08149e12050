//! A scenario's results: rows of figures, printed as a table and written as
//! JSON (`OUT/SCENARIO.json`). Every rate that has a baseline measured in
//! the same run carries its ratio to it, because the machines are shared
//! and noisy and only ratios compare across runs.
//!
//! JSON shape (one object per scenario):
//!
//! ```text
//! { scenario, available, reason?, machine, params, baseline?, rows: [Row], notes: [..] }
//! Row: { name, ops, errors, seconds, rate, unit, ratio?, latency_us?, server?, extra }
//! latency_us: { p50, p99, p999, max, mean, count }
//! server: { cpu_s, rss_kib, peak_rss_kib }   (from /proc, when the bench started it)
//! generator: { cpu_s, rss_kib, peak_rss_kib }   (the bench itself: the load
//!   generator and the clients it simulates, over the same stretch)
//! ```
//!
//! The two CPU figures side by side say which side a rate is bound by: on
//! a machine of two cores, a generator that uses a core of its own while
//! the server idles is measuring itself.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::procfs::Usage;

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub count: u64,
}

impl Latency {
    /// `None` for an empty histogram.
    pub fn of(hist: &Histogram<u64>) -> Option<Latency> {
        if hist.is_empty() {
            return None;
        }
        Some(Latency {
            p50: hist.value_at_quantile(0.50),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
            mean: hist.mean(),
            count: hist.len(),
        })
    }
}

/// One line of a table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    /// Operations completed in the measured time.
    pub ops: u64,
    pub errors: u64,
    /// The measured time.
    pub seconds: f64,
    /// `ops / seconds`.
    pub rate: f64,
    pub unit: &'static str,
    /// `rate` over the baseline's rate, measured in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(rename = "latency_us", skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// The server process over this row's run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Usage>,
    /// The bench's own process over the same stretch: the load generator,
    /// and every client it simulates (members, senders, IRC readers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<Usage>,
    /// Scenario-specific figures.
    pub extra: Map<String, Value>,
}

impl Row {
    pub fn new(name: impl Into<String>, unit: &'static str, ops: u64, seconds: f64) -> Row {
        Row {
            name: name.into(),
            ops,
            errors: 0,
            seconds,
            rate: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
            unit,
            ratio: None,
            latency: None,
            server: None,
            generator: None,
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Row {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Sets the ratio to a baseline rate.
    pub fn against(mut self, baseline: Option<&Row>) -> Row {
        self.ratio = baseline
            .filter(|b| b.rate > 0.0)
            .map(|b| self.rate / b.rate);
        self
    }

    /// Server CPU microseconds per operation, when known.
    pub fn server_cpu_per_op_us(&self) -> Option<f64> {
        self.cpu_per_op_us(self.server?)
    }

    /// The generator's CPU microseconds per operation, when known.
    pub fn generator_cpu_per_op_us(&self) -> Option<f64> {
        self.cpu_per_op_us(self.generator?)
    }

    fn cpu_per_op_us(&self, usage: Usage) -> Option<f64> {
        (self.ops > 0).then(|| usage.cpu_s * 1e6 / self.ops as f64)
    }
}

/// A scenario's whole result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// False when the feature the scenario measures is not built yet.
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub machine: Value,
    pub params: Value,
    /// The UDP echo baseline of this run, when the scenario has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Row>,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    /// The table's heading for the rows' ratios: what they are to.
    #[serde(skip)]
    pub ratio_to: &'static str,
}

impl Report {
    pub fn new(scenario: &str, params: Value) -> Report {
        Report {
            scenario: scenario.to_string(),
            available: true,
            reason: None,
            machine: crate::procfs::machine(),
            params,
            baseline: None,
            rows: Vec::new(),
            notes: Vec::new(),
            ratio_to: "x echo",
        }
    }

    /// A scenario whose feature is missing: says why, measures nothing.
    pub fn unavailable(scenario: &str, params: Value, reason: impl Into<String>) -> Report {
        let mut report = Report::new(scenario, params);
        report.available = false;
        report.reason = Some(reason.into());
        report
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        println!();
        println!("== {} ==", self.scenario);
        if !self.available {
            println!(
                "not available: {}",
                self.reason.as_deref().unwrap_or("unknown")
            );
        }
        let rows: Vec<&Row> = self.baseline.iter().chain(self.rows.iter()).collect();
        if !rows.is_empty() {
            print_table(&rows, self.ratio_to);
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
    }

    /// Writes `DIR/SCENARIO.json` and returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.scenario));
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

fn print_table(rows: &[&Row], ratio_to: &str) {
    let header = [
        "",
        "rate",
        "unit",
        ratio_to,
        "p50 us",
        "p99 us",
        "p999 us",
        "errors",
        "srv cpu s",
        "srv us/op",
        "srv peak MiB",
        "gen us/op",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for row in rows {
        let lat = row.latency;
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        lines.push(vec![
            row.name.clone(),
            format!("{:.0}", row.rate),
            row.unit.to_string(),
            opt(row.ratio.map(|r| format!("{r:.3}"))),
            opt(lat.map(|l| l.p50.to_string())),
            opt(lat.map(|l| l.p99.to_string())),
            opt(lat.map(|l| l.p999.to_string())),
            row.errors.to_string(),
            opt(row.server.map(|s| format!("{:.2}", s.cpu_s))),
            opt(row.server_cpu_per_op_us().map(|u| format!("{u:.1}"))),
            opt(row
                .server
                .map(|s| format!("{:.1}", s.peak_rss_kib as f64 / 1024.0))),
            opt(row.generator_cpu_per_op_us().map(|u| format!("{u:.1}"))),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        println!("  {}", cells.join("  "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_knows_its_rate_and_ratio() {
        let base = Row::new("udp-echo", "req/s", 1000, 1.0);
        let row = Row::new("list", "req/s", 250, 1.0).against(Some(&base));
        assert_eq!(row.rate, 250.0);
        assert_eq!(row.ratio, Some(0.25));
        assert_eq!(Row::new("x", "req/s", 1, 0.0).rate, 0.0);
    }

    #[test]
    fn json_has_the_documented_fields() {
        let mut report = Report::new("rpc", serde_json::json!({"clients": 1}));
        report
            .rows
            .push(Row::new("list", "req/s", 10, 1.0).with("window", 2));
        let v = serde_json::to_value(&report).unwrap();
        for key in [
            "scenario",
            "available",
            "machine",
            "params",
            "rows",
            "notes",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["rows"][0]["extra"]["window"], 2);
    }
}

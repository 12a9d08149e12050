//! What the OS says a process used, read from `/proc`: CPU seconds (user +
//! system, from `/proc/PID/stat`) and resident memory now and at its peak
//! (`VmRSS`, `VmHWM` from `/proc/PID/status`). Linux only; elsewhere every
//! reading is `None` and the tables say so.

use std::fs;

use serde::Serialize;

/// The kernel's clock ticks per second for `/proc/PID/stat` times. Linux
/// has reported CPU times in units of 100 Hz (`USER_HZ`) on every
/// architecture since 2.6, whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// One look at a process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// The most resident memory it ever had, KiB.
    pub peak_rss_kib: u64,
}

/// Reads `pid` now (`None` if it is gone or this is not Linux).
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Sample {
        cpu_s: cpu_seconds(&stat)?,
        rss_kib: status_kib(&status, "VmRSS:")?,
        peak_rss_kib: status_kib(&status, "VmHWM:")?,
    })
}

/// This process.
pub fn own() -> Option<Sample> {
    sample(std::process::id())
}

/// utime + stime: fields 14 and 15 of `/proc/PID/stat`, counted after the
/// command name, which is in parentheses and may itself hold spaces.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state), so utime (14) is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// What a process used between two samples.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// CPU seconds spent between the samples.
    pub cpu_s: f64,
    /// Resident memory at the second sample, KiB.
    pub rss_kib: u64,
    /// The process's peak resident memory at the second sample, KiB.
    pub peak_rss_kib: u64,
}

impl Usage {
    pub fn between(before: Sample, after: Sample) -> Usage {
        Usage {
            cpu_s: (after.cpu_s - before.cpu_s).max(0.0),
            rss_kib: after.rss_kib,
            peak_rss_kib: after.peak_rss_kib,
        }
    }
}

/// Watches one process over a stretch of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pid: Option<u32>,
    start: Option<Sample>,
}

impl Watch {
    /// Starts watching `pid` (nothing to watch for a server run elsewhere).
    pub fn start(pid: Option<u32>) -> Watch {
        Watch {
            pid,
            start: pid.and_then(sample),
        }
    }

    /// What the process used since [`Watch::start`].
    pub fn usage(&self) -> Option<Usage> {
        let now = sample(self.pid?)?;
        Some(Usage::between(self.start?, now))
    }
}

/// A measured stretch, watched from both sides at the same moments: the
/// server (`pid`, when the bench started it) and the bench's own process,
/// the load generator and every client it simulates.
#[derive(Debug, Clone, Copy)]
pub struct Stretch {
    server: Watch,
    generator: Watch,
}

impl Stretch {
    pub fn start(server: Option<u32>) -> Stretch {
        Stretch {
            server: Watch::start(server),
            generator: Watch::start(Some(std::process::id())),
        }
    }

    /// What the server and the generator used since [`Stretch::start`].
    pub fn usage(&self) -> (Option<Usage>, Option<Usage>) {
        (self.server.usage(), self.generator.usage())
    }
}

/// Datagrams the kernel dropped at the IPv4 UDP socket bound to `addr`
/// because its receive buffer was full (the `drops` column of
/// `/proc/net/udp`; `None` if no such socket is listed).
pub fn udp_drops(addr: std::net::SocketAddr) -> Option<u64> {
    let std::net::IpAddr::V4(ip) = addr.ip() else {
        return None;
    };
    // The address as the kernel prints it: the u32 in host order, in hex.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(ip.octets()),
        addr.port()
    );
    let table = fs::read_to_string("/proc/net/udp").ok()?;
    udp_drops_in(&table, &local)
}

fn udp_drops_in(table: &str, local: &str) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local))
            .then(|| fields.last()?.parse().ok())
            .flatten()
    })
}

/// A description of this machine for the reports.
pub fn machine() -> serde_json::Value {
    let cpu_model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let memory_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| status_kib(&m, "MemTotal:"));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": cpu_model,
        "memory_kib": memory_kib,
        "kernel": kernel,
        "os": std::env::consts::OS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_times_past_a_command_name_with_spaces() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn reads_a_sockets_drops() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  \
            1: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n";
        assert_eq!(udp_drops_in(table, "0100007F:1F90"), Some(17));
        assert_eq!(udp_drops_in(table, "0100007F:1F91"), None);
        if cfg!(target_os = "linux") {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            assert_eq!(udp_drops(socket.local_addr().unwrap()), Some(0));
        }
    }

    #[test]
    fn reads_own_process() {
        if cfg!(target_os = "linux") {
            let s = own().expect("own /proc entry");
            assert!(s.peak_rss_kib >= s.rss_kib);
            assert!(s.rss_kib > 0);
        }
    }
}

//! Real NAT topologies for the end-to-end tests, built from Linux network
//! namespaces with `ip` and `nft`, so that the real `udpchat-server` and
//! `udpchat` run behind real NATs (the kernel's conntrack and masquerade,
//! as in a home router), not behind a simulation of one.
//!
//! A [`Topology`] is a public segment (a namespace holding one bridge on
//! 198.51.100.0/24, TEST-NET-2) with, on it:
//!
//! - public hosts ([`Topology::public_host`]): a namespace each, at
//!   198.51.100.10, .11, ... (the server lives on one);
//! - routers ([`Topology::router`]): a namespace each, its `wan` veth on the
//!   public bridge at 198.51.100.101, .102, ..., a LAN bridge `lan` at
//!   10.0.N.1/24, IPv4 forwarding on, and an nftables table that
//!   masquerades what leaves through `wan` ([`Nat`] says how);
//! - hosts behind a router ([`Topology::host_behind`]): a namespace each,
//!   at 10.0.N.2, .3, ... on that router's LAN, routed through it. Two hosts
//!   behind one router share its LAN.
//!
//! Names carry the test process's id and a counter (`ucnat-PID-N-...`), so
//! tests in parallel threads and parallel test binaries never meet. Every
//! veth is created with its two ends directly in their namespaces, and
//! inside a namespace the interface names are fixed and short (`wan`,
//! `lan`, `eth0`, `br0`, `h1`, `r1`, ...), so nothing is ever named in the
//! root namespace. Dropping the topology deletes every namespace it made
//! (the interfaces go with them), also when the test panicked; namespaces
//! left by a test process that was killed are swept by the next topology.
//!
//! Declare the topology *before* the servers and clients that run in it,
//! so that they are dropped (killed) first; whatever still runs in a
//! namespace when the topology goes is killed then.
//!
//! [`available`] says whether this machine can build topologies at all.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::{Client, Server, FAILSAFE};

/// The port the server listens on inside its public host (the default).
pub const SERVER_PORT: u16 = 4590;

/// Whether the NAT tests can run here: they need root (to make network
/// namespaces) and the `ip` and `nft` commands. Not root: `false`, and the
/// test says loudly on stderr that it is skipped. Root but a command
/// missing: a failure, since `.ci/run` installs them.
pub fn available() -> bool {
    if !is_root() {
        // Straight to stderr, not through `eprintln!`, which the test
        // harness captures and shows only for failures.
        let test = std::thread::current()
            .name()
            .unwrap_or("a NAT test")
            .to_string();
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (needs root): {test}: the NAT tests build network namespaces \
             with `ip` and `nft`; run them as root"
        );
        return false;
    }
    for (tool, version, package) in [("ip", "-V", "iproute2"), ("nft", "--version", "nftables")] {
        let found = Command::new(tool)
            .arg(version)
            .output()
            .is_ok_and(|out| out.status.success());
        assert!(
            found,
            "running as root but `{tool}` is missing: the NAT tests need it \
             (`apt-get install {package}`, as .ci/run does)"
        );
    }
    true
}

/// Whether this process runs as root (effective uid 0), from
/// `/proc/self/status` (no unsafe `geteuid`).
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// How a router maps its hosts' flows to its public address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Plain `masquerade`: Linux keeps a flow's source port when it is free,
    /// so a host's socket gets the same public port whatever the
    /// destination (endpoint-independent mapping, in practice); only
    /// replies from the address and port a flow went to come back in
    /// (address-and-port-dependent filtering). A typical home router.
    Masquerade,
    /// `masquerade fully-random`: every new destination gets a new random
    /// public port (a symmetric NAT); the same filtering.
    Symmetric,
}

/// A NAT mapping the router holds: a host's flow to `remote` leaves from
/// `outside` (the router's public address and the port it chose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The host's own address and port.
    pub inside: SocketAddr,
    /// Where the flow goes.
    pub remote: SocketAddr,
    /// The address and port `remote` sees the host at.
    pub outside: SocketAddr,
}

/// A host: a namespace with one address, on the public segment (reached
/// by everyone) or on a router's LAN (behind its NAT).
#[derive(Debug, Clone)]
pub struct Host {
    /// Its network namespace (for `ip netns exec`).
    pub netns: String,
    /// Its address (public, or on its router's LAN).
    pub addr: Ipv4Addr,
}

/// A NAT router: its WAN side on the public segment, its LAN behind.
#[derive(Debug)]
pub struct Router {
    /// Its network namespace.
    pub netns: String,
    /// Its public address: what hosts behind it look like from outside.
    pub wan: Ipv4Addr,
    /// Its address on its LAN (the hosts' gateway).
    pub lan: Ipv4Addr,
    /// How it maps.
    pub nat: Nat,
    /// Its number (1, 2, ...): its LAN is 10.0.N.0/24.
    number: u8,
    /// Hosts made behind it so far.
    hosts: u8,
    /// Times it was rebooted.
    reboots: u32,
}

/// The namespaces of one test's network, deleted when dropped.
pub struct Topology {
    /// `ucnat-PID-N`: every namespace's name starts with it.
    prefix: String,
    /// The namespace holding the public bridge.
    public: String,
    /// Every namespace made, in order (deleted in reverse).
    namespaces: Vec<String>,
    public_hosts: u8,
    routers: u8,
}

/// What every namespace name starts with (then the pid of the test
/// process that made it).
const NAME_PREFIX: &str = "ucnat-";

impl Topology {
    /// Makes the public segment: a namespace with the bridge `br0`.
    /// Panics (failing the test) if `ip` refuses; call [`available`] first.
    pub fn new() -> Topology {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale_namespaces);
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "{NAME_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut topology = Topology {
            public: format!("{prefix}-net"),
            prefix,
            namespaces: Vec::new(),
            public_hosts: 0,
            routers: 0,
        };
        // From here on a panic drops `topology`, which deletes what exists.
        let public = topology.public.clone();
        topology.namespace(&public);
        ip(&format!("-n {public} link add br0 type bridge"));
        ip(&format!("-n {public} link set br0 up"));
        topology
    }

    /// A host on the public segment, at 198.51.100.10, .11, ...
    pub fn public_host(&mut self) -> Host {
        self.public_hosts += 1;
        let n = self.public_hosts;
        assert!(n <= 90, "at most 90 public hosts");
        let netns = format!("{}-pub{n}", self.prefix);
        let addr = Ipv4Addr::new(198, 51, 100, 9 + n);
        self.namespace(&netns);
        self.plug_into_public(&netns, "eth0", &format!("p{n}"), addr);
        Host { netns, addr }
    }

    /// A NAT router at 198.51.100.101, .102, ... with its LAN 10.0.N.0/24.
    pub fn router(&mut self, nat: Nat) -> Router {
        self.routers += 1;
        let n = self.routers;
        assert!(n <= 150, "at most 150 routers");
        let netns = format!("{}-nat{n}", self.prefix);
        let router = Router {
            wan: Ipv4Addr::new(198, 51, 100, 100 + n),
            lan: Ipv4Addr::new(10, 0, n, 1),
            netns,
            nat,
            number: n,
            hosts: 0,
            reboots: 0,
        };
        let ns = router.netns.as_str();
        self.namespace(ns);
        self.plug_into_public(ns, "wan", &format!("r{n}"), router.wan);
        ip(&format!("-n {ns} link add lan type bridge"));
        ip(&format!("-n {ns} addr add {}/24 dev lan", router.lan));
        ip(&format!("-n {ns} link set lan up"));
        let forward = "echo 1 > /proc/sys/net/ipv4/ip_forward";
        in_netns(ns, "sh", &["-c", forward], None);
        in_netns(ns, "nft", &["-f", "-"], Some(&router.ruleset()));
        router
    }

    /// A host on `router`'s LAN, at 10.0.N.2, .3, ..., its default route
    /// through the router.
    pub fn host_behind(&mut self, router: &mut Router) -> Host {
        router.hosts += 1;
        let (n, h) = (router.number, router.hosts);
        assert!(h <= 250, "at most 250 hosts behind a router");
        let netns = format!("{}-nat{n}-h{h}", self.prefix);
        let addr = Ipv4Addr::new(10, 0, n, 1 + h);
        self.namespace(&netns);
        let (port, gateway) = (format!("h{h}"), router.lan);
        cable(&netns, "eth0", &router.netns, &port);
        let router = &router.netns;
        ip(&format!("-n {router} link set {port} master lan up"));
        ip(&format!("-n {netns} addr add {addr}/24 dev eth0"));
        ip(&format!("-n {netns} link set eth0 up"));
        ip(&format!("-n {netns} route add default via {gateway}"));
        Host { netns, addr }
    }

    /// Makes the namespace `name` with `lo` up, and records it for `Drop`.
    fn namespace(&mut self, name: &str) {
        ip(&format!("netns add {name}"));
        self.namespaces.push(name.to_string());
        ip(&format!("-n {name} link set lo up"));
    }

    /// Connects `netns`'s interface `inside`, at `addr`/24, to the public
    /// bridge through the bridge port `port`.
    fn plug_into_public(&self, netns: &str, inside: &str, port: &str, addr: Ipv4Addr) {
        cable(netns, inside, &self.public, port);
        ip(&format!("-n {} link set {port} master br0 up", self.public));
        ip(&format!("-n {netns} addr add {addr}/24 dev {inside}"));
        ip(&format!("-n {netns} link set {inside} up"));
    }
}

impl Default for Topology {
    fn default() -> Topology {
        Topology::new()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Never panics: it may run while a test's panic unwinds.
        for netns in self.namespaces.iter().rev() {
            delete_namespace(netns);
        }
    }
}

impl Host {
    /// `IP:0`: this host's address, any free port (what a client binds).
    pub fn bind(&self) -> String {
        format!("{}:0", self.addr)
    }

    /// Starts a server here on [`SERVER_PORT`], with a fresh data dir.
    pub fn start_server(&self) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let bind = SocketAddrV4::new(self.addr, SERVER_PORT).to_string();
        let mut server = Server::start_in_netns(&self.netns, dir.path(), &bind);
        server._dir = Some(dir);
        server
    }

    /// Starts a client here that creates the account `user` and signs in
    /// (see [`Client::sign_up`]); its `addr` is this host's address.
    pub fn sign_up(&self, server: SocketAddr, user: &str) -> Client {
        Client::sign_up_in_netns(&self.netns, server, &self.bind(), user)
    }

    /// Starts a client here with extra arguments (see [`Client::start`]).
    pub fn client(&self, server: SocketAddr, extra: &[&str]) -> Client {
        Client::start_in_netns(&self.netns, server, &self.bind(), extra)
    }

    /// Gives this host an IPv6 address too, `fd00:0:0:N::H` (a unique local
    /// address on its LAN, as a router's prefix would), and returns it.
    pub fn add_ipv6(&self) -> std::net::Ipv6Addr {
        let [_, _, n, h] = self.addr.octets();
        let v6 = std::net::Ipv6Addr::new(0xfd00, 0, 0, n.into(), 0, 0, 0, h.into());
        ip(&format!(
            "-n {} addr add {v6}/64 dev eth0 nodad",
            self.netns
        ));
        v6
    }

    /// Starts a client here on its default socket (no `--bind`: both
    /// families) that creates the account `user` and signs in.
    pub fn sign_up_unbound(&self, server: SocketAddr, user: &str) -> Client {
        Client::sign_up_in_netns(&self.netns, server, "", user)
    }
}

impl Router {
    /// Reboots the NAT: it forgets every mapping it holds, and from now
    /// on maps to public ports it never used before, so whoever knew a
    /// host's public address knows a dead one.
    ///
    /// The `conntrack` tool is not needed: taking `wan` down makes the
    /// kernel's masquerade forget every flow it masqueraded through it
    /// (as when a router's uplink drops); they are gone before `wan`
    /// comes back up. Since plain masquerade would then keep the hosts'
    /// ports again, while `wan` is down the masquerade rule is replaced by
    /// one that maps to a port range that differs from the last reboot's (and
    /// lies below Linux's ephemeral ports, so it is never a host's own
    /// port). A [`Nat::Masquerade`] router keeps one port per host socket
    /// whatever the destination (the kernel reuses a socket's live
    /// mapping); a [`Nat::Symmetric`] one stays fully random.
    pub fn reboot(&mut self) {
        self.reboots += 1;
        ip(&format!("-n {} link set wan down", self.netns));
        let rules = format!("flush chain ip udpchat postrouting\n{}", self.masquerade());
        in_netns(&self.netns, "nft", &["-f", "-"], Some(&rules));
        let deadline = Instant::now() + FAILSAFE;
        while !self.mappings().is_empty() {
            assert!(
                Instant::now() < deadline,
                "router {} still holds mappings {FAILSAFE:?} after its wan went down: {:?}",
                self.netns,
                self.mappings()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ip(&format!("-n {} link set wan up", self.netns));
    }

    /// The UDP mappings the router holds now, from its conntrack table
    /// (`/proc/net/nf_conntrack` inside its namespace, which needs a
    /// kernel with `CONFIG_NF_CONNTRACK_PROCFS`, the kernel's default).
    pub fn mappings(&self) -> Vec<Mapping> {
        let table = in_netns(&self.netns, "cat", &["/proc/net/nf_conntrack"], None);
        table
            .lines()
            .filter_map(parse_conntrack)
            .filter(|mapping| mapping.outside.ip() == IpAddr::V4(self.wan))
            .collect()
    }

    /// Waits (bounded by [`FAILSAFE`]) until the router maps the flow from
    /// `inside` to `remote`, and returns where `remote` sees `inside`.
    pub fn wait_for_mapping(&self, inside: SocketAddr, remote: SocketAddr) -> SocketAddr {
        self.wait_for(|m| m.inside == inside && m.remote == remote)
            .outside
    }

    /// Waits (bounded by [`FAILSAFE`]) for a mapping that passes `test`.
    pub fn wait_for(&self, test: impl Fn(&Mapping) -> bool) -> Mapping {
        let deadline = Instant::now() + FAILSAFE;
        loop {
            let mappings = self.mappings();
            if let Some(found) = mappings.iter().find(|m| test(m)) {
                return *found;
            }
            assert!(
                Instant::now() < deadline,
                "router {} has no such mapping within {FAILSAFE:?}; it holds {mappings:#?}",
                self.netns
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The router's nftables table: masquerade out of `wan`, and drop what
    /// comes in on `wan` that belongs to no flow a host started.
    ///
    /// The drops are what a home router does (no answer to unsolicited
    /// packets), and they matter: without them, a packet that reaches the
    /// router before the host's own first packet to that peer (a hole
    /// punch arriving early) leaves a conntrack entry that holds the
    /// host's public port, and masquerade then maps the host's flow to
    /// another port: a quirk of Linux, not of NATs.
    fn ruleset(&self) -> String {
        format!(
            "table ip udpchat {{
                chain postrouting {{
                    type nat hook postrouting priority srcnat; policy accept;
                }}
                chain input {{
                    type filter hook input priority filter; policy accept;
                    iifname \"wan\" ct state new drop
                }}
                chain forward {{
                    type filter hook forward priority filter; policy accept;
                    iifname \"wan\" ct state new drop
                }}
            }}
            {}",
            self.masquerade()
        )
    }

    /// Drops everything its hosts send toward `to` (a firewall between
    /// two sites), until [`Router::unblock`].
    pub fn block(&self, to: Ipv4Addr) {
        let rules = format!(
            "add chain ip udpchat blocked {{ type filter hook forward priority filter - 1; policy accept; }}\n\
             add rule ip udpchat blocked ip daddr {to} drop\n"
        );
        in_netns(&self.netns, "nft", &["-f", "-"], Some(&rules));
    }

    /// Lets through again what [`Router::block`] dropped.
    pub fn unblock(&self) {
        in_netns(
            &self.netns,
            "nft",
            &["delete", "chain", "ip", "udpchat", "blocked"],
            None,
        );
    }

    /// The postrouting chain's rules for this kind of NAT after this many
    /// reboots: none yet, plain masquerade (Linux keeps the hosts' ports
    /// when it can); after the Nth, UDP goes to the Nth of four disjoint
    /// port ranges under 32768, in turn.
    fn masquerade(&self) -> String {
        let random = match self.nat {
            Nat::Masquerade => "",
            Nat::Symmetric => " fully-random",
        };
        let rule = "add rule ip udpchat postrouting oifname \"wan\"";
        if self.reboots == 0 {
            return format!("{rule} masquerade{random}\n");
        }
        let low = 10_000 + 5_000 * ((self.reboots - 1) % 4);
        let high = low + 4_999;
        format!(
            "{rule} meta l4proto udp masquerade to :{low}-{high}{random}\n\
             {rule} masquerade{random}\n"
        )
    }
}

/// One line of `/proc/net/nf_conntrack` as a UDP [`Mapping`]: the first
/// `src`/`dst`/`sport`/`dport` are the flow as the host sent it, the second
/// the replies' (to the public address and port).
fn parse_conntrack(line: &str) -> Option<Mapping> {
    if line.split_whitespace().nth(2) != Some("udp") {
        return None;
    }
    let values = |key: &str| -> Vec<&str> {
        line.split_whitespace()
            .filter_map(|field| field.strip_prefix(key))
            .collect()
    };
    let (src, dst, sport, dport) = (
        values("src="),
        values("dst="),
        values("sport="),
        values("dport="),
    );
    let at = |ip: &str, port: &str| -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    };
    Some(Mapping {
        inside: at(src.first()?, sport.first()?)?,
        remote: at(dst.first()?, dport.first()?)?,
        outside: at(dst.get(1)?, dport.get(1)?)?,
    })
}

/// Connects `a` in namespace `a_ns` and `b` in `b_ns` with a veth pair,
/// both ends made directly in their namespaces.
fn cable(a_ns: &str, a: &str, b_ns: &str, b: &str) {
    ip(&format!(
        "link add {a} netns {a_ns} type veth peer name {b} netns {b_ns}"
    ));
}

/// Runs `ip` with `args`, split at whitespace (names and addresses here
/// have none); panics with its stderr if it fails.
fn ip(args: &str) {
    run(Command::new("ip").args(args.split_whitespace()), None);
}

/// Runs `program args...` inside `netns`, with `input` on its stdin;
/// returns its stdout, or panics with its stderr if it fails.
fn in_netns(netns: &str, program: &str, args: &[&str], input: Option<&str>) -> String {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, program]).args(args);
    run(&mut command, input)
}

/// Runs `command` with `input` on its stdin; returns its stdout, or
/// panics with its stderr if it fails.
fn run(command: &mut Command, input: Option<&str>) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills what still runs in `netns` (processes a test started there and
/// did not drop first) and deletes it. Never panics.
fn delete_namespace(netns: &str) {
    let pids = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    for pid in pids.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    let _ = Command::new("ip")
        .args(["netns", "delete", netns])
        .stderr(Stdio::null())
        .status();
}

/// Deletes the namespaces left by test processes that no longer exist
/// (killed before their topology's `Drop` could run), and kills the
/// servers and clients those left running in them.
fn sweep_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let alive = std::path::Path::new("/proc").join(pid).exists();
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !alive {
            delete_namespace(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conntrack_line_is_a_mapping() {
        let line = "ipv4     2 udp      17 29 src=10.0.1.2 dst=198.51.100.10 \
                    sport=40001 dport=4590 [UNREPLIED] src=198.51.100.10 \
                    dst=198.51.100.101 sport=4590 dport=13079 mark=0 zone=0 use=2";
        assert_eq!(
            parse_conntrack(line),
            Some(Mapping {
                inside: "10.0.1.2:40001".parse().unwrap(),
                remote: "198.51.100.10:4590".parse().unwrap(),
                outside: "198.51.100.101:13079".parse().unwrap(),
            })
        );
        let igmp = "ipv4     2 unknown  2 479 src=10.0.1.1 dst=224.0.0.22 \
                    [UNREPLIED] src=224.0.0.22 dst=10.0.1.1 mark=0 zone=0 use=2";
        assert_eq!(parse_conntrack(igmp), None);
    }
}

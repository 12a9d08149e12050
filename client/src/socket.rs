//! The client's socket and its own addresses.
//!
//! By default the client binds `[::]:0` with IPV6_V6ONLY off: one socket
//! for both families, so the same client reaches a server or a peer over
//! IPv6 (`--server '[::1]:4590'`) and over IPv4 (as IPv4-mapped addresses,
//! which the network driver turns back into plain IPv4 ones). On a host
//! without IPv6 it falls back to `0.0.0.0:0`. `--bind` picks any address.
//!
//! Its own addresses are the candidates it tells the server at sign-in,
//! for peers on the same network: every interface's address (not
//! loopback, not IPv6 link-local, which needs a scope no peer knows) with
//! the socket's port; IPv6 ones only on a socket that speaks IPv6.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Binds `bind`, or the dual-stack default when `None`.
pub fn bind(bind: Option<SocketAddr>) -> anyhow::Result<UdpSocket> {
    let socket = match bind {
        Some(addr) => {
            std::net::UdpSocket::bind(addr).with_context(|| format!("cannot listen on {addr}"))?
        }
        None => match dual_stack() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!("no dual-stack socket ({e}): IPv4 only");
                std::net::UdpSocket::bind("0.0.0.0:0").context("cannot listen on 0.0.0.0:0")?
            }
        },
    };
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(socket)?)
}

fn dual_stack() -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
    Ok(socket.into())
}

/// This client's own addresses, with the port of its socket bound to
/// `bound`: just `bound` when it names one address.
pub fn own_addresses(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let interfaces = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces,
        Err(e) => {
            tracing::debug!("cannot list the interfaces' addresses: {e}");
            return Vec::new();
        }
    };
    let mut own: Vec<SocketAddr> = interfaces
        .iter()
        .map(|i| i.ip())
        .filter(|ip| usable(*ip) && (bound.is_ipv6() || ip.is_ipv4()))
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect();
    own.sort_by_key(|a| a.is_ipv4());
    own.dedup();
    own
}

fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && !v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_bound_to_one_address_has_only_that_one() {
        let bound: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(own_addresses(bound), [bound]);
    }

    #[test]
    fn an_unspecified_bind_lists_interfaces_with_its_port_and_no_loopback() {
        let own = own_addresses("[::]:5000".parse().unwrap());
        assert!(own.iter().all(|a| a.port() == 5000 && usable(a.ip())));
        let v4_only = own_addresses("0.0.0.0:5000".parse().unwrap());
        assert!(v4_only.iter().all(SocketAddr::is_ipv4));
    }

    #[tokio::test]
    async fn the_default_socket_reaches_ipv4_and_ipv6_loopback() {
        let socket = bind(None).unwrap();
        for server in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(server) = std::net::UdpSocket::bind(server) else {
                continue; // no IPv6 here
            };
            let to = server.local_addr().unwrap();
            let to = match (socket.local_addr().unwrap(), to) {
                (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                    SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
                }
                _ => to,
            };
            socket.send_to(b"hi", to).await.unwrap();
            let mut buf = [0u8; 2];
            let (n, _) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hi");
        }
    }
}

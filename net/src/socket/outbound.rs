//! What a turn of the loop sends, gathered and sent together: datagrams
//! in a row to one address as one GSO run (the fragments of a large
//! message: one `sendmsg` for up to 64 of them), and the lone datagrams
//! to many addresses (a group message's pushes to each member, the
//! replies to a batch of requests) in one `sendmmsg`, through rustix's
//! safe wrapper. On loopback a `sendto` costs about 4 µs of which the call
//! itself is about 0.3 µs (PERFORMANCE.md, twentieth part): one call
//! for a batch spares that much for each datagram after the first.

use std::io::{self, IoSlice};
use std::net::SocketAddr;

use quinn_udp::Transmit;
use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};

use super::Socket;

/// A GSO send carries at most this many bytes (the largest UDP payload).
const MAX_GSO_BYTES: usize = 65_000;
/// Sends gathered before they go, whatever the turn still holds.
const MAX_SENDS: usize = 64;
/// Bytes gathered before they go: a turn that sends a lot (a large
/// message to several peers) does not hold it all in memory first.
const MAX_BYTES: usize = 256 * 1024;

/// Datagrams gathered for one batch of sends, in the order they came.
pub(crate) struct Outbound {
    buf: Vec<u8>,
    runs: Vec<Run>,
}

/// One datagram (a run of one), or a run of them to one address, all of
/// one size but the last, which may be shorter (what GSO sends as one).
struct Run {
    to: SocketAddr,
    start: usize,
    end: usize,
    segment: usize,
    count: usize,
}

impl Outbound {
    pub(crate) fn new() -> Outbound {
        Outbound {
            buf: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Adds `datagram` for `to`: to the run before it where it may join it
    /// (the same address, at most `max_segments` in one), else as a send
    /// of its own. Says whether the batch is full and should go now.
    pub(crate) fn push(&mut self, to: SocketAddr, datagram: &[u8], max_segments: usize) -> bool {
        let joins = self.runs.last().is_some_and(|run| {
            run.to == to
                && run.count < max_segments
                && datagram.len() <= run.segment
                // A shorter datagram ends the run.
                && run.end - run.start == run.count * run.segment
                && run.end - run.start + datagram.len() <= MAX_GSO_BYTES
        });
        let start = self.buf.len();
        self.buf.extend_from_slice(datagram);
        match self.runs.last_mut() {
            Some(run) if joins => {
                run.end = self.buf.len();
                run.count += 1;
            }
            _ => self.runs.push(Run {
                to,
                start,
                end: self.buf.len(),
                segment: datagram.len(),
                count: 1,
            }),
        }
        self.runs.len() >= MAX_SENDS || self.buf.len() >= MAX_BYTES
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.runs.clear();
    }
}

impl Socket {
    /// Sends what `out` gathered, in order, waiting while the socket's
    /// buffer is full, and empties it: lone datagrams in a row in one
    /// `sendmmsg`, each run as one GSO send (a run the device refused goes
    /// again one datagram at a time). Other errors are logged, and the
    /// rest still goes: the transport's timers deal with a peer that did
    /// not get its datagram.
    pub(crate) async fn send(&self, out: &mut Outbound) {
        let mut next = 0;
        while next < out.runs.len() {
            let lone = out.runs[next..]
                .iter()
                .take_while(|send| send.count == 1)
                .count();
            match lone {
                0 => {
                    self.send_run(&out.buf, &out.runs[next]).await;
                    next += 1;
                }
                1 => {
                    // A plain `sendto`, which spares the kernel the
                    // headers `sendmmsg` reads.
                    let run = &out.runs[next];
                    self.send_one(&out.buf[run.start..run.end], run.to).await;
                    next += 1;
                }
                _ => {
                    self.send_lone(&out.buf, &out.runs[next..next + lone]).await;
                    next += lone;
                }
            }
        }
        out.clear();
    }

    /// Lone datagrams to their addresses in as few `sendmmsg` as the
    /// kernel takes them in: a call that stops short says how many went,
    /// and the next starts at the first that did not, whose error then
    /// comes back on its own. A full buffer waits for room; any other
    /// error sends the rest one at a time, each meeting its own error (a
    /// firewall's refusal of one address) or going (a kernel without
    /// `sendmmsg`), as a GSO run the device refused does.
    async fn send_lone(&self, buf: &[u8], sends: &[Run]) {
        let mut next = 0;
        while next < sends.len() {
            match self.send_many(buf, &sends[next..]) {
                Ok(sent) if sent > 0 => next += sent,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.writable().await {
                        tracing::debug!("send: waiting for room: {e}");
                        return;
                    }
                }
                refused => {
                    if let Err(e) = refused {
                        tracing::debug!(to = %sends[next].to, "send of {} datagrams in one: {e}; one by one", sends.len() - next);
                    }
                    for send in &sends[next..] {
                        self.send_one(&buf[send.start..send.end], send.to).await;
                    }
                    return;
                }
            }
        }
    }

    /// One datagram with `sendto`; an error is logged.
    async fn send_one(&self, datagram: &[u8], to: SocketAddr) {
        if let Err(e) = self.send_to(datagram, self.destination(to)).await {
            tracing::debug!(%to, "send: {e}");
        }
    }

    /// One `sendmmsg` of `sends`, all lone datagrams: how many went.
    fn send_many(&self, buf: &[u8], sends: &[Run]) -> io::Result<usize> {
        let slices: Vec<[IoSlice<'_>; 1]> = sends
            .iter()
            .map(|send| [IoSlice::new(&buf[send.start..send.end])])
            .collect();
        let addrs: Vec<SocketAddrAny> = sends
            .iter()
            .map(|send| SocketAddrAny::from(self.destination(send.to)))
            .collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = sends
            .iter()
            .map(|_| SendAncillaryBuffer::default())
            .collect();
        let mut headers: Vec<MMsgHdr<'_>> = addrs
            .iter()
            .zip(&slices)
            .zip(&mut controls)
            .map(|((addr, slice), control)| MMsgHdr::new_with_addr(addr, slice, control))
            .collect();
        Ok(sendmmsg(
            self.io.get_ref(),
            &mut headers,
            SendFlags::empty(),
        )?)
    }

    /// One run of datagrams to one address as one GSO send, or one by one
    /// where the device refused it.
    async fn send_run(&self, buf: &[u8], run: &Run) {
        let to = self.destination(run.to);
        let contents = &buf[run.start..run.end];
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: Some(run.segment),
            src_ip: None,
        };
        let sent = loop {
            match self.state.try_send(self.io.get_ref().into(), &transmit) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.writable().await {
                        break Err(e);
                    }
                }
                result => break result,
            }
        };
        if let Err(e) = sent {
            tracing::debug!(to = %run.to, "send of {} datagrams in one: {e}; one by one", run.count);
            for datagram in contents.chunks(run.segment) {
                self.send_one(datagram, run.to).await;
            }
        }
    }

    /// Sends one datagram, waiting while the send buffer is full.
    async fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        loop {
            match self.io.get_ref().send_to(datagram, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                result => return result,
            }
        }
    }

    /// `to` as this socket addresses it: an IPv6 socket sends to IPv4 peers
    /// mapped.
    fn destination(&self, to: SocketAddr) -> SocketAddr {
        match to {
            SocketAddr::V4(v4) if self.local.is_ipv6() => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn shape(out: &Outbound) -> Vec<(u16, usize, usize)> {
        out.runs
            .iter()
            .map(|s| (s.to.port(), s.segment, s.count))
            .collect()
    }

    #[test]
    fn a_run_to_one_address_goes_as_one_send_and_a_shorter_datagram_ends_it() {
        let mut out = Outbound::new();
        out.push(addr(1), &[1; 1200], 64);
        out.push(addr(1), &[2; 1200], 64);
        out.push(addr(1), &[3; 700], 64);
        out.push(addr(1), &[4; 700], 64);
        assert_eq!(shape(&out), vec![(1, 1200, 3), (1, 700, 1)]);
        assert_eq!(out.buf.len(), 3800);
    }

    #[test]
    fn another_address_or_a_longer_datagram_starts_another_send() {
        let mut out = Outbound::new();
        out.push(addr(1), &[1; 100], 64);
        out.push(addr(2), &[1; 100], 64);
        out.push(addr(2), &[1; 101], 64);
        out.push(addr(1), &[1; 100], 64);
        assert_eq!(
            shape(&out),
            vec![(1, 100, 1), (2, 100, 1), (2, 101, 1), (1, 100, 1)]
        );
    }

    #[test]
    fn a_run_stops_at_the_segment_limit() {
        let mut out = Outbound::new();
        for _ in 0..3 {
            out.push(addr(1), &[1; 10], 2);
        }
        assert_eq!(shape(&out), vec![(1, 10, 2), (1, 10, 1)]);
    }

    #[test]
    fn a_batch_is_full_at_its_count_of_sends_or_its_bytes() {
        let mut out = Outbound::new();
        for port in 1..MAX_SENDS as u16 {
            assert!(!out.push(addr(port), &[0; 10], 64));
        }
        assert!(out.push(addr(0), &[0; 10], 64), "the last send fills it");
        out.clear();
        assert!(out.is_empty());
        let large = vec![0; 60_000];
        for port in 1..=4 {
            assert!(!out.push(addr(port), &large, 64));
        }
        assert!(out.push(addr(5), &large, 64), "past its bytes");
    }
}

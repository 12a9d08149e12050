//! Raw udpchat datagrams for the attack scenarios (`flood`, `fragments`):
//! HELLOs and transport fragments built from the wire layouts of
//! docs/PROTOCOL.md (sections 2 and 4) out of core's public pieces (the
//! handshake, the session, `wire`, `secure::cookie`), as a hostile client
//! written from the spec would build them. `Link` cannot be used for
//! this: it only ever sends what an honest client sends.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use rand::{CryptoRng, Rng as _, RngCore};
use tokio::net::UdpSocket;
use udpchat_core::crypto::handshake::{ClientHello, ExpectServerHello};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::crypto::session::{Role, Session};
use udpchat_core::secure::cookie::{self, Cookie};
use udpchat_core::wire::{self, Packet, Pattern};

use crate::scenarios::TRANSPORT_DATA_OVERHEAD;
use crate::server::ServerRef;

/// The HELLO payload that asks for a new session (PROTOCOL.md section 2).
const HELLO_FRESH: &[u8] = &[0];
/// How long a raw handshake waits for a WELCOME before a fresh HELLO.
const HELLO_WAIT: Duration = Duration::from_secs(1);
/// HELLOs a raw handshake sends before giving up.
const HELLO_TRIES: u32 = 6;
/// Bytes of message 1 left intact by [`junk_hello`]: the ephemeral key
/// (49 bytes) and a little more; what follows is the AEAD ciphertext and
/// its tag.
const JUNK_INTACT: usize = 60;

/// The payload of every fragment but the last: the transport's largest
/// datagram inside a DATA packet, less the transport's own header.
pub const FRAGMENT_PAYLOAD: usize =
    wire::MAX_DATAGRAM - wire::DATA_OVERHEAD - TRANSPORT_DATA_OVERHEAD;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A HELLO datagram to `server`: a real NK message 1 from a fresh
/// ephemeral key, with mac1 and, given a cookie, mac2.
pub fn hello<R: RngCore + CryptoRng>(
    rng: &mut R,
    server: &PublicKey,
    sender_index: u32,
    cookie: Option<&Cookie>,
) -> anyhow::Result<(ExpectServerHello, Vec<u8>)> {
    let (expect, message) = ClientHello::start(rng, server, HELLO_FRESH, now_ms())
        .map_err(|e| anyhow!("client hello: {e}"))?;
    let mut datagram = Packet::Hello {
        pattern: Pattern::Nk,
        sender_index,
        message: &message,
        macs: &[0; wire::HELLO_MACS_LEN],
    }
    .encode();
    cookie::stamp(&mut datagram, cookie::mac1_key(server).as_ref(), cookie);
    Ok((expect, datagram))
}

/// A junk HELLO (issue 11, finding 2): an honest HELLO whose AEAD part is
/// corrupted, mac1 stamped (the server's key is public) and no mac2. It
/// gets past every check that costs nothing and is found out only after
/// the responder's P-384 work (a point decode and an ECDH), as core's own
/// test flood (`junk_hello` in core/src/secure/tests.rs) is.
pub fn junk_hello<R: RngCore + CryptoRng>(
    rng: &mut R,
    server: &PublicKey,
) -> anyhow::Result<Vec<u8>> {
    let sender_index = rng.gen();
    let (_, mut datagram) = hello(rng, server, sender_index, None)?;
    let macs_at = datagram.len() - wire::HELLO_MACS_LEN;
    for byte in &mut datagram[wire::HELLO_HEADER_LEN + JUNK_INTACT..macs_at] {
        *byte ^= 0x5a;
    }
    cookie::stamp(&mut datagram, cookie::mac1_key(server).as_ref(), None);
    Ok(datagram)
}

/// Gives a HELLO (junk or not) the mac2 of `cookie`, in place.
pub fn with_cookie(datagram: &mut [u8], mac1_key: &[u8], cookie: &Cookie) {
    cookie::stamp(datagram, mac1_key, Some(cookie));
}

/// The cookie a COOKIE REPLY carries, if `datagram` is one.
pub fn cookie_reply(datagram: &[u8]) -> Option<Cookie> {
    match Packet::parse(datagram) {
        Ok(Packet::CookieReply { cookie, .. }) => cookie.try_into().ok(),
        _ => None,
    }
}

/// An NK session with the server on a socket of its own, driven by hand:
/// it seals whatever transport datagram it is given and reads nothing
/// after the handshake (the server's ACKs are left in the socket's buffer
/// and dropped by the kernel once it is full).
pub struct RawSession {
    socket: UdpSocket,
    server: SocketAddr,
    session: Session,
    /// The server's index for the session (DATA carries it).
    remote_index: u32,
    /// The transport incarnation this side claims (PROTOCOL.md section 4).
    incarnation: u64,
    next_pn: u64,
}

impl RawSession {
    /// A handshake from a fresh socket at `ip`, answering a cookie reply
    /// as an honest client does.
    pub async fn connect(ip: IpAddr, server: &ServerRef) -> anyhow::Result<RawSession> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("cannot bind a UDP socket on {ip}"))?;
        let mut rng = rand::rngs::OsRng;
        let mut cookie = None;
        let mut buf = vec![0u8; 2048];
        for _ in 0..HELLO_TRIES {
            let index: u32 = rng.gen_range(1..u32::MAX);
            let (expect, datagram) = hello(&mut rng, &server.key, index, cookie.as_ref())?;
            socket.send_to(&datagram, server.addr).await?;
            let deadline = Instant::now() + HELLO_WAIT;
            while let Ok(got) =
                tokio::time::timeout_at(deadline.into(), socket.recv_from(&mut buf)).await
            {
                let (len, from) = got?;
                if from != server.addr {
                    continue;
                }
                match Packet::parse(&buf[..len]) {
                    Ok(Packet::Welcome {
                        sender_index,
                        receiver_index,
                        message,
                    }) if receiver_index == index => {
                        let (keys, _) = expect
                            .clone()
                            .read(message)
                            .map_err(|e| anyhow!("welcome: {e}"))?;
                        return Ok(RawSession {
                            socket,
                            server: server.addr,
                            session: Session::new(keys, Role::Initiator),
                            remote_index: sender_index,
                            incarnation: rng.gen(),
                            next_pn: 0,
                        });
                    }
                    Ok(Packet::CookieReply {
                        receiver_index,
                        cookie: c,
                        ..
                    }) if receiver_index == index => {
                        cookie = c.try_into().ok();
                        break;
                    }
                    _ => {}
                }
            }
        }
        bail!("no WELCOME from {} after {HELLO_TRIES} HELLOs", server.addr)
    }

    /// A transport DATA packet (PROTOCOL.md section 4, transport header:
    /// version 1, kind DATA 1, incarnation, pn, msg_seq, base_seq,
    /// frag_index, frag_count), with a new packet number.
    pub fn fragment(
        &mut self,
        msg_seq: u32,
        base_seq: u32,
        frag_index: u16,
        frag_count: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(TRANSPORT_DATA_OVERHEAD + payload.len());
        out.extend_from_slice(&[1, 1]);
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.next_pn.to_be_bytes());
        out.extend_from_slice(&msg_seq.to_be_bytes());
        out.extend_from_slice(&base_seq.to_be_bytes());
        out.extend_from_slice(&frag_index.to_be_bytes());
        out.extend_from_slice(&frag_count.to_be_bytes());
        out.extend_from_slice(payload);
        self.next_pn += 1;
        out
    }

    /// Seals one transport datagram into a DATA packet and sends it;
    /// returns the bytes sent.
    pub async fn send_transport(&mut self, plaintext: &[u8]) -> anyhow::Result<usize> {
        let datagram = wire::seal_data(&mut self.session, self.remote_index, plaintext)
            .map_err(|e| anyhow!("seal: {e}"))?;
        Ok(self.socket.send_to(&datagram, self.server).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::crypto::keys::StaticKey;

    #[test]
    fn a_junk_hello_passes_mac1_and_fails_only_the_p384_work() {
        use udpchat_core::crypto::handshake::{ReplayGuard, ServerHandshake};
        let rng = &mut rand::rngs::OsRng;
        let server = StaticKey::generate(rng);
        let message_of = |datagram: &[u8]| match Packet::parse(datagram) {
            Ok(Packet::Hello { message, .. }) => message.to_vec(),
            other => panic!("not a HELLO: {other:?}"),
        };
        let junk = junk_hello(rng, &server.public()).unwrap();
        let (_, honest) = hello(rng, &server.public(), 7, None).unwrap();
        assert_eq!(junk.len(), honest.len());
        assert!(cookie::mac1_ok(
            &junk,
            cookie::mac1_key(&server.public()).as_ref()
        ));
        let mut guard = ReplayGuard::new();
        let respond = |m: &[u8], guard: &mut ReplayGuard| {
            ServerHandshake::respond(&mut rand::rngs::OsRng, &server, m, now_ms(), &[], guard)
        };
        assert!(respond(&message_of(&honest), &mut guard).is_ok());
        assert!(respond(&message_of(&junk), &mut guard).is_err());
    }

    #[test]
    fn a_full_fragment_fills_the_largest_datagram() {
        assert_eq!(
            FRAGMENT_PAYLOAD + TRANSPORT_DATA_OVERHEAD + wire::DATA_OVERHEAD,
            wire::MAX_DATAGRAM
        );
    }
}

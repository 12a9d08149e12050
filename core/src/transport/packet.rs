//! The transport's datagram kinds, DATA, ACK, SKIP and ACK+DATA: their
//! byte layout, the encoders, and a decoder that turns any bytes into a
//! packet or a [`PacketError`], never a panic.
//!
//! Every integer is big-endian and every field has a fixed width.
//!
//! ```text
//! header, every kind (10 bytes)
//!   0       version            u8   = 2
//!   1       kind               u8   DATA = 1, ACK = 2, SKIP = 3, ACK+DATA = 4
//!   2..10   incarnation        u64  the sender's session with this peer
//! DATA (30 bytes, then the payload up to the end of the datagram)
//!   10..18  pn                 u64  packet number, new for every transmission
//!   18..22  msg_seq            u32  the message, numbered per session from 0
//!   22..26  base_seq           u32  the sender's lowest unfinished msg_seq
//!   26..28  frag_index         u16  < frag_count
//!   28..30  frag_count         u16  >= 1
//!   30..    payload                 every fragment but the last is full
//! ACK (23 + 16 * count bytes)
//!   10..18  acked_incarnation  u64  the session whose packets are acknowledged
//!   18..22  ack_delay          u32  microseconds the largest packet acknowledged
//!                                   waited here before this ACK left
//!   22      count              u8   1..=255
//!   23..    count * (start u64, end u64)
//!                                   start <= end, largest range first, with a
//!                                   gap of at least one packet between ranges
//! SKIP (22 bytes): "every message below base_seq is finished"
//!   10..18  pn                 u64  numbered and acknowledged like DATA
//!   18..22  base_seq           u32
//! ACK+DATA: an ACK riding on a DATA packet going the same way
//!   10..    the ACK's fields from acked_incarnation to its last range
//!   then    the DATA's fields from pn to the end of the payload
//! ```

use super::PacketError;

pub(crate) const VERSION: u8 = 2;
pub(crate) const KIND_DATA: u8 = 1;
pub(crate) const KIND_ACK: u8 = 2;
pub(crate) const KIND_SKIP: u8 = 3;
pub(crate) const KIND_ACK_DATA: u8 = 4;

/// The bytes every kind starts with: version, kind, incarnation.
pub(crate) const HEADER_LEN: usize = 10;
pub(crate) const DATA_HEADER_LEN: usize = 30;
pub(crate) const ACK_HEADER_LEN: usize = 23;
pub(crate) const ACK_RANGE_LEN: usize = 16;
pub(crate) const SKIP_LEN: usize = 22;

/// More ranges than this would make every ACK large while the sender only
/// cares about the packets of its current window.
const MAX_ACK_RANGES: usize = 32;

/// How many ranges one ACK carries under a datagram limit.
pub(crate) fn max_ack_ranges(max_datagram: usize) -> usize {
    (max_datagram.saturating_sub(ACK_HEADER_LEN) / ACK_RANGE_LEN).min(MAX_ACK_RANGES)
}

/// The fields of a DATA packet before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DataHeader {
    pub incarnation: u64,
    pub pn: u64,
    pub msg_seq: u32,
    pub base_seq: u32,
    pub frag_index: u16,
    pub frag_count: u16,
}

impl DataHeader {
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(DATA_HEADER_LEN + payload.len());
        out.push(VERSION);
        out.push(KIND_DATA);
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.pn.to_be_bytes());
        out.extend_from_slice(&self.msg_seq.to_be_bytes());
        out.extend_from_slice(&self.base_seq.to_be_bytes());
        out.extend_from_slice(&self.frag_index.to_be_bytes());
        out.extend_from_slice(&self.frag_count.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn is_last(&self) -> bool {
        self.frag_index + 1 == self.frag_count
    }
}

/// A decoded ACK; its ranges stay in the datagram and are read on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ack<'a> {
    pub incarnation: u64,
    pub acked_incarnation: u64,
    /// Microseconds the largest packet acknowledged waited at the peer.
    pub ack_delay: u32,
    ranges: &'a [u8],
}

impl<'a> Ack<'a> {
    /// The acknowledged packet numbers as inclusive `(start, end)`, largest
    /// first.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let mut reader = Reader(self.ranges);
        std::iter::from_fn(move || Some((reader.u64().ok()?, reader.u64().ok()?)))
    }

    /// The largest acknowledged packet number (decoding guarantees one range).
    pub fn largest(&self) -> u64 {
        self.ranges().next().map_or(0, |(_, end)| end)
    }

    fn encode(&self) -> Vec<u8> {
        encode_ack(
            self.incarnation,
            self.acked_incarnation,
            self.ack_delay,
            self.ranges(),
            usize::from(u8::MAX),
        )
    }
}

/// Encodes an ACK with at most `max_ranges` of `ranges` (given largest first).
pub(crate) fn encode_ack(
    incarnation: u64,
    acked_incarnation: u64,
    ack_delay: u32,
    ranges: impl Iterator<Item = (u64, u64)>,
    max_ranges: usize,
) -> Vec<u8> {
    let max_ranges = max_ranges.min(usize::from(u8::MAX));
    let mut out = Vec::with_capacity(ACK_HEADER_LEN + ACK_RANGE_LEN * max_ranges);
    out.push(VERSION);
    out.push(KIND_ACK);
    out.extend_from_slice(&incarnation.to_be_bytes());
    out.extend_from_slice(&acked_incarnation.to_be_bytes());
    out.extend_from_slice(&ack_delay.to_be_bytes());
    out.push(0);
    let mut count = 0u8;
    for (start, end) in ranges.take(max_ranges) {
        out.extend_from_slice(&start.to_be_bytes());
        out.extend_from_slice(&end.to_be_bytes());
        count += 1;
    }
    out[ACK_HEADER_LEN - 1] = count;
    out
}

/// Whether an encoded packet is a DATA packet (which an ACK may ride on).
pub(crate) fn is_data(packet: &[u8]) -> bool {
    packet.get(1) == Some(&KIND_DATA)
}

/// One ACK+DATA datagram from an encoded ACK and an encoded DATA packet
/// of the same session: the ACK's bytes, then the DATA's past its header.
pub(crate) fn encode_ack_data(ack: &[u8], data: &[u8]) -> Vec<u8> {
    debug_assert_eq!(ack[..2], [VERSION, KIND_ACK]);
    debug_assert_eq!(data[..2], [VERSION, KIND_DATA]);
    debug_assert_eq!(ack[2..HEADER_LEN], data[2..HEADER_LEN]);
    let mut out = Vec::with_capacity(ack.len() + data.len() - HEADER_LEN);
    out.extend_from_slice(ack);
    out[1] = KIND_ACK_DATA;
    out.extend_from_slice(&data[HEADER_LEN..]);
    out
}

/// Encodes a SKIP: the receiver may stop waiting for anything below
/// `base_seq`.
pub(crate) fn encode_skip(incarnation: u64, pn: u64, base_seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(SKIP_LEN);
    out.push(VERSION);
    out.push(KIND_SKIP);
    out.extend_from_slice(&incarnation.to_be_bytes());
    out.extend_from_slice(&pn.to_be_bytes());
    out.extend_from_slice(&base_seq.to_be_bytes());
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    Data {
        header: DataHeader,
        payload: &'a [u8],
    },
    Ack(Ack<'a>),
    AckData {
        ack: Ack<'a>,
        header: DataHeader,
        payload: &'a [u8],
    },
    Skip {
        incarnation: u64,
        pn: u64,
        base_seq: u32,
    },
}

impl<'a> Packet<'a> {
    /// The datagram bytes: what [`Packet::decode`] read, written again.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Packet::Data { header, payload } => header.encode(payload),
            Packet::Ack(ack) => ack.encode(),
            Packet::AckData {
                ack,
                header,
                payload,
            } => encode_ack_data(&ack.encode(), &header.encode(payload)),
            Packet::Skip {
                incarnation,
                pn,
                base_seq,
            } => encode_skip(incarnation, pn, base_seq),
        }
    }

    /// Decodes one datagram. `max_message` bounds what a DATA packet may
    /// claim, so a forged fragment count cannot announce a huge message.
    pub fn decode(bytes: &'a [u8], max_message: usize) -> Result<Packet<'a>, PacketError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let kind = r.u8()?;
        if !matches!(kind, KIND_DATA | KIND_ACK | KIND_SKIP | KIND_ACK_DATA) {
            return Err(PacketError::UnknownKind(kind));
        }
        let incarnation = r.u64()?;
        match kind {
            KIND_DATA => {
                let (header, payload) = decode_data(&mut r, incarnation, max_message)?;
                Ok(Packet::Data { header, payload })
            }
            KIND_ACK => {
                let ack = decode_ack(&mut r, incarnation)?;
                if !r.0.is_empty() {
                    return Err(PacketError::Malformed("bytes after the last ack range"));
                }
                Ok(Packet::Ack(ack))
            }
            KIND_ACK_DATA => {
                let ack = decode_ack(&mut r, incarnation)?;
                let (header, payload) = decode_data(&mut r, incarnation, max_message)?;
                Ok(Packet::AckData {
                    ack,
                    header,
                    payload,
                })
            }
            _ => decode_skip(r, incarnation),
        }
    }
}

fn decode_data<'a>(
    r: &mut Reader<'a>,
    incarnation: u64,
    max_message: usize,
) -> Result<(DataHeader, &'a [u8]), PacketError> {
    let header = DataHeader {
        incarnation,
        pn: r.u64()?,
        msg_seq: r.u32()?,
        base_seq: r.u32()?,
        frag_index: r.u16()?,
        frag_count: r.u16()?,
    };
    let payload = std::mem::take(&mut r.0);
    if header.frag_count == 0 {
        return Err(PacketError::Malformed("fragment count is zero"));
    }
    if header.frag_index >= header.frag_count {
        return Err(PacketError::Malformed(
            "fragment index beyond fragment count",
        ));
    }
    // The receiver's next expected sequence must be able to move past any
    // message it delivers, so the last sequence number is never used.
    if header.msg_seq == u32::MAX {
        return Err(PacketError::Malformed("msg_seq out of range"));
    }
    // A sender's base_seq counts the message it is sending as unfinished.
    if header.base_seq > header.msg_seq {
        return Err(PacketError::Malformed("base_seq above msg_seq"));
    }
    let others = usize::from(header.frag_count - 1);
    // Non-last fragments are full, so one of them gives the message's size;
    // the last one only gives a lower bound (every other fragment >= 1 byte).
    let least_size = if header.is_last() {
        others + payload.len()
    } else {
        if payload.is_empty() {
            return Err(PacketError::Malformed("empty fragment before the last"));
        }
        others.saturating_mul(payload.len())
    };
    if least_size > max_message {
        return Err(PacketError::Malformed("message larger than max_message"));
    }
    Ok((header, payload))
}

/// Reads an ACK's fields after the header, up to its last range.
fn decode_ack<'a>(r: &mut Reader<'a>, incarnation: u64) -> Result<Ack<'a>, PacketError> {
    let acked_incarnation = r.u64()?;
    let ack_delay = r.u32()?;
    let count = usize::from(r.u8()?);
    if count == 0 {
        return Err(PacketError::Malformed("ack without ranges"));
    }
    let len = count * ACK_RANGE_LEN;
    if r.0.len() < len {
        return Err(PacketError::Truncated);
    }
    let (ranges, rest) = r.0.split_at(len);
    r.0 = rest;
    let ack = Ack {
        incarnation,
        acked_incarnation,
        ack_delay,
        ranges,
    };
    let mut below: Option<u64> = None;
    for (start, end) in ack.ranges() {
        if start > end {
            return Err(PacketError::Malformed("ack range start above its end"));
        }
        // Ranges go down with a gap in between: anything else is overlapping
        // or adjacent ranges that an honest encoder would have merged.
        if below.is_some_and(|prev_start| end >= prev_start.saturating_sub(1)) {
            return Err(PacketError::Malformed("ack ranges out of order"));
        }
        below = Some(start);
    }
    Ok(ack)
}

fn decode_skip(mut r: Reader<'_>, incarnation: u64) -> Result<Packet<'_>, PacketError> {
    let packet = Packet::Skip {
        incarnation,
        pn: r.u64()?,
        base_seq: r.u32()?,
    };
    if !r.0.is_empty() {
        return Err(PacketError::Malformed("bytes after a skip"));
    }
    Ok(packet)
}

/// A cursor over the datagram; every read checks the length first.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PacketError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(PacketError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, PacketError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, PacketError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, PacketError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, PacketError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests;

use super::*;
use proptest::prelude::*;

const MAX: usize = 256 * 1024;

fn data(frag_index: u16, frag_count: u16, payload: &[u8]) -> Vec<u8> {
    DataHeader {
        incarnation: 7,
        pn: 9,
        msg_seq: 3,
        base_seq: 1,
        frag_index,
        frag_count,
    }
    .encode(payload)
}

#[test]
fn data_layout_is_the_documented_one() {
    let bytes = data(2, 5, b"hi");
    assert_eq!(bytes.len(), DATA_HEADER_LEN + 2);
    assert_eq!(&bytes[..2], &[VERSION, KIND_DATA]);
    assert_eq!(&bytes[2..10], &7u64.to_be_bytes());
    assert_eq!(&bytes[10..18], &9u64.to_be_bytes());
    assert_eq!(&bytes[18..22], &3u32.to_be_bytes());
    assert_eq!(&bytes[22..26], &1u32.to_be_bytes());
    assert_eq!(&bytes[26..30], &[0, 2, 0, 5]);
    assert_eq!(&bytes[30..], b"hi");
}

#[test]
fn ack_layout_is_the_documented_one() {
    let bytes = encode_ack(1, 2, 25_000, [(10, 12), (3, 5)].into_iter(), 32);
    assert_eq!(bytes.len(), ACK_HEADER_LEN + 2 * ACK_RANGE_LEN);
    assert_eq!(&bytes[..2], &[VERSION, KIND_ACK]);
    assert_eq!(&bytes[10..18], &2u64.to_be_bytes());
    assert_eq!(&bytes[18..22], &25_000u32.to_be_bytes());
    assert_eq!(bytes[22], 2);
    assert_eq!(&bytes[23..31], &10u64.to_be_bytes());
}

#[test]
fn an_ack_rides_on_data_as_the_documented_layout() {
    let ack = encode_ack(7, 2, 40, [(10, 12)].into_iter(), 32);
    let data = data(0, 1, b"hi");
    let bytes = encode_ack_data(&ack, &data);
    assert_eq!(bytes.len(), ack.len() + data.len() - 10);
    assert_eq!(&bytes[..2], &[VERSION, KIND_ACK_DATA]);
    assert_eq!(&bytes[2..ack.len()], &ack[2..]);
    assert_eq!(&bytes[ack.len()..], &data[10..]);
    let Ok(Packet::AckData {
        ack,
        header,
        payload,
    }) = Packet::decode(&bytes, MAX)
    else {
        panic!("ack+data did not decode")
    };
    assert_eq!(
        (ack.incarnation, ack.acked_incarnation, ack.ack_delay),
        (7, 2, 40)
    );
    assert_eq!(ack.ranges().collect::<Vec<_>>(), vec![(10, 12)]);
    assert_eq!((header.incarnation, header.pn, payload), (7, 9, &b"hi"[..]));
    // Each half is checked as the packet alone would be.
    let bad = encode_ack_data(&encode_ack(7, 2, 0, [(5, 4)].into_iter(), 32), &data);
    assert_eq!(
        Packet::decode(&bad, MAX),
        Err(PacketError::Malformed("ack range start above its end"))
    );
    let empty = DataHeader {
        frag_count: 0,
        ..header
    };
    let bad = encode_ack_data(
        &encode_ack(7, 2, 0, [(1, 1)].into_iter(), 32),
        &empty.encode(b"x"),
    );
    assert_eq!(
        Packet::decode(&bad, MAX),
        Err(PacketError::Malformed("fragment count is zero"))
    );
}

#[test]
fn skip_layout_is_the_documented_one() {
    let bytes = encode_skip(7, 9, 4);
    assert_eq!(bytes.len(), SKIP_LEN);
    assert_eq!(&bytes[..2], &[VERSION, KIND_SKIP]);
    assert_eq!(&bytes[10..18], &9u64.to_be_bytes());
    assert_eq!(&bytes[18..22], &4u32.to_be_bytes());
    assert_eq!(
        Packet::decode(&bytes, MAX).unwrap(),
        Packet::Skip {
            incarnation: 7,
            pn: 9,
            base_seq: 4
        }
    );
}

#[test]
fn ack_keeps_only_the_ranges_that_fit() {
    let ranges = (0..100u64).rev().map(|i| (i * 3, i * 3 + 1));
    let bytes = encode_ack(1, 2, 0, ranges, max_ack_ranges(300));
    assert!(bytes.len() <= 300);
    let Ok(Packet::Ack(ack)) = Packet::decode(&bytes, MAX) else {
        panic!("ack did not decode")
    };
    assert_eq!(ack.ranges().count(), max_ack_ranges(300));
    assert_eq!(ack.largest(), 99 * 3 + 1);
}

#[test]
fn malformed_packets_are_named() {
    let cases: Vec<(Vec<u8>, PacketError)> = vec![
        (vec![], PacketError::Truncated),
        (vec![1, 1], PacketError::BadVersion(1)),
        (vec![VERSION, 9, 0], PacketError::UnknownKind(9)),
        (
            data(0, 2, b"")[..DATA_HEADER_LEN - 1].to_vec(),
            PacketError::Truncated,
        ),
        (
            data(0, 0, b"x"),
            PacketError::Malformed("fragment count is zero"),
        ),
        (
            data(3, 3, b"x"),
            PacketError::Malformed("fragment index beyond fragment count"),
        ),
        (
            data(0, 2, b""),
            PacketError::Malformed("empty fragment before the last"),
        ),
        (
            data(0, 300, &[0; 1000]),
            PacketError::Malformed("message larger than max_message"),
        ),
        (
            DataHeader {
                incarnation: 1,
                pn: 1,
                msg_seq: 1,
                base_seq: 2,
                frag_index: 0,
                frag_count: 1,
            }
            .encode(b""),
            PacketError::Malformed("base_seq above msg_seq"),
        ),
        (
            DataHeader {
                incarnation: 1,
                pn: 1,
                msg_seq: u32::MAX,
                base_seq: 2,
                frag_index: 0,
                frag_count: 1,
            }
            .encode(b""),
            PacketError::Malformed("msg_seq out of range"),
        ),
        (
            [encode_skip(1, 2, 3), vec![0]].concat(),
            PacketError::Malformed("bytes after a skip"),
        ),
        (
            encode_skip(1, 2, 3)[..SKIP_LEN - 1].to_vec(),
            PacketError::Truncated,
        ),
        (
            encode_ack(1, 2, 0, std::iter::empty(), 32),
            PacketError::Malformed("ack without ranges"),
        ),
        (
            encode_ack(1, 2, 0, [(5, 4)].into_iter(), 32),
            PacketError::Malformed("ack range start above its end"),
        ),
        (
            encode_ack(1, 2, 0, [(3, 5), (10, 12)].into_iter(), 32),
            PacketError::Malformed("ack ranges out of order"),
        ),
        (
            encode_ack(1, 2, 0, [(6, 9), (1, 5)].into_iter(), 32),
            PacketError::Malformed("ack ranges out of order"),
        ),
    ];
    for (bytes, want) in cases {
        let got = Packet::decode(&bytes, MAX).expect_err("malformed packet decoded");
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "bytes {bytes:?}");
    }
    let mut trailing = encode_ack(1, 2, 0, [(1, 1)].into_iter(), 32);
    trailing.push(0);
    assert!(matches!(
        Packet::decode(&trailing, MAX),
        Err(PacketError::Malformed(_))
    ));
    let mut short = encode_ack(1, 2, 0, [(1, 1)].into_iter(), 32);
    short.pop();
    assert!(matches!(
        Packet::decode(&short, MAX),
        Err(PacketError::Truncated)
    ));
}

fn arb_header() -> impl Strategy<Value = DataHeader> {
    (any::<u64>(), any::<u64>(), 0..u32::MAX, 1..=u16::MAX).prop_flat_map(
        |(inc, pn, seq, count)| {
            (0..count, 0..=seq).prop_map(move |(frag_index, base_seq)| DataHeader {
                incarnation: inc,
                pn,
                msg_seq: seq,
                base_seq,
                frag_index,
                frag_count: count,
            })
        },
    )
}

proptest! {
    #[test]
    fn data_round_trips(header in arb_header(), payload in proptest::collection::vec(any::<u8>(), 1..64)) {
        let bytes = header.encode(&payload);
        let decoded = Packet::decode(&bytes, usize::MAX).unwrap();
        prop_assert_eq!(decoded, Packet::Data { header, payload: &payload });
    }

    #[test]
    fn ack_round_trips(
        inc in any::<u64>(),
        acked in any::<u64>(),
        delay in any::<u32>(),
        steps in proptest::collection::vec((0u64..1000, 2u64..1000), 1..40),
    ) {
        // Build disjoint, non-adjacent ranges going down from the top.
        let mut ranges = Vec::new();
        let mut top = u64::MAX;
        for (len, gap) in steps {
            let Some(start) = top.checked_sub(len) else { break };
            ranges.push((start, top));
            let Some(next) = start.checked_sub(gap) else { break };
            top = next;
        }
        let bytes = encode_ack(inc, acked, delay, ranges.iter().copied(), 255);
        let Ok(Packet::Ack(ack)) = Packet::decode(&bytes, MAX) else { panic!("ack did not decode") };
        prop_assert_eq!(ack.incarnation, inc);
        prop_assert_eq!(ack.acked_incarnation, acked);
        prop_assert_eq!(ack.ack_delay, delay);
        prop_assert_eq!(ack.ranges().collect::<Vec<_>>(), ranges);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(packet) = Packet::decode(&bytes, MAX) {
            prop_assert_eq!(packet.encode(), bytes);
        }
    }
}

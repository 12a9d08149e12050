use super::*;
use crate::crypto::session::tests::sessions;
use proptest::prelude::*;

fn hello(message: &[u8]) -> Vec<u8> {
    Packet::Hello {
        pattern: Pattern::Ik,
        sender_index: 0x0102_0304,
        message,
        macs: &[0xee; HELLO_MACS_LEN],
    }
    .encode()
}

#[test]
fn layouts_match_the_module_doc() {
    let message = vec![0xaa; MIN_MESSAGE1_LEN];
    let bytes = hello(&message);
    assert_eq!(&bytes[..7], &[1, 1, 1, 1, 2, 3, 4]);
    assert_eq!(
        bytes.len(),
        HELLO_HEADER_LEN + MIN_MESSAGE1_LEN + HELLO_MACS_LEN
    );
    assert_eq!(&bytes[bytes.len() - HELLO_MACS_LEN..], &[0xee; 32]);

    let bytes = Packet::CookieReply {
        receiver_index: 9,
        mac1: &[0x11; MAC_LEN],
        cookie: &[0x22; MAC_LEN],
    }
    .encode();
    assert_eq!(bytes.len(), COOKIE_REPLY_LEN);
    assert_eq!(&bytes[..6], &[1, 6, 0, 0, 0, 9]);
    assert_eq!(&bytes[6..22], &[0x11; 16]);
    assert_eq!(&bytes[22..], &[0x22; 16]);

    let message = vec![0xbb; 65];
    let bytes = Packet::Welcome {
        sender_index: 5,
        receiver_index: 6,
        message: &message,
    }
    .encode();
    assert_eq!(&bytes[..10], &[1, 2, 0, 0, 0, 5, 0, 0, 0, 6]);

    let bytes = Packet::Data {
        receiver_index: 7,
        counter: 0x0102,
        ciphertext: &[0xcc; 16],
    }
    .encode();
    assert_eq!(&bytes[..14], &[1, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 1, 2]);
    assert_eq!(DATA_OVERHEAD, 30);

    let signed = probe_signed(true, 0x0a0b, 0x0c0d);
    let bytes = Packet::Probe {
        answer: true,
        meeting: 0x0a0b,
        nonce: 0x0c0d,
        signed: &signed,
        mac: &[0x33; MAC_LEN],
    }
    .encode();
    assert_eq!(bytes.len(), PROBE_LEN);
    assert_eq!(
        &bytes[..19],
        &[1, 7, 1, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0, 0, 0, 0, 0, 0, 0x0c, 0x0d]
    );
    assert!(matches!(
        Packet::parse(&bytes),
        Ok(Packet::Probe {
            answer: true,
            meeting: 0x0a0b,
            nonce: 0x0c0d,
            ..
        })
    ));

    let bytes = relay_datagram(0x0102, &[9, 9]);
    assert_eq!(&bytes, &[1, 8, 0, 0, 0, 0, 0, 0, 1, 2, 9, 9]);
    assert_eq!(
        Packet::parse(&bytes),
        Ok(Packet::Relay {
            meeting: 0x0102,
            inner: &[9, 9]
        })
    );
    assert!(Packet::parse(&bytes[..RELAY_HEADER_LEN]).is_err());
}

#[test]
fn garbage_is_rejected_by_the_first_bytes() {
    assert_eq!(
        Packet::parse(&[]),
        Err(WireError::Truncated {
            what: "packet",
            len: 0
        })
    );
    assert_eq!(
        Packet::parse(b"GET / HTTP/1.1"),
        Err(WireError::Version(b'G'))
    );
    assert_eq!(Packet::parse(&[1, 9, 0, 0]), Err(WireError::Kind(9)));
    let mut bad_pattern = hello(&[0; MIN_MESSAGE1_LEN]);
    bad_pattern[2] = 7;
    assert_eq!(Packet::parse(&bad_pattern), Err(WireError::Pattern(7)));
}

#[test]
fn a_short_hello_is_refused_so_replies_cannot_amplify() {
    let short = hello(&[0; MIN_MESSAGE1_LEN - 1]);
    assert!(matches!(
        Packet::parse(&short),
        Err(WireError::Truncated { what: "HELLO", .. })
    ));
    let long_welcome = Packet::Welcome {
        sender_index: 1,
        receiver_index: 2,
        message: &[0; MAX_MESSAGE2_LEN + 1],
    }
    .encode();
    assert!(matches!(
        Packet::parse(&long_welcome),
        Err(WireError::TooLong { .. })
    ));
}

#[test]
fn data_sealed_in_a_session_opens_on_the_other_side() {
    let (mut client, mut server) = sessions(20);
    let datagram = seal_data(&mut client, 42, b"hello").unwrap();
    assert_eq!(datagram.len(), 5 + DATA_OVERHEAD);
    let Ok(Packet::Data {
        receiver_index,
        counter,
        ciphertext,
    }) = Packet::parse(&datagram)
    else {
        panic!("not a DATA packet");
    };
    assert_eq!((receiver_index, counter), (42, 0));
    assert_eq!(
        open_data(&mut server, receiver_index, counter, ciphertext).unwrap(),
        b"hello"
    );
}

#[test]
fn flipping_any_byte_of_a_data_packet_is_detected() {
    let (mut client, mut server) = sessions(21);
    let datagram = seal_data(&mut client, 42, b"hello, tamper me").unwrap();
    for i in 0..datagram.len() {
        let mut bad = datagram.clone();
        bad[i] ^= 0x01;
        let opened = match Packet::parse(&bad) {
            Ok(Packet::Data {
                receiver_index,
                counter,
                ciphertext,
            }) => open_data(&mut server, receiver_index, counter, ciphertext).ok(),
            _ => None,
        };
        assert_eq!(opened, None, "byte {i} flipped went unnoticed");
    }
    let Ok(Packet::Data {
        receiver_index,
        counter,
        ciphertext,
    }) = Packet::parse(&datagram)
    else {
        panic!("not a DATA packet");
    };
    assert!(open_data(&mut server, receiver_index, counter, ciphertext).is_ok());
}

fn any_packet() -> impl Strategy<Value = (u8, u8, u32, u32, u64, Vec<u8>)> {
    (
        0u8..4,
        0u8..2,
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..1300),
    )
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let _ = Packet::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_valid_headers(kind in 0u8..8, bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut datagram = vec![VERSION, kind];
        datagram.extend(bytes);
        let _ = Packet::parse(&datagram);
    }

    #[test]
    fn encode_then_parse_gives_the_packet_back_and_truncations_never_panic(
        (kind, pattern, a, b, counter, body) in any_packet()
    ) {
        let packet = match kind {
            0 if body.len() >= HELLO_MACS_LEN => {
                let (message, macs) = body.split_at(body.len() - HELLO_MACS_LEN);
                Packet::Hello { pattern: if pattern == 0 { Pattern::Nk } else { Pattern::Ik }, sender_index: a, message, macs }
            }
            1 => Packet::Welcome { sender_index: a, receiver_index: b, message: &body },
            3 if body.len() >= 2 * MAC_LEN => Packet::CookieReply { receiver_index: a, mac1: &body[..MAC_LEN], cookie: &body[MAC_LEN..2 * MAC_LEN] },
            _ => Packet::Data { receiver_index: a, counter, ciphertext: &body },
        };
        let bytes = packet.encode();
        if let Ok(parsed) = Packet::parse(&bytes) {
            prop_assert_eq!(parsed, packet);
            prop_assert_eq!(parsed.encode(), bytes.clone());
        }
        for len in 0..bytes.len().min(64) {
            let _ = Packet::parse(&bytes[..len]);
        }
        let _ = Packet::parse(&bytes[..bytes.len() / 2]);
    }
}

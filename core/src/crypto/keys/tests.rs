use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Test-only keys made with openssl; they protect nothing.
pub(crate) const P256_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLNHOwGqIVKFHPH7W
bzVVDeALYygpVFHz5gBAo33ytgShRANCAATgcATIHJ9Z3Ct0/m5H5ugi+PqYiZj8
i2zlj59Q0PG0XZch/nd77Bq03A3HMh4zc3Ce1ssT8zBBHKEJKL9X/Bbi
-----END PRIVATE KEY-----
";
pub(crate) const P256_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4HAEyByfWdwrdP5uR+boIvj6mImY
/Its5Y+fUNDxtF2XIf53e+watNwNxzIeM3NwntbLE/MwQRyhCSi/V/wW4g==
-----END PUBLIC KEY-----
";
const ED25519_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIM1bEkl0Dr3vM/dKAb3xx3VfGtt8BxorJLaPiShvUtH1
-----END PRIVATE KEY-----
";
const ED25519_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAVPobvD9QKM3aJ4CtXnhU5fAwy05zJlyybtwfAMzSiFk=
-----END PUBLIC KEY-----
";
/// `openssl ecparam -name secp384r1 -genkey` output, parameters included.
const P384_SEC1_PEM: &str = "-----BEGIN EC PARAMETERS-----
BgUrgQQAIg==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDDuXEV4iY21bc5LYtLjrPGWEgR90bGheCqg+PIgNdcI3kARyESpmq9H
rCpN/E1AT3mgBwYFK4EEACKhZANiAAS1Tzu7q2xOc8dUQWWW53WbUnycT11m3kyp
/oAomWfQcqII5RB6sg/fjNowy83Fv9loWIlETREVb3iH965wYfhb0J2wes177cZu
4N9n5qkGL7b60PdZX+0cEmk2dkIX/GM=
-----END EC PRIVATE KEY-----
";
const P384_SEC1_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEtU87u6tsTnPHVEFllud1m1J8nE9dZt5M
qf6AKJln0HKiCOUQerIP34zaMMvNxb/ZaFiJRE0RFW94h/eucGH4W9CdsHrNe+3G
buDfZ+apBi+2+tD3WV/tHBJpNnZCF/xj
-----END PUBLIC KEY-----
";

pub(crate) fn key(seed: u64) -> StaticKey {
    StaticKey::generate(&mut StdRng::seed_from_u64(seed))
}

#[test]
fn private_pem_round_trips() {
    let k = key(1);
    let pem = k.to_pkcs8_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let back = StaticKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(back.public(), k.public());
}

#[test]
fn public_pem_and_bytes_round_trip() {
    let public = key(2).public();
    let pem = public.to_spki_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert_eq!(PublicKey::from_spki_pem(&pem).unwrap(), public);
    let bytes = public.to_bytes();
    assert_eq!(bytes.len(), PUBLIC_KEY_LEN);
    assert_eq!(PublicKey::from_bytes(&bytes).unwrap(), public);
}

#[test]
fn openssl_sec1_private_key_is_accepted() {
    let k = StaticKey::from_pkcs8_pem(P384_SEC1_PEM).unwrap();
    let public = PublicKey::from_spki_pem(P384_SEC1_PUBLIC_PEM).unwrap();
    assert_eq!(k.public(), public);
}

#[test]
fn p256_keys_are_refused_with_the_curve_named() {
    let err = StaticKey::from_pkcs8_pem(P256_PRIVATE_PEM).unwrap_err();
    assert!(matches!(err, KeyError::WrongCurve { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "this is a P-256 (prime256v1) key; udpchat needs P-384 (SECP384R1)"
    );
    let err = PublicKey::from_spki_pem(P256_PUBLIC_PEM).unwrap_err();
    assert!(matches!(err, KeyError::WrongCurve { .. }), "{err:?}");
}

#[test]
fn ed25519_keys_are_refused_with_the_type_named() {
    for err in [
        StaticKey::from_pkcs8_pem(ED25519_PRIVATE_PEM).unwrap_err(),
        PublicKey::from_spki_pem(ED25519_PUBLIC_PEM).unwrap_err(),
    ] {
        assert_eq!(
            err.to_string(),
            "this is a Ed25519 key; udpchat needs an elliptic-curve P-384 (SECP384R1) key"
        );
    }
}

#[test]
fn mixed_up_files_and_garbage_get_clear_errors() {
    let k = key(3);
    assert_eq!(
        PublicKey::from_spki_pem(&k.to_pkcs8_pem()).unwrap_err(),
        KeyError::PrivateNotPublic
    );
    assert_eq!(
        StaticKey::from_pkcs8_pem(&k.public().to_spki_pem()).unwrap_err(),
        KeyError::PublicNotPrivate
    );
    assert_eq!(
        StaticKey::from_pkcs8_pem("hello").unwrap_err(),
        KeyError::NotPem
    );
    assert!(matches!(
        PublicKey::from_spki_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap_err(),
        KeyError::UnsupportedPem { .. }
    ));
    let damaged = k.public().to_spki_pem().replace('A', "*");
    assert!(PublicKey::from_spki_pem(&damaged).is_err());
}

#[test]
fn public_bytes_refuse_other_encodings_and_bad_points() {
    let bytes = key(4).public().to_bytes();
    assert_eq!(
        PublicKey::from_bytes(&bytes[..48]),
        Err(KeyError::InvalidPoint)
    );
    let mut bad_tag = bytes.clone();
    bad_tag[0] = 0x04;
    assert_eq!(PublicKey::from_bytes(&bad_tag), Err(KeyError::InvalidPoint));
    // x = p - 1 is out of range or not on the curve for one of the tags;
    // all-0xff is larger than the field prime.
    let mut not_a_point = vec![0x02];
    not_a_point.extend_from_slice(&[0xff; 48]);
    assert_eq!(
        PublicKey::from_bytes(&not_a_point),
        Err(KeyError::InvalidPoint)
    );
    for refused in [&bytes[..48], &bad_tag[..], &not_a_point[..]] {
        assert_eq!(
            PublicKey::from_bytes_once(refused),
            Err(KeyError::InvalidPoint)
        );
    }
}

#[test]
fn a_key_read_again_is_the_same_key() {
    for seed in 10..20 {
        let public = key(seed).public();
        let bytes = public.to_bytes();
        // The first two reads decode it and keep it; the third finds it.
        for _ in 0..3 {
            assert_eq!(PublicKey::from_bytes(&bytes).unwrap(), public);
        }
        assert_eq!(PublicKey::from_bytes_once(&bytes).unwrap(), public);
    }
}

#[test]
fn a_key_is_kept_from_its_second_read_on() {
    // Each sign-in brings a key the server reads once: those fill nothing.
    // Keys of their own, which no other test reads.
    let keys: Vec<PublicKey> = (0..8)
        .map(|_| StaticKey::generate(&mut rand::rngs::OsRng).public())
        .collect();
    for public in &keys {
        assert_eq!(PublicKey::from_bytes(&public.to_bytes()).unwrap(), *public);
        assert!(!is_cached(public), "a key read once is not kept");
        // Read again while it is remembered, it is kept.
        assert_eq!(PublicKey::from_bytes(&public.to_bytes()).unwrap(), *public);
        assert!(is_cached(public), "a key read twice is kept");
    }
}

#[test]
fn a_one_time_prekey_read_is_checked_but_not_kept_with_the_keys_that_come_again() {
    use crate::crypto::sealed::OneTimePrekey;
    fn encode(value: &impl serde::Serialize) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }
    let (once, again) = (key(31).public(), key(32).public());
    let prekey = OneTimePrekey {
        id: 7,
        public: once.clone(),
    };
    let read: OneTimePrekey = ciborium::from_reader(&encode(&prekey)[..]).unwrap();
    assert_eq!(read, prekey);
    assert!(!is_cached(&once), "a one-time prekey is not kept");
    for _ in 0..2 {
        let read: PublicKey = ciborium::from_reader(&encode(&again)[..]).unwrap();
        assert_eq!(read, again);
    }
    assert!(is_cached(&again), "an identity key read twice is kept");
    // Refused as any other key when it is not a point.
    let mut bad = encode(&prekey);
    let at = bad.len() - 48;
    bad[at..].fill(0xff);
    assert!(ciborium::from_reader::<OneTimePrekey, _>(&bad[..]).is_err());
}

#[test]
fn fingerprint_is_stable_for_a_fixed_key() {
    let public = PublicKey::from_spki_pem(P384_SEC1_PUBLIC_PEM).unwrap();
    let fingerprint = public.fingerprint();
    assert!(fingerprint.starts_with("SHA256:"));
    assert_eq!(fingerprint.len(), 50);
    assert_eq!(fingerprint, FIXED_FINGERPRINT);
    assert_ne!(key(5).public().fingerprint(), fingerprint);
}
/// Cross-checked with `openssl pkey -pubin -outform DER | openssl dgst
/// -sha256 -binary | base64` (which pads with `=`).
const FIXED_FINGERPRINT: &str = "SHA256:T48Z/BL4zOZ8ajabIA0x2IODmNOK5wdpPWnV1sP08g0";

#[test]
fn debug_never_shows_the_secret() {
    let k = key(6);
    let debug = format!("{k:?}");
    assert!(debug.contains("SHA256:"), "{debug}");
    let secret_hex: String = k
        .to_secret_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!debug.contains(&secret_hex));
    assert!(!debug.contains(&format!("{:?}", &k.to_secret_bytes()[..4])));
}

#[test]
fn signatures_verify_and_tampering_fails() {
    let k = key(7);
    let signature = k.sign(b"prekey");
    assert_eq!(signature.len(), SIGNATURE_LEN);
    k.public().verify(b"prekey", &signature).unwrap();
    assert_eq!(
        k.public().verify(b"prekez", &signature),
        Err(KeyError::BadSignature)
    );
    assert_eq!(
        key(8).public().verify(b"prekey", &signature),
        Err(KeyError::BadSignature)
    );
    let mut flipped = signature.clone();
    flipped[10] ^= 1;
    assert_eq!(
        k.public().verify(b"prekey", &flipped),
        Err(KeyError::BadSignature)
    );
    assert_eq!(
        k.public().verify(b"prekey", &signature[..95]),
        Err(KeyError::BadSignature)
    );
}

#[test]
fn public_keys_travel_as_cbor_byte_strings() {
    let public = key(10).public();
    let bytes = crate::cbor::encode(&public);
    // A 49-byte CBOR byte string: major type 2, one-byte length.
    assert_eq!(&bytes[..2], &[0x58, 49]);
    let back: PublicKey = crate::cbor::decode(&bytes, 100).unwrap();
    assert_eq!(back, public);
    let mut bad = bytes.clone();
    bad[2] = 0x04; // the SEC1 tag of an uncompressed point
    assert!(crate::cbor::decode::<PublicKey>(&bad, 100).is_err());
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(text in ".{0,400}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
        let _ = StaticKey::from_pkcs8_pem(&text);
        let _ = PublicKey::from_spki_pem(&text);
        let wrapped = format!("-----BEGIN PUBLIC KEY-----\n{text}\n-----END PUBLIC KEY-----\n");
        let _ = PublicKey::from_spki_pem(&wrapped);
        let _ = PublicKey::from_bytes(&bytes);
        let _ = StaticKey::from_secret_bytes(&bytes);
    }
}

#[test]
fn secret_bytes_round_trip() {
    let k = key(9);
    let back = StaticKey::from_secret_bytes(&k.to_secret_bytes()[..]).unwrap();
    assert_eq!(back.public(), k.public());
    assert!(StaticKey::from_secret_bytes(&[0u8; 48]).is_err());
    assert!(StaticKey::from_secret_bytes(&[1u8; 47]).is_err());
}

#[test]
fn the_public_point_from_the_precomputed_table_is_the_one_the_ecdh_crate_computes() {
    // The public half comes from p384 0.14's table and the ECDH from 0.13
    // (DECISIONS.md): a key whose halves the two disagreed on would make
    // every handshake with it fail. The smallest and largest scalars, and
    // random ones.
    let order_minus_one = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52972";
    let mut edges = [[0u8; SECRET_LEN]; 3];
    edges[0][SECRET_LEN - 1] = 1;
    edges[1][SECRET_LEN - 1] = 2;
    for (i, byte) in edges[2].iter_mut().enumerate() {
        *byte = u8::from_str_radix(&order_minus_one[2 * i..2 * i + 2], 16).unwrap();
    }
    let keys = edges
        .iter()
        .map(|bytes| StaticKey::from_secret_bytes(bytes).unwrap())
        .chain((0..64).map(key));
    for k in keys {
        assert_eq!(k.public_by_table(), Some(k.secret.public_key()));
        assert_eq!(k.public().inner, k.secret.public_key());
    }
}

#[test]
fn signatures_made_through_the_table_are_the_ones_the_other_crate_makes_and_checks() {
    // Signing and checking moved to p384 0.14 (DECISIONS.md): RFC 6979
    // signatures are deterministic, so its signatures must be 0.13's byte
    // for byte, and each crate must accept the other's.
    use p384::ecdsa::signature::{Signer as _, Verifier as _};
    for seed in 0..16 {
        let k = key(seed);
        let msg = format!("line {seed} of a private group");
        let ours = k.sign(msg.as_bytes());
        let theirs: p384::ecdsa::Signature =
            p384::ecdsa::SigningKey::from(&k.secret).sign(msg.as_bytes());
        assert_eq!(ours, theirs.to_bytes().to_vec());
        p384::ecdsa::VerifyingKey::from(&k.public().inner)
            .verify(
                msg.as_bytes(),
                &p384::ecdsa::Signature::from_slice(&ours).unwrap(),
            )
            .unwrap();
        k.public()
            .verify(msg.as_bytes(), &theirs.to_bytes())
            .unwrap();
        assert_eq!(
            key(seed + 100).public().verify(msg.as_bytes(), &ours),
            Err(KeyError::BadSignature)
        );
    }
}

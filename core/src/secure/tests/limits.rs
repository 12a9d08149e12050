//! What one source, and sessions that never sign in, may hold.

use super::*;

#[test]
fn sessions_that_never_sign_in_close_within_a_minute_and_their_number_is_bounded() {
    let now = Instant::now();
    let config = SecureConfig {
        max_unconfirmed: 50,
        calm_handshakes_per_sec: 10_000,
        ..SecureConfig::server()
    };
    let (mut server, key) = server_with(config, now);
    assert_eq!(
        open_sessions(&mut server, &key, now, [10, 0, 0, 1], 1000, 120),
        120
    );
    assert_eq!(server.sessions(), 50, "the oldest bare sessions made room");
    assert_eq!(server.unconfirmed(), 50);

    // One signs in; the rest never do.
    let signed_in = *server.conns.keys().next().unwrap();
    server.confirm(PeerId(signed_in));
    assert_eq!(server.unconfirmed(), 49);
    let later = now + Duration::from_secs(61);
    server.handle_timeout(later, MS + 61_000);
    let later = later + SWEEP_EVERY;
    server.handle_timeout(later, MS + 71_000);
    assert_eq!(server.sessions(), 1);
    assert!(server.peer(PeerId(signed_in)).is_some());

    // Signed out, it goes too, a minute on.
    server.release(later, PeerId(signed_in));
    server.handle_timeout(later + Duration::from_secs(75), MS + 146_000);
    assert_eq!((server.sessions(), server.unconfirmed()), (0, 0));
}

#[test]
fn one_source_holds_a_bounded_number_of_sessions() {
    let now = Instant::now();
    let config = SecureConfig {
        max_sessions_per_source: 5,
        calm_handshakes_per_sec: 10_000,
        ..SecureConfig::server()
    };
    let (mut server, key) = server_with(config, now);
    assert_eq!(
        open_sessions(&mut server, &key, now, [10, 0, 0, 1], 1000, 8),
        5
    );
    assert_eq!(
        open_sessions(&mut server, &key, now, [10, 0, 0, 2], 1000, 2),
        2,
        "another source"
    );
    assert_eq!(server.sessions(), 7);
}

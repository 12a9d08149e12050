//! `udpchat --help` is part of the interface: snapshot it.

use std::process::Command;

#[test]
fn help_snapshot() {
    let out = Command::new(env!("CARGO_BIN_EXE_udpchat"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let expected = include_str!("snapshots/help.txt");
    assert_eq!(
        help, expected,
        "--help changed; if on purpose, update client/tests/snapshots/help.txt"
    );
}

#[test]
fn a_bad_server_address_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_udpchat"))
        .args(["--server", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cannot resolve server address \"nonsense\""),
        "{stderr}"
    );
}

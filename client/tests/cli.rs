//! `udpchat --help` is part of the interface: snapshot it. After a change
//! on purpose, `cargo insta review` (or `INSTA_UPDATE=always cargo test
//! -p udpchat-client --test cli`) updates `snapshots/cli__help.snap`.

use std::process::Command;

#[test]
fn help_snapshot() {
    let out = Command::new(env!("CARGO_BIN_EXE_udpchat"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("help", help);
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

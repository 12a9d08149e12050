//! `udpchat-server --help` is part of the interface: snapshot it. After a
//! change on purpose, `cargo insta review` (or `INSTA_UPDATE=always cargo
//! test -p udpchat-server --test cli`) updates `snapshots/cli__help.snap`.

use std::process::Command;

#[test]
fn help_snapshot() {
    let out = Command::new(env!("CARGO_BIN_EXE_udpchat-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("help", help);
}

#[test]
fn a_port_already_in_use_is_one_clear_line() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_udpchat-server"))
        .args(["--bind", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

//! `udpchat-keygen` as a user runs it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn keygen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_udpchat-keygen"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn makes_a_private_key_only_its_owner_reads_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let made = keygen(&["-g", "server", "--out-dir", out]);
    assert!(made.status.success(), "{made:?}");
    let private = dir.path().join("server.priv");
    let public = dir.path().join("server.pub");
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&public).unwrap().permissions().mode() & 0o777,
        0o644,
        "the public half is for handing out"
    );
    assert!(std::fs::read_to_string(&private)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(&public)
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));

    let again = keygen(&["-g", "server", "--out-dir", out]);
    assert!(!again.status.success());
    let stderr = String::from_utf8(again.stderr).unwrap();
    assert!(
        stderr.contains("server.priv") && stderr.contains("exists"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    let before = std::fs::read(&private).unwrap();
    assert!(keygen(&["-g", "server", "--out-dir", out, "--force"])
        .status
        .success());
    assert_ne!(
        std::fs::read(&private).unwrap(),
        before,
        "--force made a new key"
    );
}

#[test]
fn prints_the_same_fingerprint_as_the_key_pair_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let made = keygen(&["-g", "k", "--out-dir", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8(made.stdout).unwrap();
    let printed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint "))
        .unwrap()
        .to_string();
    let public = dir.path().join("k.pub");
    let fingerprint = keygen(&["--fingerprint", public.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8(fingerprint.stdout).unwrap().trim(),
        printed
    );
    assert!(printed.starts_with("SHA256:"));
}

#[test]
fn a_missing_or_wrong_key_file_is_one_clear_line() {
    let missing = keygen(&["--fingerprint", "/nonexistent/server.pub"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8(missing.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/server.pub"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let p256 = dir.path().join("p256.pub");
    std::fs::write(
        &p256,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq6e3wXQ8S3w4w0pyfTRG1ohv1vqY\nFkuH4U6i8p3dm9nQhz0m4u0t5bMb0p5i1B3w+uTq6Ddj1yLxK7hNnzGZyw==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let wrong = keygen(&["--fingerprint", p256.to_str().unwrap()]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8(wrong.stderr).unwrap();
    assert!(
        stderr.contains("P-384") || stderr.contains("not a"),
        "{stderr}"
    );
}

//! End to end: a scripted run's exit status tells failure from success
//! (the codes `udpchat --help` lists).

use udpchat_tests::{password, Client, Server};

/// Runs `lines`, closes the input and gives the exit status.
fn status_of(mut client: Client, lines: &[&str]) -> Option<i32> {
    for line in lines {
        client.line(line);
    }
    client.finish().0.code()
}

#[test]
fn a_run_that_did_all_it_was_asked_exits_zero() {
    let server = Server::start();
    let _bob = Client::sign_up(server.addr, "bob");
    let alice = Client::sign_up(server.addr, "alice");
    assert_eq!(status_of(alice, &["list", "send bob hi"]), Some(0));
}

#[test]
fn a_failed_command_exits_one() {
    let server = Server::start();
    let alice = Client::sign_up(server.addr, "alice");
    assert_eq!(status_of(alice, &["list", "frobnicate"]), Some(1));
    let alice = Client::sign_in(server.addr, "alice");
    assert_eq!(status_of(alice, &["send nobody-here hi"]), Some(1));
}

#[test]
fn a_failed_sign_in_at_start_exits_three() {
    let server = Server::start();
    let _ = Client::sign_up(server.addr, "alice").finish();
    let wrong = Client::start(server.addr, &["-u", "alice", "-p", "not her password"]);
    assert_eq!(status_of(wrong, &["list"]), Some(3));
    let pw = password("alice");
    let good = Client::start(server.addr, &["-u", "alice", "-p", &pw, "--new-device"]);
    assert_eq!(status_of(good, &["list"]), Some(0));
}

#[test]
fn no_server_answering_exits_four() {
    // A port that is bound, so nothing else takes it, and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let mut alice = Client::start(addr, &["-u", "alice", "-p", &password("alice")]);
    let error = alice.expect("error");
    assert_eq!(error["code"], "unreachable");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("no udpchat server answered"),
        "{error}"
    );
    assert_eq!(status_of(alice, &["list"]), Some(4));
}

#[test]
fn the_seeds_own_invocations_work() {
    // server.py -sp PORT and client.py -u USER -sip IP -sp PORT, as seed B
    // runs them.
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port().to_string()
    };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), "127.0.0.1:4590", &["-sp", &port]);
    assert_eq!(server.addr.port().to_string(), port, "-sp sets the port");
    let client_data = tempfile::tempdir().unwrap();
    let pw = password("Alice");
    let mut client = std::process::Command::new(udpchat_tests::binary("udpchat"))
        .args([
            "-u",
            "Alice",
            "-sip",
            "127.0.0.1",
            "-sp",
            &port,
            "--signup",
            "-p",
            &pw,
        ])
        .arg("--data-dir")
        .arg(client_data.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    client.stdin.take().unwrap().write_all(b"list\n").unwrap();
    let out = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Signed in as Alice"), "{stdout}");
    assert!(stdout.contains("Signed In Users:"), "{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
}

#[test]
fn the_config_file_gives_the_defaults_and_flags_override_it() {
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("config.toml"),
        format!(
            "user = \"hana\"\nserver = \"{}\"\nbell = false\n",
            server.addr
        ),
    )
    .unwrap();
    let run = |args: &[&str], input: &str| {
        let mut child = std::process::Command::new(udpchat_tests::binary("udpchat"))
            .env("XDG_CONFIG_HOME", home.path())
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    // Server and user from the file: only the password is given.
    let pw = password("hana");
    let (status, out) = run(&["--signup", "-p", &pw], "list\n");
    assert!(out.contains("Signed in as hana"), "{out}");
    assert_eq!(status, Some(0), "{out}");

    let (status, shown) = run(&["config", "--colour", "never"], "");
    assert_eq!(status, Some(0));
    let line = |name: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{shown}"))
            .to_string()
    };
    assert!(line("user").contains("\"hana\"") && line("user").ends_with("# config file"));
    assert!(line("bell").contains("false") && line("bell").ends_with("# config file"));
    assert!(line("colour").contains("never") && line("colour").ends_with("# command line"));
    assert!(line("presence_timeout").ends_with("# default"));

    // A flag wins over the file.
    let (status, out) = run(
        &["-u", "ivan", "--signup", "-p", &password("ivan")],
        "list\n",
    );
    assert!(out.contains("Signed in as ivan"), "{out}");
    assert_eq!(status, Some(0));

    // The user's own file comes first, and a mistake in it is one clear line.
    let own = home.path().join("udpchat");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("config.toml"), "sever = \"typo\"\n").unwrap();
    let (status, _) = run(&["config"], "");
    assert_eq!(status, Some(1));
}

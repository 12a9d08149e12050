//! End to end: signing in from a new device is a plain step. The client
//! sees that the server holds another identity key for the account, says
//! what replacing it means, and does it only when confirmed (in the shell)
//! or told to (`--new-device` in scripts). What waited for the other
//! device is summed up in one line.

use udpchat_tests::tmux::{self, Terminal};
use udpchat_tests::{password, Client, Server};

#[test]
fn a_new_device_replaces_the_key_only_when_told_and_sums_up_what_it_cannot_open() {
    let server = Server::start();
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bob = Client::sign_up_on(server.addr, first.path(), "bob");
    assert!(bob.finish().0.success());
    let mut alice = Client::sign_up(server.addr, "alice");
    for text in ["one", "two", "three"] {
        alice.line(&format!("send bob {text}"));
        alice.expect_where("queued", |e| e["to"] == "bob");
    }

    // From a second data dir, without --new-device: refused, nothing done.
    let pw = password("bob");
    let mut refused = Client::start_in(server.addr, second.path(), &["-u", "bob", "-p", &pw]);
    let error = refused.expect("error");
    assert_eq!(error["code"], "new-device", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("this is a new device for bob: contacts will be told your key changed, and messages waiting for your other device cannot be opened here"),
        "{message}"
    );
    assert!(message.contains("--new-device"), "{message}");
    let (status, _) = refused.finish();
    assert_eq!(status.code(), Some(3), "the sign-in at start failed");

    // Told to: the key is replaced, and the three messages sealed for the
    // first device are summed up in one line.
    let mut bob = Client::start_in(
        server.addr,
        second.path(),
        &["-u", "bob", "-p", &pw, "--new-device"],
    );
    bob.expect("new-device");
    bob.expect("signed-in");
    let summary = bob.expect_where("error", |e| e["code"] == "sealed");
    assert!(
        summary["message"]
            .as_str()
            .unwrap()
            .starts_with("3 messages kept for you could not be opened on this device (from alice)"),
        "{summary}"
    );
    bob.line("list");
    bob.expect("users");
    let (status, rest) = bob.finish();
    assert!(status.success());
    let errors = bob_errors(&rest);
    assert!(errors.is_empty(), "one line, not one each: {errors:?}");

    // The first device is now the other one: it is refused in turn.
    let mut back = Client::start_in(server.addr, first.path(), &["-u", "bob", "-p", &pw]);
    assert_eq!(back.expect("error")["code"], "new-device");
}

fn bob_errors(events: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    events.iter().filter(|e| e["event"] == "error").collect()
}

#[test]
fn the_shell_asks_before_using_a_new_device() {
    if !tmux::available() {
        return;
    }
    let server = Server::start();
    let _ = Client::sign_up(server.addr, "bob").finish();
    let data = tempfile::tempdir().unwrap();
    let shell = Terminal::udpchat(server.addr, data.path());
    let signin = format!("signin bob {}", password("bob"));
    shell.type_text(&signin);
    shell.press(&["Enter"]);
    shell.wait_for_text("this is a new device for bob: contacts will be told your key changed");
    shell.wait_for_text("Use this device? [y/N]");
    shell.type_text("n");
    shell.press(&["Enter"]);
    shell.wait_for_text("nothing was changed");
    shell.wait_for_input_line("+>");

    shell.type_text(&signin);
    shell.press(&["Enter"]);
    shell.wait_for("asked again", |screen| {
        screen.matches("Use this device? [y/N]").count() == 2
    });
    shell.type_text("y");
    shell.press(&["Enter"]);
    shell.wait_for_text("Signed in as bob");
    shell.wait_for_input_line("[bob] +>");
}

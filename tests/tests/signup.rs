//! End to end: a new password follows NIST SP 800-63B (at least 8
//! characters, not one of the most common, not the user's name), checked by
//! the client before it asks and by the server whatever a client sends; the
//! shell asks for it twice, and a typo makes no account.

use udpchat_commands::signup::SignUp;
use udpchat_core::context::Zeroizing;
use udpchat_tests::deployment::Deployment;
use udpchat_tests::raw::RawClient;
use udpchat_tests::tmux::{self, Terminal};
use udpchat_tests::{password, Client, Server};

fn refused_signup(server: &Server, user: &str, pw: &str) -> String {
    let mut client = Client::start(server.addr, &["-u", user, "-p", pw, "--signup"]);
    let error = client.expect_any(&["signed-in", "error"]);
    assert_eq!(error["event"], "error", "{error}");
    assert_eq!(error["code"], "bad-password", "{error}");
    error["message"].as_str().unwrap().to_string()
}

#[test]
fn short_common_and_own_name_passwords_make_no_account() {
    let server = Server::start();
    assert!(refused_signup(&server, "dave", "x").contains("at least 8 characters"));
    assert!(refused_signup(&server, "dave", "Password1").contains("most common"));
    assert!(refused_signup(&server, "dave", "iloveyou").contains("most common"));
    assert!(refused_signup(&server, "davedavedave", "DaveDaveDave").contains("user name"));
    // None of them made the account: a good password makes it now.
    let mut dave = Client::start(
        server.addr,
        &["-u", "dave", "-p", "a fine long pass phrase", "--signup"],
    );
    dave.expect("signed-up");
    dave.expect("signed-in");
}

#[test]
fn the_server_refuses_a_weak_password_whatever_the_client() {
    let server = Server::start();
    let raw = RawClient::connect(&server, "127.0.0.1".parse().unwrap());
    let credentials = |pw: &str| udpchat_commands::signin::Credentials {
        user: "erin".into(),
        password: Zeroizing::new(pw.into()),
        identity: raw.identity().public(),
        local: Vec::new(),
        replace_key: None,
    };
    for weak in ["short", "12345678", "trustno1"] {
        let refused = raw.ask::<SignUp>(&credentials(weak)).unwrap_err();
        assert_eq!(refused.code.to_string(), "bad-password", "{weak}");
    }
    assert!(raw.ask::<SignUp>(&credentials(&password("erin"))).is_ok());
}

#[test]
fn the_operator_cannot_give_a_weak_password_either() {
    let deployment = Deployment::sqlite();
    let out = deployment.operator(&["user", "add", "frank"], "qwertyuiop\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("most common"), "{stderr}");
    let out = deployment.operator(&["user", "add", "frank"], &password("frank"));
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_shell_asks_for_a_new_password_twice_and_a_typo_makes_no_account() {
    if !tmux::available() {
        return;
    }
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    let shell = Terminal::udpchat(server.addr, data.path());
    shell.type_text("signup gina");
    shell.press(&["Enter"]);
    shell.wait_for_text("password for gina:");
    shell.type_text("a long pass phrase");
    shell.press(&["Enter"]);
    shell.wait_for_text("again:");
    shell.type_text("a long pass phrasf");
    shell.press(&["Enter"]);
    shell.wait_for_text("the two passwords differ: nothing was done");
    shell.wait_for_input_line("+>");

    shell.type_text("signup gina");
    shell.press(&["Enter"]);
    shell.wait_for("asked again", |screen| {
        screen.matches("password for gina:").count() == 2
    });
    shell.type_text("a long pass phrase");
    shell.press(&["Enter"]);
    shell.wait_for("asked to repeat it", |screen| {
        screen.matches("again:").count() == 2
    });
    shell.type_text("a long pass phrase");
    shell.press(&["Enter"]);
    shell.wait_for_text("Account gina created");
    shell.wait_for_input_line("[gina] +>");
    let screen = shell.screen();
    assert!(
        !screen.contains("a long pass"),
        "no password echoed:\n{screen}"
    );
}

//! The interactive shell in a real terminal (tmux) against a real server:
//! Tab completion, a message arriving while a line is half typed,
//! conversation mode, Ctrl-C and Ctrl-D, history on disk and NO_COLOR.
//! The other participant is a scripted `udpchat --json`. Conversation mode
//! in scripted mode needs no terminal.

use std::path::Path;

use udpchat_tests::tmux::{self, last_line, Terminal};
use udpchat_tests::{binary, password, Client, Server};

/// `udpchat -u USER --signup` in a terminal, with its data in `data_dir`;
/// waits for its signed-in prompt.
fn shell(server: &Server, user: &str, data_dir: &Path, no_color: bool) -> Terminal {
    let udpchat = binary("udpchat");
    let server = server.addr.to_string();
    let data_dir = data_dir.to_str().expect("a UTF-8 temp path");
    let password = password(user);
    let mut args = vec![
        "NO_COLOR=",
        udpchat.to_str().expect("a UTF-8 binary path"),
        "--bind",
        "127.0.0.1:0",
        "--server",
        &server,
        "-u",
        user,
        "-p",
        &password,
        "--signup",
        "--data-dir",
        data_dir,
    ];
    if no_color {
        args[0] = "NO_COLOR=1";
    }
    let terminal = Terminal::run("env", &args);
    terminal.wait_for_input_line(&format!("[{user}] +>"));
    terminal
}

#[test]
fn tab_completes_commands_and_user_names() {
    if !tmux::available() {
        return;
    }
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    let alice = shell(&server, "alice", data.path(), false);
    let mut bob = Client::sign_up(server.addr, "bob");

    alice.type_text("lis");
    alice.press(&["Tab"]);
    alice.wait_for_input_line("[alice] +> list");
    alice.press(&["Enter"]);
    alice.wait_for_text("Signed In Users: bob");

    // `list` told the shell who is online: their names complete.
    alice.type_text("send b");
    alice.press(&["Tab"]);
    alice.wait_for_input_line("[alice] +> send bob");
    alice.type_text("hello from a terminal");
    alice.press(&["Enter"]);
    let message = bob.expect("message");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["text"], "hello from a terminal");
    alice.wait_for_text("delivered to bob");
}

#[test]
fn a_message_arrives_above_a_half_typed_line() {
    if !tmux::available() {
        return;
    }
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    let alice = shell(&server, "alice", data.path(), false);
    let mut bob = Client::sign_up(server.addr, "bob");

    alice.type_text("send bob half a li");
    alice.wait_for_input_line("[alice] +> send bob half a li");
    bob.line("send alice ping from bob");
    bob.expect("delivered");
    let from_bob = format!("<From {}:bob>: ping from bob", bob.addr);
    let screen = alice.wait_for("the message above the half-typed line", |screen| {
        screen.contains(&from_bob) && last_line(screen) == "[alice] +> send bob half a li"
    });
    let shown = screen
        .lines()
        .find(|l| l.contains(&from_bob))
        .expect("the message line");
    assert!(
        is_stamped(shown) && shown.ends_with(&from_bob),
        "a timestamp, then the seed's form: {shown:?}"
    );

    // The half-typed line was not disturbed: finish it and send it.
    alice.type_text("ne");
    alice.press(&["Enter"]);
    let message = bob.expect_where("message", |m| m["from"] == "alice");
    assert_eq!(message["text"], "half a line");
}

#[test]
fn a_flood_and_a_resize_leave_the_typed_line_intact() {
    if !tmux::available() {
        return;
    }
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    let alice = shell(&server, "alice", data.path(), false);
    let mut bob = Client::sign_up(server.addr, "bob");

    alice.type_text("send bob still here");
    alice.wait_for_input_line("[alice] +> send bob still here");
    const FLOOD: usize = 200;
    for n in 0..FLOOD {
        bob.line(&format!("send alice flood {n:03}"));
        if n == FLOOD / 2 {
            alice.resize(60, 20);
        }
    }
    let last = format!("flood {:03}", FLOOD - 1);
    let screen = alice.wait_for("every message, then the typed line", |screen| {
        screen.contains(&last) && last_line(screen) == "[alice] +> send bob still here"
    });
    for n in 0..FLOOD {
        let line = format!("<From {}:bob>: flood {n:03}", bob.addr);
        assert_eq!(
            screen.lines().filter(|l| l.ends_with(&line)).count(),
            1,
            "{line:?} once in:\n{screen}"
        );
    }
    assert_eq!(
        screen.matches("send bob still here").count(),
        1,
        "no stale copies of the typed line:\n{screen}"
    );
    alice.press(&["Enter"]);
    let message = bob.expect_where("message", |m| m["from"] == "alice");
    assert_eq!(message["text"], "still here");
}

#[test]
fn conversation_mode_sends_plain_lines_until_leave() {
    if !tmux::available() {
        return;
    }
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    let alice = shell(&server, "alice", data.path(), false);
    let mut bob = Client::sign_up(server.addr, "bob");

    alice.type_text("chat bob");
    alice.press(&["Enter"]);
    alice.wait_for_input_line("[alice -> bob] >");
    alice.type_text("hi bob, just typing");
    alice.press(&["Enter"]);
    let message = bob.expect("message");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["text"], "hi bob, just typing");

    // The partner's lines read like the seed's chat.
    bob.line("send alice Hey");
    alice.wait_for("bob's line as `[bob] Hey`", |screen| {
        screen
            .lines()
            .any(|l| is_stamped(l) && l.ends_with(" [bob] Hey"))
    });

    // Commands still work behind a `/`; Ctrl-C clears a line.
    alice.type_text("/list");
    alice.press(&["Enter"]);
    alice.wait_for_text("Signed In Users: bob");
    alice.type_text("never sent");
    alice.wait_for_input_line("[alice -> bob] > never sent");
    alice.press(&["C-c"]);
    alice.wait_for_input_line("[alice -> bob] >");

    // Ctrl-D leaves the conversation, a second one the client.
    alice.press(&["C-d"]);
    alice.wait_for_text("Left the conversation with bob");
    alice.wait_for_input_line("[alice] +>");
    alice.type_text("exit");
    alice.press(&["Enter"]);
    alice.wait_for_text("Goodbye");
    let status = alice.wait_for_exit();
    assert!(matches!(status, None | Some(0)), "exit status {status:?}");

    bob.line("list");
    let users = bob.expect("users");
    assert_eq!(users["users"], serde_json::json!([]), "alice signed out");
    assert!(
        !bob.seen
            .iter()
            .any(|e| e["event"] == "message" && e["text"] == "never sent"),
        "Ctrl-C sent nothing"
    );

    let history = std::fs::read_to_string(data.path().join("history/alice.txt")).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines,
        ["chat bob", "hi bob, just typing", "/list", "exit"],
        "alice's history"
    );
}

#[test]
fn no_color_means_no_colour() {
    if !tmux::available() {
        return;
    }
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    let plain = shell(&server, "alice", data.path(), true);
    let coloured = shell(&server, "carole", data.path(), false);
    let mut bob = Client::sign_up(server.addr, "bob");
    bob.line("send alice plain please");
    bob.line("send carole colour please");
    plain.wait_for_text("plain please");
    coloured.wait_for_text("colour please");
    assert!(
        !plain.screen_with_escapes().contains("\u{1b}["),
        "{:?}",
        plain.screen_with_escapes()
    );
    assert!(coloured.screen_with_escapes().contains("\u{1b}["));
}

/// Conversation mode works in scripted mode too (no terminal needed).
#[test]
fn scripted_conversation_mode() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");

    alice.line("chat bob");
    let started = alice.expect("conversation");
    assert_eq!(started["with"], "bob");
    alice.line("how r u?");
    alice.line("//slash at the start");
    assert_eq!(bob.expect("message")["text"], "how r u?");
    assert_eq!(bob.expect("message")["text"], "/slash at the start");
    alice.line("/leave");
    let left = alice.expect("conversation");
    assert_eq!(left["with"], serde_json::Value::Null);
    assert_eq!(left["left"], "bob");
    alice.line("how r u?");
    let error = alice.expect("error");
    assert_eq!(error["code"], "unknown-command");
    alice.line("chat alice");
    assert_eq!(alice.expect("error")["code"], "usage");
}

/// `HH:MM ` at the start of a line.
fn is_stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 6
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b':'
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
}

#[test]
fn a_message_in_another_conversation_is_a_notice_counted_in_the_prompt() {
    if !tmux::available() {
        return;
    }
    let server = Server::start();
    let data = tempfile::tempdir().unwrap();
    let alice = shell(&server, "alice", data.path(), true);
    let _bob = Client::sign_up(server.addr, "bob");
    let mut carole = Client::sign_up(server.addr, "carole");

    alice.type_text("chat bob");
    alice.press(&["Enter"]);
    alice.wait_for_input_line("[alice -> bob] >");
    carole.line(
        "send alice lunch at noon? there is a new place by the river, the one with the long queue",
    );
    carole.expect_where("delivered", |e| e["to"] == "alice");
    let screen = alice.wait_for("carole's line as a one-line notice", |screen| {
        screen.lines().any(|l| {
            is_stamped(l)
                && l.contains(" carole: lunch at noon? there is a new place by the river, the one wi… (unread: /chat carole)")
        })
    });
    assert!(!screen.contains("<From"), "not shown whole:\n{screen}");
    alice.wait_for_input_line("[alice -> bob 1 unread] >");

    // Opening carole's conversation shows the line, and reads it.
    alice.type_text("/chat carole");
    alice.press(&["Enter"]);
    alice.wait_for_text(
        "<carole> lunch at noon? there is a new place by the river, the one with the long queue",
    );
    alice.wait_for_input_line("[alice -> carole] >");
}

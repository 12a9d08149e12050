//! A real terminal for the interactive client: a program runs inside a tmux
//! session on a tmux server of its own (`tmux -L`, so tests never share
//! one), keys go in with `send-keys`, and the screen comes back with
//! `capture-pane`. Waiting polls the screen until the expected text is
//! there, bounded by [`FAILSAFE`](crate::FAILSAFE).

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::FAILSAFE;

/// Columns and rows of the terminal.
const SIZE: (&str, &str) = ("100", "40");

/// One tmux server with one session running one program.
pub struct Terminal {
    socket: String,
}

/// Whether the terminal tests can run: tmux is installed. Outside CI a
/// missing tmux skips them (saying so); in CI (`CI` set) it is a failure,
/// since `.ci/run` installs it.
pub fn available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is not installed, and CI is set: .ci/run should have installed it"
        );
        eprintln!(
            "SKIPPED: tmux is not installed; the shell's terminal tests need it \
             (`apt-get install tmux`, as .ci/run does)"
        );
    }
    found
}

impl Terminal {
    /// The interactive client against `server`, signed in as no one, with
    /// its data in `data_dir` and no colour; waits for its first prompt.
    pub fn udpchat(server: std::net::SocketAddr, data_dir: &std::path::Path) -> Terminal {
        let udpchat = crate::binary("udpchat");
        let server = server.to_string();
        let home = data_dir.join("no-config-home");
        let terminal = Terminal::run(
            "env",
            &[
                "NO_COLOR=1",
                &format!("XDG_CONFIG_HOME={}", home.display()),
                udpchat.to_str().expect("a UTF-8 binary path"),
                "--bind",
                "127.0.0.1:0",
                "--server",
                &server,
                "--data-dir",
                data_dir.to_str().expect("a UTF-8 temp path"),
            ],
        );
        terminal.wait_for_input_line("+>");
        terminal
    }

    /// Runs `program args...` in a fresh terminal. The pane stays after the
    /// program exits, so its exit status can be read.
    pub fn run(program: &str, args: &[&str]) -> Terminal {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "udpchat-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let terminal = Terminal { socket };
        let mut command = vec![
            "-f",
            "/dev/null",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-s",
            "shell",
            "-x",
            SIZE.0,
            "-y",
            SIZE.1,
            program,
        ];
        command.extend_from_slice(args);
        terminal.tmux(&command);
        terminal
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Types text as it is (no key names).
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "shell", "-l", text]);
    }

    /// Presses keys by tmux name: `Tab`, `Enter`, `C-c`, `C-d`...
    pub fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "shell"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Resizes the terminal, as a user dragging its window would.
    pub fn resize(&self, columns: u16, rows: u16) {
        let (columns, rows) = (columns.to_string(), rows.to_string());
        self.tmux(&["resize-window", "-t", "shell", "-x", &columns, "-y", &rows]);
    }

    /// The screen and its scrollback as text.
    pub fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-S", "-", "-t", "shell"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen with its colours and attributes as escape sequences.
    pub fn screen_with_escapes(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-e", "-S", "-", "-t", "shell"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `test` holds for the screen; returns that screen.
    pub fn wait_for(&self, what: &str, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + FAILSAFE;
        loop {
            let screen = self.screen();
            if test(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {what} within {FAILSAFE:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until some line on screen holds `text`.
    pub fn wait_for_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), |screen| screen.contains(text))
    }

    /// Waits until the line with the cursor (the last one that is not
    /// blank) is exactly `line`, trailing spaces aside.
    pub fn wait_for_input_line(&self, line: &str) -> String {
        self.wait_for(&format!("the input line {line:?}"), |screen| {
            last_line(screen) == line.trim_end()
        })
    }

    /// Waits for the program to exit (its terminal closed); returns its
    /// exit status when tmux knows it. tmux marks the pane dead when the
    /// terminal closes but learns the status only once it reaps the
    /// process, which it sometimes leaves undone.
    pub fn wait_for_exit(&self) -> Option<i32> {
        let deadline = Instant::now() + FAILSAFE;
        loop {
            let out = self.tmux(&[
                "display-message",
                "-p",
                "-t",
                "shell",
                "#{pane_dead} #{pane_dead_status}",
            ]);
            let shown = String::from_utf8_lossy(&out.stdout);
            let mut fields = shown.split_whitespace();
            if fields.next() == Some("1") {
                return fields.next().map(|s| s.parse().expect("an exit status"));
            }
            assert!(
                Instant::now() < deadline,
                "the program did not exit within {FAILSAFE:?}; the terminal shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The last line that is not blank, trailing spaces trimmed.
pub fn last_line(screen: &str) -> &str {
    screen
        .lines()
        .map(str::trim_end)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

//! The two ways of reading commands: the interactive shell (reedline, with
//! incoming events printed above the line being typed) and scripted mode
//! (one command per stdin line).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reedline::{ExternalPrinter, Prompt, PromptEditMode, PromptHistorySearch, Reedline, Signal};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use udpchat_core::context::Client;
use udpchat_core::output::Output;

use crate::dispatch::run_line;
use crate::render::Printed;
use crate::state::ClientState;

/// How long the client waits for outstanding deliveries before leaving.
const SETTLE: Duration = Duration::from_secs(30);

/// Scripted mode: runs each stdin line; at end of input waits (bounded) for
/// outstanding deliveries, signs out and returns.
pub async fn scripted(client: Client, state: Arc<ClientState>, user: Option<String>) {
    if let Some(user) = user {
        run_line(&client, &format!("signin {user}")).await;
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while !state.quitting() {
        match lines.next_line().await {
            Ok(Some(line)) => run_line(&client, &line).await,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("stdin: {e}");
                break;
            }
        }
    }
    leave(&client, &state).await;
}

/// Waits for deliveries, signs out, and makes sure everything is printed.
async fn leave(client: &Client, state: &ClientState) {
    state.settle(SETTLE).await;
    if let Err(e) = udpchat_commands::logout::sign_out(client).await {
        client.emit(Output::error(&e));
    }
    state.printer().flush().await;
}

/// The interactive shell.
pub async fn interactive(
    client: Client,
    state: Arc<ClientState>,
    user: Option<String>,
    mut outputs: mpsc::UnboundedReceiver<Printed>,
) -> anyhow::Result<()> {
    let printer = ExternalPrinter::<String>::new(1024);
    let above_prompt = printer.sender();
    let editing = Arc::new(AtomicBool::new(false));

    // Events go above the line being typed while the editor is reading, and
    // straight to stdout while a command runs (no line is being typed then).
    let editing_now = editing.clone();
    std::thread::spawn(move || {
        while let Some(printed) = outputs.blocking_recv() {
            match printed {
                Printed::Line(line) if editing_now.load(Ordering::SeqCst) => {
                    let _ = above_prompt.send(line);
                }
                Printed::Line(line) => println!("{line}"),
                Printed::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    });

    if let Some(user) = user {
        run_line(&client, &format!("signin {user}")).await;
    }

    let (lines_tx, mut lines) =
        mpsc::unbounded_channel::<(String, std::sync::mpsc::Sender<bool>)>();
    let prompt = ChatPrompt {
        client: client.clone(),
    };
    let editor_thread = std::thread::spawn(move || {
        let mut editor = Reedline::create().with_external_printer(printer);
        loop {
            editing.store(true, Ordering::SeqCst);
            let signal = editor.read_line(&prompt);
            editing.store(false, Ordering::SeqCst);
            let line = match signal {
                Ok(Signal::Success(line)) => line,
                Ok(Signal::CtrlD) => "exit".to_string(),
                Ok(_) => continue, // Ctrl-C clears the line
                Err(e) => {
                    eprintln!("terminal error: {e}");
                    "exit".to_string()
                }
            };
            let (ack, done) = std::sync::mpsc::channel();
            if lines_tx.send((line, ack)).is_err() {
                return;
            }
            // Wait for the command so its output lands before the prompt.
            match done.recv() {
                Ok(true) => {}
                _ => return,
            }
        }
    });

    while let Some((line, ack)) = lines.recv().await {
        run_line(&client, &line).await;
        state.printer().flush().await;
        let _ = ack.send(!state.quitting());
        if state.quitting() {
            break;
        }
    }
    let _ = tokio::task::spawn_blocking(move || editor_thread.join()).await;
    leave(&client, &state).await;
    Ok(())
}

/// `[alice] +> `, or `+> ` before signing in, as in the seeds.
struct ChatPrompt {
    client: Client,
}

impl Prompt for ChatPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        match &self.client.session().lock().expect("session lock").user {
            Some(user) => Cow::Owned(format!("[{user}] ")),
            None => Cow::Borrowed(""),
        }
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("+> ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        Cow::Owned(format!("(search: {}) ", search.term))
    }
}

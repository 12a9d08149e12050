//! The two ways of reading commands: the interactive shell (reedline on its
//! own thread, with completion, hints, colouring, per-user history and
//! incoming events printed above the line being typed) and scripted mode
//! (one command per stdin line). Both understand conversation mode.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nu_ansi_term::{Color, Style};
use reedline::{
    default_emacs_keybindings, ColumnarMenu, DefaultHinter, Emacs, ExternalPrinter, HistoryItem,
    KeyCode, KeyModifiers, MenuBuilder, Reedline, ReedlineError, ReedlineErrorVariants,
    ReedlineEvent, ReedlineMenu, Signal,
};
use tokio::sync::mpsc;
use udpchat_core::context::Client;
use udpchat_core::output::Output;
use udpchat_core::registry::Registry;

pub mod completion;
pub mod conversation;
pub mod highlight;
pub mod history;
pub mod prompt;
pub mod roster;
pub mod style;

use crate::dispatch::run_line;
use crate::render::Printed;
use crate::state::ClientState;
use completion::ChatCompleter;
use highlight::ChatHighlighter;
use history::ChatHistory;
use prompt::ChatPrompt;
use style::{Look, Moment};

/// Scripted mode: runs each stdin line; at end of input waits (bounded) for
/// outstanding deliveries, signs out and returns.
pub async fn scripted(client: Client, state: Arc<ClientState>, lines: crate::state::InputLines) {
    while !state.quitting() {
        let next = lines.lock().await.next_line().await;
        match next {
            Ok(Some(line)) => run_typed(&client, &state, &line).await,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("stdin: {e}");
                break;
            }
        }
    }
    leave(&client, &state).await;
}

/// Runs one typed line: a command, or in conversation mode a message to
/// the partner (see `conversation`). A failure is shown, and counted for
/// the exit status (see `outcome`).
async fn run_typed(client: &Client, state: &ClientState, line: &str) {
    let conversation = client.conversation();
    let command = crate::shell::conversation::command_line(
        line,
        conversation.as_deref(),
        &state.printer().roster().lock(),
    );
    if let Some(command) = command {
        if let Err(e) = run_line(client, &command).await {
            client.emit(Output::error(&e));
            state.printer().outcome().command_failed(&e);
        }
    }
    // A conversation needs someone signed in: signing out ends it.
    let mut session = client.session().lock();
    if session.user.is_none() {
        session.conversation = None;
    }
}

/// Finishes deliveries, signs out, stops taking in messages and shows
/// those taken in, and makes sure everything is printed.
async fn leave(client: &Client, state: &ClientState) {
    if let Err(e) = udpchat_commands::logout::sign_out(client).await {
        client.emit(Output::error(&e));
    }
    state.stop_receiving().await;
    state.printer().flush().await;
}

/// The interactive shell. History lives in `data_dir`; `bell`: a direct
/// message from someone the conversation on is not with rings the
/// terminal's bell; `colour`: when to colour.
pub async fn interactive(
    client: Client,
    state: Arc<ClientState>,
    outputs: mpsc::UnboundedReceiver<Printed>,
    data_dir: PathBuf,
    bell: bool,
    colour: crate::config::Colour,
) -> anyhow::Result<()> {
    let look = Look::detect(colour);
    let printer = ExternalPrinter::<String>::new(1024);
    let editing = Arc::new(AtomicBool::new(false));
    spawn_screen(
        client.clone(),
        look,
        outputs,
        printer.sender(),
        editing.clone(),
        bell,
    );

    // What happened before the first prompt is not above a typed line.
    state.printer().flush().await;

    let (lines_tx, mut lines) =
        mpsc::unbounded_channel::<(String, std::sync::mpsc::Sender<bool>)>();
    let shell = Shell {
        registry: Registry::global(),
        client: client.clone(),
        state: state.clone(),
        look,
        data_dir,
    };
    let editor_thread = std::thread::spawn(move || {
        let mut owner = shell.user();
        let mut editor = shell.editor(printer, &owner);
        let prompt = ChatPrompt {
            client: shell.client.clone(),
        };
        loop {
            editing.store(true, Ordering::SeqCst);
            let signal = editor.read_line(&prompt);
            editing.store(false, Ordering::SeqCst);
            shell.forget_password(&mut editor);
            let in_conversation = shell.client.conversation().is_some();
            let line = match signal {
                Ok(Signal::Success(line)) => line,
                // Ctrl-D leaves a conversation, then the client.
                Ok(Signal::CtrlD) if in_conversation => "/leave".to_string(),
                Ok(Signal::CtrlD) => "exit".to_string(),
                Ok(_) => continue, // Ctrl-C clears the line
                Err(e) => {
                    eprintln!("terminal error: {e}");
                    let slash = if in_conversation { "/" } else { "" };
                    format!("{slash}exit")
                }
            };
            let (ack, done) = std::sync::mpsc::channel();
            if lines_tx.send((line, ack)).is_err() {
                return;
            }
            // Wait for the command so its output lands before the prompt.
            if done.recv() != Ok(true) {
                return;
            }
            if let Err(e) = editor.sync_history() {
                tracing::warn!("cannot save history: {e}");
            }
            let user = shell.user();
            if user != owner {
                editor = editor.with_history(Box::new(shell.history(&user)));
                owner = user;
            }
        }
    });

    while let Some((line, ack)) = lines.recv().await {
        run_typed(&client, &state, &line).await;
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

/// Prints events: above the line being typed while the editor reads (with
/// the time they arrived), straight to stdout while a command runs (no line
/// is being typed then); rings the bell for a direct message (see
/// [`style::rings`]) if `bell`.
fn spawn_screen(
    client: Client,
    look: Look,
    mut outputs: mpsc::UnboundedReceiver<Printed>,
    above_prompt: std::sync::mpsc::SyncSender<String>,
    editing: Arc<AtomicBool>,
    bell: bool,
) {
    std::thread::spawn(move || {
        while let Some(printed) = outputs.blocking_recv() {
            let typing = editing.load(Ordering::SeqCst);
            let line = match printed {
                Printed::Line(line) => line,
                Printed::Event(output) => {
                    let conversation = client.conversation();
                    let moment = Moment {
                        time: &style::now(),
                        above_prompt: typing,
                        conversation: conversation.as_deref(),
                    };
                    match look.show(&output, moment) {
                        Some(line) if bell && style::rings(&output, conversation.as_deref()) => {
                            format!("{}{line}", style::BELL)
                        }
                        Some(line) => line,
                        None => continue,
                    }
                }
                Printed::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            if typing {
                let _ = above_prompt.send(line);
            } else {
                println!("{line}");
            }
        }
    });
}

/// What the editor thread needs.
struct Shell {
    registry: &'static Registry,
    client: Client,
    state: Arc<ClientState>,
    look: Look,
    data_dir: PathBuf,
}

impl Shell {
    fn user(&self) -> Option<String> {
        self.client.session().lock().user.clone()
    }

    fn history(&self, user: &Option<String>) -> ChatHistory {
        let client = self.client.clone();
        ChatHistory::open(
            history::file(&self.data_dir, user.as_deref()),
            self.registry,
            Box::new(move || client.conversation().is_some()),
        )
    }

    fn editor(&self, printer: ExternalPrinter<String>, user: &Option<String>) -> Reedline {
        let mut keybindings = default_emacs_keybindings();
        keybindings.add_binding(
            KeyModifiers::NONE,
            KeyCode::Tab,
            ReedlineEvent::UntilFound(vec![
                ReedlineEvent::Menu("completion_menu".to_string()),
                ReedlineEvent::MenuNext,
            ]),
        );
        keybindings.add_binding(
            KeyModifiers::SHIFT,
            KeyCode::BackTab,
            ReedlineEvent::MenuPrevious,
        );
        let completer = ChatCompleter {
            registry: self.registry,
            client: self.client.clone(),
            roster: self.state.printer().roster().clone(),
            look: self.look,
        };
        let highlighter = ChatHighlighter {
            registry: self.registry,
            client: self.client.clone(),
            roster: self.state.printer().roster().clone(),
        };
        let editor = Reedline::create()
            .with_history(Box::new(self.history(user)))
            .with_completer(Box::new(completer))
            .with_menu(ReedlineMenu::EngineCompleter(Box::new(
                ColumnarMenu::default().with_name("completion_menu"),
            )))
            .with_quick_completions(true)
            .with_partial_completions(true)
            .with_highlighter(Box::new(highlighter))
            .with_edit_mode(Box::new(Emacs::new(keybindings)))
            .with_ansi_colors(self.look.colour())
            .with_external_printer(printer);
        if self.look.colour() {
            // Without colour a hint could not be told from typed text.
            editor.with_hinter(Box::new(
                DefaultHinter::default().with_style(Style::new().italic().fg(Color::DarkGray)),
            ))
        } else {
            editor
        }
    }

    /// A line the history refused (it holds a password) can still be
    /// recalled with the up arrow: without its password.
    fn forget_password(&self, editor: &mut Reedline) {
        match editor.take_history_save_error() {
            None => {}
            Some(ReedlineError(ReedlineErrorVariants::OtherHistoryError(why)))
                if why == history::REFUSED =>
            {
                let registry = self.registry;
                let _ = editor.update_last_command_context(&|item| HistoryItem {
                    command_line: history::without_password(registry, &item.command_line),
                    ..item
                });
            }
            // A stray word (a password typed at the wrong prompt?) is
            // simply not kept.
            Some(ReedlineError(ReedlineErrorVariants::OtherHistoryError(why)))
                if why == history::NOT_A_COMMAND => {}
            Some(e) => tracing::warn!("history: {e}"),
        }
    }
}

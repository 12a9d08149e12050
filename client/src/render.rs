//! How events reach the user: a line of text, or a JSON object per line.
//! What they say also keeps the shell's names up to date and the run's
//! exit status (see `outcome`).
//!
//! Every event passes through [`Printer::emit`], which is where what came
//! from elsewhere is made harmless for a terminal, once for every printer:
//! a text event is [cleaned](Output::cleaned) before the scripted printer or
//! the interactive shell sees it; a JSON line escapes every control
//! character ([`Output::to_json`]).

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use udpchat_core::output::Output;

use crate::outcome::Outcome;
use crate::shell::roster::Roster;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What travels to the printing side.
#[derive(Debug)]
pub enum Printed {
    /// A finished line (JSON mode).
    Line(String),
    /// An event for the text renderer, already cleaned: scripted mode
    /// prints its text, the interactive shell decorates it (see `style`).
    Event(Output),
    /// Answered once every earlier line is written.
    Flush(oneshot::Sender<()>),
}

/// The sending side: commands emit here, from any task. What it prints
/// also keeps the names the shell completes up to date (see
/// [`Roster::observe`]).
#[derive(Debug, Clone)]
pub struct Printer {
    format: Format,
    lines: mpsc::UnboundedSender<Printed>,
    roster: Arc<Mutex<Roster>>,
    outcome: Arc<Outcome>,
}

impl Printer {
    pub fn new(format: Format) -> (Printer, mpsc::UnboundedReceiver<Printed>) {
        let (lines, rx) = mpsc::unbounded_channel();
        let roster = Arc::new(Mutex::new(Roster::default()));
        (
            Printer {
                format,
                lines,
                roster,
                outcome: Arc::default(),
            },
            rx,
        )
    }

    /// The users and groups the shell completes (shared with its thread).
    pub fn roster(&self) -> &Arc<Mutex<Roster>> {
        &self.roster
    }

    /// What the run's exit status will be (see `outcome`).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    pub fn emit(&self, output: Output) {
        self.roster.lock().observe(&output);
        self.outcome.observe(&output);
        let printed = match self.format {
            Format::Text => Printed::Event(output.cleaned()),
            Format::Json => Printed::Line(output.to_json()),
        };
        let _ = self.lines.send(printed);
    }

    /// Waits until everything emitted so far is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.lines.send(Printed::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// Lines gathered into one write at most (a backlog of lines goes out in
/// writes of about this size, not one write per line).
const WRITE_BATCH: usize = 64 * 1024;

/// Writes every line to stdout (scripted mode): whatever is queued when
/// the last write ends goes in the next one, so a burst of events costs a
/// few writes, not one (and a hop to tokio's blocking pool) per line.
pub async fn print_lines(mut lines: mpsc::UnboundedReceiver<Printed>) {
    use tokio::io::AsyncWriteExt;
    let mut stdout = tokio::io::stdout();
    let mut batch = Vec::new();
    let mut flushed = Vec::new();
    while let Some(first) = lines.recv().await {
        let mut next = Some(first);
        while let Some(printed) = next.take() {
            match printed {
                Printed::Line(line) | Printed::Event(Output { text: line, .. }) => {
                    batch.extend_from_slice(line.as_bytes());
                    batch.push(b'\n');
                }
                Printed::Flush(done) => flushed.push(done),
            }
            if batch.len() < WRITE_BATCH {
                next = lines.try_recv().ok();
            }
        }
        if !batch.is_empty()
            && (stdout.write_all(&batch).await.is_err() || stdout.flush().await.is_err())
        {
            return;
        }
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "\u{1b}]0;pwned\u{7} \u{1b}[2J \u{9b}2J";

    fn message() -> Output {
        Output::new("message", format!("<From 10.0.0.7:5000:bob>: {HOSTILE}"))
            .with("from", "bob")
            .with("addr", "10.0.0.7:5000")
            .with("text", HOSTILE)
    }

    #[test]
    fn a_text_event_reaches_the_printers_cleaned() {
        let (printer, mut printed) = Printer::new(Format::Text);
        printer.emit(message());
        let Ok(Printed::Event(output)) = printed.try_recv() else {
            panic!("no event printed");
        };
        assert_eq!(
            output.text,
            "<From 10.0.0.7:5000:bob>: \u{FFFD}]0;pwned\u{FFFD} \u{FFFD}[2J \u{FFFD}2J"
        );
        assert_eq!(
            output.data["text"],
            "\u{FFFD}]0;pwned\u{FFFD} \u{FFFD}[2J \u{FFFD}2J"
        );
    }

    #[test]
    fn a_json_line_carries_no_raw_control_character() {
        let (printer, mut printed) = Printer::new(Format::Json);
        printer.emit(message());
        let Ok(Printed::Line(line)) = printed.try_recv() else {
            panic!("no line printed");
        };
        assert!(!line.contains(char::is_control), "{line:?}");
        assert!(line.contains(r"\u009b2J"), "{line}");
    }
}

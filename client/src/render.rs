//! How events reach the user: a line of text, or a JSON object per line.

use tokio::sync::{mpsc, oneshot};
use udpchat_core::output::Output;

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
    /// An event for the text renderer: scripted mode prints its text, the
    /// interactive shell decorates it (see `style`).
    Event(Output),
    /// Answered once every earlier line is written.
    Flush(oneshot::Sender<()>),
}

/// The sending side: commands emit here, from any task.
#[derive(Debug, Clone)]
pub struct Printer {
    format: Format,
    lines: mpsc::UnboundedSender<Printed>,
}

impl Printer {
    pub fn new(format: Format) -> (Printer, mpsc::UnboundedReceiver<Printed>) {
        let (lines, rx) = mpsc::unbounded_channel();
        (Printer { format, lines }, rx)
    }

    pub fn emit(&self, output: Output) {
        let printed = match self.format {
            Format::Text => Printed::Event(output),
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

/// Writes every line to stdout (scripted mode).
pub async fn print_lines(mut lines: mpsc::UnboundedReceiver<Printed>) {
    use tokio::io::AsyncWriteExt;
    let mut stdout = tokio::io::stdout();
    while let Some(printed) = lines.recv().await {
        match printed {
            Printed::Line(line) | Printed::Event(Output { text: line, .. }) => {
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                if stdout.write_all(&bytes).await.is_err() || stdout.flush().await.is_err() {
                    return;
                }
            }
            Printed::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

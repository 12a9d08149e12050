//! `unread`: the conversations with lines that came while the user was
//! talking to someone else (in `chat`), with how many and the newest; the
//! prompt counts them (`[alice 2 unread] +> `). Opening one (`chat`,
//! `history`) reads them.

use udpchat_core::args::Args;
use udpchat_core::context::Client;
use udpchat_core::error::CommandError;
use udpchat_core::history::Unread;
use udpchat_core::output::{one_line, Output};
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

/// `unread`: the shell command.
pub struct ShowUnread;

register! {
    Command::new("unread", "List the conversations with messages you have not read.")
        .examples(&["unread"])
        .shell::<ShowUnread>()
}

impl Shell for ShowUnread {
    async fn run(client: Client, _: Args) -> Result<(), CommandError> {
        let unread = client.history().unread()?;
        client.emit(render(&unread, "No unread messages"));
        Ok(())
    }
}

/// Tells the user who just signed in of what they left unread (nothing
/// when there is none).
pub fn at_sign_in(client: &Client) {
    // Signed out again meanwhile (the server went): nothing to say.
    if client.user().is_err() {
        return;
    }
    match client.history().unread() {
        Ok(unread) if !unread.is_empty() => {
            client.emit(render(&unread, ""));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("history: {}", e.message),
    }
}

/// The longest part of the newest line shown.
const PREVIEW: usize = 60;

/// `carole: 2 unread, the last at 20:31: <carole> lunch?` per conversation.
fn render(unread: &[Unread], none: &str) -> Output {
    let text = if unread.is_empty() {
        none.to_string()
    } else {
        let mut lines = vec![format!(
            "Unread in {} conversation{} (chat or history opens one):",
            unread.len(),
            if unread.len() == 1 { "" } else { "s" }
        )];
        lines.extend(unread.iter().map(|u| {
            let last = u.last.as_ref().map_or(String::new(), |l| {
                format!(
                    ", the last at {}: <{}> {}",
                    crate::history::when(l.time_ms),
                    l.from,
                    one_line(&l.text, PREVIEW)
                )
            });
            format!("  {}: {} unread{last}", u.conversation, u.count)
        }));
        lines.join("\n")
    };
    let conversations: Vec<serde_json::Value> = unread
        .iter()
        .map(|u| {
            serde_json::json!({
                "with": u.conversation.name(),
                "kind": u.conversation.kind(),
                "count": u.count,
            })
        })
        .collect();
    Output::new("unread", text).with("conversations", conversations)
}

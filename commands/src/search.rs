//! `search <words...>`: the newest lines (20 at most) of any conversation
//! kept on this client that hold every one of the words, oldest first.

use udpchat_core::args::{Arg, Args};
use udpchat_core::context::Client;
use udpchat_core::error::CommandError;
use udpchat_core::history::Kept;
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

use crate::history::{line_json, line_text, DEFAULT_LINES};

/// `search`: the shell command.
pub struct Search;

register! {
    Command::new("search", "Find the lines of your conversations that hold all these words.")
        .args(&[Arg::text("words")])
        .examples(&["search lunch", "search meeting friday"])
        .shell::<Search>()
}

impl Shell for Search {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let words: Vec<&str> = args.rest(0).split_whitespace().collect();
        let found = client.history().search(&words, DEFAULT_LINES)?;
        client.emit(render(&words, &found));
        Ok(())
    }
}

/// `[bob] 20:31 <bob> lunch at noon?`, one line per match.
fn render(words: &[&str], found: &[Kept]) -> Output {
    let text = if found.is_empty() {
        format!("Nothing found for {}", words.join(" "))
    } else {
        found
            .iter()
            .map(|k| format!("[{}] {}", k.line.conversation, line_text(k)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Output::new("search", text)
        .with(
            "words",
            words.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        )
        .with(
            "lines",
            found.iter().map(|k| line_json(k, true)).collect::<Vec<_>>(),
        )
}

//! Colouring of the line being typed: the command word green when it is a
//! command, red when it cannot become one; names of users the roster knows
//! in their own colour. In conversation mode a plain line is a message and
//! stays plain.

use std::sync::Arc;

use nu_ansi_term::{Color, Style};
use parking_lot::Mutex;
use reedline::{Highlighter, StyledText};
use udpchat_core::context::Client;
use udpchat_core::registry::Registry;

use crate::shell::completion::words;
use crate::shell::conversation::{self, Typed};
use crate::shell::roster::Roster;
use crate::shell::style::name_style;

pub struct ChatHighlighter {
    pub registry: &'static Registry,
    pub client: Client,
    pub roster: Arc<Mutex<Roster>>,
}

impl Highlighter for ChatHighlighter {
    fn highlight(&self, line: &str, cursor: usize) -> StyledText {
        let conversation = self.client.conversation();
        let roster = self.roster.lock();
        styled(
            self.registry,
            &roster,
            conversation.as_deref(),
            line,
            cursor,
        )
    }
}

/// What a command word looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Known,
    /// Still being typed and the start of some command.
    Partial,
    Unknown,
}

pub fn command_word(registry: &Registry, word: &str, being_typed: bool) -> Word {
    if registry.shell(word).is_some() {
        Word::Known
    } else if being_typed && registry.shell_words().any(|w| w.starts_with(word)) {
        Word::Partial
    } else {
        Word::Unknown
    }
}

/// The line in styled pieces that join back to exactly `line`.
pub fn styled(
    registry: &Registry,
    roster: &Roster,
    conversation: Option<&str>,
    line: &str,
    cursor: usize,
) -> StyledText {
    let mut text = StyledText::new();
    let Typed::Command(command_text) = conversation::read(line, conversation) else {
        text.push((Style::new(), line.to_string()));
        return text;
    };
    let offset = line.len() - command_text.len();
    let mut done = 0;
    for (i, (start, word)) in words(command_text).into_iter().enumerate() {
        let (start, end) = (offset + start, offset + start + word.len());
        let style = if i == 0 {
            match command_word(registry, word, cursor == end) {
                Word::Known => Color::Green.bold(),
                Word::Partial => Style::new(),
                Word::Unknown => Color::Red.normal(),
            }
        } else if roster.users().any(|(u, _)| u == word) || roster.is_group(word) {
            name_style(word)
        } else {
            Style::new()
        };
        text.push((Style::new(), line[done..start].to_string()));
        text.push((style, line[start..end].to_string()));
        done = end;
    }
    text.push((Style::new(), line[done..].to_string()));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::args::{Arg, ArgKind};
    use udpchat_core::event::Names;
    use udpchat_core::registry::{Command, NoOp};

    static LIST: Command = Command::new("list", "test")
        .aliases(&["who"])
        .module("test")
        .shell::<NoOp>();
    static SEND: Command = Command::new("send", "test")
        .args(&[Arg::one("user", ArgKind::User), Arg::text("message")])
        .module("test")
        .shell::<NoOp>();

    fn registry() -> &'static Registry {
        static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        REGISTRY.get_or_init(|| Registry::build(vec![&LIST, &SEND], Vec::new()))
    }

    /// The style of the piece that holds `piece`.
    fn style_of(text: &StyledText, piece: &str) -> Style {
        text.buffer
            .iter()
            .find(|(_, s)| s == piece)
            .unwrap_or_else(|| panic!("{piece:?} not in {:?}", text.buffer))
            .0
    }

    #[test]
    fn known_partial_and_unknown_command_words() {
        let roster = Roster::default();
        let known = styled(registry(), &roster, None, "who ", 4);
        assert_eq!(style_of(&known, "who"), Color::Green.bold());
        assert_eq!(known.raw_string(), "who ");
        let partial = styled(registry(), &roster, None, "li", 2);
        assert_eq!(style_of(&partial, "li"), Style::new());
        let wrong = styled(registry(), &roster, None, "lsit", 4);
        assert_eq!(style_of(&wrong, "lsit"), Color::Red.normal());
        let left_behind = styled(registry(), &roster, None, "li x", 4);
        assert_eq!(style_of(&left_behind, "li"), Color::Red.normal());
    }

    #[test]
    fn known_names_take_their_colour_and_spacing_is_kept() {
        let mut roster = Roster::default();
        roster.set_online(&["bob"]);
        let line = "  send  bob   hi bob ";
        let text = styled(registry(), &roster, None, line, line.len());
        assert_eq!(text.raw_string(), line);
        assert_eq!(style_of(&text, "bob"), name_style("bob"));
    }

    #[test]
    fn a_conversation_line_is_plain_unless_it_is_a_command() {
        let roster = Roster::default();
        let chat = styled(registry(), &roster, Some("bob"), "list of things", 3);
        assert_eq!(chat.buffer.len(), 1);
        assert_eq!(chat.buffer[0].0, Style::new());
        let command = styled(registry(), &roster, Some("bob"), " /list", 6);
        assert_eq!(command.raw_string(), " /list");
        assert_eq!(style_of(&command, "list"), Color::Green.bold());
    }
}

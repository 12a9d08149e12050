//! Conversation mode (`chat bob`): what a typed line means while the
//! session has a conversation. A plain line is a message to the partner;
//! `/command ...` is a command; `//text` sends `/text`; a blank line does
//! nothing. Outside a conversation every line is a command.

use crate::shell::roster::Roster;

/// What a typed line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed<'a> {
    /// Command text (the `/` of conversation mode taken off); always a
    /// suffix of the typed line.
    Command(&'a str),
    /// Text for the conversation's partner.
    Message(&'a str),
    Nothing,
}

/// Reads a line typed while talking to `conversation` (if anyone).
pub fn read<'a>(line: &'a str, conversation: Option<&str>) -> Typed<'a> {
    if conversation.is_none() {
        return Typed::Command(line);
    }
    let trimmed = line.trim_start();
    if trimmed.is_empty() {
        Typed::Nothing
    } else if trimmed.starts_with("//") {
        Typed::Message(&trimmed[1..])
    } else if let Some(command) = trimmed.strip_prefix('/') {
        Typed::Command(command)
    } else {
        Typed::Message(line)
    }
}

/// The command line a typed line runs, if any.
pub fn command_line(line: &str, conversation: Option<&str>, roster: &Roster) -> Option<String> {
    match (read(line, conversation), conversation) {
        (Typed::Command(command), _) => Some(command.to_string()),
        (Typed::Message(text), Some(with)) => Some(message_to(with, text, roster)),
        _ => None,
    }
}

/// The command that sends `text` to `with`: `gsend` when `with` is one of
/// the user's groups (the roster learns them from the `groups` listing the
/// server sends at sign-in and from `group` commands), `send` otherwise.
pub fn message_to(with: &str, text: &str, roster: &Roster) -> String {
    if roster.is_group(with) {
        format!("gsend {with} {text}")
    } else {
        format!("send {with} {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::event::Names;

    #[test]
    fn outside_a_conversation_every_line_is_a_command() {
        assert_eq!(read("send bob hi", None), Typed::Command("send bob hi"));
        assert_eq!(read("/list", None), Typed::Command("/list"));
    }

    #[test]
    fn in_a_conversation_plain_lines_are_messages() {
        let roster = Roster::default();
        let bob = Some("bob");
        assert_eq!(
            command_line("how r u?", bob, &roster).as_deref(),
            Some("send bob how r u?")
        );
        assert_eq!(
            command_line("  /list", bob, &roster).as_deref(),
            Some("list")
        );
        assert_eq!(
            command_line("/leave", bob, &roster).as_deref(),
            Some("leave")
        );
        assert_eq!(
            command_line("//shrug", bob, &roster).as_deref(),
            Some("send bob /shrug")
        );
        assert_eq!(command_line("   ", bob, &roster), None);
    }

    #[test]
    fn a_group_partner_gets_the_group_send() {
        let mut roster = Roster::default();
        roster.set_groups(&["group1"]);
        assert_eq!(
            command_line("hi all", Some("group1"), &roster).as_deref(),
            Some("gsend group1 hi all")
        );
    }
}

//! The prompt, as in the seeds: `+> ` before signing in, `[alice] +> `
//! after, and `[alice -> bob] > ` in a conversation with bob; with the
//! conversations holding unread lines counted (`[alice 2 unread] +> `).

use std::borrow::Cow;

use reedline::{Prompt, PromptEditMode, PromptHistorySearch, PromptHistorySearchStatus};
use udpchat_core::context::{Client, Session};

pub struct ChatPrompt {
    pub client: Client,
}

/// The part before the indicator: `[alice] `, `[alice -> bob] ` or nothing;
/// with the conversations holding unread lines counted when signed in
/// (`[alice 2 unread] `).
pub fn left(session: &Session, unread: usize) -> String {
    let unread = match (&session.user, unread) {
        (Some(_), 1..) => format!(" {unread} unread"),
        _ => String::new(),
    };
    match (&session.user, &session.conversation) {
        (Some(user), Some(with)) => format!("[{user} -> {with}{unread}] "),
        (None, Some(with)) => format!("[-> {with}] "),
        (Some(user), None) => format!("[{user}{unread}] "),
        (None, None) => String::new(),
    }
}

/// `> ` in a conversation, `+> ` at the command prompt.
pub fn indicator(session: &Session) -> &'static str {
    if session.conversation.is_some() {
        "> "
    } else {
        "+> "
    }
}

impl ChatPrompt {
    fn session(&self) -> Session {
        self.client.session().lock().clone()
    }
}

impl Prompt for ChatPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Owned(left(&self.session(), self.client.history().unread_count()))
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed(indicator(&self.session()))
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let failing = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!("({failing}history search: {}) ", search.term))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user: Option<&str>, conversation: Option<&str>) -> Session {
        Session {
            server: "127.0.0.1:4590".parse().unwrap(),
            user: user.map(str::to_string),
            conversation: conversation.map(str::to_string),
        }
    }

    fn prompt(session: &Session) -> String {
        format!("{}{}", left(session, 0), indicator(session))
    }

    #[test]
    fn the_seed_prompts() {
        assert_eq!(prompt(&session(None, None)), "+> ");
        assert_eq!(prompt(&session(Some("alice"), None)), "[alice] +> ");
        assert_eq!(
            prompt(&session(Some("alice"), Some("bob"))),
            "[alice -> bob] > "
        );
    }

    #[test]
    fn the_prompt_counts_conversations_with_unread_lines() {
        let alice = session(Some("alice"), None);
        assert_eq!(left(&alice, 2), "[alice 2 unread] ");
        assert_eq!(
            left(&session(Some("alice"), Some("bob")), 1),
            "[alice -> bob 1 unread] "
        );
        assert_eq!(left(&session(None, None), 3), "", "nobody's, signed out");
    }
}

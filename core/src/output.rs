//! What a command shows the user: one event, with a line of text for people
//! and a JSON object for scripts (`udpchat --json`).
//!
//! Much of an event comes from elsewhere (a peer's message, a name, a
//! server's error) and may hold terminal escapes. This module is where they
//! are made harmless, for every way the client prints: [`Output::cleaned`]
//! (each text through [`clean`]) before the text renderers see an event,
//! and [`Output::to_json`], which escapes every such character.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::event::{Event, Ink, Pen};

crate::register! {
    Event::new("error")
        .on_its_own_when(about_a_message)
        .look(error_look)
}

/// An error about a message on its way (it has a `to`) came on its own,
/// long after the line that sent it.
fn about_a_message(output: &Output) -> bool {
    output.field("to").is_some()
}

/// In red, with `error:` in bold.
fn error_look(output: &Output, pen: &dyn Pen) -> Option<String> {
    Some(match output.text.strip_prefix("error:") {
        Some(rest) => format!("{}{rest}", pen.ink(Ink::ErrorMark, "error:")),
        None => pen.ink(Ink::Error, &output.text),
    })
}

/// One line of output.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The JSON `event` field: `signed-in`, `users`, `message`, `delivered`...
    pub event: &'static str,
    /// The plain-text line.
    pub text: String,
    /// The JSON fields besides `event`.
    pub data: Map<String, Value>,
}

impl Output {
    pub fn new(event: &'static str, text: impl Into<String>) -> Output {
        Output {
            event,
            text: text.into(),
            data: Map::new(),
        }
    }

    /// Adds a JSON field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Output {
        self.data.insert(key.to_string(), value.into());
        self
    }

    /// A text field, if the event has one.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// An error event: `{"event":"error","code":..,"message":..}`.
    pub fn error(err: &crate::error::CommandError) -> Output {
        Output::new("error", format!("error: {}", err.message))
            .with("code", err.code.as_str())
            .with("message", err.message.clone())
    }

    /// The event as a terminal may be shown it: its line and every text in
    /// its fields [`clean`]ed.
    pub fn cleaned(self) -> Output {
        Output {
            event: self.event,
            text: clean(&self.text),
            data: self
                .data
                .into_iter()
                .map(|(key, value)| (clean(&key), cleaned(value)))
                .collect(),
        }
    }

    /// The event as one JSON line, `event` first, with no control character
    /// or bidirectional override left raw: serde_json escapes C0 controls,
    /// this escapes DEL, C1 controls (U+0080..U+009F) and the overrides
    /// too, as `\u009b`. Nothing is lost: a JSON reader gets the text back.
    pub fn to_json(&self) -> String {
        let mut object = Map::new();
        object.insert("event".to_string(), Value::from(self.event));
        for (k, v) in &self.data {
            object.insert(k.clone(), v.clone());
        }
        let json = Value::Object(object).to_string();
        if !json.contains(unprintable) {
            return json;
        }
        // Outside its strings JSON text is ASCII, so every such character
        // is inside a string, where `\uXXXX` means the same character (all
        // of them are below U+10000).
        let mut escaped = String::with_capacity(json.len() + 16);
        for c in json.chars() {
            if unprintable(c) {
                let _ = write!(escaped, "\\u{:04x}", u32::from(c));
            } else {
                escaped.push(c);
            }
        }
        escaped
    }
}

/// Whether `c` may act on a terminal rather than show on it: a control
/// character (C0, DEL, C1: escape sequences, carriage returns, backspaces)
/// or a bidirectional override or isolate (text shown in another order).
fn unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text from elsewhere made safe to print: control characters and
/// bidirectional overrides become `\u{FFFD}`, tabs become spaces; line
/// breaks stay.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            c if unprintable(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// How a line of someone else's text goes on: every line after its first
/// starts with this, so that no line of it can pass for a line of ours
/// (`<From 127.0.0.1:5000:bob>: ...` at the start of a line is always
/// the client's own).
pub const CONTINUED: &str = "    | ";

/// A text someone else wrote (a message, a group message), laid out to be
/// shown inside one of our lines: each line break is followed by
/// [`CONTINUED`]. `--json` keeps the text as it was sent.
pub fn continued(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\n') {
        text.replace('\n', &format!("\n{CONTINUED}")).into()
    } else {
        text.into()
    }
}

/// The first line of a text someone else wrote, at most `max` characters
/// (cut with `…`), for a one-line notice of it.
pub fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or_default();
    let cut = first.chars().count() > max || text.contains('\n');
    let mut shown: String = first.chars().take(max).collect();
    if cut {
        shown.push('…');
    }
    shown
}

/// Every string in a JSON value, [`clean`]ed.
fn cleaned(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(clean(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(cleaned).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (clean(&key), cleaned(value)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_shows_one_line_cut_where_it_goes_on() {
        assert_eq!(one_line("lunch?", 10), "lunch?");
        assert_eq!(one_line("a long line indeed", 6), "a long…");
        assert_eq!(one_line("two\nlines", 10), "two…");
        assert_eq!(one_line("", 10), "");
    }

    /// Retitles the window, clears the screen (twice: ESC [ and the C1
    /// CSI), returns the carriage, deletes, reverses the text.
    const HOSTILE: &str = "\u{1b}]0;pwned\u{7} \u{1b}[2J \u{9b}2J\rover\u{7f}\u{202E}x";

    #[test]
    fn clean_replaces_what_acts_on_a_terminal_and_keeps_line_breaks() {
        assert_eq!(
            clean(HOSTILE),
            "\u{FFFD}]0;pwned\u{FFFD} \u{FFFD}[2J \u{FFFD}2J\u{FFFD}over\u{FFFD}\u{FFFD}x"
        );
        assert_eq!(clean("two\nlines\tand a tab"), "two\nlines and a tab");
        assert_eq!(clean("naïve — 日本 🙂"), "naïve — 日本 🙂");
        for c in (0..=0x9f_u32).filter_map(char::from_u32) {
            let shown = clean(&c.to_string());
            assert!(
                !shown.contains(|s: char| s.is_control() && s != '\n'),
                "U+{:04X} shows as {shown:?}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn a_line_of_someone_elses_text_cannot_start_a_line_of_ours() {
        let forged = "see you\n<From 127.0.0.1:4000:alice>: send me your password";
        let shown = continued(forged);
        assert_eq!(
            shown,
            "see you\n    | <From 127.0.0.1:4000:alice>: send me your password"
        );
        assert!(shown
            .lines()
            .skip(1)
            .all(|line| line.starts_with(CONTINUED)));
        assert_eq!(continued("one line"), "one line");
    }

    #[test]
    fn a_cleaned_event_holds_no_escape_in_its_line_or_any_field() {
        let output = Output::new("message", format!("<From bob>: {HOSTILE}"))
            .with("text", HOSTILE)
            .with("users", vec![HOSTILE, "carole"])
            .with("count", 2)
            .with("nested", serde_json::json!({ "deep": [HOSTILE] }));
        let cleaned = output.cleaned();
        assert_eq!(cleaned.event, "message");
        assert_eq!(cleaned.text, format!("<From bob>: {}", clean(HOSTILE)));
        assert_eq!(cleaned.data["text"], clean(HOSTILE));
        assert_eq!(cleaned.data["users"][1], "carole");
        assert_eq!(cleaned.data["count"], 2);
        let all = serde_json::to_string(&cleaned.data).unwrap();
        assert!(!all.contains('\u{9b}') && !all.contains("\\u001b"), "{all}");
    }

    #[test]
    fn json_escapes_c0_del_c1_and_overrides_and_loses_nothing() {
        let output = Output::new("message", "ignored").with("text", HOSTILE);
        let json = output.to_json();
        assert!(!json.contains(unprintable), "{json:?}");
        assert!(
            json.contains(r"\u009b2J") && json.contains(r"\u007f") && json.contains(r"\u202e"),
            "{json}"
        );
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["text"], HOSTILE);
        assert_eq!(back["event"], "message");
    }

    #[test]
    fn json_of_plain_text_is_serde_jsons_own() {
        let output = Output::new("users", "").with("users", vec!["bob", "naïve"]);
        assert_eq!(
            output.to_json(),
            r#"{"event":"users","users":["bob","naïve"]}"#
        );
    }

    #[test]
    fn an_error_with_a_servers_escapes_is_cleaned_and_escaped() {
        let err = crate::error::CommandError::new(
            crate::error::Code::Other("x".into()),
            format!("No such user {HOSTILE}"),
        );
        let output = Output::error(&err);
        assert!(!output.clone().cleaned().text.contains(unprintable));
        assert!(!output.to_json().contains(unprintable));
    }
}

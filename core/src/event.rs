//! Events: what the client shows (an [`Output`]), by kind. An event kind
//! with a look or an effect of its own declares it in an [`Event`]
//! descriptor from the module that emits it, submitted with
//! [`register!`](crate::register) like a command:
//!
//! - its **look** in the interactive shell ([`Pen`] colours names and
//!   marks errors; the client's shell supplies one);
//! - what it **changes in the names the shell completes** ([`Names`]:
//!   who is online, who was met, which groups);
//! - whether it **comes on its own** (a message, a notice), not as the
//!   answer to a typed line: then the shell stamps it with the time.
//!
//! An event with no descriptor shows its text with its names coloured,
//! changes nothing, and is stamped only when it interrupts typing.

use serde_json::Value;

use crate::output::Output;

/// How an event shows in the interactive shell: its line, or `None` to
/// show nothing.
pub type LookFn = fn(&Output, &dyn Pen) -> Option<String>;
/// What an event changes in the names the shell completes.
pub type NamesFn = fn(&Output, &mut dyn Names);
/// Whether an event came on its own.
pub type OnItsOwnFn = fn(&Output) -> bool;

/// One kind of event (its `event` name in `--json`).
#[derive(Debug)]
pub struct Event {
    pub name: &'static str,
    /// `module_path!()` of the module that registered it.
    pub module: &'static str,
    pub on_its_own: OnItsOwnFn,
    pub look: Option<LookFn>,
    pub names: Option<NamesFn>,
}

inventory::collect!(Event);

fn never(_: &Output) -> bool {
    false
}

fn always(_: &Output) -> bool {
    true
}

impl Event {
    pub const fn new(name: &'static str) -> Event {
        Event {
            name,
            module: "",
            on_its_own: never,
            look: None,
            names: None,
        }
    }

    /// Set by [`register!`](crate::register).
    pub const fn module(self, module: &'static str) -> Event {
        Event { module, ..self }
    }

    /// It comes on its own (a message, a notice): shown with the time.
    pub const fn on_its_own(self) -> Event {
        Event {
            on_its_own: always,
            ..self
        }
    }

    /// It comes on its own when `when` says so.
    pub const fn on_its_own_when(self, when: OnItsOwnFn) -> Event {
        Event {
            on_its_own: when,
            ..self
        }
    }

    /// Its look in the interactive shell.
    pub const fn look(self, look: LookFn) -> Event {
        Event {
            look: Some(look),
            ..self
        }
    }

    /// What it changes in the names the shell completes.
    pub const fn names(self, names: NamesFn) -> Event {
        Event {
            names: Some(names),
            ..self
        }
    }
}

/// The shell's inks, besides each name's own colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ink {
    /// An error's text.
    Error,
    /// The `error:` that starts one.
    ErrorMark,
    /// What matters little (a delivery notice).
    Quiet,
    /// What the user must see (the server going down).
    Alarm,
}

/// The most of a text a [notice](Pen::notice) shows, in characters.
pub const NOTICE_TEXT: usize = 60;

/// What an event's look may draw with: the interactive shell's colours (or
/// none), and where the shell is.
pub trait Pen {
    /// A user's or group's name, in its own colour.
    fn name(&self, name: &str) -> String;
    /// Text in one of the shell's inks.
    fn ink(&self, ink: Ink, text: &str) -> String;
    /// Every whole-word occurrence of `names` in `text`, in its colour.
    fn names_in(&self, text: &str, names: &[&str]) -> String;
    /// Whom the shell's conversation is with, if one is on.
    fn conversation(&self) -> Option<&str>;
}

impl dyn Pen + '_ {
    /// Whether the event's `key` field names the conversation's partner.
    pub fn is_partner(&self, output: &Output, key: &str) -> bool {
        self.conversation().is_some() && output.field(key) == self.conversation()
    }

    /// Whether a conversation is on with someone other than the event's
    /// `key` field names: a line for them is only noticed (see
    /// [`notice`](Self::notice)) and stays unread.
    pub fn is_elsewhere(&self, output: &Output, key: &str) -> bool {
        self.conversation().is_some() && !self.is_partner(output, key)
    }

    /// A line that came in another conversation than the one on, on one
    /// line: `carole: lunch at noon? (unread: /chat carole)`, or
    /// `group1 <dave>: hi all (unread: /chat group1)`.
    pub fn notice(&self, with: &str, from: Option<&str>, text: &str) -> String {
        let who = match from {
            Some(from) => format!("{} <{}>", self.name(with), self.name(from)),
            None => self.name(with),
        };
        format!(
            "{who}: {} {}",
            crate::output::one_line(text, NOTICE_TEXT),
            self.ink(Ink::Quiet, &format!("(unread: /chat {with})"))
        )
    }

    /// The look of an event with none of its own: its text, with the names
    /// it is about coloured.
    pub fn plain(&self, output: &Output) -> String {
        self.names_in(&output.text, &names_of(output))
    }
}

/// The names the shell completes, as events change them. Whatever is not
/// a user or group name is ignored by the implementation.
pub trait Names {
    /// Who is online now (a whole list: whoever is not on it is not).
    fn set_online(&mut self, users: &[&str]);
    /// Someone came online.
    fn went_online(&mut self, user: &str);
    /// Someone went offline; still a known user.
    fn went_offline(&mut self, user: &str);
    /// A user seen somewhere (a message, a delivery).
    fn met(&mut self, user: &str);
    /// The groups this user is in (the whole list).
    fn set_groups(&mut self, groups: &[&str]);
    /// This user is in one more group.
    fn joined(&mut self, group: &str);
    /// This user left a group.
    fn left(&mut self, group: &str);
    /// Who this client is signed in as (never offered as a partner).
    fn signed_in_as(&mut self, user: &str);
    /// Whether `name` is one of this user's groups.
    fn is_group(&self, name: &str) -> bool;
}

/// The names an event is about: its `user`, `from`, `to`, `with`, `left`,
/// `group` fields and its `users` list.
pub fn names_of(output: &Output) -> Vec<&str> {
    let mut names: Vec<&str> = ["user", "from", "to", "with", "left", "group"]
        .iter()
        .filter_map(|key| output.field(key))
        .collect();
    names.extend(strings(output, "users"));
    names
}

/// The strings of an event's `key` field, when it is a list.
pub fn strings<'a>(output: &'a Output, key: &str) -> Vec<&'a str> {
    match output.data.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_names_are_its_name_fields_and_its_users() {
        let output = Output::new("users", "")
            .with("users", vec!["bob", "carole"])
            .with("to", "dave")
            .with("total", 2);
        assert_eq!(names_of(&output), ["dave", "bob", "carole"]);
        assert!(strings(&output, "total").is_empty());
    }
}

//! The events nodes tell each other on the `udpchat` channel
//! (docs/PROTOCOL.md section 13).

use serde::{Deserialize, Serialize};

/// What one node tells the others, as JSON on the `udpchat` channel
/// (PostgreSQL's NOTIFY carries up to 8,000 bytes; these are tens). `node`
/// is the sender's id; each says what to read, not the whole of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "kebab-case")]
pub enum Event {
    /// `user` signed in on `node` (read its `signed_in` row).
    SignedIn { node: String, user: String },
    /// `user` signed out of `node`.
    SignedOut { node: String, user: String },
    /// The path of `user`'s client on `node` moved (its NAT gave it
    /// another port, it roamed): read its `signed_in` row again.
    Moved { node: String, user: String },
    /// `node` is gone, and everyone signed in there.
    NodeDown { node: String },
    /// `node` asks `to` whether `user`'s client there still answers.
    Probe {
        node: String,
        to: String,
        user: String,
        id: u64,
    },
    /// `node`'s answer to probe `id` from `to`.
    Probed {
        node: String,
        to: String,
        id: u64,
        alive: bool,
    },
    /// `node` appended to `group` (read the group's log).
    Appended { node: String, group: String },
    /// `node` asks `to` to push this to `user`'s client there: a packet
    /// (its registered `tag`, its CBOR body in base64).
    Push {
        node: String,
        to: String,
        user: String,
        tag: String,
        body: String,
    },
    /// Message `id` was kept for `user`, signed in on `to` (or on any
    /// node, [`ANY_NODE`]): hand it over.
    Mail {
        node: String,
        to: String,
        user: String,
        id: u64,
    },
    /// `node` asks `to` (or whichever node holds the user, [`ANY_NODE`]) to
    /// tell `user`, signed in there, that their groups changed (`note`:
    /// why, as the user reads it).
    Tell {
        node: String,
        to: String,
        user: String,
        note: String,
    },
}

impl Event {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("an event is JSON")
    }

    pub fn decode(payload: &str) -> Option<Event> {
        serde_json::from_str(payload).ok()
    }

    pub(super) fn sender(&self) -> &str {
        match self {
            Event::SignedIn { node, .. }
            | Event::SignedOut { node, .. }
            | Event::Moved { node, .. }
            | Event::NodeDown { node }
            | Event::Probe { node, .. }
            | Event::Probed { node, .. }
            | Event::Appended { node, .. }
            | Event::Push { node, .. }
            | Event::Mail { node, .. }
            | Event::Tell { node, .. } => node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_small_tagged_json_and_junk_is_refused() {
        let event = Event::Probe {
            node: "a1".into(),
            to: "b2".into(),
            user: "alice".into(),
            id: 7,
        };
        let text = event.encode();
        assert_eq!(
            text,
            r#"{"k":"probe","node":"a1","to":"b2","user":"alice","id":7}"#
        );
        assert_eq!(Event::decode(&text), Some(event));
        assert_eq!(
            Event::decode(r#"{"k":"node-down","node":"a1"}"#),
            Some(Event::NodeDown { node: "a1".into() })
        );
        assert_eq!(
            Event::decode(r#"{"k":"moved","node":"a1","user":"bob"}"#),
            Some(Event::Moved {
                node: "a1".into(),
                user: "bob".into()
            })
        );
        assert_eq!(Event::decode(r#"{"k":"launch-missiles"}"#), None);
        assert_eq!(Event::decode("not json"), None);
    }
}

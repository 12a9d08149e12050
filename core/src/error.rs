//! The error a command reports: a stable machine code and one sentence for
//! people. It is also the body of an error envelope on the wire.

use serde::{Deserialize, Serialize};

/// A command's failure, as a user sees it and as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// Stable, kebab-case: `no-such-user`, `name-taken`, `unknown-command`...
    pub code: String,
    /// One sentence for people.
    pub message: String,
}

impl CommandError {
    pub fn new(code: &str, message: impl Into<String>) -> CommandError {
        CommandError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// The command line did not fit the command's usage.
    pub fn usage(usage: &str) -> CommandError {
        CommandError::new(code::USAGE, format!("usage: {usage}"))
    }

    /// A request or reply body that did not decode.
    pub fn bad_request(what: impl std::fmt::Display) -> CommandError {
        CommandError::new(code::BAD_REQUEST, format!("malformed request: {what}"))
    }

    pub fn unknown_command(name: &str) -> CommandError {
        CommandError::new(code::UNKNOWN_COMMAND, format!("unknown command: {name}"))
    }

    pub fn not_signed_in() -> CommandError {
        CommandError::new(
            code::NOT_SIGNED_IN,
            "not signed in: use `signin NAME` first",
        )
    }

    /// The body of an error envelope.
    pub fn to_body(&self) -> Vec<u8> {
        crate::cbor::encode(self)
    }

    /// Reads an error envelope's body; a garbled one still yields an error.
    pub fn from_body(body: &[u8]) -> CommandError {
        crate::cbor::decode_body(body).unwrap_or_else(|e| {
            CommandError::new(code::BAD_REPLY, format!("malformed error reply: {e}"))
        })
    }
}

/// The error codes in use, in one place so clients can match on them.
pub mod code {
    pub const USAGE: &str = "usage";
    pub const BAD_REQUEST: &str = "bad-request";
    pub const BAD_REPLY: &str = "bad-reply";
    pub const UNKNOWN_COMMAND: &str = "unknown-command";
    pub const NOT_SIGNED_IN: &str = "not-signed-in";
    pub const NO_SUCH_USER: &str = "no-such-user";
    pub const NAME_TAKEN: &str = "name-taken";
    pub const INVALID_NAME: &str = "invalid-name";
    pub const EMPTY_MESSAGE: &str = "empty-message";
    pub const TOO_LARGE: &str = "too-large";
    pub const UNREACHABLE: &str = "unreachable";
    pub const TIMEOUT: &str = "timeout";
    pub const DELIVERY_FAILED: &str = "delivery-failed";
    pub const BAD_PASSWORD: &str = "bad-password";
    pub const BAD_CREDENTIALS: &str = "bad-credentials";
    pub const THROTTLED: &str = "throttled";
    pub const INTERNAL: &str = "internal";
    pub const UNVERIFIED: &str = "unverified";
    pub const MAILBOX_FULL: &str = "mailbox-full";
    pub const NO_PREKEYS: &str = "no-prekeys";
    pub const SEALED: &str = "sealed";
    pub const SERVER_KEY_CHANGED: &str = "server-key-changed";
    pub const NO_SUCH_GROUP: &str = "no-such-group";
    pub const NOT_A_MEMBER: &str = "not-a-member";
    pub const NOT_ALLOWED: &str = "not-allowed";
    pub const BUSY: &str = "busy";
}

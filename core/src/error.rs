//! The error a command reports: a stable machine code and one sentence for
//! people. It is also the body of an error envelope on the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A command's failure, as a user sees it and as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// Stable, kebab-case on the wire and in `--json`: `no-such-user`,
    /// `name-taken`, `unknown-command`...
    pub code: Code,
    /// One sentence for people.
    pub message: String,
}

/// What went wrong, for programs: each travels as its kebab-case name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Code {
    /// The command line did not fit the command's usage.
    Usage,
    /// A request or push body that did not decode.
    BadRequest,
    /// A reply that did not decode.
    BadReply,
    UnknownCommand,
    NotSignedIn,
    NoSuchUser,
    NameTaken,
    InvalidName,
    EmptyMessage,
    TooLarge,
    Unreachable,
    Timeout,
    DeliveryFailed,
    BadPassword,
    BadCredentials,
    Throttled,
    Internal,
    /// Someone claimed to be who they could not prove to be.
    Unverified,
    MailboxFull,
    NoPrekeys,
    /// A sealed message that could not be sealed or opened.
    Sealed,
    ServerKeyChanged,
    NoSuchGroup,
    NotAMember,
    NotAllowed,
    Busy,
    /// A private group's members changed since the sender's key was
    /// handed out: the sender hands it to the members as they are now (a
    /// new key if someone left) and sends again.
    MembersChanged,
    /// A private group's message this client has no key for (yet).
    MissingKey,
    /// Signing in from a device whose identity key is not the one the
    /// server holds for the account: it replaces it only when asked to.
    NewDevice,
    /// A code this build does not know (from a newer peer), kept as sent.
    #[serde(untagged)]
    Other(String),
}

impl Code {
    /// The kebab-case name, as it travels and as `--json` shows it.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Usage => "usage",
            Code::BadRequest => "bad-request",
            Code::BadReply => "bad-reply",
            Code::UnknownCommand => "unknown-command",
            Code::NotSignedIn => "not-signed-in",
            Code::NoSuchUser => "no-such-user",
            Code::NameTaken => "name-taken",
            Code::InvalidName => "invalid-name",
            Code::EmptyMessage => "empty-message",
            Code::TooLarge => "too-large",
            Code::Unreachable => "unreachable",
            Code::Timeout => "timeout",
            Code::DeliveryFailed => "delivery-failed",
            Code::BadPassword => "bad-password",
            Code::BadCredentials => "bad-credentials",
            Code::Throttled => "throttled",
            Code::Internal => "internal",
            Code::Unverified => "unverified",
            Code::MailboxFull => "mailbox-full",
            Code::NoPrekeys => "no-prekeys",
            Code::Sealed => "sealed",
            Code::ServerKeyChanged => "server-key-changed",
            Code::NoSuchGroup => "no-such-group",
            Code::NotAMember => "not-a-member",
            Code::NotAllowed => "not-allowed",
            Code::Busy => "busy",
            Code::MembersChanged => "members-changed",
            Code::MissingKey => "missing-key",
            Code::NewDevice => "new-device",
            Code::Other(code) => code,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl CommandError {
    pub fn new(code: Code, message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            message: message.into(),
        }
    }

    /// The command line did not fit the command's usage.
    pub fn usage(usage: &str) -> CommandError {
        CommandError::new(Code::Usage, format!("usage: {usage}"))
    }

    /// A request or push body that did not decode.
    pub fn bad_request(what: impl fmt::Display) -> CommandError {
        CommandError::new(Code::BadRequest, format!("malformed request: {what}"))
    }

    /// A reply that did not decode.
    pub fn bad_reply(what: impl fmt::Display) -> CommandError {
        CommandError::new(Code::BadReply, format!("malformed reply: {what}"))
    }

    pub fn unknown_command(name: &str) -> CommandError {
        CommandError::new(Code::UnknownCommand, format!("unknown command: {name}"))
    }

    pub fn not_signed_in() -> CommandError {
        CommandError::new(Code::NotSignedIn, "not signed in: use `signin NAME` first")
    }

    /// The body of an error envelope.
    pub fn to_body(&self) -> Vec<u8> {
        crate::cbor::encode(self)
    }

    /// Reads an error envelope's body; a garbled one still yields an error.
    pub fn from_body(body: &[u8]) -> CommandError {
        crate::cbor::decode_body(body).unwrap_or_else(|e| {
            CommandError::new(Code::BadReply, format!("malformed error reply: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor;

    #[test]
    fn codes_travel_as_their_kebab_case_names_and_unknown_ones_are_kept() {
        let error = CommandError::new(Code::NoSuchUser, "No such user: dave");
        #[derive(Serialize)]
        struct AsText<'a> {
            code: &'a str,
            message: &'a str,
        }
        let as_text = cbor::encode(&AsText {
            code: "no-such-user",
            message: "No such user: dave",
        });
        assert_eq!(error.to_body(), as_text);
        assert_eq!(CommandError::from_body(&as_text), error);
        let newer = cbor::encode(&AsText {
            code: "rate-limited-v2",
            message: "later",
        });
        let read = CommandError::from_body(&newer);
        assert_eq!(read.code, Code::Other("rate-limited-v2".into()));
        assert_eq!(read.to_body(), newer, "kept as sent");
        assert_eq!(Code::Busy, "busy");
        assert_eq!(Code::NotAMember.to_string(), "not-a-member");
    }

    #[test]
    fn every_named_code_reads_back_from_its_name() {
        let all = [
            Code::Usage,
            Code::BadRequest,
            Code::BadReply,
            Code::UnknownCommand,
            Code::NotSignedIn,
            Code::NoSuchUser,
            Code::NameTaken,
            Code::InvalidName,
            Code::EmptyMessage,
            Code::TooLarge,
            Code::Unreachable,
            Code::Timeout,
            Code::DeliveryFailed,
            Code::BadPassword,
            Code::BadCredentials,
            Code::Throttled,
            Code::Internal,
            Code::Unverified,
            Code::MailboxFull,
            Code::NoPrekeys,
            Code::Sealed,
            Code::ServerKeyChanged,
            Code::NoSuchGroup,
            Code::NotAMember,
            Code::NotAllowed,
            Code::Busy,
            Code::MembersChanged,
            Code::MissingKey,
            Code::NewDevice,
        ];
        for code in all {
            let bytes = cbor::encode(&code);
            assert_eq!(bytes, cbor::encode(code.as_str()), "{code}");
            assert_eq!(cbor::decode_body::<Code>(&bytes).unwrap(), code);
        }
    }
}

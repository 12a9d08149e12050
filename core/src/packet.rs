//! Typed packets: every packet type is a Rust type that states its wire tag
//! once ([`Packet::TAG`]) and the types that travel with it: a
//! [`Request`]'s body and reply, a [`Push`]'s body. Code outside a packet's
//! own module names the type, never the tag: `request::<Lookup>(&body)`
//! returns a `Found`, `push::<Presence>(..)` takes a `PresenceChanges`, and
//! a typo is a compile error rather than an `unknown-command` at run time.
//!
//! On the wire nothing changed: an envelope carries the tag and the body's
//! CBOR (see [`crate::envelope`]). A subcommand's request (`group create`)
//! travels under its parent's tag with the subcommand's name in the body's
//! `op` field ([`Request::OP`]), so the parent's handler can hand it on.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::error::CommandError;

/// A packet type: what travels under one wire tag.
pub trait Packet: 'static {
    /// The wire tag: the command's name in the registry (lowercase letters,
    /// digits and `-`).
    const TAG: &'static str;
}

/// A request: a body one side sends, a reply the other sends back.
pub trait Request: Packet {
    /// For a subcommand's request (`group create`), its name, carried in
    /// the body's `op` field under the parent's tag.
    const OP: Option<&'static str> = None;
    /// What the request carries.
    type Body: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What its answer carries.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// A one-way packet: the transport's acknowledgement is its only answer.
pub trait Push: Packet {
    /// Only the server a client is signed in to may send it. From anyone
    /// else the client refuses it, saying so once, before any handler
    /// sees it (see [`crate::registry::Command::on_push`]).
    const SERVER_ONLY: bool;
    /// Whether the client acknowledges it in the turn it reads it: true
    /// (the default) when someone may wait on that acknowledgement (a
    /// person on `delivered`, a server going down, mail the server drops
    /// once it is taken). A push that comes in a stream nobody waits on
    /// says false (a group's messages, presence): its acknowledgement
    /// waits, as a request's does, for a second packet or the max ACK
    /// delay, so that one ACK answers two pushes (PROTOCOL.md section 4).
    const ACK_AT_ONCE: bool = true;
    /// Whether a client holds its acknowledgement until it handled the
    /// push and wrote what it kept (PROTOCOL.md section 4, holding an
    /// ACK). A push with an acknowledgement of its own once kept says
    /// false (`stored`, whose `receipt` goes once the line is written).
    const HELD_UNTIL_KEPT: bool = true;
    /// What the push carries.
    type Body: Serialize + DeserializeOwned + Send + 'static;
}

/// What a push of type `P` carries (for a type that is also a request,
/// whose `Body` would be ambiguous).
pub type PushBody<P> = <P as Push>::Body;

/// A packet encoded for the wire: its tag and its body's bytes. Made from a
/// typed packet, so every tag that travels is one a packet type declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    tag: &'static str,
    body: Vec<u8>,
}

impl Encoded {
    /// A request's body, with its `op` for a subcommand.
    pub fn request<R: Request>(body: &R::Body) -> Encoded {
        let body = match R::OP {
            None => cbor::encode(body),
            Some(op) => with_op(op, body),
        };
        Encoded { tag: R::TAG, body }
    }

    /// A push's body.
    pub fn push<P: Push>(body: &P::Body) -> Encoded {
        Encoded {
            tag: P::TAG,
            body: cbor::encode(body),
        }
    }

    pub fn tag(&self) -> &'static str {
        self.tag
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_parts(self) -> (&'static str, Vec<u8>) {
        (self.tag, self.body)
    }

    /// A packet made elsewhere (another server node relays a push): its
    /// tag, as the registry names it, and its body.
    pub fn from_parts(tag: &'static str, body: Vec<u8>) -> Encoded {
        Encoded { tag, body }
    }
}

/// Decodes a request or push body, mapping failure to `bad-request`.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CommandError> {
    cbor::decode_body(body).map_err(CommandError::bad_request)
}

/// Decodes a reply body, mapping failure to `bad-reply`.
pub fn decode_reply<T: DeserializeOwned>(body: &[u8]) -> Result<T, CommandError> {
    cbor::decode_body(body).map_err(CommandError::bad_reply)
}

/// The `op` of a subcommand's request body, if it has one.
pub fn op_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Op {
        op: String,
    }
    cbor::decode_body::<Op>(body).ok().map(|o| o.op)
}

/// `body` as a CBOR map with `op` first, as an internally tagged enum
/// encodes it (so the bytes are the ones the `group` request always had).
fn with_op<T: Serialize>(op: &str, body: &T) -> Vec<u8> {
    use ciborium::Value;
    let value = Value::serialized(body).expect("a request body encodes as CBOR");
    let op = (Value::Text("op".into()), Value::Text(op.into()));
    let map = match value {
        Value::Map(fields) => std::iter::once(op).chain(fields).collect(),
        // A subcommand's body is a struct: a map. Anything else is kept
        // whole beside the op.
        other => vec![op, (Value::Text("body".into()), other)],
    };
    cbor::encode(&Value::Map(map))
}

/// Checks that `data` decodes as `T` as a handler decodes it, and that what
/// decoded encodes, decodes and encodes again to the same bytes: the check
/// every body type gets from the fuzz targets (a failed round trip panics,
/// as a fuzz target must). `true` when it decoded.
pub fn round_trips<T: Serialize + DeserializeOwned>(data: &[u8]) -> bool {
    let Ok(value) = cbor::decode_body::<T>(data) else {
        return false;
    };
    let encoded = cbor::encode(&value);
    let name = std::any::type_name::<T>();
    let again: T = cbor::decode_body(&encoded)
        .unwrap_or_else(|e| panic!("a re-encoded {name} does not decode: {e}"));
    assert_eq!(cbor::encode(&again), encoded, "{name} does not round-trip");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Create {
        group: String,
        open: bool,
        members: Vec<String>,
    }

    struct GroupCreate;
    impl Packet for GroupCreate {
        const TAG: &'static str = "group";
    }
    impl Request for GroupCreate {
        const OP: Option<&'static str> = Some("create");
        type Body = Create;
        type Reply = ();
    }

    /// How the `group` request was encoded before subcommands were types
    /// of their own: an internally tagged enum.
    #[derive(Serialize)]
    #[serde(tag = "op", rename_all = "kebab-case")]
    enum Before {
        Create {
            group: String,
            open: bool,
            members: Vec<String>,
        },
    }

    #[test]
    fn a_subcommand_request_has_the_bytes_the_enum_had_and_names_its_op() {
        let body = Create {
            group: "group1".into(),
            open: true,
            members: vec!["bob".into(), "eve".into()],
        };
        let encoded = Encoded::request::<GroupCreate>(&body);
        assert_eq!(encoded.tag(), "group");
        let before = cbor::encode(&Before::Create {
            group: "group1".into(),
            open: true,
            members: vec!["bob".into(), "eve".into()],
        });
        assert_eq!(encoded.body(), before.as_slice());
        assert_eq!(op_of(encoded.body()).as_deref(), Some("create"));
        // The subcommand's own type reads it, op and all.
        assert_eq!(decode_body::<Create>(encoded.body()).unwrap(), body);
        assert_eq!(op_of(&cbor::encode(&("x", 1))), None);
    }

    #[test]
    fn a_body_that_does_not_decode_is_a_bad_request_and_a_reply_a_bad_reply() {
        use crate::error::Code;
        assert_eq!(
            decode_body::<Create>(b"\x01").unwrap_err().code,
            Code::BadRequest
        );
        assert_eq!(
            decode_reply::<Create>(b"\x01").unwrap_err().code,
            Code::BadReply
        );
    }

    #[test]
    fn a_unit_body_is_cbor_null() {
        assert_eq!(cbor::encode(&()), [0xf6]);
        assert!(round_trips::<()>(&[0xf6]));
        assert!(!round_trips::<()>(&[0x01]));
    }
}

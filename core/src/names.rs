//! What a user name may be. Checked by the client before sending and by the
//! server before registering, so both give the same clear error. And
//! [`Name`], a name held in several places at once.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Code, CommandError};

/// The longest user name.
pub const MAX_NAME: usize = 32;

/// A name is 1 to 32 characters: ASCII letters, digits, `_`, `-` and `.`,
/// starting with a letter or digit.
pub fn check_user_name(name: &str) -> Result<(), CommandError> {
    check_name("user", name)
}

/// A group name follows the rules of a user name.
pub fn check_group_name(name: &str) -> Result<(), CommandError> {
    check_name("group", name)
}

fn check_name(what: &str, name: &str) -> Result<(), CommandError> {
    let invalid = |why: &str| {
        Err(CommandError::new(
            Code::InvalidName,
            format!("invalid {what} name {name:?}: {why}"),
        ))
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_NAME {
        return invalid("it is longer than 32 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return invalid("use letters, digits, '_', '-' and '.'");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return invalid("it must start with a letter or digit");
    }
    Ok(())
}

/// A user's name, shared: copies are one count more, not one allocation
/// more. Presence keeps each signed-in name once for its two maps, and a
/// `list` reply's names are the presence's own (a reply of 200 names was
/// 200 allocations, and the most of its server CPU after the sending).
/// On the wire it is a CBOR text string, as a `String` is; decoding one
/// takes one allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(name: &str) -> Name {
        Name(Arc::from(name))
    }
}

impl From<String> for Name {
    fn from(name: String) -> Name {
        Name(Arc::from(name))
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0.to_string()
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Name;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Name, E> {
                Ok(Name::from(name))
            }
        }
        // As a borrowed str: CBOR decoders hand it over from their own
        // buffer, so the one allocation is the name's.
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_travels_as_a_string_does() {
        let names = vec![Name::from("alice"), Name::from("bob")];
        let bytes = crate::cbor::encode(&names);
        assert_eq!(bytes, crate::cbor::encode(&["alice", "bob"]));
        let back: Vec<Name> = crate::cbor::decode(&bytes, 100).unwrap();
        assert_eq!(back, names);
        let strings: Vec<String> = crate::cbor::decode(&bytes, 100).unwrap();
        assert_eq!(strings, ["alice", "bob"]);
        assert_eq!(
            serde_json::to_value(&names).unwrap(),
            serde_json::json!(["alice", "bob"])
        );
    }

    #[test]
    fn accepts_ordinary_names_and_refuses_odd_ones() {
        for ok in ["alice", "Bob", "u1", "iiit123", "a.b-c_d"] {
            assert!(check_user_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "al:ice", "ünï", &"x".repeat(33)] {
            let err = check_user_name(bad).unwrap_err();
            assert_eq!(err.code, Code::InvalidName, "{bad}");
        }
    }
}

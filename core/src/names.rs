//! What a user name may be. Checked by the client before sending and by the
//! server before registering, so both give the same clear error.

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

#[cfg(test)]
mod tests {
    use super::*;

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

//! What a new password must be, following NIST SP 800-63B (5.1.1.2): at
//! least [`MIN_CHARS`] characters and at most [`MAX_BYTES`] bytes, any
//! characters at all (spaces, any script), no rules about what it is made
//! of, and not one of the most common passwords (the list the project
//! ships, `core/data/common-passwords.txt`) nor the user's own name. The
//! client checks before asking the server, and the server checks again
//! (it cannot trust the client). Signing in takes any password an account
//! already has: only new ones are held to this.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::error::{Code, CommandError};

/// The shortest new password, in characters.
pub const MIN_CHARS: usize = 8;
/// The longest password, in bytes (argon2 takes any length; this bounds
/// the work).
pub const MAX_BYTES: usize = 1024;

/// The list, most common first, `#` lines being notes.
const COMMON: &str = include_str!("../data/common-passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    })
}

fn refused(why: &str) -> CommandError {
    CommandError::new(Code::BadPassword, why)
}

/// A password given to sign in: not empty, not past [`MAX_BYTES`].
pub fn check_given(password: &str) -> Result<(), CommandError> {
    if password.is_empty() {
        return Err(refused("the password is empty"));
    }
    if password.len() > MAX_BYTES {
        return Err(refused(&format!(
            "the password is longer than {MAX_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A new password for `user`.
pub fn check_new(user: &str, password: &str) -> Result<(), CommandError> {
    check_given(password)?;
    if password.chars().count() < MIN_CHARS {
        return Err(refused(&format!(
            "the password is too short: use at least {MIN_CHARS} characters (a few words make a good one)"
        )));
    }
    let lower = password.to_lowercase();
    if lower == user.to_lowercase() {
        return Err(refused("the password is your user name: choose another"));
    }
    if common().contains(lower.as_str()) {
        return Err(refused(
            "the password is one of the most common ones, which are tried first: choose another",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_enough_and_uncommon_passwords_of_any_make_are_taken() {
        for good in [
            "correct horse battery staple",
            "pw of alice!",
            "ünïcödé!",
            "8 chars.",
            "lowercaseonly",
        ] {
            assert!(check_new("alice", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn short_common_and_own_name_passwords_are_refused_with_why() {
        let why = |pw: &str| check_new("alexander", pw).unwrap_err().message;
        assert!(why("x").contains("too short"));
        assert!(why("seven77").contains("too short"));
        assert!(why("éééééé").contains("too short"), "counted in characters");
        assert!(why("password").contains("most common"));
        assert!(
            why("PassWord").contains("most common"),
            "case does not matter"
        );
        assert!(why("qwertyuiop").contains("most common"));
        assert!(why("Alexander").contains("user name"));
        assert!(why(&"x".repeat(MAX_BYTES + 1)).contains("longer than"));
        assert_eq!(
            check_new("a", "").unwrap_err().message,
            "the password is empty"
        );
        assert_eq!(check_new("a", "x").unwrap_err().code, Code::BadPassword);
    }

    #[test]
    fn signing_in_takes_any_password_an_account_has() {
        assert!(check_given("x").is_ok());
        assert!(check_given("password").is_ok());
        assert!(check_given("").is_err());
    }

    #[test]
    fn the_shipped_list_is_large_and_holds_only_what_the_length_rule_lets_through() {
        let list = common();
        assert!(list.len() > 10_000, "{}", list.len());
        assert!(list.iter().all(|p| p.chars().count() >= MIN_CHARS));
        assert!(list.iter().all(|p| *p == p.to_lowercase()));
    }
}

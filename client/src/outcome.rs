//! How a scripted run ends: its exit status says whether all it was asked
//! to do worked, so that a script can tell failure from success. `--help`
//! lists the codes (2 is clap's, for a bad command line).
//!
//! A failure is a command from the input that failed, a message the user
//! wrote that was reported as not delivered (at once or later, as a
//! message left on the server that expired), or the sign-in at start.
//! What others send that is refused (a forged message, say) is reported
//! but is not the script's failure.

use std::sync::atomic::{AtomicBool, Ordering};

use udpchat_core::error::{Code, CommandError};
use udpchat_core::output::Output;

/// Everything worked.
pub const OK: i32 = 0;
/// A command, or a message the user wrote, failed.
pub const FAILED: i32 = 1;
/// The sign-in at start (`-u`) failed: a wrong password, say.
pub const SIGN_IN_FAILED: i32 = 3;
/// No udpchat server answered.
pub const NO_SERVER: i32 = 4;

#[derive(Debug, Default)]
pub struct Outcome {
    failed: AtomicBool,
    sign_in_failed: AtomicBool,
    no_server: AtomicBool,
}

impl Outcome {
    /// A command from the input failed with `e`.
    pub fn command_failed(&self, e: &CommandError) {
        self.note(e, &self.failed);
    }

    /// The sign-in at start failed with `e`.
    pub fn sign_in_failed(&self, e: &CommandError) {
        self.note(e, &self.sign_in_failed);
    }

    fn note(&self, e: &CommandError, otherwise: &AtomicBool) {
        if e.code == Code::Unreachable {
            self.no_server.store(true, Ordering::SeqCst);
        } else {
            otherwise.store(true, Ordering::SeqCst);
        }
    }

    /// Sees every event: a message the user wrote reported as failed is a
    /// failure, whenever it is reported.
    pub fn observe(&self, output: &Output) {
        if output.event == "error" && output.field("code") == Some(Code::DeliveryFailed.as_str()) {
            self.failed.store(true, Ordering::SeqCst);
        }
    }

    /// The exit status: the gravest failure's.
    pub fn code(&self) -> i32 {
        if self.no_server.load(Ordering::SeqCst) {
            NO_SERVER
        } else if self.sign_in_failed.load(Ordering::SeqCst) {
            SIGN_IN_FAILED
        } else if self.failed.load(Ordering::SeqCst) {
            FAILED
        } else {
            OK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gravest_failure_gives_the_status() {
        let outcome = Outcome::default();
        assert_eq!(outcome.code(), OK);
        outcome.observe(&Output::error(&CommandError::new(
            Code::Unverified,
            "dropped a forged message",
        )));
        assert_eq!(
            outcome.code(),
            OK,
            "what others sent is not the script's failure"
        );
        outcome.observe(&Output::error(&CommandError::new(
            Code::DeliveryFailed,
            "message to bob was not delivered",
        )));
        assert_eq!(outcome.code(), FAILED);
        outcome.sign_in_failed(&CommandError::new(Code::BadCredentials, "wrong password"));
        assert_eq!(outcome.code(), SIGN_IN_FAILED);
        outcome.command_failed(&CommandError::new(
            Code::Unreachable,
            "no udpchat server answered",
        ));
        assert_eq!(outcome.code(), NO_SERVER);
    }
}

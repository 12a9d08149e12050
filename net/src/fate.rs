//! Who hears what became of a push: a task, a call on the driver's
//! thread, or the log.

use tokio::sync::oneshot;
use udpchat_core::error::CommandError;
use udpchat_core::secure::PeerId;

use crate::Then;

/// Who hears whether a push arrived.
pub(crate) enum Fate {
    /// A task awaiting it.
    Wait(oneshot::Sender<Result<(), CommandError>>),
    /// A call on the driver's thread, when it is known.
    Call(Then),
    /// No one: a failure of this push (its tag) is logged.
    Log(&'static str),
}

impl Fate {
    /// Each session's `then`, called with its push's fate.
    pub(crate) fn calls(to_each: Vec<(PeerId, Then)>) -> Vec<(PeerId, Fate)> {
        to_each
            .into_iter()
            .map(|(to, then)| (to, Fate::Call(then)))
            .collect()
    }

    /// Tells whoever it is what became of the push.
    pub(crate) fn tell(self, result: Result<(), CommandError>) {
        match self {
            Fate::Wait(done) => {
                let _ = done.send(result);
            }
            Fate::Call(then) => then(result),
            Fate::Log(cmd) => {
                if let Err(e) = result {
                    tracing::debug!(cmd, "push not delivered: {e}");
                }
            }
        }
    }
}

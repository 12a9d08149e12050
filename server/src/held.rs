//! What waits for a reply: while a request from a client is being handled,
//! what its handler pushes to that client, and work it starts for it, wait
//! until the reply has gone. So the client hears "signed in" before the
//! messages kept for it and before its groups.

use std::collections::HashMap;

use udpchat_core::context::PeerId;

/// Something held back for a client.
pub enum Deferred {
    /// A packet to push.
    Push(&'static str, Vec<u8>),
    /// Work to start (it may push in turn).
    Then(Box<dyn FnOnce() + Send>),
}

/// The clients with a request being handled, and what waits for them.
#[derive(Default)]
pub struct Held {
    answering: HashMap<PeerId, (usize, Vec<Deferred>)>,
}

impl Held {
    /// A request from `peer` is being handled.
    pub fn answering(&mut self, peer: PeerId) {
        self.answering.entry(peer).or_default().0 += 1;
    }

    /// Keeps `item` for later if a request from `peer` is being handled;
    /// gives it back if not (it may go now).
    pub fn hold(&mut self, peer: PeerId, item: Deferred) -> Option<Deferred> {
        match self.answering.get_mut(&peer) {
            Some((_, waiting)) => {
                waiting.push(item);
                None
            }
            None => Some(item),
        }
    }

    /// The reply to one request from `peer` went: once no other request
    /// from it is being handled, what waited, in the order it came.
    pub fn answered(&mut self, peer: PeerId) -> Vec<Deferred> {
        let Some((requests, _)) = self.answering.get_mut(&peer) else {
            return Vec::new();
        };
        *requests -= 1;
        if *requests > 0 {
            return Vec::new();
        }
        self.answering
            .remove(&peer)
            .map(|(_, waiting)| waiting)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn push(body: u8) -> Deferred {
        Deferred::Push("stored", vec![body])
    }

    /// What `released` holds, as text: pushes by body, work by running it.
    fn run(released: Vec<Deferred>, log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        for item in released {
            match item {
                Deferred::Push(_, body) => log.lock().unwrap().push(format!("push {}", body[0])),
                Deferred::Then(work) => work(),
            }
        }
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[test]
    fn pushes_and_work_wait_for_the_last_reply_and_keep_their_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut held = Held::default();
        let (alice, bob) = (PeerId(1), PeerId(2));
        held.answering(alice);
        held.answering(alice);
        assert!(held.hold(alice, push(1)).is_none());
        let later = log.clone();
        let work = Deferred::Then(Box::new(move || {
            later.lock().unwrap().push("groups".into())
        }));
        assert!(held.hold(alice, work).is_none());
        assert!(held.hold(alice, push(2)).is_none());
        // Nobody is being answered on bob's session: his push may go now.
        assert!(matches!(
            held.hold(bob, push(3)),
            Some(Deferred::Push(_, _))
        ));
        // One of alice's two requests answered: still waiting.
        assert!(held.answered(alice).is_empty());
        assert_eq!(
            run(held.answered(alice), &log),
            ["push 1", "groups", "push 2"]
        );
        // Done: the next push goes at once.
        assert!(held.hold(alice, push(4)).is_some());
        assert!(
            held.answered(alice).is_empty(),
            "an extra answer is harmless"
        );
    }
}

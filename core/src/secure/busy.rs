//! Sessions keeping a key expanded ([`Session`] keeps only the key bytes of
//! a direction used now and then): the endpoint lists them when they
//! start to, looks at them every [`COOL_EVERY`], and forgets each once
//! neither its keys nor those before its last re-key are expanded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Conn, State};
use crate::crypto::session::Session;

/// How often sessions keeping their keys expanded are looked at.
pub(super) const COOL_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Busy {
    /// Sessions by index; one may be listed twice after a re-key, which
    /// costs a second look and nothing else.
    list: Vec<u32>,
    next: Option<Instant>,
    /// When the endpoint was made: sessions count seconds from it.
    started: Instant,
}

impl Busy {
    pub(super) fn new(now: Instant) -> Busy {
        Busy {
            list: Vec::new(),
            next: None,
            started: now,
        }
    }

    /// Whole seconds since the endpoint was made: the clock by which a
    /// session tells a busy key from one used now and then
    /// ([`Session::at`]).
    pub(super) fn second(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.started).as_secs()).unwrap_or(u32::MAX)
    }

    /// Lists session `index` if `session` (its current keys or those
    /// before its re-key) has just started keeping a key expanded.
    pub(super) fn note(&mut self, now: Instant, index: u32, session: &mut Session) {
        if session.to_cool() {
            self.list.push(index);
            self.next.get_or_insert(now + COOL_EVERY);
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Gives back the expansions not used lately; forgets the sessions
    /// that keep none.
    pub(super) fn on_timeout(&mut self, now: Instant, conns: &mut HashMap<u32, Box<Conn>>) {
        if self.next.is_none_or(|at| now < at) {
            return;
        }
        let second = self.second(now);
        self.list
            .retain(|index| match conns.get_mut(index).map(|c| &mut c.state) {
                Some(State::Established {
                    session, previous, ..
                }) => {
                    let before = previous.as_mut().is_some_and(|p| p.cool(second));
                    session.cool(second) | before
                }
                _ => false,
            });
        self.next = (!self.list.is_empty()).then_some(now + COOL_EVERY);
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

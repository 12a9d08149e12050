//! [`ReplayWindow`]: which packet counters a session has already accepted,
//! as a sliding bitmap of [`WINDOW`] counters (RFC 6479's ring of 64-bit
//! blocks, with one spare block so the full window is usable).
//!
//! A counter is new if it is above every counter seen, or within the window
//! below the highest and not yet marked. The session checks first, opens
//! the AEAD, and marks only after the AEAD verified, so forged packets never
//! move the window.

/// Counters below the highest seen by this many or more are refused.
/// Four times the transport's window of fragments in flight (256), as
/// boringtun keeps for WireGuard: a packet overtaken by more than that is
/// refused, and the transport sends its content again. 136 bytes a
/// session, where 4,096 took 520.
pub const WINDOW: u64 = 1024;

const BLOCK_BITS: u64 = 64;
/// One block more than the window needs, so the block being filled never
/// overwrites the oldest block still inside the window.
const BLOCKS: usize = (WINDOW / BLOCK_BITS) as usize + 1;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("packet {counter} was already received")]
    Duplicate { counter: u64 },
    #[error("packet {counter} is older than the replay window")]
    TooOld { counter: u64 },
}

/// The accepted counters of one receiving direction.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    highest: Option<u64>,
    blocks: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl ReplayWindow {
    pub fn new() -> ReplayWindow {
        ReplayWindow {
            highest: None,
            blocks: [0; BLOCKS],
        }
    }

    /// Whether `counter` would be accepted; changes nothing.
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if counter > highest {
            return Ok(());
        }
        if highest - counter >= WINDOW {
            return Err(ReplayError::TooOld { counter });
        }
        let (block, bit) = position(counter);
        if self.blocks[block] & bit != 0 {
            return Err(ReplayError::Duplicate { counter });
        }
        Ok(())
    }

    /// Records `counter` as received. Call only after [`check`] passed and
    /// the packet authenticated.
    ///
    /// [`check`]: ReplayWindow::check
    pub fn mark(&mut self, counter: u64) {
        match self.highest {
            Some(highest) if counter <= highest => {
                if highest - counter >= WINDOW {
                    return;
                }
            }
            _ => {
                // Clear the blocks the window slides over.
                let first_new_block = match self.highest {
                    Some(highest) => highest / BLOCK_BITS + 1,
                    None => 0,
                };
                let last_block = counter / BLOCK_BITS;
                if last_block >= first_new_block {
                    let count = (last_block - first_new_block + 1).min(BLOCKS as u64);
                    for i in 0..count {
                        let block = ((last_block - i) % BLOCKS as u64) as usize;
                        self.blocks[block] = 0;
                    }
                }
                self.highest = Some(counter);
            }
        }
        let (block, bit) = position(counter);
        self.blocks[block] |= bit;
    }

    /// [`check`], then [`mark`] if it passed.
    ///
    /// [`check`]: ReplayWindow::check
    /// [`mark`]: ReplayWindow::mark
    pub fn check_and_mark(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        self.mark(counter);
        Ok(())
    }
}

fn position(counter: u64) -> (usize, u64) {
    let block = ((counter / BLOCK_BITS) % BLOCKS as u64) as usize;
    (block, 1u64 << (counter % BLOCK_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_counters_are_accepted() {
        let mut window = ReplayWindow::new();
        for counter in 0..10_000 {
            window.check_and_mark(counter).unwrap();
        }
    }

    #[test]
    fn reordering_within_the_window_is_accepted() {
        let mut window = ReplayWindow::new();
        window.check_and_mark(5000).unwrap();
        for counter in (5000 - WINDOW + 1..5000).rev() {
            window.check_and_mark(counter).unwrap();
        }
        window.check_and_mark(5002).unwrap();
        window.check_and_mark(5001).unwrap();
    }

    #[test]
    fn duplicates_are_refused() {
        let mut window = ReplayWindow::new();
        window.check_and_mark(0).unwrap();
        assert_eq!(
            window.check_and_mark(0),
            Err(ReplayError::Duplicate { counter: 0 })
        );
        window.check_and_mark(100).unwrap();
        window.check_and_mark(50).unwrap();
        assert_eq!(
            window.check(50),
            Err(ReplayError::Duplicate { counter: 50 })
        );
        assert_eq!(
            window.check(100),
            Err(ReplayError::Duplicate { counter: 100 })
        );
    }

    #[test]
    fn counters_older_than_the_window_are_refused() {
        let mut window = ReplayWindow::new();
        window.check_and_mark(WINDOW + 10).unwrap();
        assert_eq!(window.check(10), Err(ReplayError::TooOld { counter: 10 }));
        assert!(window.check(11).is_ok());
    }

    #[test]
    fn a_far_jump_ahead_forgets_the_old_bits() {
        let mut window = ReplayWindow::new();
        for counter in 0..100 {
            window.check_and_mark(counter).unwrap();
        }
        let far = 1_000_000;
        window.check_and_mark(far).unwrap();
        // Everything just below the new top is unseen, not stale bits that
        // alias the old counters.
        for counter in far - WINDOW + 1..far {
            assert!(window.check(counter).is_ok(), "{counter}");
        }
        assert_eq!(window.check(99), Err(ReplayError::TooOld { counter: 99 }));
        assert!(window.check(u64::MAX).is_ok());
        window.check_and_mark(u64::MAX).unwrap();
        assert!(window.check(u64::MAX).is_err());
    }

    #[test]
    fn check_alone_changes_nothing() {
        let mut window = ReplayWindow::new();
        assert!(window.check(7).is_ok());
        assert!(window.check(7).is_ok());
        window.mark(7);
        assert!(window.check(7).is_err());
    }

    proptest! {
        /// The window agrees with a set of every accepted counter.
        #[test]
        fn matches_a_model(counters in proptest::collection::vec(0u64..20_000, 1..400)) {
            let mut window = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            for counter in counters {
                let highest = seen.iter().next_back().copied();
                let expected = match highest {
                    Some(h) if counter <= h && h - counter >= WINDOW => Err(ReplayError::TooOld { counter }),
                    _ if seen.contains(&counter) => Err(ReplayError::Duplicate { counter }),
                    _ => Ok(()),
                };
                prop_assert_eq!(window.check_and_mark(counter), expected);
                if expected.is_ok() {
                    seen.insert(counter);
                }
            }
        }
    }
}

//! [`ReplayWindow`]: which packet counters a session has already accepted,
//! as a sliding bitmap of [`WINDOW`] counters (RFC 6479's ring of 64-bit
//! blocks, with one spare block so the full window is usable).
//!
//! A counter is new if it is above every counter seen, or within the window
//! below the highest and not yet marked. The session checks first, opens
//! the AEAD, and marks only after the AEAD verified, so forged packets never
//! move the window.
//!
//! The bitmap exists only while the window has a gap: counters that came in
//! order need none (every counter up to the highest was seen), so a session
//! that only keeps alive holds 24 bytes here instead of 152.

/// Counters below the highest seen by this many or more are refused.
/// Four times the transport's window of fragments in flight (256), as
/// boringtun keeps for WireGuard: a packet overtaken by more than that is
/// refused, and the transport sends its content again. 136 bytes of
/// bitmap while a counter in the window is missing (4,096 took 520), none
/// while every counter came.
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
    /// `None` while every counter in the window up to `highest` was seen
    /// (the usual case: packets come in order); made when one is skipped,
    /// and given back once none in the window is missing.
    blocks: Option<Box<[u64; BLOCKS]>>,
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
            blocks: None,
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
        let seen = match &self.blocks {
            None => true,
            Some(blocks) => {
                let (block, bit) = position(counter);
                blocks[block] & bit != 0
            }
        };
        if seen {
            return Err(ReplayError::Duplicate { counter });
        }
        Ok(())
    }

    /// Records `counter` as received. Call only after [`check`] passed and
    /// the packet authenticated.
    ///
    /// [`check`]: ReplayWindow::check
    pub fn mark(&mut self, counter: u64) {
        let next = self.highest.map_or(0, |highest| highest.saturating_add(1));
        if self.blocks.is_none() {
            if counter < next {
                // Seen already: every counter up to the highest was.
                return;
            }
            if counter == next {
                self.highest = Some(counter);
                return;
            }
            // A counter skipped: from here on the window needs its bits.
            self.blocks = Some(Box::new(all_seen_up_to(self.highest)));
        }
        self.mark_in_bitmap(counter);
        if let (Some(blocks), Some(highest)) = (&self.blocks, self.highest) {
            if window_masks(highest).all(|(block, mask)| blocks[block] & mask == mask) {
                self.blocks = None;
            }
        }
    }

    /// Whether the window holds a bitmap (a counter in it was skipped).
    #[cfg(test)]
    fn has_bitmap(&self) -> bool {
        self.blocks.is_some()
    }

    fn mark_in_bitmap(&mut self, counter: u64) {
        let Some(blocks) = self.blocks.as_deref_mut() else {
            return;
        };
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
                        blocks[block] = 0;
                    }
                }
                self.highest = Some(counter);
            }
        }
        let (block, bit) = position(counter);
        blocks[block] |= bit;
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

/// The bitmap of a window whose counters were all seen, from the window's
/// lowest (or 0) up to `highest`: what `mark` starts from when a counter is
/// first skipped.
fn all_seen_up_to(highest: Option<u64>) -> [u64; BLOCKS] {
    let mut blocks = [0; BLOCKS];
    for (block, mask) in highest.into_iter().flat_map(window_masks) {
        blocks[block] = mask;
    }
    blocks
}

/// The window below and at `highest` as (block, bits) pairs: the counters
/// from `highest - WINDOW + 1` (or 0) up to `highest`, block by block.
fn window_masks(highest: u64) -> impl Iterator<Item = (usize, u64)> {
    let lowest = highest.saturating_sub(WINDOW - 1);
    let (first, last) = (lowest / BLOCK_BITS, highest / BLOCK_BITS);
    (first..=last).map(move |block| {
        let from = if block == first {
            lowest % BLOCK_BITS
        } else {
            0
        };
        let to = if block == last {
            highest % BLOCK_BITS
        } else {
            BLOCK_BITS - 1
        };
        let width = to - from + 1;
        let mask = (u64::MAX >> (BLOCK_BITS - width)) << from;
        ((block % BLOCKS as u64) as usize, mask)
    })
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

    #[test]
    fn counters_in_order_need_no_bitmap() {
        let mut window = ReplayWindow::new();
        for counter in 0..5_000 {
            window.check_and_mark(counter).unwrap();
            assert!(!window.has_bitmap(), "{counter}");
        }
        assert_eq!(
            window.check(4_999),
            Err(ReplayError::Duplicate { counter: 4_999 })
        );
        assert_eq!(
            window.check(1_000),
            Err(ReplayError::TooOld { counter: 1_000 })
        );
    }

    #[test]
    fn a_skipped_counter_keeps_a_bitmap_until_it_comes_or_leaves_the_window() {
        let mut window = ReplayWindow::new();
        for counter in 0..100 {
            window.check_and_mark(counter).unwrap();
        }
        // 100 is skipped: it must still be accepted late, once.
        window.check_and_mark(101).unwrap();
        assert!(window.has_bitmap());
        assert!(window.check(100).is_ok());
        assert!(window.check(99).is_err());
        window.check_and_mark(100).unwrap();
        assert!(!window.has_bitmap());
        assert!(window.check(100).is_err());
        // 200 never comes: the bitmap goes when 200 leaves the window.
        for counter in 102..200 {
            window.check_and_mark(counter).unwrap();
        }
        for counter in 201..200 + WINDOW {
            window.check_and_mark(counter).unwrap();
            assert!(window.has_bitmap(), "{counter}");
            assert!(window.check(200).is_ok());
        }
        window.check_and_mark(200 + WINDOW).unwrap();
        assert!(!window.has_bitmap());
        assert_eq!(window.check(200), Err(ReplayError::TooOld { counter: 200 }));
        // A session whose first packet is not counter 0.
        let mut window = ReplayWindow::new();
        window.check_and_mark(3).unwrap();
        assert!(window.has_bitmap());
        for counter in [1, 0, 2] {
            window.check_and_mark(counter).unwrap();
        }
        assert!(!window.has_bitmap());
        assert!(window.check(2).is_err());
    }

    /// What a set of every accepted counter says of `counter`.
    fn modelled(seen: &std::collections::BTreeSet<u64>, counter: u64) -> Result<(), ReplayError> {
        match seen.iter().next_back().copied() {
            Some(h) if counter <= h && h - counter >= WINDOW => {
                Err(ReplayError::TooOld { counter })
            }
            _ if seen.contains(&counter) => Err(ReplayError::Duplicate { counter }),
            _ => Ok(()),
        }
    }

    proptest! {
        /// The window agrees with a set of every accepted counter.
        #[test]
        fn matches_a_model(counters in proptest::collection::vec(0u64..20_000, 1..400)) {
            let mut window = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            for counter in counters {
                let expected = modelled(&seen, counter);
                prop_assert_eq!(window.check_and_mark(counter), expected);
                if expected.is_ok() {
                    seen.insert(counter);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The same, for counters that mostly come in order, with a few
        /// skipped (`jumps` in 1,000), some repeated or late: the bitmap
        /// exists exactly while a counter in the window is missing.
        #[test]
        fn matches_a_model_when_counters_mostly_come_in_order(
            jumps in 0u64..4,
            steps in proptest::collection::vec(0u64..1_000, 1..3_000),
        ) {
            let mut window = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut next = 0u64;
            for step in steps {
                let counter = match step {
                    _ if step < jumps => next + 1 + step % 8,
                    990..=995 => next.saturating_sub(step - 989),
                    996..=999 => next.saturating_sub((step - 995) * 300),
                    _ => next,
                };
                let expected = modelled(&seen, counter);
                prop_assert_eq!(window.check_and_mark(counter), expected);
                if expected.is_ok() {
                    seen.insert(counter);
                }
                next = next.max(counter + 1);
                let highest = *seen.iter().next_back().unwrap();
                let lowest = highest.saturating_sub(WINDOW - 1);
                let gap = seen.range(lowest..=highest).count() as u64 != highest - lowest + 1;
                prop_assert_eq!(window.has_bitmap(), gap);
            }
        }
    }
}

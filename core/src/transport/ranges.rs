//! The set of packet numbers a receiver has accepted, kept as a bounded list
//! of disjoint ranges: what every ACK reports.
//!
//! A lost packet leaves a permanent hole (its retransmission gets a new
//! number), so the list only grows; past the bound the lowest ranges go.
//! Those were reported by many earlier ACKs already, and the sender has long
//! declared anything that old acknowledged or lost.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub(crate) struct RangeSet {
    /// Ascending, disjoint and never adjacent: `(start, end)` inclusive.
    ranges: VecDeque<(u64, u64)>,
    cap: usize,
}

impl RangeSet {
    pub fn new(cap: usize) -> RangeSet {
        RangeSet {
            // Room for one range: a peer whose packets all come (the most,
            // and every idle one) never needs a second, and a deque's
            // first push would otherwise make room for four (48 bytes more
            // per session).
            ranges: VecDeque::with_capacity(1),
            cap: cap.max(1),
        }
    }

    pub fn insert(&mut self, pn: u64) {
        let idx = self.ranges.partition_point(|&(_, end)| end < pn);
        if self.ranges.get(idx).is_some_and(|&(start, _)| start <= pn) {
            return;
        }
        // The range before ends below pn and the one at idx starts above it,
        // so neither +1 can overflow.
        let joins_prev = idx > 0 && self.ranges[idx - 1].1 + 1 == pn;
        let joins_next = self
            .ranges
            .get(idx)
            .is_some_and(|&(start, _)| pn + 1 == start);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[idx - 1].1 = self.ranges[idx].1;
                self.ranges.remove(idx);
            }
            (true, false) => self.ranges[idx - 1].1 = pn,
            (false, true) => self.ranges[idx].0 = pn,
            (false, false) => self.ranges.insert(idx, (pn, pn)),
        }
        while self.ranges.len() > self.cap {
            self.ranges.pop_front();
        }
    }

    /// Largest range first, the order an ACK carries them in.
    pub fn iter_desc(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().rev().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn neighbours_merge_into_one_range() {
        let mut set = RangeSet::new(8);
        for pn in [5, 7, 6, 1, 2, 9] {
            set.insert(pn);
        }
        assert_eq!(
            set.iter_desc().collect::<Vec<_>>(),
            vec![(9, 9), (5, 7), (1, 2)]
        );
    }

    #[test]
    fn the_lowest_ranges_go_first_past_the_cap() {
        let mut set = RangeSet::new(3);
        for pn in (0..20).step_by(2) {
            set.insert(pn);
        }
        assert_eq!(
            set.iter_desc().collect::<Vec<_>>(),
            vec![(18, 18), (16, 16), (14, 14)]
        );
    }

    proptest! {
        #[test]
        fn matches_a_plain_set(pns in proptest::collection::vec(0u64..200, 0..300)) {
            let mut set = RangeSet::new(usize::MAX);
            let mut plain = BTreeSet::new();
            for pn in pns {
                set.insert(pn);
                plain.insert(pn);
            }
            let expanded: BTreeSet<u64> = set.iter_desc().flat_map(|(s, e)| s..=e).collect();
            prop_assert_eq!(&expanded, &plain);
            let ranges: Vec<_> = set.iter_desc().collect();
            for pair in ranges.windows(2) {
                prop_assert!(pair[1].1 + 1 < pair[0].0, "ranges must keep a gap: {:?}", pair);
            }
        }
    }
}

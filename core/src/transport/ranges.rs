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
    /// The highest range, `(start, end)` inclusive; `start > end` while
    /// the set is empty. Kept in place: a peer whose packets all come (the
    /// most, and every idle one) has no other, so its set needs no memory
    /// of its own, and a packet that extends this range touches none.
    top: (u64, u64),
    /// The ranges below `top`: ascending, disjoint and never adjacent, to
    /// each other or to `top`. Allocated once a packet goes missing.
    below: VecDeque<(u64, u64)>,
    cap: usize,
}

const EMPTY: (u64, u64) = (1, 0);

impl RangeSet {
    pub fn new(cap: usize) -> RangeSet {
        RangeSet {
            top: EMPTY,
            below: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub fn insert(&mut self, pn: u64) {
        let (start, end) = self.top;
        if start > end {
            self.top = (pn, pn);
            return;
        }
        if (start..=end).contains(&pn) {
            return;
        }
        if pn > end {
            if pn == end + 1 {
                self.top.1 = pn;
                return;
            }
            // A gap: the top range moves below, and the new packet starts
            // the next.
            self.below.push_back(self.top);
            self.top = (pn, pn);
        } else if pn + 1 == start {
            // It may close the gap to the range below.
            self.top.0 = match self.below.back() {
                Some(&(below, end)) if end + 1 == pn => {
                    self.below.pop_back();
                    below
                }
                _ => pn,
            };
        } else {
            insert_below(&mut self.below, pn);
        }
        while self.below.len() + 1 > self.cap {
            self.below.pop_front();
        }
    }

    /// Largest range first, the order an ACK carries them in.
    pub fn iter_desc(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let top = (self.top.0 <= self.top.1).then_some(self.top);
        top.into_iter().chain(self.below.iter().rev().copied())
    }
}

/// Adds `pn`, below the top range and not adjacent to it, to the ranges
/// kept below it.
fn insert_below(ranges: &mut VecDeque<(u64, u64)>, pn: u64) {
    let idx = ranges.partition_point(|&(_, end)| end < pn);
    if ranges.get(idx).is_some_and(|&(start, _)| start <= pn) {
        return;
    }
    // The range before ends below pn and the one at idx starts above it,
    // so neither +1 can overflow.
    let joins_prev = idx > 0 && ranges[idx - 1].1 + 1 == pn;
    let joins_next = ranges.get(idx).is_some_and(|&(start, _)| pn + 1 == start);
    match (joins_prev, joins_next) {
        (true, true) => {
            ranges[idx - 1].1 = ranges[idx].1;
            ranges.remove(idx);
        }
        (true, false) => ranges[idx - 1].1 = pn,
        (false, true) => ranges[idx].0 = pn,
        (false, false) => ranges.insert(idx, (pn, pn)),
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

    /// The list kept whole, lowest dropped past the cap: what the set
    /// reports must be the same.
    fn plain_capped(pns: &[u64], cap: usize) -> Vec<(u64, u64)> {
        let mut ranges = VecDeque::new();
        for &pn in pns {
            insert_below(&mut ranges, pn);
            while ranges.len() > cap {
                ranges.pop_front();
            }
        }
        ranges.into_iter().rev().collect()
    }

    proptest! {
        #[test]
        fn keeps_what_a_plain_capped_list_keeps(
            pns in proptest::collection::vec(0u64..100, 0..200),
            cap in 1usize..6,
        ) {
            let mut set = RangeSet::new(cap);
            for &pn in &pns {
                set.insert(pn);
            }
            prop_assert_eq!(set.iter_desc().collect::<Vec<_>>(), plain_capped(&pns, cap));
        }

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

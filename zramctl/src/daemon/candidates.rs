//! Writeback candidates from one pass over the slot array, kept small: the
//! `k` oldest touched slots (a bounded heap) and up to `k` untouched ones,
//! and the slots this daemon wrote back as one bit per slot.

use std::{cmp::Reverse, collections::BinaryHeap};

use zramctl_common::SlotState;

/// Slots this daemon wrote back, one bit each. A slot leaves the set when
/// a scan finds it accessed at or after the previous scan: every round
/// scans before it writes back, so a page written back in one round and
/// touched (read back, rewritten, freed) after it shows a newer access time
/// at the next scan, while the pages it wrote back were older than that
/// round's scan.
#[derive(Clone, Debug, Default)]
pub struct WrittenBack {
    bits: Vec<u64>,
    /// Slot time (`SlotState::last_time` units) of the last scan.
    last_scan: Option<u32>,
}

impl WrittenBack {
    #[cfg(test)]
    pub fn new(slots: usize) -> Self {
        WrittenBack {
            bits: vec![0; slots.div_ceil(64)],
            last_scan: None,
        }
    }

    /// Room for `slots` slots.
    pub fn ensure(&mut self, slots: usize) {
        let words = slots.div_ceil(64);
        if self.bits.len() < words {
            self.bits.resize(words, 0);
        }
    }

    /// Forgets everything (a reset device, new probes).
    pub fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.last_scan = None;
    }

    pub fn contains(&self, i: u64) -> bool {
        self.bits
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: u64, on: bool) {
        let need = (i / 64) as usize + 1;
        if self.bits.len() < need {
            self.bits.resize(need, 0);
        }
        let w = &mut self.bits[(i / 64) as usize];
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }

    /// Marks inclusive ranges written back.
    pub fn mark(&mut self, ranges: &[(u64, u64)]) {
        for &(a, b) in ranges {
            for i in a..=b {
                self.set(i, true);
            }
        }
    }

    /// Slots in the set.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// During a scan: whether slot `i` (state `s`) is still on the backing
    /// device untouched (then it is no candidate); drops it from the set
    /// when it was touched since the last scan.
    pub fn still_written_back(&mut self, i: u64, s: &SlotState) -> bool {
        if !self.contains(i) {
            return false;
        }
        match self.last_scan {
            Some(t) if s.last_time >= t => {
                self.set(i, false);
                false
            }
            _ => true,
        }
    }

    /// Records the time of the scan that just ended.
    pub fn scanned_at(&mut self, slot_time: u32) {
        self.last_scan = Some(slot_time);
    }
}

/// The candidates of one scan.
#[derive(Debug)]
pub struct Candidates {
    k: usize,
    /// Min-heap of (age, Reverse(index)): the top is the youngest (then the
    /// highest index), dropped first when more than `k`.
    touched: BinaryHeap<Reverse<(u64, Reverse<u64>)>>,
    untouched: Vec<(u64, u64)>,
    /// Touched slots that hold data (last op not a free).
    pub touched_with_data: u64,
}

impl Candidates {
    pub fn new(k: usize) -> Self {
        Candidates {
            k,
            touched: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
            untouched: Vec::new(),
            touched_with_data: 0,
        }
    }

    /// A slot accessed since the probes attached, `age` seconds ago.
    pub fn touched(&mut self, i: u64, age: u64) {
        if self.k == 0 {
            return;
        }
        let item = Reverse((age, Reverse(i)));
        if self.touched.len() == self.k {
            // Full: only an older one (or as old with a lower index) gets in.
            match self.touched.peek() {
                Some(top) if item < *top => {
                    self.touched.pop();
                }
                _ => return,
            }
        }
        self.touched.push(item);
    }

    /// A slot not accessed since the probes attached (age: since attach).
    pub fn untouched(&mut self, i: u64, age: u64) {
        if self.untouched.len() < self.k {
            self.untouched.push((i, age));
        }
    }

    /// `(slot, age)` candidates: the touched ones, and the untouched ones
    /// while the device holds more pages in RAM (`stored`) than the touched
    /// slots account for (data from before the attach); on a device set up
    /// after the attach the untouched slots are empty, and writing back
    /// empty slots wastes whole rounds.
    pub fn into_slots(self, stored: u64) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self
            .touched
            .into_iter()
            .map(|Reverse((age, Reverse(i)))| (i, age))
            .collect();
        if stored > self.touched_with_data {
            v.extend(self.untouched);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_oldest_with_index_ties() {
        let mut c = Candidates::new(3);
        for (i, age) in [(0, 5), (1, 50), (2, 7), (3, 50), (4, 1), (5, 60), (6, 50)] {
            c.touched(i, age);
        }
        let mut v = c.into_slots(0);
        v.sort();
        // 5 (60), then the 50s by index: 1, 3.
        assert_eq!(v, [(1, 50), (3, 50), (5, 60)]);
        let mut c = Candidates::new(0);
        c.touched(1, 100);
        assert!(c.into_slots(0).is_empty());
    }

    #[test]
    fn same_choice_as_a_full_list() {
        // One pass keeping k equals select_cold over every candidate.
        let all: Vec<(u64, u64)> = (0..5000u64).map(|i| (i, (i * 7919) % 1000)).collect();
        for k in [1usize, 10, 999, 5000, 6000] {
            let mut c = Candidates::new(k);
            for &(i, a) in &all {
                c.touched(i, a);
            }
            let kept = c.into_slots(0);
            for threshold in [0, 500, 999] {
                assert_eq!(
                    crate::policy::cold::select_cold(kept.iter().copied(), threshold, k as u64),
                    crate::policy::cold::select_cold(all.iter().copied(), threshold, k as u64),
                    "k {k} threshold {threshold}"
                );
            }
        }
    }

    #[test]
    fn untouched_only_while_ram_holds_more() {
        let mut c = Candidates::new(4);
        c.touched_with_data = 2;
        c.touched(9, 10);
        for i in 0..10 {
            c.untouched(i, 99);
        }
        assert_eq!(Candidates::into_slots(clone(&c), 2).len(), 1);
        assert_eq!(c.into_slots(3).len(), 5);
    }

    fn clone(c: &Candidates) -> Candidates {
        Candidates {
            k: c.k,
            touched: c.touched.clone(),
            untouched: c.untouched.clone(),
            touched_with_data: c.touched_with_data,
        }
    }

    #[test]
    fn written_back_until_touched() {
        let s = |t| SlotState {
            last_time: t,
            ..SlotState::default()
        };
        let mut wb = WrittenBack::new(100);
        wb.scanned_at(10); // round 1 scans at 10, writes back 3-5
        wb.mark(&[(3, 5)]);
        assert_eq!(wb.count(), 3);
        // Round 2: slot 4 was read back at 12, slot 3 is as it was.
        assert!(wb.still_written_back(3, &s(2)));
        assert!(!wb.still_written_back(4, &s(12)));
        assert!(!wb.still_written_back(7, &s(1)));
        assert!(wb.still_written_back(5, &s(9)));
        wb.scanned_at(20);
        assert_eq!(wb.count(), 2);
        // Round 3: slot 5 was freed at 25 (after round 2's scan).
        assert!(wb.still_written_back(3, &s(2)));
        assert!(!wb.still_written_back(5, &s(25)));
        assert_eq!(wb.count(), 1);
        wb.clear();
        assert_eq!(wb.count(), 0);
    }
}

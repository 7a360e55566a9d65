//! Cold-page choice: from per-slot state (eBPF) to candidate ages, and from
//! those to coalesced page ranges.

use std::collections::HashMap;

use zramctl_common::{SLOT_TIME_SHIFT, SlotState};

/// Longest value the kernel takes in one sysfs write (PAGE_SIZE, minus the
/// terminating byte).
pub const SYSFS_WRITE_MAX: usize = 4095;

/// What the slot array says about one device at one moment.
#[derive(Clone, Copy, Debug)]
pub struct SlotClock {
    /// CLOCK_MONOTONIC of the read, ns (the clock of `SlotState::last_time`).
    pub now_ns: u64,
    /// When the probes were attached, same clock.
    pub attached_ns: u64,
}

/// The write-back candidates of a device, `(slot index, age in seconds)`,
/// from its per-slot state.
///
/// A slot is left out while it is on the backing device: `written_back`
/// maps slots written back to their access time then, and an entry whose
/// slot was touched since is dropped (the page came back to RAM). A slot
/// never touched since the probes attached has the attach's age; such slots
/// are the oldest, but on a device set up after the attach (or reset since)
/// they are empty, and writing back empty slots wastes whole rounds. So
/// they are candidates only while the device holds more pages in RAM
/// (`stored_pages`) than the touched slots account for (data from before
/// the attach). Ages are [`ranked_age`]s.
pub fn candidates(
    slots: &[SlotState],
    clock: SlotClock,
    written_back: &mut HashMap<u64, u32>,
    stored_pages: u64,
    reread_age_factor: Option<f64>,
) -> Vec<(u64, u64)> {
    let now_t = clock.now_ns >> SLOT_TIME_SHIFT;
    let attach_age = clock.now_ns.saturating_sub(clock.attached_ns) / 1_000_000_000;
    let mut cands = Vec::with_capacity(slots.len());
    let mut untouched = Vec::new();
    let mut touched_with_data = 0u64;
    for (i, s) in slots.iter().enumerate() {
        let i = i as u64;
        if let Some(&t) = written_back.get(&i) {
            if t == s.last_time {
                continue; // still on the backing device, untouched
            }
            written_back.remove(&i);
        }
        let age = if s.last_time == 0 {
            attach_age
        } else {
            (now_t.saturating_sub(u64::from(s.last_time)) << SLOT_TIME_SHIFT) / 1_000_000_000
        };
        if s.reads == 0 && s.writes == 0 && s.discards == 0 {
            untouched.push((i, age));
            continue;
        }
        if s.writes > s.discards || s.reads > 0 {
            touched_with_data += 1;
        }
        cands.push((i, ranked_age(age, s.reads, reread_age_factor)));
    }
    if stored_pages > touched_with_data {
        cands.extend(untouched);
    }
    cands
}

/// The age a candidate is ranked and thresholded by: its idle age, divided
/// by `reread_age_factor` when the slot has been read before (`reads`, the
/// eBPF per-slot read count). See [`super::RoundConfig::reread_age_factor`].
pub fn ranked_age(age_secs: u64, reads: u32, reread_age_factor: Option<f64>) -> u64 {
    match reread_age_factor {
        Some(f) if reads > 0 && f > 1.0 => (age_secs as f64 / f) as u64,
        _ => age_secs,
    }
}

/// The `max_pages` oldest candidates whose age is at least `threshold_secs`,
/// as inclusive `(first, last)` ranges of adjacent slots, ordered by the age
/// of their oldest slot (oldest first; ties by index).
///
/// `candidates` are `(slot index, age in seconds)`; the caller leaves out
/// slots that hold nothing or are already on the backing device.
pub fn select_cold(
    candidates: impl IntoIterator<Item = (u64, u64)>,
    threshold_secs: u64,
    max_pages: u64,
) -> Vec<(u64, u64)> {
    if max_pages == 0 {
        return Vec::new();
    }
    let mut cold: Vec<(u64, u64)> = candidates
        .into_iter()
        .filter(|&(_, age)| age >= threshold_secs)
        .collect();
    // Oldest first, then by index for determinism.
    let take = (max_pages.min(cold.len() as u64)) as usize;
    if take < cold.len() {
        cold.select_nth_unstable_by(take, |a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        cold.truncate(take);
    }
    // Coalesce adjacent indexes; a range's age is its oldest member's.
    cold.sort_unstable_by_key(|&(i, _)| i);
    cold.dedup_by_key(|&mut (i, _)| i);
    let mut ranges: Vec<(u64, u64, u64)> = Vec::new(); // first, last, max age
    for (i, age) in cold {
        match ranges.last_mut() {
            Some((_, last, oldest)) if *last + 1 == i => {
                *last = i;
                *oldest = (*oldest).max(age);
            }
            _ => ranges.push((i, i, age)),
        }
    }
    ranges.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    ranges.into_iter().map(|(a, b, _)| (a, b)).collect()
}

/// Pages in a set of inclusive ranges.
pub fn pages_in(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|&(a, b)| b - a + 1).sum()
}

/// Keeps ranges in order until `max_pages` pages, cutting the last one.
pub fn truncate_pages(ranges: &[(u64, u64)], max_pages: u64) -> Vec<(u64, u64)> {
    let mut left = max_pages;
    let mut out = Vec::new();
    for &(a, b) in ranges {
        if left == 0 {
            break;
        }
        let n = (b - a + 1).min(left);
        out.push((a, a + n - 1));
        left -= n;
    }
    out
}

/// Splits ranges into groups whose `page_index=`/`page_indexes=` tokens,
/// space separated, fit one sysfs write.
pub fn chunk_for_sysfs(ranges: &[(u64, u64)]) -> Vec<Vec<(u64, u64)>> {
    let mut out: Vec<Vec<(u64, u64)>> = Vec::new();
    let mut len = 0usize;
    for &(a, b) in ranges {
        let tok = if a == b {
            format!("page_index={a}").len()
        } else {
            format!("page_indexes={a}-{b}").len()
        };
        match out.last_mut() {
            Some(cur) if len + 1 + tok <= SYSFS_WRITE_MAX => {
                cur.push((a, b));
                len += 1 + tok;
            }
            _ => {
                out.push(vec![(a, b)]);
                len = tok;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_from_slot_state() {
        const S: u64 = 1_000_000_000;
        let unit = |ns: u64| (ns >> SLOT_TIME_SHIFT) as u32;
        let clock = SlotClock {
            now_ns: 1000 * S,
            attached_ns: 400 * S,
        };
        let slot = |t_s: u64, reads, writes, discards| SlotState {
            last_time: if t_s == 0 { 0 } else { unit(t_s * S) },
            reads,
            writes,
            discards,
        };
        let slots = [
            slot(900, 1, 0, 0), // read 100 s ago
            slot(500, 0, 1, 0), // written 500 s ago
            slot(0, 0, 0, 0),   // untouched since the attach (600 s)
            slot(990, 0, 1, 0), // written back, then not touched
            slot(100, 0, 1, 1), // written and discarded: empty, still a candidate
        ];
        // Slot 3 went to the backing device at its current access time.
        let mut wb = HashMap::from([(3, slots[3].last_time), (1, 7)]);
        let ages = |c: &[(u64, u64)]| {
            c.iter()
                .map(|&(i, a)| (i, (a + 5) / 10 * 10))
                .collect::<Vec<_>>()
        };
        // Two pages in RAM, two touched slots hold data: untouched ones are empty.
        let c = candidates(&slots, clock, &mut wb, 2, None);
        assert_eq!(ages(&c), [(0, 100), (1, 500), (4, 900)]);
        // Slot 1 was touched since its writeback: back in RAM, forgotten.
        assert_eq!(wb, HashMap::from([(3, slots[3].last_time)]));
        // More pages in RAM than the touched slots hold: data from before
        // the attach, so untouched slots are candidates, aged since then.
        let c = candidates(&slots, clock, &mut wb, 3, None);
        assert_eq!(ages(&c), [(0, 100), (1, 500), (4, 900), (2, 600)]);
        // Read-back slots age 2 x slower: slot 0 (read once) 100 -> 50 s.
        let c = candidates(&slots, clock, &mut wb, 3, Some(2.0));
        assert_eq!(ages(&c), [(0, 50), (1, 500), (4, 900), (2, 600)]);
    }

    #[test]
    fn oldest_first_coalesced() {
        // Slots 10-12 are old, 20 older still, 5 is young.
        let c = [
            (10, 500),
            (11, 600),
            (12, 500),
            (20, 900),
            (5, 10),
            (30, 100),
        ];
        assert_eq!(select_cold(c, 100, 100), [(20, 20), (10, 12), (30, 30)]);
        // Only the 3 oldest: 20, 11, then 10 (tie with 12 broken by index).
        assert_eq!(select_cold(c, 100, 3), [(20, 20), (10, 11)]);
        assert_eq!(select_cold(c, 1000, 100), []);
        assert_eq!(select_cold(c, 0, 0), []);
    }

    #[test]
    fn truncation_and_sysfs_chunks() {
        assert_eq!(truncate_pages(&[(0, 9), (20, 29)], 12), [(0, 9), (20, 21)]);
        assert_eq!(pages_in(&[(0, 9), (20, 21)]), 12);
        let many: Vec<(u64, u64)> = (0..2000).map(|i| (i * 10, i * 10 + 1)).collect();
        let chunks = chunk_for_sysfs(&many);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 2000);
        for c in &chunks {
            let s: Vec<String> = c
                .iter()
                .map(|&(a, b)| {
                    crate::sysfs::WritebackMode::Pages { first: a, last: b }.sysfs_token()
                })
                .collect();
            assert!(s.join(" ").len() <= SYSFS_WRITE_MAX);
        }
    }
}

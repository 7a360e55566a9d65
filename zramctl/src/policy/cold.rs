//! Cold-page choice: from per-slot ages (eBPF) to coalesced page ranges.

/// Longest value the kernel takes in one sysfs write (PAGE_SIZE, minus the
/// terminating byte).
pub const SYSFS_WRITE_MAX: usize = 4095;

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

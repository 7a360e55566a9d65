//! Suspended time, for idle ages the kernel measures on boot time.
//!
//! zram's `ac_time` and `idle <secs>` use `ktime_get_boottime`, which keeps
//! counting while the machine sleeps: after a night in suspend every page
//! looks a night older. Android's mmd adds the time slept within the idle
//! window to the age it asks for (`SuspendHistory`); [`SuspendLog`] does
//! the same from the growth of CLOCK_BOOTTIME - CLOCK_MONOTONIC.

/// Sleeps of the machine on the boot-time clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SuspendLog {
    /// (boot time at wake-up, ns slept), oldest first.
    pub entries: Vec<(u64, u64)>,
    last_gap_ns: Option<u64>,
}

/// Entries kept (older sleeps rarely matter for ages of hours).
const MAX_ENTRIES: usize = 1024;

impl SuspendLog {
    /// Feeds both clocks; a grown gap between them is a sleep that ended
    /// before `boot_ns`.
    pub fn observe(&mut self, boot_ns: u64, mono_ns: u64) {
        let gap = boot_ns.saturating_sub(mono_ns);
        if let Some(last) = self.last_gap_ns
            && gap > last
        {
            self.entries.push((boot_ns, gap - last));
            if self.entries.len() > MAX_ENTRIES {
                self.entries.remove(0);
            }
        }
        self.last_gap_ns = Some(gap);
    }

    /// CLOCK_BOOTTIME - CLOCK_MONOTONIC at the last observation.
    pub fn gap_ns(&self) -> u64 {
        self.last_gap_ns.unwrap_or(0)
    }

    /// Total ns slept before boot time `t`.
    pub fn slept_before(&self, t: u64) -> u64 {
        self.entries
            .iter()
            .take_while(|&&(w, _)| w <= t)
            .map(|&(_, s)| s)
            .sum()
    }

    /// How much to add to an idle age `age_ns` measured on boot time at
    /// `now_ns` so that it spans `age_ns` of awake time: the sleeps that
    /// ended within the window, the window growing by each (mmd's
    /// `calculate_total_suspend_duration`).
    pub fn suspended_within(&self, age_ns: u64, now_ns: u64) -> u64 {
        let Some(target) = now_ns.checked_sub(age_ns) else {
            return 0;
        };
        let mut total = 0u64;
        for &(woke_at, slept) in self.entries.iter().rev() {
            let Some(t) = target.checked_sub(total) else {
                break;
            };
            if woke_at > t {
                total = total.saturating_add(slept);
            } else {
                break;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1_000_000_000;

    #[test]
    fn suspend_extends_the_window_as_mmd_does() {
        let mut s = SuspendLog::default();
        s.observe(0, 0);
        // Slept 10 s, noticed at boot 100 s; slept 5 s, noticed at 200 s.
        s.observe(100 * NS, 90 * NS);
        s.observe(200 * NS, 185 * NS);
        assert_eq!(s.entries, vec![(100 * NS, 10 * NS), (200 * NS, 5 * NS)]);
        assert_eq!(s.suspended_within(50 * NS, 210 * NS), 5 * NS);
        // Window [110, 210] holds the wake at 200; grown by 5 to 105, it
        // still misses the wake at 100.
        assert_eq!(s.suspended_within(100 * NS, 210 * NS), 5 * NS);
        assert_eq!(s.suspended_within(106 * NS, 210 * NS), 15 * NS);
        assert_eq!(s.suspended_within(300 * NS, 210 * NS), 0);
        assert_eq!(s.slept_before(150 * NS), 10 * NS);
    }
}

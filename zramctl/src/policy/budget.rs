//! Writeback budget: a token bucket of bytes, refilled at a steady rate
//! (bytes per day), enforced in the kernel through `writeback_limit`.
//!
//! Guarantee: over any interval `[t0, t1]`, what is charged is at most
//! `burst + rate * (t1 - t0)`, and since the start at most
//! `initial + rate * t`. Flash wear budgets (Android, ChromeOS) are stated
//! the same way: so many bytes a day.

use super::PAGE_SIZE;

/// Nanoseconds per day.
pub const DAY_NS: u64 = 86_400 * 1_000_000_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    bytes_per_day: u64,
    burst_bytes: u64,
    /// Bytes available now (fractional: the refill is continuous).
    tokens: f64,
    last_ns: u64,
    spent_total: u64,
}

impl Budget {
    /// A bucket that starts full (`burst_bytes`) at `now_ns`.
    pub fn new(bytes_per_day: u64, burst_bytes: u64, now_ns: u64) -> Self {
        Budget {
            bytes_per_day,
            burst_bytes,
            tokens: burst_bytes as f64,
            last_ns: now_ns,
            spent_total: 0,
        }
    }

    /// Adds what accrued since the last refill, up to the burst size. A
    /// clock that goes backwards adds nothing.
    pub fn refill(&mut self, now_ns: u64) {
        if now_ns <= self.last_ns {
            return;
        }
        let dt = (now_ns - self.last_ns) as f64;
        let add = self.bytes_per_day as f64 * dt / DAY_NS as f64;
        self.tokens = (self.tokens + add).min(self.burst_bytes as f64);
        self.last_ns = now_ns;
    }

    /// Whole pages that may be written now.
    pub fn available_pages(&self) -> u64 {
        (self.tokens.max(0.0) as u64) / PAGE_SIZE
    }

    /// Bytes available now (rounded down).
    pub fn available_bytes(&self) -> u64 {
        self.tokens.max(0.0) as u64
    }

    /// Charges pages written. Callers never write more than
    /// [`Self::available_pages`] (the kernel's writeback_limit stops them),
    /// so this cannot go negative; it clamps at zero to stay safe if the
    /// kernel reports more than was allowed.
    pub fn charge_pages(&mut self, pages: u64) {
        let bytes = pages.saturating_mul(PAGE_SIZE);
        self.tokens = (self.tokens - bytes as f64).max(0.0);
        self.spent_total = self.spent_total.saturating_add(bytes);
    }

    /// Bytes charged since creation.
    pub fn spent_total(&self) -> u64 {
        self.spent_total
    }

    pub fn bytes_per_day(&self) -> u64 {
        self.bytes_per_day
    }

    pub fn burst_bytes(&self) -> u64 {
        self.burst_bytes
    }

    /// Keeps what is left but adopts a new rate and burst (config reload).
    pub fn reconfigure(&mut self, bytes_per_day: u64, burst_bytes: u64, now_ns: u64) {
        self.refill(now_ns);
        self.bytes_per_day = bytes_per_day;
        self.burst_bytes = burst_bytes;
        self.tokens = self.tokens.min(burst_bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn refills_at_the_daily_rate_up_to_the_burst() {
        let mut b = Budget::new(GIB, GIB / 4, 0);
        assert_eq!(b.available_bytes(), GIB / 4);
        b.charge_pages(GIB / 4 / PAGE_SIZE);
        assert_eq!(b.available_pages(), 0);
        // Six hours later a quarter of the daily budget is back.
        b.refill(DAY_NS / 4);
        assert_eq!(b.available_bytes(), GIB / 4);
        // Never more than the burst, however long it waits.
        b.refill(10 * DAY_NS);
        assert_eq!(b.available_bytes(), GIB / 4);
        assert_eq!(b.spent_total(), GIB / 4);
    }

    #[test]
    fn clock_going_backwards_adds_nothing_and_overcharge_clamps() {
        let mut b = Budget::new(GIB, 8 * PAGE_SIZE, 1_000);
        b.charge_pages(8);
        b.refill(500);
        assert_eq!(b.available_pages(), 0);
        b.charge_pages(3);
        assert_eq!(b.available_pages(), 0);
        b.refill(1_000 + DAY_NS / 1000);
        assert!(b.available_pages() > 0);
    }

    #[test]
    fn reconfigure_keeps_what_is_left_within_the_new_burst() {
        let mut b = Budget::new(GIB, GIB, 0);
        b.reconfigure(GIB, 16 * PAGE_SIZE, 0);
        assert_eq!(b.available_pages(), 16);
        assert_eq!(b.burst_bytes(), 16 * PAGE_SIZE);
    }
}

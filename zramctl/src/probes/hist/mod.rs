//! Typed views of what the eBPF probes collect, and the math on them:
//! latency histograms (log2 ns buckets, bcc biolatency's shape) with
//! percentiles, slot-age histograms from per-slot access times, and access
//! rates from two counter snapshots. Pure code: unit-tested without BPF.

use serde::Serialize;
use zramctl_common::{
    DevCounters, LAT_BUCKETS, LatHist, RzramCounters, SLOT_TIME_SHIFT, SlotState, op, rzram_tp,
};

/// Folds per-CPU values of a map entry into one.
pub fn fold_per_cpu<T: Default>(values: &[T], add: impl Fn(&mut T, &T)) -> T {
    let mut total = T::default();
    for v in values {
        add(&mut total, v);
    }
    total
}

/// Lower and upper bound (ns, upper exclusive) of latency bucket `i`;
/// the last bucket has no upper bound.
pub fn lat_bucket_bounds(i: usize) -> (u64, Option<u64>) {
    let lo = if i == 0 { 0 } else { 1u64 << i };
    let hi = if i + 1 >= LAT_BUCKETS {
        None
    } else {
        Some(1u64 << (i + 1))
    };
    (lo, hi)
}

/// A latency histogram of one device and operation class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Counts per log2 bucket (see [`lat_bucket_bounds`]).
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_ns: u64,
}

impl From<&LatHist> for LatencyHistogram {
    fn from(h: &LatHist) -> Self {
        LatencyHistogram {
            buckets: h.buckets.to_vec(),
            count: h.count,
            sum_ns: h.sum_ns,
        }
    }
}

impl LatencyHistogram {
    /// Sum of the per-CPU values of one map entry.
    pub fn from_per_cpu(values: &[LatHist]) -> Self {
        (&fold_per_cpu(values, LatHist::accumulate)).into()
    }

    /// What was recorded since `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &Self) -> Self {
        LatencyHistogram {
            buckets: self
                .buckets
                .iter()
                .zip(earlier.buckets.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
        }
    }

    /// Mean latency, ns.
    pub fn mean_ns(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ns as f64 / self.count as f64)
    }

    /// The `q`-quantile (`0.0..=1.0`), ns, interpolated linearly inside its
    /// log2 bucket; in the open last bucket, that bucket's lower bound.
    /// `None` for an empty histogram.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        // Rank of the wanted sample, 1-based: the smallest sample for q = 0.
        let rank = (q * total as f64).ceil().max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (below + n) as f64 >= rank {
                let (lo, hi) = lat_bucket_bounds(i);
                let Some(hi) = hi else {
                    return Some(lo as f64);
                };
                let frac = (rank - below as f64) / n as f64;
                return Some(lo as f64 + (hi - lo) as f64 * frac);
            }
            below += n;
        }
        None
    }

    /// Summary for reports: count, mean and p50/p90/p99, and the non-empty
    /// buckets.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            mean_ns: self.mean_ns(),
            p50_ns: self.percentile(0.50),
            p90_ns: self.percentile(0.90),
            p99_ns: self.percentile(0.99),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(i, &n)| {
                    let (lo, hi) = lat_bucket_bounds(i);
                    LatencyBucket {
                        low_ns: lo,
                        high_ns: hi,
                        count: n,
                    }
                })
                .collect(),
        }
    }
}

/// One non-empty bucket of a [`LatencySummary`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LatencyBucket {
    pub low_ns: u64,
    /// Exclusive; absent for the open last bucket.
    pub high_ns: Option<u64>,
    pub count: u64,
}

/// A latency histogram as reported (`zramctl top --json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ns: Option<f64>,
    pub p50_ns: Option<f64>,
    pub p90_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub buckets: Vec<LatencyBucket>,
}

/// Buckets of a slot-age histogram: 0 is "under 1 s", `k` >= 1 is
/// `[2^(k-1), 2^k)` s, the last one also holds everything older
/// (2^22 s is about 48 days).
pub const AGE_BUCKETS: usize = 24;

/// Bounds (seconds, upper exclusive) of slot-age bucket `i`; the last bucket
/// has no upper bound.
pub fn age_bucket_bounds(i: usize) -> (u64, Option<u64>) {
    let lo = if i == 0 { 0 } else { 1u64 << (i - 1) };
    let hi = if i + 1 >= AGE_BUCKETS {
        None
    } else {
        Some(1u64 << i)
    };
    (lo, hi)
}

/// Bucket of an age in seconds.
pub fn age_bucket(secs: u64) -> usize {
    if secs == 0 {
        0
    } else {
        ((64 - secs.leading_zeros()) as usize).min(AGE_BUCKETS - 1)
    }
}

/// How long ago the slots of one device were last accessed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SlotAgeHistogram {
    /// Slots of the device.
    pub slots: u64,
    /// Slots not read, written or discarded since the probes were attached.
    pub untouched: u64,
    /// Touched slots by age, see [`age_bucket_bounds`].
    pub buckets: Vec<u64>,
}

impl SlotAgeHistogram {
    /// From per-slot states and the current CLOCK_MONOTONIC time in ns.
    pub fn from_slots(slots: &[SlotState], now_ns: u64) -> Self {
        let mut h = Self::empty();
        for s in slots {
            h.add(s, now_ns);
        }
        h
    }

    /// No slots yet (see [`Self::add`]).
    pub fn empty() -> Self {
        SlotAgeHistogram {
            slots: 0,
            untouched: 0,
            buckets: vec![0; AGE_BUCKETS],
        }
    }

    /// Counts one slot, at CLOCK_MONOTONIC `now_ns` (for one pass over the
    /// slot array without a copy of it).
    pub fn add(&mut self, s: &SlotState, now_ns: u64) {
        self.slots += 1;
        if s.last_time == 0 {
            self.untouched += 1;
        } else {
            let now = now_ns >> SLOT_TIME_SHIFT;
            let age = now.saturating_sub(u64::from(s.last_time)) << SLOT_TIME_SHIFT;
            self.buckets[age_bucket(age / 1_000_000_000)] += 1;
        }
    }

    pub fn touched(&self) -> u64 {
        self.slots - self.untouched
    }

    /// Touched slots not accessed for at least `secs` seconds, counting
    /// whole buckets whose lower bound is at least `secs` (a lower bound
    /// on the true number).
    pub fn older_than(&self, secs: u64) -> u64 {
        self.buckets
            .iter()
            .enumerate()
            .filter(|&(i, _)| age_bucket_bounds(i).0 >= secs)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Access totals of one device, by operation class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    pub read: u64,
    pub write: u64,
    pub discard: u64,
    pub other: u64,
}

impl OpCounts {
    pub fn from_array(a: &[u64; op::COUNT]) -> Self {
        OpCounts {
            read: a[op::READ],
            write: a[op::WRITE],
            discard: a[op::DISCARD],
            other: a[op::OTHER],
        }
    }

    pub fn total(&self) -> u64 {
        self.read + self.write + self.discard + self.other
    }
}

/// Per-second rates, by operation class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct OpRates {
    pub read: f64,
    pub write: f64,
    pub discard: f64,
    pub other: f64,
}

impl OpRates {
    /// Rates from two totals `secs` seconds apart (zero for a zero interval).
    pub fn between(earlier: &OpCounts, later: &OpCounts, secs: f64) -> Self {
        let r = |a: u64, b: u64| {
            if secs > 0.0 {
                b.saturating_sub(a) as f64 / secs
            } else {
                0.0
            }
        };
        OpRates {
            read: r(earlier.read, later.read),
            write: r(earlier.write, later.write),
            discard: r(earlier.discard, later.discard),
            other: r(earlier.other, later.other),
        }
    }
}

/// Access counters of one device (sums over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccessCounts {
    pub bios: OpCounts,
    pub pages: OpCounts,
    /// Pages counted whose slots were not updated (see `zramctl_common::DevCounters`).
    pub untracked_pages: u64,
}

impl AccessCounts {
    pub fn from_per_cpu(values: &[DevCounters]) -> Self {
        let c = fold_per_cpu(values, DevCounters::accumulate);
        AccessCounts {
            bios: OpCounts::from_array(&c.bios),
            pages: OpCounts::from_array(&c.pages),
            untracked_pages: c.untracked_pages,
        }
    }
}

/// Access rates of one device over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct AccessRates {
    pub bios_per_sec: OpRates,
    pub pages_per_sec: OpRates,
}

impl AccessRates {
    pub fn between(earlier: &AccessCounts, later: &AccessCounts, secs: f64) -> Self {
        AccessRates {
            bios_per_sec: OpRates::between(&earlier.bios, &later.bios, secs),
            pages_per_sec: OpRates::between(&earlier.pages, &later.pages, secs),
        }
    }
}

/// What rzram's tracepoints counted for one device (sums over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RzramCounts {
    /// `rzram_slot_access` events: slot reads, writes (a partial-page write
    /// is a read and a write) and frees (discards, swap slot frees).
    pub slot_reads: u64,
    pub slot_writes: u64,
    pub slot_frees: u64,
    /// Slot events beyond the slots sized at attach (not in the slot states).
    pub untracked: u64,
    /// Pages submitted for writeback.
    pub wb_submitted: u64,
    /// Pages whose writeback completed, with or without error.
    pub wb_completed: u64,
    /// Of those, the failed ones (the page stays in RAM).
    pub wb_errors: u64,
    /// Written-back pages read from the backing device ("refaults"), every
    /// status: equal to `bd_stat`'s bd_reads over the same time.
    pub refaults: u64,
    /// Of those, the failed reads.
    pub refault_errors: u64,
    /// Refaults of pages whose writeback happened before attach (no age).
    pub refaults_no_wb_time: u64,
}

impl RzramCounts {
    pub fn from_per_cpu(values: &[RzramCounters]) -> Self {
        let c = fold_per_cpu(values, RzramCounters::accumulate);
        RzramCounts {
            slot_reads: c.slot_events[rzram_tp::ACCESS_READ as usize],
            slot_writes: c.slot_events[rzram_tp::ACCESS_WRITE as usize],
            slot_frees: c.slot_events[rzram_tp::ACCESS_FREE as usize],
            untracked: c.untracked,
            wb_submitted: c.wb_submitted,
            wb_completed: c.wb_completed,
            wb_errors: c.wb_errors,
            refaults: c.refaults,
            refault_errors: c.refault_errors,
            refaults_no_wb_time: c.refaults_no_wb_time,
        }
    }

    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        RzramCounts {
            slot_reads: d(self.slot_reads, earlier.slot_reads),
            slot_writes: d(self.slot_writes, earlier.slot_writes),
            slot_frees: d(self.slot_frees, earlier.slot_frees),
            untracked: d(self.untracked, earlier.untracked),
            wb_submitted: d(self.wb_submitted, earlier.wb_submitted),
            wb_completed: d(self.wb_completed, earlier.wb_completed),
            wb_errors: d(self.wb_errors, earlier.wb_errors),
            refaults: d(self.refaults, earlier.refaults),
            refault_errors: d(self.refault_errors, earlier.refault_errors),
            refaults_no_wb_time: d(self.refaults_no_wb_time, earlier.refaults_no_wb_time),
        }
    }

    /// Pages written back successfully.
    pub fn wb_written(&self) -> u64 {
        self.wb_completed.saturating_sub(self.wb_errors)
    }
}

/// Everything rzram's tracepoints collected for one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RzramStats {
    pub counts: RzramCounts,
    /// Writeback latency per page (bio submit to end_io), ns, every status.
    pub wb_latency: LatencyHistogram,
    /// Latency of reads from the backing device, ns.
    pub bd_read_latency: LatencyHistogram,
    /// Time from a page's writeback to its refault, in **microseconds**
    /// (log2 buckets like the latency histograms'; see [`RefaultAgeSummary`]).
    pub refault_age_us: LatencyHistogram,
}

impl RzramStats {
    /// What was collected since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        RzramStats {
            counts: self.counts.since(&earlier.counts),
            wb_latency: self.wb_latency.since(&earlier.wb_latency),
            bd_read_latency: self.bd_read_latency.since(&earlier.bd_read_latency),
            refault_age_us: self.refault_age_us.since(&earlier.refault_age_us),
        }
    }
}

/// One non-empty bucket of a [`RefaultAgeSummary`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefaultAgeBucket {
    pub min_secs: f64,
    /// Exclusive; absent for the open last bucket.
    pub max_secs: Option<f64>,
    pub count: u64,
}

/// Time from writeback to refault, as reported: a short one means
/// writeback picked the page too early.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefaultAgeSummary {
    /// Refaults with a known writeback time.
    pub count: u64,
    pub mean_secs: Option<f64>,
    pub p50_secs: Option<f64>,
    pub p90_secs: Option<f64>,
    pub p99_secs: Option<f64>,
    pub buckets: Vec<RefaultAgeBucket>,
}

impl RefaultAgeSummary {
    /// From a histogram in microseconds ([`RzramStats::refault_age_us`]).
    pub fn from_us(h: &LatencyHistogram) -> Self {
        let secs = |us: f64| us / 1e6;
        RefaultAgeSummary {
            count: h.count,
            mean_secs: h.mean_ns().map(secs),
            p50_secs: h.percentile(0.50).map(secs),
            p90_secs: h.percentile(0.90).map(secs),
            p99_secs: h.percentile(0.99).map(secs),
            buckets: h
                .buckets
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(i, &n)| {
                    let (lo, hi) = lat_bucket_bounds(i);
                    RefaultAgeBucket {
                        min_secs: secs(lo as f64),
                        max_secs: hi.map(|h| secs(h as f64)),
                        count: n,
                    }
                })
                .collect(),
        }
    }
}

/// Formats a duration in ns as a short human string ("850ns", "12.5us", "3.20ms", "1.50s").
pub fn human_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// Formats an age bound in seconds ("0s", "512s", "2h16m", "12d").
pub fn human_secs(s: u64) -> String {
    if s < 1024 {
        format!("{s}s")
    } else if s < 86400 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d", s / 86400)
    }
}

#[cfg(test)]
mod tests;

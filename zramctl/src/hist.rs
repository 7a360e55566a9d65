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
        let now = now_ns >> SLOT_TIME_SHIFT;
        let mut h = SlotAgeHistogram {
            slots: slots.len() as u64,
            untouched: 0,
            buckets: vec![0; AGE_BUCKETS],
        };
        for s in slots {
            if s.last_time == 0 {
                h.untouched += 1;
            } else {
                let age = now.saturating_sub(u64::from(s.last_time)) << SLOT_TIME_SHIFT;
                h.buckets[age_bucket(age / 1_000_000_000)] += 1;
            }
        }
        h
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
mod tests {
    use super::*;
    use zramctl_common::lat_bucket;

    fn hist(samples: &[u64]) -> LatencyHistogram {
        let mut h = LatHist::default();
        for &s in samples {
            h.buckets[lat_bucket(s)] += 1;
            h.count += 1;
            h.sum_ns += s;
        }
        (&h).into()
    }

    #[test]
    fn bucket_bounds_contain_their_samples() {
        for ns in [0u64, 1, 2, 3, 1000, 4095, 4096, 1 << 38, (1 << 40) + 5] {
            let (lo, hi) = lat_bucket_bounds(lat_bucket(ns));
            assert!(lo <= ns, "{ns} >= {lo}");
            if let Some(hi) = hi {
                assert!(ns < hi, "{ns} < {hi}");
            }
        }
        assert_eq!(lat_bucket_bounds(LAT_BUCKETS - 1).1, None);
    }

    #[test]
    fn percentiles_interpolate_inside_buckets() {
        assert_eq!(LatencyHistogram::default().percentile(0.5), None);
        // 100 samples all in [1024, 2048).
        let h = hist(&[1500; 100]);
        assert_eq!(h.percentile(0.5), Some(1024.0 + 1024.0 * 0.5));
        assert_eq!(h.percentile(1.0), Some(2048.0));
        assert_eq!(h.percentile(0.0), Some(1024.0 + 1024.0 * 0.01));
        // 90 fast ones in [512, 1024), 10 slow ones in [65536, 131072).
        let mut samples = vec![600; 90];
        samples.extend([70_000; 10]);
        let h = hist(&samples);
        let p50 = h.percentile(0.5).unwrap();
        assert!((512.0..1024.0).contains(&p50), "{p50}");
        assert_eq!(h.percentile(0.9), Some(1024.0));
        let p99 = h.percentile(0.99).unwrap();
        assert!((65536.0..=131072.0).contains(&p99), "{p99}");
        assert_eq!(h.mean_ns(), Some((90.0 * 600.0 + 10.0 * 70_000.0) / 100.0));
        // The open last bucket reports its lower bound.
        let h = hist(&[u64::MAX / 2]);
        assert_eq!(h.percentile(0.99), Some((1u64 << (LAT_BUCKETS - 1)) as f64));
    }

    #[test]
    fn percentiles_are_monotonic() {
        let h = hist(&[5, 50, 500, 5000, 50_000, 500_000, 5_000_000, 7, 77, 777]);
        let mut last = 0.0;
        for i in 0..=100 {
            let p = h.percentile(i as f64 / 100.0).unwrap();
            assert!(p >= last, "p{i} = {p} < {last}");
            last = p;
        }
    }

    #[test]
    fn per_cpu_values_fold_and_subtract() {
        let a = {
            let mut h = LatHist::default();
            h.buckets[3] = 2;
            h.count = 2;
            h.sum_ns = 20;
            h
        };
        let b = {
            let mut h = LatHist::default();
            h.buckets[3] = 1;
            h.buckets[10] = 4;
            h.count = 5;
            h.sum_ns = 5000;
            h
        };
        let total = LatencyHistogram::from_per_cpu(&[a, b]);
        assert_eq!(total.count, 7);
        assert_eq!(total.sum_ns, 5020);
        assert_eq!(total.buckets[3], 3);
        assert_eq!(total.buckets[10], 4);
        assert_eq!(total.buckets.iter().sum::<u64>(), total.count);
        let d = total.since(&LatencyHistogram::from_per_cpu(&[a]));
        assert_eq!(d.count, 5);
        assert_eq!(d.buckets[3], 1);
        let s = d.summary();
        assert_eq!(s.buckets.len(), 2);
        assert_eq!(
            s.buckets[1],
            LatencyBucket {
                low_ns: 1024,
                high_ns: Some(2048),
                count: 4
            }
        );

        let mut c1 = DevCounters::default();
        c1.bios[op::WRITE] = 3;
        c1.pages[op::WRITE] = 30;
        let mut c2 = DevCounters::default();
        c2.bios[op::WRITE] = 1;
        c2.bios[op::DISCARD] = 2;
        c2.pages[op::DISCARD] = 512;
        c2.untracked_pages = 7;
        let c = AccessCounts::from_per_cpu(&[c1, c2]);
        assert_eq!(c.bios.write, 4);
        assert_eq!(c.bios.discard, 2);
        assert_eq!(c.pages.write, 30);
        assert_eq!(c.pages.total(), 542);
        assert_eq!(c.untracked_pages, 7);
        let r = AccessRates::between(&AccessCounts::default(), &c, 2.0);
        assert_eq!(r.pages_per_sec.discard, 256.0);
        assert_eq!(r.bios_per_sec.write, 2.0);
        assert_eq!(AccessRates::between(&c, &c, 0.0).pages_per_sec.read, 0.0);
    }

    #[test]
    fn slot_ages() {
        let sec = 1_000_000_000u64;
        let now = 100_000 * sec;
        let slot = |age_ns: Option<u64>| SlotState {
            last_time: age_ns
                .map(|a| ((now - a) >> SLOT_TIME_SHIFT) as u32)
                .unwrap_or(0),
            ..Default::default()
        };
        let s = |secs: u64| Some(secs * sec);
        let slots = [
            slot(None),
            slot(None),
            slot(Some(sec / 2)),
            slot(s(1)),
            slot(s(3)),
            slot(s(1000)),
            slot(s(9_999)),
        ];
        let h = SlotAgeHistogram::from_slots(&slots, now);
        assert_eq!(h.slots, 7);
        assert_eq!(h.untouched, 2);
        assert_eq!(h.touched(), 5);
        assert_eq!(h.buckets[0], 1); // < 1 s
        assert_eq!(h.buckets[1], 1); // [1, 2)
        assert_eq!(h.buckets[2], 1); // [2, 4): 3 s
        assert_eq!(h.buckets[10], 1); // [512, 1024): 1000 s
        assert_eq!(h.buckets[14], 1); // [8192, 16384): 9999 s
        assert_eq!(h.buckets.iter().sum::<u64>(), 5);
        assert_eq!(h.older_than(512), 2);
        assert_eq!(h.older_than(1), 4);
        // A time ahead of `now` (taken just before the probe wrote) is age 0.
        let h = SlotAgeHistogram::from_slots(&[slot(Some(0))], now - sec);
        assert_eq!(h.buckets[0], 1);
        // Slot time units are 2^26 ns: ages are exact to about 67 ms.
        let h = SlotAgeHistogram::from_slots(&[slot(Some(sec - 100_000_000))], now);
        assert_eq!(h.buckets[0], 1);
        for i in 0..AGE_BUCKETS {
            let (lo, hi) = age_bucket_bounds(i);
            assert_eq!(age_bucket(lo), i, "bucket {i}");
            if let Some(hi) = hi {
                assert_eq!(age_bucket(hi - 1), i, "bucket {i}");
            }
        }
        assert_eq!(age_bucket(u64::MAX), AGE_BUCKETS - 1);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(850.0), "850ns");
        assert_eq!(human_ns(12_500.0), "12.5us");
        assert_eq!(human_ns(3_200_000.0), "3.20ms");
        assert_eq!(human_ns(1.5e9), "1.50s");
        assert_eq!(human_secs(512), "512s");
        assert_eq!(human_secs(8192), "2h16m");
        assert_eq!(human_secs(1 << 20), "12d");
    }

    #[test]
    fn rzram_counts_decode_and_subtract() {
        let cpu = |r, w, f, wb, err, rf| RzramCounters {
            slot_events: [r, w, f, 0],
            wb_submitted: wb,
            wb_completed: wb,
            wb_errors: err,
            refaults: rf,
            ..Default::default()
        };
        let a = RzramCounts::from_per_cpu(&[cpu(1, 2, 3, 10, 1, 4), cpu(10, 20, 30, 5, 0, 1)]);
        assert_eq!(
            (a.slot_reads, a.slot_writes, a.slot_frees),
            (11, 22, 33),
            "op 0 read, 1 write, 2 free, summed over CPUs"
        );
        assert_eq!((a.wb_completed, a.wb_errors, a.wb_written()), (15, 1, 14));
        assert_eq!(a.refaults, 5);
        let b = RzramCounts::from_per_cpu(&[cpu(12, 22, 33, 20, 1, 9)]);
        let d = b.since(&a);
        assert_eq!((d.slot_reads, d.slot_writes, d.slot_frees), (1, 0, 0));
        assert_eq!((d.wb_completed, d.wb_errors, d.refaults), (5, 0, 4));
        // A counter that went backwards (a restart) gives 0, not a wrap.
        assert_eq!(a.since(&b).wb_completed, 0);
    }

    #[test]
    fn refault_ages_are_reported_in_seconds() {
        // 3 refaults 1.5 ms after writeback, 1 after about 70 s (in us).
        let h = hist(&[1500, 1500, 1500, 70_000_000]);
        let s = RefaultAgeSummary::from_us(&h);
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), 2);
        assert_eq!(s.buckets[0].min_secs, 1024.0 / 1e6);
        assert_eq!(s.buckets[0].max_secs, Some(2048.0 / 1e6));
        assert_eq!(s.buckets[0].count, 3);
        assert_eq!(s.buckets[1].min_secs, (1u64 << 26) as f64 / 1e6);
        let p50 = s.p50_secs.unwrap();
        assert!((0.001..0.002).contains(&p50), "{p50}");
        let p99 = s.p99_secs.unwrap();
        assert!((67.0..135.0).contains(&p99), "{p99}");
        let mean = s.mean_secs.unwrap();
        assert!((mean - (70.0045 / 4.0)).abs() < 1e-6, "{mean}");
        let empty = RefaultAgeSummary::from_us(&LatencyHistogram::default());
        assert_eq!((empty.count, empty.p50_secs), (0, None));
    }
}

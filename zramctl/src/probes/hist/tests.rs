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

use super::render::{bar, bucket_rows};
use super::*;
use crate::probes::{
    DeviceSnapshot, Flavour, LatencyKind, ProbeHealth, ProgramCost, Role, Snapshot, WatchSpec,
    hist::{
        AccessCounts, LatencyHistogram, RzramCounts, RzramStats, SlotAgeHistogram,
        lat_bucket_bounds,
    },
};
use zramctl_common::{LatHist, SlotState, lat_bucket};

fn spec(name: &str, slots: u32) -> WatchSpec {
    WatchSpec {
        name: name.into(),
        major: 253,
        minor: 0,
        slots,
        latency: Some(LatencyKind::Bio),
        rzram: false,
    }
}

fn hist(samples: &[u64]) -> LatencyHistogram {
    let mut h = LatHist::default();
    for &s in samples {
        h.buckets[lat_bucket(s)] += 1;
        h.count += 1;
        h.sum_ns += s;
    }
    (&h).into()
}

fn snapshot(t_s: u64, writes: u64, write_lat: &[u64], touched: u32) -> Snapshot {
    let mut access = AccessCounts::default();
    access.bios.write = writes;
    access.pages.write = writes * 2;
    let slots: Vec<SlotState> = (0..8)
        .map(|i| SlotState {
            last_time: if i < touched {
                ((100 * 1_000_000_000u64) >> zramctl_common::SLOT_TIME_SHIFT) as u32
            } else {
                0
            },
            writes: 1,
            ..Default::default()
        })
        .collect();
    Snapshot {
        monotonic_ns: t_s * 1_000_000_000,
        devices: vec![DeviceSnapshot {
            spec: spec("zram0", 8),
            access: Some(access),
            slot_ages: Some(SlotAgeHistogram::from_slots(&slots, 130 * 1_000_000_000)),
            latency: Some(vec![
                LatencyHistogram::default(),
                hist(write_lat),
                LatencyHistogram::default(),
                LatencyHistogram::default(),
            ]),
            rzram: None,
        }],
        health: ProbeHealth::default(),
    }
}

fn cost(runs: u64, ns: u64) -> ProgramCost {
    ProgramCost {
        program: "slot_access".into(),
        tracepoint: "block_bio_queue".into(),
        flavour: Flavour::TpBtf,
        run_count: runs,
        run_time_ns: ns,
    }
}

#[test]
fn report_takes_interval_deltas() {
    let a = snapshot(10, 100, &[1000, 1000], 2);
    let b = snapshot(12, 300, &[1000, 1000, 5000, 5000, 5000], 5);
    let r = TopReport::between(
        &a,
        &b,
        &[cost(1000, 100_000)],
        &[cost(3000, 400_000)],
        &[Role::Zram],
        Flavour::TpBtf,
        Err("no rzram device watched"),
    );
    assert_eq!(r.interval_secs, 2.0);
    let d = &r.devices[0];
    assert_eq!(d.dev, "253:0");
    assert_eq!(d.rates.unwrap().bios_per_sec.write, 100.0);
    assert_eq!(d.rates.unwrap().pages_per_sec.write, 200.0);
    assert_eq!(d.access.unwrap().bios.write, 300, "totals since attach");
    let lat = d.latency.as_ref().unwrap();
    assert_eq!(lat.keys().copied().collect::<Vec<_>>(), ["write"]);
    assert_eq!(lat["write"].count, 3, "only the interval's completions");
    assert_eq!(lat["write"].buckets.len(), 1);
    assert_eq!(lat["write"].buckets[0].low_ns, 4096);
    let ages = d.slot_ages.as_ref().unwrap();
    assert_eq!((ages.slots, ages.touched, ages.untouched), (8, 5, 3));
    assert_eq!(
        ages.buckets,
        [AgeBucket {
            min_secs: 16,
            max_secs: Some(32),
            slots: 5
        }]
    );
    assert_eq!(r.programs[0].cost.run_count, 2000);
    assert_eq!(r.programs[0].ns_per_event, Some(150.0));

    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["devices"][0]["role"], "zram");
    assert_eq!(json["devices"][0]["latency"]["write"]["count"], 3);
    assert_eq!(json["programs"][0]["program"], "slot_access");
    assert_eq!(json["programs"][0]["ns_per_event"], 150.0);
    assert!(json["devices"][0].get("latency_hists").is_none());

    let mut text = Vec::new();
    render_text(&r, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("zram0 write latency: 3 completions"),
        "{text}"
    );
    // biolatency-style rows: the full bar for the largest bucket.
    assert!(
        text.contains(&format!("4096 -> 8191 : 3        |{}|", "*".repeat(40))),
        "{text}"
    );
    assert!(
        text.contains(&format!("16s -> 32s : 5        |{}|", "*".repeat(40))),
        "{text}"
    );
    assert!(text.contains("slot_access"), "{text}");
    let row = text.lines().find(|l| l.starts_with("zram0 ")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["zram0", "0", "100", "0", "0", "200", "5", "8"]
    );
}

#[test]
fn bars_scale_to_the_largest_bucket() {
    assert_eq!(bar(0, 10), format!("|{}|", " ".repeat(40)));
    assert_eq!(bar(10, 10), format!("|{}|", "*".repeat(40)));
    assert_eq!(
        bar(5, 10),
        format!("|{}{}|", "*".repeat(20), " ".repeat(20))
    );
    // Anything non-zero shows at least one star.
    assert!(bar(1, 1_000_000).starts_with("|* "));
    assert_eq!(bar(3, 0), format!("|{}|", " ".repeat(40)));
    let rows = bucket_rows(&[0, 0, 3, 0, 1, 0], lat_bucket_bounds);
    assert_eq!(rows, [(4, Some(8), 3), (8, Some(16), 0), (16, Some(32), 1)]);
    assert!(bucket_rows(&[0, 0], lat_bucket_bounds).is_empty());
}

/// rzram stats with `wb` pages written back (`errors` of them failed)
/// at 1 ms each and `refaults` refaults 3 s after their writeback.
fn rz_stats(wb: u64, errors: u64, refaults: u64) -> RzramStats {
    let mut wb_latency = LatHist::default();
    wb_latency.buckets[lat_bucket(1_000_000)] = wb;
    wb_latency.count = wb;
    wb_latency.sum_ns = wb * 1_000_000;
    let mut age = LatHist::default();
    age.buckets[lat_bucket(3_000_000)] = refaults;
    age.count = refaults;
    age.sum_ns = refaults * 3_000_000;
    RzramStats {
        counts: RzramCounts {
            wb_submitted: wb,
            wb_completed: wb,
            wb_errors: errors,
            refaults,
            ..Default::default()
        },
        wb_latency: (&wb_latency).into(),
        bd_read_latency: LatencyHistogram::default(),
        refault_age_us: (&age).into(),
    }
}

#[test]
fn rzram_writeback_and_refaults_or_na() {
    let mut a = snapshot(10, 0, &[], 0);
    let mut b = snapshot(12, 0, &[], 0);
    // zram0 (stock) and rzram1 with rzram's programs attached.
    let mut rz_a = a.devices[0].clone();
    rz_a.spec.name = "rzram1".into();
    rz_a.spec.rzram = true;
    rz_a.rzram = Some(rz_stats(100, 0, 0));
    let mut rz_b = rz_a.clone();
    rz_b.rzram = Some(rz_stats(300, 4, 10));
    a.devices.push(rz_a);
    b.devices.push(rz_b);
    let r = TopReport::between(
        &a,
        &b,
        &[],
        &[],
        &[Role::Zram, Role::Zram],
        Flavour::TpBtf,
        Ok(()),
    );
    assert_eq!(r.rzram_probes, "attached");
    assert!(matches!(r.devices[0].rzram, Some(None)), "stock zram: n/a");
    let x = r.devices[1].rzram.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(x.total.wb_completed, 300);
    assert_eq!(x.interval.wb_completed, 200);
    assert_eq!(x.wb_pages_per_sec, 98.0, "(200 - 4 errors) / 2 s");
    assert_eq!(x.refaults_per_sec, 5.0);
    assert_eq!(x.wb_latency.count, 200);
    assert_eq!(x.refault_age.count, 10);
    let p50 = x.refault_age.p50_secs.unwrap();
    assert!((2.0..4.2).contains(&p50), "{p50}");

    let json = serde_json::to_value(&r).unwrap();
    assert!(json["devices"][0]["rzram"].is_null(), "{json:#}");
    assert!(json["devices"][0].get("rzram").is_some(), "{json:#}");
    let j = &json["devices"][1]["rzram"];
    assert_eq!(j["total"]["wb_errors"], 4);
    assert_eq!(j["total"]["refaults"], 10);
    assert_eq!(j["wb_latency"]["count"], 200);
    assert!(j["wb_latency"]["p99_ns"].as_f64().unwrap() >= 1e6);
    assert_eq!(j["refault_age"]["count"], 10);
    assert!(j.get("stats").is_none());

    let mut text = Vec::new();
    render_text(&r, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let row = |name: &str| {
        text.lines()
            .skip_while(|l| !l.contains("WB-PG/s"))
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("zram0 ")[1..], ["n/a"; 8], "{text}");
    let rz = row("rzram1 ");
    assert_eq!(rz[1..4], ["98", "296", "4"], "{text}");
    assert_eq!(rz[6..8], ["5", "10"], "{text}");
    assert!(
        text.contains("rzram1 writeback latency: 200 completions"),
        "{text}"
    );
    assert!(
        text.contains("rzram1: time from writeback to refault: 10 refaults"),
        "{text}"
    );
    assert!(
        text.contains("rzram tracepoint programs: attached"),
        "{text}"
    );
    // The slot-access table still has one row per device.
    assert!(
        text.lines()
            .any(|l| l.starts_with("rzram1 ") && l.ends_with(" 8"))
    );
}

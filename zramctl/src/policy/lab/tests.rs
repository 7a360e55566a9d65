use proptest::prelude::*;

const NS: u64 = 1_000_000_000;

use super::{
    anchors::{Anchor, AnchorParams},
    kernel::{PAGE, Request, Zram},
    ours::{Ours, OursConfig},
    trace::{Event, Op, Trace},
    *,
};

/// A synthetic swap trace: `n` pages written at t=0..60 s (every 8th huge,
/// every 16th same-filled), a hot set of `hot` pages read every 10 s from
/// the start for `secs`, and each cold page read once with probability 1/`cold_every`.
pub(crate) fn synthetic(n: u64, hot: u64, secs: u64, cold_every: u64) -> Trace {
    let mut t = Trace {
        version: 2,
        ..Trace::default()
    };
    t.meta.insert("disksize".into(), (n * 2 * PAGE).to_string());
    t.meta.insert("backing".into(), (n * PAGE).to_string());
    let mut ev = |t_us: u64, op: Op| t.events.push(Event { t_us, op });
    ev(
        0,
        Op::Mem {
            available_kb: 100_000,
            total_kb: 400_000,
        },
    );
    for i in 0..n {
        let size = if i % 16 == 0 {
            0
        } else if i % 8 == 0 {
            4096
        } else {
            800 + (i * 37 % 2000) as u32
        };
        ev(
            i * 60_000_000 / n,
            Op::Write {
                slot: i,
                pages: 1,
                size: Some(size),
            },
        );
    }
    let mut s = 0;
    let mut x = 12345u64;
    while s < secs {
        for i in 0..hot {
            ev(s * 1_000_000 + i, Op::Read { slot: i, pages: 1 });
        }
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = hot + (x >> 33) % (n - hot);
        if (x >> 20).is_multiple_of(cold_every) {
            ev(s * 1_000_000 + hot + 1, Op::Read { slot: j, pages: 1 });
        }
        s += 10;
    }
    t.events.sort_by_key(|e| e.t_us);
    t
}

#[test]
fn replay_is_deterministic_and_accounts_consistently() {
    let t = synthetic(4000, 200, 1800, 3);
    let cfg = ReplayConfig::spanning(&t, 48.0);
    assert!((cfg.stretch - 96.0).abs() < 1.0, "{}", cfg.stretch);
    for mut p in standard_policies() {
        let a = replay(&t, &cfg, p.as_mut());
        let mut fresh = standard_policies();
        let idx = fresh.iter().position(|q| q.name() == p.name()).unwrap();
        let b = replay(&t, &cfg, fresh[idx].as_mut());
        assert_eq!(a, b, "{}", p.name());
        assert_eq!(a.written_bytes, a.written_pages * PAGE);
        assert_eq!(
            a.refault_age_hist.iter().sum::<u64>(),
            a.refaults,
            "{}",
            a.policy
        );
        assert!(a.peak_ram_freed_mib >= a.mean_ram_freed_mib);
        assert!(a.written_pages > 0, "{} wrote nothing", a.policy);
    }
}

#[test]
fn anchors_write_only_pages_idle_past_their_age() {
    // 30 min stretched to 48 h: the anchors' 20+ h idle age is ~12.5 min of
    // trace. Pages written in the first minute and never touched again
    // are the only ones older than that, apart from huge pages.
    let t = synthetic(4000, 200, 1800, 1_000_000);
    let cfg = ReplayConfig::spanning(&t, 48.0);
    let mut mmd = Anchor::new(AnchorParams::android_mmd(), 0);
    let r = replay(&t, &cfg, &mut mmd);
    // Every cold, non-same page: 4000 - 200 hot - 250 same-filled (+ the
    // hot ones that are same-filled).
    let same_cold = (200..4000).filter(|i| i % 16 == 0).count() as u64;
    assert_eq!(r.written_pages, 3800 - same_cold);
    assert_eq!(r.refaults, 0);
}

#[test]
fn chromeos_writes_hot_huge_pages_mmd_does_not() {
    let t = synthetic(4000, 200, 1800, 1_000_000);
    let cfg = ReplayConfig::spanning(&t, 48.0);
    let mmd = replay(&t, &cfg, &mut Anchor::new(AnchorParams::android_mmd(), 0));
    let cros = replay(&t, &cfg, &mut Anchor::new(AnchorParams::chromeos(), 0));
    // Hot huge pages (i % 8 == 0 and i % 16 != 0, i < 200): 13.
    let hot_huge = (0..200).filter(|i| i % 8 == 0 && i % 16 != 0).count() as u64;
    assert_eq!(cros.written_pages, mmd.written_pages + hot_huge);
    assert!(cros.refaults >= hot_huge, "the hot huge pages refault");
}

#[test]
fn a_daily_budget_caps_the_anchor() {
    let t = synthetic(4000, 10, 1800, 1_000_000);
    let cfg = ReplayConfig::spanning(&t, 48.0);
    let mut p = AnchorParams::chromeos();
    p.max_bytes_per_day = 1000 * PAGE;
    p.min_bytes = 0;
    let r = replay(&t, &cfg, &mut Anchor::new(p, 0));
    // 48 h of policy time: at most two days' worth (the window slides).
    assert!(r.written_pages <= 2000, "{}", r.written_pages);
    assert!(r.written_pages >= 1000, "{}", r.written_pages);
}

#[test]
fn ours_runs_the_daemons_policy_core_before_and_after() {
    let t = synthetic(4000, 200, 1800, 3);
    let cfg = ReplayConfig::spanning(&t, 48.0);
    let before = replay(&t, &cfg, &mut Ours::new(OursConfig::before()));
    assert!(before.rounds > 0);
    // Every page but the same-filled ones: with no refaults for the first
    // rounds the idle-age threshold decays (x0.9 a round) below the hot
    // set's 16 min (policy time) reuse distance, and the hot set goes too.
    assert_eq!(before.written_pages, 3750, "{before:?}");
    assert!(before.refaults > 5 * before.written_pages, "{before:?}");
    // The lab's settings: the threshold starts at 20 h, falls only on
    // evidence and not below 4 h: the hot set (200 pages, 190 not
    // same-filled) stays in RAM.
    // The huge-page pass (10 h) takes a few more.
    let after = replay(&t, &cfg, &mut Ours::new(OursConfig::default()));
    assert!(
        (3750 - 190..3750 - 190 + 10).contains(&after.written_pages),
        "{after:?}"
    );
    assert!(after.refaults * 100 < before.refaults, "{after:?}");
}

/// Ours with `huge_age_factor`: huge pages idle for half the threshold go
/// (through the kernel's `huge_idle`), other pages only past the threshold.
#[test]
fn ours_writes_huge_pages_at_half_the_threshold() {
    const H: u64 = 3600 * NS;
    let mut dev = Zram::new(1024 * PAGE, 1024 * PAGE);
    for i in 0..100 {
        dev.write(0, i, if i % 10 == 0 { 4096 } else { 1500 });
    }
    let mut c = OursConfig::default();
    c.policy.refault.initial_secs = 20 * 3600;
    c.policy.refault.floor_secs = 20 * 3600;
    c.policy.round.huge_age_factor = Some(crate::policy::round::HUGE_AGE_FACTOR);
    let mut o = Ours::new(c);
    let suspend = crate::policy::SuspendLog::default();
    let env = |now_ns| Env {
        now_ns,
        mem_available_kb: 0,
        mem_total_kb: 0,
        psi_some_avg10: None,
        suspend: &suspend,
    };
    let mut log = Vec::new();
    o.step(&env(11 * H), &mut dev, &mut log);
    o.step(&env(11 * H + 600 * NS), &mut dev, &mut log);
    // 11 h idle: past 10 h, not 20 h: the ten huge pages only.
    assert_eq!(dev.bd_stat().bd_writes, 10, "{log:?}");
    assert_eq!(dev.wb_ram_bytes(), 10 * 4096);
    o.step(&env(21 * H), &mut dev, &mut log);
    assert_eq!(dev.bd_stat().bd_writes, 100, "{log:?}");
}

#[derive(Clone, Debug)]
enum KOp {
    W(u64, u32),
    R(u64),
    D(u64),
    Idle(Option<u64>),
    Wb(u8, Option<u64>),
}

fn kop() -> impl Strategy<Value = KOp> {
    prop_oneof![
        4 => (0u64..80, 0u32..=4096).prop_map(|(i, s)| KOp::W(i, s)),
        3 => (0u64..80).prop_map(KOp::R),
        1 => (0u64..80).prop_map(KOp::D),
        1 => proptest::option::of(0u64..100).prop_map(KOp::Idle),
        1 => (0u8..4, proptest::option::of(0u64..10)).prop_map(|(m, l)| KOp::Wb(m, l)),
    ]
}

proptest! {
    /// The model's counters always equal what its slots hold; writeback
    /// never exceeds the limit or the backing device; largest-first holds.
    #[test]
    fn kernel_model_invariants(ops in proptest::collection::vec(kop(), 1..300)) {
        let mut z = Zram::new(64 * PAGE, 16 * PAGE);
        let mut now = 0u64;
        for op in ops {
            now += 1_000_000_000;
            match op {
                KOp::W(i, s) => z.write(now, i, s),
                KOp::R(i) => { z.read(now, i); }
                KOp::D(i) => z.discard(i),
                KOp::Idle(age) => z.mark_idle(now, age.map(|a| a * 1_000_000_000)),
                KOp::Wb(m, limit) => {
                    let req = match m {
                        0 => Request::Idle,
                        1 => Request::Huge,
                        2 => Request::HugeIdle,
                        _ => Request::Pages(vec![(0, 40)]),
                    };
                    let before: Vec<u32> = {
                        let mut v: Vec<u32> = z.resident().map(|(_, _, s)| s).collect();
                        v.sort_unstable();
                        v
                    };
                    z.set_writeback_limit(limit);
                    let bd0 = z.bd_stat().bd_count;
                    let (w, r) = z.writeback(now, &req);
                    if let Some(l) = limit {
                        prop_assert!(w.pages <= l);
                        if w.pages == l && l > 0 {
                            // Anything left to write would have hit EIO.
                        }
                    }
                    prop_assert!(z.bd_stat().bd_count <= z.backing_pages());
                    prop_assert_eq!(z.bd_stat().bd_count, bd0 + w.pages);
                    if r.is_ok() && limit.is_none() && matches!(req, Request::Idle) {
                        // Nothing idle is left in RAM after an unlimited idle writeback.
                    }
                    // Largest first: the bytes freed are at most the sum of
                    // the w.pages largest resident objects.
                    let top: u64 = before.iter().rev().take(w.pages as usize).map(|&s| s as u64).sum();
                    prop_assert!(w.ram_bytes <= top);
                    z.set_writeback_limit(None);
                }
            }
            let resident: u64 = z.resident().map(|(_, _, s)| s as u64).sum();
            let mm = z.mm_stat();
            prop_assert_eq!(mm.compr_data_size, resident);
            prop_assert_eq!(mm.mem_used_total, resident);
            prop_assert_eq!(mm.huge_pages, z.resident().filter(|&(_, _, s)| s as u64 == PAGE).count() as u64);
            prop_assert!(z.bd_stat().bd_count * PAGE <= mm.orig_data_size);
        }
    }

    /// Every policy's writes respect the backing device and give sane ratios.
    #[test]
    fn replays_stay_within_the_device(n in 200u64..800, hot in 1u64..100, every in 1u64..5) {
        let t = synthetic(n, hot.min(n / 2), 900, every);
        let mut cfg = ReplayConfig::spanning(&t, 48.0);
        cfg.backing_bytes = Some(n / 4 * PAGE);
        for mut p in standard_policies() {
            let r = replay(&t, &cfg, p.as_mut());
            prop_assert!(r.peak_ram_freed_mib <= (n / 4 * PAGE) as f64 / 1048576.0 + 1e-9);
            prop_assert!(r.refaults_per_gib >= 0.0 && r.mib_h_per_gib >= 0.0);
        }
    }
}

/// The utilisation trigger on the 7.3 model: 900 of 1000 slots stored
/// (90 % > the 80 % trigger), a tick every 30 s (the minimum interval), a
/// period far away. Returns the rounds the utilisation trigger started and
/// the pages they wrote.
fn utilisation_rounds(util: impl Fn(&Zram) -> f64) -> (u64, u64) {
    use crate::policy::{Outcome, Policy, PolicyConfig, Trigger, cold::chunk_for_sysfs};
    let mut z = Zram::new(1000 * PAGE, 1000 * PAGE);
    for i in 0..900 {
        z.write(0, i, 1500);
    }
    let cfg = PolicyConfig {
        period_ns: 86_400 * NS,
        min_interval_ns: 30 * NS,
        max_pages_per_round: 200,
        refault: crate::policy::RefaultConfig {
            initial_secs: 60,
            floor_secs: 60,
            ..Default::default()
        },
        round: crate::policy::RoundConfig::legacy(),
        ..PolicyConfig::default()
    };
    let mut p = Policy::new(cfg, 0);
    let (mut rounds, mut pages) = (0, 0);
    for k in 1..=20u64 {
        let now = 3600 * NS + k * 30 * NS;
        let inputs = crate::policy::Inputs {
            psi_some_avg10: None,
            utilisation: Some(util(&z)),
            latency: None,
            refaults: None,
            bd_reads: None,
            cold: crate::policy::ColdInput::Slots(
                z.resident()
                    .map(|(i, ac, _)| (i, (now - ac) / NS))
                    .collect(),
            ),
        };
        let d = p.tick(now, &inputs);
        if d.run != Ok(Trigger::Utilisation) {
            continue;
        }
        let Some(crate::policy::Plan::Pages(r)) = d.plan else {
            panic!("{d:?}")
        };
        z.set_writeback_limit(Some(d.limit_pages));
        let mut n = 0;
        for c in chunk_for_sysfs(&r) {
            n += z.writeback(now, &Request::Pages(c)).0.pages;
        }
        z.set_writeback_limit(None);
        p.complete(
            now,
            Outcome {
                written_pages: n,
                error: None,
            },
        );
        rounds += 1;
        pages += n;
    }
    (rounds, pages)
}

#[test]
fn the_utilisation_trigger_clears_after_a_writeback() {
    let resident = |z: &Zram| {
        crate::policy::zram_utilisation(
            z.mm_stat().orig_data_size,
            z.bd_stat().bd_count,
            z.disksize(),
        )
    };
    // One round of 200 pages brings RAM-resident pages to 70 %: the
    // trigger clears and nothing more is written for it.
    assert_eq!(utilisation_rounds(resident), (1, 200));
}

#[test]
fn orig_data_size_keeps_the_utilisation_trigger_firing() {
    // orig_data_size counts written-back pages (7.3 `slot_free` keeps
    // `pages_stored`): the old input never drops, so the trigger fires at
    // every minimum interval until nothing cold is left.
    let orig = |z: &Zram| z.mm_stat().orig_data_size as f64 / z.disksize() as f64;
    let (rounds, pages) = utilisation_rounds(orig);
    assert!(
        rounds >= 5 && pages == 900,
        "{rounds} rounds, {pages} pages"
    );
}

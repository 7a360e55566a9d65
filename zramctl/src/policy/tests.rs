//! Policy scenarios and properties.

use proptest::prelude::*;

use super::*;

const S: u64 = NS;

fn cfg() -> PolicyConfig {
    PolicyConfig {
        round: RoundConfig::legacy(),
        budget_bytes_per_day: 1 << 30,
        budget_burst_bytes: 100 * PAGE_SIZE,
        max_pages_per_round: 64,
        period_ns: 100 * S,
        min_interval_ns: 10 * S,
        backoff_initial_ns: 20 * S,
        backoff_max_ns: 80 * S,
        refault: RefaultConfig {
            initial_secs: 60,
            floor_secs: 30,
            ceiling_secs: 3600,
            ..RefaultConfig::default()
        },
        ..PolicyConfig::default()
    }
}

fn inputs(cold: ColdInput) -> Inputs {
    Inputs {
        psi_some_avg10: None,
        utilisation: None,
        latency: None,
        refaults: None,
        bd_reads: None,
        cold,
    }
}

#[test]
fn period_round_writes_oldest_within_the_round_cap() {
    let mut p = Policy::new(cfg(), 0);
    let slots: Vec<(u64, u64)> = (0..200).map(|i| (i, 1000 + i)).collect();
    let i = inputs(ColdInput::Slots(slots));
    assert_eq!(p.tick(50 * S, &i).run, Err(Skip::NotDue));
    let d = p.tick(100 * S, &i);
    assert_eq!(d.run, Ok(Trigger::Period));
    // 64 pages (the round cap), the oldest: slots 136..=199, one range.
    assert_eq!(d.plan, Some(Plan::Pages(vec![(136, 199)])));
    assert_eq!(d.limit_pages, 64);
    p.complete(
        100 * S,
        Outcome {
            written_pages: 64,
            error: None,
        },
    );
    assert_eq!(p.budget().available_pages(), 36);
}

#[test]
fn pressure_and_utilisation_start_rounds_early_but_not_too_often() {
    let mut p = Policy::new(cfg(), 0);
    let mut i = inputs(ColdInput::KernelAge);
    i.psi_some_avg10 = Some(25.0);
    assert_eq!(p.tick(5 * S, &i).run, Err(Skip::NotDue), "min interval");
    let d = p.tick(10 * S, &i);
    assert_eq!(d.run, Ok(Trigger::Pressure));
    // The threshold went down (no refaults) before the plan was made.
    assert_eq!(d.plan, Some(Plan::IdleAge(54)));
    p.complete(
        10 * S,
        Outcome {
            written_pages: 10,
            error: None,
        },
    );
    i.psi_some_avg10 = Some(1.0);
    i.utilisation = Some(0.95);
    assert_eq!(p.tick(15 * S, &i).run, Err(Skip::NotDue));
    assert_eq!(p.tick(20 * S, &i).run, Ok(Trigger::Utilisation));
}

#[test]
fn errors_back_off_exponentially_and_success_resets() {
    let mut p = Policy::new(cfg(), 0);
    let i = inputs(ColdInput::KernelAge);
    let fail = Outcome {
        written_pages: 0,
        error: Some(RoundError::Io),
    };
    assert!(p.tick(100 * S, &i).run.is_ok());
    p.complete(100 * S, fail);
    assert_eq!(p.backoff_left_ns(100 * S), 20 * S);
    assert_eq!(p.tick(119 * S, &i).run, Err(Skip::Backoff));
    assert_eq!(p.tick(200 * S, &i).run, Ok(Trigger::Period));
    p.complete(200 * S, fail);
    assert_eq!(p.backoff_left_ns(200 * S), 40 * S);
    p.tick(300 * S, &i);
    p.complete(300 * S, fail);
    p.tick(400 * S, &i);
    p.complete(400 * S, fail);
    assert_eq!(p.backoff_left_ns(400 * S), 80 * S, "capped");
    assert_eq!(p.failures_total(), 4);
    p.tick(500 * S, &i);
    p.complete(
        500 * S,
        Outcome {
            written_pages: 1,
            error: None,
        },
    );
    assert_eq!(p.backoff_left_ns(500 * S), 0);
}

#[test]
fn spent_budget_and_nothing_cold_skip() {
    let mut c = cfg();
    c.budget_burst_bytes = PAGE_SIZE - 1;
    c.budget_bytes_per_day = 0;
    let mut p = Policy::new(c, 0);
    let d = p.tick(100 * S, &inputs(ColdInput::Slots(vec![(1, 9999)])));
    assert_eq!(d.run, Err(Skip::BudgetSpent));
    let mut p = Policy::new(cfg(), 0);
    let d = p.tick(100 * S, &inputs(ColdInput::Slots(vec![(1, 5)])));
    assert_eq!(d.run, Err(Skip::NothingCold));
}

#[test]
fn idle_all_mode_marks_then_writes_back_a_threshold_later() {
    let mut p = Policy::new(cfg(), 0);
    let i = inputs(ColdInput::KernelMarkAll);
    let ok = |n| Outcome {
        written_pages: n,
        error: None,
    };
    let d = p.tick(100 * S, &i);
    assert_eq!((d.run, d.plan), (Err(Skip::Marking), Some(Plan::MarkAll)));
    p.complete(100 * S, ok(0));
    // Next period (100 s) is past the threshold (54 s): write back, re-mark.
    let d = p.tick(200 * S, &i);
    assert_eq!((d.run, d.plan), (Ok(Trigger::Period), Some(Plan::IdleAll)));
    p.complete(200 * S, ok(5));
}

#[test]
fn refaults_from_bd_reads_raise_the_threshold() {
    let mut p = Policy::new(cfg(), 0);
    let mut i = inputs(ColdInput::KernelAge);
    p.tick(100 * S, &i);
    p.complete(
        100 * S,
        Outcome {
            written_pages: 100,
            error: None,
        },
    );
    let before = p.threshold_secs();
    i.bd_reads = Some(50);
    p.tick(150 * S, &i);
    let d = p.tick(200 * S, &i);
    assert!(d.threshold_secs > before, "{} > {before}", d.threshold_secs);
    assert_eq!(p.refaults_total(), 100);
    // An exact refault count wins over the estimate.
    i.refaults = Some(0);
    p.tick(210 * S, &i);
    assert_eq!(p.refaults_total(), 100);
}

#[test]
fn utilisation_counts_ram_resident_pages_only() {
    // 1000 of 1024 pages stored, 600 of them on the backing device.
    let u = zram_utilisation(1000 * PAGE_SIZE, 600, 1024 * PAGE_SIZE);
    assert!((u - 400.0 / 1024.0).abs() < 1e-12, "{u}");
    assert_eq!(zram_utilisation(5 * PAGE_SIZE, 9, 1024 * PAGE_SIZE), 0.0);
    assert_eq!(zram_utilisation(5 * PAGE_SIZE, 0, 0), 0.0);
}

#[test]
fn round_offers_more_candidates_than_it_writes() {
    let round = RoundConfig {
        candidate_factor: 3,
        scale_with_utilisation: false,
        min_pages: 1,
        min_evidence_pages: 0,
        huge_age_factor: None,
        mature_evidence: false,
        reread_age_factor: None,
    };
    let mut p = Policy::new(PolicyConfig { round, ..cfg() }, 0);
    let slots: Vec<(u64, u64)> = (0..400).map(|i| (i, 1000 + i)).collect();
    let d = p.tick(100 * S, &inputs(ColdInput::Slots(slots)));
    // 64 pages to write (the round cap), the 192 oldest offered: the
    // kernel writes the largest objects among them first.
    assert_eq!(d.limit_pages, 64);
    assert_eq!(d.plan, Some(Plan::Pages(vec![(208, 399)])));
}

#[test]
fn rounds_scale_with_utilisation_and_skip_below_the_minimum() {
    let round = RoundConfig {
        candidate_factor: 1,
        scale_with_utilisation: true,
        min_pages: 16,
        min_evidence_pages: 0,
        huge_age_factor: None,
        mature_evidence: false,
        reread_age_factor: None,
    };
    let slots: Vec<(u64, u64)> = (0..400).map(|i| (i, 1000 + i)).collect();
    let mut i = inputs(ColdInput::Slots(slots));
    i.utilisation = Some(0.5);
    let mut p = Policy::new(
        PolicyConfig {
            round: round.clone(),
            ..cfg()
        },
        0,
    );
    assert_eq!(p.tick(100 * S, &i).limit_pages, 32);
    i.utilisation = Some(0.2);
    let mut p = Policy::new(
        PolicyConfig {
            round: round.clone(),
            ..cfg()
        },
        0,
    );
    assert_eq!(p.tick(100 * S, &i).run, Err(Skip::TooFew), "13 pages < 16");
    // The backing device's free space caps the round.
    i.utilisation = Some(1.0);
    let mut p = Policy::new(PolicyConfig { round, ..cfg() }, 0);
    p.observe_backing_free(Some(20));
    assert_eq!(p.tick(100 * S, &i).limit_pages, 20);
    p.observe_backing_free(Some(3));
    assert_eq!(p.tick(200 * S, &i).run, Err(Skip::TooFew));
}

#[test]
fn enospc_does_not_back_off() {
    let mut p = Policy::new(cfg(), 0);
    let i = inputs(ColdInput::KernelAge);
    p.tick(100 * S, &i);
    p.complete(
        100 * S,
        Outcome {
            written_pages: 3,
            error: Some(RoundError::NoSpace),
        },
    );
    assert_eq!(p.backoff_left_ns(100 * S), 0);
    assert_eq!(p.failures_total(), 0);
    p.tick(150 * S, &i);
    p.complete(
        150 * S,
        Outcome {
            written_pages: 0,
            error: Some(RoundError::Io),
        },
    );
    assert_eq!(p.backoff_left_ns(150 * S), 20 * S, "EIO still backs off");
}

#[test]
fn threshold_falls_only_on_evidence() {
    let round = RoundConfig {
        min_evidence_pages: 100,
        ..RoundConfig::legacy()
    };
    let mut p = Policy::new(PolicyConfig { round, ..cfg() }, 0);
    let i = inputs(ColdInput::KernelAge);
    let t0 = p.threshold_secs();
    for k in 1..=5 {
        p.tick(k * 100 * S, &i);
        p.complete(
            k * 100 * S,
            Outcome {
                written_pages: 10,
                error: None,
            },
        );
    }
    // 50 pages written, no refault: too little to say 1 % is not reached.
    p.tick(600 * S, &i);
    assert_eq!(p.threshold_secs(), t0);
    p.complete(
        600 * S,
        Outcome {
            written_pages: 60,
            error: None,
        },
    );
    p.tick(700 * S, &i);
    assert!(p.threshold_secs() < t0, "110 pages and no refault: lower");
    // The legacy policy lowers it on every round.
    let mut p = Policy::new(cfg(), 0);
    p.tick(100 * S, &i);
    assert!(p.threshold_secs() < t0);
}

/// Found by the policy lab on the synthetic traces: once a round wrote few
/// pages, the reads of pages written back hours before (bd_reads cannot
/// say which) were divided by those few, the threshold doubled at every
/// round and writeback stopped for the rest of the trace. Before the fix
/// this test saw the threshold go 60 -> 120 -> 240 -> ...
#[test]
fn refaults_of_old_writebacks_do_not_raise_the_threshold_without_recent_writes() {
    let round = RoundConfig {
        min_evidence_pages: 100,
        ..RoundConfig::legacy()
    };
    let mut p = Policy::new(PolicyConfig { round, ..cfg() }, 0);
    let t0 = p.threshold_secs();
    let mut i = inputs(ColdInput::KernelAge);
    p.tick(100 * S, &i);
    p.complete(
        100 * S,
        Outcome {
            written_pages: 500,
            error: None,
        },
    );
    // Past the refault window: the 500 pages are no longer recent, but
    // their reads keep coming, 5 per round.
    i.bd_reads = Some(5);
    for k in 0..10 {
        let now = 4000 * S + k * 100 * S;
        let d = p.tick(now, &i);
        assert!(d.run.is_ok());
        p.complete(
            now,
            Outcome {
                written_pages: 0,
                error: None,
            },
        );
        assert_eq!(p.threshold_secs(), t0, "round {k}");
    }
    // With recent evidence refaults do count: 10 of 150 > 5 %.
    i.bd_reads = Some(10);
    p.complete(
        5100 * S,
        Outcome {
            written_pages: 150,
            error: None,
        },
    );
    p.tick(5200 * S, &i);
    assert!(p.threshold_secs() > t0);
}

/// `huge_age_factor`: the round starts with a huge-page pass at the
/// threshold x factor (plus the time slept, kernel ages run on boot
/// time); it runs when no page is past the threshold too, with the
/// round's whole limit.
#[test]
fn huge_pages_go_first_at_a_fraction_of_the_threshold() {
    let round = RoundConfig {
        huge_age_factor: Some(0.5),
        min_evidence_pages: 1000,
        ..RoundConfig::legacy()
    };
    let mut p = Policy::new(PolicyConfig { round, ..cfg() }, 0);
    // Threshold 60 s; slots 20-40 s old: none is past it.
    let c = ColdInput::Slots(vec![(1, 20), (2, 40)]);
    let d = p.tick(100 * S, &inputs(c.clone()));
    assert_eq!(d.run, Ok(Trigger::Period));
    assert_eq!(d.huge_idle_secs, Some(30));
    assert_eq!(d.plan, Some(Plan::Pages(vec![])));
    assert_eq!(d.limit_pages, 64, "the round's cap");
    p.complete(
        100 * S,
        Outcome {
            written_pages: 3,
            error: None,
        },
    );
    // Kernel ages: the pass comes with the idle-age plan, both with the
    // 10 s slept within their windows.
    p.observe_clocks(150 * S, 150 * S);
    p.observe_clocks(200 * S, 190 * S);
    let d = p.tick(200 * S, &inputs(ColdInput::KernelAge));
    assert_eq!(d.plan, Some(Plan::IdleAge(70)));
    assert_eq!(d.huge_idle_secs, Some(40));
    // Off: nothing past the threshold is nothing to do.
    let mut p = Policy::new(cfg(), 0);
    let d = p.tick(100 * S, &inputs(c));
    assert_eq!(d.run, Err(Skip::NothingCold));
    assert_eq!(d.huge_idle_secs, None);
}

#[test]
fn kernel_idle_ages_add_the_time_slept_as_mmd_does() {
    let mut p = Policy::new(cfg(), 0);
    // Monotonic 0..100 s; the machine slept 40 s (noticed at boot 130 s).
    p.observe_clocks(0, 0);
    p.observe_clocks(90 * S, 90 * S);
    p.observe_clocks(140 * S, 100 * S);
    let d = p.tick(100 * S, &inputs(ColdInput::KernelAge));
    // Threshold 60 s (cfg) + the 40 s slept within the window.
    assert_eq!(d.plan, Some(Plan::IdleAge(54 + 40)));
}

/// Mature evidence (issue 17): refaults come at the writeback -> refault
/// age, so a round soon after the first writeback at a threshold sees
/// none yet. The threshold falls only once the first pages written at it
/// have been on the backing device for the threshold; a rise is immediate.
#[test]
fn threshold_falls_only_on_mature_evidence() {
    let round = RoundConfig {
        mature_evidence: true,
        ..RoundConfig::legacy()
    };
    let every_10s = PolicyConfig {
        period_ns: 10 * S,
        ..cfg()
    };
    let mut p = Policy::new(
        PolicyConfig {
            round,
            ..every_10s.clone()
        },
        0,
    );
    let i = inputs(ColdInput::KernelAge);
    let t0 = p.threshold_secs();
    assert_eq!(t0, 60);
    let round_at = |p: &mut Policy, t: u64, refaults: Option<u64>| {
        let mut i = i.clone();
        i.refaults = refaults;
        let d = p.tick(t * S, &i);
        assert!(d.run.is_ok(), "round at {t} s: {:?}", d.run);
        p.complete(
            t * S,
            Outcome {
                written_pages: 10,
                error: None,
            },
        );
        p.threshold_secs()
    };
    // The first pages at 60 s go at t=100; no refault at 110, 120, ...
    // 150 s: they have been cold for less than 60 s, hold.
    assert_eq!(round_at(&mut p, 100, None), t0, "nothing written yet");
    for t in [110, 120, 150] {
        assert_eq!(round_at(&mut p, t, None), t0, "evidence {t} - 100 s old");
    }
    // 160 s: 60 s old, no refault: it falls (x 0.9).
    assert_eq!(round_at(&mut p, 160, None), 54);
    // A fall resets the evidence: the pages at 54 s start with the next
    // round's writes (170); refaults raise at once.
    assert_eq!(round_at(&mut p, 170, None), 54);
    assert_eq!(round_at(&mut p, 180, Some(50)), 108, "rise at once");
    // Without the setting every round lowers it.
    let mut p = Policy::new(every_10s, 0);
    assert_eq!(round_at(&mut p, 100, None), 54);
    assert_eq!(round_at(&mut p, 110, None), 48);
}

/// Read-back slots (issue 17): a slot whose page was read from zram ages
/// `reread_age_factor` times slower in the ranking.
#[test]
fn reread_slots_need_a_longer_idle_age() {
    use cold::ranked_age;
    assert_eq!(ranked_age(100, 0, Some(2.0)), 100, "never read");
    assert_eq!(ranked_age(100, 3, Some(2.0)), 50);
    assert_eq!(ranked_age(100, 3, None), 100, "off");
    assert_eq!(ranked_age(100, 3, Some(1.0)), 100, "1 is off");
    // The policy takes ranked ages: slot 1 (read, 100 s) is not past a
    // 60 s threshold at factor 2, slot 2 (never read, 70 s) is.
    let mut p = Policy::new(cfg(), 0);
    let c = vec![
        (1, ranked_age(100, 1, Some(2.0))),
        (2, ranked_age(70, 0, Some(2.0))),
    ];
    let d = p.tick(100 * S, &inputs(ColdInput::Slots(c)));
    assert_eq!(d.plan, Some(Plan::Pages(vec![(2, 2)])));
}

#[derive(Clone, Debug)]
struct Step {
    dt_s: u64,
    psi: Option<f64>,
    util: Option<f64>,
    p99: Option<(f64, u64)>,
    refaults: u64,
    kernel_share: f64,
    fail: bool,
    cold: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u64..2000,
        proptest::option::of(0.0f64..100.0),
        proptest::option::of(0.0f64..1.0),
        proptest::option::of((0.0f64..1e9, 0u64..1000)),
        0u64..500,
        0.0f64..=1.0,
        proptest::bool::weighted(0.1),
        0u8..3,
    )
        .prop_map(
            |(dt_s, psi, util, p99, refaults, kernel_share, fail, cold)| Step {
                dt_s,
                psi,
                util,
                p99,
                refaults,
                kernel_share,
                fail,
                cold,
            },
        )
}

fn config() -> impl Strategy<Value = PolicyConfig> {
    (
        0u64..(1 << 32),
        0u64..(64 << 20),
        1u64..100_000,
        (1u64..64, 0u64..512, 1u64..512),
    )
        .prop_map(|(per_day, burst, max_pages, (bmin, bspan, binit))| {
            let mut c = cfg();
            c.budget_bytes_per_day = per_day;
            c.budget_burst_bytes = burst;
            c.max_pages_per_round = max_pages;
            c.batch.min = bmin;
            c.batch.max = bmin + bspan;
            c.batch.initial = binit;
            c
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever happens, pages written never exceed the bucket: at most
    /// burst + rate * elapsed since the start, and the batch stays in bounds.
    #[test]
    fn budget_never_exceeded_and_batch_in_bounds(c in config(), steps in proptest::collection::vec(step(), 1..200)) {
        let mut p = Policy::new(c.clone(), 0);
        let mut now = 0u64;
        let mut written_bytes = 0u128;
        for s in steps {
            now += s.dt_s * S;
            let cold = match s.cold {
                0 => ColdInput::Slots((0..300).map(|i| (i * 3, (i * 7919) % 5000)).collect()),
                1 => ColdInput::KernelAge,
                _ => ColdInput::KernelMarkAll,
            };
            let i = Inputs {
                psi_some_avg10: s.psi,
                utilisation: s.util,
                latency: s.p99.map(|(p99_ns, samples)| LatencyWindow { p99_ns, samples }),
                refaults: Some(s.refaults),
                bd_reads: None,
                cold,
            };
            let d = p.tick(now, &i);
            prop_assert!(d.batch_size >= c.batch.min && d.batch_size <= c.batch.max);
            if let Some(plan) = &d.plan {
                if let Plan::Pages(r) = plan {
                    prop_assert_eq!(cold::pages_in(r), d.limit_pages);
                }
                // The kernel writes at most the limit it was given.
                let n = (d.limit_pages as f64 * s.kernel_share) as u64;
                written_bytes += u128::from(n) * u128::from(PAGE_SIZE);
                p.complete(now, Outcome {
                    written_pages: n,
                    error: s.fail.then_some(RoundError::Io),
                });
            }
            let allowed = u128::from(c.budget_burst_bytes)
                + u128::from(c.budget_bytes_per_day) * u128::from(now) / u128::from(budget::DAY_NS)
                + 1;
            prop_assert!(written_bytes <= allowed, "{written_bytes} > {allowed}");
        }
    }

    /// More refaults (same history, same writes) never give a lower threshold.
    #[test]
    fn more_refaults_never_lower_the_threshold(
        history in proptest::collection::vec((0u64..1000, 0u64..1000), 0..50),
        r1 in 0u64..10_000, extra in 0u64..10_000, written in 0u64..10_000,
    ) {
        let mut c = RefaultController::new(RefaultConfig::default());
        for (r, w) in history {
            c.update(r, w);
        }
        let mut a = c.clone();
        let mut b = c;
        let ta = a.update(r1, written);
        let tb = b.update(r1 + extra, written);
        prop_assert!(tb >= ta, "{tb} < {ta}");
        let d = RefaultConfig::default();
        prop_assert!(ta >= d.floor_secs && ta <= d.ceiling_secs);
    }

    /// Mature evidence: whatever the rounds and refaults, the threshold
    /// never falls before the first pages written at it have been on the
    /// backing device for the threshold, and stays within its bounds.
    #[test]
    fn mature_threshold_never_falls_on_young_evidence(
        rounds in proptest::collection::vec((1u64..400, 0u64..200, 0u64..50), 1..100),
    ) {
        let round = RoundConfig { mature_evidence: true, ..RoundConfig::legacy() };
        let c = PolicyConfig { round, period_ns: S, min_interval_ns: S, ..cfg() };
        let mut p = Policy::new(c.clone(), 0);
        let mut now = 0u64;
        // When the first pages at the current threshold went.
        let mut since: Option<u64> = None;
        for (dt, written, refaults) in rounds {
            now += dt * S;
            let before = p.threshold_secs();
            let mut i = inputs(ColdInput::KernelAge);
            i.refaults = Some(refaults);
            let d = p.tick(now, &i);
            let after = p.threshold_secs();
            if after < before {
                prop_assert!(since.is_some_and(|t| now - t >= before * S),
                    "fell {before} -> {after} at {now} with evidence from {since:?}");
            }
            prop_assert!(after >= c.refault.floor_secs && after <= c.refault.ceiling_secs);
            if after != before {
                since = None;
            }
            if d.run.is_ok() {
                p.complete(now, Outcome { written_pages: written, error: None });
                if written > 0 && since.is_none() {
                    since = Some(now);
                }
            }
        }
    }

    /// Ranked ages never exceed the plain age and keep its order.
    #[test]
    fn ranked_ages_are_monotone(a in 0u64..1_000_000, b in 0u64..1_000_000, reads in 0u32..5, f in proptest::option::of(0.5f64..64.0)) {
        let (ra, rb) = (cold::ranked_age(a, reads, f), cold::ranked_age(b, reads, f));
        prop_assert!(ra <= a);
        if a <= b { prop_assert!(ra <= rb); }
        if reads == 0 { prop_assert_eq!(ra, a); }
    }

    /// The batch controller alone, on any latency sequence.
    #[test]
    fn batch_always_within_bounds(
        min in 1u64..100, span in 0u64..1000, init in 0u64..2000,
        obs in proptest::collection::vec((proptest::option::of(0.0f64..1e10), 0u64..100), 0..300),
    ) {
        let mut b = BatchController::new(BatchConfig { min, max: min + span, initial: init, ..BatchConfig::default() });
        prop_assert!(b.current() >= min && b.current() <= min + span);
        for (p, n) in obs {
            b.update(p, n);
            prop_assert!(b.current() >= min && b.current() <= min + span);
        }
    }

    /// Cold selection: never more than asked, only old enough slots, each
    /// at most once, ranges disjoint.
    #[test]
    fn the_huge_age_is_a_fraction_of_the_threshold(t in 0u64..10_000_000, f in 0.0f64..2.0) {
        let c = RoundConfig { huge_age_factor: Some(f), ..RoundConfig::legacy() };
        match round::huge_idle_secs(&c, t) {
            None => prop_assert!(f <= 0.0),
            Some(h) => {
                prop_assert!(h >= 1);
                prop_assert!(h <= t.max(1));
                // Monotone in the threshold.
                prop_assert!(round::huge_idle_secs(&c, t + 1).unwrap() >= h);
            }
        }
        prop_assert_eq!(round::huge_idle_secs(&RoundConfig::legacy(), t), None);
    }

    #[test]
    fn cold_selection_is_sound(
        cands in proptest::collection::vec((0u64..2000, 0u64..10_000), 0..500),
        threshold in 0u64..10_000, max in 0u64..600,
    ) {
        let ranges = cold::select_cold(cands.iter().copied(), threshold, max);
        prop_assert!(cold::pages_in(&ranges) <= max);
        let mut seen = std::collections::BTreeSet::new();
        for &(a, b) in &ranges {
            prop_assert!(a <= b);
            for i in a..=b {
                prop_assert!(seen.insert(i), "slot {} twice", i);
                prop_assert!(cands.iter().any(|&(j, age)| j == i && age >= threshold));
            }
        }
    }
}

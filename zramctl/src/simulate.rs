//! `zramctl simulate`: replays an access trace through the policy
//! ([`crate::policy`]) on a simulated device and reports what it would have
//! written back, the refaults it caused and the budget it used, so two
//! policies (two configurations) can be compared on the same trace offline.
//!
//! # Trace format (`zramctl trace v1`)
//!
//! Plain text, one event per line; `#` starts a comment; blank lines are
//! ignored. Times are seconds (decimals allowed) from the start of the
//! trace and never go backwards.
//!
//! ```text
//! # TIME  OP   SLOT[+PAGES]
//! 0.0     w    0+4096      # pages 0..4095 written (swapped out to zram)
//! 12.5    r    17          # page 17 read (swapped in)
//! 30      d    100+8       # pages 100..107 discarded (swap slots freed)
//! 45      psi  22.5        # memory pressure: PSI "some avg10" = 22.5 %
//! ```
//!
//! `w` stores pages in RAM (a write to a written-back page brings it back);
//! `r` of a written-back page is a refault: a read from the backing device.
//! `zramctl top --record` files hold interval histograms, not per-slot
//! events, so they cannot drive slot choice; they are refused with a hint.
//!
//! The backing device's p99 write latency is modelled as
//! `base + per_request * batch_size` (microseconds), so the batch controller
//! has something to steer against.

use std::io::BufRead;

use serde::Serialize;

use crate::policy::{
    ColdInput, Inputs, LatencyWindow, Outcome, PAGE_SIZE, Plan, Policy, PolicyConfig,
    budget::DAY_NS,
};

/// One trace event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Read { slot: u64, pages: u64 },
    Write { slot: u64, pages: u64 },
    Discard { slot: u64, pages: u64 },
    Pressure(f64),
}

/// Why a trace could not be read: what is wrong, naming the line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TraceError(pub String);

/// Returns a [`TraceError`] with the formatted message.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(TraceError(format!($($t)*)))
    };
}

/// Parses a trace; errors name the line.
pub fn parse_trace(r: impl BufRead) -> Result<Vec<(f64, Event)>, TraceError> {
    let mut out = Vec::new();
    let mut last_t = 0.0f64;
    for (n, line) in r.lines().enumerate() {
        let n = n + 1;
        let line = line.map_err(|e| TraceError(format!("reading line {n}: {e}")))?;
        let text = line.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        if text.starts_with('{') {
            bail!(
                "line {n}: this looks like a `zramctl top --record` JSON report: those hold \
                 per-interval histograms, not per-slot accesses; simulate needs the text trace \
                 format `TIME OP SLOT[+PAGES]` (see `zramctl simulate --help`)"
            );
        }
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != 3 {
            bail!("line {n}: expected `TIME OP SLOT[+PAGES]` or `TIME psi AVG10`, got {text:?}");
        }
        let t: f64 = f[0]
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| {
                TraceError(format!(
                    "line {n}: time {:?} is not a number of seconds",
                    f[0]
                ))
            })?;
        if t < last_t {
            bail!("line {n}: time {t} goes backwards (previous event at {last_t})");
        }
        last_t = t;
        let slots = |s: &str| -> Result<(u64, u64), TraceError> {
            let (a, b) = s.split_once('+').unwrap_or((s, "1"));
            let slot = a
                .parse()
                .map_err(|e| TraceError(format!("line {n}: slot {a:?} is not a number: {e}")))?;
            let pages: u64 = b
                .parse()
                .ok()
                .filter(|p| (1..=1 << 24).contains(p))
                .ok_or_else(|| {
                    TraceError(format!("line {n}: page count {b:?} must be 1..=16777216"))
                })?;
            Ok((slot, pages))
        };
        let ev = match f[1] {
            "r" => {
                let (slot, pages) = slots(f[2])?;
                Event::Read { slot, pages }
            }
            "w" => {
                let (slot, pages) = slots(f[2])?;
                Event::Write { slot, pages }
            }
            "d" => {
                let (slot, pages) = slots(f[2])?;
                Event::Discard { slot, pages }
            }
            "psi" => Event::Pressure(
                f[2].parse()
                    .ok()
                    .filter(|p: &f64| (0.0..=100.0).contains(p))
                    .ok_or_else(|| {
                        TraceError(format!("line {n}: psi {:?} must be 0..100", f[2]))
                    })?,
            ),
            op => bail!("line {n}: unknown operation {op:?} (expected r, w, d or psi)"),
        };
        out.push((t, ev));
    }
    Ok(out)
}

#[derive(Clone, Copy, Default)]
struct Slot {
    stored: bool,
    wb: bool,
    last_s: f64,
    wb_at_s: f64,
}

/// What a replay did.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub duration_secs: f64,
    pub events: u64,
    pub steps: u64,
    pub rounds: u64,
    pub written_back_pages: u64,
    pub written_back_bytes: u64,
    /// Reads of written-back pages.
    pub refaults: u64,
    /// Refaults within the policy's refault window of their writeback.
    pub recent_refaults: u64,
    pub refault_ratio: f64,
    pub budget_spent_bytes: u64,
    /// burst + rate * duration: the most the budget could have allowed.
    pub budget_allowed_bytes: u64,
    pub final_batch_size: u64,
    pub final_idle_age_secs: u64,
    pub peak_written_back_bytes: u64,
    pub end_ram_pages: u64,
}

/// One round, for `--verbose`.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub t: f64,
    pub trigger: &'static str,
    pub pages: u64,
    pub ranges: usize,
    pub threshold_secs: u64,
    pub batch: u64,
    pub budget_left_bytes: u64,
}

/// Latency model of the backing device.
#[derive(Clone, Copy, Debug)]
pub struct LatencyModel {
    pub base_us: f64,
    pub per_request_us: f64,
}

/// Replays `events` through a policy on a device of `slots` slots, stepping
/// every `step_s`.
pub fn replay(
    events: &[(f64, Event)],
    cfg: PolicyConfig,
    slots: u64,
    step_s: f64,
    lat: LatencyModel,
    mut on_round: impl FnMut(&Round),
) -> Summary {
    let ns = |s: f64| (s * 1e9) as u64;
    let window_s = cfg.refault_window_ns as f64 / 1e9;
    let mut p = Policy::new(cfg.clone(), 0);
    let mut dev = vec![Slot::default(); slots as usize];
    let mut s = Summary::default();
    let mut psi: Option<f64> = None;
    let mut refaults_since = 0u64;
    let mut last_written = 0u64;
    let mut on_backing = 0u64;
    let end = events.last().map_or(0.0, |e| e.0);
    let mut next_step = step_s;
    let mut ev = events.iter().peekable();
    loop {
        // Events up to the next step.
        while let Some(&&(t, e)) = ev.peek() {
            if t > next_step {
                break;
            }
            ev.next();
            s.events += 1;
            match e {
                Event::Pressure(v) => psi = Some(v),
                Event::Read { slot, pages }
                | Event::Write { slot, pages }
                | Event::Discard { slot, pages } => {
                    for i in slot..slot.saturating_add(pages).min(slots) {
                        let d = &mut dev[i as usize];
                        match e {
                            Event::Read { .. } => {
                                if d.wb {
                                    s.refaults += 1;
                                    refaults_since += 1;
                                    if t - d.wb_at_s <= window_s {
                                        s.recent_refaults += 1;
                                    }
                                }
                            }
                            Event::Write { .. } => {
                                if d.wb {
                                    on_backing -= 1;
                                }
                                d.stored = true;
                                d.wb = false;
                            }
                            _ => {
                                if d.wb {
                                    on_backing -= 1;
                                }
                                d.stored = false;
                                d.wb = false;
                            }
                        }
                        d.last_s = t;
                    }
                }
            }
        }
        if next_step > end + step_s {
            break;
        }
        // A policy step.
        let t = next_step;
        s.steps += 1;
        let in_ram = dev.iter().filter(|d| d.stored && !d.wb).count() as u64;
        let cands: Vec<(u64, u64)> = dev
            .iter()
            .enumerate()
            .filter(|(_, d)| d.stored && !d.wb)
            .map(|(i, d)| (i as u64, (t - d.last_s).max(0.0) as u64))
            .collect();
        let latency = (last_written > 0).then(|| LatencyWindow {
            p99_ns: (lat.base_us + lat.per_request_us * p.batch_size() as f64) * 1e3,
            samples: last_written,
        });
        let inputs = Inputs {
            psi_some_avg10: psi,
            utilisation: (slots > 0).then(|| in_ram as f64 / slots as f64),
            latency,
            refaults: Some(refaults_since),
            bd_reads: None,
            cold: ColdInput::Slots(cands),
        };
        refaults_since = 0;
        last_written = 0;
        let d = p.tick(ns(t), &inputs);
        if let (Ok(trigger), Some(Plan::Pages(ranges))) = (d.run, &d.plan) {
            let mut written = 0u64;
            'outer: for &(a, b) in ranges {
                for i in a..=b {
                    if written >= d.limit_pages {
                        break 'outer;
                    }
                    let x = &mut dev[i as usize];
                    if x.stored && !x.wb {
                        x.wb = true;
                        x.wb_at_s = t;
                        written += 1;
                    }
                }
            }
            on_backing += written;
            s.peak_written_back_bytes = s.peak_written_back_bytes.max(on_backing * PAGE_SIZE);
            s.rounds += 1;
            s.written_back_pages += written;
            last_written = written;
            p.complete(
                ns(t),
                Outcome {
                    written_pages: written,
                    error: None,
                },
            );
            on_round(&Round {
                t,
                trigger: trigger.as_str(),
                pages: written,
                ranges: ranges.len(),
                threshold_secs: d.threshold_secs,
                batch: d.batch_size,
                budget_left_bytes: p.budget().available_bytes(),
            });
        }
        next_step += step_s;
    }
    s.duration_secs = end;
    s.written_back_bytes = s.written_back_pages * PAGE_SIZE;
    s.refault_ratio = s.refaults as f64 / s.written_back_pages.max(1) as f64;
    s.budget_spent_bytes = p.budget().spent_total();
    s.budget_allowed_bytes = cfg.budget_burst_bytes
        + (cfg.budget_bytes_per_day as f64 * ns(end) as f64 / DAY_NS as f64) as u64;
    s.final_batch_size = p.batch_size();
    s.final_idle_age_secs = p.threshold_secs();
    s.end_ram_pages = dev.iter().filter(|d| d.stored && !d.wb).count() as u64;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PolicyConfig {
        let mut c = PolicyConfig {
            period_ns: 60_000_000_000,
            ..PolicyConfig::default()
        };
        c.refault.initial_secs = 600;
        c.refault.floor_secs = 300;
        c
    }

    const LAT: LatencyModel = LatencyModel {
        base_us: 500.0,
        per_request_us: 100.0,
    };

    #[test]
    fn parses_the_documented_format_and_names_bad_lines() {
        let t = "# c\n0.0 w 0+4\n\n12.5 r 17 # x\n30 d 100+8\n45 psi 22.5\n";
        let ev = parse_trace(t.as_bytes()).unwrap();
        assert_eq!(
            ev,
            [
                (0.0, Event::Write { slot: 0, pages: 4 }),
                (12.5, Event::Read { slot: 17, pages: 1 }),
                (
                    30.0,
                    Event::Discard {
                        slot: 100,
                        pages: 8
                    }
                ),
                (45.0, Event::Pressure(22.5)),
            ]
        );
        for (bad, want) in [
            ("1 w\n", "line 1: expected"),
            ("1 w 1\n0 r 1\n", "line 2: time 0 goes backwards"),
            ("1 x 1\n", "unknown operation \"x\""),
            ("x w 1\n", "time \"x\""),
            ("1 w 1+0\n", "page count \"0\""),
            ("1 psi 200\n", "psi \"200\""),
            ("{\"interval_secs\":1}\n", "zramctl top --record"),
        ] {
            let e = format!("{:#}", parse_trace(bad.as_bytes()).unwrap_err());
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    /// 1000 pages written at 0; pages 0-99 stay hot (read every 30 s).
    fn trace() -> Vec<(f64, Event)> {
        let mut ev = vec![(
            0.0,
            Event::Write {
                slot: 0,
                pages: 1000,
            },
        )];
        for k in 1..=120 {
            ev.push((
                k as f64 * 30.0,
                Event::Read {
                    slot: 0,
                    pages: 100,
                },
            ));
        }
        ev
    }

    #[test]
    fn cold_pages_go_hot_ones_stay() {
        let s = replay(&trace(), cfg(), 1000, 10.0, LAT, |_| {});
        assert_eq!(s.written_back_pages, 900, "{s:?}");
        assert_eq!(s.refaults, 0);
        assert_eq!(s.end_ram_pages, 100);
        assert!(s.budget_spent_bytes <= s.budget_allowed_bytes);
    }

    #[test]
    fn a_small_budget_limits_writeback_and_a_low_threshold_refaults() {
        let mut c = cfg();
        c.budget_burst_bytes = 100 * PAGE_SIZE;
        c.budget_bytes_per_day = 0;
        let s = replay(&trace(), c, 1000, 10.0, LAT, |_| {});
        assert_eq!(s.written_back_pages, 100);
        assert_eq!(s.budget_spent_bytes, 100 * PAGE_SIZE);

        // Hot pages read every 30 s, a threshold of 20 s: they get written
        // back and read again; the threshold rises in answer.
        let mut c = cfg();
        c.refault.initial_secs = 20;
        c.refault.floor_secs = 20;
        c.min_interval_ns = 0;
        c.period_ns = 10_000_000_000;
        let s = replay(&trace(), c, 1000, 10.0, LAT, |_| {});
        assert!(s.refaults > 0, "{s:?}");
        assert!(s.final_idle_age_secs > 20, "{s:?}");
    }

    #[test]
    fn batch_converges_toward_the_latency_target() {
        // 500 us + 100 us per request against a 5 ms target: about 45.
        let mut ev = Vec::new();
        for k in 0..200u64 {
            ev.push((
                k as f64 * 10.0,
                Event::Write {
                    slot: k * 500,
                    pages: 500,
                },
            ));
        }
        let mut c = cfg();
        c.period_ns = 10_000_000_000;
        c.refault.initial_secs = 300;
        c.batch.min_samples = 1;
        let s = replay(&ev, c, 100_000, 10.0, LAT, |_| {});
        println!("final batch {}", s.final_batch_size);
        assert!((20..=60).contains(&s.final_batch_size), "{s:?}");
    }
}

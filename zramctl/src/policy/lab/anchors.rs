//! The anchors: the writeback policies phones and Chromebooks run, as
//! published, driving the [`Zram`] model through the same sysfs operations
//! they use.
//!
//! Both come from one design (ChromeOS's `swap_management`, ported to
//! Android's `mmd` in Rust) and share the round below; their differences are
//! parameters ([`AnchorParams::android_mmd`], [`AnchorParams::chromeos`]).
//!
//! A round (ChromeOS `ZramWriteback::PeriodicWriteback`, mmd
//! `ZramWriteback::mark_and_flush_pages`):
//! 1. nothing if the last writeback was less than `backoff` ago;
//! 2. size: `orig_data_size / disksize` (basis points) x `max_bytes`, capped
//!    at the backing device's free pages, 0 (skip) below `min_bytes`, at most
//!    `max_bytes` (`GetAllowedWritebackLimit` / `calculate_idle_writeback_limit`);
//!    then at most what is left of `max_bytes_per_day` over the trailing
//!    24 h; the result goes to `writeback_limit`;
//! 3. `huge_idle`, then `idle`, then (if enabled) `huge`: before each idle
//!    mode, `idle <age>` marks pages idle for at least
//!    `(max_idle - min_idle) * e^(-5 * (1 - MemAvailable/MemTotal)) + min_idle`
//!    (`calculate_idle_time`); mmd adds the time the machine was suspended
//!    within that window (`SuspendHistory::calculate_total_suspend_duration`),
//!    ChromeOS does not; EIO with a spent limit and ENOSPC end the round
//!    quietly, other errors abort it.
//!
//! Triggers: ChromeOS runs the round every `periodic_time` (1 h) from a
//! timer; Android's `ZramMaintenance` job calls mmd after a first delay of
//! 1 h and then every 1 h (`DEFAULT_FIRST_DELAY_SECONDS`,
//! `DEFAULT_PERIODIC_DELAY_SECONDS`). Recompression (both run it with their
//! own idle ages) is not modelled: it moves no page to flash.

use std::collections::VecDeque;

use super::{
    Env, LabPolicy, RoundLog,
    kernel::{Errno, PAGE, Request, Zram},
};

const NS: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * NS;

/// An anchor's published parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct AnchorParams {
    pub name: &'static str,
    pub first_round_ns: u64,
    pub period_ns: u64,
    pub backoff_ns: u64,
    pub min_idle_ns: u64,
    pub max_idle_ns: u64,
    pub min_bytes: u64,
    pub max_bytes: u64,
    pub max_bytes_per_day: u64,
    pub huge_idle: bool,
    pub idle: bool,
    pub huge: bool,
    /// Add suspended time to the idle age (mmd) or not (ChromeOS).
    pub suspend_aware: bool,
}

impl AnchorParams {
    /// Android mmd (`system/memory/mmd`, `zram/writeback.rs` `Params::default`,
    /// `PerDeviceParams::default`): huge_idle and idle, not huge.
    pub fn android_mmd() -> Self {
        AnchorParams {
            name: "android-mmd",
            first_round_ns: HOUR,
            period_ns: HOUR,
            backoff_ns: 600 * NS,
            min_idle_ns: 20 * HOUR,
            max_idle_ns: 25 * HOUR,
            min_bytes: 5 << 20,
            max_bytes: 300 << 20,
            max_bytes_per_day: 1 << 30,
            huge_idle: true,
            idle: true,
            huge: false,
            suspend_aware: true,
        }
    }

    /// ChromeOS (`platform2/swap_management`, `zram_writeback.h`
    /// `ZramWritebackParams`): huge_idle, idle and huge; 1 GiB per day
    /// (`max_pages_per_day`).
    pub fn chromeos() -> Self {
        AnchorParams {
            name: "chromeos-swap_management",
            first_round_ns: HOUR,
            period_ns: HOUR,
            backoff_ns: 600 * NS,
            min_idle_ns: 20 * HOUR,
            max_idle_ns: 25 * HOUR,
            min_bytes: 5 << 20,
            max_bytes: 300 << 20,
            max_bytes_per_day: 1 << 30,
            huge_idle: true,
            idle: true,
            huge: true,
            suspend_aware: false,
        }
    }
}

/// `calculate_idle_time`: the idle age for a memory utilisation.
pub fn idle_age_ns(min_ns: u64, max_ns: u64, available_kb: u64, total_kb: u64) -> u64 {
    let util = if total_kb == 0 {
        0.0
    } else {
        1.0 - available_kb as f64 / total_kb as f64
    };
    let secs = ((max_ns - min_ns) / NS) as f64 * (-5.0 * util).exp() + (min_ns / NS) as f64;
    secs as u64 * NS
}

/// `calculate_idle_writeback_limit`: pages for one round (0: skip).
pub fn round_pages(p: &AnchorParams, orig_data_size: u64, nr_slots: u64, free_bd: u64) -> u64 {
    const BPS: u64 = 100 * 100;
    let min = p.min_bytes / PAGE;
    let max = p.max_bytes / PAGE;
    let util_bps = orig_data_size / PAGE * BPS / nr_slots.max(1);
    let n = (util_bps * max / BPS).min(free_bd);
    if n < min { 0 } else { n.min(max) }
}

/// An anchor policy's state.
#[derive(Clone, Debug)]
pub struct Anchor {
    p: AnchorParams,
    next_round_ns: u64,
    last_writeback_ns: Option<u64>,
    /// (time, pages) over the trailing 24 h.
    history: VecDeque<(u64, u64)>,
}

impl Anchor {
    pub fn new(p: AnchorParams, now_ns: u64) -> Self {
        Anchor {
            next_round_ns: now_ns + p.first_round_ns,
            p,
            last_writeback_ns: None,
            history: VecDeque::new(),
        }
    }

    pub fn params(&self) -> &AnchorParams {
        &self.p
    }

    fn daily_left(&mut self, now_ns: u64) -> u64 {
        let day = 24 * HOUR;
        while self
            .history
            .front()
            .is_some_and(|&(t, _)| now_ns.saturating_sub(t) >= day)
        {
            self.history.pop_front();
        }
        let used: u64 = self.history.iter().map(|&(_, n)| n).sum();
        (self.p.max_bytes_per_day / PAGE).saturating_sub(used)
    }

    fn round(&mut self, env: &Env, dev: &mut Zram, log: &mut Vec<RoundLog>) {
        let now = env.now_ns;
        if self
            .last_writeback_ns
            .is_some_and(|t| now.saturating_sub(t) < self.p.backoff_ns)
        {
            return;
        }
        let free_bd = dev.backing_pages().saturating_sub(dev.bd_stat().bd_count);
        let pages = round_pages(
            &self.p,
            dev.mm_stat().orig_data_size,
            dev.nr_slots(),
            free_bd,
        );
        let limit = pages.min(self.daily_left(now));
        if limit == 0 {
            return;
        }
        dev.set_writeback_limit(Some(limit));
        let mut entry = RoundLog {
            t_ns: now,
            policy_limit_pages: limit,
            ..RoundLog::default()
        };
        let modes = [
            (self.p.huge_idle, Request::HugeIdle),
            (self.p.idle, Request::Idle),
            (self.p.huge, Request::Huge),
        ];
        for (on, req) in modes {
            if !on || dev.writeback_limit() == 0 {
                continue;
            }
            if req != Request::Huge {
                let mut age = idle_age_ns(
                    self.p.min_idle_ns,
                    self.p.max_idle_ns,
                    env.mem_available_kb,
                    env.mem_total_kb,
                );
                if self.p.suspend_aware {
                    age = age.saturating_add(env.suspend.suspended_within(age, now));
                }
                entry.idle_age_ns = age;
                dev.mark_idle(now, Some(age));
            }
            let (w, r) = dev.writeback(now, &req);
            entry.pages += w.pages;
            entry.ram_bytes += w.ram_bytes;
            self.history.push_back((now, w.pages));
            self.last_writeback_ns = Some(now);
            match r {
                Ok(()) => {}
                Err(e @ (Errno::Eio | Errno::Enospc)) => {
                    entry.error = Some(e);
                    break;
                }
            }
        }
        dev.set_writeback_limit(None);
        log.push(entry);
    }
}

impl LabPolicy for Anchor {
    fn name(&self) -> &str {
        self.p.name
    }

    fn step(&mut self, env: &Env, dev: &mut Zram, log: &mut Vec<RoundLog>) {
        if env.now_ns < self.next_round_ns {
            return;
        }
        while self.next_round_ns <= env.now_ns {
            self.next_round_ns += self.p.period_ns;
        }
        self.round(env, dev, log);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::SuspendLog;

    #[test]
    fn idle_age_decays_with_utilisation() {
        let p = AnchorParams::android_mmd();
        let a = |avail| idle_age_ns(p.min_idle_ns, p.max_idle_ns, avail, 100) / NS;
        assert_eq!(a(100), 25 * 3600, "idle machine: max age");
        // 50 % used: 5 h * e^-2.5 + 20 h = 20 h 24.6 min.
        assert_eq!(a(50), 72_000 + (18_000.0 * (-2.5f64).exp()) as u64);
        assert!(a(0) < 20 * 3600 + 130 && a(0) >= 20 * 3600);
    }

    #[test]
    fn round_size_scales_with_utilisation_between_min_and_max() {
        let p = AnchorParams::chromeos();
        let slots = 1 << 20; // 4 GiB
        // 1 % used: 3 MiB < 5 MiB minimum -> skip.
        assert_eq!(round_pages(&p, (slots / 100) * PAGE, slots, u64::MAX), 0);
        // 50 % used: 150 MiB.
        assert_eq!(
            round_pages(&p, (slots / 2) * PAGE, slots, u64::MAX),
            150 * 256
        );
        // Full: 300 MiB, capped at free backing pages.
        assert_eq!(round_pages(&p, slots * PAGE, slots, u64::MAX), 300 * 256);
        assert_eq!(round_pages(&p, slots * PAGE, slots, 2000), 2000);
        assert_eq!(
            round_pages(&p, slots * PAGE, slots, 1000),
            0,
            "below the minimum"
        );
    }

    #[test]
    fn an_anchor_round_goes_huge_idle_then_idle_within_its_limits() {
        let mut dev = Zram::new(4096 * PAGE, 4096 * PAGE);
        // 3000 pages: every 10th huge; all written at t=0.
        for i in 0..3000 {
            dev.write(0, i, if i % 10 == 0 { 4096 } else { 1500 });
        }
        // Pages 0..1000 touched at 30 h, the rest idle since 0.
        for i in 0..1000 {
            dev.read(30 * HOUR, i);
        }
        let mut a = Anchor::new(AnchorParams::android_mmd(), 0);
        let env = Env {
            now_ns: 31 * HOUR,
            mem_available_kb: 50,
            mem_total_kb: 100,
            psi_some_avg10: None,
            suspend: &SuspendLog::default(),
        };
        let mut log = Vec::new();
        a.step(&env, &mut dev, &mut log);
        // 3000/4096 = 7324 bps of 300 MiB = 56250 pages > 2000 idle pages.
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].pages, 2000);
        assert_eq!(log[0].ram_bytes, 200 * 4096 + 1800 * 1500);
        // The next round waits for the period.
        a.step(&env, &mut dev, &mut log);
        assert_eq!(log.len(), 1);
    }
}

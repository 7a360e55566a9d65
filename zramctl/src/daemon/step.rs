//! One step of the daemon: read each device and the probes, turn what was
//! seen into the policy's [`Inputs`], let the policy decide, and hand the
//! decision to [`super::actions`]. Reads only; every device write of a step
//! is in `actions`.

use std::sync::atomic::AtomicBool;

use tracing::{debug, info, warn};
use zramctl_common::{SLOT_TIME_SHIFT, op};

use super::{
    actions::{apply_batch_size, recompress_step, run_plan},
    candidates::Candidates,
    core::DaemonCore,
    limit::remember_limit,
    sources::{ProbeSource, ProbeView},
    state::{DevState, Identity, ProbeStatus, Stats, skip_name},
};
use crate::{
    platform::{page_size, unix_now},
    policy::{ColdInput, Inputs, LatencyWindow, RoundError, Trigger, cold::ranked_age},
    sysfs::WritebackLimit,
};

impl DaemonCore {
    /// One round of observation and, where due, writeback. `now_ns` is the
    /// policy clock (monotonic).
    pub fn step(&mut self, now_ns: u64) {
        self.steps += 1;
        if let Some(p) = &mut self.probes {
            match p.read() {
                Ok(v) => {
                    self.probe_view = Some(v);
                    if let ProbeStatus::Failed(_) = self.probe_status {
                        self.probe_status = ProbeStatus::Up(p.flavour().to_owned());
                    }
                }
                Err(e) => {
                    self.probe_errors_total += 1;
                    warn!("reading the eBPF maps failed: {e:#}");
                    self.probe_status = ProbeStatus::Failed(format!("{e:#}"));
                    self.probe_view = None;
                }
            }
        }
        let psi = match self.pressure.some_avg10() {
            Ok(p) => p,
            Err(e) => {
                debug!("memory pressure unavailable: {e:#}");
                None
            }
        };
        self.last_psi = psi;
        let view = self.probe_view.clone();
        for d in &mut self.devices {
            let cancel: &AtomicBool = &self.cancel;
            if step_device(
                d,
                now_ns,
                psi,
                view.as_ref(),
                self.probes.as_deref(),
                cancel,
            ) {
                self.reattach = true;
            }
        }
    }
}

/// The writeback candidates of `d` from one pass over its `slots` slots
/// in place: the `max_pages_per_round` oldest touched ones (enough for any
/// round: the policy takes at most that many, the oldest first) and as many
/// untouched ones, leaving out what this daemon wrote back and nothing
/// touched since (see [`super::candidates::WrittenBack`]).
fn scan_candidates(
    d: &mut DevState,
    probes: Option<&dyn ProbeSource>,
    v: &ProbeView,
    slots: u32,
    stored: u64,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let Some(p) = probes else {
        return Ok(Vec::new());
    };
    let now_t = v.now_ns >> SLOT_TIME_SHIFT;
    let attach_age = v.now_ns.saturating_sub(v.attached_ns) / 1_000_000_000;
    let k = usize::try_from(d.cfg.policy.max_pages_per_round)
        .unwrap_or(usize::MAX)
        .min(slots as usize);
    let mut c = Candidates::new(k);
    let reread = d.cfg.policy.round.reread_age_factor;
    let wb = &mut d.written_back;
    wb.ensure(slots as usize);
    p.scan_slots(&d.cfg.name, &mut |i, s| {
        if wb.still_written_back(i, &s) {
            return;
        }
        let age = if s.last_time == 0 {
            attach_age
        } else {
            (now_t.saturating_sub(u64::from(s.last_time)) << SLOT_TIME_SHIFT) / 1_000_000_000
        };
        if s.reads == 0 && s.writes == 0 && s.discards == 0 {
            c.untouched(i, age);
            return;
        }
        if s.writes > s.discards || s.reads > 0 {
            c.touched_with_data += 1;
        }
        c.touched(i, ranked_age(age, s.reads, reread));
    })?;
    wb.scanned_at(now_t as u32);
    Ok(c.into_slots(stored))
}

/// One step of one device; true when its identity changed (see
/// [`DaemonCore::take_reattach`]).
fn step_device(
    d: &mut DevState,
    now_ns: u64,
    psi: Option<f64>,
    view: Option<&ProbeView>,
    probes: Option<&dyn ProbeSource>,
    cancel: &AtomicBool,
) -> bool {
    d.last_now_ns = now_ns;
    let stats = match d.read_stats() {
        Ok(s) => s,
        Err(e) => {
            d.read_errors_total += 1;
            warn!(device = %d.cfg.name, "reading the device failed: {e}");
            d.stats = None;
            return false;
        }
    };
    d.stats = Some(stats.clone());
    let identity: Identity = (
        stats.initialized,
        stats.disksize,
        stats.backing_path.clone(),
    );
    let changed = d.identity.as_ref().is_some_and(|old| *old != identity);
    if changed {
        info!(
            device = %d.cfg.name,
            initialized = stats.initialized,
            disksize = stats.disksize,
            "device reset or set up again"
        );
        // Slot ages, written-back slots and counters were the old device's.
        d.written_back.clear();
        d.last_backing_write_hist = None;
        d.last_bd_reads = None;
    }
    d.identity = Some(identity);
    step_device_inner(d, now_ns, psi, view, probes, cancel, stats, changed);
    changed
}

#[allow(clippy::too_many_arguments)]
fn step_device_inner(
    d: &mut DevState,
    now_ns: u64,
    psi: Option<f64>,
    view: Option<&ProbeView>,
    probes: Option<&dyn ProbeSource>,
    cancel: &AtomicBool,
    stats: Stats,
    changed: bool,
) {
    let can_writeback = stats.initialized
        && stats.backing
        && !matches!(stats.limit, Some(WritebackLimit::Unsupported) | None);
    if !can_writeback {
        d.set_note(Some(if !stats.initialized {
            "not initialised: watching only".into()
        } else if matches!(stats.limit, Some(WritebackLimit::Unsupported)) {
            "kernel without CONFIG_ZRAM_WRITEBACK: watching only".into()
        } else {
            "no backing device: watching only".into()
        }));
        return;
    }
    d.set_note(None);
    if changed {
        // No round on the old device's slot ages: the next step has probes
        // attached to the new one.
        return;
    }
    if d.saved_limit.is_none() {
        d.saved_limit = Some(remember_limit(
            &d.cfg.name,
            d.limit_record.as_deref(),
            stats.limit,
        ));
    }
    recompress_step(d, now_ns);
    // Inputs.
    let bd_reads = stats.bd.map(|b| b.bd_reads);
    let bd_delta = match (d.last_bd_reads, bd_reads) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    d.last_bd_reads = bd_reads;
    // RAM-resident pages: orig_data_size keeps counting written-back pages
    // (upstream zram and rzram alike), so it would never drop after a
    // writeback and the trigger would fire every min_interval.
    let utilisation = if stats.mm.mem_limit > 0 {
        Some(stats.mm.mem_used_total as f64 / stats.mm.mem_limit as f64)
    } else if stats.disksize > 0 {
        Some(crate::policy::zram_utilisation(
            stats.mm.orig_data_size,
            stats.bd.map_or(0, |b| b.bd_count),
            stats.disksize,
        ))
    } else {
        None
    };
    // For idle ages the kernel measures on boot time (suspend counts).
    d.policy.observe_clocks(
        crate::platform::boottime_ns(),
        crate::platform::monotonic_ns(),
    );
    d.last_utilisation = utilisation;
    let mut latency = None;
    let mut cold_input = None;
    if let Some(v) = view {
        if let Some(h) = v
            .devices
            .iter()
            .find(|p| p.backing_of.as_deref() == Some(&d.cfg.name))
            .and_then(|p| p.latency.as_ref())
            .and_then(|l| l.get(op::WRITE))
        {
            let window = match &d.last_backing_write_hist {
                Some(prev) => h.since(prev),
                None => h.clone(),
            };
            d.last_backing_write_hist = Some(h.clone());
            if let Some(p99) = window.percentile(0.99) {
                d.last_p99_ns = Some(p99);
                latency = Some(LatencyWindow {
                    p99_ns: p99,
                    samples: window.count,
                });
            }
        }
        if let Some(n) = v
            .devices
            .iter()
            .find(|p| p.name == d.cfg.name && p.backing_of.is_none())
            .and_then(|p| p.slots)
        {
            // The slots are read only when a round is due: one pass over
            // them in place, keeping the oldest candidates.
            let probe_inputs = Inputs {
                psi_some_avg10: psi,
                utilisation,
                latency,
                refaults: None,
                bd_reads: bd_delta,
                cold: ColdInput::Slots(Vec::new()),
            };
            cold_input = Some(ColdInput::Slots(
                if d.policy.trigger(now_ns, &probe_inputs).is_ok() {
                    // orig_data_size counts written-back pages too (as upstream zram).
                    let stored = (stats.mm.orig_data_size / page_size())
                        .saturating_sub(stats.bd.map_or(0, |b| b.bd_count));
                    match scan_candidates(d, probes, v, n, stored) {
                        Ok(c) => c,
                        Err(e) => {
                            warn!(device = %d.cfg.name, "reading the slot array failed: {e:#}");
                            Vec::new()
                        }
                    }
                } else {
                    Vec::new()
                },
            ));
        }
    }
    let cold_input = cold_input.unwrap_or(if d.actime {
        ColdInput::KernelAge
    } else {
        ColdInput::KernelMarkAll
    });
    let inputs = Inputs {
        psi_some_avg10: psi,
        utilisation,
        latency,
        refaults: None,
        bd_reads: bd_delta,
        cold: cold_input,
    };
    let decision = d.policy.tick(now_ns, &inputs);
    apply_batch_size(d, stats.batch, decision.batch_size);
    match decision.run {
        Err(s) => *d.skips.entry(skip_name(s)).or_default() += 1,
        Ok(t) => *d.rounds.entry(t.as_str()).or_default() += 1,
    }
    let Some(plan) = decision.plan else {
        return;
    };
    let trigger = decision.run.ok();
    let outcome = run_plan(
        d,
        &plan,
        decision.huge_idle_secs,
        decision.limit_pages,
        &stats,
        cancel,
    );
    if let Some(err) = outcome.error {
        d.errors[usize::from(err == RoundError::Other)] += 1;
    }
    d.wb_pages_total += outcome.written_pages;
    d.last_round_unix = Some(unix_now());
    if trigger.is_some() || outcome.written_pages > 0 {
        info!(
            device = %d.cfg.name,
            trigger = trigger.map_or("mark", Trigger::as_str),
            pages = outcome.written_pages,
            limit = decision.limit_pages,
            threshold_secs = decision.threshold_secs,
            batch = decision.batch_size,
            error = ?outcome.error,
            "writeback round"
        );
    }
    d.policy.complete(now_ns, outcome);
    // Metrics show the device after the round.
    if let Ok(s) = d.read_stats() {
        d.stats = Some(s);
    }
}

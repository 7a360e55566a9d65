//! The policy lab: replays a recorded swap trace ([`trace`]) through a model
//! of the 7.3 kernel's zram ([`kernel`]) under several writeback policies
//! ([`LabPolicy`]: ours in [`ours`], Android mmd's and ChromeOS
//! swap_management's in [`anchors`]) and measures what each did: RAM freed
//! over time, bytes written to the backing device, refaults and the time
//! from writeback to refault.
//!
//! Pure: no I/O and no clock; the trace is the only input.
//!
//! Time: trace time is stretched by one factor ([`ReplayConfig::stretch`])
//! for every policy, so that the anchors' idle ages of 20-25 h fall inside a
//! trace of minutes; every policy runs with its published constants on the
//! stretched clock. Results are reported in trace (unstretched) time.

pub mod anchors;
pub mod kernel;
pub mod ours;

/// The trace format lives below the policy layer (the recorder writes it).
pub use crate::swaptrace as trace;

use serde::Serialize;

use kernel::{Errno, PAGE, Zram};
use trace::{Op, Trace};

const NS: u64 = 1_000_000_000;

pub use crate::policy::suspend::SuspendLog;

/// What a policy observes at a step besides the device.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// Boot time (counts suspended time), stretched.
    pub now_ns: u64,
    pub mem_available_kb: u64,
    pub mem_total_kb: u64,
    pub psi_some_avg10: Option<f64>,
    pub suspend: &'a SuspendLog,
}

/// One writeback round a policy ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RoundLog {
    pub t_ns: u64,
    pub pages: u64,
    pub ram_bytes: u64,
    pub policy_limit_pages: u64,
    pub idle_age_ns: u64,
    pub error: Option<Errno>,
}

/// A writeback policy in the lab. It acts on the device model through the
/// operations the kernel offers (`idle`, `writeback_limit`, `writeback`).
pub trait LabPolicy {
    fn name(&self) -> &str;
    /// One step at `env.now_ns`; rounds it runs go to `log`.
    fn step(&mut self, env: &Env, dev: &mut Zram, log: &mut Vec<RoundLog>);
}

/// How a replay runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayConfig {
    /// Policy time = trace time x stretch.
    pub stretch: f64,
    /// Policies are stepped this often (policy time).
    pub step_ns: u64,
    /// Backing device bytes (default: the trace's `meta backing`, else
    /// half the disksize).
    pub backing_bytes: Option<u64>,
    /// Compressed size for writes without one (bytes).
    pub unknown_size: u32,
}

impl ReplayConfig {
    /// Stretch so that the trace spans `hours` of policy time, step 60 s.
    pub fn spanning(trace: &Trace, hours: f64) -> Self {
        let d = trace.duration_us().max(1) as f64 * 1e3;
        ReplayConfig {
            stretch: (hours * 3600.0 * 1e9 / d).max(1.0),
            step_ns: 60 * NS,
            backing_bytes: None,
            unknown_size: 1400,
        }
    }
}

/// Log2 buckets of writeback -> refault time in trace seconds:
/// bucket i counts [2^(i-1), 2^i) s, bucket 0 under 1 s.
pub const REFAULT_BUCKETS: usize = 16;

/// What one policy did on one trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Results {
    pub policy: String,
    pub duration_s: f64,
    pub stretch: f64,
    /// Integral of RAM freed by writeback over trace time.
    pub ram_freed_mib_h: f64,
    pub mean_ram_freed_mib: f64,
    pub peak_ram_freed_mib: f64,
    pub written_pages: u64,
    pub written_bytes: u64,
    pub refaults: u64,
    pub refaults_per_gib: f64,
    /// RAM freed (MiB x h) per GiB written to the backing device.
    pub mib_h_per_gib: f64,
    pub rounds: u64,
    pub eio: u64,
    pub enospc: u64,
    /// Writeback -> refault time, trace seconds, log2 buckets.
    pub refault_age_hist: [u64; REFAULT_BUCKETS],
    pub refault_age_p50_s: f64,
    /// (trace s, RAM freed MiB, written MiB, refaults), one row per 1/100
    /// of the trace.
    pub timeline: Vec<(f64, f64, f64, u64)>,
}

fn bucket(secs: f64) -> usize {
    if secs < 1.0 {
        0
    } else {
        ((secs.log2().floor() as usize) + 1).min(REFAULT_BUCKETS - 1)
    }
}

/// Upper bound (s) of a refault bucket.
pub fn bucket_upper_s(i: usize) -> f64 {
    (1u64 << i) as f64
}

/// Replays `trace` through `policy`.
pub fn replay(trace: &Trace, cfg: &ReplayConfig, policy: &mut dyn LabPolicy) -> Results {
    let disksize = trace.meta_u64("disksize").unwrap_or(1 << 30);
    let backing = cfg
        .backing_bytes
        .or_else(|| trace.meta_u64("backing"))
        .unwrap_or(disksize / 2);
    let mut dev = Zram::new(disksize, backing);
    let mut log = Vec::new();
    let mut suspend = SuspendLog::default();
    let mut slept = 0u64; // trace-time ns slept so far
    let (mut avail, mut total) = (0u64, 0u64);
    let mut psi = None;
    let mut r = Results {
        policy: policy.name().to_string(),
        stretch: cfg.stretch,
        ..Results::default()
    };
    let policy_ns = |t_us: u64, slept: u64| -> u64 {
        ((t_us as f64 * 1e3 + slept as f64) * cfg.stretch) as u64
    };
    let end_us = trace.duration_us();
    let mut next_step = cfg.step_ns;
    let mut last_us = 0u64;
    let mut area = 0f64; // byte x trace-s
    let mut refault_ages: Vec<f64> = Vec::new();
    let mut next_sample = 0u64;
    let sample_every = (end_us / 100).max(1);
    let mut advance = |to_us: u64, last_us: &mut u64, dev: &Zram, r: &mut Results| {
        let dt = to_us.saturating_sub(*last_us) as f64 / 1e6;
        area += dev.wb_ram_bytes() as f64 * dt;
        *last_us = (*last_us).max(to_us);
        r.peak_ram_freed_mib = r
            .peak_ram_freed_mib
            .max(dev.wb_ram_bytes() as f64 / 1048576.0);
    };
    let mut events = trace.events.iter().peekable();
    loop {
        // Steps due before the next event.
        let next_ev_ns = events.peek().map(|e| policy_ns(e.t_us, slept));
        while next_ev_ns.is_none_or(|t| next_step <= t) && next_step <= policy_ns(end_us, slept) {
            let t_us = ((next_step as f64 / cfg.stretch - slept as f64) / 1e3).max(0.0) as u64;
            advance(t_us.max(last_us), &mut last_us, &dev, &mut r);
            let env = Env {
                now_ns: next_step,
                mem_available_kb: avail,
                mem_total_kb: total,
                psi_some_avg10: psi,
                suspend: &suspend,
            };
            policy.step(&env, &mut dev, &mut log);
            next_step += cfg.step_ns;
        }
        let Some(ev) = events.next() else { break };
        advance(ev.t_us, &mut last_us, &dev, &mut r);
        while ev.t_us >= next_sample {
            r.timeline.push((
                next_sample as f64 / 1e6,
                dev.wb_ram_bytes() as f64 / 1048576.0,
                (dev.bd_stat().bd_writes * PAGE) as f64 / 1048576.0,
                dev.bd_stat().bd_reads,
            ));
            next_sample += sample_every;
        }
        let now = policy_ns(ev.t_us, slept);
        match ev.op {
            Op::Write { slot, pages, size } => {
                let size = size.unwrap_or(cfg.unknown_size);
                for i in slot..slot + pages as u64 {
                    dev.write(now, i, size);
                }
            }
            Op::Read { slot, pages } => {
                for i in slot..slot + pages as u64 {
                    if let Some(rf) = dev.read(now, i) {
                        let secs = now.saturating_sub(rf.wb_ns) as f64 / cfg.stretch / 1e9;
                        r.refault_age_hist[bucket(secs)] += 1;
                        refault_ages.push(secs);
                    }
                }
            }
            Op::Discard { slot, pages } => {
                for i in slot..slot + pages as u64 {
                    dev.discard(i);
                }
            }
            Op::Psi(p) => psi = Some(p),
            Op::Mem {
                available_kb,
                total_kb,
            } => {
                avail = available_kb;
                total = total_kb;
            }
            Op::Suspend { ns } => {
                slept += ns;
                suspend
                    .entries
                    .push((policy_ns(ev.t_us, slept), (ns as f64 * cfg.stretch) as u64));
            }
            Op::Writeback { .. } => {}
        }
    }
    advance(end_us, &mut last_us, &dev, &mut r);
    let bd = dev.bd_stat();
    r.duration_s = end_us as f64 / 1e6;
    r.ram_freed_mib_h = area / 1048576.0 / 3600.0;
    r.mean_ram_freed_mib = if r.duration_s > 0.0 {
        area / 1048576.0 / r.duration_s
    } else {
        0.0
    };
    r.written_pages = bd.bd_writes;
    r.written_bytes = bd.bd_writes * PAGE;
    r.refaults = bd.bd_reads;
    let gib = r.written_bytes as f64 / (1u64 << 30) as f64;
    r.refaults_per_gib = if gib > 0.0 {
        r.refaults as f64 / gib
    } else {
        0.0
    };
    r.mib_h_per_gib = if gib > 0.0 {
        r.ram_freed_mib_h / gib
    } else {
        0.0
    };
    r.rounds = log.iter().filter(|l| l.pages > 0).count() as u64;
    r.eio = log.iter().filter(|l| l.error == Some(Errno::Eio)).count() as u64;
    r.enospc = log
        .iter()
        .filter(|l| l.error == Some(Errno::Enospc))
        .count() as u64;
    refault_ages.sort_by(f64::total_cmp);
    r.refault_age_p50_s = refault_ages
        .get(refault_ages.len() / 2)
        .copied()
        .unwrap_or(0.0);
    r
}

/// The three policies of the lab, fresh.
pub fn standard_policies() -> Vec<Box<dyn LabPolicy>> {
    vec![
        Box::new(ours::Ours::new(ours::OursConfig::default())),
        Box::new(ours::Ours::new(ours::OursConfig::before())),
        Box::new(ours::Ours::new(ours::OursConfig::v1())),
        Box::new(ours::Ours::new(ours::OursConfig::v2())),
        Box::new(anchors::Anchor::new(
            anchors::AnchorParams::android_mmd(),
            0,
        )),
        Box::new(anchors::Anchor::new(anchors::AnchorParams::chromeos(), 0)),
    ]
}

#[cfg(test)]
mod tests;

/// What the report says about a trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TraceInfo {
    pub description: String,
    pub workload: String,
    pub duration_s: f64,
    pub events: u64,
    pub stretch: f64,
    pub sizes: String,
    pub disksize: u64,
    pub backing: u64,
}

/// Policies by name: `ours`, `ours-before`, `ours-v1`, `ours-v2`,
/// `android-mmd`, `chromeos`, or `all`.
pub fn policies_named(name: &str) -> Option<Vec<Box<dyn LabPolicy>>> {
    let all = standard_policies();
    match name {
        "all" => Some(all),
        "ours" | "zramctl" => Some(all.into_iter().take(1).collect()),
        "ours-before" | "zramctl-before" => Some(all.into_iter().skip(1).take(1).collect()),
        "ours-v1" | "zramctl-v1" => Some(all.into_iter().skip(2).take(1).collect()),
        "ours-v2" | "zramctl-v2" => Some(all.into_iter().skip(3).take(1).collect()),
        "android-mmd" | "mmd" => Some(all.into_iter().skip(4).take(1).collect()),
        "chromeos" | "chromeos-swap_management" => Some(all.into_iter().skip(5).collect()),
        _ => None,
    }
}

/// Replays `trace` under each policy, the trace spanning `span_hours` of
/// policy time.
pub fn run(
    trace: &Trace,
    span_hours: f64,
    policies: Vec<Box<dyn LabPolicy>>,
) -> (TraceInfo, Vec<Results>) {
    let cfg = ReplayConfig::spanning(trace, span_hours);
    let disksize = trace.meta_u64("disksize").unwrap_or(1 << 30);
    let info = TraceInfo {
        description: trace.meta.get("description").cloned().unwrap_or_default(),
        workload: trace.meta.get("workload").cloned().unwrap_or_default(),
        duration_s: trace.duration_us() as f64 / 1e6,
        events: trace.events.len() as u64,
        stretch: cfg.stretch,
        sizes: trace
            .meta
            .get("sizes")
            .cloned()
            .unwrap_or_else(|| "none".into()),
        disksize,
        backing: cfg
            .backing_bytes
            .or_else(|| trace.meta_u64("backing"))
            .unwrap_or(disksize / 2),
    };
    let results = policies
        .into_iter()
        .map(|mut p| replay(trace, &cfg, p.as_mut()))
        .collect();
    (info, results)
}

/// The results as a text table.
pub fn table(info: &TraceInfo, results: &[Results]) -> String {
    let mut s = format!(
        "{}: {:.0} s, {} events, stretch x{:.0} (policy time {:.1} h), sizes {}\n",
        if info.workload.is_empty() {
            "trace"
        } else {
            &info.workload
        },
        info.duration_s,
        info.events,
        info.stretch,
        info.duration_s * info.stretch / 3600.0,
        info.sizes
    );
    s.push_str(&format!(
        "{:<26} {:>11} {:>9} {:>10} {:>9} {:>10} {:>10} {:>7}\n",
        "POLICY", "FREED-MiBh", "MEAN-MiB", "WRITTEN", "REFAULTS", "RF/GiB", "MiBh/GiB", "ROUNDS"
    ));
    for r in results {
        s.push_str(&format!(
            "{:<26} {:>11.3} {:>9.1} {:>9.1}M {:>9} {:>10.0} {:>10.2} {:>7}\n",
            r.policy,
            r.ram_freed_mib_h,
            r.mean_ram_freed_mib,
            r.written_bytes as f64 / 1048576.0,
            r.refaults,
            r.refaults_per_gib,
            r.mib_h_per_gib,
            r.rounds
        ));
    }
    s
}

//! `zramctl top`: a live terminal view of what the eBPF probes see: access
//! rates, slot-age histograms and latency histograms (bcc biolatency's
//! bars), per-program cost; on rzram devices also writeback rate, latency
//! and errors, and refaults with the time since their writeback ("n/a" on
//! stock zram). Plain ANSI escapes, no terminal library.
//!
//! [`TopReport::between`] and [`render_text`] are pure (unit-tested);
//! [`run`] attaches the probes and drives the loop.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use zramctl_common::op;

use crate::{
    cli::{ProbeKind, TopArgs},
    commands::page_size,
    ebpf::{
        BlockDevInfo, Flavour, ProbeHealth, ProbeOptions, Probes, ProgramCost, Snapshot, WatchSpec,
    },
    hist::{
        AccessCounts, AccessRates, LatencyHistogram, LatencySummary, RefaultAgeSummary,
        RzramCounts, RzramStats, SlotAgeHistogram, age_bucket_bounds, human_ns, human_secs,
        lat_bucket_bounds,
    },
    sysfs::{BackingDev, Sysfs},
};

/// Why a device is watched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A zram (or rzram) device: access tracking and bio latency.
    Zram,
    /// The backing device of the named zram device: latency.
    Backing { of: String },
    /// Named with `--latency-dev`: latency.
    Extra,
}

/// One non-empty slot-age bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgeBucket {
    pub min_secs: u64,
    /// Exclusive; absent for the open last bucket.
    pub max_secs: Option<u64>,
    pub slots: u64,
}

/// Slot ages as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotAges {
    pub slots: u64,
    pub touched: u64,
    pub untouched: u64,
    pub buckets: Vec<AgeBucket>,
}

impl From<&SlotAgeHistogram> for SlotAges {
    fn from(h: &SlotAgeHistogram) -> Self {
        SlotAges {
            slots: h.slots,
            touched: h.touched(),
            untouched: h.untouched,
            buckets: h
                .buckets
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(i, &n)| {
                    let (lo, hi) = age_bucket_bounds(i);
                    AgeBucket {
                        min_secs: lo,
                        max_secs: hi,
                        slots: n,
                    }
                })
                .collect(),
        }
    }
}

/// rzram's writeback and refault events of one device in a report.
#[derive(Clone, Debug, Serialize)]
pub struct RzramReport {
    /// Totals since the probes were attached.
    pub total: RzramCounts,
    /// Over the interval.
    pub interval: RzramCounts,
    /// Pages written back successfully per second, over the interval.
    pub wb_pages_per_sec: f64,
    /// Refaults (reads of written-back pages) per second, over the interval.
    pub refaults_per_sec: f64,
    /// Writeback latency per page over the interval (every status).
    pub wb_latency: LatencySummary,
    /// Backing-device read latency over the interval.
    pub bd_read_latency: LatencySummary,
    /// Time from writeback to refault, over the interval.
    pub refault_age: RefaultAgeSummary,
    /// The interval's histograms for rendering.
    #[serde(skip)]
    pub stats: RzramStats,
}

impl RzramReport {
    fn between(earlier: &RzramStats, later: &RzramStats, secs: f64) -> Self {
        let d = later.since(earlier);
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        RzramReport {
            total: later.counts,
            interval: d.counts,
            wb_pages_per_sec: per_sec(d.counts.wb_written()),
            refaults_per_sec: per_sec(d.counts.refaults),
            wb_latency: d.wb_latency.summary(),
            bd_read_latency: d.bd_read_latency.summary(),
            refault_age: RefaultAgeSummary::from_us(&d.refault_age_us),
            stats: d,
        }
    }
}

/// One device in a report.
#[derive(Clone, Debug, Serialize)]
pub struct TopDevice {
    pub name: String,
    /// `MAJOR:MINOR`.
    pub dev: String,
    pub role: Role,
    /// Totals since the probes were attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessCounts>,
    /// Over the interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<AccessRates>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot_ages: Option<SlotAges>,
    /// Completions over the interval, by operation (`read`, `write`,
    /// `discard`, `other`; empty ones left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<BTreeMap<&'static str, LatencySummary>>,
    /// The same histograms for rendering.
    #[serde(skip)]
    pub latency_hists: Vec<(&'static str, LatencyHistogram)>,
    #[serde(skip)]
    pub age_hist: Option<SlotAgeHistogram>,
    /// rzram's writeback and refault events, on zram devices only: `null`
    /// ("n/a") on stock zram, or on rzram when its programs are not
    /// attached (see [`TopReport::rzram_probes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rzram: Option<Option<RzramReport>>,
}

/// Cost of one program over the interval.
#[derive(Clone, Debug, Serialize)]
pub struct TopProgram {
    #[serde(flatten)]
    pub cost: ProgramCost,
    pub ns_per_event: Option<f64>,
}

/// What one refresh shows.
#[derive(Clone, Debug, Serialize)]
pub struct TopReport {
    /// Seconds between the two snapshots.
    pub interval_secs: f64,
    pub probes: Flavour,
    pub devices: Vec<TopDevice>,
    /// Per-program cost over the interval (kernel BPF stats).
    pub programs: Vec<TopProgram>,
    /// Totals since attach.
    pub health: ProbeHealth,
    /// "attached", or why rzram's programs are not ("not attached: ...").
    pub rzram_probes: String,
}

impl TopReport {
    /// The report for the interval between two snapshots (and the program
    /// costs read with them). `roles` is parallel to the snapshots' devices.
    pub fn between(
        earlier: &Snapshot,
        later: &Snapshot,
        earlier_costs: &[ProgramCost],
        later_costs: &[ProgramCost],
        roles: &[Role],
        flavour: Flavour,
        rzram_status: Result<(), &str>,
    ) -> Self {
        let secs = later.monotonic_ns.saturating_sub(earlier.monotonic_ns) as f64 / 1e9;
        let devices = later
            .devices
            .iter()
            .zip(&earlier.devices)
            .zip(roles)
            .map(|((d, e), role)| {
                let latency_hists: Vec<(&'static str, LatencyHistogram)> =
                    match (&d.latency, &e.latency) {
                        (Some(l), Some(el)) => (0..op::COUNT)
                            .map(|o| (op::NAMES[o], l[o].since(&el[o])))
                            .collect(),
                        _ => Vec::new(),
                    };
                TopDevice {
                    name: d.spec.name.clone(),
                    dev: format!("{}:{}", d.spec.major, d.spec.minor),
                    role: role.clone(),
                    access: d.access,
                    rates: match (&e.access, &d.access) {
                        (Some(a), Some(b)) => Some(AccessRates::between(a, b, secs)),
                        _ => None,
                    },
                    slot_ages: d.slot_ages.as_ref().map(SlotAges::from),
                    latency: d.latency.as_ref().map(|_| {
                        latency_hists
                            .iter()
                            .filter(|(_, h)| h.count > 0)
                            .map(|(name, h)| (*name, h.summary()))
                            .collect()
                    }),
                    latency_hists,
                    age_hist: d.slot_ages.clone(),
                    rzram: (*role == Role::Zram).then(|| match (&e.rzram, &d.rzram) {
                        (Some(a), Some(b)) => Some(RzramReport::between(a, b, secs)),
                        _ => None,
                    }),
                }
            })
            .collect();
        let programs = later_costs
            .iter()
            .map(|c| {
                let d = earlier_costs
                    .iter()
                    .find(|e| e.program == c.program)
                    .map(|e| c.since(e))
                    .unwrap_or_else(|| c.clone());
                TopProgram {
                    ns_per_event: d.ns_per_event(),
                    cost: d,
                }
            })
            .collect();
        TopReport {
            interval_secs: secs,
            probes: flavour,
            devices,
            programs,
            health: later.health,
            rzram_probes: match rzram_status {
                Ok(()) => "attached".into(),
                Err(why) => format!("not attached: {why}"),
            },
        }
    }
}

const BAR: usize = 40;

fn bar(n: u64, max: u64) -> String {
    let stars = if max == 0 {
        0
    } else {
        ((n as u128 * BAR as u128).div_ceil(max as u128)) as usize
    };
    format!("|{:<BAR$}|", "*".repeat(stars.min(BAR)))
}

/// Rows from the first to the last non-empty bucket: (low, high, count).
fn bucket_rows(
    counts: &[u64],
    bounds: impl Fn(usize) -> (u64, Option<u64>),
) -> Vec<(u64, Option<u64>, u64)> {
    let first = counts.iter().position(|&n| n > 0);
    let last = counts.iter().rposition(|&n| n > 0);
    match (first, last) {
        (Some(a), Some(b)) => (a..=b)
            .map(|i| {
                let (lo, hi) = bounds(i);
                (lo, hi, counts[i])
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn rate(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1}K", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

/// Renders a report as text (what one refresh of the live view shows).
pub fn render_text(r: &TopReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "zramctl top: {:.1}s interval, {} probes",
        r.interval_secs,
        match r.probes {
            Flavour::TpBtf => "tp_btf",
            Flavour::RawTp => "raw_tp",
        }
    )?;
    let zram: Vec<&TopDevice> = r.devices.iter().filter(|d| d.access.is_some()).collect();
    if !zram.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10}",
            "DEVICE",
            "READS/s",
            "WRITES/s",
            "DISCARD/s",
            "PG-READ/s",
            "PG-WRITE/s",
            "TOUCHED",
            "SLOTS"
        )?;
        for d in &zram {
            let (Some(rt), Some(ages)) = (&d.rates, &d.slot_ages) else {
                continue;
            };
            writeln!(
                out,
                "{:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10}",
                d.name,
                rate(rt.bios_per_sec.read),
                rate(rt.bios_per_sec.write),
                rate(rt.bios_per_sec.discard),
                rate(rt.pages_per_sec.read),
                rate(rt.pages_per_sec.write),
                ages.touched,
                ages.slots
            )?;
        }
    }
    let rz: Vec<&TopDevice> = r.devices.iter().filter(|d| d.rzram.is_some()).collect();
    if !rz.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
            "DEVICE",
            "WB-PG/s",
            "WB-TOTAL",
            "WB-ERRORS",
            "WB-P50",
            "WB-P99",
            "REFAULT/s",
            "REFAULTS",
            "AGE-P50"
        )?;
        for d in &rz {
            match d.rzram.as_ref().and_then(Option::as_ref) {
                Some(x) => writeln!(
                    out,
                    "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
                    d.name,
                    rate(x.wb_pages_per_sec),
                    x.total.wb_written(),
                    x.total.wb_errors,
                    x.wb_latency.p50_ns.map(human_ns).unwrap_or("-".into()),
                    x.wb_latency.p99_ns.map(human_ns).unwrap_or("-".into()),
                    rate(x.refaults_per_sec),
                    x.total.refaults,
                    x.refault_age
                        .p50_secs
                        .map(|s| human_ns(s * 1e9))
                        .unwrap_or("-".into()),
                )?,
                None => writeln!(
                    out,
                    "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
                    d.name, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"
                )?,
            }
        }
    }
    for d in &r.devices {
        if let Some(h) = &d.age_hist {
            writeln!(out)?;
            writeln!(
                out,
                "{}: slot age since last access ({} of {} slots touched since attach)",
                d.name,
                h.touched(),
                h.slots
            )?;
            let rows = bucket_rows(&h.buckets, age_bucket_bounds);
            let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
            if !rows.is_empty() {
                writeln!(out, "{:>20} : {:<8} distribution", "age", "slots")?;
            }
            for (lo, hi, n) in rows {
                let range = match hi {
                    Some(hi) => format!("{} -> {}", human_secs(lo), human_secs(hi)),
                    None => format!("{} ->", human_secs(lo)),
                };
                writeln!(out, "{range:>20} : {n:<8} {}", bar(n, max))?;
            }
        }
        for (name, h) in &d.latency_hists {
            let role = match &d.role {
                Role::Zram => String::new(),
                Role::Backing { of } => format!(" (backing {of})"),
                Role::Extra => String::new(),
            };
            render_latency(out, &format!("{}{role} {name} latency", d.name), h)?;
        }
        if let Some(Some(x)) = &d.rzram {
            render_latency(
                out,
                &format!("{} writeback latency", d.name),
                &x.stats.wb_latency,
            )?;
            render_latency(
                out,
                &format!("{} backing read latency", d.name),
                &x.stats.bd_read_latency,
            )?;
            let h = &x.stats.refault_age_us;
            if h.count > 0 {
                let a = &x.refault_age;
                let t = |s: Option<f64>| s.map(|s| human_ns(s * 1e9)).unwrap_or_default();
                writeln!(out)?;
                writeln!(
                    out,
                    "{}: time from writeback to refault: {} refaults, mean {}, p50 {}, p90 {}, p99 {}",
                    d.name,
                    h.count,
                    t(a.mean_secs),
                    t(a.p50_secs),
                    t(a.p90_secs),
                    t(a.p99_secs)
                )?;
                let rows = bucket_rows(&h.buckets, lat_bucket_bounds);
                let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
                writeln!(out, "{:>24} : {:<8} distribution", "age", "refaults")?;
                for (lo, hi, n) in rows {
                    let us = |v: u64| human_ns(v as f64 * 1e3);
                    let range = match hi {
                        Some(hi) => format!("{} -> {}", us(lo), us(hi)),
                        None => format!("{} ->", us(lo)),
                    };
                    writeln!(out, "{range:>24} : {n:<8} {}", bar(n, max))?;
                }
            }
        }
    }
    if r.devices.iter().any(|d| d.rzram.is_some()) {
        writeln!(out, "\nrzram tracepoint programs: {}", r.rzram_probes)?;
    }
    if !r.programs.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<16} {:<20} {:>10} {:>10}",
            "PROGRAM", "TRACEPOINT", "RUNS", "NS/EVENT"
        )?;
        for p in &r.programs {
            writeln!(
                out,
                "{:<16} {:<20} {:>10} {:>10}",
                p.cost.program,
                p.cost.tracepoint,
                p.cost.run_count,
                p.ns_per_event
                    .map(|n| format!("{n:.0}"))
                    .unwrap_or_else(|| "-".into())
            )?;
        }
    }
    if r.health.lat_start_dropped > 0 || r.health.lat_unmatched > 0 {
        writeln!(
            out,
            "\nlatency starts dropped (in-flight map full): {}, completions without a start: {}",
            r.health.lat_start_dropped, r.health.lat_unmatched
        )?;
    }
    Ok(())
}

/// One latency histogram in bcc biolatency's shape; nothing if empty.
fn render_latency(out: &mut dyn Write, title: &str, h: &LatencyHistogram) -> std::io::Result<()> {
    if h.count == 0 {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{title}: {} completions, mean {}, p50 {}, p90 {}, p99 {}",
        h.count,
        h.mean_ns().map(human_ns).unwrap_or_default(),
        h.percentile(0.5).map(human_ns).unwrap_or_default(),
        h.percentile(0.9).map(human_ns).unwrap_or_default(),
        h.percentile(0.99).map(human_ns).unwrap_or_default(),
    )?;
    let rows = bucket_rows(&h.buckets, lat_bucket_bounds);
    let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
    writeln!(out, "{:>24} : {:<8} distribution", "nsecs", "count")?;
    for (lo, hi, n) in rows {
        let range = match hi {
            Some(hi) => format!("{lo} -> {}", hi - 1),
            None => format!("{lo} ->"),
        };
        writeln!(out, "{range:>24} : {n:<8} {}", bar(n, max))?;
    }
    Ok(())
}

/// Set by SIGINT/SIGTERM while `top` runs.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Catches SIGINT and SIGTERM while alive; restores the previous handlers.
struct SignalGuard {
    old: [(libc::c_int, libc::sigaction); 2],
}

impl SignalGuard {
    fn install() -> Result<Self> {
        STOP.store(false, Ordering::Relaxed);
        // SAFETY: all-zero is a valid sigaction (no flags, empty mask).
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let mut old = [(libc::SIGINT, act), (libc::SIGTERM, act)];
        for (sig, prev) in &mut old {
            // SAFETY: installs a handler that only stores to an atomic
            // (async-signal-safe); `prev` receives the old action.
            if unsafe { libc::sigaction(*sig, &act, prev) } != 0 {
                return Err(std::io::Error::last_os_error()).context("installing a signal handler");
            }
        }
        Ok(SignalGuard { old })
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores the action saved by `install`.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

/// Sleeps until `deadline` or a signal; returns whether a signal came.
fn sleep_until(deadline: Instant) -> bool {
    loop {
        if STOP.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// The devices `top` watches and why.
pub fn watch_list(
    sys: &Sysfs,
    device: Option<&str>,
    latency_devs: &[PathBuf],
) -> Result<(Vec<WatchSpec>, Vec<Role>)> {
    let zrams = match device {
        Some(spec) => vec![sys.device(spec)?],
        None => sys.devices()?,
    };
    let mut specs: Vec<WatchSpec> = Vec::new();
    let mut roles = Vec::new();
    let track_slots = page_size() == 4096;
    if !track_slots {
        eprintln!(
            "zramctl top: page size {} is not 4 KiB: slot tracking is off (it assumes 8 sectors per slot)",
            page_size()
        );
    }
    let mut push = |spec: WatchSpec, role: Role, specs: &mut Vec<WatchSpec>| {
        if specs
            .iter()
            .any(|s| (s.major, s.minor) == (spec.major, spec.minor))
        {
            return;
        }
        specs.push(spec);
        roles.push(role);
    };
    for dev in &zrams {
        if !dev.initstate()? {
            if device.is_some() {
                bail!(
                    "{}: device is not initialised: nothing to watch (set it up with `zramctl setup`)",
                    dev.name()
                );
            }
            continue;
        }
        let (major, minor) = dev.dev_numbers()?;
        let slots = if track_slots {
            u32::try_from(dev.disksize()? / 4096).with_context(|| {
                format!("{}: more than 2^32 slots, too large to track", dev.name())
            })?
        } else {
            0
        };
        push(
            WatchSpec {
                name: dev.name().to_owned(),
                major,
                minor,
                slots,
                latency: Some(crate::ebpf::LatencyKind::Bio),
                rzram: dev.name().starts_with("rzram"),
            },
            Role::Zram,
            &mut specs,
        );
        if let BackingDev::Path(p) = dev.backing_dev()? {
            match BlockDevInfo::from_path(&p) {
                Ok(b) => push(
                    latency_watch(&b),
                    Role::Backing {
                        of: dev.name().to_owned(),
                    },
                    &mut specs,
                ),
                Err(e) => eprintln!(
                    "zramctl top: {}: not watching backing device {}: {e}",
                    dev.name(),
                    p.display()
                ),
            }
        }
    }
    for p in latency_devs {
        let b =
            BlockDevInfo::from_path(p).with_context(|| format!("--latency-dev {}", p.display()))?;
        push(latency_watch(&b), Role::Extra, &mut specs);
    }
    if specs.is_empty() {
        bail!(
            "no initialised zram device to watch under {} (and no --latency-dev)",
            sys.root().join("block").display()
        );
    }
    Ok((specs, roles))
}

fn is_tty() -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(libc::STDOUT_FILENO) == 1 }
}

/// Runs `zramctl top`.
pub fn run(sys: &Sysfs, a: &TopArgs, out: &mut dyn Write) -> Result<()> {
    let (specs, roles) = watch_list(sys, a.device.as_deref(), &a.latency_devs)?;
    let flavour = match a.probes {
        ProbeKind::Auto => None,
        ProbeKind::TpBtf => Some(Flavour::TpBtf),
        ProbeKind::RawTp => Some(Flavour::RawTp),
    };
    let probes = Probes::attach(
        &specs,
        ProbeOptions {
            flavour,
            stats: true,
            cost_floor: false,
        },
    )
    .context("attaching the eBPF probes (zramctl top needs them)")?;
    if let Err(why) = probes.stats_enabled() {
        eprintln!("zramctl top: no per-program costs: {why}");
    }
    if specs.iter().any(|s| s.rzram)
        && let Err(why) = probes.rzram_status()
    {
        eprintln!("zramctl top: no rzram writeback events: {why}");
    }
    let mut record = match &a.record {
        Some(path) => Some(open_record(path)?),
        None => None,
    };
    let _signals = SignalGuard::install()?;
    // The first snapshot before saying so: what happens after the message
    // is in the first interval (a test waits for it).
    let mut prev = (probes.snapshot()?, probes.costs()?);
    eprintln!(
        "zramctl top: watching {} with {} probes",
        specs
            .iter()
            .map(|s| format!("{} ({}:{})", s.name, s.major, s.minor))
            .collect::<Vec<_>>()
            .join(", "),
        match probes.flavour() {
            Flavour::TpBtf => "tp_btf",
            Flavour::RawTp => "raw_tp",
        }
    );
    let live = !a.once && is_tty();
    let interval = Duration::from_secs_f64(a.interval);
    let mut next = Instant::now() + interval;
    if live {
        write!(out, "\x1b[?25l\x1b[2J")?;
    }
    let result = (|| -> Result<()> {
        loop {
            let stopped = sleep_until(next);
            next += interval;
            let cur = (probes.snapshot()?, probes.costs()?);
            let report = TopReport::between(
                &prev.0,
                &cur.0,
                &prev.1,
                &cur.1,
                &roles,
                probes.flavour(),
                probes.rzram_status(),
            );
            if let Some((file, path)) = &mut record {
                serde_json::to_writer(&mut *file, &report)
                    .and_then(|()| writeln!(file).map_err(serde_json::Error::io))
                    .with_context(|| format!("writing to {}", path.display()))?;
            }
            if a.once {
                if a.json {
                    serde_json::to_writer_pretty(&mut *out, &report)?;
                    writeln!(out)?;
                } else {
                    render_text(&report, out)?;
                }
                return Ok(());
            }
            if live {
                // Home, draw, clear what the last frame left below.
                write!(out, "\x1b[H")?;
                let mut frame = Vec::new();
                render_text(&report, &mut frame)?;
                for line in String::from_utf8_lossy(&frame).lines() {
                    writeln!(out, "{line}\x1b[K")?;
                }
                write!(out, "\x1b[J")?;
            } else {
                render_text(&report, out)?;
                writeln!(out)?;
            }
            out.flush()?;
            prev = cur;
            if stopped {
                return Ok(());
            }
        }
    })();
    if live {
        write!(out, "\x1b[?25h")?;
        out.flush()?;
    }
    result
}

fn open_record(path: &Path) -> Result<(std::fs::File, PathBuf)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening --record file {}", path.display()))?;
    Ok((f, path.to_owned()))
}

/// A watch on a block device for its request latency only (no slots).
fn latency_watch(b: &BlockDevInfo) -> WatchSpec {
    WatchSpec {
        name: b.name.clone(),
        major: b.major,
        minor: b.minor,
        slots: 0,
        latency: Some(b.latency_kind()),
        rzram: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::{DeviceSnapshot, LatencyKind};
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
}

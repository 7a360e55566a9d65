//! The daemon's synchronous core: one [`DaemonCore::step`] reads each
//! device through the sysfs layer, asks its [`Policy`], carries out the
//! decision and keeps what `/metrics` shows. The clock, the eBPF probes and
//! the pressure source are injected, so tests drive it on [`crate::fake`].

use std::collections::HashMap;

use tracing::{debug, info, warn};
use zramctl_common::{SLOT_TIME_SHIFT, SlotState, op};

use super::{
    config::{Config, DeviceConfig},
    metrics::{Exposition, Kind},
};
use crate::{
    hist::{LatencyHistogram, SlotAgeHistogram, age_bucket_bounds, lat_bucket_bounds},
    policy::{
        self, ColdInput, Inputs, LatencyWindow, Outcome, Plan, Policy, RoundError, Skip, Trigger,
        cold,
    },
    sysfs::{
        BackingDev, BdStat, Device, IdleMode, IoStat, MmStat, Sysfs, WritebackLimit, WritebackMode,
    },
};

/// What the probes saw of one watched device (totals since attach).
#[derive(Clone, Debug, Default)]
pub struct ProbeDevice {
    pub name: String,
    /// The zram device this one backs, for backing devices; `None` for zram.
    pub backing_of: Option<String>,
    /// Per-slot state (zram devices with access tracking).
    pub slots: Option<Vec<SlotState>>,
    /// Latency histograms by operation class (`zramctl_common::op`).
    pub latency: Option<Vec<LatencyHistogram>>,
}

/// One read of the probes.
#[derive(Clone, Debug, Default)]
pub struct ProbeView {
    /// CLOCK_MONOTONIC of the read, ns (the clock of `SlotState::last_time`).
    pub now_ns: u64,
    /// When the probes were attached, same clock.
    pub attached_ns: u64,
    pub devices: Vec<ProbeDevice>,
    pub lat_start_dropped: u64,
    pub lat_unmatched: u64,
}

/// Where the daemon's eBPF data comes from.
pub trait ProbeSource {
    /// `tp_btf`, `raw_tp`, `fake`.
    fn flavour(&self) -> &str;
    fn read(&mut self) -> Result<ProbeView, String>;
}

/// Memory pressure: PSI `some avg10` in percent.
pub trait PressureSource: Send {
    fn some_avg10(&mut self) -> Result<Option<f64>, String>;
}

/// Parses `/proc/pressure/memory` (`some avg10=1.23 avg60=… total=…`).
pub fn parse_psi_some_avg10(s: &str) -> Result<f64, String> {
    let line = s
        .lines()
        .find(|l| l.starts_with("some "))
        .ok_or("no \"some\" line")?;
    let v = line
        .split_whitespace()
        .find_map(|t| t.strip_prefix("avg10="))
        .ok_or("no avg10 field")?;
    v.parse::<f64>()
        .map_err(|_| format!("avg10 {v:?} is not a number"))
}

/// PSI from a file (the daemon's is `/proc/pressure/memory`).
pub struct PsiFile(pub std::path::PathBuf);

impl PressureSource for PsiFile {
    fn some_avg10(&mut self) -> Result<Option<f64>, String> {
        match std::fs::read_to_string(&self.0) {
            Ok(s) => parse_psi_some_avg10(&s)
                .map(Some)
                .map_err(|e| format!("{}: {e}", self.0.display())),
            // No PSI (kernel without CONFIG_PSI): the trigger is just off.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.0.display())),
        }
    }
}

/// Writeback-limit state found at start, put back at shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SavedLimit {
    enable: bool,
    pages: u64,
}

/// Where the daemon records, per device, the writeback limit it found
/// before it first opened it, removed once it is put back. A daemon that
/// was killed (SIGKILL, OOM, crash) cannot put it back; the next one finds
/// the record and restores the admin's limit at its shutdown instead of
/// taking the half-open one the killed daemon left for the admin's.
/// `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`), else
/// `/run/zramctl`; none for a simulated sysfs tree (tests set one with
/// [`DaemonCore::set_limit_record_dir`]).
fn limit_record_path(sys: &Sysfs, dev: &str) -> Option<std::path::PathBuf> {
    if !sys.root().starts_with("/sys") {
        return None;
    }
    let dir = std::env::var_os("RUNTIME_DIRECTORY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/run/zramctl".into());
    Some(dir.join(format!("{dev}.writeback_limit")))
}

fn read_limit_record(path: &std::path::Path) -> Option<SavedLimit> {
    let text = std::fs::read_to_string(path).ok()?;
    let (enable, pages) = text.trim().split_once(' ')?;
    Some(SavedLimit {
        enable: enable == "1",
        pages: pages.parse().ok()?,
    })
}

fn write_limit_record(path: &std::path::Path, s: SavedLimit) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{} {}\n", u8::from(s.enable), s.pages))?;
    std::fs::rename(&tmp, path)
}

#[derive(Clone, Debug, Default)]
struct Stats {
    initialized: bool,
    disksize: u64,
    mm: MmStat,
    io: IoStat,
    bd: Option<BdStat>,
    limit: Option<WritebackLimit>,
    batch: Option<u64>,
    backing: bool,
    backing_path: Option<std::path::PathBuf>,
}

/// What identifies one life of a device: a reset and a new setup change it
/// (and the eBPF slot array and backing-device watch must follow).
type Identity = (bool, u64, Option<std::path::PathBuf>);

/// Per-device state.
struct DevState {
    cfg: DeviceConfig,
    dev: Device,
    policy: Policy,
    stats: Option<Stats>,
    saved_limit: Option<SavedLimit>,
    /// Kernel tracks access times (`idle <secs>` works); learnt on EINVAL.
    actime: bool,
    /// slot -> its access time when we wrote it back (left out as candidate
    /// until it is touched again).
    written_back: HashMap<u64, u32>,
    last_bd_reads: Option<u64>,
    last_backing_write_hist: Option<LatencyHistogram>,
    wb_pages_total: u64,
    errors: [u64; 2],
    rounds: HashMap<&'static str, u64>,
    skips: HashMap<&'static str, u64>,
    read_errors_total: u64,
    last_p99_ns: Option<f64>,
    last_round_unix: Option<f64>,
    last_pressure: Option<f64>,
    last_utilisation: Option<f64>,
    last_now_ns: u64,
    note: Option<String>,
    identity: Option<Identity>,
    recomp: RecompState,
    /// See [`limit_record_path`].
    limit_record: Option<std::path::PathBuf>,
}

/// Recompression bookkeeping of one device (see [`recompress_step`]).
#[derive(Default)]
struct RecompState {
    last_ns: Option<u64>,
    runs: u64,
    errors: u64,
    saved_bytes: u64,
    /// Slots recompressed now, where debugfs shows it (upstream zram).
    slots: Option<u64>,
    /// The device cannot recompress: said once, not tried again.
    disabled: bool,
}

const SKIPS: [(Skip, &str); 5] = [
    (Skip::NotDue, "not_due"),
    (Skip::Backoff, "backoff"),
    (Skip::BudgetSpent, "budget_spent"),
    (Skip::NothingCold, "nothing_cold"),
    (Skip::Marking, "marking"),
];

fn skip_name(s: Skip) -> &'static str {
    SKIPS
        .iter()
        .find(|(k, _)| *k == s)
        .map_or("other", |(_, n)| n)
}

impl DevState {
    fn new(sys: &Sysfs, cfg: DeviceConfig, now_ns: u64) -> Result<Self, crate::sysfs::Error> {
        let dev = sys.device(&cfg.name)?;
        let limit_record = limit_record_path(sys, &cfg.name);
        Ok(DevState {
            policy: Policy::new(cfg.policy.clone(), now_ns),
            cfg,
            dev,
            stats: None,
            saved_limit: None,
            actime: true,
            written_back: HashMap::new(),
            last_bd_reads: None,
            last_backing_write_hist: None,
            wb_pages_total: 0,
            errors: [0; 2],
            rounds: HashMap::new(),
            skips: HashMap::new(),
            read_errors_total: 0,
            last_p99_ns: None,
            last_round_unix: None,
            last_pressure: None,
            last_utilisation: None,
            last_now_ns: now_ns,
            note: None,
            identity: None,
            recomp: RecompState::default(),
            limit_record,
        })
    }

    fn read_stats(&self) -> Result<Stats, crate::sysfs::Error> {
        let d = &self.dev;
        let backing_path = match d.backing_dev()? {
            BackingDev::Path(p) => Some(p),
            _ => None,
        };
        Ok(Stats {
            initialized: d.initstate()?,
            disksize: d.disksize()?,
            mm: d.mm_stat()?,
            io: d.io_stat()?,
            bd: d.bd_stat()?,
            limit: Some(d.writeback_limit()?),
            batch: d.writeback_batch_size()?,
            backing: backing_path.is_some(),
            backing_path,
        })
    }

    fn set_note(&mut self, note: Option<String>) {
        if note != self.note {
            match &note {
                Some(n) => warn!(device = %self.cfg.name, "{n}"),
                None => info!(device = %self.cfg.name, "writeback possible again"),
            }
            self.note = note;
        }
    }
}

/// Probe state as shown in metrics.
#[derive(Clone, Debug)]
pub enum ProbeStatus {
    Off(String),
    Up(String),
    Failed(String),
}

/// The daemon without its I/O shell (signals, HTTP, sd_notify).
pub struct DaemonCore {
    sys: Sysfs,
    config: Config,
    devices: Vec<DevState>,
    probes: Option<Box<dyn ProbeSource>>,
    probe_status: ProbeStatus,
    probe_view: Option<ProbeView>,
    probe_errors_total: u64,
    pressure: Box<dyn PressureSource>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    steps: u64,
    /// A device was reset or set up anew since the probes were attached.
    reattach: bool,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl DaemonCore {
    /// Checks every configured device exists; nothing is written yet.
    pub fn new(
        sys: Sysfs,
        config: Config,
        probes: Result<Box<dyn ProbeSource>, String>,
        pressure: Box<dyn PressureSource>,
        now_ns: u64,
    ) -> anyhow::Result<Self> {
        let mut devices = Vec::new();
        for d in &config.devices {
            devices.push(DevState::new(&sys, d.clone(), now_ns)?);
        }
        let (probes, probe_status) = match probes {
            Ok(p) => {
                let f = p.flavour().to_owned();
                (Some(p), ProbeStatus::Up(f))
            }
            Err(why) => (None, ProbeStatus::Off(why)),
        };
        Ok(DaemonCore {
            sys,
            config,
            devices,
            probes,
            probe_status,
            probe_view: None,
            probe_errors_total: 0,
            pressure,
            reloads_ok: 0,
            reloads_failed: 0,
            steps: 0,
            reattach: false,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn probe_status(&self) -> &ProbeStatus {
        &self.probe_status
    }

    /// Replaces the probes (after a reload changed the device list).
    pub fn set_probes(&mut self, probes: Result<Box<dyn ProbeSource>, String>) {
        self.probes = None; // detach the old ones first
        self.probe_view = None;
        match probes {
            Ok(p) => {
                self.probe_status = ProbeStatus::Up(p.flavour().to_owned());
                self.probes = Some(p);
            }
            Err(why) => self.probe_status = ProbeStatus::Off(why),
        }
        for d in &mut self.devices {
            d.written_back.clear();
            d.last_backing_write_hist = None;
        }
    }

    /// Adopts a new configuration: devices that stay keep their learnt state,
    /// new ones must exist, removed ones get their writeback limit back.
    /// On error nothing changes.
    pub fn reload(&mut self, config: Config, now_ns: u64) -> anyhow::Result<bool> {
        let mut next = Vec::new();
        let mut old: Vec<DevState> = std::mem::take(&mut self.devices);
        for d in &config.devices {
            match old.iter().position(|o| o.cfg.name == d.name) {
                Some(i) => {
                    let mut s = old.swap_remove(i);
                    s.policy.reconfigure(d.policy.clone(), now_ns);
                    s.cfg = d.clone();
                    next.push(s);
                }
                None => match DevState::new(&self.sys, d.clone(), now_ns) {
                    Ok(s) => next.push(s),
                    Err(e) => {
                        // Put everything back as it was.
                        old.extend(next);
                        old.sort_by_key(|s| {
                            self.config
                                .devices
                                .iter()
                                .position(|c| c.name == s.cfg.name)
                        });
                        self.devices = old;
                        self.reloads_failed += 1;
                        return Err(e.into());
                    }
                },
            }
        }
        let changed = !old.is_empty() || next.len() != self.config.devices.len();
        for mut gone in old {
            restore_limit(&mut gone);
        }
        self.devices = next;
        self.config = config;
        self.reloads_ok += 1;
        Ok(changed)
    }

    /// Records the writeback limits found in `dir` (see [`limit_record_path`]).
    pub fn set_limit_record_dir(&mut self, dir: &std::path::Path) {
        for d in &mut self.devices {
            d.limit_record = Some(dir.join(format!("{}.writeback_limit", d.cfg.name)));
        }
    }

    /// Puts every device's writeback limit back as found (clean shutdown).
    pub fn shutdown(&mut self) {
        for d in &mut self.devices {
            restore_limit(d);
        }
    }

    /// Summary for sd_notify STATUS.
    pub fn status_line(&self) -> String {
        let parts: Vec<String> = self
            .devices
            .iter()
            .map(|d| {
                format!(
                    "{}: {} written back, batch {}, idle age {}s{}",
                    d.cfg.name,
                    crate::size::ByteSize(d.wb_pages_total * policy::PAGE_SIZE),
                    d.policy.batch_size(),
                    d.policy.threshold_secs(),
                    d.note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let probes = match &self.probe_status {
            ProbeStatus::Up(f) => format!("probes {f}"),
            ProbeStatus::Off(_) => "probes off".into(),
            ProbeStatus::Failed(_) => "probes failed".into(),
        };
        format!("{}; {probes}", parts.join("; "))
    }

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
                    warn!("reading the eBPF maps failed: {e}");
                    self.probe_status = ProbeStatus::Failed(e);
                    self.probe_view = None;
                }
            }
        }
        let psi = match self.pressure.some_avg10() {
            Ok(p) => p,
            Err(e) => {
                debug!("memory pressure unavailable: {e}");
                None
            }
        };
        let view = self.probe_view.clone();
        for d in &mut self.devices {
            if step_device(d, now_ns, psi, view.as_ref()) {
                self.reattach = true;
            }
        }
    }

    /// Whether a device changed identity (reset, set up again with another
    /// size or backing device) since the last call: the probes watch it by
    /// its old size and backing device and should be attached again.
    pub fn take_reattach(&mut self) -> bool {
        std::mem::take(&mut self.reattach)
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let mut e = Exposition::new();
        e.gauge(
            "zramctl_build_info",
            "zramctl version (always 1).",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        e.counter(
            "zramctl_daemon_steps_total",
            "Policy steps run by the daemon.",
            &[],
            self.steps as f64,
        );
        e.counter(
            "zramctl_config_reloads_total",
            "Configuration reloads (SIGHUP) by result.",
            &[("result", "ok")],
            self.reloads_ok as f64,
        );
        e.counter(
            "zramctl_config_reloads_total",
            "Configuration reloads (SIGHUP) by result.",
            &[("result", "error")],
            self.reloads_failed as f64,
        );
        let (up, flavour, reason) = match &self.probe_status {
            ProbeStatus::Up(f) => (1.0, f.as_str(), ""),
            ProbeStatus::Off(r) => (0.0, "none", r.as_str()),
            ProbeStatus::Failed(r) => (0.0, "failed", r.as_str()),
        };
        e.gauge(
            "zramctl_probe_up",
            "1 if the eBPF probes are attached and readable, 0 if the daemon runs on sysfs only.",
            &[],
            up,
        );
        e.gauge(
            "zramctl_probe_info",
            "eBPF probe flavour and, when down, why (always 1).",
            &[("flavour", flavour), ("reason", reason)],
            1.0,
        );
        e.counter(
            "zramctl_probe_read_errors_total",
            "Failed reads of the eBPF maps.",
            &[],
            self.probe_errors_total as f64,
        );
        if let Some(v) = &self.probe_view {
            e.counter(
                "zramctl_probe_latency_starts_dropped_total",
                "Latency starts lost because the in-flight map was full.",
                &[],
                v.lat_start_dropped as f64,
            );
            e.counter(
                "zramctl_probe_latency_unmatched_total",
                "Completions without a recorded start.",
                &[],
                v.lat_unmatched as f64,
            );
            for pd in &v.devices {
                let role = if pd.backing_of.is_some() {
                    "backing"
                } else {
                    "zram"
                };
                let of = pd.backing_of.as_deref().unwrap_or(&pd.name);
                if let Some(lat) = &pd.latency {
                    for (o, h) in lat.iter().enumerate().take(op::COUNT) {
                        let buckets: Vec<(Option<f64>, u64)> = h
                            .buckets
                            .iter()
                            .enumerate()
                            .map(|(i, &n)| (lat_bucket_bounds(i).1.map(|hi| hi as f64 / 1e9), n))
                            .collect();
                        e.histogram(
                            "zramctl_io_latency_seconds",
                            "Completion latency of zram bios and backing-device requests, by operation, since the probes attached.",
                            &[("device", &pd.name), ("role", role), ("zram", of), ("op", op::NAMES[o])],
                            &buckets,
                            h.sum_ns as f64 / 1e9,
                        );
                    }
                }
                if let Some(slots) = &pd.slots {
                    let h = SlotAgeHistogram::from_slots(slots, v.now_ns);
                    let mut cum = 0u64;
                    for (i, &n) in h.buckets.iter().enumerate() {
                        cum += n;
                        let le = match age_bucket_bounds(i).1 {
                            Some(hi) => hi.to_string(),
                            None => "+Inf".into(),
                        };
                        e.gauge(
                            "zramctl_slot_age_slots",
                            "Slots last accessed less than age_lt_seconds ago (cumulative, touched slots only).",
                            &[("device", &pd.name), ("age_lt_seconds", &le)],
                            cum as f64,
                        );
                    }
                    e.gauge(
                        "zramctl_slots_untouched",
                        "Slots not accessed since the probes attached.",
                        &[("device", &pd.name)],
                        h.untouched as f64,
                    );
                }
            }
        } else {
            e.declare(
                "zramctl_io_latency_seconds",
                "Completion latency of zram bios and backing-device requests, by operation, since the probes attached.",
                Kind::Histogram,
            );
        }
        for d in &self.devices {
            device_metrics(&mut e, d);
        }
        e.render()
    }
}

fn restore_limit(d: &mut DevState) {
    let Some(s) = d.saved_limit.take() else {
        return;
    };
    // Limit first, then the switch: never enabled with a stale limit.
    let r = d
        .dev
        .set_writeback_limit(s.pages)
        .and_then(|()| d.dev.set_writeback_limit_enable(s.enable));
    match r {
        Ok(()) => {
            if let Some(p) = &d.limit_record {
                let _ = std::fs::remove_file(p);
            }
            info!(device = %d.cfg.name, enable = s.enable, pages = s.pages, "writeback limit restored")
        }
        Err(e) => warn!(device = %d.cfg.name, "restoring the writeback limit failed: {e}"),
    }
}

fn classify(e: &crate::sysfs::Error) -> RoundError {
    if e.errno() == Some(libc::EIO) {
        RoundError::Io
    } else {
        RoundError::Other
    }
}

/// One step of one device; true when its identity changed (see
/// [`DaemonCore::take_reattach`]).
fn step_device(d: &mut DevState, now_ns: u64, psi: Option<f64>, view: Option<&ProbeView>) -> bool {
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
    step_device_inner(d, now_ns, psi, view, stats, changed);
    changed
}

fn step_device_inner(
    d: &mut DevState,
    now_ns: u64,
    psi: Option<f64>,
    view: Option<&ProbeView>,
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
        let found = match stats.limit {
            Some(WritebackLimit::On { pages_left }) => SavedLimit {
                enable: true,
                pages: pages_left,
            },
            _ => SavedLimit {
                enable: false,
                pages: 0,
            },
        };
        let record = d.limit_record.as_deref();
        let saved = match record.and_then(read_limit_record) {
            Some(earlier) => {
                if earlier != found {
                    warn!(
                        device = %d.cfg.name,
                        enable = earlier.enable,
                        pages = earlier.pages,
                        "a previous daemon stopped without restoring the writeback limit (killed?): the limit it found is put back at shutdown"
                    );
                }
                earlier
            }
            None => {
                if let Some(p) = record
                    && let Err(e) = write_limit_record(p, found)
                {
                    warn!(
                        device = %d.cfg.name,
                        "cannot record the writeback limit in {}: {e} (if this daemon is killed, the next one cannot restore it)",
                        p.display()
                    );
                }
                found
            }
        };
        d.saved_limit = Some(saved);
    }
    recompress_step(d, now_ns);
    // Inputs.
    let bd_reads = stats.bd.map(|b| b.bd_reads);
    let bd_delta = match (d.last_bd_reads, bd_reads) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    d.last_bd_reads = bd_reads;
    let utilisation = if stats.mm.mem_limit > 0 {
        Some(stats.mm.mem_used_total as f64 / stats.mm.mem_limit as f64)
    } else if stats.disksize > 0 {
        Some(stats.mm.orig_data_size as f64 / stats.disksize as f64)
    } else {
        None
    };
    d.last_pressure = psi;
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
        if let Some(slots) = v
            .devices
            .iter()
            .find(|p| p.name == d.cfg.name && p.backing_of.is_none())
            .and_then(|p| p.slots.as_ref())
        {
            let now_t = v.now_ns >> SLOT_TIME_SHIFT;
            let attach_age = v.now_ns.saturating_sub(v.attached_ns) / 1_000_000_000;
            let wb = &mut d.written_back;
            let mut cands = Vec::with_capacity(slots.len());
            let mut untouched = Vec::new();
            let mut touched_with_data = 0u64;
            for (i, s) in slots.iter().enumerate() {
                let i = i as u64;
                if let Some(&t) = wb.get(&i) {
                    if t == s.last_time {
                        continue; // still on the backing device, untouched
                    }
                    wb.remove(&i);
                }
                let age = if s.last_time == 0 {
                    attach_age
                } else {
                    (now_t.saturating_sub(u64::from(s.last_time)) << SLOT_TIME_SHIFT)
                        / 1_000_000_000
                };
                if s.reads == 0 && s.writes == 0 && s.discards == 0 {
                    untouched.push((i, age));
                    continue;
                }
                if s.writes > s.discards || s.reads > 0 {
                    touched_with_data += 1;
                }
                cands.push((i, age));
            }
            // Slots untouched since the probes attached are the oldest, but
            // on a device set up after that (or reset since) they are empty,
            // and writing back empty slots wastes whole rounds. They are
            // candidates only while the device holds more pages in RAM than
            // the touched slots account for (data from before the attach).
            // orig_data_size counts written-back pages too (as upstream zram).
            let stored = (stats.mm.orig_data_size / policy::PAGE_SIZE)
                .saturating_sub(stats.bd.map_or(0, |b| b.bd_count));
            if stored > touched_with_data {
                cands.extend(untouched);
            }
            cold_input = Some(ColdInput::Slots(cands));
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
    if let Some(cur) = stats.batch
        && cur != decision.batch_size
    {
        match d.dev.set_writeback_batch_size(decision.batch_size) {
            Ok(()) => {
                debug!(device = %d.cfg.name, from = cur, to = decision.batch_size, "writeback batch size")
            }
            Err(e) => warn!(device = %d.cfg.name, "setting the batch size failed: {e}"),
        }
    }
    match decision.run {
        Err(s) => *d.skips.entry(skip_name(s)).or_default() += 1,
        Ok(t) => *d.rounds.entry(t.as_str()).or_default() += 1,
    }
    let Some(plan) = decision.plan else {
        return;
    };
    let trigger = decision.run.ok();
    let outcome = run_plan(d, &plan, decision.limit_pages, &stats, view);
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

/// Recompresses pages idle for `recompress_idle_age_secs` with the
/// configured secondary algorithm (zstd by default), at most once per
/// `recompress_interval_secs`, before the writeback policy looks at the
/// device: what shrinks in RAM need not go to flash. Savings are the
/// `compr_data_size` drop. Needs per-slot access times (`idle <age>`);
/// without them it does nothing (marking everything idle would recompress
/// hot pages too).
fn recompress_step(d: &mut DevState, now_ns: u64) {
    let Some(rc) = d.cfg.recompress.clone() else {
        return;
    };
    if d.recomp.disabled || !d.actime {
        return;
    }
    if d.recomp
        .last_ns
        .is_some_and(|t| now_ns.saturating_sub(t) < (rc.interval_secs * 1e9) as u64)
    {
        return;
    }
    d.recomp.last_ns = Some(now_ns);
    let dev = d.dev.clone();
    let name = d.cfg.name.clone();
    if !dev.has_recompression() {
        warn!(device = %name, "recompression configured but the device cannot recompress (no recomp_algorithm/recompress attributes): not trying again");
        d.recomp.disabled = true;
        return;
    }
    let prio = match dev.recomp_algorithms() {
        Ok(v) => v
            .unwrap_or_default()
            .iter()
            .find(|r| r.algorithms.current == rc.algorithm)
            .map(|r| r.priority),
        Err(e) => {
            warn!(device = %name, "reading recomp_algorithm failed: {e}");
            d.recomp.errors += 1;
            return;
        }
    };
    let Some(priority) = prio else {
        warn!(device = %name, "{} is not a recompression algorithm of the device: it is set before disksize (recomp_algorithm in the config, or zramctl setup --recomp-algorithm {})", rc.algorithm, rc.algorithm);
        d.recomp.errors += 1;
        return;
    };
    match dev.mark_idle(IdleMode::Age(rc.idle_age_secs)) {
        Ok(()) => {}
        Err(e) if e.errno() == Some(libc::EINVAL) => {
            info!(device = %name, "kernel has no per-slot access times: no recompression");
            d.actime = false;
            return;
        }
        Err(e) => {
            warn!(device = %name, "marking pages idle for recompression failed: {e}");
            d.recomp.errors += 1;
            return;
        }
    }
    let req = crate::sysfs::Recompress {
        kind: Some(crate::sysfs::RecompressType::Idle),
        threshold: (rc.threshold > 0).then_some(rc.threshold),
        algo: None,
        priority: Some(priority),
        max_pages: rc.max_pages,
    };
    match crate::commands::run_recompress(&dev, &req) {
        Ok(o) => {
            d.recomp.runs += 1;
            d.recomp.saved_bytes += o.saved_bytes;
            d.recomp.slots = o.recompressed_slots;
            info!(device = %name, request = %o.request, saved_bytes = o.saved_bytes, compr_after = o.compr_after, "recompressed idle pages");
        }
        Err(e) => {
            d.recomp.errors += 1;
            warn!(device = %name, "recompression failed: {e:#}");
        }
    }
}

/// Carries out a plan under a writeback limit of `limit` pages.
fn run_plan(
    d: &mut DevState,
    plan: &Plan,
    limit: u64,
    before: &Stats,
    view: Option<&ProbeView>,
) -> Outcome {
    let dev = d.dev.clone();
    let name = d.cfg.name.clone();
    let fail = |e: crate::sysfs::Error| {
        warn!(device = %name, "writeback round failed: {e}");
        Outcome {
            written_pages: 0,
            error: Some(classify(&e)),
        }
    };
    if *plan == Plan::MarkAll {
        return match dev.mark_idle(IdleMode::All) {
            Ok(()) => Outcome {
                written_pages: 0,
                error: None,
            },
            Err(e) => fail(e),
        };
    }
    // The budget, enforced by the kernel: limit first, then the switch.
    if let Err(e) = dev
        .set_writeback_limit(limit)
        .and_then(|()| dev.set_writeback_limit_enable(true))
    {
        return fail(e);
    }
    let result: Result<(), crate::sysfs::Error> = match plan {
        Plan::Pages(ranges) => {
            let mut r = Ok(());
            for chunk in cold::chunk_for_sysfs(ranges) {
                let modes: Vec<WritebackMode> = chunk
                    .iter()
                    .map(|&(first, last)| WritebackMode::Pages { first, last })
                    .collect();
                r = dev.writeback(&modes);
                if r.is_err() {
                    break;
                }
            }
            r
        }
        Plan::IdleAge(secs) => match dev.mark_idle(IdleMode::Age(*secs)) {
            Err(e) if e.errno() == Some(libc::EINVAL) => {
                info!(device = %name, "kernel has no per-slot access times: switching to idle-all marking");
                d.actime = false;
                Ok(())
            }
            Err(e) => Err(e),
            Ok(()) => dev.writeback(&[WritebackMode::Idle]),
        },
        Plan::IdleAll => {
            // Re-mark even when the limit stopped the writeback.
            let r = dev.writeback(&[WritebackMode::Idle]);
            let m = dev.mark_idle(IdleMode::All);
            r.and(m)
        }
        Plan::MarkAll => Ok(()),
    };
    // What went: the limit's drop, else the bd_writes delta.
    let left = dev.writeback_limit();
    let written = match left {
        Ok(WritebackLimit::On { pages_left }) => limit.saturating_sub(pages_left),
        _ => match (dev.bd_stat(), before.bd) {
            (Ok(Some(a)), Some(b)) => a.bd_writes.saturating_sub(b.bd_writes),
            _ => 0,
        },
    };
    // The kernel stops a writeback with EIO when the limit runs out: for
    // idle-mode rounds that is the budget working, not a failure.
    let result = match result {
        Err(e)
            if e.errno() == Some(libc::EIO)
                && matches!(left, Ok(WritebackLimit::On { pages_left: 0 }))
                && limit > 0 =>
        {
            debug!(device = %name, "writeback stopped at the round's limit of {limit} pages");
            Ok(())
        }
        other => other,
    };
    // Nothing more may go until the next round.
    if let Err(e) = dev.set_writeback_limit(0) {
        warn!(device = %name, "closing the writeback limit failed: {e}");
    }
    if let (Plan::Pages(ranges), Some(v)) = (plan, view)
        && let Some(slots) = v
            .devices
            .iter()
            .find(|p| p.name == name && p.backing_of.is_none())
            .and_then(|p| p.slots.as_ref())
    {
        for &(a, b) in ranges {
            for i in a..=b {
                if let Some(s) = slots.get(i as usize) {
                    d.written_back.insert(i, s.last_time);
                }
            }
        }
    }
    match result {
        Ok(()) => Outcome {
            written_pages: written,
            error: None,
        },
        Err(e) => {
            let mut o = fail(e);
            o.written_pages = written;
            o
        }
    }
}

fn device_metrics(e: &mut Exposition, d: &DevState) {
    let dl: [(&str, &str); 1] = [("device", &d.cfg.name)];
    let l = &dl[..];
    if let Some(s) = &d.stats {
        let m = &s.mm;
        e.gauge(
            "zramctl_initialized",
            "1 if the device is initialised (disksize set).",
            l,
            f64::from(u8::from(s.initialized)),
        );
        e.gauge("zramctl_disksize_bytes", "Disk size.", l, s.disksize as f64);
        e.gauge(
            "zramctl_orig_data_bytes",
            "mm_stat orig_data_size: uncompressed size of the data stored.",
            l,
            m.orig_data_size as f64,
        );
        e.gauge(
            "zramctl_compr_data_bytes",
            "mm_stat compr_data_size: compressed size of the data stored.",
            l,
            m.compr_data_size as f64,
        );
        e.gauge(
            "zramctl_mem_used_bytes",
            "mm_stat mem_used_total: memory used, with allocator overhead.",
            l,
            m.mem_used_total as f64,
        );
        e.gauge(
            "zramctl_mem_limit_bytes",
            "mm_stat mem_limit: memory limit, 0 for none.",
            l,
            m.mem_limit as f64,
        );
        e.gauge(
            "zramctl_mem_used_max_bytes",
            "mm_stat mem_used_max: peak memory used.",
            l,
            m.mem_used_max as f64,
        );
        e.gauge(
            "zramctl_same_pages",
            "mm_stat same_pages: same-filled pages, stored without memory.",
            l,
            m.same_pages as f64,
        );
        e.counter(
            "zramctl_pages_compacted_total",
            "mm_stat pages_compacted: pages freed by compaction.",
            l,
            m.pages_compacted as f64,
        );
        if let Some(h) = m.huge_pages {
            e.gauge(
                "zramctl_huge_pages",
                "mm_stat huge_pages: incompressible pages stored whole.",
                l,
                h as f64,
            );
        }
        if let Some(h) = m.huge_pages_since {
            e.counter(
                "zramctl_huge_pages_stored_total",
                "mm_stat huge_pages_since: huge pages stored since init.",
                l,
                h as f64,
            );
        }
        let io = &s.io;
        e.counter(
            "zramctl_failed_reads_total",
            "io_stat failed_reads.",
            l,
            io.failed_reads as f64,
        );
        e.counter(
            "zramctl_failed_writes_total",
            "io_stat failed_writes.",
            l,
            io.failed_writes as f64,
        );
        e.counter(
            "zramctl_invalid_io_total",
            "io_stat invalid_io.",
            l,
            io.invalid_io as f64,
        );
        e.counter(
            "zramctl_notify_free_total",
            "io_stat notify_free: slot-free notifications from swap.",
            l,
            io.notify_free as f64,
        );
        if let Some(bd) = &s.bd {
            let p = policy::PAGE_SIZE as f64;
            e.gauge(
                "zramctl_backing_bytes",
                "bd_stat bd_count: data on the backing device.",
                l,
                bd.bd_count as f64 * p,
            );
            e.counter(
                "zramctl_backing_read_bytes_total",
                "bd_stat bd_reads: bytes read back from the backing device.",
                l,
                bd.bd_reads as f64 * p,
            );
            e.counter(
                "zramctl_backing_written_bytes_total",
                "bd_stat bd_writes: bytes written to the backing device.",
                l,
                bd.bd_writes as f64 * p,
            );
        }
        match s.limit {
            Some(WritebackLimit::On { pages_left }) => {
                e.gauge(
                    "zramctl_writeback_limit_enabled",
                    "1 if writeback_limit_enable is set.",
                    l,
                    1.0,
                );
                e.gauge(
                    "zramctl_writeback_limit_bytes",
                    "writeback_limit: what the kernel still lets through.",
                    l,
                    (pages_left * policy::PAGE_SIZE) as f64,
                );
            }
            Some(WritebackLimit::Off) => {
                e.gauge(
                    "zramctl_writeback_limit_enabled",
                    "1 if writeback_limit_enable is set.",
                    l,
                    0.0,
                );
            }
            _ => {}
        }
        if let Some(b) = s.batch {
            e.gauge(
                "zramctl_writeback_batch_size",
                "writeback_batch_size as set in the kernel.",
                l,
                b as f64,
            );
        }
    }
    if d.cfg.recompress.is_some() {
        let r = &d.recomp;
        e.counter(
            "zramctl_recompress_runs_total",
            "Recompressions of idle pages the daemon ran.",
            l,
            r.runs as f64,
        );
        e.counter(
            "zramctl_recompress_errors_total",
            "Recompressions that failed or could not run.",
            l,
            r.errors as f64,
        );
        e.counter(
            "zramctl_recompress_saved_bytes_total",
            "Compressed bytes saved by recompression (mm_stat compr_data_size drop).",
            l,
            r.saved_bytes as f64,
        );
        if let Some(n) = r.slots {
            e.gauge(
                "zramctl_recompressed_pages",
                "Pages stored with a secondary algorithm (debugfs block_state).",
                l,
                n as f64,
            );
        }
    }
    e.counter(
        "zramctl_device_read_errors_total",
        "Failed reads of the device's sysfs attributes.",
        l,
        d.read_errors_total as f64,
    );
    let p = &d.policy;
    e.counter(
        "zramctl_writeback_pages_total",
        "Pages the daemon wrote back.",
        l,
        d.wb_pages_total as f64,
    );
    e.counter(
        "zramctl_writeback_bytes_total",
        "Bytes the daemon wrote back.",
        l,
        (d.wb_pages_total * policy::PAGE_SIZE) as f64,
    );
    for (i, kind) in ["io", "other"].into_iter().enumerate() {
        e.counter(
            "zramctl_writeback_errors_total",
            "Failed writeback rounds: io is EIO from the backing device or a spent limit.",
            &[("device", &d.cfg.name), ("kind", kind)],
            d.errors[i] as f64,
        );
    }
    for t in [Trigger::Period, Trigger::Pressure, Trigger::Utilisation] {
        let n = d.rounds.get(t.as_str()).copied().unwrap_or(0);
        e.counter(
            "zramctl_writeback_rounds_total",
            "Writeback rounds by trigger.",
            &[("device", &d.cfg.name), ("trigger", t.as_str())],
            n as f64,
        );
    }
    for (_, r) in SKIPS {
        let n = d.skips.get(r).copied().unwrap_or(0);
        e.counter(
            "zramctl_writeback_skips_total",
            "Policy steps without writeback, by reason.",
            &[("device", &d.cfg.name), ("reason", r)],
            n as f64,
        );
    }
    e.gauge(
        "zramctl_policy_batch_size",
        "Batch size the policy wants.",
        l,
        p.batch_size() as f64,
    );
    e.gauge(
        "zramctl_policy_batch_size_min",
        "Lower bound of the batch size.",
        l,
        p.config().batch.min as f64,
    );
    e.gauge(
        "zramctl_policy_batch_size_max",
        "Upper bound of the batch size.",
        l,
        p.config().batch.max as f64,
    );
    e.gauge(
        "zramctl_policy_target_p99_seconds",
        "Backing-device p99 completion latency the batch controller aims at.",
        l,
        p.config().batch.target_p99_ns / 1e9,
    );
    if let Some(p99) = d.last_p99_ns {
        e.gauge(
            "zramctl_backing_write_p99_seconds",
            "p99 write completion latency of the backing device over the last window.",
            l,
            p99 / 1e9,
        );
    }
    e.gauge(
        "zramctl_budget_remaining_bytes",
        "Writeback budget left in the token bucket.",
        l,
        p.budget().available_bytes() as f64,
    );
    e.gauge(
        "zramctl_budget_per_day_bytes",
        "Writeback budget refill rate, bytes per day.",
        l,
        p.budget().bytes_per_day() as f64,
    );
    e.gauge(
        "zramctl_budget_burst_bytes",
        "Writeback budget bucket size.",
        l,
        p.budget().burst_bytes() as f64,
    );
    e.counter(
        "zramctl_budget_spent_bytes_total",
        "Writeback budget charged.",
        l,
        p.budget().spent_total() as f64,
    );
    e.gauge(
        "zramctl_idle_age_threshold_seconds",
        "Pages idle at least this long are written back.",
        l,
        p.threshold_secs() as f64,
    );
    e.counter(
        "zramctl_refaults_total",
        "Reads of written-back pages (bd_reads deltas until rzram tracepoints count them).",
        l,
        p.refaults_total() as f64,
    );
    e.gauge(
        "zramctl_backoff_seconds",
        "Time left before the next round may start after a failure.",
        l,
        p.backoff_left_ns(d.last_now_ns) as f64 / 1e9,
    );
    if let Some(u) = d.last_utilisation {
        e.gauge(
            "zramctl_utilisation_ratio",
            "mem_used/mem_limit, or orig_data/disksize without a limit.",
            l,
            u,
        );
    }
    if let Some(ps) = d.last_pressure {
        e.gauge(
            "zramctl_memory_pressure_some_ratio",
            "PSI memory some avg10, as a ratio.",
            l,
            ps / 100.0,
        );
    }
    if let Some(t) = d.last_round_unix {
        e.gauge(
            "zramctl_last_round_timestamp_seconds",
            "Unix time of the last writeback round.",
            l,
            t,
        );
    }
    e.gauge(
        "zramctl_writeback_active",
        "1 if the device can write back (initialised, backing device set), 0 if only watched.",
        l,
        f64::from(u8::from(d.note.is_none() && d.stats.is_some())),
    );
}

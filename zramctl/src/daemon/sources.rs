//! Where the daemon's inputs come from: the eBPF probes ([`ProbeSource`],
//! read into a [`ProbeView`]) and memory pressure ([`PressureSource`]).
//! Injected into [`super::DaemonCore`], so tests drive it with fakes
//! ([`super::fake`]).

use anyhow::{Context as _, Result, anyhow};

use super::config::{Config, ProbeMode};
use crate::{
    platform::monotonic_ns,
    probes::{Flavour, ProbeOptions, Probes, Role, WatchSpec, hist::LatencyHistogram, watch_list},
    sysfs::Sysfs,
};
use zramctl_common::SlotState;

/// What the probes saw of one watched device (totals since attach).
#[derive(Clone, Debug, Default)]
pub struct ProbeDevice {
    pub name: String,
    /// The zram device this one backs, for backing devices; `None` for zram.
    pub backing_of: Option<String>,
    /// Slots tracked (zram devices with access tracking); their state is
    /// read in place by [`ProbeSource::scan_slots`], never copied.
    pub slots: Option<u32>,
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
pub trait ProbeSource: Send {
    /// `tp_btf`, `raw_tp`, `fake`.
    fn flavour(&self) -> &str;
    /// Counters and latency histograms (no pass over the slots).
    fn read(&mut self) -> Result<ProbeView>;
    /// Calls `f(slot index, state)` for every slot of zram device `dev`,
    /// in place; `Ok(false)` when its slots are not tracked.
    fn scan_slots(&self, dev: &str, f: &mut dyn FnMut(u64, SlotState)) -> Result<bool>;
}

/// Memory pressure: PSI `some avg10` in percent; `None` without PSI.
pub trait PressureSource: Send {
    fn some_avg10(&mut self) -> Result<Option<f64>>;
}

/// Parses `/proc/pressure/memory` (`some avg10=1.23 avg60=… total=…`).
pub fn parse_psi_some_avg10(s: &str) -> Result<f64> {
    let line = s
        .lines()
        .find(|l| l.starts_with("some "))
        .ok_or_else(|| anyhow!("no \"some\" line"))?;
    let v = line
        .split_whitespace()
        .find_map(|t| t.strip_prefix("avg10="))
        .ok_or_else(|| anyhow!("no avg10 field"))?;
    v.parse::<f64>()
        .map_err(|_| anyhow!("avg10 {v:?} is not a number"))
}

/// PSI from a file (the daemon's is `/proc/pressure/memory`).
pub struct PsiFile(pub std::path::PathBuf);

impl PressureSource for PsiFile {
    fn some_avg10(&mut self) -> Result<Option<f64>> {
        match std::fs::read_to_string(&self.0) {
            Ok(s) => parse_psi_some_avg10(&s)
                .map(Some)
                .with_context(|| self.0.display().to_string()),
            // No PSI (kernel without CONFIG_PSI): the trigger is just off.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(self.0.display().to_string())),
        }
    }
}

/// Probes as the daemon reads them.
struct RealProbes {
    probes: Probes,
    roles: Vec<Role>,
    attached_ns: u64,
    flavour: String,
}

impl ProbeSource for RealProbes {
    fn flavour(&self) -> &str {
        &self.flavour
    }

    fn read(&mut self) -> Result<ProbeView> {
        let snap = self.probes.snapshot_counters()?;
        let devices = snap
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| ProbeDevice {
                name: d.spec.name.clone(),
                backing_of: match &self.roles[i] {
                    Role::Backing { of } => Some(of.clone()),
                    _ => None,
                },
                slots: (d.spec.slots > 0).then_some(d.spec.slots),
                latency: d.latency.clone(),
            })
            .collect();
        Ok(ProbeView {
            now_ns: snap.monotonic_ns,
            attached_ns: self.attached_ns,
            devices,
            lat_start_dropped: snap.health.lat_start_dropped,
            lat_unmatched: snap.health.lat_unmatched,
        })
    }

    fn scan_slots(&self, dev: &str, f: &mut dyn FnMut(u64, SlotState)) -> Result<bool> {
        let Some(i) = self
            .probes
            .devices()
            .iter()
            .position(|d| d.name == dev && d.slots > 0)
        else {
            return Ok(false);
        };
        Ok(self.probes.scan_slots(i, f)?)
    }
}

/// Attaches the eBPF probes to the configured devices (and their backing
/// devices), or says why not.
pub(super) fn attach_probes(sys: &Sysfs, config: &Config) -> Result<Box<dyn ProbeSource>> {
    if config.probes == ProbeMode::Off {
        return Err(anyhow!("probes = \"off\" in the configuration"));
    }
    let mut specs: Vec<WatchSpec> = Vec::new();
    let mut roles = Vec::new();
    for d in &config.devices {
        let list = watch_list(sys, Some(&d.name), &[])?;
        for note in &list.notes {
            tracing::warn!(device = %d.name, "eBPF probes: {note}");
        }
        for (mut spec, role) in list.specs.into_iter().zip(list.roles) {
            // The policy reads only the backing device's write latency: the
            // zram devices' bio latency probes (most of the probes' cost per
            // event) stay detached; `zramctl top` attaches what it shows.
            if matches!(role, Role::Zram) {
                spec.latency = None;
                if spec.slots == 0 && !spec.rzram {
                    continue;
                }
            }
            if !specs
                .iter()
                .any(|x| (x.major, x.minor) == (spec.major, spec.minor))
            {
                specs.push(spec);
                roles.push(role);
            }
        }
    }
    let probes = Probes::attach(&specs, ProbeOptions::default())?;
    let flavour = match probes.flavour() {
        Flavour::TpBtf => "tp_btf",
        Flavour::RawTp => "raw_tp",
    }
    .to_owned();
    Ok(Box::new(RealProbes {
        probes,
        roles,
        attached_ns: monotonic_ns(),
        flavour,
    }))
}

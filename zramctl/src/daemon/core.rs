//! The daemon's synchronous core, [`DaemonCore`]: the devices' state, the
//! probes and the configuration, and what changes them from outside the
//! step (reload, new probes, shutdown). The step itself is in
//! [`super::step`], what it writes to the devices in [`super::actions`],
//! the `/metrics` text in [`super::exposition`]. The clock, the eBPF probes
//! and the pressure source are injected, so tests drive it on
//! [`crate::sysfs::fake`].

use std::sync::{Arc, atomic::AtomicBool};

use super::{
    actions::restore_limit,
    config::Config,
    sources::{PressureSource, ProbeSource, ProbeView},
    state::{DevState, ProbeStatus},
};
use crate::{platform::page_size, size::ByteSize, sysfs::Sysfs};

/// The daemon without its I/O shell (signals, HTTP, sd_notify).
pub struct DaemonCore {
    pub(super) sys: Sysfs,
    pub(super) config: Config,
    pub(super) devices: Vec<DevState>,
    pub(super) probes: Option<Box<dyn ProbeSource>>,
    pub(super) probe_status: ProbeStatus,
    pub(super) probe_view: Option<ProbeView>,
    pub(super) probe_errors_total: u64,
    pub(super) pressure: Box<dyn PressureSource>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub(super) steps: u64,
    /// A device was reset or set up anew since the probes were attached.
    pub(super) reattach: bool,
    /// Set to stop a running writeback round after its current chunk.
    pub(super) cancel: Arc<AtomicBool>,
    /// PSI memory some avg10 at the last step (system-wide).
    pub(super) last_psi: Option<f64>,
}

impl DaemonCore {
    /// Checks every configured device exists; nothing is written yet.
    pub fn new(
        sys: Sysfs,
        config: Config,
        probes: anyhow::Result<Box<dyn ProbeSource>>,
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
            Err(why) => (None, ProbeStatus::Off(format!("{why:#}"))),
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
            cancel: Arc::default(),
            last_psi: None,
        })
    }

    /// Set it to end a running writeback round after its current chunk
    /// (shutdown); the round closes the writeback limit as usual.
    pub fn cancel_handle(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn probe_status(&self) -> &ProbeStatus {
        &self.probe_status
    }

    /// Replaces the probes (after a reload changed the device list).
    pub fn set_probes(&mut self, probes: anyhow::Result<Box<dyn ProbeSource>>) {
        self.probes = None; // detach the old ones first
        self.probe_view = None;
        match probes {
            Ok(p) => {
                self.probe_status = ProbeStatus::Up(p.flavour().to_owned());
                self.probes = Some(p);
            }
            Err(why) => self.probe_status = ProbeStatus::Off(format!("{why:#}")),
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
                    ByteSize(d.wb_pages_total * page_size()),
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

    /// Whether a device changed identity (reset, set up again with another
    /// size or backing device) since the last call: the probes watch it by
    /// its old size and backing device and should be attached again.
    /// Writeback rounds run so far, all devices and triggers.
    pub fn rounds_total(&self) -> u64 {
        self.devices.iter().flat_map(|d| d.rounds.values()).sum()
    }

    pub fn take_reattach(&mut self) -> bool {
        std::mem::take(&mut self.reattach)
    }
}

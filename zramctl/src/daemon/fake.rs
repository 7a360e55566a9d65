//! `--fake` and the tests: probes with per-slot access times and latency
//! histograms set by hand (or by a synthetic workload), on simulated zram
//! devices.

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use zramctl_common::{LatHist, SLOT_TIME_SHIFT, SlotState, lat_bucket, op};

use super::{
    config::Config,
    sources::{ProbeDevice, ProbeSource, ProbeView},
};
use crate::{
    platform::monotonic_ns,
    probes::hist::LatencyHistogram,
    sysfs::{
        Sysfs,
        fake::{FAKE_ROOT, FakeDevice, FakeZram},
    },
};

/// Simulated probes: per-slot access times and latency histograms set by
/// a test (or by `--fake`'s synthetic workload). Clones share state.
#[derive(Clone, Default)]
pub struct FakeProbes {
    state: Arc<Mutex<FakeProbeState>>,
}

#[derive(Default)]
pub struct FakeProbeState {
    pub now_ns: u64,
    pub attached_ns: u64,
    pub devices: Vec<ProbeDevice>,
    /// Per-slot state of the zram devices, by name.
    pub slot_states: Vec<(String, Vec<SlotState>)>,
    /// The next read fails with this.
    pub fail: Option<String>,
    /// `--fake`: advance on every read (real clock, synthetic traffic).
    pub synthetic: bool,
    reads: u64,
}

impl FakeProbes {
    /// A zram device with `slots` slots, all last touched at `attached_ns`,
    /// and its backing device `<name>-backing` with empty histograms.
    pub fn new(zram: &[(&str, usize)], attached_ns: u64) -> Self {
        let mut devices = Vec::new();
        let t = (attached_ns >> SLOT_TIME_SHIFT) as u32;
        let mut slot_states = Vec::new();
        for &(name, slots) in zram {
            devices.push(ProbeDevice {
                name: name.into(),
                backing_of: None,
                slots: Some(slots as u32),
                latency: Some(vec![LatencyHistogram::from(&LatHist::default()); op::COUNT]),
            });
            slot_states.push((
                name.to_owned(),
                vec![
                    SlotState {
                        last_time: t,
                        ..SlotState::default()
                    };
                    slots
                ],
            ));
            devices.push(ProbeDevice {
                name: format!("{name}-backing"),
                backing_of: Some(name.into()),
                slots: None,
                latency: Some(vec![LatencyHistogram::from(&LatHist::default()); op::COUNT]),
            });
        }
        FakeProbes {
            state: Arc::new(Mutex::new(FakeProbeState {
                now_ns: attached_ns,
                attached_ns,
                devices,
                slot_states,
                ..FakeProbeState::default()
            })),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeProbeState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Marks slots `range` as accessed at `at_ns`.
    pub fn touch(&self, dev: &str, range: std::ops::Range<usize>, at_ns: u64) {
        self.with(|s| {
            if let Some((_, slots)) = s.slot_states.iter_mut().find(|(n, _)| n == dev) {
                for i in range {
                    if let Some(x) = slots.get_mut(i) {
                        x.last_time = (at_ns >> SLOT_TIME_SHIFT) as u32;
                        x.reads += 1;
                    }
                }
            }
        });
    }

    /// Adds `n` completions of `ns` each to a device's histogram of `op`.
    pub fn complete(&self, dev: &str, o: usize, n: u64, ns: u64) {
        self.with(|s| {
            if let Some(h) = s
                .devices
                .iter_mut()
                .find(|d| d.name == dev)
                .and_then(|d| d.latency.as_mut())
                .and_then(|l| l.get_mut(o))
            {
                h.buckets[lat_bucket(ns)] += n;
                h.count += n;
                h.sum_ns += n * ns;
            }
        });
    }
}

impl ProbeSource for FakeProbes {
    fn flavour(&self) -> &str {
        "fake"
    }

    fn read(&mut self) -> Result<ProbeView> {
        let synthetic = self.with(|s| {
            if s.synthetic {
                s.now_ns = monotonic_ns();
                s.reads += 1;
            }
            s.synthetic.then_some((s.now_ns, s.reads))
        });
        if let Some((now, reads)) = synthetic {
            // A hot working set re-read every step, the rest cold; the
            // backing device answers in 0.5-4 ms.
            let names: Vec<(String, bool)> = self.with(|s| {
                s.devices
                    .iter()
                    .map(|d| (d.name.clone(), d.backing_of.is_some()))
                    .collect()
            });
            for (name, backing) in names {
                if backing {
                    self.complete(&name, op::WRITE, 50, 500_000 << (reads % 4));
                    self.complete(&name, op::READ, 5, 200_000);
                } else {
                    self.touch(&name, 0..1024, now);
                    self.complete(&name, op::READ, 1000, 3_000);
                    self.complete(&name, op::WRITE, 400, 6_000);
                }
            }
        }
        self.with(|s| {
            if let Some(e) = s.fail.take() {
                return Err(anyhow!(e));
            }
            Ok(ProbeView {
                now_ns: s.now_ns,
                attached_ns: s.attached_ns,
                devices: s.devices.clone(),
                lat_start_dropped: 0,
                lat_unmatched: 0,
            })
        })
    }

    fn scan_slots(&self, dev: &str, f: &mut dyn FnMut(u64, SlotState)) -> Result<bool> {
        self.with(|s| match s.slot_states.iter().find(|(n, _)| n == dev) {
            Some((_, slots)) => {
                for (i, x) in slots.iter().enumerate() {
                    f(i as u64, *x);
                }
                Ok(true)
            }
            None => Ok(false),
        })
    }
}

/// `--fake`: a simulated zram device per configured name, 64 MiB with a
/// backing device and 12000 stored pages.
pub(super) fn fake_setup(config: &Config) -> (Sysfs, FakeProbes) {
    let fake = FakeZram::new();
    let mut names = Vec::new();
    for d in &config.devices {
        fake.add(
            &d.name,
            FakeDevice {
                disksize: 64 << 20,
                backing_dev: Some("/dev/fake-backing".into()),
                ..FakeDevice::default()
            },
        );
        fake.store_pages(&d.name, 12_000, 10);
        names.push((d.name.as_str(), (64usize << 20) / 4096));
    }
    let probes = FakeProbes::new(&names, monotonic_ns().saturating_sub(3600 * 1_000_000_000));
    probes.with(|s| s.synthetic = true);
    (Sysfs::new(FAKE_ROOT, fake), probes)
}

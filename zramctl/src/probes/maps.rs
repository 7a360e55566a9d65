//! Reading the probes' maps: the per-slot array (shared memory), the
//! per-CPU counters and histograms, folded into typed [`Snapshot`]s, and
//! the programs' run-time costs.

use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};

use aya::maps::{MapData, PerCpuArray};
use serde::Serialize;
use zramctl_common::{
    DevCounters, LatHist, ProbeStats, RzramCounters, SlotState, hist_index, map, op, rz_hist,
    rz_hist_index, watch,
};

use super::{
    Flavour, ProbeError, Probes, WatchSpec,
    error::{classify, failed},
    hist::{
        AccessCounts, LatencyHistogram, RzramCounts, RzramStats, SlotAgeHistogram, fold_per_cpu,
    },
};
use crate::platform::{monotonic_ns, page_size};

/// The per-slot array (`SLOTS`, a `BPF_F_MMAPABLE` BPF array), read in
/// place: a scan maps one window of the array at a time (read-only,
/// shared), reads its slots where the kernel writes them and unmaps it, so
/// neither a copy of the array nor more than one window of it is ever in
/// our memory. (The kernel maps every page of a BPF array mapping at
/// `mmap` time: a mapping of the whole array would add its full size, 16
/// bytes per slot or 64 MiB at 16 GiB of disk, to the resident set.)
pub(super) struct SlotsArray {
    /// The map's fd; owned by the loaded object, which outlives this.
    fd: RawFd,
    len: usize,
}

/// Bytes mapped at once (64 Ki slots).
const WINDOW_BYTES: usize = 1 << 20;

/// One mapped window, unmapped on drop.
struct Window {
    ptr: *const u8,
    len: usize,
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `SlotsArray::window` mapped, once.
        unsafe { libc::munmap(self.ptr.cast_mut().cast(), self.len) };
    }
}

impl SlotsArray {
    pub(super) fn new(data: &MapData, entries: u32) -> Self {
        SlotsArray {
            fd: data.fd().as_fd().as_raw_fd(),
            len: entries as usize,
        }
    }

    fn window(&self, offset: usize, len: usize) -> Result<Window, ProbeError> {
        // SAFETY: a shared read-only mapping of `len` bytes at the
        // page-aligned `offset` of a BPF array map created with
        // BPF_F_MMAPABLE; `offset + len` stays within the map's page-rounded
        // size (the kernel checks it too and says EINVAL). No address hint.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                self.fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(classify(
                &format!("mmap of the {} map", map::SLOTS),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Window {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Calls `f(i, slot)` for slots `first..first + count`, `i` counted
    /// from `first`, reading each slot once where the kernel keeps it.
    pub(super) fn scan(
        &self,
        first: usize,
        count: usize,
        mut f: impl FnMut(u64, SlotState),
    ) -> Result<(), ProbeError> {
        const SZ: usize = size_of::<SlotState>();
        let page = page_size() as usize;
        let end = (first + count).min(self.len);
        let map_bytes = (self.len * SZ).next_multiple_of(page);
        let mut i = first;
        while i < end {
            let offset = i * SZ - (i * SZ) % page;
            let len = WINDOW_BYTES.min(map_bytes - offset);
            let w = self.window(offset, len)?;
            let last = ((offset + len) / SZ).min(end);
            while i < last {
                // SAFETY: slot `i` lies wholly inside the window (`i * SZ +
                // SZ <= offset + len`), which stays mapped while `w` lives;
                // SZ divides the page size, so it is aligned. The kernel
                // writes it concurrently: a volatile read (aligned u32
                // stores, no field tears).
                let s = unsafe {
                    std::ptr::read_volatile(w.ptr.add(i * SZ - offset).cast::<SlotState>())
                };
                f((i - first) as u64, s);
                i += 1;
            }
        }
        Ok(())
    }
}

/// Cost of one attached program, from the kernel's BPF stats.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramCost {
    pub program: String,
    pub tracepoint: String,
    pub flavour: Flavour,
    /// Runs since load (stats only count while enabled).
    pub run_count: u64,
    pub run_time_ns: u64,
}

impl ProgramCost {
    /// Mean ns per run; `None` before the first run.
    pub fn ns_per_event(&self) -> Option<f64> {
        (self.run_count > 0).then(|| self.run_time_ns as f64 / self.run_count as f64)
    }

    /// The cost of the runs since `earlier` (the same program).
    pub fn since(&self, earlier: &Self) -> Self {
        ProgramCost {
            run_count: self.run_count.saturating_sub(earlier.run_count),
            run_time_ns: self.run_time_ns.saturating_sub(earlier.run_time_ns),
            ..self.clone()
        }
    }
}

/// Counters of the probes themselves (sums over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProbeHealth {
    /// Latency starts lost because the in-flight map was full.
    pub lat_start_dropped: u64,
    /// Completions without a recorded start (in flight at attach, or dropped).
    pub lat_unmatched: u64,
}

/// What the probes had collected for one device at one moment.
#[derive(Clone, Debug)]
pub struct DeviceSnapshot {
    pub spec: WatchSpec,
    /// Access counters (with access tracking).
    pub access: Option<AccessCounts>,
    /// Slot ages (with access tracking).
    pub slot_ages: Option<SlotAgeHistogram>,
    /// Latency histograms by operation class (`zramctl_common::op`), with latency.
    pub latency: Option<Vec<LatencyHistogram>>,
    /// rzram's writeback and refault events: an rzram device with its
    /// tracepoints attached; `None` on stock zram and other devices.
    pub rzram: Option<RzramStats>,
}

/// Everything the probes had collected at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// CLOCK_MONOTONIC when taken, ns.
    pub monotonic_ns: u64,
    pub devices: Vec<DeviceSnapshot>,
    pub health: ProbeHealth,
}

impl Probes {
    /// Per-slot CLOCK_MONOTONIC ns of the last successful writeback of
    /// watched rzram device `dev` (0: none since attach); empty unless
    /// rzram's programs are attached for it.
    pub fn wb_times(&self, dev: usize) -> Result<Vec<u64>, ProbeError> {
        let Some(w) = self
            .table
            .devs
            .get(dev)
            .filter(|_| dev < self.devices.len())
        else {
            return Ok(Vec::new());
        };
        if w.flags & watch::RZRAM == 0 || w.slot_count == 0 {
            return Ok(Vec::new());
        }
        let m = self.ebpf.map(map::RZ_WB_TIME).ok_or_else(|| {
            failed(
                "finding the map",
                format!("{} is not in the object", map::RZ_WB_TIME),
            )
        })?;
        let array: aya::maps::Array<_, u64> = aya::maps::Array::try_from(m)
            .map_err(|e| classify(&format!("map {}", map::RZ_WB_TIME), e))?;
        (w.slot_base..w.slot_base + w.slot_count)
            .map(|i| {
                array
                    .get(&i, 0)
                    .map_err(|e| classify(&format!("reading {}[{i}]", map::RZ_WB_TIME), e))
            })
            .collect()
    }

    fn per_cpu<T: aya::Pod>(&self, name: &str, index: u32) -> Result<Vec<T>, ProbeError> {
        let m = self
            .ebpf
            .map(name)
            .ok_or_else(|| failed("finding the map", format!("{name} is not in the object")))?;
        let array: PerCpuArray<_, T> =
            PerCpuArray::try_from(m).map_err(|e| classify(&format!("map {name}"), e))?;
        let values = array
            .get(&index, 0)
            .map_err(|e| classify(&format!("reading {name}[{index}]"), e))?;
        Ok(values.to_vec())
    }

    /// Per-slot state of watched device `dev` (its index in [`Self::devices`]);
    /// empty without access tracking. A copy: [`Self::scan_slots`] reads
    /// in place.
    pub fn slots(&self, dev: usize) -> Vec<SlotState> {
        let mut v = Vec::new();
        let _ = self.scan_slots(dev, |_, s| v.push(s));
        v
    }

    /// Calls `f(slot index, state)` for every slot of watched device `dev`,
    /// in place (one window of the array mapped at a time, nothing copied);
    /// `Ok(false)` without access tracking for it.
    pub fn scan_slots(
        &self,
        dev: usize,
        f: impl FnMut(u64, SlotState),
    ) -> Result<bool, ProbeError> {
        match (&self.slots, self.table.devs.get(dev)) {
            (Some(m), Some(w)) if dev < self.devices.len() && w.slot_count > 0 => {
                m.scan(w.slot_base as usize, w.slot_count as usize, f)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// [`Self::snapshot`] without the slot ages (which take a pass over
    /// every slot): counters, latency histograms, rzram statistics.
    pub fn snapshot_counters(&self) -> Result<Snapshot, ProbeError> {
        self.snapshot_with(false)
    }

    /// Reads all maps.
    pub fn snapshot(&self) -> Result<Snapshot, ProbeError> {
        self.snapshot_with(true)
    }

    fn snapshot_with(&self, slot_ages: bool) -> Result<Snapshot, ProbeError> {
        let mut devices = Vec::with_capacity(self.devices.len());
        for (i, spec) in self.devices.iter().enumerate() {
            let w = self.table.devs[i];
            let (access, slot_ages) = if w.flags & watch::ACCESS != 0 {
                let counters: Vec<DevCounters> = self.per_cpu(map::DEV_COUNTERS, i as u32)?;
                let ages = if slot_ages {
                    let now = monotonic_ns();
                    let mut h = SlotAgeHistogram::empty();
                    self.scan_slots(i, |_, s| h.add(&s, now))?;
                    Some(h)
                } else {
                    None
                };
                (Some(AccessCounts::from_per_cpu(&counters)), ages)
            } else {
                (None, None)
            };
            let latency = if w.flags & (watch::BIO_LATENCY | watch::RQ_LATENCY) != 0 {
                let mut by_op = Vec::with_capacity(op::COUNT);
                for o in 0..op::COUNT {
                    let v: Vec<LatHist> = self.per_cpu(map::LAT_HIST, hist_index(i, o))?;
                    by_op.push(LatencyHistogram::from_per_cpu(&v));
                }
                Some(by_op)
            } else {
                None
            };
            let rzram = if w.flags & watch::RZRAM != 0 {
                let counters: Vec<RzramCounters> = self.per_cpu(map::RZ_COUNTERS, i as u32)?;
                let hist = |kind| -> Result<LatencyHistogram, ProbeError> {
                    let v: Vec<LatHist> = self.per_cpu(map::RZ_HIST, rz_hist_index(i, kind))?;
                    Ok(LatencyHistogram::from_per_cpu(&v))
                };
                Some(RzramStats {
                    counts: RzramCounts::from_per_cpu(&counters),
                    wb_latency: hist(rz_hist::WB_LATENCY)?,
                    bd_read_latency: hist(rz_hist::BD_READ_LATENCY)?,
                    refault_age_us: hist(rz_hist::REFAULT_AGE_US)?,
                })
            } else {
                None
            };
            devices.push(DeviceSnapshot {
                spec: spec.clone(),
                access,
                slot_ages,
                latency,
                rzram,
            });
        }
        let h = fold_per_cpu(
            &self.per_cpu::<ProbeStats>(map::PROBE_STATS, 0)?,
            ProbeStats::accumulate,
        );
        Ok(Snapshot {
            monotonic_ns: monotonic_ns(),
            devices,
            health: ProbeHealth {
                lat_start_dropped: h.lat_start_dropped,
                lat_unmatched: h.lat_unmatched,
            },
        })
    }

    /// Run counts and times of the attached programs. They only grow while
    /// BPF stats are enabled (by [`ProbeOptions::stats`] or
    /// `sysctl kernel.bpf_stats_enabled=1`).
    pub fn costs(&self) -> Result<Vec<ProgramCost>, ProbeError> {
        self.attached
            .iter()
            .map(|spec| {
                let name = spec.name(self.flavour);
                let p = self
                    .ebpf
                    .program(name)
                    .ok_or_else(|| failed("finding the program", name))?;
                let info = p
                    .info()
                    .map_err(|e| classify(&format!("reading program info of {name}"), e))?;
                Ok(ProgramCost {
                    program: name.to_owned(),
                    tracepoint: spec.tracepoint.to_owned(),
                    flavour: self.flavour,
                    run_count: info.run_count(),
                    run_time_ns: info.run_time().as_nanos() as u64,
                })
            })
            .collect()
    }
}

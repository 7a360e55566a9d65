//! Loader for zramctl's eBPF programs (built from `zramctl-ebpf` by
//! `build.rs` and embedded in the binary).
//!
//! Field offsets come from the running kernel's BTF ([`crate::btf`]) and are
//! handed to the programs as globals, so one object runs on any kernel with
//! BTF. When the kernel refuses BPF the error says what is missing, and
//! callers can fall back to sysfs-only operation.
//!
//! - [`BioCounter`]: bios queued to one device, by operation.
//! - [`Probes`]: per-slot access tracking of zram devices and issue to
//!   completion latency histograms of zram and backing devices, read into
//!   typed [`Snapshot`]s; per-program cost from the kernel's BPF stats. On
//!   rzram devices ([`WatchSpec::rzram`]) also rzram's own tracepoints:
//!   slot accesses (swap slot frees included), writeback latency and errors,
//!   refaults with the time since their writeback ([`RzramStats`]). Those
//!   attach only while `rzram.ko` is loaded; otherwise they are skipped and
//!   [`Probes::rzram_status`] says why.

use std::{
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
    path::Path,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData, PerCpuArray},
    programs::{BtfTracePoint, Program, RawTracePoint},
};
use serde::Serialize;
use zramctl_common::{
    BioCounts, DevCounters, GLOBAL_OFFSETS, GLOBAL_TARGET_DEV, GLOBAL_WATCH, KernelOffsets,
    LatHist, MAP_BIO_COUNTS, MAX_DEVS, PROG_BIO_QUEUE, ProbeStats, RzramCounters, SlotState,
    WatchTable, WatchedDev, hist_index, kernel_dev, map, op, prog, rz_hist, rz_hist_index,
    rzram_tp, watch,
};

use crate::{
    btf::{Btf, BtfError},
    hist::{
        AccessCounts, LatencyHistogram, RzramCounts, RzramStats, SlotAgeHistogram, fold_per_cpu,
    },
};

/// The eBPF object (an ELF file for bpfel-unknown-none).
pub static PROBES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/zramctl-probes"));

/// Why the probes could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("kernel BTF is needed for eBPF: {0}")]
    Btf(#[from] BtfError),
    #[error(
        "the kernel refused BPF ({what}): run as root (or with CAP_BPF and CAP_PERFMON); \
         kernel lockdown or kernel.unprivileged_bpf_disabled can also forbid it: {detail}"
    )]
    Refused { what: String, detail: String },
    #[error("eBPF {what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("cannot watch {0}")]
    Invalid(String),
}

fn is_permission(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn failed(what: &str, detail: impl std::fmt::Display) -> ProbeError {
    ProbeError::Failed {
        what: what.into(),
        detail: detail.to_string(),
    }
}

fn classify(what: &str, e: impl std::error::Error + 'static) -> ProbeError {
    let detail = {
        let mut s = e.to_string();
        let mut src = e.source();
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    };
    if is_permission(&e) {
        ProbeError::Refused {
            what: what.into(),
            detail,
        }
    } else {
        ProbeError::Failed {
            what: what.into(),
            detail,
        }
    }
}

/// The struct offsets the programs read, from the kernel's BTF. A kernel
/// lacking one of the fields gives an error naming the struct and member.
pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    Ok(KernelOffsets {
        bio_bi_bdev: btf.offset_of("bio", "bi_bdev")?,
        bio_bi_opf: btf.offset_of("bio", "bi_opf")?,
        bio_bi_sector: btf.offset_of("bio", "bi_iter.bi_sector")?,
        bio_bi_size: btf.offset_of("bio", "bi_iter.bi_size")?,
        bdev_bd_dev: btf.offset_of("block_device", "bd_dev")?,
        rq_part: btf.offset_of("request", "part")?,
        rq_cmd_flags: btf.offset_of("request", "cmd_flags")?,
        _pad: 0,
    })
}

/// Counts bios queued to one block device (raw tracepoint `block_bio_queue`).
/// Detaches when dropped.
pub struct BioCounter {
    ebpf: Ebpf,
}

impl BioCounter {
    /// Attaches to the device with numbers `major:minor` (as in `/sys/block/X/dev`).
    pub fn attach(major: u32, minor: u32) -> Result<Self, ProbeError> {
        let offsets = kernel_offsets(&Btf::from_sys_fs()?)?;
        let dev = kernel_dev(major, minor);
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_TARGET_DEV, &dev, true)
            .override_global(GLOBAL_OFFSETS, &offsets, true)
            .load(PROBES_OBJECT)
            .map_err(|e| classify("loading the object", e))?;
        let prog: &mut RawTracePoint = ebpf
            .program_mut(PROG_BIO_QUEUE)
            .ok_or_else(|| ProbeError::Failed {
                what: "finding the program".into(),
                detail: format!("{PROG_BIO_QUEUE} is not in the object"),
            })?
            .try_into()
            .map_err(|e| classify("program type", e))?;
        prog.load()
            .map_err(|e| classify(&format!("loading {PROG_BIO_QUEUE}"), e))?;
        prog.attach("block_bio_queue")
            .map_err(|e| classify("attaching to block_bio_queue", e))?;
        Ok(BioCounter { ebpf })
    }

    /// Counts so far, summed over CPUs.
    pub fn counts(&self) -> Result<BioCounts, ProbeError> {
        let map = self
            .ebpf
            .map(MAP_BIO_COUNTS)
            .ok_or_else(|| ProbeError::Failed {
                what: "finding the map".into(),
                detail: format!("{MAP_BIO_COUNTS} is not in the object"),
            })?;
        let array: PerCpuArray<_, BioCounts> =
            PerCpuArray::try_from(map).map_err(|e| classify("map type", e))?;
        let per_cpu = array
            .get(&0, 0)
            .map_err(|e| classify("reading the map", e))?;
        let mut total = BioCounts::default();
        for c in per_cpu.iter() {
            total.accumulate(c);
        }
        Ok(total)
    }
}

/// Which program type the probes are loaded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// BTF-enabled tracepoints: direct kernel loads, the cheaper kind.
    TpBtf,
    /// Raw tracepoints reading through `bpf_probe_read_kernel`.
    RawTp,
}

/// How latency of a device is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    /// Bio queue to bio completion: bio-based devices (zram, dm).
    Bio,
    /// Request issue to request completion: blk-mq devices (loop,
    /// virtio-blk, nvme, scsi). Their bios never trace a completion.
    Request,
}

/// A device for [`Probes`] to watch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchSpec {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Slots to track (disksize / 4096) for access tracking; 0 for none.
    pub slots: u32,
    /// Latency to measure, if any.
    pub latency: Option<LatencyKind>,
    /// An rzram device: use rzram's tracepoints for it (slot accesses,
    /// writeback, refaults) when they can be attached.
    pub rzram: bool,
}

/// A block device as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevInfo {
    /// Kernel name (`loop0`, `nvme0n1p3`).
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Whether the (parent) disk is blk-mq (has `mq/` in sysfs), i.e. its
    /// latency is measured per request rather than per bio.
    pub blk_mq: bool,
}

impl BlockDevInfo {
    /// The latency kind that works for this device.
    pub fn latency_kind(&self) -> LatencyKind {
        if self.blk_mq {
            LatencyKind::Request
        } else {
            LatencyKind::Bio
        }
    }

    /// Describes the block device at `path` (`/dev/loop0`), using the real `/sys`.
    pub fn from_path(path: &Path) -> Result<Self, ProbeError> {
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
        let meta = std::fs::metadata(path)
            .map_err(|e| ProbeError::Invalid(format!("{}: {e}", path.display())))?;
        if !meta.file_type().is_block_device() {
            return Err(ProbeError::Invalid(format!(
                "{}: not a block device",
                path.display()
            )));
        }
        let rdev = meta.rdev();
        Self::from_numbers(Path::new("/sys"), libc::major(rdev), libc::minor(rdev))
    }

    /// Describes block device `major:minor` from the sysfs tree at `sysfs`.
    pub fn from_numbers(sysfs: &Path, major: u32, minor: u32) -> Result<Self, ProbeError> {
        let link = sysfs.join(format!("dev/block/{major}:{minor}"));
        let dir = std::fs::canonicalize(&link).map_err(|e| {
            ProbeError::Invalid(format!(
                "block device {major}:{minor}: {}: {e}",
                link.display()
            ))
        })?;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ProbeError::Invalid(format!("odd sysfs path {}", dir.display())))?
            .to_owned();
        // A partition's queue belongs to its parent disk.
        let disk = if dir.join("partition").exists() {
            dir.parent().unwrap_or(&dir).to_path_buf()
        } else {
            dir.clone()
        };
        Ok(BlockDevInfo {
            name,
            major,
            minor,
            blk_mq: disk.join("mq").is_dir(),
        })
    }
}

/// A program of [`Probes`] and the tracepoint it is attached to.
#[derive(Clone, Copy, Debug)]
struct ProgSpec {
    tp_btf: &'static str,
    raw: &'static str,
    tracepoint: &'static str,
}

impl ProgSpec {
    fn name(&self, flavour: Flavour) -> &'static str {
        match flavour {
            Flavour::TpBtf => self.tp_btf,
            Flavour::RawTp => self.raw,
        }
    }
}

const COST_FLOOR_PROG: ProgSpec = ProgSpec {
    tp_btf: prog::COST_FLOOR,
    raw: prog::COST_FLOOR_RAW,
    tracepoint: "block_bio_queue",
};
/// rzram's programs: raw tracepoints only, one name for both flavours.
const fn rz_prog(name: &'static str, tracepoint: &'static str) -> ProgSpec {
    ProgSpec {
        tp_btf: name,
        raw: name,
        tracepoint,
    }
}
// Completion before submission (a page submitted unseen is only a count).
const RZRAM_PROGS: [ProgSpec; 4] = [
    rz_prog(prog::RZ_SLOT_ACCESS, rzram_tp::SLOT_ACCESS),
    rz_prog(prog::RZ_WB_COMPLETE, rzram_tp::WB_COMPLETE),
    rz_prog(prog::RZ_WB_SUBMIT, rzram_tp::WB_SUBMIT),
    rz_prog(prog::RZ_BD_READ, rzram_tp::BD_READ),
];
const ACCESS_PROGS: [ProgSpec; 1] = [ProgSpec {
    tp_btf: prog::SLOT_ACCESS,
    raw: prog::SLOT_ACCESS_RAW,
    tracepoint: "block_bio_queue",
}];
// Completion first: a start recorded before its completion program is
// attached would never be removed from the in-flight map.
const BIO_LATENCY_PROGS: [ProgSpec; 2] = [
    ProgSpec {
        tp_btf: prog::BIO_DONE,
        raw: prog::BIO_DONE_RAW,
        tracepoint: "block_bio_complete",
    },
    ProgSpec {
        tp_btf: prog::BIO_START,
        raw: prog::BIO_START_RAW,
        tracepoint: "block_bio_queue",
    },
];
const RQ_LATENCY_PROGS: [ProgSpec; 2] = [
    ProgSpec {
        tp_btf: prog::RQ_DONE,
        raw: prog::RQ_DONE_RAW,
        tracepoint: "block_rq_complete",
    },
    ProgSpec {
        tp_btf: prog::RQ_START,
        raw: prog::RQ_START_RAW,
        tracepoint: "block_rq_issue",
    },
];

/// What [`Probes::attach`] should do besides watching the devices.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeOptions {
    /// Program type; `None` tries `tp_btf` and falls back to raw tracepoints.
    pub flavour: Option<Flavour>,
    /// Enable the kernel's BPF run-time stats while attached (for
    /// [`Probes::costs`]); costs a little on every BPF program of the
    /// system. Best effort: see [`Probes::stats_enabled`].
    pub stats: bool,
    /// Also attach `cost_floor`, a program that does nothing, to
    /// `block_bio_queue`: its cost per event, listed by [`Probes::costs`],
    /// is what any program there pays on this machine.
    pub cost_floor: bool,
}

/// The watch table and the slot layout for `devices`.
pub fn watch_table(devices: &[WatchSpec]) -> Result<(WatchTable, u32), ProbeError> {
    if devices.is_empty() {
        return Err(ProbeError::Invalid("nothing: no devices given".into()));
    }
    if devices.len() > MAX_DEVS {
        return Err(ProbeError::Invalid(format!(
            "{} devices: at most {MAX_DEVS} at once",
            devices.len()
        )));
    }
    let mut table = WatchTable::default();
    let mut base = 0u32;
    for (i, d) in devices.iter().enumerate() {
        let dev = kernel_dev(d.major, d.minor);
        if devices[..i]
            .iter()
            .any(|o| kernel_dev(o.major, o.minor) == dev)
        {
            return Err(ProbeError::Invalid(format!(
                "{} ({}:{}) twice",
                d.name, d.major, d.minor
            )));
        }
        let mut flags = 0;
        if d.slots > 0 {
            flags |= watch::ACCESS;
        }
        if d.rzram {
            flags |= watch::RZRAM;
        }
        match d.latency {
            Some(LatencyKind::Bio) => flags |= watch::BIO_LATENCY,
            Some(LatencyKind::Request) => flags |= watch::RQ_LATENCY,
            None => {}
        }
        if flags == 0 {
            return Err(ProbeError::Invalid(format!(
                "{}: neither access tracking (no slots), latency nor rzram events asked for",
                d.name
            )));
        }
        table.devs[i] = WatchedDev {
            dev,
            flags,
            slot_base: base,
            slot_count: d.slots,
        };
        base = base.checked_add(d.slots).ok_or_else(|| {
            ProbeError::Invalid(format!("{}: more than 2^32 slots in total", d.name))
        })?;
    }
    table.count = devices.len() as u32;
    Ok((table, base))
}

/// The per-slot array, mapped read-only into our memory.
struct SlotsMmap {
    ptr: *const SlotState,
    len: usize,
    map_len: usize,
}

impl SlotsMmap {
    fn new(data: &MapData, entries: u32) -> Result<Self, ProbeError> {
        let len = entries as usize;
        let page = crate::commands::page_size() as usize;
        let map_len = (len * size_of::<SlotState>()).next_multiple_of(page);
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: mapping a BPF array map created with BPF_F_MMAPABLE: the
        // kernel backs it with `map_len` bytes (value size times entries,
        // page-rounded); a shared read-only mapping of a valid fd with no
        // address hint has no other preconditions.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(classify(
                &format!("mmap of the {} map", map::SLOTS),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(SlotsMmap {
            ptr: ptr.cast(),
            len,
            map_len,
        })
    }

    /// Copies slots `range` out of the shared mapping.
    fn read(&self, first: usize, count: usize) -> Vec<SlotState> {
        let end = (first + count).min(self.len);
        (first.min(end)..end)
            // SAFETY: `i < len` so the element lies inside the mapping, which
            // lives as long as `self`; the kernel writes it concurrently, so
            // read it volatile (aligned u64/u32 stores, no tearing on the
            // fields themselves).
            .map(|i| unsafe { std::ptr::read_volatile(self.ptr.add(i)) })
            .collect()
    }
}

impl Drop for SlotsMmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped, once.
        unsafe { libc::munmap(self.ptr.cast_mut().cast(), self.map_len) };
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

/// CLOCK_MONOTONIC in ns (the clock of the probes' timestamps).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Access tracking and latency probes on a set of devices. Detaches when
/// dropped.
pub struct Probes {
    // Field order is drop order: unmap before the maps go away.
    slots: Option<SlotsMmap>,
    ebpf: Ebpf,
    devices: Vec<WatchSpec>,
    table: WatchTable,
    flavour: Flavour,
    attached: Vec<ProgSpec>,
    /// Keeps the kernel's BPF run-time stats on, or why they are not.
    stats: Result<OwnedFd, String>,
    /// Whether rzram's programs are attached, or why not.
    rzram: Result<(), String>,
}

impl Probes {
    /// Loads and attaches what `devices` need: access tracking for devices
    /// with slots, bio or request latency for the others' kinds.
    pub fn attach(devices: &[WatchSpec], opts: ProbeOptions) -> Result<Self, ProbeError> {
        let (table, total_slots) = watch_table(devices)?;
        let rz_wanted = devices.iter().any(|d| d.rzram);
        // The same table without rzram: used when its programs cannot attach.
        let mut plain_table = table;
        for d in &mut plain_table.devs {
            d.flags &= !watch::RZRAM;
        }
        let offsets = kernel_offsets(&Btf::from_sys_fs()?)?;
        let mut wanted: Vec<ProgSpec> = Vec::new();
        if total_slots > 0 {
            wanted.extend(ACCESS_PROGS);
        }
        if devices.iter().any(|d| d.latency == Some(LatencyKind::Bio)) {
            wanted.extend(BIO_LATENCY_PROGS);
        }
        if devices
            .iter()
            .any(|d| d.latency == Some(LatencyKind::Request))
        {
            wanted.extend(RQ_LATENCY_PROGS);
        }
        if opts.cost_floor {
            wanted.push(COST_FLOOR_PROG);
        }
        // Best effort: enabling stats needs CAP_SYS_ADMIN, which the probes
        // themselves do not (CAP_BPF and CAP_PERFMON do).
        let stats = if opts.stats {
            aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| {
                classify("enabling BPF run-time stats", e)
                    .to_string()
                    .replace("the kernel refused BPF", "the kernel refused")
            })
        } else {
            Err("not asked for".into())
        };
        // Loads the object and attaches `wanted`, then (with `rz`) rzram's
        // programs; an rzram failure comes back apart from the rest.
        type Loaded = (Ebpf, Result<(), ProbeError>);
        let load_with = |flavour, table: &WatchTable, rz: bool| -> Result<Loaded, ProbeError> {
            let wb_time_entries = if rz { total_slots.max(1) } else { 1 };
            let mut ebpf = EbpfLoader::new()
                .override_global(GLOBAL_OFFSETS, &offsets, true)
                .override_global(GLOBAL_WATCH, table, true)
                .map_max_entries(map::SLOTS, total_slots.max(1))
                .map_max_entries(map::RZ_WB_TIME, wb_time_entries)
                .load(PROBES_OBJECT)
                .map_err(|e| classify("loading the object", e))?;
            let btf = match flavour {
                Flavour::TpBtf => Some(
                    aya::Btf::from_sys_fs()
                        .map_err(|e| classify("reading kernel BTF for tp_btf", e))?,
                ),
                Flavour::RawTp => None,
            };
            for spec in &wanted {
                attach_one(&mut ebpf, spec, flavour, btf.as_ref())?;
            }
            let rz_result = if rz {
                RZRAM_PROGS
                    .iter()
                    .try_for_each(|spec| attach_one(&mut ebpf, spec, Flavour::RawTp, None))
            } else {
                Ok(())
            };
            Ok((ebpf, rz_result))
        };
        let load = |flavour| -> Result<(Ebpf, Result<(), String>), ProbeError> {
            if !rz_wanted {
                let (ebpf, _) = load_with(flavour, &plain_table, false)?;
                return Ok((ebpf, Err("no rzram device watched".into())));
            }
            if !rzram_loaded() {
                let (ebpf, _) = load_with(flavour, &plain_table, false)?;
                return Ok((ebpf, Err("the rzram module is not loaded".into())));
            }
            match load_with(flavour, &table, true)? {
                (ebpf, Ok(())) => Ok((ebpf, Ok(()))),
                (ebpf, Err(e)) => {
                    // Detach everything and start over without rzram, so
                    // block_bio_queue keeps the rzram devices' slots.
                    drop(ebpf);
                    let (ebpf, _) = load_with(flavour, &plain_table, false)?;
                    Ok((ebpf, Err(e.to_string())))
                }
            }
        };
        let ((ebpf, rzram), flavour) = match opts.flavour {
            Some(f) => (load(f)?, f),
            None => match load(Flavour::TpBtf) {
                Ok(e) => (e, Flavour::TpBtf),
                Err(btf_err) => match load(Flavour::RawTp) {
                    Ok(e) => (e, Flavour::RawTp),
                    Err(ProbeError::Failed { what, detail }) => {
                        return Err(ProbeError::Failed {
                            what,
                            detail: format!("{detail} (tp_btf failed too: {btf_err})"),
                        });
                    }
                    // Permission problems look the same both ways: report the
                    // raw tracepoint attempt, which needs less of the kernel.
                    Err(e) => return Err(e),
                },
            },
        };
        let slots = if total_slots > 0 {
            let data = match ebpf.map(map::SLOTS) {
                Some(Map::Array(data)) => data,
                _ => {
                    return Err(failed(
                        "finding the map",
                        format!("no array {}", map::SLOTS),
                    ));
                }
            };
            Some(SlotsMmap::new(data, total_slots)?)
        } else {
            None
        };
        let table = if rzram.is_ok() {
            wanted.extend(RZRAM_PROGS);
            table
        } else {
            plain_table
        };
        Ok(Probes {
            slots,
            ebpf,
            devices: devices.to_vec(),
            table,
            flavour,
            attached: wanted,
            stats,
            rzram,
        })
    }

    /// The program type in use.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// `Ok` if rzram's programs are attached (rzram devices get
    /// [`DeviceSnapshot::rzram`]), else why not: no rzram device watched,
    /// the module not loaded, or the kernel's error. Not attaching them is
    /// not an error of [`Self::attach`].
    pub fn rzram_status(&self) -> Result<(), &str> {
        self.rzram.as_ref().map(|_| ()).map_err(String::as_str)
    }

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

    /// The watched devices, in watch-index order.
    pub fn devices(&self) -> &[WatchSpec] {
        &self.devices
    }

    /// `Ok` if these probes keep the kernel's BPF run-time stats enabled,
    /// else why not (then [`Self::costs`] only grows while
    /// `sysctl kernel.bpf_stats_enabled=1`).
    pub fn stats_enabled(&self) -> Result<(), &str> {
        self.stats.as_ref().map(|_| ()).map_err(String::as_str)
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
    /// empty without access tracking.
    pub fn slots(&self, dev: usize) -> Vec<SlotState> {
        match (&self.slots, self.table.devs.get(dev)) {
            (Some(m), Some(w)) if dev < self.devices.len() => {
                m.read(w.slot_base as usize, w.slot_count as usize)
            }
            _ => Vec::new(),
        }
    }

    /// Reads all maps.
    pub fn snapshot(&self) -> Result<Snapshot, ProbeError> {
        let mut devices = Vec::with_capacity(self.devices.len());
        for (i, spec) in self.devices.iter().enumerate() {
            let w = self.table.devs[i];
            let (access, slot_ages) = if w.flags & watch::ACCESS != 0 {
                let counters: Vec<DevCounters> = self.per_cpu(map::DEV_COUNTERS, i as u32)?;
                let slots = self.slots(i);
                let ages = SlotAgeHistogram::from_slots(&slots, monotonic_ns());
                (Some(AccessCounts::from_per_cpu(&counters)), Some(ages))
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

/// Whether rzram.ko is loaded (its tracepoints exist).
fn rzram_loaded() -> bool {
    Path::new("/sys/module/rzram").exists()
}

fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProgSpec,
    flavour: Flavour,
    btf: Option<&aya::Btf>,
) -> Result<(), ProbeError> {
    let name = spec.name(flavour);
    let tp = spec.tracepoint;
    let p: &mut Program = ebpf.program_mut(name).ok_or_else(|| {
        failed(
            "finding the program",
            format!("{name} is not in the object"),
        )
    })?;
    match (flavour, btf) {
        (Flavour::TpBtf, Some(btf)) => {
            let p: &mut BtfTracePoint = p.try_into().map_err(|e| classify("program type", e))?;
            p.load(tp, btf)
                .map_err(|e| classify(&format!("loading {name} (tp_btf/{tp})"), e))?;
            p.attach()
                .map_err(|e| classify(&format!("attaching {name} to tp_btf/{tp}"), e))?;
        }
        (Flavour::TpBtf, None) => return Err(failed("loading tp_btf", "no kernel BTF")),
        (Flavour::RawTp, _) => {
            let p: &mut RawTracePoint = p.try_into().map_err(|e| classify("program type", e))?;
            p.load()
                .map_err(|e| classify(&format!("loading {name} (raw_tp/{tp})"), e))?;
            p.attach(tp)
                .map_err(|e| classify(&format!("attaching {name} to raw_tp/{tp}"), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::btf::BtfBuilder;

    /// BTF with the structs the probes read, laid out like Linux 6.18's
    /// (bi_iter inside struct bio, cmd_flags and part in struct request);
    /// `with_part` false leaves `request.part` out.
    fn block_btf(with_part: bool) -> Btf {
        let mut b = BtfBuilder::new();
        let u32_ = b.int("unsigned int", 4);
        let u64_ = b.int("long long unsigned int", 8);
        let bdev = b.record(
            "block_device",
            false,
            64,
            &[("bd_start_sect", u64_, 0), ("bd_dev", u32_, 52)],
        );
        let bdev_p = b.ptr(bdev);
        let iter = b.record(
            "bvec_iter",
            false,
            20,
            &[
                ("bi_sector", u64_, 0),
                ("bi_size", u32_, 8),
                ("bi_idx", u32_, 12),
            ],
        );
        // bi_opf inside an anonymous union, to exercise anonymous members.
        let opf = b.record("", true, 4, &[("bi_opf", u32_, 0)]);
        b.record(
            "bio",
            false,
            120,
            &[
                ("bi_next", u64_, 0),
                ("bi_bdev", bdev_p, 8),
                ("", opf, 16),
                ("bi_iter", iter, 32),
            ],
        );
        let mut rq: Vec<(&str, u32, u32)> = vec![("q", u64_, 0), ("cmd_flags", u32_, 24)];
        if with_part {
            rq.push(("part", bdev_p, 88));
        }
        b.record("request", false, 256, &rq);
        Btf::parse(&b.build()).unwrap()
    }

    #[test]
    fn offsets_resolve_from_btf() {
        let o = kernel_offsets(&block_btf(true)).unwrap();
        assert_eq!(
            o,
            KernelOffsets {
                bio_bi_bdev: 8,
                bio_bi_opf: 16,
                bio_bi_sector: 32,
                bio_bi_size: 40,
                bdev_bd_dev: 52,
                rq_part: 88,
                rq_cmd_flags: 24,
                _pad: 0,
            }
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        let e = kernel_offsets(&block_btf(false)).unwrap_err();
        assert!(
            matches!(&e, BtfError::NoMember { strukt, member } if strukt == "request" && member == "part"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "struct request has no member part in the kernel's BTF"
        );
        // Through the loader's error type it still says what is missing.
        let p = ProbeError::from(e);
        assert!(p.to_string().contains("no member part"), "{p}");
    }

    /// Offsets of another kernel's BTF: the Linux 7.3 vmlinux built by
    /// `cargo xtask kernel` (or $ZRAMCTL_VMLINUX), if present. 7.3 moved
    /// bi_iter (a `bi_io_vec` pointer now precedes it); the probes only
    /// work there because the offsets come from BTF.
    #[test]
    fn offsets_of_the_vm_kernel() {
        use object::{Object as _, ObjectSection as _};
        let path = std::env::var_os("ZRAMCTL_VMLINUX")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::Path::new(&h).join(".cache/zramctl/build/vmlinux"))
            });
        let Some(data) = path.as_ref().and_then(|p| std::fs::read(p).ok()) else {
            return eprintln!("skipped: no vmlinux at {path:?} (cargo xtask kernel builds one)");
        };
        // The kernel may be being rebuilt right now: skip on a partial file.
        let Some(btf) = object::File::parse(&*data)
            .ok()
            .and_then(|elf| elf.section_by_name(".BTF")?.data().ok().map(Btf::parse))
        else {
            return eprintln!("skipped: {path:?} is not (yet) an ELF file with .BTF");
        };
        let o = kernel_offsets(&btf.unwrap()).unwrap();
        eprintln!("{path:?}: {o:?}");
        assert_eq!(o.bio_bi_bdev, 8);
        assert_eq!(o.bio_bi_size, o.bio_bi_sector + 8);
        assert!(o.bio_bi_sector > o.bio_bi_opf, "{o:?}");
    }

    #[test]
    fn watch_tables() {
        let d = |name: &str, minor, slots, latency| WatchSpec {
            name: name.into(),
            major: 253,
            minor,
            slots,
            latency,
            rzram: false,
        };
        let (t, total) = watch_table(&[
            d("zram0", 0, 100, Some(LatencyKind::Bio)),
            d("zram1", 1, 50, None),
            d("loop0", 2, 0, Some(LatencyKind::Request)),
        ])
        .unwrap();
        assert_eq!(total, 150);
        assert_eq!(t.count, 3);
        assert_eq!(
            t.devs[0],
            WatchedDev {
                dev: kernel_dev(253, 0),
                flags: watch::ACCESS | watch::BIO_LATENCY,
                slot_base: 0,
                slot_count: 100
            }
        );
        assert_eq!((t.devs[1].flags, t.devs[1].slot_base), (watch::ACCESS, 100));
        assert_eq!(
            (t.devs[2].flags, t.devs[2].slot_count),
            (watch::RQ_LATENCY, 0)
        );
        // An rzram device: its slots come from rzram's tracepoint.
        let rz = WatchSpec {
            rzram: true,
            ..d("rzram1", 7, 64, Some(LatencyKind::Bio))
        };
        let (t, _) = watch_table(std::slice::from_ref(&rz)).unwrap();
        assert_eq!(
            t.devs[0].flags,
            watch::ACCESS | watch::BIO_LATENCY | watch::RZRAM
        );
        // rzram events alone are something to watch.
        let (t, _) = watch_table(&[WatchSpec {
            slots: 0,
            latency: None,
            ..rz
        }])
        .unwrap();
        assert_eq!(t.devs[0].flags, watch::RZRAM);
        let err = |devs: &[WatchSpec]| watch_table(devs).unwrap_err().to_string();
        assert!(err(&[]).contains("no devices"));
        assert!(err(&[d("zram0", 0, 0, None)]).contains("neither"));
        assert!(err(&[d("a", 0, 1, None), d("b", 0, 1, None)]).contains("twice"));
        let many: Vec<_> = (0..=MAX_DEVS as u32).map(|i| d("z", i, 1, None)).collect();
        assert!(err(&many).contains("at most 8"));
        assert!(err(&[d("a", 0, u32::MAX, None), d("b", 1, 1, None)]).contains("2^32"));
    }

    #[test]
    fn block_dev_info_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path();
        let mk = |rel: &str| std::fs::create_dir_all(sys.join(rel)).unwrap();
        mk("devices/virtual/block/loop3/mq/0");
        mk("devices/pci/block/nvme0n1/mq/0");
        mk("devices/pci/block/nvme0n1/nvme0n1p2");
        std::fs::write(
            sys.join("devices/pci/block/nvme0n1/nvme0n1p2/partition"),
            "2",
        )
        .unwrap();
        mk("devices/virtual/block/zram0");
        mk("dev/block");
        for (link, target) in [
            ("7:3", "devices/virtual/block/loop3"),
            ("259:2", "devices/pci/block/nvme0n1/nvme0n1p2"),
            ("253:0", "devices/virtual/block/zram0"),
        ] {
            std::os::unix::fs::symlink(sys.join(target), sys.join("dev/block").join(link)).unwrap();
        }
        let info = |ma, mi| BlockDevInfo::from_numbers(sys, ma, mi).unwrap();
        assert_eq!(
            info(7, 3),
            BlockDevInfo {
                name: "loop3".into(),
                major: 7,
                minor: 3,
                blk_mq: true
            }
        );
        let p = info(259, 2);
        assert_eq!(p.name, "nvme0n1p2");
        assert_eq!(
            p.latency_kind(),
            LatencyKind::Request,
            "a partition of a blk-mq disk"
        );
        assert_eq!(info(253, 0).latency_kind(), LatencyKind::Bio);
        let e = BlockDevInfo::from_numbers(sys, 8, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("8:0"), "{e}");
    }

    /// `BPF_PROG_TEST_RUN` of a raw tracepoint program with `args` as its
    /// tracepoint arguments; the program's return value.
    fn test_run(ebpf: &Ebpf, name: &str, args: &[u64]) -> u32 {
        #[repr(C)]
        #[derive(Default)]
        struct TestRun {
            prog_fd: u32,
            retval: u32,
            data_size_in: u32,
            data_size_out: u32,
            data_in: u64,
            data_out: u64,
            repeat: u32,
            duration: u32,
            ctx_size_in: u32,
            ctx_size_out: u32,
            ctx_in: u64,
            ctx_out: u64,
            flags: u32,
            cpu: u32,
            batch_size: u32,
            _pad: u32,
        }
        let p: &RawTracePoint = ebpf.program(name).unwrap().try_into().unwrap();
        let mut attr = TestRun {
            prog_fd: p.fd().unwrap().as_fd().as_raw_fd() as u32,
            ctx_size_in: (args.len() * 8) as u32,
            ctx_in: args.as_ptr() as u64,
            ..Default::default()
        };
        const BPF_PROG_TEST_RUN: libc::c_long = 10;
        // SAFETY: bpf(BPF_PROG_TEST_RUN) reads `attr` (its size given) and
        // `args` (ctx_size_in bytes), both alive for the call, and writes
        // only `attr.retval`/`duration`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_TEST_RUN,
                &raw mut attr,
                size_of::<TestRun>(),
            )
        };
        assert_eq!(
            r,
            0,
            "test run of {name}: {}",
            std::io::Error::last_os_error()
        );
        attr.retval
    }

    /// rzram's programs on any kernel, without rzram: loaded (the verifier
    /// accepts them) and run by `BPF_PROG_TEST_RUN` with tracepoint
    /// arguments; what they count is checked and their cost per event
    /// printed (kernel BPF stats; `--nocapture` shows it). As root only.
    #[test]
    fn rzram_programs_count_and_cost() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return eprintln!("skipped: not root");
        }
        let offsets = match Btf::from_sys_fs().map(|b| kernel_offsets(&b)) {
            Ok(Ok(o)) => o,
            e => return eprintln!("skipped: no kernel BTF: {e:?}"),
        };
        const SLOTS: u32 = 4096;
        let spec = WatchSpec {
            name: "rzram9".into(),
            major: 251,
            minor: 9,
            slots: SLOTS,
            latency: None,
            rzram: true,
        };
        let (table, total) = watch_table(&[spec]).unwrap();
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_OFFSETS, &offsets, true)
            .override_global(GLOBAL_WATCH, &table, true)
            .map_max_entries(map::SLOTS, total)
            .map_max_entries(map::RZ_WB_TIME, total)
            .load(PROBES_OBJECT)
            .unwrap();
        let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).unwrap();
        for name in RZRAM_PROGS
            .iter()
            .map(|s| s.raw)
            .chain([prog::COST_FLOOR_RAW])
        {
            let p: &mut RawTracePoint = ebpf.program_mut(name).unwrap().try_into().unwrap();
            p.load()
                .unwrap_or_else(|e| panic!("{name}: {}", classify("load", e)));
        }
        let dev = u64::from(kernel_dev(251, 9));
        let other = u64::from(kernel_dev(251, 10));
        const N: u64 = 20_000;
        let eio = (-i64::from(libc::EIO)) as u64;
        for i in 0..N {
            // Random-ish slots, like a swap workload.
            let slot = i.wrapping_mul(2_654_435_761) % u64::from(SLOTS);
            test_run(&ebpf, prog::RZ_SLOT_ACCESS, &[dev, slot, i % 3]);
            test_run(&ebpf, prog::RZ_WB_SUBMIT, &[dev, slot, i]);
            let status = if i % 10 == 0 { eio } else { 0 };
            test_run(&ebpf, prog::RZ_WB_COMPLETE, &[dev, slot, i, 5000, status]);
            test_run(&ebpf, prog::RZ_BD_READ, &[dev, slot, i, 100_000, 0]);
            test_run(&ebpf, prog::COST_FLOOR_RAW, &[0]);
        }
        // Another device and a slot beyond the disk.
        test_run(&ebpf, prog::RZ_SLOT_ACCESS, &[other, 0, 0]);
        test_run(&ebpf, prog::RZ_SLOT_ACCESS, &[dev, u64::from(SLOTS), 1]);
        for name in RZRAM_PROGS
            .iter()
            .map(|s| s.raw)
            .chain([prog::COST_FLOOR_RAW])
        {
            let info = ebpf.program(name).unwrap().info().unwrap();
            let ns = info.run_time().as_nanos() as f64 / info.run_count().max(1) as f64;
            eprintln!(
                "cost [test run] {name}: {} runs, {ns:.0} ns/event",
                info.run_count()
            );
        }

        let m = ebpf.map(map::RZ_COUNTERS).unwrap();
        let a: PerCpuArray<_, RzramCounters> = PerCpuArray::try_from(m).unwrap();
        let c = RzramCounts::from_per_cpu(&a.get(&0, 0).unwrap());
        // The slot beyond the disk is an event, untracked.
        assert_eq!(c.slot_reads + c.slot_writes + c.slot_frees, N + 1, "{c:?}");
        // i % 3 == 1 in 0..N, and the one beyond the disk.
        assert_eq!(c.slot_writes, (N + 1) / 3 + 1, "ops 0 1 2 in turn: {c:?}");
        assert_eq!(c.untracked, 1, "{c:?}");
        assert_eq!((c.wb_submitted, c.wb_completed), (N, N), "{c:?}");
        assert_eq!(c.wb_errors, N / 10, "{c:?}");
        assert_eq!(c.refaults, N, "{c:?}");
        // A slot's first refault can come before its first good writeback.
        assert_eq!(c.refault_errors, 0);
        let m = ebpf.map(map::RZ_HIST).unwrap();
        let h: PerCpuArray<_, LatHist> = PerCpuArray::try_from(m).unwrap();
        let hist =
            |kind| LatencyHistogram::from_per_cpu(&h.get(&rz_hist_index(0, kind), 0).unwrap());
        let wb = hist(rz_hist::WB_LATENCY);
        assert_eq!((wb.count, wb.sum_ns), (N, N * 5000));
        assert_eq!(wb.buckets[zramctl_common::lat_bucket(5000)], N);
        assert_eq!(hist(rz_hist::BD_READ_LATENCY).count, N);
        let age = hist(rz_hist::REFAULT_AGE_US);
        assert_eq!(age.count + c.refaults_no_wb_time, N, "{c:?}");
        assert!(age.count > N / 2, "{age:?}");
        let m = ebpf.map(map::SLOTS).unwrap();
        let slots: aya::maps::Array<_, SlotState> = aya::maps::Array::try_from(m).unwrap();
        let touched = (0..SLOTS)
            .map(|i| slots.get(&i, 0).unwrap())
            .filter(|s| s.last_time != 0)
            .count();
        assert!(touched > SLOTS as usize / 2, "{touched} slots touched");
        let events: u64 = (0..SLOTS)
            .map(|i| slots.get(&i, 0).unwrap())
            .map(|s| u64::from(s.reads + s.writes + s.discards))
            .sum();
        assert_eq!(events, N, "per-slot counts sum to the events");
    }

    #[test]
    fn embedded_object_has_program_map_and_globals() {
        let obj = aya_obj::Object::parse(PROBES_OBJECT).expect("embedded object parses");
        let prog = obj
            .programs
            .get(PROG_BIO_QUEUE)
            .expect("bio_queue program present");
        assert!(
            matches!(prog.section, aya_obj::ProgramSection::RawTracePoint),
            "bio_queue is a raw tracepoint: {:?}",
            prog.section
        );
        assert!(
            obj.maps.contains_key(MAP_BIO_COUNTS),
            "maps: {:?}",
            obj.maps.keys().collect::<Vec<_>>()
        );
        for spec in &RZRAM_PROGS {
            let p = &obj.programs[spec.raw];
            assert!(
                matches!(p.section, aya_obj::ProgramSection::RawTracePoint),
                "{} is raw_tp: {:?}",
                spec.raw,
                p.section
            );
            assert_eq!(spec.tp_btf, spec.raw, "rzram programs are raw_tp only");
            assert!(spec.raw.len() < 16, "{}: BPF names are 15 bytes", spec.raw);
        }
        let specs = ACCESS_PROGS
            .iter()
            .chain(&BIO_LATENCY_PROGS)
            .chain(&RQ_LATENCY_PROGS)
            .chain([&COST_FLOOR_PROG]);
        for spec in specs {
            let p = &obj.programs[spec.tp_btf];
            assert!(
                matches!(p.section, aya_obj::ProgramSection::BtfTracePoint),
                "{} is tp_btf: {:?}",
                spec.tp_btf,
                p.section
            );
            let p = &obj.programs[spec.raw];
            assert!(
                matches!(p.section, aya_obj::ProgramSection::RawTracePoint),
                "{} is raw_tp: {:?}",
                spec.raw,
                p.section
            );
        }
        for m in [
            map::SLOTS,
            map::DEV_COUNTERS,
            map::LAT_HIST,
            map::LAT_START,
            map::PROBE_STATS,
            map::RZ_COUNTERS,
            map::RZ_HIST,
            map::RZ_WB_TIME,
        ] {
            assert!(obj.maps.contains_key(m), "map {m} missing");
        }
        use object::{Object as _, ObjectSymbol as _};
        let elf = object::File::parse(PROBES_OBJECT).expect("ELF");
        for global in [GLOBAL_TARGET_DEV, GLOBAL_OFFSETS, GLOBAL_WATCH] {
            assert!(
                elf.symbols().any(|s| s.name() == Ok(global)),
                "global {global} missing"
            );
        }
        // A panic path (a failed bounds check) ends in an infinite loop or a
        // call that never returns; the verifier rejects both.
        let panics: Vec<_> = elf
            .symbols()
            .filter_map(|s| s.name().ok())
            .filter(|n| n.contains("panic"))
            .collect();
        assert!(panics.is_empty(), "panic paths linked in: {panics:?}");
    }
}

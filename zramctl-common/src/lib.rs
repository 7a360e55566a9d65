//! Types shared between the zramctl eBPF programs (`zramctl-ebpf`, built for
//! `bpfel-unknown-none`) and userspace (`zramctl`).
//!
//! Everything here is `#[repr(C)]`, `Copy` and free of pointers so that the
//! same bytes mean the same thing on both sides of a BPF map. With the `user`
//! feature the types implement [`aya::Pod`] so userspace can read them from
//! maps directly.
#![no_std]

/// Name of the raw tracepoint program that counts bios queued to one device.
pub const PROG_BIO_QUEUE: &str = "bio_queue";
/// Name of the per-CPU array map that holds [`BioCounts`] (one entry).
pub const MAP_BIO_COUNTS: &str = "BIO_COUNTS";
/// Name of the global holding the watched device number (`dev_t`, kernel encoding).
pub const GLOBAL_TARGET_DEV: &str = "TARGET_DEV";
/// Name of the global holding the [`KernelOffsets`] the programs read with.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
/// Name of the global holding the [`WatchTable`] (devices the probes watch).
pub const GLOBAL_WATCH: &str = "WATCH";

/// `REQ_OP_*` values from `include/linux/blk_types.h` (stable kernel ABI for tracing).
pub mod req_op {
    /// Mask of the operation bits in `bio->bi_opf`.
    pub const MASK: u32 = (1 << 8) - 1;
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
    pub const FLUSH: u32 = 2;
    pub const DISCARD: u32 = 3;
    pub const WRITE_ZEROES: u32 = 9;
}

/// Byte offsets of the kernel struct fields the probes read.
///
/// aya has no CO-RE relocations, so userspace reads these from the running
/// kernel's BTF (`/sys/kernel/btf/vmlinux`) at load time and hands them to the
/// programs as a global; one object then runs on any kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `offsetof(struct bio, bi_bdev)`
    pub bio_bi_bdev: u32,
    /// `offsetof(struct bio, bi_opf)`
    pub bio_bi_opf: u32,
    /// `offsetof(struct bio, bi_iter) + offsetof(struct bvec_iter, bi_sector)`
    pub bio_bi_sector: u32,
    /// `offsetof(struct bio, bi_iter) + offsetof(struct bvec_iter, bi_size)`
    pub bio_bi_size: u32,
    /// `offsetof(struct block_device, bd_dev)`
    pub bdev_bd_dev: u32,
    /// `offsetof(struct request, part)` (the `block_device` the request is for)
    pub rq_part: u32,
    /// `offsetof(struct request, cmd_flags)`
    pub rq_cmd_flags: u32,
    /// Explicit padding so the layout has no implicit holes.
    pub _pad: u32,
}

/// Programs of the access and latency probes. Each exists twice: as a
/// BTF-enabled tracepoint (`tp_btf`, reads kernel memory with direct loads)
/// and, with the `_raw` suffix, as a raw tracepoint (reads through
/// `bpf_probe_read_kernel`) for kernels that refuse the former.
pub mod prog {
    /// `block_bio_queue`: per-slot access tracking and per-device counters.
    pub const SLOT_ACCESS: &str = "slot_access";
    pub const SLOT_ACCESS_RAW: &str = "slot_access_raw";
    /// `block_bio_queue`: start time of bios to bio-based devices.
    pub const BIO_START: &str = "bio_start";
    pub const BIO_START_RAW: &str = "bio_start_raw";
    /// `block_bio_complete`: bio latency into the histograms.
    pub const BIO_DONE: &str = "bio_done";
    pub const BIO_DONE_RAW: &str = "bio_done_raw";
    /// `block_rq_issue`: start time of requests to blk-mq devices.
    pub const RQ_START: &str = "rq_start";
    pub const RQ_START_RAW: &str = "rq_start_raw";
    /// `block_rq_complete`: request latency into the histograms.
    pub const RQ_DONE: &str = "rq_done";
    pub const RQ_DONE_RAW: &str = "rq_done_raw";
    /// `block_bio_queue`: does nothing; its cost per event is the floor
    /// every program pays (dispatch, the BPF stats' own clock reads).
    pub const COST_FLOOR: &str = "cost_floor";
    pub const COST_FLOOR_RAW: &str = "cost_floor_raw";
    /// rzram's module tracepoints, raw tracepoints only (their arguments
    /// are plain integers; `tp_btf` would need the module's BTF). Attached
    /// only while `rzram.ko` is loaded and an rzram device is watched.
    /// `rzram_slot_access`: per-slot access tracking of rzram devices.
    pub const RZ_SLOT_ACCESS: &str = "rz_slot_access";
    /// `rzram_wb_submit`: pages submitted for writeback.
    pub const RZ_WB_SUBMIT: &str = "rz_wb_submit";
    /// `rzram_wb_complete`: writeback latency, errors, per-slot writeback time.
    pub const RZ_WB_COMPLETE: &str = "rz_wb_complete";
    /// `rzram_bd_read`: refaults (reads of written-back pages) with the
    /// time since their writeback, and backing-read latency.
    pub const RZ_BD_READ: &str = "rz_bd_read";
}

pub mod trace;

/// rzram's tracepoints (`include/trace/events/rzram.h`, TRACE_SYSTEM rzram).
pub mod rzram_tp {
    pub const SLOT_ACCESS: &str = "rzram_slot_access";
    pub const WB_SUBMIT: &str = "rzram_wb_submit";
    pub const WB_COMPLETE: &str = "rzram_wb_complete";
    pub const BD_READ: &str = "rzram_bd_read";
    /// `rzram_slot_access` `op` values (`RZRAM_ACCESS_*`). They equal the
    /// [`op`](super::op) classes they are counted as (free as discard).
    pub const ACCESS_READ: u32 = 0;
    pub const ACCESS_WRITE: u32 = 1;
    pub const ACCESS_FREE: u32 = 2;
}

/// Maps of the access and latency probes.
pub mod map {
    /// Array of [`SlotState`](super::SlotState), one entry per slot of every
    /// watched zram device (see [`WatchedDev::slot_base`](super::WatchedDev));
    /// `max_entries` is set at load time from the disk sizes. Mmapable.
    pub const SLOTS: &str = "SLOTS";
    /// Per-CPU array of [`DevCounters`](super::DevCounters), indexed by watch index.
    pub const DEV_COUNTERS: &str = "DEV_COUNTERS";
    /// Per-CPU array of [`LatHist`](super::LatHist), indexed by
    /// [`hist_index`](super::hist_index).
    pub const LAT_HIST: &str = "LAT_HIST";
    /// Hash map: bio or request pointer -> [`LatStart`](super::LatStart).
    pub const LAT_START: &str = "LAT_START";
    /// Per-CPU array of [`ProbeStats`](super::ProbeStats) (one entry).
    pub const PROBE_STATS: &str = "PROBE_STATS";
    /// Per-CPU array of [`RzramCounters`](super::RzramCounters), indexed by watch index.
    pub const RZ_COUNTERS: &str = "RZ_COUNTERS";
    /// Per-CPU array of [`LatHist`](super::LatHist), indexed by
    /// [`rz_hist_index`](super::rz_hist_index).
    pub const RZ_HIST: &str = "RZ_HIST";
    /// Array of u64, one per slot (indexed like [`SLOTS`]): CLOCK_MONOTONIC
    /// ns of the slot's last successful writeback, 0 if none seen. Sized to
    /// the slots when an rzram device is watched, else 1 entry.
    pub const RZ_WB_TIME: &str = "RZ_WB_TIME";
}

/// `flags` of `BPF_MAP_TYPE_ARRAY` maps that userspace may `mmap` (`BPF_F_MMAPABLE`).
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Maximum number of devices one set of probes watches.
pub const MAX_DEVS: usize = 8;
/// Entries of the in-flight map ([`map::LAT_START`]).
pub const LAT_START_ENTRIES: u32 = 16384;
/// 512-byte sectors per 4 KiB zram slot (`PAGE_SHIFT - SECTOR_SHIFT` on 4K-page kernels).
pub const SECTORS_PER_SLOT_SHIFT: u32 = 3;
/// A bio touching more slots than this (only discards get that large) has
/// the excess counted in [`DevCounters::untracked_pages`] instead of
/// updating every slot, which keeps the probe's worst case bounded.
pub const MAX_SLOTS_PER_BIO: u32 = 1 << 16;

/// What the probes do for a watched device ([`WatchedDev::flags`]).
pub mod watch {
    /// Track per-slot accesses (`block_bio_queue`, zram devices).
    pub const ACCESS: u32 = 1;
    /// Bio latency: `block_bio_queue` to `block_bio_complete` (bio-based
    /// devices such as zram; blk-mq devices never trace bio completion).
    pub const BIO_LATENCY: u32 = 2;
    /// Request latency: `block_rq_issue` to `block_rq_complete` (blk-mq
    /// devices such as loop, virtio-blk, nvme).
    pub const RQ_LATENCY: u32 = 4;
    /// An rzram device whose tracepoints are attached: its slot states are
    /// kept by `rzram_slot_access` (which also sees swap slot frees and the
    /// reads of partial-page writes), so `block_bio_queue` only counts its
    /// bios and pages and leaves the slots alone (no double counting). Also
    /// enables the writeback and refault programs for it.
    pub const RZRAM: u32 = 8;
}

/// One watched device.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchedDev {
    /// Kernel `dev_t` (see [`kernel_dev`]).
    pub dev: u32,
    /// Bits from [`watch`].
    pub flags: u32,
    /// First index of this device's slots in [`map::SLOTS`].
    pub slot_base: u32,
    /// Number of slots (disksize / 4096); 0 without [`watch::ACCESS`].
    pub slot_count: u32,
}

/// The devices the probes watch; a global set by userspace at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchTable {
    pub devs: [WatchedDev; MAX_DEVS],
    /// Entries of `devs` in use.
    pub count: u32,
    /// Explicit padding so the layout has no implicit holes.
    pub _pad: u32,
}

/// [`SlotState::last_time`] is CLOCK_MONOTONIC ns shifted right by this.
pub const SLOT_TIME_SHIFT: u32 = 26;

/// Access state of one zram slot (one 4 KiB page of the disk). 16 bytes so
/// that a slot never straddles two cache lines: with random access over a
/// large disk, the cache miss on the slot is most of the probe's cost.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotState {
    /// CLOCK_MONOTONIC at the last read, write or discard, in units of
    /// 2^[`SLOT_TIME_SHIFT`] ns (about 67 ms; the clock is read once per
    /// scheduler tick); 0 if none since the probes were attached (the clock
    /// is past one unit long before anything can attach). Wraps after 9
    /// years of uptime.
    pub last_time: u32,
    /// The counters follow in [`op`] class order: `reads` is u32 word
    /// 1 + `op::READ`, `writes` 1 + `op::WRITE`, `discards` 1 + `op::DISCARD`.
    pub reads: u32,
    pub writes: u32,
    /// Discards and write-zeroes (zram frees the slot for both).
    pub discards: u32,
}

/// Operation classes the counters and histograms are split by.
pub mod op {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    /// Discard and write-zeroes.
    pub const DISCARD: usize = 2;
    /// Flush and everything else.
    pub const OTHER: usize = 3;
    /// Number of classes.
    pub const COUNT: usize = 4;
    /// Names, by class index.
    pub const NAMES: [&str; COUNT] = ["read", "write", "discard", "other"];
}

/// Class ([`op`]) of a `bi_opf` / `cmd_flags` value.
#[inline(always)]
pub const fn op_class(opf: u32) -> usize {
    match opf & req_op::MASK {
        req_op::READ => op::READ,
        req_op::WRITE => op::WRITE,
        req_op::DISCARD | req_op::WRITE_ZEROES => op::DISCARD,
        _ => op::OTHER,
    }
}

/// Per-device counters kept by the access probe (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevCounters {
    /// Bios queued, by [`op`] class.
    pub bios: [u64; op::COUNT],
    /// Pages (slots) those bios touch, by [`op`] class.
    pub pages: [u64; op::COUNT],
    /// Pages counted in `pages` whose slot state was not updated: beyond
    /// [`MAX_SLOTS_PER_BIO`] in one bio, or beyond the slots sized at load.
    pub untracked_pages: u64,
}

impl DevCounters {
    /// Adds `other` into `self` (used to fold per-CPU values).
    pub fn accumulate(&mut self, other: &Self) {
        for i in 0..op::COUNT {
            self.bios[i] += other.bios[i];
            self.pages[i] += other.pages[i];
        }
        self.untracked_pages += other.untracked_pages;
    }
}

/// Buckets of a latency histogram. Bucket 0 holds 0 and 1 ns; bucket `k`
/// (`k` >= 1) holds `[2^k, 2^(k+1))` ns; the last bucket also holds
/// everything larger (2^39 ns is about 9 minutes).
pub const LAT_BUCKETS: usize = 40;

/// Bucket of a latency in ns: floor(log2(ns)), clamped to the histogram.
#[inline(always)]
pub const fn lat_bucket(ns: u64) -> usize {
    if ns < 2 {
        return 0;
    }
    let b = (63 - ns.leading_zeros()) as usize;
    if b >= LAT_BUCKETS { LAT_BUCKETS - 1 } else { b }
}

/// Index in [`map::LAT_HIST`] of the histogram for watch index `dev` and class `op`.
#[inline(always)]
pub const fn hist_index(dev: usize, op: usize) -> u32 {
    (dev * op::COUNT + op) as u32
}

/// Entries of [`map::LAT_HIST`].
pub const LAT_HIST_ENTRIES: u32 = (MAX_DEVS * op::COUNT) as u32;

/// A log2 latency histogram (per CPU in the map), the shape of bcc's biolatency.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatHist {
    pub buckets: [u64; LAT_BUCKETS],
    /// Completions recorded (the sum of `buckets`).
    pub count: u64,
    /// Sum of all latencies, ns.
    pub sum_ns: u64,
}

impl Default for LatHist {
    fn default() -> Self {
        LatHist {
            buckets: [0; LAT_BUCKETS],
            count: 0,
            sum_ns: 0,
        }
    }
}

impl LatHist {
    /// Adds `other` into `self` (used to fold per-CPU values).
    pub fn accumulate(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += *b;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
    }
}

/// Histograms the rzram programs keep per watched device ([`map::RZ_HIST`]).
pub mod rz_hist {
    /// `rzram_wb_complete` latency (bio submit to end_io), ns, every status.
    pub const WB_LATENCY: usize = 0;
    /// `rzram_bd_read` latency, ns.
    pub const BD_READ_LATENCY: usize = 1;
    /// Time from a slot's writeback completion to its refault, in
    /// **microseconds** (so the log2 buckets reach 2^39 us, about 6 days).
    pub const REFAULT_AGE_US: usize = 2;
    /// Histograms per device.
    pub const COUNT: usize = 3;
}

/// Index in [`map::RZ_HIST`] of histogram `kind` ([`rz_hist`]) of watch index `dev`.
#[inline(always)]
pub const fn rz_hist_index(dev: usize, kind: usize) -> u32 {
    (dev * rz_hist::COUNT + kind) as u32
}

/// Entries of [`map::RZ_HIST`].
pub const RZ_HIST_ENTRIES: u32 = (MAX_DEVS * rz_hist::COUNT) as u32;

/// What the rzram programs count per device (per CPU in the map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RzramCounters {
    /// `rzram_slot_access` events by op: read, write, free (indexed by
    /// [`rzram_tp`]`::ACCESS_*`; the fourth is unused).
    pub slot_events: [u64; 4],
    /// Slot events whose index is beyond the slots sized at load.
    pub untracked: u64,
    /// `rzram_wb_submit` events: pages submitted for writeback.
    pub wb_submitted: u64,
    /// `rzram_wb_complete` events, every status.
    pub wb_completed: u64,
    /// `rzram_wb_complete` events with a negative status.
    pub wb_errors: u64,
    /// `rzram_bd_read` events: written-back pages read back (refaults).
    pub refaults: u64,
    /// `rzram_bd_read` events with a negative status.
    pub refault_errors: u64,
    /// Refaults of slots with no writeback seen since attach (no age).
    pub refaults_no_wb_time: u64,
}

impl RzramCounters {
    /// Adds `other` into `self` (used to fold per-CPU values).
    pub fn accumulate(&mut self, other: &Self) {
        for (a, b) in self.slot_events.iter_mut().zip(other.slot_events.iter()) {
            *a += *b;
        }
        self.untracked += other.untracked;
        self.wb_submitted += other.wb_submitted;
        self.wb_completed += other.wb_completed;
        self.wb_errors += other.wb_errors;
        self.refaults += other.refaults;
        self.refault_errors += other.refault_errors;
        self.refaults_no_wb_time += other.refaults_no_wb_time;
    }
}

/// Start of an in-flight bio or request ([`map::LAT_START`] value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatStart {
    /// `bpf_ktime_get_ns()` at queue/issue.
    pub start_ns: u64,
    /// Where to record the completion ([`hist_index`]).
    pub hist_index: u32,
    /// Explicit padding so the layout has no implicit holes.
    pub _pad: u32,
}

/// Health counters of the probes (per CPU in the map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeStats {
    /// Starts not recorded because [`map::LAT_START`] was full.
    pub lat_start_dropped: u64,
    /// Completions of watched devices with no recorded start (issued
    /// before the probes were attached, or dropped).
    pub lat_unmatched: u64,
}

impl ProbeStats {
    /// Adds `other` into `self` (used to fold per-CPU values).
    pub fn accumulate(&mut self, other: &Self) {
        self.lat_start_dropped += other.lat_start_dropped;
        self.lat_unmatched += other.lat_unmatched;
    }
}

/// Counts of bios queued to the watched device, by operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BioCounts {
    pub reads: u64,
    pub writes: u64,
    pub discards: u64,
    /// Flushes, write-zeroes and everything else.
    pub other: u64,
    /// Bytes carried by all counted bios.
    pub bytes: u64,
}

impl BioCounts {
    /// Sum of all bios counted.
    pub const fn total(&self) -> u64 {
        self.reads + self.writes + self.discards + self.other
    }

    /// Adds `other` into `self` (used to fold per-CPU values).
    pub fn accumulate(&mut self, other: &Self) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.discards += other.discards;
        self.other += other.other;
        self.bytes += other.bytes;
    }
}

/// The kernel's internal `dev_t` encoding (`MKDEV` in `include/linux/kdev_t.h`),
/// which is what `block_device::bd_dev` holds. It differs from userspace's
/// `makedev` encoding returned by `stat(2)`.
pub const fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | (minor & ((1 << 20) - 1))
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are `#[repr(C)]`, `Copy`, contain only integers and
    // have no padding bytes, so any bit pattern is a valid value.
    unsafe impl aya::Pod for super::BioCounts {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::KernelOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::WatchTable {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SlotState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DevCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LatHist {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LatStart {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProbeStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RzramCounters {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_matches_mkdev() {
        // zram0 is 253:0 on this machine's kernel; loop3 is 7:3.
        assert_eq!(kernel_dev(253, 0), 253 << 20);
        assert_eq!(kernel_dev(7, 3), (7 << 20) | 3);
    }

    #[test]
    fn layouts_have_no_holes() {
        use core::mem::size_of;
        assert_eq!(size_of::<KernelOffsets>(), 8 * 4);
        assert_eq!(size_of::<BioCounts>(), 5 * 8);
        assert_eq!(size_of::<WatchedDev>(), 4 * 4);
        assert_eq!(size_of::<WatchTable>(), MAX_DEVS * 16 + 8);
        assert_eq!(size_of::<SlotState>(), 16);
        // The probe bumps u32 word 1 + class of a slot.
        assert_eq!(core::mem::offset_of!(SlotState, reads), 4 * (1 + op::READ));
        assert_eq!(
            core::mem::offset_of!(SlotState, writes),
            4 * (1 + op::WRITE)
        );
        assert_eq!(
            core::mem::offset_of!(SlotState, discards),
            4 * (1 + op::DISCARD)
        );
        assert_eq!(size_of::<DevCounters>(), (2 * op::COUNT + 1) * 8);
        assert_eq!(size_of::<LatHist>(), (LAT_BUCKETS + 2) * 8);
        assert_eq!(size_of::<LatStart>(), 16);
        assert_eq!(size_of::<ProbeStats>(), 16);
        assert_eq!(size_of::<RzramCounters>(), 11 * 8);
    }

    #[test]
    fn rzram_ops_are_op_classes() {
        assert_eq!(rzram_tp::ACCESS_READ as usize, op::READ);
        assert_eq!(rzram_tp::ACCESS_WRITE as usize, op::WRITE);
        assert_eq!(rzram_tp::ACCESS_FREE as usize, op::DISCARD);
        assert_eq!(rz_hist_index(0, rz_hist::WB_LATENCY), 0);
        assert_eq!(rz_hist_index(2, rz_hist::REFAULT_AGE_US), 8);
        assert_eq!(
            rz_hist_index(MAX_DEVS - 1, rz_hist::COUNT - 1) + 1,
            RZ_HIST_ENTRIES
        );
        let mut a = RzramCounters {
            slot_events: [1, 2, 3, 0],
            wb_completed: 5,
            refaults: 1,
            ..Default::default()
        };
        a.accumulate(&a.clone());
        assert_eq!(a.slot_events, [2, 4, 6, 0]);
        assert_eq!((a.wb_completed, a.refaults), (10, 2));
    }

    #[test]
    fn op_classes() {
        assert_eq!(op_class(req_op::READ), op::READ);
        assert_eq!(op_class(req_op::WRITE | (1 << 11)), op::WRITE); // REQ_SYNC set
        assert_eq!(op_class(req_op::DISCARD), op::DISCARD);
        assert_eq!(op_class(req_op::WRITE_ZEROES), op::DISCARD);
        assert_eq!(op_class(req_op::FLUSH), op::OTHER);
        assert_eq!(op_class(35), op::OTHER);
    }

    #[test]
    fn lat_buckets_are_floor_log2() {
        assert_eq!(lat_bucket(0), 0);
        assert_eq!(lat_bucket(1), 0);
        assert_eq!(lat_bucket(2), 1);
        assert_eq!(lat_bucket(3), 1);
        assert_eq!(lat_bucket(1023), 9);
        assert_eq!(lat_bucket(1024), 10);
        assert_eq!(lat_bucket(1 << 39), 39);
        assert_eq!(lat_bucket(u64::MAX), LAT_BUCKETS - 1);
        assert_eq!(hist_index(0, op::READ), 0);
        assert_eq!(hist_index(2, op::DISCARD), 10);
        assert_eq!(hist_index(MAX_DEVS - 1, op::OTHER) + 1, LAT_HIST_ENTRIES);
    }

    #[test]
    fn accumulate_sums_fields() {
        let mut a = BioCounts {
            reads: 1,
            writes: 2,
            discards: 3,
            other: 4,
            bytes: 4096,
        };
        a.accumulate(&BioCounts {
            reads: 10,
            writes: 0,
            discards: 0,
            other: 1,
            bytes: 8192,
        });
        assert_eq!(a.total(), 21);
        assert_eq!(a.bytes, 12288);
    }
}

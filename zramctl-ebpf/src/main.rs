//! zramctl's eBPF programs.
//!
//! - `bio_queue` (raw tracepoint `block_bio_queue`) counts bios queued to one
//!   watched block device, by operation ([`zramctl_common::BioCounts`]).
//! - `slot_access` (`block_bio_queue`): per-slot access tracking of watched
//!   zram devices: slot index = sector >> 3, a bio of N pages touches N
//!   slots; last access time and read/write/discard counts per slot, plus
//!   per-device counters.
//! - `bio_start`/`bio_done` (`block_bio_queue`/`block_bio_complete`): bio
//!   latency of bio-based devices (zram) into log2 histograms per operation.
//! - `rq_start`/`rq_done` (`block_rq_issue`/`block_rq_complete`): request
//!   latency of blk-mq devices (loop, virtio-blk, nvme: the backing devices).
//!
//! Every program but `bio_queue` exists twice: as `tp_btf` (kernel memory
//! read with direct loads, which the verifier turns into fault-tolerant
//! loads) and with a `_raw` suffix as `raw_tracepoint` (reads through
//! `bpf_probe_read_kernel`), for kernels that refuse `tp_btf`. The devices
//! and the kernel struct offsets are read-only globals that userspace fills
//! in at load time (aya has no CO-RE; see `zramctl::ebpf`). The verifier
//! sees frozen read-only globals as constants, which is what lets the
//! `tp_btf` programs add those offsets to BTF pointers.
//!
//! - `rz_slot_access`, `rz_wb_submit`, `rz_wb_complete`, `rz_bd_read`: raw
//!   tracepoints on rzram's module tracepoints. Slot accesses of rzram
//!   devices go into the same `SLOTS` array (for a device watched with
//!   `watch::RZRAM`, `slot_access` leaves its slots alone, so nothing is
//!   counted twice); writeback latency and errors, and refaults (reads of
//!   written-back slots) with the time since their writeback, into per-CPU
//!   `RZ_COUNTERS` and `RZ_HIST`; the writeback time of each slot into
//!   `RZ_WB_TIME`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod trace; // zramctl trace record (ring buffer)

#[cfg(target_arch = "bpf")]
mod probes {
    use core::{
        ffi::c_void,
        ptr::{read_volatile, write_volatile},
    };

    use aya_ebpf::{
        helpers::{bpf_jiffies64, bpf_ktime_get_ns, bpf_loop, bpf_probe_read_kernel},
        macros::{btf_tracepoint, map, raw_tracepoint},
        maps::{Array, HashMap, PerCpuArray},
        programs::{BtfTracePointContext, RawTracePointContext},
    };
    use zramctl_common::{
        BPF_F_MMAPABLE, BioCounts, DevCounters, KernelOffsets, LAT_HIST_ENTRIES, LAT_START_ENTRIES,
        LatHist, LatStart, MAX_DEVS, MAX_SLOTS_PER_BIO, ProbeStats, RZ_HIST_ENTRIES, RzramCounters,
        SECTORS_PER_SLOT_SHIFT, SLOT_TIME_SHIFT, SlotState, WatchTable, WatchedDev, hist_index,
        lat_bucket, op, op_class, req_op, rz_hist, rz_hist_index, watch,
    };

    /// Kernel `dev_t` of the device `bio_queue` counts (see `zramctl_common::kernel_dev`).
    #[unsafe(no_mangle)]
    static TARGET_DEV: u32 = 0;

    /// Struct field offsets read from the running kernel's BTF by userspace.
    #[unsafe(no_mangle)]
    static OFFSETS: KernelOffsets = KernelOffsets {
        bio_bi_bdev: 0,
        bio_bi_opf: 0,
        bio_bi_sector: 0,
        bio_bi_size: 0,
        bdev_bd_dev: 0,
        rq_part: 0,
        rq_cmd_flags: 0,
        _pad: 0,
    };

    /// The watched devices, set by userspace.
    #[unsafe(no_mangle)]
    static WATCH: WatchTable = WatchTable {
        devs: [WatchedDev {
            dev: 0,
            flags: 0,
            slot_base: 0,
            slot_count: 0,
        }; MAX_DEVS],
        count: 0,
        _pad: 0,
    };

    #[map(name = "BIO_COUNTS")]
    static BIO_COUNTS: PerCpuArray<BioCounts> = PerCpuArray::with_max_entries(1, 0);

    /// Sized by userspace to the total slots of the watched zram devices.
    #[map(name = "SLOTS")]
    static SLOTS: Array<SlotState> = Array::with_max_entries(1, BPF_F_MMAPABLE);

    #[map(name = "DEV_COUNTERS")]
    static DEV_COUNTERS: PerCpuArray<DevCounters> =
        PerCpuArray::with_max_entries(MAX_DEVS as u32, 0);

    #[map(name = "LAT_HIST")]
    static LAT_HIST: PerCpuArray<LatHist> = PerCpuArray::with_max_entries(LAT_HIST_ENTRIES, 0);

    #[map(name = "LAT_START")]
    static LAT_START: HashMap<u64, LatStart> = HashMap::with_max_entries(LAT_START_ENTRIES, 0);

    #[map(name = "PROBE_STATS")]
    static PROBE_STATS: PerCpuArray<ProbeStats> = PerCpuArray::with_max_entries(1, 0);

    #[map(name = "RZ_COUNTERS")]
    static RZ_COUNTERS: PerCpuArray<RzramCounters> =
        PerCpuArray::with_max_entries(MAX_DEVS as u32, 0);

    #[map(name = "RZ_HIST")]
    static RZ_HIST: PerCpuArray<LatHist> = PerCpuArray::with_max_entries(RZ_HIST_ENTRIES, 0);

    /// Sized by userspace like [`SLOTS`] when an rzram device is watched.
    #[map(name = "RZ_WB_TIME")]
    static RZ_WB_TIME: Array<u64> = Array::with_max_entries(1, 0);

    /// How a program reads kernel memory.
    trait Kmem {
        /// Reads a `T` at `base + off` in kernel memory.
        fn read<T: Copy>(base: *const u8, off: u32) -> Result<T, i32>;
    }

    /// `tp_btf`: direct loads from BTF-typed pointers.
    struct Direct;

    impl Kmem for Direct {
        #[inline(always)]
        fn read<T: Copy>(base: *const u8, off: u32) -> Result<T, i32> {
            // SAFETY: in a tp_btf program `base` is a BTF-typed kernel pointer
            // (a tracepoint argument, or loaded from one); the verifier checks
            // the constant `off` and the size against the kernel's BTF and
            // turns the load into an exception-handled PROBE_MEM load that
            // yields 0 instead of faulting (a NULL `base` included).
            // `wrapping_add` does no dereference.
            Ok(unsafe { read_volatile(base.wrapping_add(off as usize).cast::<T>()) })
        }
    }

    /// `raw_tracepoint`: `bpf_probe_read_kernel`.
    struct Probe;

    impl Kmem for Probe {
        #[inline(always)]
        fn read<T: Copy>(base: *const u8, off: u32) -> Result<T, i32> {
            // SAFETY: bpf_probe_read_kernel validates the address itself and
            // returns an error instead of faulting; `wrapping_add` does no
            // dereference.
            unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()) }
        }
    }

    /// Reads one field of a read-only global. Volatile so the compiler does
    /// not fold the zero initialisers; the verifier reads the frozen map and
    /// knows the value.
    macro_rules! global {
        ($($field:tt)+) => {
            // SAFETY: a plain read of an initialised global that nothing writes
            // after load.
            unsafe { read_volatile(&raw const $($field)+) }
        };
    }

    /// A watched device, as [`watch_index`] finds it.
    struct Watched {
        /// Index in [`WATCH`].
        index: usize,
        flags: u32,
        slot_base: u32,
        slot_count: u32,
    }

    /// `dev` if it is watched with `flag`. Indexing stays inside the loop,
    /// where the index is provably in bounds: a bounds check that can fail
    /// would link a panic path, which the verifier rejects.
    #[inline(always)]
    fn watch_index(dev: u32, flag: u32) -> Option<Watched> {
        let count = global!(WATCH.count) as usize;
        let mut i = 0;
        while i < MAX_DEVS {
            if i >= count {
                return None;
            }
            if global!(WATCH.devs[i].dev) == dev && global!(WATCH.devs[i].flags) & flag != 0 {
                return Some(Watched {
                    index: i,
                    flags: global!(WATCH.devs[i].flags),
                    slot_base: global!(WATCH.devs[i].slot_base),
                    slot_count: global!(WATCH.devs[i].slot_count),
                });
            }
            i += 1;
        }
        None
    }

    /// The `dev_t` of a `struct block_device *`.
    #[inline(always)]
    fn bdev_dev<K: Kmem>(bdev: *const u8) -> Result<u32, i32> {
        K::read(bdev, global!(OFFSETS.bdev_bd_dev))
    }

    /// The `dev_t` a bio is queued to.
    #[inline(always)]
    fn bio_dev<K: Kmem>(bio: *const u8) -> Result<u32, i32> {
        let bdev: *const u8 = K::read(bio, global!(OFFSETS.bio_bi_bdev))?;
        bdev_dev::<K>(bdev)
    }

    /// The `dev_t` of the (partition) device a request is for.
    #[inline(always)]
    fn rq_dev<K: Kmem>(rq: *const u8) -> Result<u32, i32> {
        let part: *const u8 = K::read(rq, global!(OFFSETS.rq_part))?;
        if part.is_null() {
            return Err(-1);
        }
        bdev_dev::<K>(part)
    }

    // ---- bio_queue: the simple per-device bio counter ----

    #[raw_tracepoint(tracepoint = "block_bio_queue")]
    pub fn bio_queue(ctx: RawTracePointContext) -> i32 {
        // A failed kernel read only means this bio is not counted.
        let _ = count_bio(&ctx);
        0
    }

    #[inline(always)]
    fn count_bio(ctx: &RawTracePointContext) -> Result<(), i32> {
        // block_bio_queue's TP_PROTO is (struct bio *bio).
        let bio: *const u8 = ctx.arg(0);
        let dev = bio_dev::<Probe>(bio)?;
        if dev != global!(TARGET_DEV) {
            return Ok(());
        }
        let opf: u32 = Probe::read(bio, global!(OFFSETS.bio_bi_opf))?;
        let size: u32 = Probe::read(bio, global!(OFFSETS.bio_bi_size))?;
        let counts = BIO_COUNTS.get_ptr_mut(0).ok_or(-1)?;
        // SAFETY: the pointer comes from the map lookup, is non-null, and the
        // per-CPU slot is only touched by this CPU with preemption disabled.
        let counts = unsafe { &mut *counts };
        match opf & req_op::MASK {
            req_op::READ => counts.reads += 1,
            req_op::WRITE => counts.writes += 1,
            req_op::DISCARD => counts.discards += 1,
            _ => counts.other += 1,
        }
        counts.bytes += u64::from(size);
        Ok(())
    }

    // ---- slot access ----

    #[btf_tracepoint(function = "block_bio_queue")]
    pub fn slot_access(ctx: BtfTracePointContext) -> i32 {
        let _ = access::<Direct>(ctx.arg(0));
        0
    }

    #[raw_tracepoint(tracepoint = "block_bio_queue")]
    pub fn slot_access_raw(ctx: RawTracePointContext) -> i32 {
        let _ = access::<Probe>(ctx.arg(0));
        0
    }

    /// Marks one slot accessed at `now` (see [`slot_time`]) by an
    /// operation of class `class` (read, write or discard).
    #[inline(always)]
    fn touch(slot: u64, now: u32, class: usize) {
        if slot > u64::from(u32::MAX) || class > op::DISCARD {
            return;
        }
        let Some(s) = SLOTS.get_ptr_mut(slot as u32) else {
            return;
        };
        // The counters follow `last_time` in op-class order: reads, writes,
        // discards (class <= DISCARD checked above).
        let counter = s.cast::<u32>().wrapping_add(1 + class);
        // SAFETY: `s` is a valid, aligned map value from the lookup and
        // `counter` points at one of its u32 counters. The array is shared
        // between CPUs and Rust's BPF target has no atomic read-modify-write,
        // so two CPUs touching one slot in the same instant could lose a
        // count; swap never has two bios for one slot in flight (the folio
        // lock and swap cache serialise them).
        unsafe {
            write_volatile(&raw mut (*s).last_time, now);
            write_volatile(counter, read_volatile(counter).wrapping_add(1));
        }
    }

    /// Per-CPU cache of the clock: `[jiffies, slot time]`, the slot time
    /// read at the first event after the tick last changed on this CPU.
    #[map(name = "CLOCK_CACHE")]
    static CLOCK_CACHE: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

    /// CLOCK_MONOTONIC in slot time units (`SLOT_TIME_SHIFT`), accurate to
    /// a tick. The fine clock costs ~90 ns per read on a virtual machine
    /// whose TSC reads are expensive, as much as the rest of the probe;
    /// `bpf_jiffies64` costs ~10 ns, and tracing programs may not call
    /// `bpf_ktime_get_coarse_ns`. So the fine clock is read once per tick
    /// and CPU.
    #[inline(always)]
    fn slot_time() -> u32 {
        // SAFETY: helper without preconditions.
        let j = unsafe { bpf_jiffies64() };
        let Some(c) = CLOCK_CACHE.get_ptr_mut(0) else {
            // SAFETY: helper without preconditions.
            return (unsafe { bpf_ktime_get_ns() } >> SLOT_TIME_SHIFT) as u32;
        };
        // SAFETY: a non-null per-CPU map value; only this CPU touches it and
        // the program does not nest on one CPU.
        unsafe {
            if (*c)[0] != j {
                *c = [j, bpf_ktime_get_ns() >> SLOT_TIME_SHIFT];
            }
            (*c)[1] as u32
        }
    }

    /// What the `bpf_loop` callback needs; lives on the caller's stack.
    #[repr(C)]
    struct TouchLoop {
        /// Slot of loop index 0.
        first: u64,
        class: u64,
        now: u32,
    }

    /// `bpf_loop` callback: touches slot `first + i`.
    extern "C" fn touch_loop(i: u64, ctx: *mut c_void) -> i64 {
        // SAFETY: bpf_loop passes back the pointer to the caller's TouchLoop,
        // which lives until bpf_loop returns.
        let t = unsafe { &*ctx.cast::<TouchLoop>() };
        touch(t.first + i, t.now, t.class as usize);
        0
    }

    #[inline(always)]
    fn access<K: Kmem>(bio: *const u8) -> Result<(), i32> {
        let dev = bio_dev::<K>(bio)?;
        let Some(w) = watch_index(dev, watch::ACCESS) else {
            return Ok(());
        };
        let opf: u32 = K::read(bio, global!(OFFSETS.bio_bi_opf))?;
        let size: u32 = K::read(bio, global!(OFFSETS.bio_bi_size))?;
        let class = op_class(opf);
        let counters = DEV_COUNTERS.get_ptr_mut(w.index as u32).ok_or(-1)?;
        // SAFETY: a non-null per-CPU map value; only this CPU touches it and
        // the program does not nest on one CPU.
        let counters = unsafe { &mut *counters };
        counters.bios[class] += 1;
        if size == 0 {
            return Ok(());
        }
        let sector: u64 = K::read(bio, global!(OFFSETS.bio_bi_sector))?;
        let end = sector + ((u64::from(size) + 511) >> 9);
        let first = sector >> SECTORS_PER_SLOT_SHIFT;
        let pages = ((end - 1) >> SECTORS_PER_SLOT_SHIFT) - first + 1;
        counters.pages[class] += pages;
        // rzram's own tracepoint keeps the slots of an rzram device.
        if class == op::OTHER || w.flags & watch::RZRAM != 0 {
            return Ok(());
        }
        let slot_count = u64::from(w.slot_count);
        let mut tracked = if first < slot_count {
            slot_count - first
        } else {
            0
        };
        if tracked > pages {
            tracked = pages;
        }
        if tracked > u64::from(MAX_SLOTS_PER_BIO) {
            tracked = u64::from(MAX_SLOTS_PER_BIO);
        }
        counters.untracked_pages += pages - tracked;
        if tracked == 0 {
            return Ok(());
        }
        let now = slot_time();
        let slot = u64::from(w.slot_base) + first;
        touch(slot, now, class);
        if tracked > 1 {
            let mut t = TouchLoop {
                first: slot + 1,
                class: class as u64,
                now,
            };
            // SAFETY: `touch_loop` has the callback signature bpf_loop
            // expects and `t` outlives the call.
            unsafe {
                bpf_loop(
                    (tracked - 1) as u32,
                    touch_loop as *mut c_void,
                    (&raw mut t).cast(),
                    0,
                );
            }
        }
        Ok(())
    }

    // ---- latency ----

    #[btf_tracepoint(function = "block_bio_queue")]
    pub fn bio_start(ctx: BtfTracePointContext) -> i32 {
        let _ = start_bio::<Direct>(ctx.arg(0));
        0
    }

    #[raw_tracepoint(tracepoint = "block_bio_queue")]
    pub fn bio_start_raw(ctx: RawTracePointContext) -> i32 {
        let _ = start_bio::<Probe>(ctx.arg(0));
        0
    }

    // block_bio_complete's TP_PROTO is (struct request_queue *q, struct bio *bio).
    #[btf_tracepoint(function = "block_bio_complete")]
    pub fn bio_done(ctx: BtfTracePointContext) -> i32 {
        let _ = done_bio::<Direct>(ctx.arg(1));
        0
    }

    #[raw_tracepoint(tracepoint = "block_bio_complete")]
    pub fn bio_done_raw(ctx: RawTracePointContext) -> i32 {
        let _ = done_bio::<Probe>(ctx.arg(1));
        0
    }

    // block_rq_issue's TP_PROTO is (struct request *rq).
    #[btf_tracepoint(function = "block_rq_issue")]
    pub fn rq_start(ctx: BtfTracePointContext) -> i32 {
        let _ = start_rq::<Direct>(ctx.arg(0));
        0
    }

    #[raw_tracepoint(tracepoint = "block_rq_issue")]
    pub fn rq_start_raw(ctx: RawTracePointContext) -> i32 {
        let _ = start_rq::<Probe>(ctx.arg(0));
        0
    }

    // block_rq_complete's TP_PROTO is (struct request *rq, blk_status_t error,
    // unsigned int nr_bytes).
    #[btf_tracepoint(function = "block_rq_complete")]
    pub fn rq_done(ctx: BtfTracePointContext) -> i32 {
        let _ = done_rq::<Direct>(ctx.arg(0));
        0
    }

    #[raw_tracepoint(tracepoint = "block_rq_complete")]
    pub fn rq_done_raw(ctx: RawTracePointContext) -> i32 {
        let _ = done_rq::<Probe>(ctx.arg(0));
        0
    }

    #[inline(always)]
    fn stats() -> Option<&'static mut ProbeStats> {
        // SAFETY: a non-null per-CPU map value that only this CPU touches. A
        // latency program interrupted on this CPU by another one (a
        // completion in an interrupt) could lose one increment of these
        // health counters; the histograms are not shared that way (a device
        // is either bio-based or blk-mq).
        PROBE_STATS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
    }

    /// Records the start of `key` (a bio or request) of watch index `w`.
    #[inline(always)]
    fn start(key: u64, w: usize, opf: u32) {
        let rec = LatStart {
            // SAFETY: helper without preconditions.
            start_ns: unsafe { bpf_ktime_get_ns() },
            hist_index: hist_index(w, op_class(opf)),
            _pad: 0,
        };
        if LAT_START.insert(key, rec, 0).is_err()
            && let Some(s) = stats()
        {
            s.lat_start_dropped += 1;
        }
    }

    /// Records the completion of `key` into its histogram.
    #[inline(always)]
    fn done(key: u64) {
        let Some(rec) = LAT_START.get_ptr(key) else {
            if let Some(s) = stats() {
                s.lat_unmatched += 1;
            }
            return;
        };
        // SAFETY: a non-null value from the lookup; read before the delete.
        let rec = unsafe { read_volatile(rec) };
        let _ = LAT_START.remove(key);
        // SAFETY: helper without preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        let delta = now.saturating_sub(rec.start_ns);
        let Some(h) = LAT_HIST.get_ptr_mut(rec.hist_index) else {
            return;
        };
        // SAFETY: a non-null per-CPU map value; only this CPU touches it.
        let h = unsafe { &mut *h };
        h.buckets[lat_bucket(delta)] += 1;
        h.count += 1;
        h.sum_ns += delta;
    }

    #[inline(always)]
    fn start_bio<K: Kmem>(bio: *const u8) -> Result<(), i32> {
        let Some(w) = watch_index(bio_dev::<K>(bio)?, watch::BIO_LATENCY) else {
            return Ok(());
        };
        start(
            bio as u64,
            w.index,
            K::read(bio, global!(OFFSETS.bio_bi_opf))?,
        );
        Ok(())
    }

    #[inline(always)]
    fn done_bio<K: Kmem>(bio: *const u8) -> Result<(), i32> {
        if watch_index(bio_dev::<K>(bio)?, watch::BIO_LATENCY).is_some() {
            done(bio as u64);
        }
        Ok(())
    }

    #[inline(always)]
    fn start_rq<K: Kmem>(rq: *const u8) -> Result<(), i32> {
        let Some(w) = watch_index(rq_dev::<K>(rq)?, watch::RQ_LATENCY) else {
            return Ok(());
        };
        start(
            rq as u64,
            w.index,
            K::read(rq, global!(OFFSETS.rq_cmd_flags))?,
        );
        Ok(())
    }

    #[inline(always)]
    fn done_rq<K: Kmem>(rq: *const u8) -> Result<(), i32> {
        if watch_index(rq_dev::<K>(rq)?, watch::RQ_LATENCY).is_some() {
            done(rq as u64);
        }
        Ok(())
    }

    // ---- rzram's tracepoints (raw tracepoints: the arguments are integers) ----

    /// The per-CPU counters of watch index `w`.
    #[inline(always)]
    fn rz_counters(w: usize) -> Option<&'static mut RzramCounters> {
        // SAFETY: a non-null per-CPU map value. Only this CPU touches it; a
        // program may be interrupted on this CPU by another rzram program
        // (a completion in interrupt context), but each field is written by
        // one program only, so no increment is lost.
        RZ_COUNTERS
            .get_ptr_mut(w as u32)
            .map(|p| unsafe { &mut *p })
    }

    /// Records `value` into histogram `kind` of watch index `w`.
    #[inline(always)]
    fn rz_record(w: usize, kind: usize, value: u64) {
        let Some(h) = RZ_HIST.get_ptr_mut(rz_hist_index(w, kind)) else {
            return;
        };
        // SAFETY: a non-null per-CPU map value; each histogram kind is
        // written by one program only (see `rz_counters`).
        let h = unsafe { &mut *h };
        h.buckets[lat_bucket(value)] += 1;
        h.count += 1;
        h.sum_ns += value;
    }

    /// Index in [`SLOTS`] / [`RZ_WB_TIME`] of page `index` of `w`, if tracked.
    #[inline(always)]
    fn rz_slot(w: &Watched, index: u64) -> Option<u64> {
        (index < u64::from(w.slot_count)).then(|| u64::from(w.slot_base) + index)
    }

    // rzram_slot_access's TP_PROTO is (dev_t dev, u64 index, u32 op).
    #[raw_tracepoint(tracepoint = "rzram_slot_access")]
    pub fn rz_slot_access(ctx: RawTracePointContext) -> i32 {
        let dev = ctx.arg::<u64>(0) as u32;
        let Some(w) = watch_index(dev, watch::RZRAM) else {
            return 0;
        };
        let index: u64 = ctx.arg(1);
        let class = ctx.arg::<u64>(2) as u32 as usize;
        let Some(c) = rz_counters(w.index) else {
            return 0;
        };
        if class > op::DISCARD {
            return 0;
        }
        c.slot_events[class] += 1;
        match rz_slot(&w, index) {
            Some(slot) => touch(slot, slot_time(), class),
            None => c.untracked += 1,
        }
        0
    }

    // rzram_wb_submit's TP_PROTO is (dev_t dev, u64 index, u64 block).
    #[raw_tracepoint(tracepoint = "rzram_wb_submit")]
    pub fn rz_wb_submit(ctx: RawTracePointContext) -> i32 {
        if let Some(w) = watch_index(ctx.arg::<u64>(0) as u32, watch::RZRAM)
            && let Some(c) = rz_counters(w.index)
        {
            c.wb_submitted += 1;
        }
        0
    }

    // rzram_wb_complete and rzram_bd_read: (dev_t dev, u64 index, u64 block,
    // u64 latency_ns, int status).
    #[raw_tracepoint(tracepoint = "rzram_wb_complete")]
    pub fn rz_wb_complete(ctx: RawTracePointContext) -> i32 {
        let Some(w) = watch_index(ctx.arg::<u64>(0) as u32, watch::RZRAM) else {
            return 0;
        };
        let index: u64 = ctx.arg(1);
        let latency: u64 = ctx.arg(3);
        let failed = ctx.arg::<u64>(4) as u32 as i32 != 0;
        let Some(c) = rz_counters(w.index) else {
            return 0;
        };
        c.wb_completed += 1;
        rz_record(w.index, rz_hist::WB_LATENCY, latency);
        if failed {
            c.wb_errors += 1;
        } else if let Some(slot) = rz_slot(&w, index)
            && let Some(t) = RZ_WB_TIME.get_ptr_mut(slot as u32)
        {
            // SAFETY: a valid, aligned map value from the lookup; one slot is
            // written back by one completion at a time.
            unsafe { write_volatile(t, bpf_ktime_get_ns()) };
        }
        0
    }

    #[raw_tracepoint(tracepoint = "rzram_bd_read")]
    pub fn rz_bd_read(ctx: RawTracePointContext) -> i32 {
        let Some(w) = watch_index(ctx.arg::<u64>(0) as u32, watch::RZRAM) else {
            return 0;
        };
        let index: u64 = ctx.arg(1);
        let latency: u64 = ctx.arg(3);
        let failed = ctx.arg::<u64>(4) as u32 as i32 != 0;
        let Some(c) = rz_counters(w.index) else {
            return 0;
        };
        c.refaults += 1;
        if failed {
            c.refault_errors += 1;
        }
        rz_record(w.index, rz_hist::BD_READ_LATENCY, latency);
        let wb_time = match rz_slot(&w, index).and_then(|s| RZ_WB_TIME.get_ptr(s as u32)) {
            // SAFETY: a valid, aligned map value from the lookup.
            Some(t) => unsafe { read_volatile(t) },
            None => 0,
        };
        if wb_time == 0 {
            c.refaults_no_wb_time += 1;
        } else {
            // SAFETY: helper without preconditions.
            let now = unsafe { bpf_ktime_get_ns() };
            rz_record(
                w.index,
                rz_hist::REFAULT_AGE_US,
                now.saturating_sub(wb_time) / 1000,
            );
        }
        0
    }

    // ---- cost floor ----

    /// Does nothing: its cost per event under the kernel's BPF stats is the
    /// floor every program on `block_bio_queue` pays (dispatch and the
    /// stats' own clock reads), printed next to the real programs' costs.
    #[btf_tracepoint(function = "block_bio_queue")]
    pub fn cost_floor(_ctx: BtfTracePointContext) -> i32 {
        0
    }

    #[raw_tracepoint(tracepoint = "block_bio_queue")]
    pub fn cost_floor_raw(_ctx: RawTracePointContext) -> i32 {
        0
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
}

/// On the host this crate only has to type-check (`cargo test --workspace`).
#[cfg(not(target_arch = "bpf"))]
fn main() {}

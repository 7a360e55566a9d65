//! `zramctl trace record`'s programs: raw events of one zram device into a
//! ring buffer (see `zramctl_common::trace` for how userspace pairs them).
//! A full ring buffer is counted in `TRACE_STATS.dropped`, never silent.

use core::ptr::read_volatile;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{fentry, map, raw_tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{FEntryContext, RawTracePointContext},
};
use zramctl_common::{
    KernelOffsets, SECTORS_PER_SLOT_SHIFT, req_op,
    trace::{TraceRecord, TraceStats, kind},
};

/// The traced device (`dev_t`, kernel encoding), set by userspace.
#[unsafe(no_mangle)]
static TRACE_DEV: u32 = 0;

/// Struct offsets from the running kernel's BTF, set by userspace.
#[unsafe(no_mangle)]
static TRACE_OFFSETS: KernelOffsets = KernelOffsets {
    bio_bi_bdev: 0,
    bio_bi_opf: 0,
    bio_bi_sector: 0,
    bio_bi_size: 0,
    bdev_bd_dev: 0,
    rq_part: 0,
    rq_cmd_flags: 0,
    _pad: 0,
};

/// One page here so that loading the shared object costs the other tools
/// nothing; the recorder sets the size it wants (`RINGBUF_BYTES`).
#[map(name = "TRACE_EVENTS")]
static TRACE_EVENTS: RingBuf = RingBuf::with_byte_size(4096, 0);

#[map(name = "TRACE_STATS")]
static TRACE_STATS: PerCpuArray<TraceStats> = PerCpuArray::with_max_entries(1, 0);

/// Tasks inside a write bio of the traced device: tid -> pages left.
/// Sized by the recorder (`WRITERS_ENTRIES`); one entry otherwise.
#[map(name = "TRACE_WRITERS")]
static TRACE_WRITERS: HashMap<u32, u32> = HashMap::with_max_entries(1, 0);

macro_rules! global {
    ($($field:tt)+) => {
        // SAFETY: a plain read of an initialised global that nothing writes
        // after load (frozen read-only data).
        unsafe { read_volatile(&raw const $($field)+) }
    };
}

#[inline(always)]
fn read<T: Copy>(base: *const u8, off: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel validates the address and returns an
    // error instead of faulting; `wrapping_add` does no dereference.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()) }
}

#[inline(always)]
fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
fn emit(kind: u32, slot: u64, arg: u32, tid: u32) {
    let rec = TraceRecord {
        // SAFETY: helper without preconditions.
        time_ns: unsafe { bpf_ktime_get_ns() },
        slot,
        tid,
        arg,
        kind,
        _pad: 0,
    };
    let ok = TRACE_EVENTS.output::<TraceRecord>(&rec, 0).is_ok();
    if let Some(s) = TRACE_STATS.get_ptr_mut(0) {
        // SAFETY: a non-null per-CPU map value; only this CPU touches it and
        // these programs do not nest on one CPU.
        unsafe {
            if ok {
                (*s).emitted += 1;
            } else {
                (*s).dropped += 1;
            }
        }
    }
}

#[raw_tracepoint(tracepoint = "block_bio_queue")]
pub fn trace_bio(ctx: RawTracePointContext) -> i32 {
    let _ = bio(ctx.arg(0));
    0
}

#[inline(always)]
fn bio(bio: *const u8) -> Result<(), i32> {
    let bdev: *const u8 = read(bio, global!(TRACE_OFFSETS.bio_bi_bdev))?;
    let dev: u32 = read(bdev, global!(TRACE_OFFSETS.bdev_bd_dev))?;
    if dev != global!(TRACE_DEV) {
        return Ok(());
    }
    let opf: u32 = read(bio, global!(TRACE_OFFSETS.bio_bi_opf))?;
    let sector: u64 = read(bio, global!(TRACE_OFFSETS.bio_bi_sector))?;
    let size: u32 = read(bio, global!(TRACE_OFFSETS.bio_bi_size))?;
    let pages = size.div_ceil(4096).max(1);
    let slot = sector >> SECTORS_PER_SLOT_SHIFT;
    let t = tid();
    let k = match opf & req_op::MASK {
        req_op::READ => kind::READ,
        req_op::WRITE => {
            let _ = TRACE_WRITERS.insert(&t, &pages, 0);
            kind::WRITE
        }
        req_op::DISCARD | req_op::WRITE_ZEROES => kind::DISCARD,
        _ => return Ok(()),
    };
    emit(k, slot, pages, t);
    Ok(())
}

// zs_malloc(struct zs_pool *pool, size_t size, gfp_t gfp, const int nid)
#[fentry(function = "zs_malloc")]
pub fn trace_malloc(ctx: FEntryContext) -> u32 {
    let t = tid();
    // SAFETY: a lookup whose value is only copied out.
    if unsafe { TRACE_WRITERS.get(&t) }.is_some() {
        let size: u64 = ctx.arg(1);
        emit(kind::MALLOC, 0, size as u32, t);
    }
    0
}

// slot_free(struct zram *zram, unsigned long index) in 7.3,
// zram_free_page(struct zram *zram, size_t index) before: userspace loads
// this program against whichever the kernel has.
#[fentry(function = "slot_free")]
pub fn trace_free_page(ctx: FEntryContext) -> u32 {
    let t = tid();
    // SAFETY: the value is only read, then replaced or removed by this task.
    let left = match unsafe { TRACE_WRITERS.get(&t) } {
        Some(&n) => n,
        None => return 0,
    };
    let index: u64 = ctx.arg(1);
    emit(kind::FREE_PAGE, index, 0, t);
    if left <= 1 {
        let _ = TRACE_WRITERS.remove(&t);
    } else {
        let _ = TRACE_WRITERS.insert(&t, &(left - 1), 0);
    }
    0
}

// zram_slot_free_notify(struct block_device *bdev, unsigned long index)
#[fentry(function = "zram_slot_free_notify")]
pub fn trace_free_notify(ctx: FEntryContext) -> u32 {
    let bdev: u64 = ctx.arg(0);
    let index: u64 = ctx.arg(1);
    if let Ok(dev) = read::<u32>(bdev as *const u8, global!(TRACE_OFFSETS.bdev_bd_dev))
        && dev == global!(TRACE_DEV)
    {
        emit(kind::FREE_NOTIFY, index, 0, tid());
    }
    0
}

// rzram_slot_access's TP_PROTO is (dev_t dev, u64 index, u32 op).
#[raw_tracepoint(tracepoint = "rzram_slot_access")]
pub fn trace_rz_access(ctx: RawTracePointContext) -> i32 {
    let dev = ctx.arg::<u64>(0) as u32;
    if dev == global!(TRACE_DEV) {
        emit(kind::RZ_ACCESS, ctx.arg(1), ctx.arg::<u64>(2) as u32, tid());
    }
    0
}

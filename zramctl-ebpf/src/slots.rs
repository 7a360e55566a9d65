//! Per-slot access tracking: `slot_access` on `block_bio_queue` (slot
//! index = sector >> 3, a bio of N pages touches N slots) keeps each
//! slot's last access time and read/write/discard counts in the mmapable
//! `SLOTS` array, plus per-device counters. rzram devices are tracked by
//! their own tracepoint instead (`rzram.rs`), through [`touch`].

use core::{
    ffi::c_void,
    ptr::{read_volatile, write_volatile},
};

use aya_ebpf::{
    helpers::{bpf_jiffies64, bpf_ktime_get_ns, bpf_loop},
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::{Array, PerCpuArray},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use zramctl_common::{
    BPF_F_MMAPABLE, DevCounters, MAX_DEVS, MAX_SLOTS_PER_BIO, SECTORS_PER_SLOT_SHIFT,
    SLOT_TIME_SHIFT, SlotState, op, op_class, watch,
};

use crate::kmem::{Direct, Kmem, OFFSETS, Probe, bio_dev, global, watch_index};

/// Sized by userspace to the total slots of the watched zram devices.
#[map(name = "SLOTS")]
static SLOTS: Array<SlotState> = Array::with_max_entries(1, BPF_F_MMAPABLE);

#[map(name = "DEV_COUNTERS")]
static DEV_COUNTERS: PerCpuArray<DevCounters> = PerCpuArray::with_max_entries(MAX_DEVS as u32, 0);

/// Per-CPU cache of the clock: `[jiffies, slot time]`, the slot time
/// read at the first event after the tick last changed on this CPU.
#[map(name = "CLOCK_CACHE")]
static CLOCK_CACHE: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

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
pub fn touch(slot: u64, now: u32, class: usize) {
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

/// CLOCK_MONOTONIC in slot time units (`SLOT_TIME_SHIFT`), accurate to
/// a tick. The fine clock costs ~90 ns per read on a virtual machine
/// whose TSC reads are expensive, as much as the rest of the probe;
/// `bpf_jiffies64` costs ~10 ns, and tracing programs may not call
/// `bpf_ktime_get_coarse_ns`. So the fine clock is read once per tick
/// and CPU.
#[inline(always)]
pub fn slot_time() -> u32 {
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

//! rzram's module tracepoints, raw tracepoints only (their arguments are
//! plain integers; `tp_btf` would need the module's BTF): slot accesses
//! into the same `SLOTS` array as `slot_access` (which leaves rzram
//! devices' slots alone, so nothing is counted twice); writeback latency
//! and errors, and refaults (reads of written-back slots) with the time
//! since their writeback, into per-CPU `RZ_COUNTERS` and `RZ_HIST`; the
//! writeback time of each slot into `RZ_WB_TIME`.

use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, raw_tracepoint},
    maps::{Array, PerCpuArray},
    programs::RawTracePointContext,
};
use zramctl_common::{
    LatHist, MAX_DEVS, RZ_HIST_ENTRIES, RzramCounters, lat_bucket, op, rz_hist, rz_hist_index,
    watch,
};

use crate::{
    kmem::{Watched, watch_index},
    slots::{slot_time, touch},
};

#[map(name = "RZ_COUNTERS")]
static RZ_COUNTERS: PerCpuArray<RzramCounters> = PerCpuArray::with_max_entries(MAX_DEVS as u32, 0);

#[map(name = "RZ_HIST")]
static RZ_HIST: PerCpuArray<LatHist> = PerCpuArray::with_max_entries(RZ_HIST_ENTRIES, 0);

/// Sized by userspace like `SLOTS` when an rzram device is watched.
#[map(name = "RZ_WB_TIME")]
static RZ_WB_TIME: Array<u64> = Array::with_max_entries(1, 0);

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

/// Index in `SLOTS` / [`RZ_WB_TIME`] of page `index` of `w`, if tracked.
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

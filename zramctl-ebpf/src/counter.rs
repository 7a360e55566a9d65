//! `bio_queue`: the simple per-device bio counter (one device, by
//! operation), and `cost_floor`, the program that does nothing.

use aya_ebpf::{
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::PerCpuArray,
    programs::{BtfTracePointContext, RawTracePointContext},
};
use zramctl_common::{BioCounts, req_op};

use crate::kmem::{Kmem, OFFSETS, Probe, TARGET_DEV, bio_dev, global};

#[map(name = "BIO_COUNTS")]
static BIO_COUNTS: PerCpuArray<BioCounts> = PerCpuArray::with_max_entries(1, 0);

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

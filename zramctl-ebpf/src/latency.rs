//! Completion latency into log2 histograms per device and operation:
//! `bio_start`/`bio_done` (`block_bio_queue`/`block_bio_complete`) for
//! bio-based devices (zram), `rq_start`/`rq_done` (`block_rq_issue`/
//! `block_rq_complete`) for blk-mq devices (loop, virtio-blk, nvme: the
//! backing devices).

use core::ptr::read_volatile;

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use zramctl_common::{
    LAT_HIST_ENTRIES, LAT_START_ENTRIES, LatHist, LatStart, ProbeStats, hist_index, lat_bucket,
    op_class, watch,
};

use crate::kmem::{Direct, Kmem, OFFSETS, Probe, bio_dev, global, rq_dev, watch_index};

#[map(name = "LAT_HIST")]
static LAT_HIST: PerCpuArray<LatHist> = PerCpuArray::with_max_entries(LAT_HIST_ENTRIES, 0);

#[map(name = "LAT_START")]
static LAT_START: HashMap<u64, LatStart> = HashMap::with_max_entries(LAT_START_ENTRIES, 0);

#[map(name = "PROBE_STATS")]
static PROBE_STATS: PerCpuArray<ProbeStats> = PerCpuArray::with_max_entries(1, 0);

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

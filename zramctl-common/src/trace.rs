//! `zramctl trace record`: the per-slot event stream of one zram device,
//! from the eBPF programs in `zramctl-ebpf/src/trace.rs` through the
//! [`map::EVENTS`] ring buffer.
//!
//! The programs emit raw kernel events; userspace pairs them into slot
//! events: a write bio on a task, then per page `zs_malloc(size)` (absent
//! for a same-filled page) and `zram_free_page(index)` as zram stores it
//! (`zram_write_page` frees the old slot content right before it sets the
//! new handle), gives each written slot its compressed size.

/// Program names.
pub mod prog {
    /// raw tracepoint `block_bio_queue`: read/write/discard bios of the device.
    pub const BIO: &str = "trace_bio";
    /// kprobe `zs_malloc`: the size of the object being stored.
    pub const MALLOC: &str = "trace_malloc";
    /// kprobe `zram_free_page`: a slot's old content freed (a write stores next).
    pub const FREE_PAGE: &str = "trace_free_page";
    /// kprobe `zram_slot_free_notify`: swap freed a slot (no bio).
    pub const FREE_NOTIFY: &str = "trace_free_notify";
    /// raw tracepoint `rzram_slot_access` (rzram only).
    pub const RZ_ACCESS: &str = "trace_rz_access";
}

/// Map names.
pub mod map {
    /// `BPF_MAP_TYPE_RINGBUF` of [`super::TraceRecord`].
    pub const EVENTS: &str = "TRACE_EVENTS";
    /// Per-CPU [`super::TraceStats`] (one entry).
    pub const STATS: &str = "TRACE_STATS";
    /// Hash of tasks inside a write bio (tid -> pages left).
    pub const WRITERS: &str = "TRACE_WRITERS";
}

/// Global: the traced device's `dev_t` (kernel encoding).
pub const GLOBAL_DEV: &str = "TRACE_DEV";
/// Global: [`crate::KernelOffsets`] for the bio fields.
pub const GLOBAL_OFFSETS: &str = "TRACE_OFFSETS";

/// Ring buffer size the recorder sets: 8 MiB (a power of two of pages, as
/// the kernel needs). The object itself asks for one page, so that loading
/// it for the other probes costs nothing.
pub const RINGBUF_BYTES: u32 = 1 << 23;
/// Entries of [`map::WRITERS`] the recorder sets.
pub const WRITERS_ENTRIES: u32 = 4096;

/// [`TraceRecord::kind`] values.
pub mod kind {
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
    pub const DISCARD: u32 = 2;
    /// `zs_malloc(size)` on the task: `slot` unused, `arg` = size.
    pub const MALLOC: u32 = 3;
    /// `zram_free_page(index)` on the task: `slot` = index.
    pub const FREE_PAGE: u32 = 4;
    /// `zram_slot_free_notify(index)`: `slot` = index.
    pub const FREE_NOTIFY: u32 = 5;
    /// rzram `rzram_slot_access`: `arg` = its op (`crate::rzram_tp::ACCESS_*`).
    pub const RZ_ACCESS: u32 = 6;
}

/// One raw event (32 bytes, 8-aligned for the ring buffer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceRecord {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub time_ns: u64,
    /// First slot (bios, frees) or 0.
    pub slot: u64,
    /// Task id (`pid_tgid` low half) that caused the event.
    pub tid: u32,
    /// Pages (bios), size (malloc), op (rzram).
    pub arg: u32,
    pub kind: u32,
    pub _pad: u32,
}

/// Per-CPU counters of the trace programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceStats {
    /// Records written to the ring buffer.
    pub emitted: u64,
    /// Records lost because the ring buffer was full.
    pub dropped: u64,
}

#[cfg(feature = "user")]
// SAFETY: plain `#[repr(C)]` integers without padding holes.
unsafe impl aya::Pod for TraceRecord {}
#[cfg(feature = "user")]
// SAFETY: plain `#[repr(C)]` integers.
unsafe impl aya::Pod for TraceStats {}

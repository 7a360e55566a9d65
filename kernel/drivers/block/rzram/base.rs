// SPDX-License-Identifier: GPL-2.0

//! What every part of rzram shares: the page size and the clocks.

use kernel::{bindings, page::PAGE_SIZE};

/// Bytes in a page, the unit of a slot and of a backing block.
pub(crate) const PAGE: usize = PAGE_SIZE;

// The slot layout packs an object's size (at most a page) into the 16 bits
// below the flags, and the ABI (block sizes, `bd_stat`, `writeback_limit`)
// counts 4 KiB pages: rzram supports 4 KiB pages only (Kconfig refuses other
// page sizes; this guards the layout should that change).
const _: () = assert!(PAGE == 4096, "rzram supports 4 KiB pages only");

/// Seconds since boot, for slot access times: the coarse boot-time clock
/// (updated each tick, read without touching the clocksource), as upstream's
/// `ktime_get_boottime_seconds()`; the division is by a constant (a
/// multiplication once compiled).
pub(crate) fn now_secs() -> u32 {
    // SAFETY: ktime_get_coarse_with_offset has no preconditions; TK_OFFS_BOOT
    // is one of its offsets.
    let ns = unsafe { bindings::ktime_get_coarse_with_offset(bindings::tk_offsets_TK_OFFS_BOOT) };
    (ns as u64 / 1_000_000_000) as u32
}

/// Nanoseconds on a monotonic clock, for latencies; safe in any context.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: ktime_get_mono_fast_ns has no preconditions.
    unsafe { bindings::ktime_get_mono_fast_ns() }
}

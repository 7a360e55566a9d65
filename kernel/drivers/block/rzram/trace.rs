// SPDX-License-Identifier: GPL-2.0

//! rzram's tracepoints, defined in `include/trace/events/rzram.h`.

use kernel::{ffi::c_int, prelude::*};

mod raw {
    use kernel::ffi::c_int;

    kernel::declare_trace! {
        /// # Safety
        ///
        /// Always safe to call.
        pub(super) unsafe fn rzram_slot_access(dev: u32, index: u64, op: u32);
        /// # Safety
        ///
        /// Always safe to call.
        pub(super) unsafe fn rzram_wb_submit(dev: u32, index: u64, block: u64);
        /// # Safety
        ///
        /// Always safe to call.
        pub(super) unsafe fn rzram_wb_complete(
            dev: u32,
            index: u64,
            block: u64,
            latency_ns: u64,
            status: c_int,
        );
        /// # Safety
        ///
        /// Always safe to call.
        pub(super) unsafe fn rzram_bd_read(
            dev: u32,
            index: u64,
            block: u64,
            latency_ns: u64,
            status: c_int,
        );
    }
}

/// What a slot access did (the header's `RZRAM_ACCESS_*`).
#[derive(Clone, Copy)]
pub(crate) enum Access {
    Read = 0,
    Write = 1,
    Free = 2,
}

fn errno(status: &Result) -> c_int {
    match status {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// A slot was read, written or freed.
pub(crate) fn slot_access(dev: u32, index: usize, op: Access) {
    // SAFETY: tracepoints may be called from any context.
    unsafe { raw::rzram_slot_access(dev, index as u64, op as u32) }
}

/// A page was submitted for writeback to `block`.
pub(crate) fn wb_submit(dev: u32, index: usize, block: u64) {
    // SAFETY: tracepoints may be called from any context.
    unsafe { raw::rzram_wb_submit(dev, index as u64, block) }
}

/// A page's writeback completed after `latency_ns`.
pub(crate) fn wb_complete(dev: u32, index: usize, block: u64, latency_ns: u64, status: &Result) {
    // SAFETY: tracepoints may be called from any context.
    unsafe { raw::rzram_wb_complete(dev, index as u64, block, latency_ns, errno(status)) }
}

/// A written-back page was read from the backing device in `latency_ns`.
pub(crate) fn bd_read(dev: u32, index: usize, block: u64, latency_ns: u64, status: &Result) {
    // SAFETY: tracepoints may be called from any context.
    unsafe { raw::rzram_bd_read(dev, index as u64, block, latency_ns, errno(status)) }
}

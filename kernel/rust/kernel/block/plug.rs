// SPDX-License-Identifier: GPL-2.0

//! Plugging: batching the bios a task submits (`struct blk_plug`).
//!
//! While a plug is active, requests for blk-mq devices collect in the task's
//! plug list and are issued together (one doorbell for many requests) when
//! the plug is flushed or ends. A task that sleeps with requests plugged
//! also flushes them, but from the scheduler, which hands the dispatch to a
//! worker: flush explicitly before waiting for your own I/O.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use crate::{bindings, types::Opaque};

/// The current task's active plug, from [`with_plug`].
///
/// # Invariants
///
/// `active` is the plug the task installed (`current->plug`) when this one
/// was started: this plug itself, or an outer one that `blk_start_plug` left
/// in place (it then never initialised `plug`). It stays installed while the
/// [`Plug`] exists, which lives only in [`with_plug`]'s closure, on the task
/// that started it.
pub struct Plug {
    plug: Opaque<bindings::blk_plug>,
    active: *mut bindings::blk_plug,
}

impl Plug {
    /// Issues the requests collected so far by the task's active plug (the
    /// outermost one), from this task.
    pub fn flush(&self) {
        // SAFETY: `active` is the task's installed, initialised plug (type
        // invariant), and we run on that task.
        unsafe { bindings::__blk_flush_plug(self.active, false) };
    }
}

/// Runs `f` with the current task's bio submissions plugged, and issues what
/// was collected after it. Nests like the C API: only the outermost plug
/// holds requests.
pub fn with_plug<R>(f: impl FnOnce(&Plug) -> R) -> R {
    let mut plug = Plug {
        plug: Opaque::zeroed(),
        active: core::ptr::null_mut(),
    };
    // SAFETY: `plug.plug` stays in place (it is borrowed, not moved, while
    // `f` runs) until blk_finish_plug below removes it from the task.
    unsafe { bindings::blk_start_plug(plug.plug.get()) };
    // SAFETY: reads the running task's `plug` field, which only this task
    // changes.
    // INVARIANT: the plug blk_start_plug left installed: ours, or the outer
    // one.
    plug.active = unsafe { bindings::blk_current_plug() };
    let r = f(&plug);
    // SAFETY: started above by this task, which is still running it; this
    // flushes it and detaches it from the task (a no-op for a nested plug).
    unsafe { bindings::blk_finish_plug(plug.plug.get()) };
    r
}

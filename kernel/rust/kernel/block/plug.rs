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
pub struct Plug(Opaque<bindings::blk_plug>);

impl Plug {
    /// Issues the requests collected so far, from this task.
    pub fn flush(&self) {
        // SAFETY: the plug is the current task's active plug (it only exists
        // inside `with_plug`'s closure, run by the task that started it).
        unsafe { bindings::__blk_flush_plug(self.0.get(), false) };
    }
}

/// Runs `f` with the current task's bio submissions plugged, and issues what
/// was collected after it. Nests like the C API: only the outermost plug
/// holds requests.
pub fn with_plug<R>(f: impl FnOnce(&Plug) -> R) -> R {
    let plug = Plug(Opaque::zeroed());
    // SAFETY: `plug` stays in place (it is borrowed, not moved, while `f`
    // runs) until blk_finish_plug below removes it from the task.
    unsafe { bindings::blk_start_plug(plug.0.get()) };
    let r = f(&plug);
    // SAFETY: started above by this task, which is still running it; this
    // flushes it and detaches it from the task.
    unsafe { bindings::blk_finish_plug(plug.0.get()) };
    r
}

// SPDX-License-Identifier: GPL-2.0

//! The writeback bio set a device keeps ([`WbBios`]) and the queue its bios
//! complete to ([`WbQueue`]): the bios' end_io only puts a bio on the queue
//! and wakes the writer, which does the completion work in process context.

use super::WbReq;
use crate::backing::Backing;
use kernel::{
    block::bio_set::{BioSet, OwnedBio},
    new_condvar, new_spinlock_irq,
    prelude::*,
    sync::{CondVar, SpinLockIrq},
};

/// Bios in flight and what became of them. Taken in end_io: an IRQ lock.
struct Flight {
    /// Submitted and not yet through completion work.
    bios: usize,
    /// Completed by the device, waiting for completion work (room for a
    /// window and one, reserved before the first submit: the writer submits
    /// a bio as soon as there is room at the device, before it does the
    /// work of the bio that made it, so a window and one may be waiting).
    done: KVec<OwnedBio<WbReq>>,
    /// While the writer sleeps: it wants waking once at most this many bios
    /// are still at the device.
    waiting: Option<usize>,
}

impl Flight {
    /// Bios submitted and not yet completed by the device.
    fn at_device(&self) -> usize {
        self.bios - self.done.len()
    }

    /// Wakes the writer if it waits and few enough bios are still at the
    /// device.
    fn wake_writer(&self, drained: &CondVar) {
        if let Some(low) = self.waiting {
            if self.at_device() <= low {
                drained.notify_all();
            }
        }
    }
}

/// What the writeback bios' completions share, kept in their bio set.
#[pin_data]
pub(crate) struct WbQueue {
    #[pin]
    flight: SpinLockIrq<Flight>,
    #[pin]
    drained: CondVar,
}

// SAFETY: `flight` is only used under its lock, and what it holds (bios of
// the set, counters) may move between threads; the condition variable is
// thread-safe. (Stated rather than inferred: the bios in `flight` are of the
// set whose context this is, a cycle auto traits cannot see through.)
unsafe impl Send for WbQueue {}
// SAFETY: as above.
unsafe impl Sync for WbQueue {}

impl WbQueue {
    fn new(window: usize) -> Result<impl PinInit<Self, Error>> {
        let done = KVec::with_capacity(window.saturating_add(1), GFP_KERNEL)?;
        Ok(try_pin_init!(WbQueue {
            flight <- new_spinlock_irq!(Flight {
                bios: 0,
                done,
                waiting: None,
            }),
            drained <- new_condvar!(),
        }? Error))
    }

    /// A bio the device completed (end_io, any context): queued for the
    /// writer, which is woken if it waits for it.
    pub(super) fn arrived(&self, bio: OwnedBio<WbReq>) {
        let mut f = self.flight.lock();
        // Room for every bio in flight was reserved: this cannot fail.
        if let Err(e) = f.done.push_within_capacity(bio) {
            // Never free a bio here: keep it, leaked, and say so.
            core::mem::forget(e);
            pr_err!("writeback completion list overflow\n");
        }
        f.wake_writer(&self.drained);
        // Unlocking is the last access to the queue.
    }

    /// Bios submitted and not yet through completion work.
    pub(super) fn in_flight(&self) -> usize {
        self.flight.lock().bios
    }

    /// Bios submitted and not yet completed by the device.
    pub(super) fn at_device(&self) -> usize {
        self.flight.lock().at_device()
    }

    /// One more bio is about to be submitted.
    pub(super) fn submitting(&self) {
        self.flight.lock().bios += 1;
    }

    /// A bio's completion work is done.
    pub(super) fn finished(&self) {
        self.flight.lock().bios -= 1;
    }

    /// A completed bio, if one has arrived.
    pub(super) fn pop(&self) -> Option<OwnedBio<WbReq>> {
        self.flight.lock().done.pop()
    }

    /// Returns once at most `low` bios are at the device; those completed
    /// meanwhile wait for their completion work.
    pub(super) fn wait_at_device(&self, low: usize) {
        let mut f = self.flight.lock();
        while f.at_device() > low {
            f.waiting = Some(low);
            self.drained.wait(&mut f);
            f.waiting = None;
        }
    }

    /// A completed bio, waiting for one while more than `low` bios are at
    /// the device; `None` once at most `low` are in flight.
    pub(super) fn pop_or_wait(&self, low: usize) -> Option<OwnedBio<WbReq>> {
        let mut f = self.flight.lock();
        loop {
            if let Some(bio) = f.done.pop() {
                return Some(bio);
            }
            if f.bios <= low {
                return None;
            }
            f.waiting = Some(low);
            self.drained.wait(&mut f);
            f.waiting = None;
        }
    }

    /// No bio in flight or waiting for completion work.
    fn idle(&self) -> bool {
        let f = self.flight.lock();
        f.bios == 0 && f.done.is_empty()
    }
}

/// The writeback bio set, kept between `writeback` writes in the device's
/// configuration (so reset drops it, with the backing device it holds open).
///
/// Making a bio set per write, as rzram did, costs more than the write of a
/// page: `bioset_init` finds or creates the slab cache of its front pad, and
/// the last `bioset_exit` destroys that cache, which waits for RCU
/// (`kvfree_rcu_barrier_on_cache`). A `page_index=` write, the daemon's, took
/// 34 ms under TCG against upstream's 2.8 ms. Kept, a device with a backing
/// device holds one window of bios and one more in reserve (33 by default)
/// once it has written back.
pub(crate) struct WbBios {
    /// The window the reserve and the completion list were made for.
    window: usize,
    set: Pin<KBox<BioSet<WbReq>>>,
}

impl WbBios {
    /// A bio set for `window` bios in flight to `backing`.
    fn new(backing: &Backing, window: usize) -> Result<Self> {
        // The reserve holds a window of bios and the one being built while
        // they are in flight: writeback makes progress with no allocation of
        // bios under memory pressure. (With one bio fewer, the writer could
        // wait in the bio set for a bio that only its own completion work,
        // which it would then never do, gives back.)
        let reserve = u32::try_from(window.saturating_add(1)).unwrap_or(u32::MAX);
        let set = KBox::pin_init(
            BioSet::new(backing.file.clone(), reserve, false, WbQueue::new(window)?),
            GFP_KERNEL,
        )?;
        Ok(Self { window, set })
    }

    /// Whether this set serves `window` bios to `backing`. Every writeback
    /// ends with its bios through completion work; a set that did not is
    /// not used again.
    fn fits(&self, backing: &Backing, window: usize) -> bool {
        self.window == window
            && core::ptr::eq(self.set.bdev(), &*backing.file)
            && self.set.context().idle()
    }

    /// The kept set if it fits `window` and `backing`, else a new one (made
    /// before the old is dropped, so their slab cache stays).
    pub(super) fn get<'a>(
        kept: &'a mut Option<Self>,
        backing: &Backing,
        window: usize,
    ) -> Result<&'a BioSet<WbReq>> {
        let bios = match kept.take() {
            Some(k) if k.fits(backing, window) => k,
            // The old set, if any, is dropped at the end of the statement.
            _ => Self::new(backing, window)?,
        };
        Ok(&kept.insert(bios).set)
    }
}

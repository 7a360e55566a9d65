// SPDX-License-Identifier: GPL-2.0

//! A writeback bio's request ([`WbReq`]), kept in the bio's front pad: the
//! blocks it writes, the objects it carries and where each is, and what its
//! completion needs.

use super::{WbQueue, MAX_BIO_OBJECTS};
use crate::base::now_ns;
use core::mem::MaybeUninit;
use kernel::{
    block::bio_set::{EndIo, OwnedBio},
    prelude::*,
};

/// Where a slot's page (or object) is in a writeback bio.
#[derive(Clone, Copy)]
pub(super) struct WbObject {
    pub(super) index: u32,
    /// The bio's page, and so the block from its first.
    pub(super) page: u8,
    /// Packed, it runs on into the next page.
    pub(super) spans: bool,
    /// Byte offset in the page (0 unless packed).
    pub(super) offset: u16,
}

/// A writeback bio's request: up to `MAX_BIO_PAGES` pages (owned by the
/// bio) for consecutive blocks from `first_block`, holding `n` objects
/// (one a page, or several with `packed_writeback`).
///
/// Made in place in the bio's front pad with its objects uninitialised:
/// building the 1 KiB of them, and copying them there, cost a one-page bio
/// more than the rest of its request (a third of rzram's CPU per page at
/// `writeback_batch_size` 1 under TCG, in `memset` and `memcpy`).
///
/// # Invariants
///
/// `objects[..n]` are initialised, and `n <= MAX_BIO_OBJECTS`.
pub(crate) struct WbReq {
    pub(super) first_block: u64,
    /// Pages in the bio (blocks written).
    pub(super) pages: usize,
    n: usize,
    objects: [MaybeUninit<WbObject>; MAX_BIO_OBJECTS],
    /// Submit and completion times for `rzram_wb_complete`'s latency; 0
    /// (not read) when the tracepoint was off at submit.
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    /// The pages were charged to the writeback limit.
    pub(super) charged: bool,
    /// Not every page made it into the bio: complete it as failed.
    pub(super) broken: bool,
}

impl WbReq {
    /// A request for blocks from `first_block`, with no page and no object
    /// yet, made in place.
    pub(super) fn new(first_block: u64) -> impl Init<Self> {
        // INVARIANT: no object, `n == 0`.
        init!(Self {
            first_block,
            pages: 0,
            n: 0,
            // Left as it is: writing uninitialised memory is no store.
            objects: [const { MaybeUninit::uninit() }; MAX_BIO_OBJECTS],
            start_ns: 0,
            end_ns: 0,
            charged: false,
            broken: false,
        })
    }

    /// The objects in the bio.
    pub(super) fn objects(&self) -> &[WbObject] {
        // SAFETY: the first `n` are initialised (type invariant), and
        // `MaybeUninit<WbObject>` has `WbObject`'s layout.
        unsafe { core::slice::from_raw_parts(self.objects.as_ptr().cast(), self.n) }
    }

    /// How many objects the bio carries.
    pub(super) fn len(&self) -> usize {
        self.n
    }

    /// Whether another object fits.
    pub(super) fn has_room(&self) -> bool {
        self.n < MAX_BIO_OBJECTS
    }

    /// Adds an object; the caller checked [`WbReq::has_room`].
    pub(super) fn push(&mut self, o: WbObject) {
        if let Some(slot) = self.objects.get_mut(self.n) {
            slot.write(o);
            // INVARIANT: `objects[n]` was initialised just above.
            self.n += 1;
        }
    }
}

impl EndIo for WbReq {
    type Context = WbQueue;

    fn end_io(q: &WbQueue, mut bio: OwnedBio<Self>) {
        if bio.data().start_ns != 0 {
            bio.data_mut().end_ns = now_ns();
        }
        q.arrived(bio);
    }
}

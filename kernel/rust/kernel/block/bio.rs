// SPDX-License-Identifier: GPL-2.0

//! Block I/O requests (`struct bio`) as seen by bio-based drivers.
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h)
//! C header: [`include/linux/blk_types.h`](srctree/include/linux/blk_types.h)

use crate::{bindings, prelude::*};
use core::{mem::ManuallyDrop, ptr::NonNull};

/// The operation of a [`Bio`] (`enum req_op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BioOp {
    /// `REQ_OP_READ`.
    Read,
    /// `REQ_OP_WRITE`.
    Write,
    /// `REQ_OP_FLUSH`.
    Flush,
    /// `REQ_OP_DISCARD`.
    Discard,
    /// `REQ_OP_WRITE_ZEROES`.
    WriteZeroes,
    /// Any other operation, with its raw value.
    Other(u32),
}

impl BioOp {
    fn from_raw(op: bindings::req_op) -> Self {
        match op {
            bindings::req_op_REQ_OP_READ => Self::Read,
            bindings::req_op_REQ_OP_WRITE => Self::Write,
            bindings::req_op_REQ_OP_FLUSH => Self::Flush,
            bindings::req_op_REQ_OP_DISCARD => Self::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => Self::WriteZeroes,
            other => Self::Other(other),
        }
    }
}

/// A bio submitted to a bio-based driver, owned by the driver until it ends it.
///
/// A [`Bio`] must be ended with [`Bio::end`]. Dropping it without doing so
/// ends it with `BLK_STS_IOERR`, so the submitter is never left waiting.
///
/// # Invariants
///
/// `ptr` points to a valid `struct bio` that has been submitted to this
/// driver and not yet ended.
pub struct Bio {
    ptr: NonNull<bindings::bio>,
}

// SAFETY: a submitted bio may be completed from any thread.
unsafe impl Send for Bio {}

impl Bio {
    /// Takes ownership of a submitted bio.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid bio submitted to the caller's driver, and
    /// the caller must not end it by other means.
    pub unsafe fn from_raw(ptr: *mut bindings::bio) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            // SAFETY: the caller guarantees `ptr` is valid, hence non-null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
        }
    }

    /// The raw `struct bio` pointer.
    pub fn as_raw(&self) -> *mut bindings::bio {
        self.ptr.as_ptr()
    }

    fn raw(&self) -> &bindings::bio {
        // SAFETY: by the type invariant the bio is valid while we own it.
        unsafe { self.ptr.as_ref() }
    }

    /// The operation.
    pub fn op(&self) -> BioOp {
        // SAFETY: by the type invariant the bio is valid.
        BioOp::from_raw(unsafe { bindings::bio_op(self.ptr.as_ptr()) })
    }

    /// First sector (512 bytes) of the I/O.
    pub fn sector(&self) -> u64 {
        self.raw().bi_iter.bi_sector
    }

    /// Length of the I/O in bytes.
    pub fn size(&self) -> u32 {
        self.raw().bi_iter.bi_size
    }

    /// The raw `bi_opf` flags word.
    pub fn opf(&self) -> u32 {
        self.raw().bi_opf
    }

    /// The data segments, each within one page.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            bio: self,
            iter: self.raw().bi_iter,
        }
    }

    /// Ends the bio with `status` (an errno is translated to a `blk_status_t`).
    ///
    /// `Ok` keeps an error that a [`BioHold`] has already recorded; the bio
    /// completes once every hold has ended too.
    pub fn end(self, status: Result) {
        let this = ManuallyDrop::new(self);
        // SAFETY: by the type invariant we own the bio until this call ends it;
        // `this` is not used afterwards and its destructor does not run.
        unsafe { end_raw(this.ptr.as_ptr(), status) };
    }

    /// Makes the bio wait for one more completion: the returned hold must be
    /// ended (typically when I/O that serves part of this bio completes)
    /// before the bio completes, whenever [`Bio::end`] is called.
    pub fn hold(&self) -> BioHold {
        // SAFETY: the bio is valid and ours (type invariant); raising its
        // remaining count is what bio_chain does for a child.
        unsafe { bindings::bio_inc_remaining(self.ptr.as_ptr()) };
        BioHold { ptr: self.ptr }
    }
}

/// Records `status` (errors only, so an earlier error is not cleared) and
/// drops one completion reference of `bio`.
///
/// # Safety
///
/// `bio` must be valid and the caller must own one completion reference.
unsafe fn end_raw(bio: *mut bindings::bio, status: Result) {
    // SAFETY: per the caller.
    unsafe {
        if let Err(e) = status {
            (*bio).bi_status = e.to_blk_status();
        }
        bindings::bio_endio(bio);
    }
}

/// One pending completion of a [`Bio`], from [`Bio::hold`].
///
/// Ending it may complete the bio; dropping it without [`BioHold::end`] ends
/// it with an I/O error.
///
/// # Invariants
///
/// `ptr` is a valid bio whose remaining count includes one for this hold.
pub struct BioHold {
    ptr: NonNull<bindings::bio>,
}

// SAFETY: bio completion may happen in any context and thread.
unsafe impl Send for BioHold {}

impl BioHold {
    /// Ends this hold with `status`; may be called from interrupt context.
    pub fn end(self, status: Result) {
        let this = ManuallyDrop::new(self);
        // SAFETY: by the type invariant we own one completion reference.
        unsafe { end_raw(this.ptr.as_ptr(), status) };
    }
}

impl Drop for BioHold {
    fn drop(&mut self) {
        // SAFETY: as in `end`.
        unsafe { end_raw(self.ptr.as_ptr(), Err(EIO)) };
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we still own the bio; this ends it.
        unsafe { end_raw(self.ptr.as_ptr(), Err(EIO)) };
    }
}

/// One data segment of a [`Bio`]: `len` bytes at `offset` in one page.
pub struct Segment {
    page: NonNull<bindings::page>,
    offset: u32,
    len: u32,
}

impl Segment {
    /// The page holding the data: valid until the bio it came from ends,
    /// so I/O that fills it must hold the bio ([`Bio::hold`]).
    pub fn raw_page(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    /// Offset of the data within its page.
    pub fn offset(&self) -> usize {
        self.offset as usize
    }

    /// Length of the data in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps the segment's page and calls `f` with the segment's bytes.
    pub fn with_slice<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: the page belongs to a bio the driver owns; kmap_local_page
        // maps it for this context and kunmap_local below unmaps it.
        let base = unsafe { bindings::kmap_local_page(self.page.as_ptr()) }.cast::<u8>();
        // SAFETY: the bio's bvec says `len` bytes at `offset` lie within this page.
        let slice = unsafe {
            core::slice::from_raw_parts(base.add(self.offset as usize), self.len as usize)
        };
        let r = f(slice);
        // SAFETY: `base` was returned by kmap_local_page above; mappings are
        // released in reverse order because `f` cannot leak its borrow.
        unsafe { bindings::kunmap_local(base.cast()) };
        r
    }

    /// Maps the segment's page and calls `f` with the segment's bytes, writable.
    pub fn with_slice_mut<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: as in `with_slice`; for a read the page is the destination
        // buffer the submitter gave us to fill.
        let base = unsafe { bindings::kmap_local_page(self.page.as_ptr()) }.cast::<u8>();
        // SAFETY: as in `with_slice`, and nobody else accesses the bytes of a
        // bio in flight.
        let slice = unsafe {
            core::slice::from_raw_parts_mut(base.add(self.offset as usize), self.len as usize)
        };
        let r = f(slice);
        // SAFETY: as in `with_slice`.
        unsafe { bindings::kunmap_local(base.cast()) };
        r
    }
}

/// Iterator over the [`Segment`]s of a [`Bio`].
pub struct Segments<'a> {
    bio: &'a Bio,
    iter: bindings::bvec_iter,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        if self.iter.bi_size == 0 {
            return None;
        }
        // SAFETY: the bio is valid (type invariant of `Bio`) and `iter` is a
        // copy of its iterator that has not run past its end.
        let bv = unsafe { bindings::bio_iter_iovec(self.bio.as_raw(), self.iter) };
        // SAFETY: as above; advancing by the length of the current segment.
        unsafe { bindings::bio_advance_iter_single(self.bio.as_raw(), &mut self.iter, bv.bv_len) };
        Some(Segment {
            page: NonNull::new(bv.bv_page)?,
            offset: bv.bv_offset,
            len: bv.bv_len,
        })
    }
}

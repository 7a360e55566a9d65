// SPDX-License-Identifier: GPL-2.0

//! Block I/O requests (`struct bio`) as seen by bio-based drivers.
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h)
//! C header: [`include/linux/blk_types.h`](srctree/include/linux/blk_types.h)

use crate::{
    bindings,
    mm::shared::{with_mapped, SharedBytes, SharedBytesMut},
    prelude::*,
};
use core::{marker::PhantomData, mem::ManuallyDrop, ptr::NonNull};

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
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::bio) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            // SAFETY: the caller guarantees `ptr` is valid, hence non-null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
        }
    }

    /// The raw `struct bio` pointer.
    #[inline]
    pub(crate) fn as_raw(&self) -> *mut bindings::bio {
        self.ptr.as_ptr()
    }

    fn raw(&self) -> &bindings::bio {
        // SAFETY: by the type invariant the bio is valid while we own it.
        unsafe { self.ptr.as_ref() }
    }

    /// The operation.
    #[inline]
    pub fn op(&self) -> BioOp {
        // SAFETY: by the type invariant the bio is valid.
        BioOp::from_raw(unsafe { bindings::bio_op(self.ptr.as_ptr()) })
    }

    /// First sector (512 bytes) of the I/O.
    #[inline]
    pub fn sector(&self) -> u64 {
        self.raw().bi_iter.bi_sector
    }

    /// Length of the I/O in bytes.
    #[inline]
    pub fn size(&self) -> u32 {
        self.raw().bi_iter.bi_size
    }

    /// The raw `bi_opf` flags word.
    #[inline]
    pub fn opf(&self) -> u32 {
        self.raw().bi_opf
    }

    /// The request flags (`bi_opf` without the operation): what a bio made
    /// on behalf of this one carries over (`REQ_RAHEAD`, `REQ_SYNC`, ...).
    #[inline]
    pub fn flags(&self) -> u32 {
        self.opf() & !((1u32 << bindings::REQ_OP_BITS) - 1)
    }

    /// The data segments, each within one page.
    #[inline]
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            bio: self,
            iter: self.raw().bi_iter,
        }
    }

    /// Starts counting the bio in its disk's I/O statistics
    /// (`/sys/block/<disk>/stat`, `/proc/diskstats`); pass the result to
    /// [`Bio::end_io_acct`] when its work is done.
    #[inline]
    pub fn start_io_acct(&self) -> IoAcct {
        // SAFETY: the bio is valid and ours (type invariant).
        IoAcct(unsafe { bindings::bio_start_io_acct(self.ptr.as_ptr()) })
    }

    /// Ends the accounting started by [`Bio::start_io_acct`].
    #[inline]
    pub fn end_io_acct(&self, start: IoAcct) {
        // SAFETY: the bio is valid and ours (type invariant); `bi_bdev` is
        // the device it was accounted on.
        unsafe {
            bindings::bio_end_io_acct_remapped(
                self.ptr.as_ptr(),
                start.0,
                (*self.ptr.as_ptr()).bi_bdev,
            )
        };
    }

    /// Ends the bio with `status` (an errno is translated to a `blk_status_t`).
    ///
    /// `Ok` keeps an error that a [`BioHold`] has already recorded; the bio
    /// completes once every hold has ended too.
    #[inline]
    pub fn end(self, status: Result) {
        let this = ManuallyDrop::new(self);
        // SAFETY: by the type invariant we own the bio until this call ends it;
        // `this` is not used afterwards and its destructor does not run.
        unsafe { end_raw(this.ptr.as_ptr(), status) };
    }

    /// Makes the bio wait for one more completion: the returned hold must be
    /// ended (typically when I/O that serves part of this bio completes)
    /// before the bio completes, whenever [`Bio::end`] is called.
    #[inline]
    pub fn hold(&self) -> BioHold {
        // SAFETY: the bio is valid and ours (type invariant); raising its
        // remaining count is what bio_chain does for a child.
        unsafe { bindings::bio_inc_remaining(self.ptr.as_ptr()) };
        BioHold { ptr: self.ptr }
    }
}

/// The start of a bio's I/O accounting, from [`Bio::start_io_acct`].
pub struct IoAcct(crate::ffi::c_ulong);

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
    #[inline]
    pub fn end(self, status: Result) {
        let this = ManuallyDrop::new(self);
        // SAFETY: by the type invariant we own one completion reference.
        unsafe { end_raw(this.ptr.as_ptr(), status) };
    }
}

impl Drop for BioHold {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: as in `end`.
        unsafe { end_raw(self.ptr.as_ptr(), Err(EIO)) };
    }
}

impl Drop for Bio {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: by the type invariant we still own the bio; this ends it.
        unsafe { end_raw(self.ptr.as_ptr(), Err(EIO)) };
    }
}

/// One data segment of a [`Bio`]: `len` bytes at `offset` in one page.
///
/// # Invariants
///
/// `bio` is the bio the segment belongs to, owned by the driver for `'a`;
/// `page` is valid until it completes.
pub struct Segment<'a> {
    bio: NonNull<bindings::bio>,
    page: NonNull<bindings::page>,
    offset: u32,
    len: u32,
    _bio: PhantomData<&'a Bio>,
}

/// A [`Segment`] whose bio is held open ([`Segment::hold`]): its page stays
/// valid, and the bio does not complete, until the hold is ended.
pub struct HeldSegment {
    hold: BioHold,
    page: NonNull<bindings::page>,
    offset: u32,
    len: u32,
}

// SAFETY: the hold and the page may be used from any thread.
unsafe impl Send for HeldSegment {}

impl HeldSegment {
    /// The page, length and offset, valid while `self` exists.
    #[inline]
    pub(crate) fn raw_parts(&self) -> (*mut bindings::page, u32, u32) {
        (self.page.as_ptr(), self.len, self.offset)
    }

    /// Ends the hold with `status`: the bio completes once every other
    /// hold and its owner have ended it. May be called from interrupt
    /// context.
    #[inline]
    pub fn end(self, status: Result) {
        self.hold.end(status);
    }
}

impl Segment<'_> {
    /// Holds the segment's bio open for I/O that fills or reads the page
    /// later, after the driver has ended the bio itself.
    #[inline]
    pub fn hold(self) -> HeldSegment {
        // SAFETY: the bio is valid and owned by the driver (type invariant);
        // raising its remaining count is what bio_chain does for a child.
        unsafe { bindings::bio_inc_remaining(self.bio.as_ptr()) };
        HeldSegment {
            // INVARIANT: one more completion reference, taken above.
            hold: BioHold { ptr: self.bio },
            page: self.page,
            offset: self.offset,
            len: self.len,
        }
    }

    /// Offset of the data within its page.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset as usize
    }

    /// Length of the data in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the segment is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` with the segment's bytes, mapped for this context
    /// (`kmap_local_page`, as upstream zram compresses straight from the
    /// page). The page may be a user page (O_DIRECT) that userspace changes
    /// meanwhile, so `f` sees [`SharedBytes`], never a Rust slice.
    #[inline]
    pub fn with_bytes<R>(&self, f: impl FnOnce(SharedBytes<'_>) -> R) -> R {
        let (offset, len) = (self.offset as usize, self.len());
        let mapped = |base: *mut u8| {
            // SAFETY: the bvec says `len` bytes at `offset` lie within the
            // page, which stays mapped until `f` returns.
            f(unsafe { SharedBytes::from_raw(base.add(offset), len) })
        };
        // SAFETY: the page belongs to a bio the driver owns (type invariant).
        unsafe { with_mapped(self.page.as_ptr(), mapped) }
    }

    /// Calls `f` with the segment's bytes (a read's destination), mapped
    /// writable, as [`Segment::with_bytes`]; then flushes the page from the
    /// data cache (`flush_dcache_page`, as `memcpy_to_page` does), which
    /// architectures with aliasing caches need before a user mapping of
    /// the page sees the bytes.
    #[inline]
    pub fn with_bytes_mut<R>(&mut self, f: impl FnOnce(SharedBytesMut<'_>) -> R) -> R {
        let (offset, len) = (self.offset as usize, self.len());
        let mapped = |base: *mut u8| {
            // SAFETY: as in `with_bytes`; `&mut self` gives the driver's only
            // writer of the segment.
            f(unsafe { SharedBytesMut::from_raw(base.add(offset), len) })
        };
        // SAFETY: the page belongs to a bio the driver owns (type invariant).
        let r = unsafe { with_mapped(self.page.as_ptr(), mapped) };
        // SAFETY: the page is valid (it belongs to the bio).
        unsafe { bindings::flush_dcache_page(self.page.as_ptr()) };
        r
    }

    /// Copies the segment's bytes into `dst` (at most its length).
    #[inline]
    pub fn copy_to(&self, dst: &mut [u8]) {
        self.with_bytes(|b| b.copy_to(dst));
    }

    /// Copies `src` into the segment's bytes (at most its length).
    #[inline]
    pub fn copy_from(&mut self, src: &[u8]) {
        self.with_bytes_mut(|mut b| b.copy_from(src));
    }
}

/// Iterator over the [`Segment`]s of a [`Bio`].
pub struct Segments<'a> {
    bio: &'a Bio,
    iter: bindings::bvec_iter,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    #[inline]
    fn next(&mut self) -> Option<Segment<'a>> {
        if self.iter.bi_size == 0 {
            return None;
        }
        // SAFETY: the bio is valid (type invariant of `Bio`) and `iter` is a
        // copy of its iterator that has not run past its end.
        let bv = unsafe { bindings::bio_iter_iovec(self.bio.as_raw(), self.iter) };
        // SAFETY: as above; advancing by the length of the current segment.
        unsafe { bindings::bio_advance_iter_single(self.bio.as_raw(), &mut self.iter, bv.bv_len) };
        // INVARIANT: a segment of `self.bio`, borrowed for `'a`.
        Some(Segment {
            bio: self.bio.ptr,
            page: NonNull::new(bv.bv_page)?,
            offset: bv.bv_offset,
            len: bv.bv_len,
            _bio: PhantomData,
        })
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Bytes that others may access while we do: a mapped page that a user
//! mapping (an `O_DIRECT` buffer) or another CPU can read and write
//! concurrently.
//!
//! Such memory must never be seen as a Rust slice (a `&[u8]` promises that
//! nothing changes it, a `&mut [u8]` that nothing else sees it); it is
//! reached only through raw-memory primitives: `memcpy`, volatile loads, and
//! C functions (a compressor) given a pointer and a length, as C drivers
//! use a `kmap_local_page` mapping. What another party does meanwhile may
//! make the bytes read or written inconsistent, never an access out of
//! bounds.
//!
//! Ordinary slices convert into these types, so one function serves both.

use crate::{
    bindings,
    page::{Page, PAGE_SIZE},
};
use core::marker::PhantomData;

/// `len` readable bytes at `ptr` that others may change meanwhile.
///
/// # Invariants
///
/// `ptr` is valid for reads of `len` bytes for `'a`.
#[derive(Clone, Copy)]
pub struct SharedBytes<'a> {
    ptr: *const u8,
    len: usize,
    _bytes: PhantomData<&'a [u8]>,
}

impl<'a> SharedBytes<'a> {
    /// Bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is valid for reads of `len` bytes for `'a`.
    #[inline]
    pub unsafe fn from_raw(ptr: *const u8, len: usize) -> Self {
        // INVARIANT: by the function's safety requirements.
        Self {
            ptr,
            len,
            _bytes: PhantomData,
        }
    }

    /// The first byte, valid for reads of [`SharedBytes::len`] bytes.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The number of bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the first `dst.len()` bytes (at most [`SharedBytes::len`]) into `dst`.
    #[inline]
    pub fn copy_to(&self, dst: &mut [u8]) {
        let n = dst.len().min(self.len);
        // SAFETY: by the type invariant `ptr` is valid for `n` reads; `dst`
        // is ours, and a slice we hold exclusively does not overlap memory
        // others may access.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr, dst.as_mut_ptr(), n) };
    }

    /// The word that fills the bytes, if one does (a page of zeroes, or of
    /// one repeated pattern); `None` for bytes that are not whole aligned
    /// words. Each word is read once, with a volatile load.
    #[inline]
    pub fn same_filled(&self) -> Option<u64> {
        const W: usize = core::mem::size_of::<u64>();
        if self.len < W || self.len % W != 0 || self.ptr.align_offset(W) != 0 {
            return None;
        }
        let words = self.ptr.cast::<u64>();
        // SAFETY: `ptr` is aligned for u64 and valid for `len` >= 8 bytes.
        let first = unsafe { words.read_volatile() };
        for i in 1..self.len / W {
            // SAFETY: word `i` lies within the `len` readable bytes.
            if unsafe { words.add(i).read_volatile() } != first {
                return None;
            }
        }
        Some(first)
    }
}

impl<'a> From<&'a [u8]> for SharedBytes<'a> {
    fn from(s: &'a [u8]) -> Self {
        // INVARIANT: a slice is valid for reads of its length for its lifetime.
        Self {
            ptr: s.as_ptr(),
            len: s.len(),
            _bytes: PhantomData,
        }
    }
}

/// `len` writable bytes at `ptr` that others may read or change meanwhile.
///
/// # Invariants
///
/// `ptr` is valid for reads and writes of `len` bytes for `'a`.
pub struct SharedBytesMut<'a> {
    ptr: *mut u8,
    len: usize,
    _bytes: PhantomData<&'a mut [u8]>,
}

impl SharedBytesMut<'_> {
    /// Calls `f` with the bytes of `page`, mapped for the call
    /// (`kmap_local_page`): where a C driver writes into a page it owns
    /// through its mapping (a decompressor writing the page of a bio), with
    /// no bounce buffer. Whoever else holds a reference to the page may
    /// access it meanwhile; the bytes are shared.
    #[inline]
    pub fn with_page<R>(page: &Page, f: impl FnOnce(SharedBytesMut<'_>) -> R) -> R {
        let mapped = |base: *mut u8| {
            // SAFETY: `base` maps the page's PAGE_SIZE bytes, valid for reads
            // and writes until they are unmapped, after `f` returns.
            f(unsafe { SharedBytesMut::from_raw(base, PAGE_SIZE) })
        };
        // SAFETY: `page` is a valid page (it is borrowed for the call).
        unsafe { with_mapped(page.as_ptr(), mapped) }
    }
}

/// Calls `f` with the address `page` is mapped at for the call
/// (`kmap_local_page`; `kunmap_local` once `f` returns). For the bytes'
/// wrappers, which give `f` the page's bytes, or a part of them.
///
/// # Safety
///
/// `page` must be a valid page for the call.
#[inline]
pub(crate) unsafe fn with_mapped<R>(page: *mut bindings::page, f: impl FnOnce(*mut u8) -> R) -> R {
    // SAFETY: `page` is valid (the caller); kmap_local_page maps all of it
    // until the kunmap_local below.
    let base = unsafe { bindings::kmap_local_page(page) }.cast::<u8>();
    let r = f(base);
    // SAFETY: mapped just above, by this context; any local mapping `f`
    // made was undone when it returned (local mappings nest as a stack).
    unsafe { bindings::kunmap_local(base.cast()) };
    r
}

impl<'a> SharedBytesMut<'a> {
    /// Bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is valid for reads and writes of `len` bytes for `'a`.
    #[inline]
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> Self {
        // INVARIANT: by the function's safety requirements.
        Self {
            ptr,
            len,
            _bytes: PhantomData,
        }
    }

    /// The same bytes, borrowed for a shorter time (to hand on, and use
    /// again afterwards).
    #[inline]
    pub fn reborrow(&mut self) -> SharedBytesMut<'_> {
        // INVARIANT: a shorter borrow of bytes valid for `'a`.
        SharedBytesMut {
            ptr: self.ptr,
            len: self.len,
            _bytes: PhantomData,
        }
    }

    /// The `len` bytes from `start`, or `None` if they are not all within.
    #[inline]
    pub fn range(self, start: usize, len: usize) -> Option<SharedBytesMut<'a>> {
        if start.checked_add(len)? > self.len {
            return None;
        }
        // INVARIANT: bytes `start..start + len` lie within the `len` bytes
        // valid for `'a`.
        Some(SharedBytesMut {
            // SAFETY: `start <= self.len`, so the pointer stays within (or
            // one past) the bytes.
            ptr: unsafe { self.ptr.add(start) },
            len,
            _bytes: PhantomData,
        })
    }

    /// The first byte, valid for reads and writes of [`SharedBytesMut::len`] bytes.
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    /// The number of bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` (at most [`SharedBytesMut::len`] bytes of it) into the
    /// first bytes.
    #[inline]
    pub fn copy_from(&mut self, src: &[u8]) {
        let n = src.len().min(self.len);
        // SAFETY: by the type invariant `ptr` is valid for `n` writes; `src`
        // is a slice, which does not overlap memory others may access.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr, n) };
    }

    /// Fills the bytes with `word`, repeated (a same-filled page); bytes
    /// past the last whole word are left as they are.
    #[inline]
    pub fn fill_words(&mut self, word: u64) {
        const W: usize = core::mem::size_of::<u64>();
        let whole = self.len - self.len % W;
        if word == 0 {
            // SAFETY: by the type invariant `ptr` is valid for `whole`
            // <= `len` writes.
            unsafe { core::ptr::write_bytes(self.ptr, 0, whole) };
            return;
        }
        let bytes = word.to_ne_bytes();
        for i in (0..whole).step_by(W) {
            // SAFETY: bytes `i..i + W` lie within the `len` writable bytes;
            // `bytes` is ours.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(i), W) };
        }
    }
}

impl<'a> From<&'a mut [u8]> for SharedBytesMut<'a> {
    fn from(s: &'a mut [u8]) -> Self {
        // INVARIANT: a mutable slice is valid for reads and writes of its
        // length for its lifetime.
        Self {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _bytes: PhantomData,
        }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! zsmalloc: a memory allocator for compressed pages.
//!
//! C header: [`include/linux/zsmalloc.h`](srctree/include/linux/zsmalloc.h)

use crate::{
    alloc::Flags,
    bindings,
    mm::shared::{with_mapped, SharedBytes, SharedBytesMut},
    page::PAGE_SIZE,
    prelude::*,
};
use core::ptr::NonNull;

/// A handle to an object in a [`ZsPool`]; freed with [`ZsPool::free`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZsHandle(usize);

impl ZsHandle {
    /// The raw handle value (to keep it in a packed table).
    #[inline]
    pub fn to_raw(self) -> usize {
        self.0
    }

    /// A handle from [`ZsHandle::to_raw`].
    ///
    /// # Safety
    ///
    /// `raw` must come from `to_raw` of a handle of the pool it is used with,
    /// not yet freed.
    #[inline]
    pub unsafe fn from_raw(raw: usize) -> Self {
        Self(raw)
    }
}

/// A zsmalloc pool.
///
/// # Invariants
///
/// `pool` is a pool created by `zs_create_pool` and not yet destroyed.
pub struct ZsPool {
    pool: NonNull<bindings::zs_pool>,
}

// SAFETY: zsmalloc pools are used from any CPU; the C code does its locking.
unsafe impl Send for ZsPool {}
// SAFETY: as above.
unsafe impl Sync for ZsPool {}

impl ZsPool {
    /// Creates a pool named `name` (its zsmalloc statistics directory in
    /// debugfs and its shrinker carry the name; upstream zram gives each
    /// pool its disk's name).
    pub fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is a valid NUL-terminated string; zs_create_pool
        // copies it (kstrdup), so it need not outlive the call.
        let pool = unsafe { bindings::zs_create_pool(name.as_char_ptr()) };
        Ok(Self {
            pool: NonNull::new(pool).ok_or(ENOMEM)?,
        })
    }

    /// Allocates an object of `size` bytes (at most a page).
    #[inline]
    pub fn malloc(&self, size: usize, flags: Flags) -> Result<ZsHandle> {
        // SAFETY: the pool is valid (type invariant).
        let h = unsafe {
            bindings::zs_malloc(
                self.pool.as_ptr(),
                size,
                flags.as_raw(),
                bindings::NUMA_NO_NODE,
            )
        };
        // zs_malloc returns an ERR_PTR-encoded errno on failure.
        if h >= (-(bindings::MAX_ERRNO as isize)) as usize {
            return Err(Error::from_errno(h as i32));
        }
        Ok(ZsHandle(h as usize))
    }

    /// Frees an object.
    ///
    /// # Safety
    ///
    /// `h` must be a live handle of this pool, not used afterwards.
    #[inline]
    pub unsafe fn free(&self, h: ZsHandle) {
        // SAFETY: guaranteed by the caller.
        unsafe { bindings::zs_free(self.pool.as_ptr(), h.0) };
    }

    /// Copies `data` (a slice, or bytes others may change meanwhile) into
    /// the object.
    ///
    /// # Safety
    ///
    /// `h` must be a live handle of this pool for an object of at least
    /// `data.len()` bytes, not accessed concurrently.
    #[inline]
    pub unsafe fn write<'d>(&self, h: ZsHandle, data: impl Into<SharedBytes<'d>>) {
        let data = data.into();
        // SAFETY: guaranteed by the caller; `data` is valid for its length
        // (type invariant), and zs_obj_write only reads it.
        unsafe {
            bindings::zs_obj_write(
                self.pool.as_ptr(),
                h.0,
                data.as_ptr().cast_mut().cast(),
                data.len(),
            )
        };
    }

    /// Calls `f` with the object's `len` bytes: mapped in place, or, for an
    /// object that spans two pages, gathered into `local`.
    ///
    /// # Safety
    ///
    /// `h` must be a live handle of this pool for an object of `len` bytes,
    /// not written concurrently, and `local` must be at least `len` bytes.
    #[inline]
    pub unsafe fn read<R>(
        &self,
        h: ZsHandle,
        len: usize,
        local: &mut [u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        debug_assert!(local.len() >= len);
        // SAFETY: guaranteed by the caller; `local` is a buffer of at least
        // `len` bytes for objects that span two pages.
        let p = unsafe {
            bindings::zs_obj_read_begin(self.pool.as_ptr(), h.0, len, local.as_mut_ptr().cast())
        };
        // SAFETY: zs_obj_read_begin returns a mapping of `len` readable bytes
        // until zs_obj_read_end.
        let r = f(unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) });
        // SAFETY: ends the access begun above.
        unsafe { bindings::zs_obj_read_end(self.pool.as_ptr(), h.0, len, p) };
        r
    }

    /// Copies the object into `parts`, in order: an object of as many bytes
    /// as the parts hold together, which may run on from one part into the
    /// next (the pages of a bio it is written back in). Each byte is copied
    /// once and no bounce buffer is needed, wherever zsmalloc keeps the
    /// object: `zs_obj_read_sg_begin` locates its piece in one page, or its
    /// two pieces in two, which are mapped in turn.
    ///
    /// # Safety
    ///
    /// `h` must be a live handle of this pool for an object of as many bytes
    /// as `parts` hold together, not written concurrently.
    #[inline]
    pub unsafe fn copy_to(&self, h: ZsHandle, parts: &mut [SharedBytesMut<'_>]) {
        let len: usize = parts.iter().map(SharedBytesMut::len).sum();
        // SAFETY: all-zero is a valid scatterlist entry (no page, empty).
        let mut sg: [bindings::scatterlist; 2] = unsafe { core::mem::zeroed() };
        // SAFETY: guaranteed by the caller; `sg` has room for the two entries
        // of an object that spans two pages.
        unsafe { bindings::zs_obj_read_sg_begin(self.pool.as_ptr(), h.0, sg.as_mut_ptr(), len) };
        let mut out = PartsWriter {
            parts,
            part: 0,
            at: 0,
        };
        let mut left = len;
        for piece in &mut sg {
            if left == 0 {
                break;
            }
            let (offset, n) = (piece.offset as usize, (piece.length as usize).min(left));
            let copy = |base: *mut u8| {
                // SAFETY: `base` maps the piece's page, whose bytes `offset..
                // offset + n` are the object's (zs_obj_read_sg_begin), not
                // written concurrently (the caller) and not in any part (the
                // parts are the caller's, the page the pool's).
                unsafe { out.write(base.add(offset), n) }
            };
            // SAFETY: zs_obj_read_sg_begin set `piece` to a page of the object,
            // which stays valid (kept from migration, and the object alive)
            // until zs_obj_read_sg_end.
            unsafe { with_mapped(bindings::sg_page(piece), copy) };
            left -= n;
        }
        // SAFETY: ends the access begun above.
        unsafe { bindings::zs_obj_read_sg_end(self.pool.as_ptr(), h.0) };
    }

    /// Calls `f` with the bytes of a whole-page object, mapped in place: an
    /// object of `PAGE_SIZE` bytes has a zspage page of its own (the huge
    /// class), so unlike [`ZsPool::read`] it needs no bounce buffer.
    ///
    /// # Safety
    ///
    /// `h` must be a live handle of this pool for an object of `PAGE_SIZE`
    /// bytes, not written concurrently.
    #[inline]
    pub unsafe fn read_page<R>(&self, h: ZsHandle, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: guaranteed by the caller. A `PAGE_SIZE` object starts at
        // offset 0 of its page (huge zspages have no handle header), so
        // zs_obj_read_begin maps it in place and never uses `local_copy`
        // (NULL here), as upstream zram's read_incompressible_page relies on.
        let p = unsafe {
            bindings::zs_obj_read_begin(self.pool.as_ptr(), h.0, PAGE_SIZE, core::ptr::null_mut())
        };
        // SAFETY: zs_obj_read_begin returns a mapping of `PAGE_SIZE` readable
        // bytes until zs_obj_read_end.
        let r = f(unsafe { core::slice::from_raw_parts(p.cast::<u8>(), PAGE_SIZE) });
        // SAFETY: ends the access begun above.
        unsafe { bindings::zs_obj_read_end(self.pool.as_ptr(), h.0, PAGE_SIZE, p) };
        r
    }

    /// Pages the pool uses, fragmentation included.
    #[inline]
    pub fn total_pages(&self) -> u64 {
        // SAFETY: the pool is valid.
        unsafe { bindings::zs_get_total_pages(self.pool.as_ptr()) as u64 }
    }

    /// Objects of this size or more take a whole page: store them uncompressed.
    pub fn huge_class_size(&self) -> usize {
        // SAFETY: the pool is valid.
        unsafe { bindings::zs_huge_class_size(self.pool.as_ptr()) }
    }

    /// The size class an object of `size` bytes goes to: objects in the same
    /// class take the same room, so a smaller object only saves memory if
    /// its class is lower.
    #[inline]
    pub fn class_index(&self, size: usize) -> u32 {
        // SAFETY: the pool is valid; any size is accepted (clamped by C).
        unsafe { bindings::zs_lookup_class_index(self.pool.as_ptr(), size as u32) }
    }

    /// Compacts the pool; returns the number of pages freed.
    pub fn compact(&self) -> u64 {
        // SAFETY: the pool is valid.
        unsafe { bindings::zs_compact(self.pool.as_ptr()) as u64 }
    }
}

impl Drop for ZsPool {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the pool is live; all handles are
        // gone because `free` needs `&self`, which outlives no handle user.
        unsafe { bindings::zs_destroy_pool(self.pool.as_ptr()) };
    }
}

/// Writes bytes into a sequence of parts, each filled before the next.
struct PartsWriter<'p, 'a> {
    parts: &'p mut [SharedBytesMut<'a>],
    /// The part being filled, and its bytes filled.
    part: usize,
    at: usize,
}

impl PartsWriter<'_, '_> {
    /// Appends `n` bytes from `src`; what is beyond the parts' room is left
    /// out.
    ///
    /// # Safety
    ///
    /// `src` must be valid for reads of `n` bytes and not overlap the parts.
    #[inline]
    unsafe fn write(&mut self, mut src: *const u8, mut n: usize) {
        while n > 0 {
            let Some(part) = self.parts.get_mut(self.part) else {
                return;
            };
            let k = (part.len() - self.at).min(n);
            if k == 0 {
                self.part += 1;
                self.at = 0;
                continue;
            }
            // SAFETY: `at + k <= part.len()`, and a part is valid for writes
            // of its length (type invariant); `src` is valid for reads of
            // `n >= k` bytes and does not overlap it (the caller).
            unsafe { core::ptr::copy_nonoverlapping(src, part.as_mut_ptr().add(self.at), k) };
            self.at += k;
            n -= k;
            // SAFETY: `k <= n`: still within (or one past) `src`'s bytes.
            src = unsafe { src.add(k) };
        }
    }
}

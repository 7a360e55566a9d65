// SPDX-License-Identifier: GPL-2.0

//! Zstandard compression from the kernel's own library (`lib/zstd`), with
//! caller-owned workspaces (no allocation per call).
//!
//! C header: [`include/linux/zstd.h`](srctree/include/linux/zstd.h)

use crate::{
    alloc::VVec,
    bindings,
    mm::shared::{SharedBytes, SharedBytesMut},
    prelude::*,
};
use core::ptr::NonNull;

/// The default compression level (`zstd_default_clevel()`).
pub fn default_level() -> i32 {
    // SAFETY: no preconditions.
    unsafe { bindings::zstd_default_clevel() }
}

fn zeroed_workspace(size: usize) -> Result<VVec<u8>> {
    let mut ws = VVec::with_capacity(size, GFP_KERNEL)?;
    ws.resize(size, 0, GFP_KERNEL)?;
    Ok(ws)
}

/// A compression context, sized for inputs of about `src_size` bytes.
pub struct Compressor {
    // Keeps the memory `cctx` lives in.
    _ws: VVec<u8>,
    cctx: NonNull<bindings::zstd_cctx>,
    params: bindings::zstd_parameters,
}

// SAFETY: the context is plain memory owned by this value; `compress` takes
// `&mut self`, so it is never used from two threads at once.
unsafe impl Send for Compressor {}

impl Compressor {
    /// A context for `level` and inputs of about `src_size` bytes.
    pub fn new(level: i32, src_size: usize) -> Result<Self> {
        // SAFETY: no preconditions.
        let params = unsafe { bindings::zstd_get_params(level, src_size as u64) };
        // SAFETY: `params.cParams` is a valid parameter set from zstd itself.
        let size = unsafe { bindings::zstd_cctx_workspace_bound(&params.cParams) };
        let mut ws = zeroed_workspace(size)?;
        // SAFETY: `ws` has `size` bytes and outlives the context (same struct).
        let cctx = unsafe { bindings::zstd_init_cctx(ws.as_mut_ptr().cast(), size) };
        Ok(Self {
            cctx: NonNull::new(cctx).ok_or(ENOMEM)?,
            _ws: ws,
            params,
        })
    }

    /// Compresses `src` (a slice, or bytes others may change meanwhile: the
    /// output is then inconsistent, never out of `dst`) into `dst`; `None`
    /// when it does not fit.
    pub fn compress<'s>(
        &mut self,
        src: impl Into<SharedBytes<'s>>,
        dst: &mut [u8],
    ) -> Option<usize> {
        let src = src.into();
        // SAFETY: the buffers are valid for their lengths (`src` by its type
        // invariant) and the context is exclusively ours (`&mut self`).
        let n = unsafe {
            bindings::zstd_compress_cctx(
                self.cctx.as_ptr(),
                dst.as_mut_ptr().cast(),
                dst.len(),
                src.as_ptr().cast(),
                src.len(),
                &self.params,
            )
        };
        // SAFETY: no preconditions.
        (unsafe { bindings::zstd_is_error(n) } == 0).then_some(n)
    }
}

/// A decompression context.
pub struct Decompressor {
    _ws: VVec<u8>,
    dctx: NonNull<bindings::zstd_dctx>,
}

// SAFETY: as for `Compressor`.
unsafe impl Send for Decompressor {}

impl Decompressor {
    /// Allocates a context.
    pub fn new() -> Result<Self> {
        // SAFETY: no preconditions.
        let size = unsafe { bindings::zstd_dctx_workspace_bound() };
        let mut ws = zeroed_workspace(size)?;
        // SAFETY: `ws` has `size` bytes and outlives the context.
        let dctx = unsafe { bindings::zstd_init_dctx(ws.as_mut_ptr().cast(), size) };
        Ok(Self {
            dctx: NonNull::new(dctx).ok_or(ENOMEM)?,
            _ws: ws,
        })
    }

    /// Decompresses `src` into `dst` (a slice, or bytes others may access
    /// meanwhile), which must receive exactly `dst.len()` bytes.
    pub fn decompress<'d>(&mut self, src: &[u8], dst: impl Into<SharedBytesMut<'d>>) -> Result {
        let mut dst = dst.into();
        // SAFETY: the buffers are valid for their lengths (`dst` by its type
        // invariant); zstd bounds every access by them, whatever `dst`
        // holds; the context is ours.
        let n = unsafe {
            bindings::zstd_decompress_dctx(
                self.dctx.as_ptr(),
                dst.as_mut_ptr().cast(),
                dst.len(),
                src.as_ptr().cast(),
                src.len(),
            )
        };
        // SAFETY: no preconditions.
        if unsafe { bindings::zstd_is_error(n) } == 0 && n == dst.len() {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }
}

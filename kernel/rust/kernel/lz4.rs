// SPDX-License-Identifier: GPL-2.0

//! LZ4 compression from the kernel's own library (`lib/lz4`).
//!
//! C header: [`include/linux/lz4.h`](srctree/include/linux/lz4.h)

use crate::{
    alloc::KVec,
    bindings,
    mm::shared::{SharedBytes, SharedBytesMut},
    prelude::*,
};

/// Bytes of working memory one compression needs (`LZ4_MEM_COMPRESS`,
/// which is `LZ4_STREAMSIZE_U64 * sizeof(unsigned long long)` in C).
pub const MEM_COMPRESS: usize = bindings::LZ4_STREAMSIZE_U64 as usize * core::mem::size_of::<u64>();

/// The state for one LZ4 compression at a time.
pub struct Lz4 {
    wrkmem: KVec<u8>,
}

impl Lz4 {
    /// Allocates the working memory.
    pub fn new() -> Result<Self> {
        let mut wrkmem = KVec::with_capacity(MEM_COMPRESS, GFP_KERNEL)?;
        wrkmem.resize(MEM_COMPRESS, 0, GFP_KERNEL)?;
        Ok(Self { wrkmem })
    }

    /// Compresses `src` (a slice, or bytes others may change meanwhile: the
    /// output is then inconsistent, never out of `dst`) into `dst`; `None`
    /// when it does not fit in `dst`.
    pub fn compress<'s>(
        &mut self,
        src: impl Into<SharedBytes<'s>>,
        dst: &mut [u8],
    ) -> Option<usize> {
        let src = src.into();
        let src_len = i32::try_from(src.len()).ok()?;
        let dst_len = i32::try_from(dst.len()).unwrap_or(i32::MAX);
        // SAFETY: the buffers are valid for the given lengths (`src` by its
        // type invariant) and `wrkmem` has LZ4_MEM_COMPRESS bytes,
        // exclusively ours (`&mut self`).
        let n = unsafe {
            bindings::LZ4_compress_default(
                src.as_ptr().cast(),
                dst.as_mut_ptr().cast(),
                src_len,
                dst_len,
                self.wrkmem.as_mut_ptr().cast(),
            )
        };
        (n > 0).then_some(n as usize)
    }
}

/// Decompresses `src` into `dst` (a slice, or bytes others may access
/// meanwhile), which must receive exactly `dst.len()` bytes.
pub fn decompress<'d>(src: &[u8], dst: impl Into<SharedBytesMut<'d>>) -> Result {
    let mut dst = dst.into();
    let src_len = i32::try_from(src.len()).map_err(|_| EINVAL)?;
    let dst_len = i32::try_from(dst.len()).map_err(|_| EINVAL)?;
    // SAFETY: both buffers are valid for their lengths (`dst` by its type
    // invariant); the "safe" variant never reads or writes outside them,
    // whatever `dst` holds.
    let n = unsafe {
        bindings::LZ4_decompress_safe(
            src.as_ptr().cast(),
            dst.as_mut_ptr().cast(),
            src_len,
            dst_len,
        )
    };
    if n == dst_len {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

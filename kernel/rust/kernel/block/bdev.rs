// SPDX-License-Identifier: GPL-2.0

//! Block devices opened by a driver, for I/O of its own (a backing device).
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use crate::{bindings, error::from_err_ptr, prelude::*, str::CStr};
use core::ptr::NonNull;

/// A block device opened read-write and exclusively through its path, as a
/// `struct file`; closed when dropped.
///
/// # Invariants
///
/// `file` is a file opened by `filp_open` on a block device and owned by this
/// object; its `file_bdev` is valid for as long as the file is open.
pub struct BdevFile {
    file: NonNull<bindings::file>,
}

// SAFETY: an open file may be used and closed from any thread.
unsafe impl Send for BdevFile {}
// SAFETY: the methods taking `&self` only read the file's block device.
unsafe impl Sync for BdevFile {}

impl BdevFile {
    /// Opens the block device at `path` for reading and writing, exclusively
    /// (`O_EXCL`: nobody else may hold it open exclusively, mount it or swap
    /// on it while we have it).
    ///
    /// Fails with `ENOTBLK` when `path` is not a block device and with the
    /// errno of the open otherwise (`ENOENT`, `EBUSY`, `EACCES`, ...).
    pub fn open(path: &CStr) -> Result<Self> {
        let flags = bindings::O_RDWR | bindings::O_LARGEFILE | bindings::O_EXCL;
        // SAFETY: `path` is a valid NUL-terminated string.
        let file =
            from_err_ptr(unsafe { bindings::filp_open(path.as_char_ptr(), flags as i32, 0) })?;
        let file = NonNull::new(file).ok_or(EINVAL)?;
        // SAFETY: `file` was just opened, so its mapping and inode are valid.
        let mode = unsafe { (*(*(*file.as_ptr()).f_mapping).host).i_mode };
        if u32::from(mode) & bindings::S_IFMT != bindings::S_IFBLK {
            // SAFETY: we opened `file` above and nobody else has it.
            unsafe { bindings::filp_close(file.as_ptr(), core::ptr::null_mut()) };
            return Err(ENOTBLK);
        }
        // INVARIANT: an open block device file, owned by the new object.
        Ok(Self { file })
    }

    /// The block device, to address bios to.
    pub(crate) fn as_raw_bdev(&self) -> *mut bindings::block_device {
        // SAFETY: by the type invariant `file` is an open block device file.
        unsafe { bindings::file_bdev(self.file.as_ptr()) }
    }

    /// The size of the device in bytes.
    pub fn nr_bytes(&self) -> u64 {
        // SAFETY: the bdev is valid while the file is open.
        let n = unsafe { bindings::bdev_nr_bytes(self.as_raw_bdev()) };
        n.max(0) as u64
    }
}

impl Drop for BdevFile {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own the open file; it is not used
        // after this. filp_close flushes and releases the exclusive claim.
        unsafe { bindings::filp_close(self.file.as_ptr(), core::ptr::null_mut()) };
    }
}

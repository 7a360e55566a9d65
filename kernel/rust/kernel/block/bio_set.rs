// SPDX-License-Identifier: GPL-2.0

//! Bio sets: pools of bios a driver allocates and submits itself, with the
//! driver's per-request state in each bio's front padding (`struct bio_set`).
//!
//! The request state `T` lives right before the `struct bio` in the same
//! allocation, so a request costs no allocation of its own, and the bio set's
//! mempool guarantees forward progress under memory pressure.
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h)

use crate::{alloc::Flags, bindings, error::to_result, prelude::*, types::Opaque};
use core::{
    marker::PhantomData,
    mem::{offset_of, ManuallyDrop},
    ptr::{self, NonNull},
};

/// Completion of the bios of a [`BioSet<T>`].
pub trait EndIo: Sized + Send {
    /// Called once when `bio` has completed, in the completion context of
    /// the device it was submitted to, often a hard interrupt: it must not
    /// sleep. Dropping the bio frees it.
    fn end_io(bio: OwnedBio<Self>);
}

/// A request with its bio: `data` is the bio set's front padding.
#[repr(C)]
struct Padded<T> {
    data: T,
    bio: bindings::bio,
}

/// A `struct bio_set` whose bios carry a `T` in their front padding.
///
/// # Invariants
///
/// `set` was initialised by `bioset_init` with a front padding of
/// `offset_of!(Padded<T>, bio)` and is exited on drop.
#[pin_data(PinnedDrop)]
pub struct BioSet<T: EndIo> {
    #[pin]
    set: Opaque<bindings::bio_set>,
    _data: PhantomData<T>,
}

// SAFETY: a bio set is used through its own locking (mempools).
unsafe impl<T: EndIo> Send for BioSet<T> {}
// SAFETY: as above; allocation from several threads is what it is for.
unsafe impl<T: EndIo> Sync for BioSet<T> {}

impl<T: EndIo> BioSet<T> {
    const FRONT_PAD: usize = offset_of!(Padded<T>, bio);

    /// A bio set keeping `pool_size` bios (and their vectors) in reserve.
    ///
    /// With `rescuer`, allocations made from a `submit_bio` method, where
    /// bios submitted earlier wait on the task's list and cannot return to
    /// the reserve, are handed to a rescue worker instead of deadlocking
    /// (`BIOSET_NEED_RESCUER`).
    pub fn new(pool_size: u32, rescuer: bool) -> impl PinInit<Self, Error> {
        let mut flags = bindings::BIOSET_NEED_BVECS;
        if rescuer {
            flags |= bindings::BIOSET_NEED_RESCUER;
        }
        // Bio slabs are at least 8-byte aligned; the padding must not need more.
        build_assert!(core::mem::align_of::<Padded<T>>() <= 8);
        try_pin_init!(Self {
            set <- Opaque::try_ffi_init(|set: *mut bindings::bio_set| {
                // SAFETY: `set` is valid, pinned memory for a bio_set.
                // bioset_init expects it zeroed: it only sets what its flags
                // ask for (no per-CPU cache here, so `cache` must be NULL).
                to_result(unsafe {
                    ptr::write_bytes(set, 0, 1);
                    bindings::bioset_init(
                        set,
                        pool_size,
                        Self::FRONT_PAD as u32,
                        flags as i32,
                    )
                })
            }),
            _data: PhantomData,
        }? Error)
    }

    /// Allocates a bio for `nr_vecs` pages with operation and flags `opf`
    /// addressed to `bdev`, carrying `data`. With a `gfp` that may sleep
    /// (such as `GFP_NOIO`) this waits for the reserve rather than failing.
    ///
    /// # Safety
    ///
    /// `bdev` must be a valid block device that stays open until the bio has
    /// completed and has been dropped.
    pub unsafe fn alloc(
        &self,
        bdev: *mut bindings::block_device,
        nr_vecs: u16,
        opf: u32,
        gfp: Flags,
        data: T,
    ) -> Result<OwnedBio<T>> {
        // SAFETY: `set` was initialised (type invariant); `bdev` is valid by
        // the caller's guarantee.
        let bio =
            unsafe { bindings::bio_alloc_bioset(bdev, nr_vecs, opf, gfp.as_raw(), self.set.get()) };
        let bio = NonNull::new(bio).ok_or(ENOMEM)?;
        // SAFETY: the bio was allocated from this set, so FRONT_PAD bytes
        // before it belong to it and are suitably aligned for `T`.
        unsafe { OwnedBio::<T>::data_ptr(bio.as_ptr()).write(data) };
        // INVARIANT: a fresh bio of this set, its data initialised above.
        Ok(OwnedBio {
            bio,
            _data: PhantomData,
        })
    }
}

#[pinned_drop]
impl<T: EndIo> PinnedDrop for BioSet<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: initialised by `new` (type invariant); every bio from it
        // has been freed, because each holds a reference to its owner that
        // keeps this set alive.
        unsafe { bindings::bioset_exit(self.set.get()) };
    }
}

/// A bio from a [`BioSet<T>`], owned by the driver: being built, or completed.
///
/// # Invariants
///
/// `bio` was allocated from a `BioSet<T>`, its front padding holds an
/// initialised `T`, and nobody else owns it (it is not in flight).
pub struct OwnedBio<T: EndIo> {
    bio: NonNull<bindings::bio>,
    _data: PhantomData<T>,
}

// SAFETY: a bio and its data may be handed between threads when `T` may.
unsafe impl<T: EndIo> Send for OwnedBio<T> {}

impl<T: EndIo> OwnedBio<T> {
    /// The front padding of `bio`.
    ///
    /// # Safety
    ///
    /// `bio` must have been allocated from a `BioSet<T>`.
    unsafe fn data_ptr(bio: *mut bindings::bio) -> *mut T {
        // SAFETY: per the caller, `bio` is the `bio` field of a `Padded<T>`.
        unsafe { bio.cast::<u8>().sub(BioSet::<T>::FRONT_PAD).cast::<T>() }
    }

    /// The request data.
    pub fn data(&self) -> &T {
        // SAFETY: by the type invariant the data is initialised and ours.
        unsafe { &*Self::data_ptr(self.bio.as_ptr()) }
    }

    /// The request data, mutable.
    pub fn data_mut(&mut self) -> &mut T {
        // SAFETY: as in `data`, and `&mut self` makes the access exclusive.
        unsafe { &mut *Self::data_ptr(self.bio.as_ptr()) }
    }

    /// Sets the first sector (512 bytes) on the device.
    pub fn set_sector(&mut self, sector: u64) {
        // SAFETY: the bio is ours (type invariant).
        unsafe { (*self.bio.as_ptr()).bi_iter.bi_sector = sector };
    }

    /// Appends `len` bytes at `offset` of `page`; false when the bio is full.
    ///
    /// # Safety
    ///
    /// `page` must stay valid until the bio is dropped.
    pub unsafe fn add_page(&mut self, page: *mut bindings::page, len: u32, offset: u32) -> bool {
        // SAFETY: the bio is ours and not in flight; `page` is valid per the
        // caller.
        unsafe { bindings::bio_add_page(self.bio.as_ptr(), page, len, offset) == len as i32 }
    }

    /// Bytes of data in the bio.
    pub fn size(&self) -> u32 {
        // SAFETY: the bio is ours (type invariant).
        unsafe { (*self.bio.as_ptr()).bi_iter.bi_size }
    }

    /// The completion status: `Ok` or the errno of the failure.
    pub fn status(&self) -> Result {
        // SAFETY: the bio is ours (type invariant).
        let sts = unsafe { (*self.bio.as_ptr()).bi_status };
        // SAFETY: blk_status_to_errno accepts any status.
        to_result(unsafe { bindings::blk_status_to_errno(sts) })
    }

    /// Submits the bio and sleeps until it completes (`submit_bio_wait`);
    /// [`EndIo::end_io`] is not called. Must not be called from a
    /// `submit_bio` method: bios submitted there only start after it returns.
    pub fn submit_wait(&mut self) -> Result {
        // SAFETY: the bio is ours and built; submit_bio_wait sets its own
        // completion and returns once the block layer has finished with it.
        to_result(unsafe { bindings::submit_bio_wait(self.bio.as_ptr()) })
    }

    /// Submits the bio; [`EndIo::end_io`] runs when it completes. Never
    /// waits for the I/O.
    pub fn submit(self) {
        let this = ManuallyDrop::new(self);
        let bio = this.bio.as_ptr();
        // SAFETY: the bio is ours and fully built; from here the block layer
        // owns it until it calls `end_io_trampoline`, which takes it back.
        unsafe {
            (*bio).bi_end_io = Some(Self::end_io_trampoline);
            bindings::submit_bio(bio);
        }
    }

    /// The `bi_end_io` of submitted bios.
    ///
    /// # Safety
    ///
    /// Called by the block layer only, once, with a bio submitted by
    /// [`OwnedBio::submit`] from a `BioSet<T>`.
    unsafe extern "C" fn end_io_trampoline(bio: *mut bindings::bio) {
        // INVARIANT: the block layer hands back a bio we submitted from a
        // `BioSet<T>`; it no longer touches it.
        let bio = Self {
            // SAFETY: the block layer passes a valid, non-null bio.
            bio: unsafe { NonNull::new_unchecked(bio) },
            _data: PhantomData,
        };
        T::end_io(bio);
    }
}

impl<T: EndIo> Drop for OwnedBio<T> {
    fn drop(&mut self) {
        let bio = self.bio.as_ptr();
        // SAFETY: the data is initialised (type invariant) and read out once.
        let data = unsafe { ptr::read(Self::data_ptr(bio)) };
        // SAFETY: the bio is ours; this returns it to its set. The data is
        // dropped after, as it may hold what keeps the set alive.
        unsafe { bindings::bio_put(bio) };
        drop(data);
    }
}

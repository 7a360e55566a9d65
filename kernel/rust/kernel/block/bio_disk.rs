// SPDX-License-Identifier: GPL-2.0

//! Bio-based disks: drivers that take whole bios through the disk's
//! `submit_bio` operation instead of requests from blk-mq (zram, brd, md).
//!
//! The disk and its claims are here; how one is built is in
//! `bio_disk/builder.rs`, and the driver's operations with the C callbacks
//! that call them in `bio_disk/operations.rs`.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use crate::{
    bindings,
    prelude::*,
    sync::atomic::{Atomic, Full, Relaxed},
    types::ForeignOwnable,
};
use core::{any::TypeId, ffi::c_void, marker::PhantomData, ptr::NonNull};

mod builder;
mod operations;

pub use builder::BioDiskBuilder;
pub use operations::BioOperations;

type ForeignBorrowed<'a, T> = <T as ForeignOwnable>::Borrowed<'a>;

/// What a disk's `private_data` points to: the driver's data and the claims
/// that keep the disk from being opened.
///
/// # Invariants
///
/// `data` came from `into_foreign` of the disk's `DiskData` and is converted
/// back only when the disk is dropped, after `del_gendisk`.
///
/// `submit` is null or came from `into_foreign` of a value of the type
/// `submit_type` names (the disk's `SubmitData`); it is replaced only while
/// the disk's queue is frozen, and converted back when replaced or when the
/// disk is dropped.
struct DiskState {
    /// Claims held (reset in progress, removal); `open` fails with `EBUSY`
    /// while there are any. Changed only under the disk's `open_mutex`.
    claims: Atomic<u32>,
    data: *mut c_void,
    submit: Atomic<*mut c_void>,
    submit_type: TypeId,
}

/// The state of a disk built by [`BioDiskBuilder::build`].
///
/// # Safety
///
/// `disk` must be such a disk, valid and not dropped for `'a`.
unsafe fn disk_state<'a>(disk: *mut bindings::gendisk) -> &'a DiskState {
    // SAFETY: per the caller, private_data is the disk's live `DiskState`.
    unsafe { &*(*disk).private_data.cast::<DiskState>() }
}

/// The driver data of a disk built by [`BioDiskBuilder::build`].
///
/// # Safety
///
/// `disk` must be a disk built by [`BioDiskBuilder::build`] whose data is a
/// `D`, and the returned borrow must not outlive the disk's `BioDisk`.
pub(crate) unsafe fn disk_data<'a, D: ForeignOwnable>(
    disk: *mut bindings::gendisk,
) -> ForeignBorrowed<'a, D> {
    // SAFETY: per the caller, the disk's state is live and its `data` came
    // from `D::into_foreign` (type invariant of `DiskState`).
    unsafe { D::borrow(disk_state(disk).data) }
}

/// The disk's open mutex, held.
struct OpenMutex(*mut bindings::gendisk);

impl OpenMutex {
    /// # Safety
    ///
    /// `disk` must be valid until the returned value is dropped.
    unsafe fn lock(disk: *mut bindings::gendisk) -> Self {
        // SAFETY: `open_mutex` is initialised with the disk, valid per caller.
        unsafe { bindings::mutex_lock(&raw mut (*disk).open_mutex) };
        Self(disk)
    }

    fn state(&self) -> &DiskState {
        // SAFETY: the disk is valid (`lock`) and was built by
        // `BioDiskBuilder::build`.
        unsafe { disk_state(self.0) }
    }

    fn openers(&self) -> u32 {
        // SAFETY: the disk is valid (`lock`).
        unsafe { bindings::disk_openers(self.0) }
    }
}

impl Drop for OpenMutex {
    fn drop(&mut self) {
        // SAFETY: locked in `lock` by this task.
        unsafe { bindings::mutex_unlock(&raw mut (*self.0).open_mutex) };
    }
}

/// A claim on a disk, from [`DiskRef::claim`]: nobody can open the disk
/// until it is dropped.
pub struct Claim<'a> {
    disk: &'a DiskRef,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // SAFETY: the disk is valid while `self.disk` is.
        let m = unsafe { OpenMutex::lock(self.disk.as_raw()) };
        m.state().claims.fetch_sub(1, Relaxed);
    }
}

/// A borrowed `struct gendisk`, for driver callbacks.
///
/// # Invariants
///
/// `ptr` points to a valid gendisk built by [`BioDiskBuilder::build`], not
/// deleted, for the lifetime of this value.
pub struct DiskRef {
    ptr: NonNull<bindings::gendisk>,
}

impl DiskRef {
    /// # Safety
    ///
    /// `ptr` must point to a gendisk built by [`BioDiskBuilder::build`]
    /// that stays valid and not deleted while the returned value exists.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::gendisk>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { ptr }
    }

    /// The raw pointer.
    pub(crate) fn as_raw(&self) -> *mut bindings::gendisk {
        self.ptr.as_ptr()
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity_sectors(&self) -> u64 {
        // SAFETY: by the type invariant the gendisk is valid.
        unsafe { bindings::get_capacity(self.ptr.as_ptr()) }
    }

    /// Sets the capacity and sends a change uevent (`set_capacity_and_notify`).
    pub fn set_capacity_sectors(&self, sectors: u64) {
        // SAFETY: by the type invariant the gendisk is valid; the function
        // takes the locks it needs.
        unsafe { bindings::set_capacity_and_notify(self.ptr.as_ptr(), sectors) };
    }

    /// Claims the disk to tear down what it holds, as upstream zram's
    /// `reset_store` does: fails with `EBUSY` while the disk is open (mounted,
    /// swap, an open file) or claimed, else makes every open fail with
    /// `EBUSY` until the claim is dropped, and writes back and drops the
    /// disk's page cache (`sync_blockdev`), so no I/O of an opener is left.
    pub fn claim(&self) -> Result<Claim<'_>> {
        {
            // SAFETY: the gendisk is valid (type invariant).
            let m = unsafe { OpenMutex::lock(self.ptr.as_ptr()) };
            if m.openers() > 0 || m.state().claims.load(Relaxed) > 0 {
                return Err(EBUSY);
            }
            m.state().claims.fetch_add(1, Relaxed);
        }
        let claim = Claim { disk: self };
        // SAFETY: the gendisk and its part0 are valid (type invariant).
        unsafe { bindings::sync_blockdev((*self.ptr.as_ptr()).part0) };
        Ok(claim)
    }

    /// Replaces the data `submit_bio` gets (see [`BioOperations::SubmitData`])
    /// and returns the old: freezes the disk's queue, which waits for every
    /// `submit_bio` call in progress (each holds a queue usage reference,
    /// taken in `__submit_bio`) and holds new ones back until the new data
    /// is in place. So `submit_bio` borrows the data with no lock, and the
    /// old data is the caller's alone once this returns.
    ///
    /// Fails with `EINVAL` if `D` is not the disk's `SubmitData`, and gives
    /// `new` back with the error.
    pub fn replace_submit_data<D: ForeignOwnable + 'static>(
        &self,
        new: Option<D>,
    ) -> core::result::Result<Option<D>, (Error, Option<D>)> {
        // SAFETY: the gendisk is valid and built by `BioDiskBuilder::build`
        // (type invariant).
        let state = unsafe { disk_state(self.ptr.as_ptr()) };
        if state.submit_type != TypeId::of::<D>() {
            return Err((EINVAL, new));
        }
        let new = new.map_or(core::ptr::null_mut(), |d| d.into_foreign());
        // SAFETY: the gendisk and its queue are valid (type invariant).
        let queue = unsafe { (*self.ptr.as_ptr()).queue };
        // SAFETY: `queue` is valid; nothing is allocated while it is frozen.
        unsafe { bindings::blk_mq_freeze_queue_nomemsave(queue) };
        // Two replacements at once each freeze the queue (freezing nests)
        // and each takes back the value it swapped out.
        let old = state.submit.xchg(new, Full);
        // SAFETY: frozen just above by this task.
        unsafe { bindings::blk_mq_unfreeze_queue_nomemrestore(queue) };
        if old.is_null() {
            return Ok(None);
        }
        // SAFETY: `old` came from `into_foreign` of a `D` (the type check
        // above and the `DiskState` invariant). It was swapped out while the
        // queue was frozen: every `submit_bio` that borrowed it had returned,
        // and none since can see it.
        Ok(Some(unsafe { D::from_foreign(old) }))
    }

    /// How many times the whole disk is open (mounted, swapon, opened).
    pub fn openers(&self) -> u32 {
        // SAFETY: by the type invariant the gendisk is valid.
        unsafe { bindings::disk_openers(self.ptr.as_ptr()) }
    }

    /// The device number of the whole disk (`dev_t`: major << 20 | minor).
    pub fn devt(&self) -> u32 {
        // SAFETY: by the type invariant the gendisk is valid; `part0` is set
        // when it is allocated and lives as long as it.
        unsafe { (*(*self.ptr.as_ptr()).part0).bd_dev }
    }

    /// The disk's name, e.g. `rzram0`.
    pub fn name(&self) -> &CStr {
        // SAFETY: `disk_name` is a NUL-terminated array inside a valid gendisk.
        unsafe { CStr::from_char_ptr((*self.ptr.as_ptr()).disk_name.as_ptr()) }
    }
}

/// A bio-based disk, removed when dropped.
///
/// # Invariants
///
/// `gendisk` was added with `device_add_disk`; its `private_data` is a
/// `DiskState` from `KBox::into_raw` whose data came from
/// `T::DiskData::into_foreign`.
pub struct BioDisk<T: BioOperations> {
    gendisk: NonNull<bindings::gendisk>,
    _p: PhantomData<T>,
}

// SAFETY: the disk may be removed from any thread; the data is Send + Sync.
unsafe impl<T: BioOperations> Send for BioDisk<T> {}
// SAFETY: shared access only reads the gendisk or calls thread-safe C functions.
unsafe impl<T: BioOperations> Sync for BioDisk<T> {}

impl<T: BioOperations> BioDisk<T> {
    /// The disk, borrowed.
    pub fn disk(&self) -> DiskRef {
        // SAFETY: the gendisk lives as long as `self`.
        unsafe { DiskRef::from_raw(self.gendisk) }
    }

    /// The driver data.
    pub fn data(&self) -> ForeignBorrowed<'_, T::DiskData> {
        // SAFETY: built by `BioDiskBuilder::build` for `T` (type invariant);
        // the borrow ends with `self`.
        unsafe { disk_data::<T::DiskData>(self.gendisk.as_ptr()) }
    }

    /// Claims the disk for removal, as upstream zram's `zram_remove`: fails
    /// with `EBUSY` while it is open; from then on every open fails, and the
    /// disk's page cache is written back (unless a claim of [`DiskRef::claim`]
    /// already did, which the removal then waits for). Drop the disk next.
    pub fn claim_for_removal(&self) -> Result {
        let claimed = {
            // SAFETY: the gendisk is valid (type invariant).
            let m = unsafe { OpenMutex::lock(self.gendisk.as_ptr()) };
            if m.openers() > 0 {
                return Err(EBUSY);
            }
            m.state().claims.fetch_add(1, Relaxed) > 0
        };
        if !claimed {
            // SAFETY: the gendisk and its part0 are valid (type invariant).
            unsafe { bindings::sync_blockdev((*self.gendisk.as_ptr()).part0) };
        }
        Ok(())
    }
}

impl<T: BioOperations> Drop for BioDisk<T> {
    fn drop(&mut self) {
        let disk = self.gendisk.as_ptr();
        {
            // No opener from here on (the module's owner reference keeps
            // the module, hence this disk, while anyone has it open).
            // SAFETY: the gendisk is valid (type invariant).
            let m = unsafe { OpenMutex::lock(disk) };
            m.state().claims.fetch_add(1, Relaxed);
        }
        // SAFETY: by the type invariant the disk was added. del_gendisk waits
        // for bios in flight through submit_bio and for sysfs callbacks to
        // leave the driver.
        unsafe { bindings::del_gendisk(disk) };
        // SAFETY: private_data is our `DiskState` (type invariant), and
        // nobody can reach it after del_gendisk: no callback runs any more.
        let state = unsafe { KBox::from_raw((*disk).private_data.cast::<DiskState>()) };
        // SAFETY: the data came from `into_foreign` (type invariant).
        drop(unsafe { T::DiskData::from_foreign(state.data) });
        let submit = state.submit.load(Relaxed);
        if !submit.is_null() {
            // SAFETY: a non-null `submit` came from `into_foreign` of a
            // `T::SubmitData` (type invariant), and no callback runs any more.
            drop(unsafe { T::SubmitData::from_foreign(submit) });
        }
        // SAFETY: drops the reference taken by allocation. Walkers of the
        // disk list may still hold the disk; they reach only the static
        // operations.
        unsafe { bindings::put_disk(disk) };
    }
}

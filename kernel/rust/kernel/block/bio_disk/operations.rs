// SPDX-License-Identifier: GPL-2.0

//! What a bio-based disk's driver implements ([`BioOperations`]), and the
//! C callbacks of the disk's `block_device_operations` that call it.

use super::{disk_data, disk_state, DiskRef, ForeignBorrowed};
use crate::{
    bindings,
    block::bio::Bio,
    module::this_module,
    prelude::*,
    sync::atomic::{Acquire, Relaxed},
    types::ForeignOwnable,
};
use core::{ffi::c_int, marker::PhantomData, ptr::NonNull};

/// Operations of a bio-based disk.
#[macros::vtable]
pub trait BioOperations: Sized {
    /// The driver's per-disk data, kept with the gendisk.
    type DiskData: ForeignOwnable + Send + Sync;

    /// What the driver's I/O works on while the disk is set up (zram's store
    /// of an initialised device): set and taken away with
    /// [`DiskRef::replace_submit_data`], and lent to
    /// [`BioOperations::submit_bio`] with no lock and no reference count.
    type SubmitData: ForeignOwnable + Send + Sync + 'static;

    /// Called for every bio submitted to the disk, with the disk's submit
    /// data if it has any. The driver owns the bio and must end it, now or
    /// later (from any context); the submit data is borrowed for this call
    /// only.
    fn submit_bio(
        disk: &DiskRef,
        data: ForeignBorrowed<'_, Self::DiskData>,
        submit: Option<ForeignBorrowed<'_, Self::SubmitData>>,
        bio: Bio,
    );

    /// Called when swap frees the slot at `offset` (in pages). Runs with the
    /// swap lock held and sometimes a page-table lock: it must not sleep.
    fn swap_slot_free_notify(_data: ForeignBorrowed<'_, Self::DiskData>, _offset: u64) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

pub(super) struct OperationsVTable<T: BioOperations>(PhantomData<T>);

impl<T: BioOperations> OperationsVTable<T> {
    const VTABLE: bindings::block_device_operations = bindings::block_device_operations {
        submit_bio: Some(Self::submit_bio_callback),
        open: Some(Self::open_callback),
        swap_slot_free_notify: if T::HAS_SWAP_SLOT_FREE_NOTIFY {
            Some(Self::swap_slot_free_notify_callback)
        } else {
            None
        },
        // Opening the disk pins the driver's module (`#[vtable]` names it):
        // the module, its code and this table stay while the disk is open.
        owner: this_module::<T::OwnerModule>().as_ptr(),
        ..pin_init::zeroed()
    };

    /// The operations of every disk of driver type `T`: one static table,
    /// as `mq::GenDisk`'s, that outlives every reference to the disks.
    pub(super) const fn build() -> &'static bindings::block_device_operations {
        &Self::VTABLE
    }

    /// `block_device_operations::open`: refuses while the disk is claimed.
    ///
    /// # Safety
    ///
    /// Called by the block layer with `open_mutex` held, for a disk built by
    /// [`BioDiskBuilder::build`] for `T` that is not deleted yet.
    unsafe extern "C" fn open_callback(
        disk: *mut bindings::gendisk,
        _mode: bindings::blk_mode_t,
    ) -> c_int {
        // SAFETY: a live disk of ours.
        let state = unsafe { disk_state(disk) };
        if state.claims.load(Relaxed) > 0 {
            return EBUSY.to_errno();
        }
        0
    }

    /// `block_device_operations::submit_bio`.
    ///
    /// # Safety
    ///
    /// Called by the block layer (`__submit_bio`) with a bio for a disk
    /// built by [`BioDiskBuilder::build`] for `T`, holding a usage reference
    /// of the disk's queue for the call.
    unsafe extern "C" fn submit_bio_callback(bio: *mut bindings::bio) {
        // SAFETY: the block layer passes a valid bio for one of our disks,
        // whose bdev and gendisk are valid while the bio is in flight.
        let disk = unsafe { (*(*bio).bi_bdev).bd_disk };
        // SAFETY: built for `T`; the data stays valid until the disk is
        // deleted, which waits for submitters.
        let data = unsafe { disk_data::<T::DiskData>(disk) };
        // SAFETY: a live disk built for `T`.
        let submit = unsafe { disk_state(disk) }.submit.load(Acquire);
        // SAFETY: a non-null `submit` came from `into_foreign` of a
        // `T::SubmitData` (`DiskState` invariant). `__submit_bio` holds a
        // usage reference of the disk's queue for this call, and the data
        // is replaced, and the old handed back, only with the queue frozen,
        // which waits for that reference: the borrow ends before it can be
        // dropped.
        let submit = (!submit.is_null()).then(|| unsafe { T::SubmitData::borrow(submit) });
        // SAFETY: `disk` is valid for the duration of the call.
        let disk = unsafe { DiskRef::from_raw(NonNull::new_unchecked(disk)) };
        // SAFETY: the bio is handed to the driver, which ends it exactly once.
        T::submit_bio(&disk, data, submit, unsafe { Bio::from_raw(bio) });
    }

    /// `block_device_operations::swap_slot_free_notify`.
    ///
    /// # Safety
    ///
    /// Called by swap with the bdev of a disk built for `T`, open for swap.
    unsafe extern "C" fn swap_slot_free_notify_callback(
        bdev: *mut bindings::block_device,
        offset: crate::ffi::c_ulong,
    ) {
        // SAFETY: swap passes the bdev of one of our disks, which is open.
        let disk = unsafe { (*bdev).bd_disk };
        // SAFETY: as in `submit_bio_callback`; swap holds the disk open, so
        // it is not removed (removal needs it closed).
        let data = unsafe { disk_data::<T::DiskData>(disk) };
        T::swap_slot_free_notify(data, offset as u64);
    }
}

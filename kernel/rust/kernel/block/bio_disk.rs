// SPDX-License-Identifier: GPL-2.0

//! Bio-based disks: drivers that take whole bios through the disk's
//! `submit_bio` operation instead of requests from blk-mq (zram, brd, md).
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use crate::{
    bindings,
    block::{attr::AttributeGroup, bio::Bio},
    error::{from_err_ptr, to_result, Result},
    fmt::{self, Write},
    prelude::*,
    static_lock_class,
    str::NullTerminatedFormatter,
    types::{ForeignOwnable, ScopeGuard},
};
use core::{marker::PhantomData, ptr::NonNull};

type ForeignBorrowed<'a, T> = <T as ForeignOwnable>::Borrowed<'a>;

/// Operations of a bio-based disk.
#[macros::vtable]
pub trait BioOperations: Sized {
    /// The driver's per-disk data, kept in the gendisk's `private_data`.
    type DiskData: ForeignOwnable + Send + Sync;

    /// Called for every bio submitted to the disk. The driver owns the bio and
    /// must end it, now or later (from any context).
    fn submit_bio(disk: &DiskRef, data: ForeignBorrowed<'_, Self::DiskData>, bio: Bio);

    /// Called when swap frees the slot at `offset` (in pages). Runs with the
    /// swap lock held and sometimes a page-table lock: it must not sleep.
    fn swap_slot_free_notify(_data: ForeignBorrowed<'_, Self::DiskData>, _offset: u64) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// A borrowed `struct gendisk`, for driver callbacks.
///
/// # Invariants
///
/// `ptr` points to a valid gendisk for the lifetime of this value.
pub struct DiskRef {
    ptr: NonNull<bindings::gendisk>,
}

impl DiskRef {
    /// # Safety
    ///
    /// `ptr` must point to a valid gendisk that outlives the returned value.
    pub unsafe fn from_raw(ptr: NonNull<bindings::gendisk>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { ptr }
    }

    /// The raw pointer.
    pub fn as_raw(&self) -> *mut bindings::gendisk {
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

/// Builds a [`BioDisk`].
pub struct BioDiskBuilder {
    logical_block_size: u32,
    physical_block_size: u32,
    capacity_sectors: u64,
    discard: bool,
    write_zeroes: bool,
    features: bindings::blk_features_t,
}

impl Default for BioDiskBuilder {
    fn default() -> Self {
        Self {
            logical_block_size: bindings::PAGE_SIZE as u32,
            physical_block_size: bindings::PAGE_SIZE as u32,
            capacity_sectors: 0,
            discard: false,
            write_zeroes: false,
            features: 0,
        }
    }
}

impl BioDiskBuilder {
    /// A builder with 4K (page-sized) blocks and no capacity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Logical and physical block size: a power of two from 512 to `PAGE_SIZE`.
    pub fn block_size(mut self, size: u32) -> Result<Self> {
        crate::block::mq::gen_disk::GenDiskBuilder::validate_block_size(size)?;
        self.logical_block_size = size;
        self.physical_block_size = size;
        Ok(self)
    }

    /// Initial capacity in 512-byte sectors.
    pub fn capacity_sectors(mut self, sectors: u64) -> Self {
        self.capacity_sectors = sectors;
        self
    }

    /// Accept `REQ_OP_DISCARD` of any size, page granular.
    pub fn discard(mut self, on: bool) -> Self {
        self.discard = on;
        self
    }

    /// Accept `REQ_OP_WRITE_ZEROES` of any size.
    pub fn write_zeroes(mut self, on: bool) -> Self {
        self.write_zeroes = on;
        self
    }

    /// The driver completes I/O in `submit_bio`'s context
    /// (`BLK_FEAT_SYNCHRONOUS`), so swap may read synchronously.
    pub fn synchronous(mut self, on: bool) -> Self {
        self.set_feature(bindings::BLK_FEAT_SYNCHRONOUS, on);
        self
    }

    /// Pages must not change while they are written (`BLK_FEAT_STABLE_WRITES`),
    /// as for a driver that compresses or checksums them.
    pub fn stable_writes(mut self, on: bool) -> Self {
        self.set_feature(bindings::BLK_FEAT_STABLE_WRITES, on);
        self
    }

    fn set_feature(&mut self, f: bindings::blk_features_t, on: bool) {
        if on {
            self.features |= f;
        } else {
            self.features &= !f;
        }
    }

    /// Allocates the disk, names it and adds it to the system with the
    /// driver's sysfs attributes (`groups` must outlive the disk).
    pub fn build<T: BioOperations>(
        self,
        name: fmt::Arguments<'_>,
        module: &'static ThisModule,
        data: T::DiskData,
        groups: Option<&AttributeGroup<T::DiskData>>,
    ) -> Result<BioDisk<T>> {
        let mut lim: bindings::queue_limits = pin_init::zeroed();
        lim.logical_block_size = self.logical_block_size;
        lim.physical_block_size = self.physical_block_size;
        lim.io_min = self.physical_block_size;
        lim.features = self.features;
        if self.discard {
            lim.discard_granularity = bindings::PAGE_SIZE as u32;
            lim.max_hw_discard_sectors = u32::MAX;
        }
        if self.write_zeroes {
            lim.max_write_zeroes_sectors = u32::MAX;
        }

        let mut fops: KBox<bindings::block_device_operations> =
            KBox::new(pin_init::zeroed(), GFP_KERNEL)?;
        fops.submit_bio = Some(OperationsVTable::<T>::submit_bio_callback);
        if T::HAS_SWAP_SLOT_FREE_NOTIFY {
            fops.swap_slot_free_notify =
                Some(OperationsVTable::<T>::swap_slot_free_notify_callback);
        }
        fops.owner = module.as_ptr();

        // SAFETY: `lim` is a valid, initialised queue_limits; the lock class
        // is static.
        let gendisk = from_err_ptr(unsafe {
            bindings::__blk_alloc_disk(
                &mut lim,
                bindings::NUMA_NO_NODE,
                static_lock_class!().as_ptr(),
            )
        })?;
        let put_on_error = ScopeGuard::new(move || {
            // SAFETY: `gendisk` was allocated above and not added yet.
            unsafe { bindings::put_disk(gendisk) };
        });

        let mut writer = NullTerminatedFormatter::new(
            // SAFETY: `gendisk` is valid and not yet visible to anyone else.
            unsafe { &mut (*gendisk).disk_name },
        )
        .ok_or(EINVAL)?;
        writer.write_fmt(name)?;

        // SAFETY: `gendisk` is valid and not yet visible to anyone else; the
        // fops box lives in the returned `BioDisk` as long as the disk.
        unsafe {
            (*gendisk).fops = &*fops;
            bindings::set_capacity(gendisk, self.capacity_sectors);
        }

        let foreign = data.into_foreign();
        // SAFETY: as above.
        unsafe { (*gendisk).private_data = foreign };
        let drop_data = ScopeGuard::new(move || {
            // SAFETY: `foreign` came from `into_foreign` above and the disk
            // was not added, so nothing else uses it.
            drop(unsafe { T::DiskData::from_foreign(foreign) });
        });

        let groups_ptr = groups.map_or(core::ptr::null_mut(), |g| g.as_groups());
        // SAFETY: `gendisk` is fully set up; `groups_ptr` is NULL or a
        // NULL-terminated array that outlives the disk (caller).
        to_result(unsafe {
            bindings::device_add_disk(core::ptr::null_mut(), gendisk, groups_ptr)
        })?;

        drop_data.dismiss();
        put_on_error.dismiss();
        // INVARIANT: the disk was added above and owns `foreign`.
        Ok(BioDisk {
            // SAFETY: `from_err_ptr` succeeded, so the pointer is non-null.
            gendisk: unsafe { NonNull::new_unchecked(gendisk) },
            _fops: fops,
            _p: PhantomData,
        })
    }
}

/// A bio-based disk, removed when dropped.
///
/// # Invariants
///
/// `gendisk` was added with `device_add_disk` and its `private_data` came
/// from `T::DiskData::into_foreign`.
pub struct BioDisk<T: BioOperations> {
    gendisk: NonNull<bindings::gendisk>,
    _fops: KBox<bindings::block_device_operations>,
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
        // SAFETY: by the type invariant private_data came from `into_foreign`
        // and is converted back only in `drop`.
        unsafe { T::DiskData::borrow((*self.gendisk.as_ptr()).private_data) }
    }
}

impl<T: BioOperations> Drop for BioDisk<T> {
    fn drop(&mut self) {
        let disk = self.gendisk.as_ptr();
        // SAFETY: by the type invariant the disk was added. del_gendisk waits
        // for bios in flight through submit_bio to leave the driver.
        unsafe { bindings::del_gendisk(disk) };
        // SAFETY: private_data came from `into_foreign` (type invariant) and
        // nobody can reach it after del_gendisk.
        drop(unsafe { T::DiskData::from_foreign((*disk).private_data) });
        // SAFETY: drops the reference taken by allocation.
        unsafe { bindings::put_disk(disk) };
    }
}

struct OperationsVTable<T: BioOperations>(PhantomData<T>);

impl<T: BioOperations> OperationsVTable<T> {
    /// `block_device_operations::submit_bio`.
    ///
    /// # Safety
    ///
    /// Called by the block layer with a bio for a disk built by
    /// [`BioDiskBuilder::build`] for `T`.
    unsafe extern "C" fn submit_bio_callback(bio: *mut bindings::bio) {
        // SAFETY: the block layer passes a valid bio for one of our disks,
        // whose bdev and gendisk are valid while the bio is in flight.
        let disk = unsafe { (*(*bio).bi_bdev).bd_disk };
        // SAFETY: private_data was set from `T::DiskData::into_foreign` in
        // `build` and stays valid until the disk is deleted, which waits for
        // submitters.
        let data = unsafe { T::DiskData::borrow((*disk).private_data) };
        // SAFETY: `disk` is valid for the duration of the call.
        let disk = unsafe { DiskRef::from_raw(NonNull::new_unchecked(disk)) };
        // SAFETY: the bio is handed to the driver, which ends it exactly once.
        T::submit_bio(&disk, data, unsafe { Bio::from_raw(bio) });
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
        // SAFETY: as in `submit_bio_callback`.
        let data = unsafe { T::DiskData::borrow((*disk).private_data) };
        T::swap_slot_free_notify(data, offset as u64);
    }
}

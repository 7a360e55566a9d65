// SPDX-License-Identifier: GPL-2.0

//! Building a bio-based disk: its limits and features, its data, and
//! adding it.

use super::{operations::OperationsVTable, BioDisk, BioOperations, DiskState};
use crate::{
    bindings,
    block::attr::AttributeGroup,
    error::{from_err_ptr, to_result, Result},
    fmt::{self, Write},
    prelude::*,
    static_lock_class,
    str::NullTerminatedFormatter,
    sync::atomic::Atomic,
    types::{ForeignOwnable, ScopeGuard},
};
use core::{any::TypeId, ffi::c_int, marker::PhantomData, ptr::NonNull};

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

        let state = KBox::new(
            DiskState {
                claims: Atomic::new(0),
                data: core::ptr::null_mut(),
                submit: Atomic::new(core::ptr::null_mut()),
                submit_type: TypeId::of::<T::SubmitData>(),
            },
            GFP_KERNEL,
        )?;

        // SAFETY: `lim` is a valid, initialised queue_limits; the lock class
        // is static.
        let gendisk = from_err_ptr(unsafe {
            bindings::__blk_alloc_disk(
                &mut lim,
                bindings::NUMA_NO_NODE,
                static_lock_class!().as_ptr(),
            )
        })?;
        // SAFETY: `gendisk` is valid and not yet visible to anyone else; the
        // operations are a static of this driver type, which lives as long
        // as the module, longer than any reference to the disk can reach
        // them (opening the disk pins the module through `owner`). Like
        // upstream zram, the disk takes no partitions: swap and discards
        // address the whole disk.
        unsafe {
            (*gendisk).fops = OperationsVTable::<T>::build();
            (*gendisk).flags |= bindings::GENHD_FL_NO_PART as c_int;
            bindings::set_capacity(gendisk, self.capacity_sectors);
        }

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

        let mut state = state;
        state.data = data.into_foreign();
        let state = KBox::into_raw(state);
        // SAFETY: as above.
        unsafe { (*gendisk).private_data = state.cast() };
        let drop_data = ScopeGuard::new(move || {
            // SAFETY: `state` came from `KBox::into_raw` and its data from
            // `into_foreign` above; the disk was not added, so nothing else
            // uses them.
            let state = unsafe { KBox::from_raw(state) };
            // SAFETY: as above.
            drop(unsafe { T::DiskData::from_foreign(state.data) });
        });

        let groups_ptr = groups.map_or(core::ptr::null_mut(), |g| g.as_groups());
        // SAFETY: `gendisk` is fully set up; `groups_ptr` is NULL or a
        // NULL-terminated array that outlives the disk (caller).
        to_result(unsafe {
            bindings::device_add_disk(core::ptr::null_mut(), gendisk, groups_ptr)
        })?;

        drop_data.dismiss();
        put_on_error.dismiss();
        // INVARIANT: the disk was added above and owns `state`.
        Ok(BioDisk {
            // SAFETY: `from_err_ptr` succeeded, so the pointer is non-null.
            gendisk: unsafe { NonNull::new_unchecked(gendisk) },
            _p: PhantomData,
        })
    }
}

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
    module::this_module,
    prelude::*,
    static_lock_class,
    str::NullTerminatedFormatter,
    sync::atomic::{Acquire, Atomic, Full, Relaxed},
    types::{ForeignOwnable, ScopeGuard},
};
use core::{
    any::TypeId,
    ffi::{c_int, c_void},
    marker::PhantomData,
    ptr::NonNull,
};

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

struct OperationsVTable<T: BioOperations>(PhantomData<T>);

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
    const fn build() -> &'static bindings::block_device_operations {
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

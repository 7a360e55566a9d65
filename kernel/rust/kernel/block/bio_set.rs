// SPDX-License-Identifier: GPL-2.0

//! Bio sets: pools of bios a driver allocates and submits itself to a block
//! device it opened, with the driver's per-request state in each bio's front
//! padding (`struct bio_set`).
//!
//! The request state `T` lives right before the `struct bio` in the same
//! allocation, so a request costs no allocation of its own, and the bio set's
//! mempool guarantees forward progress under memory pressure.
//!
//! A set is bound to one device ([`BdevFile`]) and owns a context
//! (`T::Context`) that its bios' completions see. The set outlives every bio
//! allocated from it and every completion running for one: dropping it waits
//! for them, then closes its reference to the device. So completions never
//! need a reference count of their own (whose last drop could land in
//! interrupt context).
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h)

use crate::{
    alloc::Flags,
    bindings,
    block::{
        bdev::BdevFile,
        bio::{BioOp, HeldSegment},
    },
    error::to_result,
    ffi::c_int,
    new_condvar, new_spinlock_irq,
    page::{BorrowedPage, Page, PAGE_SIZE},
    prelude::*,
    static_lock_class,
    sync::{Arc, CondVar, SpinLockIrq},
    types::Opaque,
};
use core::{
    marker::PhantomData,
    mem::{offset_of, ManuallyDrop},
    ptr::{self, NonNull},
};

/// Completion of the bios of a [`BioSet<T>`].
pub trait EndIo: Sized + Send {
    /// What completions share: kept in the set, which outlives them.
    type Context: Send + Sync;

    /// Called once when `bio` has completed, in the completion context of
    /// the device it was submitted to, often a hard interrupt: it must not
    /// sleep. Dropping the bio frees it (and its pages).
    fn end_io(ctx: &Self::Context, bio: OwnedBio<Self>);
}

/// A request with its bio: `data` is the bio set's front padding.
#[repr(C)]
struct Padded<T> {
    /// A segment of another bio this one reads into (its only page).
    held: Option<HeldSegment>,
    /// The block layer has completed the bio (its status is final).
    completed: bool,
    data: T,
    bio: bindings::bio,
}

/// A `struct bio_set` whose bios carry a `T` in their front padding and are
/// addressed to one block device.
///
/// # Invariants
///
/// - `set` was initialised by `bioset_init` with a front padding of
///   `offset_of!(Padded<T>, bio)` and is exited on drop.
/// - `live` counts the bios allocated from `set` and not yet freed, plus the
///   completions running; the set is not dropped while it is not zero.
/// - `bdev` is open as long as the set exists.
#[pin_data(PinnedDrop)]
pub struct BioSet<T: EndIo> {
    #[pin]
    set: Opaque<bindings::bio_set>,
    #[pin]
    live: SpinLockIrq<usize>,
    #[pin]
    idle: CondVar,
    #[pin]
    ctx: T::Context,
    bdev: Arc<BdevFile>,
    _data: PhantomData<T>,
}

// SAFETY: a bio set is used through its own locking (mempools, `live`); the
// context is `Send + Sync`.
unsafe impl<T: EndIo> Send for BioSet<T> {}
// SAFETY: as above; allocation from several threads is what it is for.
unsafe impl<T: EndIo> Sync for BioSet<T> {}

impl<T: EndIo> BioSet<T> {
    const FRONT_PAD: usize = offset_of!(Padded<T>, bio);

    /// A bio set for I/O to `bdev`, keeping `pool_size` bios (and their
    /// vectors) in reserve, whose completions see `ctx`.
    ///
    /// With `rescuer`, allocations made from a `submit_bio` method, where
    /// bios submitted earlier wait on the task's list and cannot return to
    /// the reserve, are handed to a rescue worker instead of deadlocking
    /// (`BIOSET_NEED_RESCUER`).
    pub fn new(
        bdev: Arc<BdevFile>,
        pool_size: u32,
        rescuer: bool,
        ctx: impl PinInit<T::Context, Error>,
    ) -> impl PinInit<Self, Error> {
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
            live <- new_spinlock_irq!(0, "BioSet::live"),
            idle <- new_condvar!("BioSet::idle"),
            ctx <- ctx,
            bdev,
            _data: PhantomData,
        }? Error)
    }

    /// The completions' context.
    pub fn context(&self) -> &T::Context {
        &self.ctx
    }

    /// The device the set's bios go to.
    pub fn bdev(&self) -> &BdevFile {
        &self.bdev
    }

    fn get(&self) {
        *self.live.lock() += 1;
    }

    fn put(&self) {
        let mut live = self.live.lock();
        *live -= 1;
        if *live == 0 {
            self.idle.notify_all();
        }
        // Unlocking is the last access: `drop` may free the set once it
        // sees zero under the lock.
    }

    /// Allocates a bio for up to `nr_vecs` pages with operation `op` (read or
    /// write) and extra flags `opf` to the set's device, carrying `data`: a
    /// value, or an initialiser that writes it in place in the front pad
    /// (for a large request, what saves building it and copying it there).
    /// With a `gfp` that may sleep (such as `GFP_NOIO`) this waits for the
    /// reserve rather than failing.
    pub fn alloc<E>(
        &self,
        op: BioOp,
        opf: u32,
        nr_vecs: u16,
        gfp: Flags,
        data: impl Init<T, E>,
    ) -> Result<OwnedBio<T>>
    where
        Error: From<E>,
    {
        let op = match op {
            BioOp::Read => bindings::req_op_REQ_OP_READ,
            BioOp::Write => bindings::req_op_REQ_OP_WRITE,
            _ => return Err(EINVAL),
        };
        // SAFETY: `set` was initialised (type invariant); the device stays
        // open while the set exists, which outlives the bio (`live`).
        let bio = unsafe {
            bindings::bio_alloc_bioset(
                self.bdev.as_raw_bdev(),
                nr_vecs,
                op | opf,
                gfp.as_raw(),
                self.set.get(),
            )
        };
        let bio = NonNull::new(bio).ok_or(ENOMEM)?;
        // SAFETY: the bio was allocated from this set, so FRONT_PAD bytes
        // before it belong to it and are suitably aligned for the header;
        // `data`'s place is valid for writes and not yet initialised.
        let init = unsafe {
            let padded = OwnedBio::<T>::padded(bio.as_ptr());
            (&raw mut (*padded).held).write(None);
            (&raw mut (*padded).completed).write(false);
            data.__init(&raw mut (*padded).data)
        };
        if let Err(e) = init {
            // SAFETY: the bio is ours alone, never submitted, and its data
            // was not initialised: nothing but the bio is freed.
            unsafe { bindings::bio_put(bio.as_ptr()) };
            return Err(e.into());
        }
        self.get();
        // INVARIANT: a fresh bio of this set, its header initialised above,
        // counted in `live`.
        Ok(OwnedBio {
            bio,
            _data: PhantomData,
        })
    }
}

#[pinned_drop]
impl<T: EndIo> PinnedDrop for BioSet<T> {
    fn drop(self: Pin<&mut Self>) {
        {
            let mut live = self.live.lock();
            while *live != 0 {
                self.idle.wait(&mut live);
            }
        }
        // SAFETY: initialised by `new` (type invariant); every bio from it
        // has been freed and no completion runs (`live` is zero).
        unsafe { bindings::bioset_exit(self.set.get()) };
    }
}

/// A bio from a [`BioSet<T>`], owned by the driver: being built, or completed.
///
/// # Invariants
///
/// `bio` was allocated from a `BioSet<T>` that counts it in `live`, its
/// front padding holds an initialised header, and nobody else owns it (it is
/// not in flight). The pages in its vector are owned by it, each the whole
/// of one segment (from [`OwnedBio::add_page`]), unless `held` is set,
/// which is then its only page.
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
    unsafe fn padded(bio: *mut bindings::bio) -> *mut Padded<T> {
        // SAFETY: per the caller, `bio` is the `bio` field of a `Padded<T>`.
        unsafe {
            bio.cast::<u8>()
                .sub(BioSet::<T>::FRONT_PAD)
                .cast::<Padded<T>>()
        }
    }

    /// The set `bio` came from.
    ///
    /// # Safety
    ///
    /// `bio` must have been allocated from a `BioSet<T>` that is still alive.
    unsafe fn set<'a>(bio: *mut bindings::bio) -> &'a BioSet<T> {
        // SAFETY: `bi_pool` is the `set` field of the `BioSet<T>` the bio
        // came from, alive per the caller.
        unsafe {
            let set = (*bio).bi_pool.cast::<Opaque<bindings::bio_set>>();
            &*crate::container_of!(set, BioSet<T>, set)
        }
    }

    fn header(&self) -> &Padded<T> {
        // SAFETY: by the type invariant the header is initialised and ours.
        unsafe { &*Self::padded(self.bio.as_ptr()) }
    }

    fn header_mut(&mut self) -> &mut Padded<T> {
        // SAFETY: as in `header`, and `&mut self` makes the access exclusive.
        unsafe { &mut *Self::padded(self.bio.as_ptr()) }
    }

    /// The request data.
    pub fn data(&self) -> &T {
        &self.header().data
    }

    /// The request data, mutable.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.header_mut().data
    }

    /// Sets the first sector (512 bytes) on the device.
    pub fn set_sector(&mut self, sector: u64) {
        // SAFETY: the bio is ours (type invariant).
        unsafe { (*self.bio.as_ptr()).bi_iter.bi_sector = sector };
    }

    /// Appends a whole page as a segment of its own, which the bio owns
    /// from now on (it is freed with the bio); gives it back when the bio is
    /// full.
    pub fn add_page(&mut self, page: Page) -> core::result::Result<(), Page> {
        if self.header().held.is_some() {
            return Err(page);
        }
        let len = PAGE_SIZE as u32;
        // SAFETY: the bio is ours (type invariant).
        let bio = unsafe { &*self.bio.as_ptr() };
        // `bio_full`: no room for another segment, or for `len` more bytes.
        if bio.bi_vcnt >= bio.bi_max_vecs || bio.bi_iter.bi_size > u32::MAX - len {
            return Err(page);
        }
        // Not `bio_add_page`, which merges a page physically adjacent to the
        // last one into its segment: then `take_pages`, `copy_page_to` and
        // drop, which find the bio's pages by segment, would miss it.
        // SAFETY: the bio is ours and not in flight, and has room for one
        // more segment of `len` bytes (checked above); the page is valid.
        unsafe { bindings::__bio_add_page(self.bio.as_ptr(), page.as_ptr(), len, 0) };
        // INVARIANT: the bio owns the page now; `drop` frees it, or
        // `take_pages` gives it back.
        let _ = page.into_raw();
        Ok(())
    }

    /// Gives back the pages of a bio that is no longer in flight (built and
    /// never submitted, or completed), one by one to `f`, for reuse: a
    /// writer can then recycle a window's pages instead of allocating one
    /// per page written. The bio has no pages afterwards.
    pub fn take_pages(&mut self, mut f: impl FnMut(Page)) {
        if self.header().held.is_some() {
            return;
        }
        // SAFETY: the bio is ours and not in flight (type invariant).
        let bio = unsafe { &mut *self.bio.as_ptr() };
        for i in 0..usize::from(bio.bi_vcnt) {
            // SAFETY: `bi_io_vec` has `bi_vcnt` initialised entries, each a
            // page given up by `add_page` with `Page::into_raw`.
            let page = unsafe { (*bio.bi_io_vec.add(i)).bv_page };
            if let Some(page) = NonNull::new(page) {
                // SAFETY: the page came from `Page::into_raw` in `add_page`,
                // and the bio stops owning it below (no double free).
                f(unsafe { Page::from_raw(page) });
            }
        }
        // INVARIANT: the bio owns no page any more; `drop` frees none.
        bio.bi_vcnt = 0;
    }

    /// Makes `seg` (a segment of another bio, held open) the bio's only
    /// data: a read lands in it. The held bio completes, with this bio's
    /// status, when this bio is dropped (with `EIO` if it never completed).
    pub fn add_held_segment(&mut self, seg: HeldSegment) -> core::result::Result<(), HeldSegment> {
        if self.header().held.is_some() || self.size() != 0 {
            return Err(seg);
        }
        let (page, len, offset) = seg.raw_parts();
        // SAFETY: the bio is ours and not in flight; the page stays valid
        // while the hold exists, which the header keeps until after the bio
        // is freed.
        let added = unsafe { bindings::bio_add_page(self.bio.as_ptr(), page, len, offset) };
        if added != len as c_int {
            return Err(seg);
        }
        // INVARIANT: the held page is the bio's only page.
        self.header_mut().held = Some(seg);
        Ok(())
    }

    /// Copies page `i` of the bio (from [`OwnedBio::add_page`]) into `out`.
    pub fn copy_page_to(&self, i: usize, out: &mut [u8]) -> Result {
        if self.header().held.is_some() {
            return Err(EINVAL);
        }
        // SAFETY: the bio is ours (type invariant).
        let bio = unsafe { &*self.bio.as_ptr() };
        if i >= usize::from(bio.bi_vcnt) {
            return Err(EINVAL);
        }
        // SAFETY: `bi_io_vec` has `bi_vcnt` initialised entries.
        let bv = unsafe { &*bio.bi_io_vec.add(i) };
        let page = NonNull::new(bv.bv_page).ok_or(EINVAL)?;
        // SAFETY: the page is owned by the bio (type invariant), valid while
        // `self` is borrowed.
        let page = unsafe { BorrowedPage::from_raw(page) };
        let len = out.len().min(PAGE_SIZE);
        // SAFETY: `out` is valid for `len` bytes; the page is not in flight.
        unsafe { page.read_raw(out.as_mut_ptr(), 0, len) }
    }

    /// Bytes of data in the bio.
    pub fn size(&self) -> u32 {
        // SAFETY: the bio is ours (type invariant).
        unsafe { (*self.bio.as_ptr()).bi_iter.bi_size }
    }

    /// The completion status: `Ok` or the errno of the failure; `EIO` for a
    /// bio that did not complete.
    pub fn status(&self) -> Result {
        if !self.header().completed {
            return Err(EIO);
        }
        // SAFETY: the bio is ours (type invariant).
        let sts = unsafe { (*self.bio.as_ptr()).bi_status };
        // SAFETY: blk_status_to_errno accepts any status.
        to_result(unsafe { bindings::blk_status_to_errno(sts) })
    }

    /// Submits the bio and sleeps until it completes (`submit_bio_wait`);
    /// [`EndIo::end_io`] is not called.
    ///
    /// The bio is submitted from a worker, as upstream zram's
    /// `read_from_bdev_sync` does, so this may be called from a `submit_bio`
    /// method (where bios submitted directly only start after it returns);
    /// the worker runs kernel code only and is flushed before this returns.
    pub fn submit_wait(&mut self) -> Result {
        #[repr(C)]
        struct SyncWork {
            work: bindings::work_struct,
            bio: *mut bindings::bio,
            ret: c_int,
        }
        /// Runs the bio of a [`SyncWork`] to completion.
        ///
        /// # Safety
        ///
        /// `work` must be the `work` field of a live `SyncWork` whose bio
        /// is built and owned by a caller who waits for this function.
        unsafe extern "C" fn run(work: *mut bindings::work_struct) {
            let sw = work.cast::<SyncWork>();
            // SAFETY: `work` is the first field of a `#[repr(C)]` `SyncWork`
            // that `submit_wait` keeps until the work is flushed; the bio is
            // built and owned by that caller, who waits.
            unsafe { (*sw).ret = bindings::submit_bio_wait((*sw).bio) };
        }
        let mut sw = SyncWork {
            work: pin_init::zeroed(),
            bio: self.bio.as_ptr(),
            ret: 0,
        };
        let key = static_lock_class!();
        // SAFETY: `sw.work` is on this stack frame until it is flushed and
        // destroyed below; the name and key are static.
        unsafe {
            bindings::init_work_with_key(
                &raw mut sw.work,
                Some(run),
                true,
                c"bio_set::submit_wait".as_char_ptr(),
                key.as_ptr(),
            );
            bindings::queue_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
                bindings::system_unbound_wq,
                &raw mut sw.work,
            );
            // Returns once `run` has returned: nothing of the work is used
            // after this.
            bindings::flush_work(&raw mut sw.work);
            bindings::destroy_work_on_stack(&raw mut sw.work);
        }
        self.header_mut().completed = true;
        to_result(sw.ret)
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
        // SAFETY: the bio is counted in its set's `live` until freed, so the
        // set is alive now.
        let set = unsafe { Self::set(bio) };
        // The running completion counts too: the set (and its context)
        // outlives `end_io` even when the bio is freed inside it.
        set.get();
        // SAFETY: the block layer passes a valid bio it no longer touches.
        unsafe { (*Self::padded(bio)).completed = true };
        // INVARIANT: the block layer hands back a bio we submitted from a
        // `BioSet<T>`; it no longer touches it.
        let owned = Self {
            // SAFETY: the block layer passes a valid, non-null bio.
            bio: unsafe { NonNull::new_unchecked(bio) },
            _data: PhantomData,
        };
        T::end_io(&set.ctx, owned);
        set.put();
    }
}

impl<T: EndIo> Drop for OwnedBio<T> {
    fn drop(&mut self) {
        let bio = self.bio.as_ptr();
        let status = self.status();
        // The pages it owns (none for a held segment) are freed.
        self.take_pages(drop);
        // SAFETY: the bio counts in its set's `live` until `put` below.
        let set = unsafe { Self::set(bio) };
        // SAFETY: the header is initialised (type invariant) and read out once.
        let (held, data) = unsafe {
            let p = Self::padded(bio);
            (
                ptr::read(&raw const (*p).held),
                ptr::read(&raw const (*p).data),
            )
        };
        // SAFETY: the bio is ours; this returns it to its set.
        unsafe { bindings::bio_put(bio) };
        drop(data);
        if let Some(held) = held {
            held.end(status);
        }
        set.put();
    }
}

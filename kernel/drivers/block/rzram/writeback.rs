// SPDX-License-Identifier: GPL-2.0

//! Writeback: moving pages from RAM to the backing device, and reading them
//! back.
//!
//! The engine is asynchronous. A writeback request lives in the front
//! padding of its bio (no allocation per page); up to `writeback_batch_size`
//! bios are in flight; `submit_bio` never waits; the bio's end_io only queues
//! it on a list and kicks a work item, which does the completion work (slot
//! updates, block release, accounting) in process context, in parallel with
//! the writer, who sleeps only when its window is full, until it is half
//! empty. Consecutive backing blocks are allocated for consecutive requests
//! and adjacent pages go into one multi-page bio (`writeback_bio_pages`).
//!
//! Slots picked for writeback carry `PP` (post-processing, as upstream's
//! `ZRAM_PP_SLOT`). Freeing or rewriting a slot clears its flags, so a slot
//! that changed while its page was in flight is detected at completion and
//! its block released instead of being recorded.

use crate::{
    slots::flag,
    store::{now_ns, Store, PAGE},
    trace, Zram,
};
use kernel::{
    alloc::{flags, VVec},
    bindings,
    bitmap::Bitmap,
    block::{
        bdev::BdevFile,
        bio::BioHold,
        bio_set::{BioSet, EndIo, OwnedBio},
        plug::{with_plug, Plug},
        SECTOR_SHIFT,
    },
    error::to_result,
    new_condvar, new_spinlock, new_spinlock_irq,
    page::Page,
    prelude::*,
    str::CStr,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Completion, CondVar, SpinLock, SpinLockIrq,
    },
    sysfs::CInput,
    workqueue::{self, impl_has_work, new_work, Work, WorkItem},
};

/// The most pages one writeback bio carries.
pub(crate) const MAX_BIO_PAGES: usize = 32;
/// Default `writeback_batch_size`, as upstream.
pub(crate) const DEFAULT_BATCH: u32 = 32;

const SECTORS_PER_PAGE: u64 = (PAGE >> SECTOR_SHIFT) as u64;

/// The allocator of backing blocks (one page each): a bitmap searched
/// next-fit, so that successive allocations are consecutive on the device.
/// The words are vmalloc'ed (a large device has a large bitmap), as
/// upstream's kvzalloc'ed one.
pub(crate) struct Blocks {
    words: VVec<usize>,
    nbits: usize,
    next: usize,
}

impl Blocks {
    /// An allocator of `n` blocks; `Bitmap` addresses at most `i32::MAX`
    /// (8 TiB of 4K blocks), so a larger device uses that much of it.
    pub(crate) fn new(n: usize) -> Result<Self> {
        let nbits = n.min(i32::MAX as usize);
        let len = nbits.div_ceil(usize::BITS as usize);
        let mut words = VVec::with_capacity(len, GFP_KERNEL)?;
        words.resize(len, 0, GFP_KERNEL)?;
        Ok(Self {
            words,
            nbits,
            next: 0,
        })
    }

    fn map(&mut self) -> &mut Bitmap {
        // SAFETY: `words` holds `nbits` bits (`new`), lives as long as the
        // borrow of `self`, and `&mut self` makes the access exclusive.
        unsafe { Bitmap::from_raw_mut(self.words.as_mut_ptr(), self.nbits) }
    }

    /// Allocates up to `max` consecutive free blocks; `None` when the device
    /// is full.
    pub(crate) fn alloc_run(&mut self, max: usize) -> Option<core::ops::Range<usize>> {
        let (n, next) = (self.nbits, self.next);
        let map = self.map();
        let start = map.next_zero_bit(next).or_else(|| map.next_zero_bit(0))?;
        let end = map.next_bit(start).unwrap_or(n).min(start + max.max(1));
        for b in start..end {
            map.set_bit(b);
        }
        self.next = if end >= n { 0 } else { end };
        Some(start..end)
    }

    /// Frees one block.
    pub(crate) fn release(&mut self, block: usize) {
        if block < self.nbits {
            self.map().clear_bit(block);
        }
    }
}

/// `bd_stat`, in pages.
pub(crate) struct BdStats {
    pub(crate) count: Atomic<u64>,
    pub(crate) reads: Atomic<u64>,
    pub(crate) writes: Atomic<u64>,
}

/// The backing device of an rzram disk.
#[pin_data]
pub(crate) struct Backing {
    file: BdevFile,
    /// As written to `backing_dev`, without the newline.
    pub(crate) path: KVec<u8>,
    #[pin]
    blocks: SpinLock<Blocks>,
    pub(crate) stats: BdStats,
    #[pin]
    wb_bios: BioSet<WbReq>,
    #[pin]
    rb_bios: BioSet<RbReq>,
}

impl Backing {
    /// Opens `path` (exclusively) as a backing device.
    pub(crate) fn open(path: &[u8]) -> Result<Arc<Self>> {
        let mut cpath = KVec::with_capacity(path.len() + 1, GFP_KERNEL)?;
        cpath.extend_from_slice(path, GFP_KERNEL)?;
        cpath.push(0, GFP_KERNEL)?;
        let file = BdevFile::open(CStr::from_bytes_with_nul(&cpath).map_err(|_| EINVAL)?)?;
        let nr = usize::try_from(file.nr_bytes() / PAGE as u64).map_err(|_| EINVAL)?;
        // Refuse an empty device (which also keeps an uninitialised rzram
        // from backing itself).
        if nr == 0 {
            return Err(EINVAL);
        }
        let blocks = Blocks::new(nr)?;
        cpath.pop();
        Arc::pin_init(
            try_pin_init!(Self {
                file,
                path: cpath,
                blocks <- new_spinlock!(blocks),
                stats: BdStats {
                    count: Atomic::new(0),
                    reads: Atomic::new(0),
                    writes: Atomic::new(0),
                },
                // Writeback allocates in process context; reads allocate in
                // rzram's submit_bio, so they need the rescuer.
                wb_bios <- BioSet::new(DEFAULT_BATCH, false),
                rb_bios <- BioSet::new(DEFAULT_BATCH, true),
            }? Error),
            GFP_KERNEL,
        )
    }

    fn alloc_run(&self, max: usize) -> Option<core::ops::Range<usize>> {
        let run = self.blocks.lock().alloc_run(max)?;
        self.stats.count.fetch_add(run.len() as u64, Relaxed);
        Some(run)
    }

    /// Frees a block of a slot that no longer needs it. Never sleeps (swap
    /// frees slots under its spinlock).
    pub(crate) fn release(&self, block: u64) {
        self.blocks.lock().release(block as usize);
        self.stats.count.fetch_sub(1, Relaxed);
    }

    /// Reads block `block` into the page of `hold`'s bio at `page`,
    /// asynchronously: `hold` ends when the read completes.
    pub(crate) fn read_async(
        self: &Arc<Self>,
        dev: u32,
        index: usize,
        block: u64,
        page: *mut bindings::page,
        hold: BioHold,
    ) -> Result {
        self.stats.reads.fetch_add(1, Relaxed);
        let req = RbReq {
            parent: Some(hold),
            _backing: Some(self.clone()),
            dev,
            index,
            block,
            start_ns: now_ns(),
        };
        // SAFETY: the request holds the backing device open until the bio
        // is dropped.
        let mut bio = unsafe {
            self.rb_bios.alloc(
                self.file.as_raw_bdev(),
                1,
                bindings::req_op_REQ_OP_READ,
                flags::GFP_NOIO,
                req,
            )?
        };
        bio.set_sector(block * SECTORS_PER_PAGE);
        // SAFETY: the page belongs to the parent bio, which cannot complete
        // before this bio ends its hold.
        if !unsafe { bio.add_page(page, PAGE as u32, 0) } {
            return Err(EIO);
        }
        bio.submit();
        Ok(())
    }

    /// Reads block `block` into `out` (one page) and waits for it. Safe to
    /// call from a `submit_bio` method: the bio is submitted from a worker.
    pub(crate) fn read_sync(
        self: &Arc<Self>,
        dev: u32,
        index: usize,
        block: u64,
        out: &mut [u8],
    ) -> Result {
        self.stats.reads.fetch_add(1, Relaxed);
        let job = Arc::pin_init(
            try_pin_init!(SyncRead {
                backing: self.clone(),
                page: Page::alloc_page(flags::GFP_NOIO)?,
                dev,
                index,
                block,
                errno: Atomic::new(0),
                done <- Completion::new(),
            }? Error),
            flags::GFP_NOIO,
        )?;
        let worker = job.clone();
        // A bio submitted from inside a `submit_bio` method only starts when
        // that method returns, so the read is submitted from a worker.
        workqueue::system_highpri().try_spawn(flags::GFP_NOIO, move || worker.run())?;
        job.done.wait_for_completion();
        to_result(job.errno.load(Relaxed))?;
        // SAFETY: the page was filled by the read and is one page long, as
        // is `out`.
        unsafe { job.page.read_raw(out.as_mut_ptr(), 0, PAGE) }
    }
}

/// A synchronous read of a block, run by a worker while the reader waits.
#[pin_data]
struct SyncRead {
    backing: Arc<Backing>,
    page: Page,
    dev: u32,
    index: usize,
    block: u64,
    /// The result, as 0 or a negative errno; valid once `done` completes.
    errno: Atomic<i32>,
    #[pin]
    done: Completion,
}

impl SyncRead {
    fn run(&self) {
        let start = now_ns();
        let result = (|| -> Result {
            let req = RbReq {
                parent: None,
                _backing: Some(self.backing.clone()),
                dev: self.dev,
                index: self.index,
                block: self.block,
                start_ns: start,
            };
            // SAFETY: the request holds the backing device open until the
            // bio is dropped.
            let mut bio = unsafe {
                self.backing.rb_bios.alloc(
                    self.backing.file.as_raw_bdev(),
                    1,
                    bindings::req_op_REQ_OP_READ,
                    flags::GFP_NOIO,
                    req,
                )?
            };
            bio.set_sector(self.block * SECTORS_PER_PAGE);
            // SAFETY: the page lives in this job, which outlives the bio.
            if !unsafe { bio.add_page(self.page.as_ptr(), PAGE as u32, 0) } {
                return Err(EIO);
            }
            bio.submit_wait()
        })();
        trace::bd_read(self.dev, self.index, self.block, now_ns() - start, &result);
        self.errno
            .store(result.err().map_or(0, |e| e.to_errno()), Relaxed);
        self.done.complete_all();
    }
}

/// A read of a written-back page, in the front padding of its bio.
pub(crate) struct RbReq {
    /// The rzram bio the page is read for (asynchronous reads).
    parent: Option<BioHold>,
    /// Keeps the backing device (and the bio set) alive while in flight.
    _backing: Option<Arc<Backing>>,
    dev: u32,
    index: usize,
    block: u64,
    start_ns: u64,
}

impl EndIo for RbReq {
    fn end_io(mut bio: OwnedBio<Self>) {
        let status = bio.status();
        let req = bio.data_mut();
        trace::bd_read(
            req.dev,
            req.index,
            req.block,
            now_ns() - req.start_ns,
            &status,
        );
        let parent = req.parent.take();
        // The request goes first (it may hold the last reference to the
        // backing device only once the parent has completed, never here).
        drop(bio);
        if let Some(parent) = parent {
            parent.end(status);
        }
    }
}

/// A writeback bio's request: up to `MAX_BIO_PAGES` pages for consecutive
/// blocks from `first_block`.
pub(crate) struct WbReq {
    batch: Arc<Batch>,
    first_block: u64,
    n: usize,
    indices: [u32; MAX_BIO_PAGES],
    pages: [Option<Page>; MAX_BIO_PAGES],
    start_ns: u64,
    end_ns: u64,
    /// Not every page made it into the bio: complete it as failed.
    broken: bool,
}

impl EndIo for WbReq {
    fn end_io(mut bio: OwnedBio<Self>) {
        let req = bio.data_mut();
        req.end_ns = now_ns();
        let batch = req.batch.clone();
        let mut f = batch.flight.lock();
        // Room for every bio in flight was reserved: this cannot fail.
        if let Err(e) = f.done.push_within_capacity(bio) {
            // Never free a bio here: keep it, leaked, and say so.
            core::mem::forget(e);
            pr_err!("writeback completion list overflow\n");
        }
        if f.waiting.is_some() {
            // The writer is idle, waiting for room: it does the completion
            // work itself once enough has arrived (one wake-up per refill).
            batch.wake_writer(&f);
            return;
        }
        // The writer is busy submitting: completion work runs on the
        // workqueue, in parallel, a quarter window at a time (one worker
        // wake-up per batch of completions, not per bio); a smaller rest is
        // done by the writer when it next waits.
        if f.done.len() < batch.window.div_ceil(4) {
            return;
        }
        drop(f);
        // Already queued is fine: the pending or running work sees the bio.
        let _ = workqueue::system_highpri().enqueue(batch);
    }
}

/// Bios in flight and what became of them. Taken in end_io: an IRQ lock.
struct Flight {
    /// Submitted and not yet through completion work.
    bios: usize,
    /// Completed by the device, waiting for completion work.
    done: KVec<OwnedBio<WbReq>>,
    /// While the writer sleeps: it wants waking once at most this many bios
    /// are still at the device.
    waiting: Option<usize>,
    /// The first error seen.
    err: Option<Error>,
}

/// One `writeback` write's engine state.
#[pin_data]
pub(crate) struct Batch {
    zram: Arc<Zram>,
    store: Arc<Store>,
    backing: Arc<Backing>,
    /// Bios in flight at most.
    window: usize,
    #[pin]
    flight: SpinLockIrq<Flight>,
    #[pin]
    drained: CondVar,
    #[pin]
    work: Work<Batch>,
}

impl_has_work! {
    impl HasWork<Self> for Batch { self.work }
}

impl WorkItem for Batch {
    type Pointer = Arc<Batch>;

    fn run(this: Arc<Batch>) {
        loop {
            let Some(bio) = this.flight.lock().done.pop() else {
                break;
            };
            this.complete(bio);
        }
    }
}

impl Batch {
    fn new(
        zram: Arc<Zram>,
        store: Arc<Store>,
        backing: Arc<Backing>,
        window: usize,
    ) -> Result<Arc<Self>> {
        let done = KVec::with_capacity(window, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                zram,
                store,
                backing,
                window,
                flight <- new_spinlock_irq!(Flight {
                    bios: 0,
                    done,
                    waiting: None,
                    err: None,
                }),
                drained <- new_condvar!(),
                work <- new_work!("rzram::writeback"),
            }),
            GFP_KERNEL,
        )
    }

    /// Wakes the writer if it waits and few enough bios are still at the
    /// device. Called with the flight lock held.
    fn wake_writer(&self, f: &Flight) {
        if let Some(low) = f.waiting {
            if f.bios - f.done.len() <= low {
                self.drained.notify_all();
            }
        }
    }

    /// Completion work for one bio, in process context.
    fn complete(&self, mut bio: OwnedBio<WbReq>) {
        let status = if bio.data().broken {
            Err(EIO)
        } else {
            bio.status()
        };
        let req = bio.data_mut();
        let latency = req.end_ns.saturating_sub(req.start_ns);
        let dev = self.store.dev;
        for j in 0..req.n {
            let index = req.indices[j] as usize;
            let block = req.first_block + j as u64;
            if status.is_ok() {
                // Written, whether or not the slot still wants it (as
                // upstream counts bd_writes).
                self.backing.stats.writes.fetch_add(1, Relaxed);
            }
            let s = self.store.slots.lock(index);
            if status.is_ok() && s.test(flag::PP) {
                self.store.move_to_backing(&s, block);
            } else {
                // Failed, or freed or rewritten while in flight: the RAM copy
                // (if any) stays, the block goes back.
                s.clear(flag::PP);
                self.backing.release(block);
            }
            drop(s);
            trace::wb_complete(dev, index, block, latency, &status);
        }
        let n = req.n as u64;
        if status.is_err() {
            self.store.stats.failed_writes.fetch_add(n, Relaxed);
            if self.zram.wb_limit_enable.load(Relaxed) {
                self.zram.wb_limit.fetch_add(n, Relaxed);
            }
        }
        // Frees the pages and the bio; the writer still holds the batch.
        drop(bio);
        let mut f = self.flight.lock();
        f.bios -= 1;
        if let Err(e) = status {
            f.err.get_or_insert(e);
        }
        self.wake_writer(&f);
    }

    /// Makes room for one more bio: when the window is full, issues what
    /// `plug` holds and waits until a quarter of the window has completed
    /// (so the writer sleeps once per quarter window, refills it in one
    /// plugged burst, and the device queue never runs below three quarters).
    fn make_room(&self, plug: &Plug) {
        if self.flight.lock().bios >= self.window {
            plug.flush();
            self.wait_until(self.window - self.window.div_ceil(4));
        }
    }

    /// Returns once at most `low` bios are in flight, doing the completion
    /// work of arrived bios itself rather than waiting for the workqueue.
    fn wait_until(&self, low: usize) {
        loop {
            let bio = {
                let mut f = self.flight.lock();
                match f.done.pop() {
                    Some(bio) => bio,
                    None if f.bios <= low => return,
                    None => {
                        f.waiting = Some(low);
                        self.drained.wait(&mut f);
                        f.waiting = None;
                        continue;
                    }
                }
            };
            self.complete(bio);
        }
    }
}

/// Takes `n` from a writeback limit, stopping at 0.
fn charge(limit: &Atomic<u64>, n: u64) {
    let mut cur = limit.load(Relaxed);
    while let Err(now) = limit.cmpxchg(cur, cur.saturating_sub(n), Relaxed) {
        cur = now;
    }
}

/// Which slots a writeback selects (upstream's modes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Mode(u32);

impl Mode {
    const ANY: Mode = Mode(0);
    const HUGE: u32 = 1;
    const IDLE: u32 = 2;
    const INCOMPRESSIBLE: u32 = 4;

    fn parse(s: &[u8]) -> Result<Mode> {
        match s {
            b"idle" => Ok(Mode(Self::IDLE)),
            b"huge" => Ok(Mode(Self::HUGE)),
            b"huge_idle" => Ok(Mode(Self::IDLE | Self::HUGE)),
            b"incompressible" => Ok(Mode(Self::INCOMPRESSIBLE)),
            _ => Err(EINVAL),
        }
    }
}

/// One scan of the slot range `lo..hi` for slots matching `mode`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Scan {
    mode: Mode,
    lo: usize,
    hi: usize,
}

/// A page index, as `kstrtoul(s, 10)` reads it (`EINVAL`, `ERANGE`).
fn parse_index(s: &[u8]) -> Result<usize> {
    let n: u64 = CInput::new(s)?.kstrto(10)?;
    usize::try_from(n).map_err(|_| ERANGE)
}

/// Parses a `writeback` write into the scans it asks for, as upstream's
/// `writeback_store`: space-separated `key=value` parameters (or a bare
/// mode, the legacy form); `page_index=N` and `page_indexes=A-B` (inclusive)
/// scan their range with the mode so far (any slot when none) and may
/// repeat; a mode (bare or `type=`) scans the last range (all when none)
/// and ends the list. Unknown keys are ignored, as upstream does.
pub(crate) fn parse_writeback(input: &[u8], nr_pages: usize) -> Result<KVec<Scan>> {
    let mut input = CInput::new(input)?;
    let mut scans = KVec::new();
    let (mut mode, mut lo, mut hi) = (Mode::ANY, 0, nr_pages);
    for (key, val) in input.args()? {
        let val = val.unwrap_or(b"");
        if val.is_empty() || key == b"type" {
            mode = Mode::parse(if val.is_empty() { key } else { val })?;
            scans.push(Scan { mode, lo, hi }, GFP_KERNEL)?;
            break;
        }
        match key {
            b"page_index" => {
                lo = parse_index(val)?;
                if lo >= nr_pages {
                    return Err(ERANGE);
                }
                hi = lo + 1;
            }
            b"page_indexes" => {
                let dash = val.iter().position(|c| *c == b'-').ok_or(EINVAL)?;
                lo = parse_index(&val[..dash])?;
                if lo >= nr_pages {
                    return Err(ERANGE);
                }
                let last = parse_index(&val[dash + 1..])?;
                if last >= nr_pages || lo > last {
                    return Err(ERANGE);
                }
                hi = last + 1;
            }
            _ => continue,
        }
        scans.push(Scan { mode, lo, hi }, GFP_KERNEL)?;
    }
    Ok(scans)
}

/// Marks the slots the scans select with `PP` and lists them in order.
fn select(store: &Store, scans: &[Scan]) -> Result<VVec<u32>> {
    let mut picked = VVec::new();
    for scan in scans {
        for index in scan.lo..scan.hi.min(store.slots.len()) {
            let s = store.slots.lock(index);
            if !s.allocated() || s.test(flag::WB | flag::SAME | flag::PP) {
                continue;
            }
            let m = scan.mode.0;
            if (m & Mode::IDLE != 0 && !s.test(flag::IDLE))
                || (m & Mode::HUGE != 0 && !s.test(flag::HUGE))
                || (m & Mode::INCOMPRESSIBLE != 0 && !s.test(flag::INCOMPRESSIBLE))
            {
                continue;
            }
            s.set(flag::PP);
            drop(s);
            if let Err(e) = picked.push(index as u32, GFP_KERNEL) {
                store.slots.lock(index).clear(flag::PP);
                unselect(store, &picked);
                return Err(e.into());
            }
        }
    }
    Ok(picked)
}

fn unselect(store: &Store, indices: &[u32]) {
    for index in indices {
        store.slots.lock(*index as usize).clear(flag::PP);
    }
}

/// Writes back the pages `input` selects (the `writeback` attribute).
///
/// Returns the first error: `EIO` once the writeback limit is spent (or a
/// write failed), `ENOSPC` when the backing device is full. Pages that were
/// not written back stay in RAM.
pub(crate) fn writeback(zram: Arc<Zram>, store: Arc<Store>, input: &[u8]) -> Result {
    let backing = store.backing.clone().ok_or(ENODEV)?;
    let scans = parse_writeback(input, store.slots.len())?;
    let picked = select(&store, &scans)?;
    let window = zram.wb_batch_size.load(Relaxed).max(1) as usize;
    let bio_pages = (zram.wb_bio_pages.load(Relaxed) as usize).clamp(1, MAX_BIO_PAGES);
    let batch = match Batch::new(zram.clone(), store.clone(), backing.clone(), window) {
        Ok(b) => b,
        Err(e) => {
            unselect(&store, &picked);
            return Err(e);
        }
    };
    let mut next = 0;
    // Plugged: the bios of a refill reach the device together (for blk-mq
    // devices, one doorbell); sleeping for the window flushes the plug.
    let ret = with_plug(|plug| {
        let mut ret = Ok(());
        while next < picked.len() {
            let mut want = bio_pages.min(picked.len() - next);
            if zram.wb_limit_enable.load(Relaxed) {
                let left = zram.wb_limit.load(Relaxed);
                if left == 0 {
                    ret = Err(EIO);
                    break;
                }
                want = want.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
            batch.make_room(plug);
            let Some(run) = backing.alloc_run(want) else {
                ret = Err(ENOSPC);
                break;
            };
            let mut req = WbReq {
                batch: batch.clone(),
                first_block: run.start as u64,
                n: 0,
                indices: [0; MAX_BIO_PAGES],
                pages: [const { None }; MAX_BIO_PAGES],
                start_ns: 0,
                end_ns: 0,
                broken: false,
            };
            while req.n < run.len() && next < picked.len() {
                let index = picked[next] as usize;
                let page = match Page::alloc_page(flags::GFP_NOIO | flags::__GFP_NOWARN) {
                    Ok(p) => p,
                    Err(e) => {
                        ret = Err(e.into());
                        break;
                    }
                };
                next += 1;
                let s = store.slots.lock(index);
                // Freed or rewritten since the scan: nothing to write.
                if !s.test(flag::PP) {
                    continue;
                }
                if store.read_ram_page(&s, &page).is_err() {
                    s.clear(flag::PP);
                    continue;
                }
                drop(s);
                req.indices[req.n] = index as u32;
                req.pages[req.n] = Some(page);
                req.n += 1;
            }
            for block in run.start + req.n..run.end {
                backing.release(block as u64);
            }
            if req.n == 0 {
                if ret.is_err() {
                    break;
                }
                continue;
            }
            let n = req.n;
            if zram.wb_limit_enable.load(Relaxed) {
                charge(&zram.wb_limit, n as u64);
            }
            // SAFETY: the request holds the batch, which holds the backing
            // device open, until the bio is dropped.
            let bio = unsafe {
                backing.wb_bios.alloc(
                    backing.file.as_raw_bdev(),
                    n as u16,
                    bindings::req_op_REQ_OP_WRITE,
                    flags::GFP_NOIO,
                    req,
                )
            };
            // With GFP_NOIO the bio set's reserve makes this wait, not fail.
            let Ok(mut bio) = bio else {
                ret = Err(ENOMEM);
                break;
            };
            bio.set_sector(run.start as u64 * SECTORS_PER_PAGE);
            for j in 0..n {
                let page = bio.data().pages[j].as_ref().map(|p| p.as_ptr());
                // SAFETY: the pages live in the request, freed with the bio.
                let added = page.is_some_and(|p| unsafe { bio.add_page(p, PAGE as u32, 0) });
                if !added {
                    // Cannot happen (the bio was sized for n pages). Were it to,
                    // the request fails as a whole and every page stays in RAM.
                    bio.data_mut().broken = true;
                }
                let d = bio.data();
                trace::wb_submit(store.dev, d.indices[j] as usize, d.first_block + j as u64);
            }
            bio.data_mut().start_ns = now_ns();
            batch.flight.lock().bios += 1;
            bio.submit();
            if ret.is_err() {
                break;
            }
        }
        ret
    });
    unselect(&store, &picked[next..]);
    batch.wait_until(0);
    let err = batch.flight.lock().err.take();
    match (ret, err) {
        (Err(e), _) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
    }
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_writeback)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_allocated_in_consecutive_runs() {
        let mut b = Blocks::new(100).unwrap();
        assert_eq!(b.alloc_run(32), Some(0..32));
        assert_eq!(b.alloc_run(32), Some(32..64));
        b.release(10);
        b.release(11);
        // Next-fit: continues after the last run, then wraps to the holes.
        assert_eq!(b.alloc_run(32), Some(64..96));
        assert_eq!(b.alloc_run(32), Some(96..100));
        assert_eq!(b.alloc_run(32), Some(10..12));
        assert_eq!(b.alloc_run(1), None);
        b.release(50);
        assert_eq!(b.alloc_run(0), Some(50..51));
        // Out-of-range releases are ignored.
        b.release(1000);
    }

    #[test]
    fn writeback_requests_parse_like_upstream() {
        let all = |m| Scan {
            mode: Mode(m),
            lo: 0,
            hi: 100,
        };
        assert_eq!(
            parse_writeback(b"idle\n", 100).unwrap()[..],
            [all(Mode::IDLE)]
        );
        assert_eq!(
            parse_writeback(b"type=huge", 100).unwrap()[..],
            [all(Mode::HUGE)]
        );
        assert_eq!(
            parse_writeback(b"huge_idle", 100).unwrap()[..],
            [all(Mode::HUGE | Mode::IDLE)]
        );
        assert_eq!(
            parse_writeback(b"incompressible", 100).unwrap()[..],
            [all(Mode::INCOMPRESSIBLE)]
        );
        let one = |lo, hi| Scan {
            mode: Mode::ANY,
            lo,
            hi,
        };
        assert_eq!(
            parse_writeback(b"page_index=1 page_index=5", 100).unwrap()[..],
            [one(1, 2), one(5, 6)]
        );
        assert_eq!(
            parse_writeback(b"page_indexes=3-7", 100).unwrap()[..],
            [one(3, 8)]
        );
        // A range then a mode: the mode scans that range once.
        assert_eq!(
            parse_writeback(b"page_indexes=3-7 type=idle", 100).unwrap()[..],
            [
                one(3, 8),
                Scan {
                    mode: Mode(Mode::IDLE),
                    lo: 3,
                    hi: 8
                }
            ]
        );
        assert_eq!(parse_writeback(b"page_index=100", 100).err(), Some(ERANGE));
        assert_eq!(
            parse_writeback(b"page_indexes=7-3", 100).err(),
            Some(ERANGE)
        );
        assert_eq!(
            parse_writeback(b"page_indexes=3-100", 100).err(),
            Some(ERANGE)
        );
        assert_eq!(parse_writeback(b"page_indexes=37", 100).err(), Some(EINVAL));
        assert_eq!(parse_writeback(b"page_index=x", 100).err(), Some(EINVAL));
        assert_eq!(parse_writeback(b"sometimes", 100).err(), Some(EINVAL));
        assert_eq!(parse_writeback(b"type=\xff", 100).err(), Some(EINVAL));
        assert!(parse_writeback(b"", 100).unwrap().is_empty());
    }
}

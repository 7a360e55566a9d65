// SPDX-License-Identifier: GPL-2.0

//! The backing device: opened exclusively, its blocks (one page each)
//! handed out by a bitmap allocator, and reads of written-back pages.
//!
//! With `packed_writeback` a block holds several objects; it counts them,
//! and is free again when the last one is released.

use crate::{
    base::{now_ns, PAGE},
    trace,
};
use kernel::{
    alloc::{flags, KVVec},
    bitmap::Bitmap,
    block::{
        bdev::BdevFile,
        bio::{BioOp, HeldSegment},
        bio_set::{BioSet, EndIo, OwnedBio},
        SECTOR_SHIFT,
    },
    new_spinlock,
    page::Page,
    prelude::*,
    str::CStr,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, SpinLock,
    },
};

/// Sectors (512 bytes) in a page, a backing block.
pub(crate) const SECTORS_PER_PAGE: u64 = (PAGE >> SECTOR_SHIFT) as u64;

/// The allocator of backing blocks (one page each): a bitmap searched
/// next-fit, so that successive allocations are consecutive on the device.
/// The words are kvmalloc'ed, as upstream's kvzalloc'ed bitmap: kmalloc'ed
/// while small, vmalloc'ed for a large device.
pub(crate) struct Blocks {
    words: KVVec<usize>,
    nbits: usize,
    next: usize,
    /// Objects per block, once packing is on ([`Blocks::count_objects`]);
    /// empty while every block holds one page.
    objects: KVVec<u16>,
}

impl Blocks {
    /// An allocator of `n` blocks; `Bitmap` addresses at most `i32::MAX`
    /// (8 TiB of 4K blocks), so a larger device uses that much of it.
    pub(crate) fn new(n: usize) -> Result<Self> {
        let nbits = n.min(i32::MAX as usize);
        let len = nbits.div_ceil(usize::BITS as usize);
        let mut words = KVVec::with_capacity(len, GFP_KERNEL)?;
        words.resize(len, 0, GFP_KERNEL)?;
        Ok(Self {
            words,
            nbits,
            next: 0,
            objects: KVVec::new(),
        })
    }

    /// Zeroed object counts for `n` blocks (two bytes a block), for
    /// [`Blocks::count_objects`]. The allocation sleeps: not under the lock.
    pub(crate) fn object_counts(n: usize) -> Result<KVVec<u16>> {
        let mut counts = KVVec::with_capacity(n, GFP_KERNEL)?;
        counts.resize(n, 0, GFP_KERNEL)?;
        Ok(counts)
    }

    /// Counts objects per block from now on, in `counts` (from
    /// [`Blocks::object_counts`] for as many blocks). Returns what the
    /// caller frees once it has dropped the lock (freeing vmalloc'ed counts
    /// may sleep): the empty counts it had, or `counts` if it counts already
    /// or they do not fit.
    pub(crate) fn count_objects(&mut self, counts: KVVec<u16>) -> KVVec<u16> {
        if !self.objects.is_empty() || counts.len() != self.nbits {
            return counts;
        }
        core::mem::replace(&mut self.objects, counts)
    }

    /// The number of blocks.
    pub(crate) fn size(&self) -> usize {
        self.nbits
    }

    /// Records that allocated block `block` holds `n` objects.
    pub(crate) fn set_objects(&mut self, block: usize, n: u16) {
        if let Some(c) = self.objects.get_mut(block) {
            *c = n;
        }
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
        let start = {
            let map = self.map();
            map.next_zero_bit(next).or_else(|| map.next_zero_bit(0))?
        };
        // The run ends at the first used block or after `max` blocks: look
        // only that far (at most `max` bits), not to the end of a mostly
        // free bitmap.
        let limit = n.min(start.saturating_add(max.max(1)));
        let bits = usize::BITS as usize;
        let end = (start + 1..limit)
            .find(|&b| {
                self.words
                    .get(b / bits)
                    .is_some_and(|w| (w >> (b % bits)) & 1 != 0)
            })
            .unwrap_or(limit);
        let map = self.map();
        for b in start..end {
            map.set_bit(b);
        }
        self.next = if end >= n { 0 } else { end };
        Some(start..end)
    }

    /// Releases one object of `block` (the whole block where objects are
    /// not counted, or it held one or none); `true` when the block is free.
    pub(crate) fn release(&mut self, block: usize) -> bool {
        if block >= self.nbits {
            return false;
        }
        if let Some(c) = self.objects.get_mut(block) {
            if *c > 1 {
                *c -= 1;
                return false;
            }
            *c = 0;
        }
        self.map().clear_bit(block);
        true
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
    /// The device, shared with the bio sets that address it.
    pub(crate) file: Arc<BdevFile>,
    /// As written to `backing_dev`, without the newline.
    pub(crate) path: KVec<u8>,
    #[pin]
    blocks: SpinLock<Blocks>,
    pub(crate) stats: BdStats,
    /// Reads of written-back pages; they are allocated in rzram's
    /// `submit_bio`, so the set has a rescuer.
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
        let bdev = Arc::new(file, GFP_KERNEL)?;
        cpath.pop();
        Arc::pin_init(
            try_pin_init!(Self {
                file: bdev.clone(),
                path: cpath,
                blocks <- new_spinlock!(blocks),
                stats: BdStats {
                    count: Atomic::new(0),
                    reads: Atomic::new(0),
                    writes: Atomic::new(0),
                },
                rb_bios <- BioSet::new(bdev, READ_RESERVE, true, Ok::<(), Error>(())),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// Allocates up to `max` consecutive blocks.
    pub(crate) fn alloc_run(&self, max: usize) -> Option<core::ops::Range<usize>> {
        let run = self.blocks.lock().alloc_run(max)?;
        self.stats.count.fetch_add(run.len() as u64, Relaxed);
        Some(run)
    }

    /// Releases an object that starts in `block` and, when it `spans`, runs
    /// on into the next one (packed): one of each block's objects.
    pub(crate) fn release_object(&self, block: u64, spans: bool) {
        self.release(block);
        if spans {
            self.release(block + 1);
        }
    }

    /// Blocks hold several objects from now on (`packed_writeback`).
    pub(crate) fn pack(&self) -> Result {
        // The guard goes at the end of this statement: the allocation below
        // is made unlocked.
        let n = self.blocks.lock().size();
        let counts = Blocks::object_counts(n)?;
        // Bound, so that what comes back is freed after the unlock.
        let _free = self.blocks.lock().count_objects(counts);
        Ok(())
    }

    /// Records that allocated block `block` holds `n` objects (packed).
    pub(crate) fn set_objects(&self, block: u64, n: u16) {
        self.blocks.lock().set_objects(block as usize, n);
    }

    /// Releases an object of `block` (a slot's that no longer needs it, or
    /// one whose write failed): the block is free once it holds none. Never
    /// sleeps (swap frees slots under its spinlock).
    pub(crate) fn release(&self, block: u64) {
        if self.blocks.lock().release(block as usize) {
            self.stats.count.fetch_sub(1, Relaxed);
        }
    }

    /// Reads block `block` into the held segment of an rzram bio,
    /// asynchronously, with that bio's request flags `req_flags` (readahead, sync...,
    /// as upstream's `read_from_bdev_async`): the segment's bio completes
    /// when the read has.
    pub(crate) fn read_async(
        &self,
        dev: u32,
        index: usize,
        block: u64,
        seg: HeldSegment,
        req_flags: u32,
    ) -> Result {
        self.stats.reads.fetch_add(1, Relaxed);
        let req = RbReq {
            dev,
            index,
            block,
            start_ns: now_ns(),
        };
        let mut bio = self
            .rb_bios
            .alloc(BioOp::Read, req_flags, 1, flags::GFP_NOIO, req)?;
        bio.set_sector(block * SECTORS_PER_PAGE);
        // On failure the segment's hold ends with EIO when it is dropped.
        bio.add_held_segment(seg).map_err(|_| EIO)?;
        bio.submit();
        Ok(())
    }

    /// Reads blocks from `block` into `out` (one page, or two: a packed
    /// object may span two blocks) and waits for them. Safe to call from a
    /// `submit_bio` method (the bio is submitted from a worker).
    pub(crate) fn read_sync(&self, dev: u32, index: usize, block: u64, out: &mut [u8]) -> Result {
        let pages = out.len().div_ceil(PAGE).clamp(1, 2);
        self.stats.reads.fetch_add(pages as u64, Relaxed);
        let start = now_ns();
        let result = (|| -> Result {
            let req = RbReq {
                dev,
                index,
                block,
                start_ns: start,
            };
            let mut bio = self
                .rb_bios
                .alloc(BioOp::Read, 0, pages as u16, flags::GFP_NOIO, req)?;
            bio.set_sector(block * SECTORS_PER_PAGE);
            for _ in 0..pages {
                bio.add_page(Page::alloc_page(flags::GFP_NOIO)?)
                    .map_err(|_| EIO)?;
            }
            bio.submit_wait()?;
            for (i, chunk) in out.chunks_mut(PAGE).take(pages).enumerate() {
                bio.copy_page_to(i, chunk)?;
            }
            Ok(())
        })();
        trace::bd_read(dev, index, block, now_ns() - start, &result);
        result
    }
}

/// Reads of written-back pages kept in reserve.
const READ_RESERVE: u32 = 32;

/// A read of a written-back page, in the front padding of its bio.
pub(crate) struct RbReq {
    dev: u32,
    index: usize,
    block: u64,
    start_ns: u64,
}

impl EndIo for RbReq {
    type Context = ();

    fn end_io((): &(), bio: OwnedBio<Self>) {
        let status = bio.status();
        let req = bio.data();
        trace::bd_read(
            req.dev,
            req.index,
            req.block,
            now_ns() - req.start_ns,
            &status,
        );
        // Completes the rzram bio the page was read for, with our status.
        drop(bio);
    }
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_backing)]
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
        // A run stops at the first used block within `max`.
        b.release(20);
        b.release(21);
        b.release(23);
        assert_eq!(b.alloc_run(8), Some(20..22));
        assert_eq!(b.alloc_run(8), Some(23..24));
        // Out-of-range releases are ignored.
        assert!(!b.release(1000));
    }

    #[test]
    fn a_packed_block_is_free_once_its_last_object_is_released() {
        let mut b = Blocks::new(8).unwrap();
        // Counting: what comes back is the empty vector it had.
        assert!(b
            .count_objects(Blocks::object_counts(8).unwrap())
            .is_empty());
        assert_eq!(b.alloc_run(2), Some(0..2));
        b.set_objects(0, 3);
        b.set_objects(1, 1);
        assert!(!b.release(0));
        assert!(!b.release(0));
        assert!(b.release(1));
        // Block 1 is free again; block 0 still holds an object.
        assert_eq!(b.alloc_run(8), Some(2..8));
        assert_eq!(b.alloc_run(8), Some(1..2));
        assert!(b.release(0));
        assert_eq!(b.alloc_run(8), Some(0..1));
        // An unused block of a run (no objects recorded) is freed at once.
        assert!(b.release(1));
    }
}

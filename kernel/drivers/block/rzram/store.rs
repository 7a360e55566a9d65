// SPDX-License-Identifier: GPL-2.0

//! The RAM tier: pages compressed into zsmalloc, one slot per page.

use crate::{
    backing::Backing,
    base::{now_secs, PAGE},
    comp::{Algorithms, Codec},
    slots::{flag, SlotGuard, SlotTable},
    trace::{self, Access},
    workspace::{Hotplug, Workspace, Workspaces},
};
use kernel::{
    alloc::flags,
    mm::{
        shared::{SharedBytes, SharedBytesMut},
        zsmalloc::{ZsHandle, ZsPool},
    },
    prelude::*,
    str::CStr,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, MutexGuard,
    },
};

mod recompress;
mod written_back;

pub(crate) use recompress::RecompressMode;
use written_back::backing_location;

/// Counters behind `mm_stat`, `io_stat` and `debug_stat`.
pub(crate) struct Stats {
    pub(crate) compr_data_size: Atomic<u64>,
    pub(crate) pages_stored: Atomic<u64>,
    pub(crate) same_pages: Atomic<u64>,
    pub(crate) huge_pages: Atomic<u64>,
    pub(crate) huge_pages_since: Atomic<u64>,
    pub(crate) failed_reads: Atomic<u64>,
    pub(crate) failed_writes: Atomic<u64>,
    pub(crate) notify_free: Atomic<u64>,
    pub(crate) miss_free: Atomic<u64>,
    pub(crate) max_used_pages: Atomic<u64>,
    pub(crate) pages_compacted: Atomic<u64>,
}

impl Stats {
    fn new() -> Self {
        Self {
            compr_data_size: Atomic::new(0),
            pages_stored: Atomic::new(0),
            same_pages: Atomic::new(0),
            huge_pages: Atomic::new(0),
            huge_pages_since: Atomic::new(0),
            failed_reads: Atomic::new(0),
            failed_writes: Atomic::new(0),
            notify_free: Atomic::new(0),
            miss_free: Atomic::new(0),
            max_used_pages: Atomic::new(0),
            pages_compacted: Atomic::new(0),
        }
    }
}

fn dec(a: &Atomic<u64>, by: u64) {
    a.fetch_add(by.wrapping_neg(), Relaxed);
}

fn inc(a: &Atomic<u64>, by: u64) {
    a.fetch_add(by, Relaxed);
}

/// Everything an initialised device holds. Dropped on reset, after the last
/// bio in flight lets go of it.
pub(crate) struct Store {
    pub(crate) slots: SlotTable,
    pool: ZsPool,
    workspaces: Workspaces,
    pub(crate) stats: Stats,
    huge_class_size: usize,
    /// In pages; 0 for none.
    pub(crate) mem_limit: Atomic<u64>,
    pub(crate) disksize: u64,
    /// The algorithms, by priority.
    pub(crate) algorithms: Algorithms,
    /// Where pages are written back to, if anywhere.
    pub(crate) backing: Option<Arc<Backing>>,
    /// The disk's `dev_t`, for tracepoints.
    pub(crate) dev: u32,
    /// Pages are written back as their compressed bytes
    /// (`compressed_writeback`), and decompressed when read back.
    pub(crate) compressed_wb: bool,
    /// Compressed objects are written back packed, several to a block
    /// (`packed_writeback`; implies `compressed_wb`).
    pub(crate) packed: bool,
}

impl Store {
    /// A store of `disksize` bytes compressed with `ALGORITHMS[algorithm]`,
    /// for disk `name` (its zsmalloc pool's name, as upstream's), with a
    /// workspace per online CPU (an instance of `hotplug`).
    pub(crate) fn new(
        disksize: u64,
        mem_limit: u64,
        algorithms: Algorithms,
        backing: Option<Arc<Backing>>,
        dev: u32,
        name: &CStr,
        hotplug: &Arc<Hotplug>,
    ) -> Result<Self> {
        let pages = (disksize / PAGE as u64) as usize;
        let pool = ZsPool::new(name)?;
        let huge_class_size = pool.huge_class_size();
        let workspaces = Workspaces::new(hotplug, algorithms)?;
        Ok(Self {
            slots: SlotTable::new(pages)?,
            pool,
            workspaces,
            stats: Stats::new(),
            huge_class_size,
            mem_limit: Atomic::new(mem_limit / PAGE as u64),
            disksize,
            algorithms,
            backing,
            dev,
            compressed_wb: false,
            packed: false,
        })
    }

    fn workspace(&self) -> MutexGuard<'_, Workspace> {
        self.workspaces.lock()
    }

    /// The handle of a locked slot's whole-page object (a page stored
    /// uncompressed), which is read in place with no workspace, as upstream
    /// reads incompressible pages without a compression stream.
    fn page_object(s: &SlotGuard<'_>) -> Option<ZsHandle> {
        if s.test(flag::SAME | flag::WB) || s.handle() == 0 || s.size() != PAGE {
            return None;
        }
        // SAFETY: a slot neither same-filled nor written back holds a handle
        // of our pool (from `to_raw`), live while the slot is locked.
        Some(unsafe { ZsHandle::from_raw(s.handle() as usize) })
    }

    /// Frees what the locked slot holds and empties it.
    pub(crate) fn free_slot(&self, s: &SlotGuard<'_>) {
        if s.test(flag::WB) {
            if let Some(b) = &self.backing {
                let (block, offset) = backing_location(s);
                b.release_object(block, offset + s.size() > PAGE);
            }
            dec(&self.stats.pages_stored, 1);
        } else if s.test(flag::SAME) {
            dec(&self.stats.same_pages, 1);
            dec(&self.stats.pages_stored, 1);
        } else if s.handle() != 0 {
            if s.test(flag::HUGE) {
                dec(&self.stats.huge_pages, 1);
            }
            dec(&self.stats.compr_data_size, s.size() as u64);
            dec(&self.stats.pages_stored, 1);
            // SAFETY: the slot owns this live handle of our pool; it is
            // forgotten by `reset` below, under the slot lock.
            unsafe { self.pool.free(ZsHandle::from_raw(s.handle() as usize)) };
        }
        s.reset();
    }

    /// Stores one whole page at `index`: a slice, or the mapped page of a
    /// bio, compressed where it is (as upstream), never seen as a slice.
    pub(crate) fn write_page<'a>(&self, index: usize, page: impl Into<SharedBytes<'a>>) -> Result {
        let page = page.into();
        let mut guard = self.workspace();
        trace::slot_access(self.dev, index, Access::Write);
        let now = now_secs();
        if let Some(word) = page.same_filled() {
            // Lock order: a slot lock is never taken with a workspace held.
            drop(guard);
            let s = self.slots.lock(index);
            self.free_slot(&s);
            s.store(word, 0, flag::SAME, now);
            inc(&self.stats.same_pages, 1);
            inc(&self.stats.pages_stored, 1);
            return Ok(());
        }
        let ws = &mut *guard;
        let out = &mut ws.buf[..PAGE];
        let Some(codec) = ws.codecs[0].as_mut() else {
            return Err(EINVAL);
        };
        let (data, huge): (SharedBytes<'_>, bool) = match codec.compress(page, out) {
            Some(n) if n < self.huge_class_size => ((&out[..n]).into(), false),
            _ => (page, true),
        };
        let len = data.len();
        let limit = self.mem_limit.load(Relaxed);
        if limit != 0 && self.pool.total_pages() > limit {
            return Err(ENOMEM);
        }
        let h = self.pool.malloc(
            len,
            flags::GFP_NOIO | flags::__GFP_NOWARN | flags::__GFP_HIGHMEM | flags::__GFP_MOVABLE,
        )?;
        // SAFETY: `h` was just allocated with room for `data` and is ours alone.
        unsafe { self.pool.write(h, data) };
        // Lock order: a slot lock is never taken with a workspace held
        // (`read_page` takes the slot first, then a workspace).
        drop(guard);
        let used = self.pool.total_pages();
        if used > self.stats.max_used_pages.load(Relaxed) {
            self.stats.max_used_pages.store(used, Relaxed);
        }
        let s = self.slots.lock(index);
        self.free_slot(&s);
        s.store(
            h.to_raw() as u64,
            len,
            if huge { flag::HUGE } else { 0 },
            now,
        );
        inc(&self.stats.compr_data_size, len as u64);
        inc(&self.stats.pages_stored, 1);
        if huge {
            inc(&self.stats.huge_pages, 1);
            inc(&self.stats.huge_pages_since, 1);
        }
        Ok(())
    }

    /// Reads one whole page at `index` into `out` (a slice, or the mapped
    /// page of a bio, decompressed into in place as upstream does), or, for
    /// a page that was written back, returns its block on the backing
    /// device, unread.
    ///
    /// A page written back compressed (`compressed_writeback`) is read and
    /// decompressed here, waiting for the backing device.
    pub(crate) fn read_page<'a>(
        &self,
        index: usize,
        out: impl Into<SharedBytesMut<'a>>,
    ) -> Result<Option<u64>> {
        trace::slot_access(self.dev, index, Access::Read);
        let mut out = out.into();
        loop {
            let s = self.slots.lock(index);
            s.touch(now_secs());
            if !s.test(flag::WB) {
                return self.read_locked(&s, out).map(|()| None);
            }
            if !self.compressed_wb {
                return Ok(Some(s.handle()));
            }
            let stored = (s.handle(), s.size());
            let (block, offset) = backing_location(&s);
            drop(s);
            if self.read_compressed_block(index, stored, block, offset, out.reborrow())? {
                return Ok(None);
            }
            // The slot changed while its block was read: read it again.
        }
    }

    /// Reads the page of a locked slot held in RAM into `out`.
    fn read_locked(&self, s: &SlotGuard<'_>, mut out: SharedBytesMut<'_>) -> Result {
        if s.test(flag::SAME) || s.handle() == 0 {
            return Self::fill_same(s, out);
        }
        if let Some(h) = Self::page_object(s) {
            // SAFETY: `h` is a live object of PAGE bytes (`page_object`), not
            // written while the caller holds the slot lock.
            unsafe { self.pool.read_page(h, |obj| out.copy_from(obj)) };
            return Ok(());
        }
        let mut guard = self.workspace();
        let Workspace { codecs, buf } = &mut *guard;
        let (local, _) = buf.split_at_mut(PAGE);
        self.read_locked_into(s, &mut codecs[..], local, out)
    }

    /// The page of a same-filled (or empty) slot.
    fn fill_same(s: &SlotGuard<'_>, mut out: SharedBytesMut<'_>) -> Result {
        out.fill_words(if s.test(flag::SAME) { s.handle() } else { 0 });
        Ok(())
    }

    /// Reads the page of a locked slot held in RAM into `out`, with a
    /// workspace's codecs and bounce page `local`.
    fn read_locked_into(
        &self,
        s: &SlotGuard<'_>,
        codecs: &mut [Option<Codec>],
        local: &mut [u8],
        mut out: SharedBytesMut<'_>,
    ) -> Result {
        if s.test(flag::SAME) || s.handle() == 0 {
            return Self::fill_same(s, out);
        }
        let size = s.size();
        // SAFETY: the handle is live while we hold the slot lock.
        let h = unsafe { ZsHandle::from_raw(s.handle() as usize) };
        let codec = codecs
            .get_mut(s.prio())
            .and_then(Option::as_mut)
            .ok_or(EIO)?;
        // SAFETY: `h` is a live object of `size` bytes, not written while we
        // hold the slot lock; `local` is a page, enough for any object.
        unsafe {
            self.pool.read(h, size, local, |obj| {
                if size == PAGE {
                    out.copy_from(obj);
                    Ok(())
                } else {
                    codec.decompress(obj, out)
                }
            })
        }
    }

    /// Frees page `index` (discard, write-zeroes, swap slot free).
    pub(crate) fn discard_page(&self, index: usize) {
        trace::slot_access(self.dev, index, Access::Free);
        let s = self.slots.lock(index);
        self.free_slot(&s);
    }

    /// Marks stored slots idle: all of them, or those not accessed since `cutoff`.
    pub(crate) fn mark_idle(&self, cutoff: Option<u32>) {
        for i in 0..self.slots.len() {
            let s = self.slots.lock(i);
            if !s.allocated() || s.test(flag::WB | flag::SAME) {
                continue;
            }
            // As upstream: accessed since the cutoff is no longer idle.
            if cutoff.is_none_or(|c| s.ac_time() < c) {
                s.set(flag::IDLE);
            } else {
                s.clear(flag::IDLE);
            }
        }
    }

    /// Objects of this size or more are stored uncompressed.
    pub(crate) fn huge_class_size(&self) -> usize {
        self.huge_class_size
    }

    /// `mm_stat` fields: bytes in RAM.
    pub(crate) fn mem_used_bytes(&self) -> u64 {
        self.pool.total_pages() * PAGE as u64
    }

    pub(crate) fn compact(&self) {
        let freed = self.pool.compact();
        inc(&self.stats.pages_compacted, freed);
    }

    pub(crate) fn reset_max_used(&self) {
        self.stats
            .max_used_pages
            .store(self.pool.total_pages(), Relaxed);
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        for i in 0..self.slots.len() {
            let s = self.slots.lock(i);
            self.free_slot(&s);
        }
    }
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_store)]
mod tests {
    use super::*;
    use crate::comp::ALGORITHMS;
    use crate::workspace::hotplug_state;
    use kernel::lz4::{self, Lz4};

    /// A store of `pages` pages, with no backing device, compressed with
    /// `ALGORITHMS[algorithm]`.
    fn test_store(pages: u64, algorithm: usize) -> Store {
        Store::new(
            pages * PAGE as u64,
            0,
            Algorithms::primary(algorithm),
            None,
            0,
            c"rzram-test",
            &hotplug_state().unwrap(),
        )
        .unwrap()
    }

    fn text_page(seed: u8) -> KVec<u8> {
        let mut v = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        for i in 0..PAGE {
            let b = if i % 7 == 0 {
                seed
            } else {
                b"swap page text "[i % 15]
            };
            v.push(b, GFP_KERNEL).unwrap();
        }
        v
    }

    fn noise_page(mut s: u64) -> KVec<u8> {
        let mut v = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        for _ in 0..PAGE {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v.push(s as u8, GFP_KERNEL).unwrap();
        }
        v
    }

    #[test]
    fn same_fill_detection() {
        let same = |p: &[u8]| SharedBytes::from(p).same_filled();
        let mut page = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        page.resize(PAGE, 0, GFP_KERNEL).unwrap();
        assert_eq!(same(&page), Some(0));
        for b in page.iter_mut() {
            *b = 0xab;
        }
        assert_eq!(same(&page), Some(0xabab_abab_abab_abab));
        page[PAGE - 1] = 0;
        assert_eq!(same(&page), None);
        assert_eq!(same(&text_page(1)), None);
    }

    #[test]
    fn lz4_round_trip() {
        let src = text_page(9);
        let mut lz = Lz4::new().unwrap();
        let mut dst = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        dst.resize(PAGE, 0, GFP_KERNEL).unwrap();
        let n = lz.compress(&src[..], &mut dst).unwrap();
        assert!(n < PAGE / 2);
        let mut back = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        back.resize(PAGE, 0, GFP_KERNEL).unwrap();
        assert!(lz4::decompress(&dst[..n], &mut back[..]).is_ok());
        assert!(back[..] == src[..]);
        // Corrupt input is an error, not garbage.
        dst[n / 2] ^= 0xff;
        dst[1] ^= 0xff;
        let _ = lz4::decompress(&dst[..n], &mut back[..]);
        assert!(lz4::decompress(&dst[..n / 3], &mut back[..]).is_err());
    }

    #[test]
    fn store_round_trip_and_stats() {
        let store = test_store(64, 0);
        let text = text_page(3);
        let noise = noise_page(77);
        let mut zero = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        zero.resize(PAGE, 0, GFP_KERNEL).unwrap();
        assert!(store.write_page(0, &text[..]).is_ok());
        assert!(store.write_page(1, &noise[..]).is_ok());
        assert!(store.write_page(2, &zero[..]).is_ok());
        let st = &store.stats;
        assert_eq!(st.pages_stored.load(Relaxed), 3);
        assert_eq!(st.same_pages.load(Relaxed), 1);
        assert_eq!(st.huge_pages.load(Relaxed), 1);
        let mut out = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        out.resize(PAGE, 0xee, GFP_KERNEL).unwrap();
        for (i, want) in [(0usize, &text), (1, &noise), (2, &zero)] {
            assert!(store.read_page_sync(i, &mut out).is_ok());
            assert!(out[..] == want[..]);
        }
        // A never-written page reads as zeros.
        assert!(store.read_page_sync(5, &mut out).is_ok());
        assert!(out.iter().all(|b| *b == 0));
        // Overwrite and discard keep the counters exact.
        assert!(store.write_page(0, &noise[..]).is_ok());
        assert_eq!(st.huge_pages.load(Relaxed), 2);
        store.discard_page(0);
        store.discard_page(2);
        assert_eq!(st.pages_stored.load(Relaxed), 1);
        assert_eq!(st.same_pages.load(Relaxed), 0);
        assert_eq!(st.compr_data_size.load(Relaxed), PAGE as u64);
    }

    #[test]
    fn zstd_store_round_trip() {
        let store = test_store(8, 1);
        let text = text_page(5);
        let noise = noise_page(3);
        assert!(store.write_page(0, &text[..]).is_ok());
        assert!(store.write_page(1, &noise[..]).is_ok());
        // zstd shrinks text pages further than a quarter of a page.
        assert!(store.stats.compr_data_size.load(Relaxed) < (PAGE + PAGE / 4) as u64);
        let mut out = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        out.resize(PAGE, 0, GFP_KERNEL).unwrap();
        assert!(store.read_page_sync(0, &mut out).is_ok());
        assert!(out[..] == text[..]);
        assert!(store.read_page_sync(1, &mut out).is_ok());
        assert!(out[..] == noise[..]);
        assert!(Codec::new(ALGORITHMS.len()).is_err());
    }

    #[test]
    fn recompression_shrinks_and_keeps_data() {
        let mut algs = Algorithms::primary(0);
        algs.0[1] = Some(1);
        let store = Store::new(
            16 * PAGE as u64,
            0,
            algs,
            None,
            0,
            c"rzram-test",
            &hotplug_state().unwrap(),
        )
        .unwrap();
        let noise = noise_page(5);
        for i in 0..8 {
            assert!(store.write_page(i, &text_page(i as u8)[..]).is_ok());
        }
        assert!(store.write_page(8, &noise[..]).is_ok());
        let before = store.stats.compr_data_size.load(Relaxed);
        // Only idle slots, and none is idle yet.
        let idle = RecompressMode {
            idle: true,
            huge: false,
        };
        assert!(store.recompress(idle, 0, 1, u64::MAX).is_ok());
        assert_eq!(store.stats.compr_data_size.load(Relaxed), before);
        store.mark_idle(None);
        // max_pages bounds the attempts.
        assert!(store.recompress(idle, 0, 1, 2).is_ok());
        assert_eq!(store.slots.lock(0).prio(), 1);
        assert_eq!(store.slots.lock(2).prio(), 0);
        assert!(store.recompress(idle, 0, 1, u64::MAX).is_ok());
        assert!(store.stats.compr_data_size.load(Relaxed) < before);
        assert_eq!(store.stats.pages_stored.load(Relaxed), 9);
        // Noise does not shrink: kept as is, marked incompressible (zstd is
        // the last algorithm), and no longer idle (touched).
        let s = store.slots.lock(8);
        assert!(s.test(flag::INCOMPRESSIBLE));
        assert!(!s.test(flag::IDLE));
        assert!(s.test(flag::HUGE));
        assert_eq!(s.prio(), 0);
        drop(s);
        let mut out = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        out.resize(PAGE, 0, GFP_KERNEL).unwrap();
        for i in 0..8 {
            assert!(store.read_page_sync(i, &mut out).is_ok());
            assert!(out[..] == text_page(i as u8)[..]);
        }
        assert!(store.read_page_sync(8, &mut out).is_ok());
        assert!(out[..] == noise[..]);
        // Priority 2 has no algorithm.
        assert_eq!(store.recompress(idle, 0, 2, u64::MAX), Err(EINVAL));
    }

    #[test]
    fn idle_marking_skips_empty_and_same_slots() {
        let store = test_store(8, 0);
        let mut zero = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        zero.resize(PAGE, 0, GFP_KERNEL).unwrap();
        assert!(store.write_page(0, &text_page(1)[..]).is_ok());
        assert!(store.write_page(1, &zero[..]).is_ok());
        store.mark_idle(None);
        assert!(store.slots.lock(0).test(flag::IDLE));
        assert!(!store.slots.lock(1).test(flag::IDLE));
        assert!(!store.slots.lock(2).test(flag::IDLE));
        // A read is an access: the mark goes.
        let mut out = zero;
        assert!(store.read_page_sync(0, &mut out).is_ok());
        assert!(!store.slots.lock(0).test(flag::IDLE));
        // By age: a cutoff before every access marks nothing.
        store.mark_idle(Some(0));
        assert!(!store.slots.lock(0).test(flag::IDLE));
    }

    #[test]
    fn a_read_ends_a_pending_writeback_and_idleness() {
        let store = test_store(8, 0);
        assert!(store.write_page(0, &text_page(2)[..]).is_ok());
        assert!(store.write_page(1, &text_page(3)[..]).is_ok());
        store.mark_idle(None);
        // Picked for writeback (PP), then read: upstream's
        // mark_slot_accessed clears PP and IDLE, so the page stays in RAM.
        store.slots.lock(0).set(flag::PP);
        let mut out = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        out.resize(PAGE, 0, GFP_KERNEL).unwrap();
        let r = store.read_page(0, &mut out[..]);
        assert_eq!(r, Ok(None));
        assert!(out[..] == text_page(2)[..]);
        let s = store.slots.lock(0);
        assert!(!s.test(flag::PP));
        assert!(!s.test(flag::IDLE));
        drop(s);
        assert!(store.slots.lock(1).test(flag::IDLE));
    }

    #[test]
    fn idle_marking_by_age_clears_newer_slots() {
        let store = test_store(8, 0);
        assert!(store.write_page(0, &text_page(4)[..]).is_ok());
        assert!(store.write_page(1, &text_page(5)[..]).is_ok());
        store.mark_idle(None);
        // Slot 1 was accessed after the cutoff, slot 0 long before.
        store.slots.lock(0).store_ac_time(1);
        let cutoff = store.slots.lock(1).ac_time();
        store.mark_idle(Some(cutoff));
        assert!(store.slots.lock(0).test(flag::IDLE));
        assert!(!store.slots.lock(1).test(flag::IDLE));
    }

    #[test]
    fn pages_round_trip_through_shared_bytes() {
        let store = test_store(8, 0);
        let text = text_page(6);
        let noise = noise_page(11);
        let mut pattern = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        pattern.resize(PAGE, 0x5a, GFP_KERNEL).unwrap();
        assert!(store.write_page(0, &text[..]).is_ok());
        assert!(store.write_page(1, &noise[..]).is_ok());
        assert!(store.write_page(2, &pattern[..]).is_ok());
        assert_eq!(store.stats.same_pages.load(Relaxed), 1);
        assert_eq!(store.stats.huge_pages.load(Relaxed), 1);
        let mut out = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        out.resize(PAGE, 0, GFP_KERNEL).unwrap();
        for (i, want) in [(0usize, &text), (1, &noise)] {
            assert_eq!(store.read_page(i, &mut out[..]), Ok(None));
            assert!(out[..] == want[..]);
        }
        assert_eq!(store.read_page(2, &mut out[..]), Ok(None));
        assert!(out.iter().all(|b| *b == 0x5a));
    }
}

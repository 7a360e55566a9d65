// SPDX-License-Identifier: GPL-2.0

//! The slot table: one entry per page of the disk.
//!
//! Each slot has a sleeping bit lock (as upstream zram since 6.x: a
//! `wait_on_bit_lock` on a word of its own; lockdep sees every slot lock of
//! a table as one class, as upstream's `table_lock_map`), a handle (a zsmalloc handle, or
//! the fill word of a same-filled page), a flags word that also holds the
//! stored size, and the last access time for idle-by-age.

use kernel::{
    alloc::VVec,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        bit_lock::{BitLock, BitLockClass, BitLockGuard},
    },
};

/// Slot flags, above the size bits of [`Slot::flags`].
pub(crate) mod flag {
    /// The page is one repeated word; the handle holds the word.
    pub(crate) const SAME: u32 = 1 << 16;
    /// Stored uncompressed (did not compress below the huge class size).
    pub(crate) const HUGE: u32 = 1 << 17;
    /// Not accessed since the last idle marking.
    pub(crate) const IDLE: u32 = 1 << 18;
    /// Stored on the backing device (writeback); the handle is the block.
    pub(crate) const WB: u32 = 1 << 19;
    /// Selected for writeback, page in flight. Cleared when the slot is
    /// freed or rewritten, which is how completion spots a changed slot.
    pub(crate) const PP: u32 = 1 << 20;
    /// Recompression could not shrink it (rzram has no recompression yet:
    /// never set, as on upstream zram without `recompress`).
    pub(crate) const INCOMPRESSIBLE: u32 = 1 << 21;
    /// The compression priority of the stored object (0 = the primary
    /// algorithm, 1-3 = `recomp_algorithm` priorities), two bits.
    pub(crate) const PRIO_SHIFT: u32 = 22;
    pub(crate) const PRIO_MASK: u32 = 3 << PRIO_SHIFT;
    /// Written back packed (`packed_writeback`): the object shares its
    /// block with others; the handle is the block and the object's byte
    /// offset in it (`store::packed_handle`).
    pub(crate) const PACKED: u32 = 1 << 24;
    /// Mask of the stored object's size.
    pub(crate) const SIZE_MASK: u32 = (1 << 16) - 1;
}

// An object of up to a page must fit below the flags.
const _: () = assert!(crate::base::PAGE <= flag::SIZE_MASK as usize);

/// One slot. Fields other than `lock` are only changed with the lock held;
/// they are atomics so that lock-free readers (statistics) stay defined.
pub(crate) struct Slot {
    lock: BitLock,
    handle: Atomic<u64>,
    flags: Atomic<u32>,
    ac_time: Atomic<u32>,
}

/// The locked contents of a slot; unlocks when dropped.
pub(crate) struct SlotGuard<'a> {
    slot: &'a Slot,
    _lock: BitLockGuard<'a>,
}

impl SlotGuard<'_> {
    pub(crate) fn handle(&self) -> u64 {
        self.slot.handle.load(Relaxed)
    }

    pub(crate) fn flags(&self) -> u32 {
        self.slot.flags.load(Relaxed)
    }

    pub(crate) fn size(&self) -> usize {
        (self.flags() & flag::SIZE_MASK) as usize
    }

    /// The compression priority the object was stored with.
    pub(crate) fn prio(&self) -> usize {
        ((self.flags() & flag::PRIO_MASK) >> flag::PRIO_SHIFT) as usize
    }

    pub(crate) fn test(&self, f: u32) -> bool {
        self.flags() & f != 0
    }

    pub(crate) fn set(&self, f: u32) {
        self.slot.flags.store(self.flags() | f, Relaxed);
    }

    pub(crate) fn clear(&self, f: u32) {
        self.slot.flags.store(self.flags() & !f, Relaxed);
    }

    /// Whether the slot holds data (compressed, same-filled or written back).
    pub(crate) fn allocated(&self) -> bool {
        self.handle() != 0 || self.test(flag::SAME | flag::WB)
    }

    /// Replaces the contents: `handle`, stored `size` and content `flags`;
    /// the access time is set to `now`.
    pub(crate) fn store(&self, handle: u64, size: usize, flags: u32, now: u32) {
        debug_assert!(size <= flag::SIZE_MASK as usize);
        self.slot.handle.store(handle, Relaxed);
        self.slot.flags.store(flags | size as u32, Relaxed);
        self.slot.ac_time.store(now, Relaxed);
    }

    /// Empties the slot (the caller has freed what it held).
    pub(crate) fn reset(&self) {
        self.slot.handle.store(0, Relaxed);
        self.slot.flags.store(0, Relaxed);
        self.slot.ac_time.store(0, Relaxed);
    }

    /// Sets the access time (tests: an access long ago).
    #[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
    pub(crate) fn store_ac_time(&self, t: u32) {
        self.slot.ac_time.store(t, Relaxed);
    }

    pub(crate) fn ac_time(&self) -> u32 {
        self.slot.ac_time.load(Relaxed)
    }

    /// Records an access, as upstream's `mark_slot_accessed`: clears IDLE
    /// and PP (a page read while its writeback is in flight is hot: it stays
    /// in RAM and its block is released), updates the access time.
    pub(crate) fn touch(&self, now: u32) {
        self.clear(flag::IDLE | flag::PP);
        self.slot.ac_time.store(now, Relaxed);
    }
}

/// All slots of a disk.
pub(crate) struct SlotTable {
    slots: VVec<Slot>,
    /// The lockdep class of the slots' locks.
    class: Pin<KBox<BitLockClass>>,
}

impl SlotTable {
    /// A table of `n` empty slots (vmalloc'ed: it can be large).
    pub(crate) fn new(n: usize) -> Result<Self> {
        let mut slots = VVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            slots.push(
                Slot {
                    lock: BitLock::new(),
                    handle: Atomic::new(0),
                    flags: Atomic::new(0),
                    ac_time: Atomic::new(0),
                },
                GFP_KERNEL,
            )?;
        }
        let class = KBox::pin_init(BitLockClass::new(c"rzram->table[index].lock"), GFP_KERNEL)?;
        Ok(Self { slots, class })
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Locks slot `index`, sleeping while another task holds it.
    pub(crate) fn lock(&self, index: usize) -> SlotGuard<'_> {
        let slot = &self.slots[index];
        SlotGuard {
            slot,
            _lock: slot.lock.lock(&self.class),
        }
    }

    /// Locks slot `index` if nobody holds it; never sleeps.
    pub(crate) fn try_lock(&self, index: usize) -> Option<SlotGuard<'_>> {
        let slot = &self.slots[index];
        Some(SlotGuard {
            slot,
            _lock: slot.lock.try_lock(&self.class)?,
        })
    }
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_slots)]
mod tests {
    use super::*;

    #[test]
    fn lock_store_and_reset() {
        let t = SlotTable::new(4).unwrap();
        assert_eq!(t.len(), 4);
        {
            let s = t.lock(2);
            assert!(!s.allocated());
            s.store(0x1234, 100, flag::HUGE, 7);
            // A locked slot cannot be taken; other slots are independent.
            assert!(t.try_lock(2).is_none());
            assert!(t.try_lock(1).is_some());
        }
        // Unlocked on drop.
        let s = t.try_lock(2).unwrap();
        assert_eq!(s.handle(), 0x1234);
        assert_eq!(s.size(), 100);
        assert!(s.test(flag::HUGE));
        assert!(!s.test(flag::SAME));
        assert_eq!(s.ac_time(), 7);
        s.set(flag::IDLE | flag::PP);
        s.touch(9);
        // An access ends both idleness and a pending writeback.
        assert!(!s.test(flag::IDLE));
        assert!(!s.test(flag::PP));
        assert_eq!(s.ac_time(), 9);
        // Flags do not disturb the size bits.
        assert_eq!(s.size(), 100);
        s.reset();
        assert!(!s.allocated());
    }

    #[test]
    fn slot_locks_are_seen_by_lockdep() {
        let t = SlotTable::new(2).unwrap();
        // `None`: a kernel without lockdep, nothing to see.
        if t.class.is_held().is_none() {
            return;
        }
        assert_eq!(t.class.is_held(), Some(false));
        {
            let _s = t.lock(0);
            assert_eq!(t.class.is_held(), Some(true));
        }
        assert_eq!(t.class.is_held(), Some(false));
        let s = t.try_lock(1).unwrap();
        assert_eq!(t.class.is_held(), Some(true));
        drop(s);
        assert_eq!(t.class.is_held(), Some(false));
    }

    #[test]
    fn same_slots_count_as_allocated() {
        let t = SlotTable::new(1).unwrap();
        let s = t.lock(0);
        s.store(0, 0, flag::SAME, 1);
        assert!(s.allocated());
    }
}

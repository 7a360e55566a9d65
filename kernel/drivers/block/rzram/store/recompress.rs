// SPDX-License-Identifier: GPL-2.0

//! Recompression (upstream's `recompress`): objects moved to a secondary
//! algorithm when that lands them in a smaller zsmalloc class.

use super::{inc, Store};
use crate::{
    base::PAGE,
    slots::{flag, SlotGuard},
};
use kernel::{alloc::flags, prelude::*};

/// What `recompress` selects (upstream's `RECOMPRESS_IDLE`/`_HUGE`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct RecompressMode {
    pub(crate) idle: bool,
    pub(crate) huge: bool,
}

impl Store {
    /// Recompresses the slots `mode` selects with the algorithm of priority
    /// `prio` (upstream's `recompress`): objects of at least `threshold`
    /// bytes (0: all), at most `max_pages` attempts. A slot whose object
    /// does not move to a smaller size class keeps it, and is marked
    /// incompressible when `prio` is the last algorithm.
    pub(crate) fn recompress(
        &self,
        mode: RecompressMode,
        threshold: usize,
        prio: usize,
        mut max_pages: u64,
    ) -> Result {
        if self.algorithms.0.get(prio).copied().flatten().is_none() || prio == 0 {
            return Err(EINVAL);
        }
        let mut picked = kernel::alloc::KVVec::<u32>::new();
        for index in 0..self.slots.len() {
            let s = self.slots.lock(index);
            if !s.allocated()
                || (mode.idle && !s.test(flag::IDLE))
                || (mode.huge && !s.test(flag::HUGE))
                || s.test(flag::WB | flag::SAME | flag::INCOMPRESSIBLE | flag::PP)
                || s.prio() >= prio
            {
                continue;
            }
            s.set(flag::PP);
            drop(s);
            if let Err(e) = picked.push(index as u32, GFP_KERNEL) {
                self.slots.lock(index).clear(flag::PP);
                for i in picked.iter() {
                    self.slots.lock(*i as usize).clear(flag::PP);
                }
                return Err(e.into());
            }
        }
        let mut page = KVec::with_capacity(PAGE, GFP_KERNEL)?;
        page.resize(PAGE, 0, GFP_KERNEL)?;
        let mut ret = Ok(());
        for index in picked.iter() {
            let s = self.slots.lock(*index as usize);
            if !s.test(flag::PP) {
                continue;
            }
            s.clear(flag::PP);
            if ret.is_err() || max_pages == 0 {
                continue;
            }
            ret = self.recompress_slot(&s, &mut page, threshold, prio, &mut max_pages);
        }
        ret
    }

    fn recompress_slot(
        &self,
        s: &SlotGuard<'_>,
        page: &mut [u8],
        threshold: usize,
        prio: usize,
        max_pages: &mut u64,
    ) -> Result {
        let old = s.size();
        if s.handle() == 0 {
            return Err(EINVAL);
        }
        // Small enough already.
        if old < threshold {
            return Ok(());
        }
        self.read_locked(s, (&mut *page).into())?;
        // Touched: no longer idle (so it is not also picked for writeback).
        s.clear(flag::IDLE);
        // Attempts count, successful or not, as upstream.
        *max_pages = max_pages.saturating_sub(1);
        // Lock order: slot, then workspace.
        let mut guard = self.workspace();
        let ws = &mut *guard;
        let codec = ws.codecs[prio].as_mut().ok_or(EINVAL)?;
        let new = codec
            .compress((&*page).into(), &mut ws.buf[..PAGE])
            .filter(|n| *n < self.huge_class_size)
            .filter(|n| self.pool.class_index(*n) < self.pool.class_index(old))
            .filter(|n| threshold == 0 || *n < threshold);
        let Some(new) = new else {
            drop(guard);
            if prio == self.algorithms.highest() {
                s.set(flag::INCOMPRESSIBLE);
            }
            return Ok(());
        };
        // The old object stays if there is no memory for the new one.
        let h = self.pool.malloc(
            new,
            flags::GFP_NOIO | flags::__GFP_NOWARN | flags::__GFP_HIGHMEM | flags::__GFP_MOVABLE,
        )?;
        // SAFETY: `h` was just allocated with room for `new` bytes, ours alone.
        unsafe { self.pool.write(h, &ws.buf[..new]) };
        drop(guard);
        let ac_time = s.ac_time();
        self.free_slot(s);
        s.store(
            h.to_raw() as u64,
            new,
            (prio as u32) << flag::PRIO_SHIFT,
            ac_time,
        );
        inc(&self.stats.compr_data_size, new as u64);
        inc(&self.stats.pages_stored, 1);
        Ok(())
    }
}

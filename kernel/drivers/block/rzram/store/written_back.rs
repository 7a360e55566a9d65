// SPDX-License-Identifier: GPL-2.0

//! The store's side of writeback: a page on its way to the backing device
//! (decompressed, or its compressed object, packed or not), recorded there,
//! and read back from it.

use super::{dec, Store};
use crate::{
    base::PAGE,
    slots::{flag, SlotGuard},
};
use kernel::{
    alloc::flags,
    mm::{shared::SharedBytesMut, zsmalloc::ZsHandle},
    page::Page,
    prelude::*,
};

/// Bits of a packed handle that hold the object's offset in its block.
const OFFSET_BITS: u32 = PAGE.trailing_zeros();

/// The handle of a packed slot: its block and its object's byte offset.
pub(crate) fn packed_handle(block: u64, offset: usize) -> u64 {
    (block << OFFSET_BITS) | offset as u64
}

/// The block a written-back slot's page (or object) starts in, and the
/// object's offset in it. A packed object runs on into the next block when
/// `offset + size > PAGE`.
pub(super) fn backing_location(s: &SlotGuard<'_>) -> (u64, usize) {
    if s.test(flag::PACKED) {
        (
            s.handle() >> OFFSET_BITS,
            (s.handle() & ((1 << OFFSET_BITS) - 1)) as usize,
        )
    } else {
        (s.handle(), 0)
    }
}

impl Store {
    /// Reads `block` (and the next, for an object that runs on), which held
    /// slot `index`'s `size` compressed bytes at `offset`, and decompresses
    /// them into `out`, if the slot still has that `handle` once it is read
    /// (`false`: it was freed or rewritten meanwhile).
    pub(super) fn read_compressed_block(
        &self,
        index: usize,
        (handle, size): (u64, usize),
        block: u64,
        offset: usize,
        out: SharedBytesMut<'_>,
    ) -> Result<bool> {
        let backing = self.backing.as_ref().ok_or(EIO)?;
        let len = (offset + size).next_multiple_of(PAGE);
        let mut data = KVec::with_capacity(len, flags::GFP_NOIO)?;
        data.resize(len, 0, flags::GFP_NOIO)?;
        backing.read_sync(self.dev, index, block, &mut data)?;
        let s = self.slots.lock(index);
        if !s.test(flag::WB) || s.handle() != handle || s.size() != size {
            return Ok(false);
        }
        let data = data.get(offset..offset + size).ok_or(EIO)?;
        let mut out = out;
        if s.test(flag::HUGE) {
            // Stored uncompressed: the block is the page.
            out.copy_from(data);
            return Ok(true);
        }
        // Lock order: slot, then workspace.
        let mut guard = self.workspace();
        let codec = guard
            .codecs
            .get_mut(s.prio())
            .and_then(Option::as_mut)
            .ok_or(EIO)?;
        codec.decompress(data, out)?;
        Ok(true)
    }

    /// Reads one whole page at `index` into `out`, from the backing device
    /// if it was written back (waiting for it).
    pub(crate) fn read_page_sync(&self, index: usize, out: &mut [u8]) -> Result {
        match self.read_page(index, &mut *out)? {
            None => Ok(()),
            Some(block) => self
                .backing
                .as_ref()
                .ok_or(EIO)?
                .read_sync(self.dev, index, block, out),
        }
    }

    /// The page of a locked slot in RAM, as it goes to the backing device:
    /// decompressed into `page`, or with compressed writeback its compressed
    /// bytes, the rest of the page zeroed (upstream leaves the rest as the
    /// page last held it).
    pub(crate) fn read_ram_page(&self, s: &SlotGuard<'_>, page: &Page) -> Result {
        if self.compressed_wb && !s.test(flag::SAME | flag::WB) && s.handle() != 0 {
            let size = self.read_ram_object(s, page, 0, None)?;
            // SAFETY: `page` is ours and PAGE bytes long; `size` <= PAGE.
            return unsafe { page.fill_zero_raw(size, PAGE - size) };
        }
        if let Some(h) = Self::page_object(s) {
            // SAFETY: `h` is a live object of PAGE bytes (`page_object`), not
            // written while the caller holds the slot lock; `page` is ours and
            // PAGE bytes long, and the mapping is PAGE bytes.
            return unsafe {
                self.pool
                    .read_page(h, |obj| page.write_raw(obj.as_ptr(), 0, PAGE))
            };
        }
        // Decompressed straight into the bio's page, as upstream's
        // `read_from_zspool` (through the workspace, with a copy of the
        // page after, it cost a third more CPU per page at batch 1).
        let mut guard = self.workspace();
        let ws = &mut *guard;
        let (local, _) = ws.buf.split_at_mut(PAGE);
        SharedBytesMut::with_page(page, |out| {
            self.read_locked_into(s, &mut ws.codecs[..], local, out)
        })
    }

    /// Copies the compressed object of a locked slot in RAM into `page` at
    /// `offset`, as it goes to the backing device; returns its size. What
    /// does not fit in `page` goes to the start of `next`. Each byte is
    /// copied once, with no workspace and no bounce buffer.
    pub(crate) fn read_ram_object(
        &self,
        s: &SlotGuard<'_>,
        page: &Page,
        offset: usize,
        next: Option<&Page>,
    ) -> Result<usize> {
        let size = s.size();
        if s.test(flag::SAME | flag::WB) || s.handle() == 0 || offset > PAGE || size > PAGE {
            return Err(EINVAL);
        }
        // SAFETY: the handle is live while the caller holds the slot lock.
        let h = unsafe { ZsHandle::from_raw(s.handle() as usize) };
        let here = size.min(PAGE - offset);
        // The object's `here` bytes at `offset` in the first page, the rest
        // at the start of the next.
        let copy = |first: SharedBytesMut<'_>, next: Option<SharedBytesMut<'_>>| {
            let first = first.range(offset, here).ok_or(EINVAL)?;
            let rest = next
                .map(|n| n.range(0, size - here).ok_or(EINVAL))
                .transpose()?;
            let (mut one, mut two);
            let parts: &mut [SharedBytesMut<'_>] = match rest {
                None => {
                    one = [first];
                    &mut one
                }
                Some(rest) => {
                    two = [first, rest];
                    &mut two
                }
            };
            // SAFETY: `h` is a live object of `size` bytes, not written while
            // the caller holds the slot lock, and the parts hold `here` and
            // `size - here` bytes.
            unsafe { self.pool.copy_to(h, parts) };
            Ok(size)
        };
        if here == size {
            return SharedBytesMut::with_page(page, |out| copy(out, None));
        }
        let next = next.ok_or(EINVAL)?;
        SharedBytesMut::with_page(page, |a| {
            SharedBytesMut::with_page(next, |b| copy(a, Some(b)))
        })
    }

    /// Records that the page of a locked slot is now at `block` on the
    /// backing device (packed: its object, at `offset` in the block), and
    /// frees its RAM. Written back compressed, the slot keeps what reading
    /// it back needs: the object's size, priority and whether it was stored
    /// uncompressed (as upstream).
    pub(crate) fn move_to_backing(&self, s: &SlotGuard<'_>, block: u64, offset: usize) {
        if s.test(flag::HUGE) {
            dec(&self.stats.huge_pages, 1);
        }
        dec(&self.stats.compr_data_size, s.size() as u64);
        // SAFETY: the slot owns this live handle of our pool (it holds no
        // WB or SAME page: those are never selected); it is replaced below,
        // under the slot lock.
        unsafe { self.pool.free(ZsHandle::from_raw(s.handle() as usize)) };
        let (size, kept) = if self.compressed_wb {
            (s.size(), s.flags() & (flag::HUGE | flag::PRIO_MASK))
        } else {
            (0, 0)
        };
        if self.packed {
            s.store(
                packed_handle(block, offset),
                size,
                flag::WB | flag::PACKED | kept,
                s.ac_time(),
            );
        } else {
            s.store(block, size, flag::WB | kept, s.ac_time());
        }
    }
}

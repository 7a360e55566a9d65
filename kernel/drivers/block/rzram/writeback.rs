// SPDX-License-Identifier: GPL-2.0

//! The writeback engine: moving pages from RAM to the backing device
//! (upstream's `wb_ctl`/`wb_req`).
//!
//! The engine is asynchronous. A writeback request lives in the front
//! padding of its bio (no allocation per request), from a bio set with a
//! reserve of one window and one bio, kept from one `writeback` write to the
//! next ([`WbBios`], in `writeback/queue.rs`); up to `writeback_batch_size`
//! bios are in flight, and the next is built while they are; submitting
//! never waits for a bio; the bio's end_io only puts it on the engine's list
//! (under an IRQ lock, with no reference counting: the bio set, which holds
//! the list, outlives every completion). The writer does the completion work (slot
//! updates, block release, accounting) in process context between
//! submissions and while it waits for room, so nothing of the engine runs
//! once `writeback` returns. Consecutive backing blocks are allocated for
//! consecutive requests and adjacent pages go into one multi-page bio
//! (`writeback_bio_pages`).
//!
//! Slots picked for writeback carry `PP` (post-processing, as upstream's
//! `ZRAM_PP_SLOT`). Freeing, rewriting or reading a slot clears it, so a
//! slot that changed or was used while its page was in flight is detected
//! at completion: it keeps its RAM copy and its block is released.

use crate::{
    backing::{Backing, SECTORS_PER_PAGE},
    base::{now_ns, PAGE},
    slots::flag,
    store::Store,
    trace,
    wb_select::{parse_writeback, select, unselect},
};
use kernel::{
    alloc::flags,
    block::{
        bio::BioOp,
        bio_set::{BioSet, OwnedBio},
        plug::{with_plug, Plug},
    },
    page::Page,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

mod queue;
mod req;

pub(crate) use queue::WbBios;
use queue::WbQueue;
use req::WbObject;
pub(crate) use req::WbReq;

/// The most pages one writeback bio carries.
pub(crate) const MAX_BIO_PAGES: usize = 32;
/// The most objects one writeback bio carries (packed, several a page).
const MAX_BIO_OBJECTS: usize = 4 * MAX_BIO_PAGES;
/// Default `writeback_batch_size`, as upstream.
pub(crate) const DEFAULT_BATCH: u32 = 32;

/// The writeback settings of a device (sysfs). `limit` and `limit_enable`
/// are changed only under the device's configuration lock, which a running
/// writeback holds: a writeback sees them fixed, charges what it submits and
/// refunds only what it charged.
pub(crate) struct WbSettings {
    /// `writeback_limit`, in 4K pages; charged at submit, refunded on failure.
    pub(crate) limit: Atomic<u64>,
    pub(crate) limit_enable: Atomic<bool>,
    /// Writeback bios in flight at most.
    pub(crate) batch_size: Atomic<u32>,
    /// Pages merged into one writeback bio at most (rzram only).
    pub(crate) bio_pages: Atomic<u32>,
    /// `compressed_writeback`: pages go to the backing device as their
    /// compressed bytes (set before `disksize`, kept across resets, as
    /// upstream).
    pub(crate) compressed: Atomic<bool>,
    /// `packed_writeback` (rzram only): compressed objects share backing
    /// blocks; set as `compressed`.
    pub(crate) packed: Atomic<bool>,
}

impl WbSettings {
    pub(crate) fn new() -> Self {
        Self {
            limit: Atomic::new(0),
            limit_enable: Atomic::new(false),
            batch_size: Atomic::new(DEFAULT_BATCH),
            bio_pages: Atomic::new(MAX_BIO_PAGES as u32),
            compressed: Atomic::new(false),
            packed: Atomic::new(false),
        }
    }
}

/// One `writeback` write's engine.
struct Batch<'a> {
    settings: &'a WbSettings,
    store: &'a Store,
    backing: &'a Backing,
    bios: &'a BioSet<WbReq>,
    /// Bios in flight at most.
    window: usize,
    /// Pages for the next bios: allocated when the writeback starts and
    /// given back by completed bios, so writing a page allocates nothing.
    spare: KVec<Page>,
    /// The error of the last failed bio whose completion work was done
    /// since this was last taken.
    err: Option<Error>,
}

impl<'a> Batch<'a> {
    /// An engine for `window` bios in flight from `kept`'s bio set, with up
    /// to `pages` pages allocated up front (`GFP_KERNEL`, as upstream's
    /// batch: the writer is not in the I/O path). Getting fewer is no error
    /// as long as there is one: completed bios give theirs back.
    fn new(
        settings: &'a WbSettings,
        store: &'a Store,
        backing: &'a Backing,
        kept: &'a mut Option<WbBios>,
        window: usize,
        pages: usize,
    ) -> Result<Self> {
        let bios = WbBios::get(kept, backing, window)?;
        // The pages last: what the engine cannot do without is allocated
        // first, and the pages take what is left.
        let mut spare = KVec::with_capacity(pages.max(1), GFP_KERNEL)?;
        while spare.len() < pages {
            match Page::alloc_page(GFP_KERNEL | flags::__GFP_NOWARN) {
                // Cannot fail: the capacity is reserved.
                Ok(p) => spare.push_within_capacity(p).map_err(|_| ENOMEM)?,
                Err(_) if spare.is_empty() => return Err(ENOMEM),
                Err(_) => break,
            }
        }
        Ok(Self {
            settings,
            store,
            backing,
            bios,
            window,
            spare,
            err: None,
        })
    }

    fn queue(&self) -> &WbQueue {
        self.bios.context()
    }

    /// Bios submitted and not yet through completion work.
    fn in_flight(&self) -> usize {
        self.queue().in_flight()
    }

    /// Completion work for one bio, in process context.
    fn complete(&mut self, mut bio: OwnedBio<WbReq>) {
        let status = if bio.data().broken {
            Err(EIO)
        } else {
            bio.status()
        };
        let req = bio.data_mut();
        let latency = req.end_ns.saturating_sub(req.start_ns);
        let dev = self.store.dev;
        if status.is_ok() {
            // Written, whether or not the slots still want them (as upstream
            // counts bd_writes): blocks, one a page unless packed.
            self.backing
                .stats
                .writes
                .fetch_add(req.pages as u64, Relaxed);
        }
        for o in req.objects() {
            let index = o.index as usize;
            let block = req.first_block + u64::from(o.page);
            let s = self.store.slots.lock(index);
            if status.is_ok() && s.test(flag::PP) {
                self.store.move_to_backing(&s, block, o.offset.into());
            } else {
                // Failed, or freed, rewritten or read while in flight: the
                // RAM copy (if any) stays, the object's place goes back.
                s.clear(flag::PP);
                self.backing.release_object(block, o.spans);
            }
            drop(s);
            trace::wb_complete(dev, index, block, latency, &status);
        }
        let charged = req.charged;
        if let Err(e) = status {
            self.store
                .stats
                .failed_writes
                .fetch_add(req.len() as u64, Relaxed);
            // The limit was charged by the block.
            if charged {
                self.settings.limit.fetch_add(req.pages as u64, Relaxed);
            }
            self.err = Some(e);
        }
        // The pages go back to the spares (freed if there is no room), then
        // the bio is freed.
        let spare = &mut self.spare;
        bio.take_pages(|p| {
            let _ = spare.push_within_capacity(p);
        });
        drop(bio);
        self.queue().finished();
    }

    /// Does the completion work of every bio that has arrived.
    fn reap(&mut self) {
        while let Some(bio) = self.queue().pop() {
            self.complete(bio);
        }
    }

    /// Makes room at the device for one more bio: when the window is full
    /// there, issues what `plug` holds and waits until a quarter of the
    /// window has completed (so the writer sleeps once per quarter window,
    /// refills it in one plugged burst, and the device queue never runs
    /// below three quarters). The completed bios' work is left for after
    /// the next submit: it is done while the device writes.
    fn make_room(&mut self, plug: Option<&Plug>) {
        let queue = self.queue();
        if queue.at_device() >= self.window {
            if let Some(plug) = plug {
                plug.flush();
            }
            queue.wait_at_device(self.window - self.window.div_ceil(4));
        }
    }

    /// Returns once at most `low` bios are in flight, doing the completion
    /// work of arrived bios meanwhile; first issues what `plug` holds, which
    /// may be what is waited for.
    fn wait_until(&mut self, plug: Option<&Plug>, low: usize) {
        if let Some(plug) = plug {
            plug.flush();
        }
        while let Some(bio) = self.queue().pop_or_wait(low) {
            self.complete(bio);
        }
    }

    /// Builds one bio for the picked slots from `picked[*next]`: at most
    /// `want` pages, to a run of consecutive blocks; packed, a page takes
    /// objects while they fit. The pages are charged to the writeback limit.
    /// `Ok(None)` when there was nothing left to write in the run's slots; a
    /// bio cut short by a failed page allocation is returned as it is (the
    /// next build fails with `ENOMEM` if there is still no page).
    fn build_one(
        &mut self,
        picked: &[u32],
        next: &mut usize,
        want: usize,
    ) -> Result<Option<OwnedBio<WbReq>>> {
        let Some(run) = self.backing.alloc_run(want) else {
            return Err(ENOSPC);
        };
        // With GFP_NOIO the bio set's reserve makes this wait, not fail.
        let bio = self.bios.alloc(
            BioOp::Write,
            0,
            run.len() as u16,
            flags::GFP_NOIO,
            WbReq::new(run.start as u64),
        );
        let mut bio = match bio {
            Ok(b) => b,
            Err(e) => {
                for block in run {
                    self.backing.release(block as u64);
                }
                return Err(e);
            }
        };
        let packed = self.store.packed;
        let mut ret = Ok(());
        // The page being filled: its bytes used and objects.
        let mut filling: Option<(Page, usize, u16)> = None;
        // Packed, the page an object that does not fit runs on into.
        let mut spill: Option<Page> = None;
        while *next < picked.len() && bio.data().has_room() {
            let Some((page, used, count)) = filling.as_mut() else {
                if bio.data().pages == run.len() {
                    break;
                }
                match self.take_page() {
                    Ok(p) => filling = Some((p, 0, 0)),
                    Err(e) => {
                        ret = Err(e);
                        break;
                    }
                }
                continue;
            };
            let index = picked[*next] as usize;
            let s = self.store.slots.lock(index);
            // Freed, rewritten or read since the scan: nothing to write.
            if !s.test(flag::PP) {
                *next += 1;
                continue;
            }
            let need = if packed { s.size() } else { PAGE };
            let spans = *used + need > PAGE;
            if spans {
                // Packed, the object runs on into the next page if the run
                // has one; else it starts the next page, or the next bio.
                if !packed || bio.data().pages + 1 >= run.len() {
                    drop(s);
                    self.add_page(&mut bio, filling.take());
                    continue;
                }
                if spill.is_none() {
                    // Not allocated under the slot lock.
                    drop(s);
                    match self.take_page() {
                        Ok(p) => spill = Some(p),
                        Err(e) => {
                            ret = Err(e);
                            break;
                        }
                    }
                    continue;
                }
            }
            let read = if packed {
                self.store
                    .read_ram_object(&s, page, *used, spill.as_ref())
                    .map(|_| ())
            } else {
                self.store.read_ram_page(&s, page)
            };
            *next += 1;
            if read.is_err() {
                s.clear(flag::PP);
                continue;
            }
            drop(s);
            let req = bio.data_mut();
            req.push(WbObject {
                index: index as u32,
                page: req.pages as u8,
                spans,
                offset: *used as u16,
            });
            *count += 1;
            if spans {
                let rest = *used + need - PAGE;
                *used = PAGE;
                self.add_page(&mut bio, filling.take());
                filling = spill.take().map(|p| (p, rest, 1));
            } else {
                *used += need;
                if *used == PAGE {
                    self.add_page(&mut bio, filling.take());
                }
            }
        }
        self.add_page(&mut bio, filling.take());
        if let Some(p) = spill {
            // Popped from the spares or allocated into their capacity.
            let _ = self.spare.push_within_capacity(p);
        }
        let pages = bio.data().pages;
        for block in run.start + pages..run.end {
            self.backing.release(block as u64);
        }
        if bio.data().len() == 0 {
            // Dropping the empty bio needs no completion work.
            drop(bio);
            return ret.map(|()| None);
        }
        if self.settings.limit_enable.load(Relaxed) {
            charge(&self.settings.limit, pages as u64);
            bio.data_mut().charged = true;
        }
        bio.set_sector(run.start as u64 * SECTORS_PER_PAGE);
        Ok(Some(bio))
    }

    /// Submits a bio [`Batch::build_one`] built; the caller made room for it.
    fn submit(&mut self, mut bio: OwnedBio<WbReq>) {
        let req = bio.data_mut();
        for o in req.objects() {
            trace::wb_submit(
                self.store.dev,
                o.index as usize,
                req.first_block + u64::from(o.page),
            );
        }
        if latency_traced() {
            req.start_ns = now_ns();
        }
        self.queue().submitting();
        bio.submit();
    }

    /// A page for the next bio page. All spares are in bios in flight when
    /// the up-front allocation fell short: then one more page, or wait for
    /// theirs.
    fn take_page(&mut self) -> Result<Page> {
        match self.spare.pop() {
            Some(p) => Ok(p),
            None => Ok(Page::alloc_page(flags::GFP_NOIO | flags::__GFP_NOWARN)?),
        }
    }

    /// Ends the page being filled: into `bio` if it holds an object (the
    /// rest of it zeroed, packed; its block counts its objects), else back
    /// to the spares.
    fn add_page(&mut self, bio: &mut OwnedBio<WbReq>, filling: Option<(Page, usize, u16)>) {
        let Some((page, used, count)) = filling else {
            return;
        };
        if count == 0 {
            // Popped from the spares (or allocated into their capacity):
            // there is room to put it back.
            let _ = self.spare.push_within_capacity(page);
            return;
        }
        if self.store.packed {
            // SAFETY: `page` is ours and PAGE bytes long; `used` <= PAGE.
            // Zeroed, the tail shows the device nothing of what the page
            // held before.
            if unsafe { page.fill_zero_raw(used, PAGE - used) }.is_err() {
                bio.data_mut().broken = true;
            }
            self.backing
                .set_objects(bio.data().first_block + bio.data().pages as u64, count);
        }
        if bio.add_page(page).is_err() {
            // Cannot happen (the bio was sized for the run). Were it to, the
            // request fails as a whole and every page stays in RAM.
            bio.data_mut().broken = true;
        }
        bio.data_mut().pages += 1;
    }
}

/// Whether `rzram_wb_complete` is enabled: the latency it reports costs two
/// clock reads per bio, made only then (a bio submitted while it was off
/// reports a latency of 0).
#[inline(always)]
fn latency_traced() -> bool {
    #[cfg(CONFIG_TRACEPOINTS)]
    // SAFETY: `__tracepoint_rzram_wb_complete` is a tracepoint C defines
    // (rzram_events.c), whose static key may always be queried.
    let on = unsafe {
        kernel::jump_label::static_branch_unlikely!(
            kernel::bindings::__tracepoint_rzram_wb_complete,
            kernel::bindings::tracepoint,
            key
        )
    };
    #[cfg(not(CONFIG_TRACEPOINTS))]
    let on = false;
    on
}

/// Takes `n` from a writeback limit, stopping at 0.
fn charge(limit: &Atomic<u64>, n: u64) {
    let mut cur = limit.load(Relaxed);
    while let Err(now) = limit.cmpxchg(cur, cur.saturating_sub(n), Relaxed) {
        cur = now;
    }
}

/// Writes back the pages `input` selects (the `writeback` attribute). The
/// caller holds the device's configuration lock.
///
/// Returns the last error, as upstream's `zram_writeback_slots`: what
/// stopped the submitting (`EIO` once the writeback limit is spent, `ENOSPC`
/// when the backing device is full), unless a bio failed after that (its
/// `EIO`, so userspace learns that writes failed); else the last failed
/// bio's error. Pages that were not written back stay in RAM. Every bio has
/// completed and its completion work is done when this returns.
pub(crate) fn writeback(
    settings: &WbSettings,
    store: &Store,
    kept: &mut Option<WbBios>,
    input: &[u8],
) -> Result {
    let backing = store.backing.as_deref().ok_or(ENODEV)?;
    let scans = parse_writeback(input, store.slots.len())?;
    let picked = select(store, &scans)?;
    let window = settings.batch_size.load(Relaxed).max(1) as usize;
    let bio_pages = (settings.bio_pages.load(Relaxed) as usize).clamp(1, MAX_BIO_PAGES);
    // A window of bios in flight and the next one being built.
    let pages = picked
        .len()
        .min(window.saturating_add(1).saturating_mul(bio_pages));
    let mut batch = match Batch::new(settings, store, backing, kept, window, pages) {
        Ok(b) => b,
        Err(e) => {
            unselect(store, picked.iter().map(|&i| i as usize));
            return Err(e);
        }
    };
    let mut next = 0;
    let mut submit_all = |plug: Option<&Plug>| {
        while next < picked.len() {
            let mut want = bio_pages.min(picked.len() - next);
            if settings.limit_enable.load(Relaxed) {
                let left = settings.limit.load(Relaxed);
                if left == 0 {
                    return Err(EIO);
                }
                want = want.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
            // The next bio is built while the window's bios are at the
            // device, and only then is room waited for; once there is room
            // it is submitted first, and the completion work of the bios
            // that made the room is done after. Copying or decompressing
            // pages and the completion work overlap the device's writes
            // (upstream's writer reads a slot only once a request is free,
            // and completes it first). At a window of one bio, the device's
            // latency no longer adds to the CPU's.
            batch.reap();
            match batch.build_one(&picked, &mut next, want) {
                Ok(Some(bio)) => {
                    batch.make_room(plug);
                    batch.submit(bio);
                }
                Ok(None) => {}
                // No page for the next request: bios in flight give theirs
                // back when they complete (writeback runs when memory is
                // short); only with none in flight is it an error.
                Err(e) if e == ENOMEM && batch.in_flight() > 0 => {
                    batch.wait_until(plug, batch.in_flight() - 1);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    // Plugged: the bios of a refill reach the device together (for blk-mq
    // devices, one doorbell); sleeping for the window flushes the plug. A
    // window of one bio has nothing to gather: its bio goes to the device
    // at once, as upstream's do.
    let ret = if window > 1 {
        with_plug(|plug| submit_all(Some(plug)))
    } else {
        submit_all(None)
    };
    unselect(store, picked[next..].iter().map(|&i| i as usize));
    let failed_before = batch.err.take();
    batch.wait_until(None, 0);
    match (batch.err.take(), ret, failed_before) {
        (Some(e), _, _) | (None, Err(e), _) | (None, Ok(()), Some(e)) => Err(e),
        (None, Ok(()), None) => Ok(()),
    }
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_writeback)]
mod tests {
    use super::*;

    #[test]
    fn nested_plugs_flush_the_active_one() {
        // blk_start_plug leaves an outer plug installed and does not
        // initialise the inner one: flushing the inner plug must flush the
        // outer (it used to flush the uninitialised one: a NULL dereference).
        let r = with_plug(|outer| {
            with_plug(|inner| inner.flush());
            outer.flush();
            7
        });
        assert_eq!(r, 7);
    }
}

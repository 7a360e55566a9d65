// SPDX-License-Identifier: GPL-2.0

//! One rzram device: its configuration, its store, and the bio path.

use crate::{
    backing::Backing,
    base::PAGE,
    comp::Algorithms,
    store::Store,
    trace,
    workspace::Hotplug,
    writeback::{WbBios, WbSettings},
};
use kernel::{
    alloc::flags::GFP_NOIO,
    block::{
        bio::{Bio, BioOp, Segment},
        bio_disk::{BioOperations, DiskRef},
        SECTOR_SHIFT,
    },
    new_mutex, new_spinlock,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow, Mutex, SpinLock,
    },
};

/// Configuration that survives until reset.
pub(crate) struct Config {
    /// By priority: the primary (`comp_algorithm`) and the
    /// `recomp_algorithm` ones.
    pub(crate) algorithms: Algorithms,
    /// Bytes; 0 for no limit.
    pub(crate) mem_limit: u64,
    /// Set by `backing_dev` before `disksize`; handed to the store.
    pub(crate) backing: Option<Arc<Backing>>,
    /// The writeback bio set, kept from one `writeback` write to the next.
    pub(crate) wb_bios: Option<WbBios>,
}

impl Config {
    /// A device's configuration after creation and after reset.
    pub(crate) fn initial() -> Self {
        Self {
            algorithms: Algorithms::primary(0),
            mem_limit: 0,
            backing: None,
            wb_bios: None,
        }
    }
}

/// One rzram device.
#[pin_data]
pub(crate) struct Zram {
    /// Serialises configuration changes (disksize, reset, algorithm,
    /// limits) and writeback.
    #[pin]
    pub(crate) config: Mutex<Config>,
    /// The data of an initialised device, for everything but the bio path
    /// (sysfs, writeback, swap's slot frees), which takes a reference under
    /// this lock. Bios get the disk's own copy, lent to `submit_bio` with
    /// no lock ([`BioOperations::SubmitData`]); both are set at `disksize`
    /// and taken away by reset.
    #[pin]
    pub(crate) store: SpinLock<Option<Arc<Store>>>,
    /// Writeback settings (`writeback_limit`, batch size, bio pages).
    pub(crate) wb: WbSettings,
    /// The disk's `dev_t`, set once it exists.
    pub(crate) dev: Atomic<u32>,
    /// The hotplug state the store's workspaces are an instance of.
    pub(crate) hotplug: Arc<Hotplug>,
}

impl Zram {
    pub(crate) fn new(hotplug: Arc<Hotplug>) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                config <- new_mutex!(Config::initial()),
                store <- new_spinlock!(None),
                wb: WbSettings::new(),
                dev: Atomic::new(0),
                hotplug,
            }),
            GFP_KERNEL,
        )
    }

    /// The store of an initialised device.
    pub(crate) fn store(&self) -> Option<Arc<Store>> {
        self.store.lock().clone()
    }
}

/// The bio operations of rzram disks.
pub(crate) struct Rzram;

#[vtable]
impl BioOperations for Rzram {
    type DiskData = Arc<Zram>;
    type SubmitData = Arc<Store>;

    fn submit_bio(
        _disk: &DiskRef,
        _zram: ArcBorrow<'_, Zram>,
        store: Option<ArcBorrow<'_, Store>>,
        bio: Bio,
    ) {
        let Some(store) = store else {
            bio.end(Err(EIO));
            return;
        };
        let result = match bio.op() {
            BioOp::Read | BioOp::Write => {
                let write = bio.op() == BioOp::Write;
                let acct = bio.start_io_acct();
                let r = rw(&store, &bio, write);
                bio.end_io_acct(acct);
                r
            }
            BioOp::Discard | BioOp::WriteZeroes => {
                discard(&store, bio.sector(), bio.size());
                Ok(())
            }
            BioOp::Flush => Ok(()),
            BioOp::Other(_) => Err(EOPNOTSUPP),
        };
        // Every failure completes as BLK_STS_IOERR, as upstream's.
        bio.end(result.map_err(|_| EIO));
    }

    fn swap_slot_free_notify(zram: ArcBorrow<'_, Zram>, offset: u64) {
        // Runs under the swap lock: never sleep. A busy slot is left for the
        // discard that follows, as upstream does. The store reference is never
        // the last one here (reset needs the disk closed, and swap holds it
        // open), so dropping it does not free the store in this context.
        let Some(store) = zram.store.lock().as_ref().map(|s| s.clone()) else {
            return;
        };
        // Counted per call, as upstream.
        store.stats.notify_free.fetch_add(1, Relaxed);
        let Some(s) = store.slots.try_lock(offset as usize) else {
            store.stats.miss_free.fetch_add(1, Relaxed);
            return;
        };
        trace::slot_access(store.dev, offset as usize, trace::Access::Free);
        store.free_slot(&s);
    }
}

/// Reads or writes the data of a bio, page by page; partial pages are read,
/// modified and written back.
fn rw(store: &Store, bio: &Bio, write: bool) -> Result {
    let mut pos = bio.sector() << SECTOR_SHIFT;
    for seg in bio.segments() {
        let len = seg.len();
        let whole = pos % PAGE as u64 == 0 && len == PAGE;
        let r = match (write, whole) {
            (true, true) => write_whole_page(store, pos, &seg),
            (true, false) => seg_write(store, pos, &seg),
            (false, true) => read_whole_page(store, pos, seg, bio.flags()),
            (false, false) => seg_read(store, pos, seg),
        };
        if let Err(e) = r {
            let counter = if write {
                &store.stats.failed_writes
            } else {
                &store.stats.failed_reads
            };
            counter.fetch_add(1, Relaxed);
            return Err(e);
        }
        pos += len as u64;
    }
    Ok(())
}

/// Writes a whole-page segment, compressed straight from its page.
fn write_whole_page(store: &Store, pos: u64, seg: &Segment<'_>) -> Result {
    let (index, _, _) = page_range(store, pos, PAGE)?;
    seg.with_bytes(|page| store.write_page(index, page))
}

/// Reads a whole-page segment; a written-back page is read from the backing
/// device straight into the segment, with the reader's request `flags`
/// (as upstream), and the bio completes when that read has.
fn read_whole_page(store: &Store, pos: u64, mut seg: Segment<'_>, flags: u32) -> Result {
    let (index, _, _) = page_range(store, pos, PAGE)?;
    match seg.with_bytes_mut(|page| store.read_page(index, page))? {
        None => Ok(()),
        Some(block) => store.backing.as_ref().ok_or(EIO)?.read_async(
            store.dev,
            index,
            block,
            seg.hold(),
            flags,
        ),
    }
}

/// A bounce buffer for a partial page.
fn bounce(len: usize) -> Result<KVec<u8>> {
    let mut buf = KVec::with_capacity(len, GFP_NOIO)?;
    buf.resize(len, 0, GFP_NOIO)?;
    Ok(buf)
}

fn seg_write(store: &Store, pos: u64, seg: &Segment<'_>) -> Result {
    let mut data = bounce(seg.len())?;
    seg.copy_to(&mut data);
    write_bytes(store, pos, &data)
}

fn seg_read(store: &Store, pos: u64, mut seg: Segment<'_>) -> Result {
    let mut data = bounce(seg.len())?;
    read_bytes(store, pos, &mut data)?;
    seg.copy_from(&data);
    Ok(())
}

fn page_range(store: &Store, pos: u64, len: usize) -> Result<(usize, usize, usize)> {
    let index = (pos / PAGE as u64) as usize;
    let off = (pos % PAGE as u64) as usize;
    if index >= store.slots.len() {
        return Err(EIO);
    }
    Ok((index, off, len.min(PAGE - off)))
}

fn write_bytes(store: &Store, mut pos: u64, mut data: &[u8]) -> Result {
    while !data.is_empty() {
        let (index, off, n) = page_range(store, pos, data.len())?;
        if off == 0 && n == PAGE {
            store.write_page(index, &data[..PAGE])?;
        } else {
            let mut page = bounce(PAGE)?;
            store.read_page_sync(index, &mut page)?;
            page[off..off + n].copy_from_slice(&data[..n]);
            store.write_page(index, &page[..])?;
        }
        data = &data[n..];
        pos += n as u64;
    }
    Ok(())
}

fn read_bytes(store: &Store, mut pos: u64, mut out: &mut [u8]) -> Result {
    while !out.is_empty() {
        let (index, off, n) = page_range(store, pos, out.len())?;
        let (head, rest) = core::mem::take(&mut out).split_at_mut(n);
        if off == 0 && n == PAGE {
            store.read_page_sync(index, head)?;
        } else {
            let mut page = bounce(PAGE)?;
            store.read_page_sync(index, &mut page)?;
            head.copy_from_slice(&page[off..off + n]);
        }
        out = rest;
        pos += n as u64;
    }
    Ok(())
}

/// Frees the whole pages in a discarded range (partial pages keep their data).
fn discard(store: &Store, sector: u64, size: u32) {
    let start = sector << SECTOR_SHIFT;
    let end = start + u64::from(size);
    let first = start.div_ceil(PAGE as u64);
    let last = end / PAGE as u64;
    for index in first..last.min(store.slots.len() as u64) {
        store.discard_page(index as usize);
        store.stats.notify_free.fetch_add(1, Relaxed);
    }
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_device)]
mod tests {
    use super::*;
    use crate::workspace::hotplug_state;

    #[test]
    fn discard_frees_only_whole_pages() {
        let store = Store::new(
            8 * PAGE as u64,
            0,
            Algorithms::primary(0),
            None,
            0,
            c"rzram-test",
            &hotplug_state().unwrap(),
        )
        .unwrap();
        let mut page = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        page.resize(PAGE, 7, GFP_KERNEL).unwrap();
        for i in 0..4 {
            assert!(store.write_page(i, &page[..]).is_ok());
        }
        // Sectors 4..28: half of page 0, pages 1 and 2, half of page 3.
        discard(&store, 4, 24 * 512);
        assert_eq!(store.stats.pages_stored.load(Relaxed), 2);
        assert!(store.slots.lock(0).allocated());
        assert!(!store.slots.lock(1).allocated());
        assert!(!store.slots.lock(2).allocated());
        assert!(store.slots.lock(3).allocated());
    }
}

// SPDX-License-Identifier: GPL-2.0

//! rzram: zram in Rust.
//!
//! Block devices `/dev/rzram<N>` that keep their pages compressed in RAM
//! (zsmalloc + lz4), with upstream zram's sysfs interface
//! (Documentation/admin-guide/blockdev/zram.rst) so that zram tools work
//! unchanged, and named apart so that rzram and zram run side by side.

mod slots;
mod store;
mod trace;
mod writeback;

use kernel::{
    alloc::flags::GFP_NOIO,
    bindings,
    block::{
        attr::{Attribute, AttributeGroup, SysfsBuf},
        bio::{Bio, BioOp, Segment},
        bio_disk::{BioDisk, BioDiskBuilder, BioOperations, DiskRef},
        SECTOR_SHIFT,
    },
    device::class,
    fmt::Write,
    new_mutex, new_spinlock,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow, Mutex, SpinLock,
    },
    sysfs::{CInput, KstrtoInt},
};
use store::{now_secs, Algorithms, RecompressMode, Store, ALGORITHMS, MAX_COMPS, PAGE};
use writeback::{Backing, DEFAULT_BATCH, MAX_BIO_PAGES};

/// Longest algorithm name upstream takes, its NUL included.
const MAX_ALGO_NAME_SZ: usize = 128;

module! {
    type: RzramModule,
    name: "rzram",
    authors: ["zramctl developers"],
    description: "Compressed RAM block devices (zram in Rust)",
    license: "GPL",
    params: {
        num_devices: u32 {
            default: 1,
            description: "Number of rzram devices created at load",
        },
    },
}

/// Configuration that survives until reset.
struct Config {
    /// By priority: the primary (`comp_algorithm`) and the
    /// `recomp_algorithm` ones.
    algorithms: Algorithms,
    /// Bytes; 0 for no limit.
    mem_limit: u64,
    /// Set by `backing_dev` before `disksize`; handed to the store.
    backing: Option<Arc<Backing>>,
}

/// One rzram device.
#[pin_data]
pub(crate) struct Zram {
    /// Serialises configuration changes (disksize, reset, algorithm, limits).
    #[pin]
    config: Mutex<Config>,
    /// The data of an initialised device. I/O takes a reference under this
    /// lock and works without it; reset swaps it out.
    #[pin]
    store: SpinLock<Option<Arc<Store>>>,
    /// `writeback_limit`, in 4K pages; charged at submit, refunded on failure.
    pub(crate) wb_limit: Atomic<u64>,
    pub(crate) wb_limit_enable: Atomic<bool>,
    /// Writeback bios in flight at most.
    pub(crate) wb_batch_size: Atomic<u32>,
    /// Pages merged into one writeback bio at most (rzram only).
    pub(crate) wb_bio_pages: Atomic<u32>,
    /// The disk's `dev_t`, set once it exists.
    dev: Atomic<u32>,
}

impl Zram {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                config <- new_mutex!(Config {
                    algorithms: Algorithms::primary(0),
                    mem_limit: 0,
                    backing: None,
                }),
                store <- new_spinlock!(None),
                wb_limit: Atomic::new(0),
                wb_limit_enable: Atomic::new(false),
                wb_batch_size: Atomic::new(DEFAULT_BATCH),
                wb_bio_pages: Atomic::new(MAX_BIO_PAGES as u32),
                dev: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    fn store(&self) -> Option<Arc<Store>> {
        self.store.lock().clone()
    }
}

struct Rzram;

#[vtable]
impl BioOperations for Rzram {
    type DiskData = Arc<Zram>;

    fn submit_bio(_disk: &DiskRef, zram: ArcBorrow<'_, Zram>, bio: Bio) {
        let Some(store) = zram.store() else {
            bio.end(Err(EIO));
            return;
        };
        let result = match bio.op() {
            BioOp::Read => rw(&store, &bio, false),
            BioOp::Write => rw(&store, &bio, true),
            BioOp::Discard | BioOp::WriteZeroes => {
                discard(&store, bio.sector(), bio.size());
                Ok(())
            }
            BioOp::Flush => Ok(()),
            BioOp::Other(_) => Err(EOPNOTSUPP),
        };
        bio.end(result);
    }

    fn swap_slot_free_notify(zram: ArcBorrow<'_, Zram>, offset: u64) {
        // Runs under the swap lock: never sleep. A busy slot is left for the
        // discard that follows, as upstream does. The store reference is never
        // the last one here (reset needs the disk closed, and swap holds it
        // open), so dropping it does not free the store in this context.
        let Some(store) = zram.store.lock().as_ref().map(|s| s.clone()) else {
            return;
        };
        let Some(s) = store.slots.try_lock(offset as usize) else {
            store.stats.miss_free.fetch_add(1, Relaxed);
            return;
        };
        trace::slot_access(store.dev, offset as usize, trace::Access::Free);
        store.free_slot(&s);
        store.stats.notify_free.fetch_add(1, Relaxed);
    }
}

/// Reads or writes the data of a bio, page by page; partial pages are read,
/// modified and written back.
fn rw(store: &Store, bio: &Bio, write: bool) -> Result {
    let mut pos = bio.sector() << SECTOR_SHIFT;
    for mut seg in bio.segments() {
        let len = seg.len();
        let r = if write {
            seg.with_slice(|data| write_bytes(store, pos, data))
        } else if pos % PAGE as u64 == 0 && len == PAGE {
            read_whole_page(store, bio, pos, &mut seg)
        } else {
            seg_read(store, pos, &mut seg)
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

/// Reads a whole-page segment; a written-back page is read from the backing
/// device straight into the segment, and `bio` completes when that read has.
fn read_whole_page(store: &Store, bio: &Bio, pos: u64, seg: &mut Segment) -> Result {
    let (index, _, _) = page_range(store, pos, PAGE)?;
    match seg.with_slice_mut(|out| store.read_page(index, out))? {
        None => Ok(()),
        Some(block) => store.backing.as_ref().ok_or(EIO)?.read_async(
            store.dev,
            index,
            block,
            seg.raw_page(),
            bio.hold(),
        ),
    }
}

fn seg_read(store: &Store, pos: u64, seg: &mut Segment) -> Result {
    seg.with_slice_mut(|data| read_bytes(store, pos, data))
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
            let mut page = KVec::with_capacity(PAGE, GFP_NOIO)?;
            page.resize(PAGE, 0, GFP_NOIO)?;
            store.read_page_sync(index, &mut page)?;
            page[off..off + n].copy_from_slice(&data[..n]);
            store.write_page(index, &page)?;
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
            let mut page = KVec::with_capacity(PAGE, GFP_NOIO)?;
            page.resize(PAGE, 0, GFP_NOIO)?;
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

/// The kernel's `memparse()` of the input (a number with an optional
/// K/M/G/T/P/E suffix, the rest ignored, wrapping on overflow as in C);
/// `None` when no number was parsed.
fn memparse(input: &[u8]) -> Result<Option<u64>> {
    let (v, used) = CInput::new(input)?.memparse();
    Ok((used > 0).then_some(v))
}

/// A decimal (`base` 10) or prefixed (`base` 0) number, with the errors of
/// the kernel's `kstrto*` functions, which upstream zram's attributes use.
fn kstrto<T: KstrtoInt>(input: &[u8], base: u32) -> Result<T> {
    CInput::new(input)?.kstrto(base)
}

/// `PAGE_ALIGN()`, wrapping like C's.
fn page_align(n: u64) -> u64 {
    n.wrapping_add(PAGE as u64 - 1) & !(PAGE as u64 - 1)
}

type Z<'a> = ArcBorrow<'a, Zram>;

fn disksize_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    let size = z.store().map_or(0, |s| s.disksize);
    writeln!(out, "{size}").map_err(|_| EINVAL)
}

fn disksize_store(disk: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let size = memparse(input)?.unwrap_or(0);
    if size == 0 {
        return Err(EINVAL);
    }
    let config = z.config.lock();
    if z.store().is_some() {
        return Err(EBUSY);
    }
    let size = page_align(size);
    if size == 0 {
        return Err(EINVAL);
    }
    let store = Arc::new(
        Store::new(
            size,
            config.mem_limit,
            config.algorithms,
            config.backing.clone(),
            z.dev.load(Relaxed),
        )?,
        GFP_KERNEL,
    )?;
    *z.store.lock() = Some(store);
    disk.set_capacity_sectors(size >> SECTOR_SHIFT);
    Ok(())
}

fn initstate_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", u8::from(z.store().is_some())).map_err(|_| EINVAL)
}

fn reset_store(disk: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let v: u16 = kstrto(input, 10)?;
    if v == 0 {
        return Err(EINVAL);
    }
    let mut config = z.config.lock();
    if disk.openers() > 0 {
        return Err(EBUSY);
    }
    let old = z.store.lock().take();
    disk.set_capacity_sectors(0);
    // Freed here, or by the last bio still holding it.
    drop(old);
    // Closes the backing device, once the store no longer holds it.
    *config = Config {
        algorithms: Algorithms::primary(0),
        mem_limit: 0,
        backing: None,
    };
    Ok(())
}

/// The algorithm list with `current` in brackets, as zcomp_available_show.
fn algorithm_list(out: &mut SysfsBuf<'_>, current: Option<usize>) -> Result {
    for (i, name) in ALGORITHMS.iter().enumerate() {
        if Some(i) == current {
            write!(out, "[{name}] ").map_err(|_| EINVAL)?;
        } else {
            write!(out, "{name} ").map_err(|_| EINVAL)?;
        }
    }
    writeln!(out).map_err(|_| EINVAL)
}

fn comp_algorithm_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    let current = z.config.lock().algorithms.0[0];
    algorithm_list(out, current)
}

fn recomp_algorithm_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    let algorithms = z.config.lock().algorithms;
    for (prio, algorithm) in algorithms.0.iter().enumerate().skip(1) {
        if algorithm.is_some() {
            write!(out, "#{prio}: ").map_err(|_| EINVAL)?;
            algorithm_list(out, *algorithm)?;
        }
    }
    Ok(())
}

/// The index in `ALGORITHMS` of a name as `__comp_algorithm_store` takes
/// it: `E2BIG` for a name that long, `EINVAL` for an unknown one; a trailing
/// newline is ignored (`sysfs_streq`).
fn algorithm_index(name: &[u8]) -> Result<usize> {
    if name.len() >= MAX_ALGO_NAME_SZ {
        return Err(E2BIG);
    }
    let name = name.strip_suffix(b"\n").unwrap_or(name);
    ALGORITHMS
        .iter()
        .position(|a| a.as_bytes() == name)
        .ok_or(EINVAL)
}

/// `algo=NAME [priority=N]` (priority 1 by default), as upstream.
fn recomp_algorithm_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let mut input = CInput::new(input)?;
    let (mut algo, mut prio) = (None, 1i32);
    for (key, val) in input.args()? {
        let Some(val) = val.filter(|v| !v.is_empty()) else {
            return Err(EINVAL);
        };
        match key {
            b"algo" => algo = Some(val),
            b"priority" => prio = kstrto(val, 10)?,
            _ => {}
        }
    }
    let algo = algo.ok_or(EINVAL)?;
    let prio = usize::try_from(prio).map_err(|_| EINVAL)?;
    if !(1..MAX_COMPS).contains(&prio) {
        return Err(EINVAL);
    }
    let index = algorithm_index(algo)?;
    let mut config = z.config.lock();
    if z.store().is_some() {
        return Err(EBUSY);
    }
    config.algorithms.0[prio] = Some(index);
    Ok(())
}

/// Parses a `recompress` write: (mode, threshold, priority by number or
/// algorithm name, max_pages).
fn parse_recompress(
    input: &[u8],
    algorithms: &Algorithms,
    huge_class_size: usize,
) -> Result<(RecompressMode, usize, usize, u64)> {
    let mut input = CInput::new(input)?;
    let mut mode = RecompressMode::default();
    let (mut threshold, mut max_pages) = (0u32, u64::MAX);
    let (mut algo, mut prio) = (None, None);
    for (key, val) in input.args()? {
        let Some(val) = val.filter(|v| !v.is_empty()) else {
            return Err(EINVAL);
        };
        match key {
            b"type" => {
                let (idle, huge) = match val {
                    b"idle" => (true, false),
                    b"huge" => (false, true),
                    b"huge_idle" => (true, true),
                    // Upstream keeps a mode set by an earlier `type=`.
                    _ => (mode.idle, mode.huge),
                };
                mode = RecompressMode { idle, huge };
                if mode == RecompressMode::default() {
                    return Err(EINVAL);
                }
            }
            b"max_pages" => max_pages = kstrto(val, 10)?,
            b"threshold" => threshold = kstrto(val, 10)?,
            b"algo" => algo = Some(val),
            b"priority" => prio = Some(kstrto::<i32>(val, 10)?),
            _ => {}
        }
    }
    if threshold as usize >= huge_class_size {
        return Err(EINVAL);
    }
    let prio = prio.map(|p| usize::try_from(p).unwrap_or(usize::MAX));
    let named = |p: usize| {
        algorithms.0[p].is_some_and(|i| algo.is_none_or(|a| ALGORITHMS[i].as_bytes() == a))
    };
    let prio = match prio {
        Some(p) if !(1..MAX_COMPS).contains(&p) => return Err(EINVAL),
        Some(p) if named(p) => p,
        Some(_) => return Err(EINVAL),
        None if algo.is_some() => (1..MAX_COMPS).find(|p| named(*p)).ok_or(EINVAL)?,
        None if named(1) => 1,
        None => return Err(EINVAL),
    };
    Ok((mode, threshold as usize, prio, max_pages))
}

fn recompress_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let _config = z.config.lock();
    let Some(store) = z.store() else {
        // As upstream: a malformed request is reported before the state.
        parse_recompress(input, &Algorithms::primary(0), usize::MAX)?;
        return Err(EINVAL);
    };
    let (mode, threshold, prio, max_pages) =
        parse_recompress(input, &store.algorithms, store.huge_class_size())?;
    store.recompress(mode, threshold, prio, max_pages)
}

fn comp_algorithm_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let index = algorithm_index(CInput::new(input)?.as_bytes())?;
    let mut config = z.config.lock();
    if z.store().is_some() {
        return Err(EBUSY);
    }
    config.algorithms.0[0] = Some(index);
    Ok(())
}

fn mem_limit_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let limit = page_align(memparse(input)?.ok_or(EINVAL)?);
    let mut config = z.config.lock();
    config.mem_limit = limit;
    if let Some(s) = z.store() {
        s.mem_limit.store(limit / PAGE as u64, Relaxed);
    }
    Ok(())
}

fn mem_used_max_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    if kstrto::<u64>(input, 10) != Ok(0) {
        return Err(EINVAL);
    }
    if let Some(s) = z.store() {
        s.reset_max_used();
    }
    Ok(())
}

fn mm_stat_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    let limit = z.config.lock().mem_limit;
    let (stats, mem_used) = match z.store() {
        Some(s) => {
            let st = &s.stats;
            (
                [
                    st.pages_stored.load(Relaxed) * PAGE as u64,
                    st.compr_data_size.load(Relaxed),
                    st.max_used_pages.load(Relaxed) * PAGE as u64,
                    st.same_pages.load(Relaxed),
                    st.pages_compacted.load(Relaxed),
                    st.huge_pages.load(Relaxed),
                    st.huge_pages_since.load(Relaxed),
                ],
                s.mem_used_bytes(),
            )
        }
        None => ([0; 7], 0),
    };
    let [orig, compr, max_used, same, compacted, huge, huge_since] = stats;
    writeln!(
        out,
        "{orig:8} {compr:8} {mem_used:8} {limit:8} {max_used:8} {same:8} {compacted:8} {huge:8} {huge_since:8}"
    )
    .map_err(|_| EINVAL)
}

fn io_stat_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    let (r, w, f) = z.store().map_or((0, 0, 0), |s| {
        (
            s.stats.failed_reads.load(Relaxed),
            s.stats.failed_writes.load(Relaxed),
            s.stats.notify_free.load(Relaxed),
        )
    });
    writeln!(out, "{r:8} {w:8} 0 {f:8}").map_err(|_| EINVAL)
}

fn debug_stat_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    let miss = z.store().map_or(0, |s| s.stats.miss_free.load(Relaxed));
    write!(out, "version: 1\n0 {miss:8}\n").map_err(|_| EINVAL)
}

fn idle_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let input = CInput::new(input)?;
    let cutoff = if input.streq(c"all") {
        None
    } else {
        let age: u32 = input.kstrto(0).map_err(|_| EINVAL)?;
        let now = now_secs();
        // No slot is older than the system: nothing to mark.
        if age >= now {
            return Ok(());
        }
        Some(now - age)
    };
    let _config = z.config.lock();
    let store = z.store().ok_or(EINVAL)?;
    store.mark_idle(cutoff);
    Ok(())
}

fn compact_store(_: &DiskRef, z: Z<'_>, _input: &[u8]) -> Result {
    let _config = z.config.lock();
    z.store().ok_or(EINVAL)?.compact();
    Ok(())
}

fn backing_dev_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    match &z.config.lock().backing {
        None => writeln!(out, "none"),
        Some(b) => writeln!(out, "{}", core::str::from_utf8(&b.path).unwrap_or("?")),
    }
    .map_err(|_| EINVAL)
}

fn backing_dev_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let mut config = z.config.lock();
    if z.store().is_some() {
        return Err(EBUSY);
    }
    // As upstream reads it: up to a NUL, at most PATH_MAX - 1 bytes
    // (strscpy), then without one trailing newline.
    let input = CInput::new(input)?;
    let path = input.as_bytes();
    let path = &path[..path.len().min(bindings::PATH_MAX as usize - 1)];
    let path = path.strip_suffix(b"\n").unwrap_or(path);
    config.backing = Some(Backing::open(path)?);
    Ok(())
}

fn bd_stat_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    let (c, r, w) = z
        .store()
        .and_then(|s| s.backing.clone())
        .map_or((0, 0, 0), |b| {
            (
                b.stats.count.load(Relaxed),
                b.stats.reads.load(Relaxed),
                b.stats.writes.load(Relaxed),
            )
        });
    writeln!(out, "{c:8} {r:8} {w:8}").map_err(|_| EINVAL)
}

fn writeback_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    // Held throughout, as upstream holds its device lock: no reset, idle
    // marking or reconfiguration while pages are in flight.
    let _config = z.config.lock();
    let store = z.store().ok_or(EINVAL)?;
    writeback::writeback(z.into(), store, input)
}

/// A decimal number, as `kstrtoull(buf, 10, ...)` reads it.
/// Upstream's writeback attributes turn any `kstrto*` error into `EINVAL`.
fn parse_decimal<T: KstrtoInt>(input: &[u8]) -> Result<T> {
    kstrto(input, 10).map_err(|_| EINVAL)
}

fn writeback_limit_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", z.wb_limit.load(Relaxed)).map_err(|_| EINVAL)
}

fn writeback_limit_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    z.wb_limit.store(parse_decimal::<u64>(input)?, Relaxed);
    Ok(())
}

fn writeback_limit_enable_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", u8::from(z.wb_limit_enable.load(Relaxed))).map_err(|_| EINVAL)
}

fn writeback_limit_enable_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    z.wb_limit_enable
        .store(parse_decimal::<u64>(input)? != 0, Relaxed);
    Ok(())
}

fn writeback_batch_size_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", z.wb_batch_size.load(Relaxed)).map_err(|_| EINVAL)
}

fn writeback_batch_size_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let v: u32 = parse_decimal(input)?;
    if v == 0 {
        return Err(EINVAL);
    }
    z.wb_batch_size.store(v, Relaxed);
    Ok(())
}

fn writeback_bio_pages_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", z.wb_bio_pages.load(Relaxed)).map_err(|_| EINVAL)
}

fn writeback_bio_pages_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let v: u32 = parse_decimal(input)?;
    if v == 0 || v > MAX_BIO_PAGES as u32 {
        return Err(EINVAL);
    }
    z.wb_bio_pages.store(v as u32, Relaxed);
    Ok(())
}

const ATTRIBUTES: &[Attribute<Arc<Zram>>] = &[
    Attribute {
        name: c"disksize",
        show: Some(disksize_show),
        store: Some(disksize_store),
    },
    Attribute {
        name: c"initstate",
        show: Some(initstate_show),
        store: None,
    },
    Attribute {
        name: c"reset",
        show: None,
        store: Some(reset_store),
    },
    Attribute {
        name: c"comp_algorithm",
        show: Some(comp_algorithm_show),
        store: Some(comp_algorithm_store),
    },
    Attribute {
        name: c"mem_limit",
        show: None,
        store: Some(mem_limit_store),
    },
    Attribute {
        name: c"mem_used_max",
        show: None,
        store: Some(mem_used_max_store),
    },
    Attribute {
        name: c"mm_stat",
        show: Some(mm_stat_show),
        store: None,
    },
    Attribute {
        name: c"io_stat",
        show: Some(io_stat_show),
        store: None,
    },
    Attribute {
        name: c"debug_stat",
        show: Some(debug_stat_show),
        store: None,
    },
    Attribute {
        name: c"idle",
        show: None,
        store: Some(idle_store),
    },
    Attribute {
        name: c"compact",
        show: None,
        store: Some(compact_store),
    },
    Attribute {
        name: c"recomp_algorithm",
        show: Some(recomp_algorithm_show),
        store: Some(recomp_algorithm_store),
    },
    Attribute {
        name: c"recompress",
        show: None,
        store: Some(recompress_store),
    },
    Attribute {
        name: c"backing_dev",
        show: Some(backing_dev_show),
        store: Some(backing_dev_store),
    },
    Attribute {
        name: c"bd_stat",
        show: Some(bd_stat_show),
        store: None,
    },
    Attribute {
        name: c"writeback",
        show: None,
        store: Some(writeback_store),
    },
    Attribute {
        name: c"writeback_limit",
        show: Some(writeback_limit_show),
        store: Some(writeback_limit_store),
    },
    Attribute {
        name: c"writeback_limit_enable",
        show: Some(writeback_limit_enable_show),
        store: Some(writeback_limit_enable_store),
    },
    Attribute {
        name: c"writeback_batch_size",
        show: Some(writeback_batch_size_show),
        store: Some(writeback_batch_size_store),
    },
    Attribute {
        name: c"writeback_bio_pages",
        show: Some(writeback_bio_pages_show),
        store: Some(writeback_bio_pages_store),
    },
];

/// All rzram disks, by index; `None` where one was hot-removed.
#[pin_data]
struct Devices {
    module: &'static ThisModule,
    // Declared before `attrs`: disks are removed before the attributes go.
    #[pin]
    disks: Mutex<KVec<Option<BioDisk<Rzram>>>>,
    attrs: AttributeGroup<Arc<Zram>>,
}

impl Devices {
    fn new(module: &'static ThisModule) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                module,
                disks <- new_mutex!(KVec::new()),
                attrs: AttributeGroup::new(ATTRIBUTES)?,
            }),
            GFP_KERNEL,
        )
    }

    /// Creates a disk at the lowest free index and returns the index.
    fn add(&self) -> Result<usize> {
        let mut disks = self.disks.lock();
        let id = disks
            .iter()
            .position(Option::is_none)
            .unwrap_or(disks.len());
        let zram = Zram::new()?;
        let disk = BioDiskBuilder::new()
            .discard(true)
            .write_zeroes(true)
            .synchronous(true)
            .stable_writes(true)
            .build::<Rzram>(
                fmt!("rzram{id}"),
                self.module,
                zram.clone(),
                Some(&self.attrs),
            )?;
        zram.dev.store(disk.disk().devt(), Relaxed);
        if id == disks.len() {
            disks.push(Some(disk), GFP_KERNEL)?;
        } else {
            disks[id] = Some(disk);
        }
        Ok(id)
    }

    /// Removes disk `id`, which must exist and not be open (mounted, swap).
    fn remove(&self, id: usize) -> Result {
        let mut disks = self.disks.lock();
        let slot = disks.get_mut(id).ok_or(ENODEV)?;
        let disk = slot.as_ref().ok_or(ENODEV)?;
        if disk.disk().openers() > 0 {
            return Err(EBUSY);
        }
        // del_gendisk() in the drop waits for sysfs users and bios in flight.
        drop(slot.take());
        Ok(())
    }
}

/// `/sys/class/rzram-control/hot_add`: reading it creates a disk and
/// returns its index, like zram-control's.
fn hot_add_show(d: &Devices, out: &mut SysfsBuf<'_>) -> Result {
    let id = d.add()?;
    writeln!(out, "{id}").map_err(|_| EINVAL)
}

/// `/sys/class/rzram-control/hot_remove`: writing an index removes that disk.
fn hot_remove_store(d: &Devices, input: &[u8]) -> Result {
    let id: i32 = kstrto(input, 10)?;
    d.remove(usize::try_from(id).map_err(|_| EINVAL)?)
}

const CONTROL: &[class::Attribute<Devices>] = &[
    class::Attribute {
        name: c"hot_add",
        show: Some(hot_add_show),
        store: None,
        mode: 0o400,
    },
    class::Attribute {
        name: c"hot_remove",
        show: None,
        store: Some(hot_remove_store),
        mode: 0o200,
    },
];

struct RzramModule {
    // Unregistered first, so no hot_add runs while the disks go away.
    _control: class::Registration<Devices>,
    _devices: Arc<Devices>,
}

impl kernel::Module for RzramModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let devices = Devices::new(module)?;
        let n = module_parameters::num_devices.value();
        for _ in 0..n {
            devices.add()?;
        }
        let control = class::Registration::new(c"rzram-control", devices.clone(), CONTROL)?;
        pr_info!("{n} device(s) created\n");
        Ok(Self {
            _control: control,
            _devices: devices,
        })
    }
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_sysfs)]
mod tests {
    use super::*;

    #[test]
    fn memparse_is_the_kernels() {
        assert_eq!(memparse(b"4096\n"), Ok(Some(4096)));
        assert_eq!(memparse(b"1M"), Ok(Some(1 << 20)));
        assert_eq!(memparse(b"2g"), Ok(Some(2 << 30)));
        assert_eq!(memparse(b"0x1000"), Ok(Some(4096)));
        assert_eq!(memparse(b"010"), Ok(Some(8)));
        assert_eq!(memparse(b"0"), Ok(Some(0)));
        // As C: trailing junk after the suffix is ignored, parsing stops at
        // a NUL, and there is no number in these.
        assert_eq!(memparse(b"12Q"), Ok(Some(12)));
        assert_eq!(memparse(b"7\x008"), Ok(Some(7)));
        assert_eq!(memparse(b"abc"), Ok(None));
        assert_eq!(memparse(b"-1"), Ok(None));
        assert_eq!(memparse(b""), Ok(None));
        assert_eq!(memparse(b" 1"), Ok(None));
    }

    #[test]
    fn numbers_parse_like_kstrto() {
        assert_eq!(kstrto::<u64>(b"42\n", 10), Ok(42));
        assert_eq!(kstrto::<u64>(b"+42", 10), Ok(42));
        // Only one trailing newline, no other space.
        assert_eq!(kstrto::<u64>(b" 42", 10), Err(EINVAL));
        assert_eq!(kstrto::<u64>(b"42 ", 10), Err(EINVAL));
        assert_eq!(kstrto::<u64>(b"42\n\n", 10), Err(EINVAL));
        assert_eq!(kstrto::<u64>(b"", 10), Err(EINVAL));
        assert_eq!(kstrto::<u64>(b"0x10", 10), Err(EINVAL));
        assert_eq!(kstrto::<u32>(b"0x10", 0), Ok(16));
        assert_eq!(kstrto::<u16>(b"65536", 10), Err(ERANGE));
        assert_eq!(kstrto::<i32>(b"-3", 10), Ok(-3));
        assert_eq!(kstrto::<u64>(b"18446744073709551616", 10), Err(ERANGE));
        assert_eq!(algorithm_index(b"zstd\n"), Ok(1));
        assert_eq!(algorithm_index(b" zstd"), Err(EINVAL));
        assert_eq!(algorithm_index(&[b'a'; 128]), Err(E2BIG));
    }

    #[test]
    fn recompress_requests_parse_like_upstream() {
        let mut algs = Algorithms::primary(0);
        // No secondary algorithm: nothing to recompress with.
        assert_eq!(
            parse_recompress(b"type=idle", &algs, 3000).err(),
            Some(EINVAL)
        );
        algs.0[1] = Some(1);
        let idle = RecompressMode {
            idle: true,
            huge: false,
        };
        assert_eq!(
            parse_recompress(b"type=idle\n", &algs, 3000),
            Ok((idle, 0, 1, u64::MAX))
        );
        assert_eq!(
            parse_recompress(
                b"type=huge_idle threshold=1000 max_pages=7 algo=zstd",
                &algs,
                3000
            ),
            Ok((
                RecompressMode {
                    idle: true,
                    huge: true
                },
                1000,
                1,
                7
            ))
        );
        // No type: every slot.
        assert_eq!(
            parse_recompress(b"priority=1", &algs, 3000),
            Ok((RecompressMode::default(), 0, 1, u64::MAX))
        );
        assert_eq!(
            parse_recompress(b"type=cold", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(parse_recompress(b"type", &algs, 3000).err(), Some(EINVAL));
        assert_eq!(
            parse_recompress(b"threshold=3000", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"algo=lz4", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"priority=2", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"priority=4", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"priority=0", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"algo=zstd priority=2", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"max_pages=x", &algs, 3000).err(),
            Some(EINVAL)
        );
    }

    #[test]
    fn discard_frees_only_whole_pages() {
        let store = Store::new(8 * PAGE as u64, 0, Algorithms::primary(0), None, 0).unwrap();
        let mut page = KVec::with_capacity(PAGE, GFP_KERNEL).unwrap();
        page.resize(PAGE, 7, GFP_KERNEL).unwrap();
        for i in 0..4 {
            assert!(store.write_page(i, &page).is_ok());
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

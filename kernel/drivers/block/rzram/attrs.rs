// SPDX-License-Identifier: GPL-2.0

//! rzram's disk attributes (`/sys/block/rzram<N>/`): upstream zram's
//! sysfs ABI, declared in one table at the end of this file.

use crate::{
    backing::Backing,
    base::{now_secs, PAGE},
    comp::{Algorithms, ALGORITHMS, MAX_COMPS},
    device::{Config, Zram},
    parse::{algorithm_index, kstrto, memparse, page_align, parse_decimal, parse_recompress},
    store::Store,
    writeback::{self, MAX_BIO_PAGES},
};
use kernel::{
    bindings,
    block::{
        attr::{Attribute, SysfsBuf},
        bio_disk::DiskRef,
        SECTOR_SHIFT,
    },
    fmt::Write,
    prelude::*,
    str::kstrtobool_bytes,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow,
    },
    sysfs::CInput,
};

/// Declares attributes: `ro`/`wo`/`rw` and the name.
macro_rules! attributes {
    ($($kind:ident $name:ident;)*) => {
        &[$(attributes!(@one $kind $name),)*]
    };
    (@one ro $name:ident) => {
        kernel::macros::paste! {
            Attribute { name: kernel::c_str!(stringify!($name)), show: Some([<$name _show>]), store: None }
        }
    };
    (@one wo $name:ident) => {
        kernel::macros::paste! {
            Attribute { name: kernel::c_str!(stringify!($name)), show: None, store: Some([<$name _store>]) }
        }
    };
    (@one rw $name:ident) => {
        kernel::macros::paste! {
            Attribute {
                name: kernel::c_str!(stringify!($name)),
                show: Some([<$name _show>]),
                store: Some([<$name _store>]),
            }
        }
    };
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
    let mut store = Store::new(
        size,
        config.mem_limit,
        config.algorithms,
        config.backing.clone(),
        z.dev.load(Relaxed),
        disk.name(),
        &z.hotplug,
    )?;
    store.packed = z.wb.packed.load(Relaxed);
    store.compressed_wb = store.packed || z.wb.compressed.load(Relaxed);
    if let (true, Some(b)) = (store.packed, &store.backing) {
        b.pack()?;
    }
    let store = Arc::new(store, GFP_KERNEL)?;
    // The bio path's copy (there was none: the device was not initialised),
    // then the one of the other paths.
    disk.replace_submit_data(Some(store.clone()))
        .map_err(|(e, _)| e)?;
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
    // As upstream: EBUSY while open or claimed; from here no one can open
    // the disk, and its page cache is written back and dropped.
    let claim = disk.claim()?;
    let mut config = z.config.lock();
    // The bio path's copy first: it fails only for a wrong type, before
    // anything changed.
    let old_io = disk
        .replace_submit_data::<Arc<Store>>(None)
        .map_err(|(e, _)| e)?;
    let old = z.store.lock().take();
    disk.set_capacity_sectors(0);
    // Freed here: no bio is in flight (the disk is closed and synced) and
    // the writeback holding it ran under the config lock.
    drop(old_io);
    drop(old);
    // Closes the backing device, once the store no longer holds it.
    *config = Config::initial();
    drop(config);
    drop(claim);
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
    // marking, limit change or reconfiguration while pages are in flight.
    let mut config = z.config.lock();
    let store = z.store().ok_or(EINVAL)?;
    writeback::writeback(&z.wb, &store, &mut config.wb_bios, input)
}

fn writeback_limit_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", z.wb.limit.load(Relaxed)).map_err(|_| EINVAL)
}

fn writeback_limit_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let v = parse_decimal::<u64>(input)?;
    // Serialised with writeback, which charges and refunds the limit.
    let _config = z.config.lock();
    z.wb.limit.store(v, Relaxed);
    Ok(())
}

fn writeback_limit_enable_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", u8::from(z.wb.limit_enable.load(Relaxed))).map_err(|_| EINVAL)
}

fn writeback_limit_enable_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let on = parse_decimal::<u64>(input)? != 0;
    // As `writeback_limit_store`.
    let _config = z.config.lock();
    z.wb.limit_enable.store(on, Relaxed);
    Ok(())
}

fn writeback_batch_size_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", z.wb.batch_size.load(Relaxed)).map_err(|_| EINVAL)
}

fn writeback_batch_size_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let v: u32 = parse_decimal(input)?;
    if v == 0 {
        return Err(EINVAL);
    }
    z.wb.batch_size.store(v, Relaxed);
    Ok(())
}

/// A yes/no writeback setting's value.
fn show_bool(setting: &Atomic<bool>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", u8::from(setting.load(Relaxed))).map_err(|_| EINVAL)
}

/// Sets a yes/no writeback setting: any `kstrtobool` spelling, only before
/// the device is initialised (`EBUSY` after), as upstream's
/// `compressed_writeback`.
fn store_bool_before_init(z: Z<'_>, setting: &Atomic<bool>, input: &[u8]) -> Result {
    let on = kstrtobool_bytes(input)?;
    let _config = z.config.lock();
    if z.store().is_some() {
        return Err(EBUSY);
    }
    setting.store(on, Relaxed);
    Ok(())
}

fn compressed_writeback_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    show_bool(&z.wb.compressed, out)
}

/// `compressed_writeback`, as upstream.
fn compressed_writeback_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    store_bool_before_init(z, &z.wb.compressed, input)
}

fn packed_writeback_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    show_bool(&z.wb.packed, out)
}

/// `packed_writeback` (rzram only): as `compressed_writeback`, and the
/// compressed objects share backing blocks, so a page written back costs
/// the flash its compressed size. Set as `compressed_writeback`.
fn packed_writeback_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    store_bool_before_init(z, &z.wb.packed, input)
}

fn writeback_bio_pages_show(_: &DiskRef, z: Z<'_>, out: &mut SysfsBuf<'_>) -> Result {
    writeln!(out, "{}", z.wb.bio_pages.load(Relaxed)).map_err(|_| EINVAL)
}

fn writeback_bio_pages_store(_: &DiskRef, z: Z<'_>, input: &[u8]) -> Result {
    let v: u32 = parse_decimal(input)?;
    if v == 0 || v > MAX_BIO_PAGES as u32 {
        return Err(EINVAL);
    }
    z.wb.bio_pages.store(v as u32, Relaxed);
    Ok(())
}

/// The attributes of every rzram disk (`/sys/block/rzram<N>/`): `ro NAME`
/// is shown by `NAME_show`, `wo NAME` stored by `NAME_store`, `rw NAME`
/// both.
pub(crate) const ATTRIBUTES: &[Attribute<Arc<Zram>>] = attributes![
    rw disksize;
    ro initstate;
    wo reset;
    rw comp_algorithm;
    wo mem_limit;
    wo mem_used_max;
    ro mm_stat;
    ro io_stat;
    ro debug_stat;
    wo idle;
    wo compact;
    rw recomp_algorithm;
    wo recompress;
    rw backing_dev;
    ro bd_stat;
    wo writeback;
    rw writeback_limit;
    rw writeback_limit_enable;
    rw writeback_batch_size;
    rw compressed_writeback;
    rw packed_writeback;
    rw writeback_bio_pages;
];

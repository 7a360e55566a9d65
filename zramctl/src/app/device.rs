//! The commands on one device's writeback and recompression: `writeback`,
//! `idle`, `limit`, `batch`, `recompress`.

use std::io::Write;

use anyhow::{Result, bail};

use crate::{
    cli::{BatchArgs, IdleArgs, LimitArgs, RecompressArgs, WritebackArgs},
    ops,
    platform::page_size,
    size::ByteSize,
    sysfs::{IdleMode, Recompress, RecompressType, Sysfs, WritebackMode},
};

pub(super) fn writeback(sys: &Sysfs, a: &WritebackArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    let mut modes = Vec::new();
    for (on, mode) in [
        (a.idle, WritebackMode::Idle),
        (a.huge, WritebackMode::Huge),
        (a.huge_idle, WritebackMode::HugeIdle),
        (a.incompressible, WritebackMode::Incompressible),
    ] {
        if on {
            modes.push(mode);
        }
    }
    if let Some(ranges) = &a.pages {
        modes.extend(ops::writeback::page_modes(&dev, &ranges.0)?);
    }
    let o = ops::writeback::run(&dev, &modes)?;
    writeln!(
        out,
        "{}: wrote back {} pages ({}) in {:.3}s",
        dev.name(),
        o.pages,
        ByteSize(o.bytes),
        o.elapsed.as_secs_f64()
    )?;
    Ok(())
}

pub(super) fn idle(sys: &Sysfs, a: &IdleArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    let mode = match a.age {
        Some(secs) => IdleMode::Age(secs),
        None => IdleMode::All,
    };
    dev.mark_idle(mode).map_err(|e| match (mode, e.errno()) {
        (IdleMode::Age(_), Some(libc::EINVAL)) => anyhow::Error::new(e).context(
            "idle by age needs a kernel with CONFIG_ZRAM_TRACK_ENTRY_ACTIME (and an initialised device)",
        ),
        _ => e.into(),
    })?;
    match mode {
        IdleMode::All => writeln!(out, "{}: marked all pages idle", dev.name())?,
        IdleMode::Age(s) => writeln!(
            out,
            "{}: marked pages not accessed for {s}s or more as idle",
            dev.name()
        )?,
    }
    Ok(())
}

pub(super) fn limit(sys: &Sysfs, a: &LimitArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    if a.off {
        dev.set_writeback_limit_enable(false)?;
        writeln!(out, "{}: writeback limit off", dev.name())?;
        return Ok(());
    }
    let pages = match (a.pages, a.bytes) {
        (Some(p), _) => p,
        (None, Some(b)) => b.0 / page_size(),
        (None, None) => bail!("give --pages, --bytes or --off"),
    };
    ops::writeback::set_limit(&dev, pages)?;
    writeln!(
        out,
        "{}: writeback limit on: {pages} pages ({})",
        dev.name(),
        ByteSize(pages * page_size())
    )?;
    Ok(())
}

/// `zramctl batch`.
pub(super) fn batch(sys: &Sysfs, a: &BatchArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    dev.set_writeback_batch_size(a.size)?;
    writeln!(out, "{}: writeback_batch_size = {}", dev.name(), a.size)?;
    Ok(())
}

pub(super) fn recompress(sys: &Sysfs, a: &RecompressArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    let kind = match (a.idle, a.huge) {
        (true, true) => Some(RecompressType::HugeIdle),
        (true, false) => Some(RecompressType::Idle),
        (false, true) => Some(RecompressType::Huge),
        (false, false) => None,
    };
    let req = Recompress {
        kind,
        threshold: a.threshold,
        algo: a.algo.clone(),
        // priority= is what upstream recommends; default to 1 unless named.
        priority: a.priority.or(if a.algo.is_none() { Some(1) } else { None }),
        max_pages: a.max_pages,
    };
    let o = ops::recompress::run(&dev, &req)?;
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &o)?;
        writeln!(out)?;
        return Ok(());
    }
    let pct = if o.compr_before > 0 {
        100.0 * o.saved_bytes as f64 / o.compr_before as f64
    } else {
        0.0
    };
    writeln!(
        out,
        "{}: recompressed ({}) in {:.3}s: compressed data {} -> {}, saved {} ({pct:.1}%){}",
        o.device,
        o.request,
        o.elapsed_secs,
        ByteSize(o.compr_before),
        ByteSize(o.compr_after),
        ByteSize(o.saved_bytes),
        o.recompressed_slots
            .map(|n| format!(", {n} slots recompressed"))
            .unwrap_or_default()
    )?;
    Ok(())
}

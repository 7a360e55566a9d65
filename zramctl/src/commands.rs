//! The CLI commands, over [`crate::sysfs`]. Output goes to a writer so tests
//! can run every command in-process against a simulated kernel.

use std::{io::Write, time::Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::{
    cli::{
        Cli, Command, IdleArgs, LimitArgs, RecompressArgs, ResetArgs, SetupArgs, StatusArgs,
        WritebackArgs,
    },
    provision,
    size::ByteSize,
    sysfs::{
        BackingDev, BdStat, Device, IdleMode, IoStat, MmStat, Recompress, RecompressType, Sysfs,
        WritebackLimit, WritebackMode,
    },
};

/// Bytes per zram slot: the kernel's page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

/// Runs one parsed command line.
pub fn run(cli: Cli, sys: &Sysfs, out: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::Status(a) => status(sys, &a, out),
        Command::Writeback(a) => writeback(sys, &a, out),
        Command::Idle(a) => idle(sys, &a, out),
        Command::Limit(a) => limit(sys, &a, out),
        Command::Batch(a) => {
            let dev = sys.device(&a.device)?;
            dev.set_writeback_batch_size(a.size)?;
            writeln!(out, "{}: writeback_batch_size = {}", dev.name(), a.size)?;
            Ok(())
        }
        Command::Setup(a) => setup(sys, &a, out),
        Command::Reset(a) => reset(sys, &a, out),
        Command::Recompress(a) => recompress(sys, &a, out),
        Command::Top(a) => crate::top::run(sys, &a, out),
        Command::Daemon(a) => crate::daemon::run(sys, &a),
        Command::Simulate(a) => crate::simulate::run(&a, out),
    }
}

/// Everything `status` shows about one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub name: String,
    pub initialized: bool,
    pub disksize: u64,
    pub algorithm: String,
    pub algorithms_available: Vec<String>,
    pub mm_stat: MmStat,
    pub io_stat: IoStat,
    /// orig_data_size / compr_data_size, absent when empty.
    pub ratio: Option<f64>,
    pub backing_dev: BackingDev,
    /// Absent without CONFIG_ZRAM_WRITEBACK.
    pub bd_stat: Option<BdStat>,
    pub writeback_limit: WritebackLimit,
    pub writeback_batch_size: Option<u64>,
    pub page_size: u64,
}

impl DeviceStatus {
    pub fn read(dev: &Device) -> crate::sysfs::Result<Self> {
        let mm = dev.mm_stat()?;
        let algos = dev.comp_algorithm()?;
        Ok(DeviceStatus {
            name: dev.name().to_owned(),
            initialized: dev.initstate()?,
            disksize: dev.disksize()?,
            algorithm: algos.current,
            algorithms_available: algos.available,
            ratio: mm.ratio(),
            mm_stat: mm,
            io_stat: dev.io_stat()?,
            backing_dev: dev.backing_dev()?,
            bd_stat: dev.bd_stat()?,
            writeback_limit: dev.writeback_limit()?,
            writeback_batch_size: dev.writeback_batch_size()?,
            page_size: page_size(),
        })
    }
}

const STATUS_COLUMNS: [&str; 16] = [
    "NAME",
    "ALGORITHM",
    "DISKSIZE",
    "DATA",
    "COMPR",
    "TOTAL",
    "RATIO",
    "SAME",
    "HUGE",
    "BACKING",
    "BD-USED",
    "BD-READS",
    "BD-WRITES",
    "WB-LIMIT",
    "BATCH",
    "FAILED-IO",
];

fn status_row(s: &DeviceStatus, raw_bytes: bool) -> Vec<String> {
    let size = |b: u64| {
        if raw_bytes {
            b.to_string()
        } else {
            ByteSize(b).to_string()
        }
    };
    let dash = || "-".to_string();
    let pages = |p: u64| size(p * s.page_size);
    let bd = |f: fn(&BdStat) -> u64| s.bd_stat.as_ref().map(|b| pages(f(b))).unwrap_or_else(dash);
    vec![
        s.name.clone(),
        s.algorithm.clone(),
        size(s.disksize),
        size(s.mm_stat.orig_data_size),
        size(s.mm_stat.compr_data_size),
        size(s.mm_stat.mem_used_total),
        s.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(dash),
        s.mm_stat.same_pages.to_string(),
        s.mm_stat
            .huge_pages
            .map(|h| h.to_string())
            .unwrap_or_else(dash),
        match &s.backing_dev {
            BackingDev::Unsupported => "unsupported".into(),
            BackingDev::None => "none".into(),
            BackingDev::Path(p) => p.display().to_string(),
        },
        bd(|b| b.bd_count),
        bd(|b| b.bd_reads),
        bd(|b| b.bd_writes),
        match s.writeback_limit {
            WritebackLimit::Unsupported => dash(),
            WritebackLimit::Off => "off".into(),
            WritebackLimit::On { pages_left } => pages(pages_left),
        },
        s.writeback_batch_size
            .map(|b| b.to_string())
            .unwrap_or_else(dash),
        format!("{}/{}", s.io_stat.failed_reads, s.io_stat.failed_writes),
    ]
}

/// Renders rows as a left-aligned table with a header, like util-linux.
fn render_table(header: &[&str], rows: &[Vec<String>], out: &mut dyn Write) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$} "));
            }
        }
        s
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn status(sys: &Sysfs, a: &StatusArgs, out: &mut dyn Write) -> Result<()> {
    let devices = match &a.device {
        Some(spec) => vec![sys.device(spec)?],
        None => sys.devices()?,
    };
    let statuses = devices
        .iter()
        .map(DeviceStatus::read)
        .collect::<Result<Vec<_>, _>>()?;
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &statuses)?;
        writeln!(out)?;
        return Ok(());
    }
    if statuses.is_empty() {
        writeln!(
            out,
            "no zram devices under {} (modprobe zram?)",
            sys.root().join("block").display()
        )?;
        return Ok(());
    }
    let rows: Vec<_> = statuses.iter().map(|s| status_row(s, a.bytes)).collect();
    render_table(&STATUS_COLUMNS, &rows, out)?;
    Ok(())
}

/// What one `writeback` call achieved, from `bd_stat` before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritebackOutcome {
    pub pages: u64,
    pub bytes: u64,
    pub elapsed: std::time::Duration,
}

/// Runs writeback on `dev` and measures it.
pub fn run_writeback(dev: &Device, modes: &[WritebackMode]) -> Result<WritebackOutcome> {
    let before = dev.bd_stat()?;
    let start = Instant::now();
    dev.writeback(modes)?;
    let elapsed = start.elapsed();
    let after = dev.bd_stat()?;
    let pages = match (before, after) {
        (Some(b), Some(a)) => a.bd_writes.saturating_sub(b.bd_writes),
        _ => bail!("{}: bd_stat disappeared during writeback", dev.name()),
    };
    Ok(WritebackOutcome {
        pages,
        bytes: pages * page_size(),
        elapsed,
    })
}

fn writeback(sys: &Sysfs, a: &WritebackArgs, out: &mut dyn Write) -> Result<()> {
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
        if !dev.initstate()? {
            bail!(
                "{}: device is not initialised: set it up first with `zramctl setup`",
                dev.name()
            );
        }
        let disk_pages = dev.disksize()? / page_size();
        for &(first, last) in &ranges.0 {
            if last >= disk_pages {
                bail!(
                    "{}: page {last} is out of range: the device has {disk_pages} pages (0-{})",
                    dev.name(),
                    disk_pages.saturating_sub(1)
                );
            }
            modes.push(WritebackMode::Pages { first, last });
        }
    }
    let o = run_writeback(&dev, &modes)?;
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

fn idle(sys: &Sysfs, a: &IdleArgs, out: &mut dyn Write) -> Result<()> {
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

fn limit(sys: &Sysfs, a: &LimitArgs, out: &mut dyn Write) -> Result<()> {
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
    // Limit first, then enable: never a moment with the limit on at a stale value.
    dev.set_writeback_limit(pages)?;
    dev.set_writeback_limit_enable(true)?;
    writeln!(
        out,
        "{}: writeback limit on: {pages} pages ({})",
        dev.name(),
        ByteSize(pages * page_size())
    )?;
    Ok(())
}

pub fn setup(sys: &Sysfs, a: &SetupArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    if dev.initstate()? {
        bail!(
            "{}: device already initialised (disksize {}): reset it first with `zramctl reset {}`",
            dev.name(),
            ByteSize(dev.disksize()?),
            dev.name()
        );
    }
    if a.size.0 == 0 {
        bail!("{}: --size must be larger than 0", dev.name());
    }
    if let Some(algo) = &a.algorithm {
        let algos = dev.comp_algorithm()?;
        if !algos.available.iter().any(|x| x == algo) {
            bail!(
                "{}: unknown compression algorithm {algo:?}: this kernel offers {}",
                dev.name(),
                algos.available.join(", ")
            );
        }
    }
    for (i, algo) in a.recomp_algorithms.iter().enumerate() {
        if i >= 3 {
            bail!(
                "{}: at most 3 --recomp-algorithm (priorities 1-3)",
                dev.name()
            );
        }
        if !dev.has_recompression() {
            return Err(anyhow::Error::new(crate::sysfs::Error::Unsupported {
                device: dev.name().to_owned(),
                attr: "recomp_algorithm",
                hint: recomp_hint(&dev),
            }));
        }
        let algos = dev.comp_algorithm()?;
        if !algos.available.iter().any(|x| x == algo) {
            bail!(
                "{}: unknown recompression algorithm {algo:?}: this kernel offers {}",
                dev.name(),
                algos.available.join(", ")
            );
        }
    }
    if a.backing_file.is_some() && !dev.has("backing_dev") {
        bail!(
            "{}: cannot set a backing file: this kernel's zram was built without CONFIG_ZRAM_WRITEBACK",
            dev.name()
        );
    }
    if let Some(bd) = &a.backing_dev {
        if !dev.has("backing_dev") {
            bail!(
                "{}: cannot set a backing device: this kernel's zram was built without CONFIG_ZRAM_WRITEBACK",
                dev.name()
            );
        }
        if !bd.exists() {
            bail!(
                "{}: backing device {} does not exist",
                dev.name(),
                bd.display()
            );
        }
    }
    // The backing file's stack first; everything below undoes it on failure.
    let provisioned = match &a.backing_file {
        Some(file) => Some(provision::provision(
            sys,
            &dev,
            &provision::BackingSpec {
                file: file.clone(),
                size: a.backing_size,
                encrypt: a.encrypt,
            },
            a.size.0,
            out,
        )?),
        None => None,
    };
    let backing = a
        .backing_dev
        .clone()
        .or_else(|| provisioned.as_ref().map(|p| p.top.clone()));
    // Order matters: backing device and algorithms only before disksize.
    let result = (|| -> Result<()> {
        if let Some(bd) = &backing {
            dev.set_backing_dev(bd)?;
            provision::crash_point("backing");
        }
        if let Some(algo) = &a.algorithm {
            dev.set_comp_algorithm(algo)?;
        }
        for (i, algo) in a.recomp_algorithms.iter().enumerate() {
            dev.set_recomp_algorithm(algo, i as u32 + 1)?;
        }
        dev.set_disksize(a.size.0)?;
        if let Some(limit) = a.mem_limit {
            dev.set_mem_limit(limit.0)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Leave the device as we found it, not half-configured.
        if provisioned.is_some() {
            let mut sink = std::io::sink();
            return match provision::teardown(sys, &dev, true, false, &mut sink) {
                Ok(_) => Err(e.context(format!(
                    "{}: setup failed; device reset and backing file detached",
                    dev.name()
                ))),
                Err(r) => Err(e.context(format!(
                    "{}: setup failed and undoing it failed too: {r:#}",
                    dev.name()
                ))),
            };
        }
        return match dev.reset() {
            Ok(()) => Err(e.context(format!(
                "{}: setup failed; device reset to unconfigured",
                dev.name()
            ))),
            Err(r) => Err(e.context(format!(
                "{}: setup failed and the reset to undo it failed too: {r}",
                dev.name()
            ))),
        };
    }
    writeln!(
        out,
        "{}: {} {}{}{}",
        dev.name(),
        ByteSize(a.size.0),
        dev.comp_algorithm()
            .map(|c| c.current)
            .context("reading comp_algorithm after setup")?,
        match &provisioned {
            Some(p) => format!(
                ", backing {} ({} {}{}, {}{} on {}{})",
                p.top.display(),
                if p.reused { "reused" } else { "new" },
                ByteSize(p.file_size),
                if p.encrypted {
                    format!(" file, {} usable", ByteSize(p.capacity))
                } else {
                    " file".into()
                },
                if p.encrypted {
                    "dm-crypt aes-gcm + dm-integrity "
                } else {
                    ""
                },
                p.file.display(),
                p.loop_dev.display(),
                if p.direct_io {
                    " direct I/O"
                } else {
                    ", buffered I/O: the filesystem refused direct I/O"
                },
            ),
            None => a
                .backing_dev
                .as_ref()
                .map(|b| format!(", backing {}", b.display()))
                .unwrap_or_default(),
        },
        a.mem_limit
            .map(|m| format!(", mem_limit {m}"))
            .unwrap_or_default(),
    )?;
    Ok(())
}

fn recomp_hint(dev: &Device) -> &'static str {
    if dev.name().starts_with("rzram") {
        "this rzram module has no recompression (recomp_algorithm/recompress attributes)"
    } else {
        "this kernel's zram was built without CONFIG_ZRAM_MULTI_COMP"
    }
}

fn reset(sys: &Sysfs, a: &ResetArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    let o = provision::teardown(sys, &dev, true, a.delete_backing_file, out)?;
    if a.delete_backing_file && o.record.is_none() {
        writeln!(
            out,
            "{}: no backing file of zramctl's to delete",
            dev.name()
        )?;
    }
    writeln!(out, "{}: reset", dev.name())?;
    Ok(())
}

/// What one `recompress` achieved, from `mm_stat` before and after.
#[derive(Debug, Clone, Serialize)]
pub struct RecompressOutcome {
    pub device: String,
    pub request: String,
    pub compr_before: u64,
    pub compr_after: u64,
    /// compr_data_size drop (0 if it grew meanwhile).
    pub saved_bytes: u64,
    pub mem_used_before: u64,
    pub mem_used_after: u64,
    pub huge_before: Option<u64>,
    pub huge_after: Option<u64>,
    /// Slots now recompressed, from debugfs block_state (upstream only).
    pub recompressed_slots: Option<u64>,
    pub elapsed_secs: f64,
}

/// Runs one recompression on `dev` and measures it.
pub fn run_recompress(dev: &Device, req: &Recompress) -> Result<RecompressOutcome> {
    if !dev.has_recompression() {
        return Err(crate::sysfs::Error::Unsupported {
            device: dev.name().to_owned(),
            attr: "recompress",
            hint: recomp_hint(dev),
        }
        .into());
    }
    if !dev.initstate()? {
        bail!(
            "{}: device is not initialised: set it up first with `zramctl setup`",
            dev.name()
        );
    }
    let configured = dev.recomp_algorithms()?.unwrap_or_default();
    if configured.is_empty() {
        bail!(
            "{}: no recompression algorithm is configured: it can only be set before disksize (`zramctl reset {0}`, then `zramctl setup {0} --recomp-algorithm zstd ...`)",
            dev.name()
        );
    }
    if let Some(algo) = &req.algo
        && !configured.iter().any(|r| &r.algorithms.current == algo)
    {
        bail!(
            "{}: {algo} is not a configured recompression algorithm (configured: {})",
            dev.name(),
            configured
                .iter()
                .map(|r| format!("{}={}", r.priority, r.algorithms.current))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(p) = req.priority
        && !configured.iter().any(|r| r.priority == p)
    {
        bail!("{}: no recompression algorithm at priority {p}", dev.name());
    }
    let before = dev.mm_stat()?;
    let start = Instant::now();
    dev.recompress(req)?;
    let elapsed = start.elapsed();
    let after = dev.mm_stat()?;
    Ok(RecompressOutcome {
        device: dev.name().to_owned(),
        request: req.sysfs_value(),
        compr_before: before.compr_data_size,
        compr_after: after.compr_data_size,
        saved_bytes: before.compr_data_size.saturating_sub(after.compr_data_size),
        mem_used_before: before.mem_used_total,
        mem_used_after: after.mem_used_total,
        huge_before: before.huge_pages,
        huge_after: after.huge_pages,
        recompressed_slots: dev.recompressed_slots(),
        elapsed_secs: elapsed.as_secs_f64(),
    })
}

fn recompress(sys: &Sysfs, a: &RecompressArgs, out: &mut dyn Write) -> Result<()> {
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
    let o = run_recompress(&dev, &req)?;
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

/// The daemon's start: sets up every unused device whose configuration has
/// `disksize` (and maybe `[device.backing]`), as `zramctl setup` would.
/// A device already initialised is left as it is.
pub fn setup_configured(
    sys: &Sysfs,
    devices: &[crate::daemon::config::DeviceConfig],
) -> Result<()> {
    for d in devices {
        let Some(s) = &d.setup else { continue };
        let dev = sys.device(&d.name)?;
        if dev.initstate()? {
            tracing::info!(device = %d.name, "already set up: configuration's disksize/backing left as found");
            continue;
        }
        let args = SetupArgs {
            device: d.name.clone(),
            size: ByteSize(s.disksize),
            algorithm: s.algorithm.clone(),
            backing_dev: None,
            mem_limit: None,
            backing_file: s.backing.as_ref().map(|b| b.file.clone()),
            backing_size: s
                .backing
                .as_ref()
                .map_or(provision::BackingSize::Auto, |b| b.size),
            encrypt: s.backing.as_ref().is_some_and(|b| b.encrypt),
            recomp_algorithms: s.recomp_algorithms.clone(),
        };
        let mut msg = Vec::new();
        setup(sys, &args, &mut msg)
            .with_context(|| format!("{}: setting up from the configuration", d.name))?;
        tracing::info!(device = %d.name, "{}", String::from_utf8_lossy(&msg).trim());
    }
    Ok(())
}

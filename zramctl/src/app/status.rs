//! `zramctl status`: a table like util-linux's, or JSON.

use std::io::Write;

use anyhow::Result;

use crate::{
    cli::StatusArgs,
    ops::status::DeviceStatus,
    size::ByteSize,
    sysfs::{BackingDev, BdStat, Sysfs, WritebackLimit},
};

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

pub(super) fn status(sys: &Sysfs, a: &StatusArgs, out: &mut dyn Write) -> Result<()> {
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

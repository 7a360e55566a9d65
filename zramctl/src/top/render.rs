//! [`render_text`]: a report as the terminal shows it (pure).

use std::io::Write;

use super::report::{TopDevice, TopReport};
use crate::probes::{
    Flavour, Role,
    hist::{LatencyHistogram, age_bucket_bounds, human_ns, human_secs, lat_bucket_bounds},
};

const BAR: usize = 40;

pub(super) fn bar(n: u64, max: u64) -> String {
    let stars = if max == 0 {
        0
    } else {
        ((n as u128 * BAR as u128).div_ceil(max as u128)) as usize
    };
    format!("|{:<BAR$}|", "*".repeat(stars.min(BAR)))
}

/// Rows from the first to the last non-empty bucket: (low, high, count).
pub(super) fn bucket_rows(
    counts: &[u64],
    bounds: impl Fn(usize) -> (u64, Option<u64>),
) -> Vec<(u64, Option<u64>, u64)> {
    let first = counts.iter().position(|&n| n > 0);
    let last = counts.iter().rposition(|&n| n > 0);
    match (first, last) {
        (Some(a), Some(b)) => (a..=b)
            .map(|i| {
                let (lo, hi) = bounds(i);
                (lo, hi, counts[i])
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn rate(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1}K", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

/// Renders a report as text (what one refresh of the live view shows).
pub fn render_text(r: &TopReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "zramctl top: {:.1}s interval, {} probes",
        r.interval_secs,
        match r.probes {
            Flavour::TpBtf => "tp_btf",
            Flavour::RawTp => "raw_tp",
        }
    )?;
    let zram: Vec<&TopDevice> = r.devices.iter().filter(|d| d.access.is_some()).collect();
    if !zram.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10}",
            "DEVICE",
            "READS/s",
            "WRITES/s",
            "DISCARD/s",
            "PG-READ/s",
            "PG-WRITE/s",
            "TOUCHED",
            "SLOTS"
        )?;
        for d in &zram {
            let (Some(rt), Some(ages)) = (&d.rates, &d.slot_ages) else {
                continue;
            };
            writeln!(
                out,
                "{:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10}",
                d.name,
                rate(rt.bios_per_sec.read),
                rate(rt.bios_per_sec.write),
                rate(rt.bios_per_sec.discard),
                rate(rt.pages_per_sec.read),
                rate(rt.pages_per_sec.write),
                ages.touched,
                ages.slots
            )?;
        }
    }
    let rz: Vec<&TopDevice> = r.devices.iter().filter(|d| d.rzram.is_some()).collect();
    if !rz.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
            "DEVICE",
            "WB-PG/s",
            "WB-TOTAL",
            "WB-ERRORS",
            "WB-P50",
            "WB-P99",
            "REFAULT/s",
            "REFAULTS",
            "AGE-P50"
        )?;
        for d in &rz {
            match d.rzram.as_ref().and_then(Option::as_ref) {
                Some(x) => writeln!(
                    out,
                    "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
                    d.name,
                    rate(x.wb_pages_per_sec),
                    x.total.wb_written(),
                    x.total.wb_errors,
                    x.wb_latency.p50_ns.map(human_ns).unwrap_or("-".into()),
                    x.wb_latency.p99_ns.map(human_ns).unwrap_or("-".into()),
                    rate(x.refaults_per_sec),
                    x.total.refaults,
                    x.refault_age
                        .p50_secs
                        .map(|s| human_ns(s * 1e9))
                        .unwrap_or("-".into()),
                )?,
                None => writeln!(
                    out,
                    "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
                    d.name, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"
                )?,
            }
        }
    }
    for d in &r.devices {
        if let Some(h) = &d.age_hist {
            writeln!(out)?;
            writeln!(
                out,
                "{}: slot age since last access ({} of {} slots touched since attach)",
                d.name,
                h.touched(),
                h.slots
            )?;
            let rows = bucket_rows(&h.buckets, age_bucket_bounds);
            let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
            if !rows.is_empty() {
                writeln!(out, "{:>20} : {:<8} distribution", "age", "slots")?;
            }
            for (lo, hi, n) in rows {
                let range = match hi {
                    Some(hi) => format!("{} -> {}", human_secs(lo), human_secs(hi)),
                    None => format!("{} ->", human_secs(lo)),
                };
                writeln!(out, "{range:>20} : {n:<8} {}", bar(n, max))?;
            }
        }
        for (name, h) in &d.latency_hists {
            let role = match &d.role {
                Role::Zram => String::new(),
                Role::Backing { of } => format!(" (backing {of})"),
                Role::Extra => String::new(),
            };
            render_latency(out, &format!("{}{role} {name} latency", d.name), h)?;
        }
        if let Some(Some(x)) = &d.rzram {
            render_latency(
                out,
                &format!("{} writeback latency", d.name),
                &x.stats.wb_latency,
            )?;
            render_latency(
                out,
                &format!("{} backing read latency", d.name),
                &x.stats.bd_read_latency,
            )?;
            let h = &x.stats.refault_age_us;
            if h.count > 0 {
                let a = &x.refault_age;
                let t = |s: Option<f64>| s.map(|s| human_ns(s * 1e9)).unwrap_or_default();
                writeln!(out)?;
                writeln!(
                    out,
                    "{}: time from writeback to refault: {} refaults, mean {}, p50 {}, p90 {}, p99 {}",
                    d.name,
                    h.count,
                    t(a.mean_secs),
                    t(a.p50_secs),
                    t(a.p90_secs),
                    t(a.p99_secs)
                )?;
                let rows = bucket_rows(&h.buckets, lat_bucket_bounds);
                let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
                writeln!(out, "{:>24} : {:<8} distribution", "age", "refaults")?;
                for (lo, hi, n) in rows {
                    let us = |v: u64| human_ns(v as f64 * 1e3);
                    let range = match hi {
                        Some(hi) => format!("{} -> {}", us(lo), us(hi)),
                        None => format!("{} ->", us(lo)),
                    };
                    writeln!(out, "{range:>24} : {n:<8} {}", bar(n, max))?;
                }
            }
        }
    }
    if r.devices.iter().any(|d| d.rzram.is_some()) {
        writeln!(out, "\nrzram tracepoint programs: {}", r.rzram_probes)?;
    }
    if !r.programs.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<16} {:<20} {:>10} {:>10}",
            "PROGRAM", "TRACEPOINT", "RUNS", "NS/EVENT"
        )?;
        for p in &r.programs {
            writeln!(
                out,
                "{:<16} {:<20} {:>10} {:>10}",
                p.cost.program,
                p.cost.tracepoint,
                p.cost.run_count,
                p.ns_per_event
                    .map(|n| format!("{n:.0}"))
                    .unwrap_or_else(|| "-".into())
            )?;
        }
    }
    if r.health.lat_start_dropped > 0 || r.health.lat_unmatched > 0 {
        writeln!(
            out,
            "\nlatency starts dropped (in-flight map full): {}, completions without a start: {}",
            r.health.lat_start_dropped, r.health.lat_unmatched
        )?;
    }
    Ok(())
}

/// One latency histogram in bcc biolatency's shape; nothing if empty.
fn render_latency(out: &mut dyn Write, title: &str, h: &LatencyHistogram) -> std::io::Result<()> {
    if h.count == 0 {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{title}: {} completions, mean {}, p50 {}, p90 {}, p99 {}",
        h.count,
        h.mean_ns().map(human_ns).unwrap_or_default(),
        h.percentile(0.5).map(human_ns).unwrap_or_default(),
        h.percentile(0.9).map(human_ns).unwrap_or_default(),
        h.percentile(0.99).map(human_ns).unwrap_or_default(),
    )?;
    let rows = bucket_rows(&h.buckets, lat_bucket_bounds);
    let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
    writeln!(out, "{:>24} : {:<8} distribution", "nsecs", "count")?;
    for (lo, hi, n) in rows {
        let range = match hi {
            Some(hi) => format!("{lo} -> {}", hi - 1),
            None => format!("{lo} ->"),
        };
        writeln!(out, "{range:>24} : {n:<8} {}", bar(n, max))?;
    }
    Ok(())
}

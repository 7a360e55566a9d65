//! What a daemon step writes to a device: the batch size, the writeback
//! limit around a round, the round itself (page ranges, idle marking),
//! recompression, and the limit put back at shutdown. All device writes of
//! the daemon are here.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use tracing::{debug, info, warn};

use super::state::{DevState, Stats};
use crate::{
    ops,
    policy::{Outcome, Plan, RoundError, cold},
    sysfs::{self, IdleMode, Recompress, RecompressType, WritebackLimit, WritebackMode},
};

pub(super) fn restore_limit(d: &mut DevState) {
    let Some(s) = d.saved_limit.take() else {
        return;
    };
    // Limit first, then the switch: never enabled with a stale limit.
    let r = ops::writeback::restore_limit(&d.dev, s.enable, s.pages);
    match r {
        Ok(()) => {
            if let Some(p) = &d.limit_record {
                let _ = std::fs::remove_file(p);
            }
            info!(device = %d.cfg.name, enable = s.enable, pages = s.pages, "writeback limit restored")
        }
        Err(e) => warn!(device = %d.cfg.name, "restoring the writeback limit failed: {e}"),
    }
}

fn classify(e: &sysfs::Error) -> RoundError {
    match e.errno() {
        Some(libc::EIO) => RoundError::Io,
        // The backing device is full: its own outcome, no backoff.
        Some(libc::ENOSPC) => RoundError::NoSpace,
        _ => RoundError::Other,
    }
}

/// Recompresses pages idle for `recompress_idle_age_secs` with the
/// configured secondary algorithm (zstd by default), at most once per
/// `recompress_interval_secs`, before the writeback policy looks at the
/// device: what shrinks in RAM need not go to flash. Savings are the
/// `compr_data_size` drop. Needs per-slot access times (`idle <age>`);
/// without them it does nothing (marking everything idle would recompress
/// hot pages too).
pub(super) fn recompress_step(d: &mut DevState, now_ns: u64) {
    let Some(rc) = d.cfg.recompress.clone() else {
        return;
    };
    if d.recomp.disabled || !d.actime {
        return;
    }
    if d.recomp
        .last_ns
        .is_some_and(|t| now_ns.saturating_sub(t) < (rc.interval_secs * 1e9) as u64)
    {
        return;
    }
    d.recomp.last_ns = Some(now_ns);
    let dev = d.dev.clone();
    let name = d.cfg.name.clone();
    if !dev.has_recompression() {
        warn!(device = %name, "recompression configured but the device cannot recompress (no recomp_algorithm/recompress attributes): not trying again");
        d.recomp.disabled = true;
        return;
    }
    let prio = match dev.recomp_algorithms() {
        Ok(v) => v
            .unwrap_or_default()
            .iter()
            .find(|r| r.algorithms.current == rc.algorithm)
            .map(|r| r.priority),
        Err(e) => {
            warn!(device = %name, "reading recomp_algorithm failed: {e}");
            d.recomp.errors += 1;
            return;
        }
    };
    let Some(priority) = prio else {
        warn!(device = %name, "{} is not a recompression algorithm of the device: it is set before disksize (recomp_algorithm in the config, or zramctl setup --recomp-algorithm {})", rc.algorithm, rc.algorithm);
        d.recomp.errors += 1;
        return;
    };
    match dev.mark_idle(IdleMode::Age(rc.idle_age_secs)) {
        Ok(()) => {}
        Err(e) if e.errno() == Some(libc::EINVAL) => {
            info!(device = %name, "kernel has no per-slot access times: no recompression");
            d.actime = false;
            return;
        }
        Err(e) => {
            warn!(device = %name, "marking pages idle for recompression failed: {e}");
            d.recomp.errors += 1;
            return;
        }
    }
    let req = Recompress {
        kind: Some(RecompressType::Idle),
        threshold: (rc.threshold > 0).then_some(rc.threshold),
        algo: None,
        priority: Some(priority),
        max_pages: rc.max_pages,
    };
    match ops::recompress::run(&dev, &req) {
        Ok(o) => {
            d.recomp.runs += 1;
            d.recomp.saved_bytes += o.saved_bytes;
            d.recomp.slots = o.recompressed_slots;
            info!(device = %name, request = %o.request, saved_bytes = o.saved_bytes, compr_after = o.compr_after, "recompressed idle pages");
        }
        Err(e) => {
            d.recomp.errors += 1;
            warn!(device = %name, "recompression failed: {e:#}");
        }
    }
}

/// Carries out a plan under a writeback limit of `limit` pages.
pub(super) fn run_plan(
    d: &mut DevState,
    plan: &Plan,
    huge_idle_secs: Option<u64>,
    limit: u64,
    before: &Stats,
    cancel: &AtomicBool,
) -> Outcome {
    let dev = d.dev.clone();
    let name = d.cfg.name.clone();
    let fail = |e: sysfs::Error| {
        warn!(device = %name, "writeback round failed: {e}");
        Outcome {
            written_pages: 0,
            error: Some(classify(&e)),
        }
    };
    if *plan == Plan::MarkAll {
        return match dev.mark_idle(IdleMode::All) {
            Ok(()) => Outcome {
                written_pages: 0,
                error: None,
            },
            Err(e) => fail(e),
        };
    }
    // The budget, enforced by the kernel: limit first, then the switch.
    if let Err(e) = ops::writeback::set_limit(&dev, limit) {
        return fail(e);
    }
    let mut done = Vec::new();
    // Huge pages first, at their younger age (the policy's
    // `huge_age_factor`; kernel access times only). Ok(false): the limit
    // is spent, the round ends here. What it wrote comes off the limit
    // the idle chunks may use.
    let limit_left = |dev: &sysfs::Device| match dev.writeback_limit() {
        Ok(WritebackLimit::On { pages_left }) => Some(pages_left.min(limit)),
        _ => None,
    };
    let mut huge_written = 0;
    let huge: Result<bool, sysfs::Error> = match huge_idle_secs {
        Some(secs) if d.actime && matches!(plan, Plan::Pages(_) | Plan::IdleAge(_)) => {
            match dev.mark_idle(IdleMode::Age(secs)) {
                Err(e) if e.errno() == Some(libc::EINVAL) => {
                    info!(device = %name, "kernel has no per-slot access times: no huge-page pass");
                    d.actime = false;
                    Ok(true)
                }
                Err(e) => Err(e),
                Ok(()) => {
                    let r = dev.writeback(&[WritebackMode::HugeIdle]);
                    let left = limit_left(&dev);
                    huge_written = left.map_or(0, |l| limit - l);
                    match r {
                        Err(e) if e.errno() == Some(libc::EIO) && left == Some(0) => Ok(false),
                        Err(e) => Err(e),
                        Ok(()) => Ok(true),
                    }
                }
            }
        }
        _ => Ok(true),
    };
    // Idle-mode rounds count what they wrote chunk by chunk.
    let mut idle_written = None;
    let idle_limit = limit - huge_written;
    let result: Result<(), sysfs::Error> = match huge {
        Err(e) => Err(e),
        Ok(false) => Ok(()),
        Ok(true) => match plan {
            Plan::Pages(ranges) => write_back_chunked(&dev, &name, ranges, cancel, &mut done),
            Plan::IdleAge(secs) => match dev.mark_idle(IdleMode::Age(*secs)) {
                Err(e) if e.errno() == Some(libc::EINVAL) => {
                    info!(device = %name, "kernel has no per-slot access times: switching to idle-all marking");
                    d.actime = false;
                    Ok(())
                }
                Err(e) => Err(e),
                Ok(()) => {
                    write_back_idle_chunked(&dev, &name, idle_limit, cancel, &mut idle_written)
                }
            },
            Plan::IdleAll => {
                // Re-mark even when the limit stopped the writeback.
                let r = write_back_idle_chunked(&dev, &name, idle_limit, cancel, &mut idle_written);
                let m = dev.mark_idle(IdleMode::All);
                r.and(m)
            }
            Plan::MarkAll => Ok(()),
        },
    };
    let idle_written = idle_written.map(|n| n + huge_written);
    // What went: the chunks' count, else the limit's drop, else the
    // bd_writes delta.
    let left = dev.writeback_limit();
    let written = match (idle_written, &left) {
        (Some(n), _) => n,
        (None, Ok(WritebackLimit::On { pages_left })) => limit.saturating_sub(*pages_left),
        _ => match (dev.bd_stat(), before.bd) {
            (Ok(Some(a)), Some(b)) => a.bd_writes.saturating_sub(b.bd_writes),
            _ => 0,
        },
    };
    // The kernel stops a writeback with EIO when the limit runs out: for
    // idle-mode rounds that is the budget working, not a failure.
    let result = match result {
        Err(e)
            if e.errno() == Some(libc::EIO)
                && matches!(left, Ok(WritebackLimit::On { pages_left: 0 }))
                && limit > 0 =>
        {
            debug!(device = %name, "writeback stopped at the round's limit of {limit} pages");
            Ok(())
        }
        other => other,
    };
    // Nothing more may go until the next round.
    if let Err(e) = dev.set_writeback_limit(0) {
        warn!(device = %name, "closing the writeback limit failed: {e}");
    }
    d.written_back.mark(&done);
    match result {
        Ok(()) => Outcome {
            written_pages: written,
            error: None,
        },
        Err(e) => {
            let mut o = fail(e);
            o.written_pages = written;
            o
        }
    }
}

/// Pages a writeback chunk starts with, and at most.
const CHUNK_FIRST: u64 = 8;
const CHUNK_MAX: u64 = 4096;

/// The next chunk's size after one of `chunk` pages took `took`: doubled
/// after a fast one (under 0.1 s), halved after a slow one (over 0.4 s).
fn next_chunk(chunk: u64, took: Duration) -> u64 {
    if took < Duration::from_millis(100) {
        (chunk * 2).min(CHUNK_MAX)
    } else if took > Duration::from_millis(400) {
        (chunk / 2).max(1)
    } else {
        chunk
    }
}

/// Writes back `ranges` in chunks (one or a few sysfs writes each) sized so
/// that one takes about 0.1-0.4 s on this backing device: the chunk doubles
/// after a fast one and halves after a slow one. Between chunks it checks
/// `cancel` (shutdown), so a round on a slow device ends within about one
/// chunk. The ranges written go into `done`.
fn write_back_chunked(
    dev: &sysfs::Device,
    name: &str,
    ranges: &[(u64, u64)],
    cancel: &AtomicBool,
    done: &mut Vec<(u64, u64)>,
) -> Result<(), sysfs::Error> {
    let mut queue: std::collections::VecDeque<(u64, u64)> = ranges.iter().copied().collect();
    let mut chunk = CHUNK_FIRST;
    while !queue.is_empty() {
        if cancel.load(Ordering::Relaxed) {
            info!(device = %name, pages_left = cold::pages_in(&queue.iter().copied().collect::<Vec<_>>()), "writeback round stopped early: shutting down");
            break;
        }
        let mut piece = Vec::new();
        let mut n = 0;
        while n < chunk {
            let Some((a, b)) = queue.pop_front() else {
                break;
            };
            let take = (b - a + 1).min(chunk - n);
            piece.push((a, a + take - 1));
            n += take;
            if a + take - 1 < b {
                queue.push_front((a + take, b));
            }
        }
        let t = Instant::now();
        for sub in cold::chunk_for_sysfs(&piece) {
            let modes: Vec<WritebackMode> = sub
                .iter()
                .map(|&(first, last)| WritebackMode::Pages { first, last })
                .collect();
            dev.writeback(&modes)?;
        }
        done.extend(piece);
        chunk = next_chunk(chunk, t.elapsed());
    }
    Ok(())
}

/// Writes back the slots marked idle, at most `limit` pages, in chunks cut
/// by `writeback_limit` (set to the chunk before each `writeback idle`;
/// the kernel stops that write with EIO when the chunk is spent), sized as
/// [`write_back_chunked`]'s, checking `cancel` between them: on stock zram
/// without probes a round on a slow backing device also ends within about
/// one chunk. `written` gets the pages written (the limits' drops). Ends
/// when the kernel finds no more idle slots (a chunk not spent), at `limit`,
/// or on an error other than the chunk's EIO.
fn write_back_idle_chunked(
    dev: &sysfs::Device,
    name: &str,
    limit: u64,
    cancel: &AtomicBool,
    written: &mut Option<u64>,
) -> Result<(), sysfs::Error> {
    let mut total = 0;
    let mut chunk = CHUNK_FIRST;
    let r = loop {
        if total >= limit {
            break Ok(());
        }
        if cancel.load(Ordering::Relaxed) {
            info!(device = %name, pages_left = limit - total, "writeback round stopped early: shutting down");
            break Ok(());
        }
        let n = chunk.min(limit - total);
        if let Err(e) = dev.set_writeback_limit(n) {
            break Err(e);
        }
        let t = Instant::now();
        let r = dev.writeback(&[WritebackMode::Idle]);
        let left = match dev.writeback_limit() {
            Ok(WritebackLimit::On { pages_left }) => pages_left.min(n),
            Ok(_) => n,
            Err(e) => break Err(e),
        };
        total += n - left;
        match r {
            // The chunk is spent: more may be idle.
            Err(e) if e.errno() == Some(libc::EIO) && left == 0 => {}
            // Every idle slot written (or none left).
            Ok(()) => break Ok(()),
            Err(e) => break Err(e),
        }
        chunk = next_chunk(chunk, t.elapsed());
    };
    *written = Some(total);
    r
}

/// Sets the batch size the policy wants, if the kernel has one and it
/// differs from `current`.
pub(super) fn apply_batch_size(d: &DevState, current: Option<u64>, wanted: u64) {
    if let Some(cur) = current
        && cur != wanted
    {
        match d.dev.set_writeback_batch_size(wanted) {
            Ok(()) => {
                debug!(device = %d.cfg.name, from = cur, to = wanted, "writeback batch size")
            }
            Err(e) => warn!(device = %d.cfg.name, "setting the batch size failed: {e}"),
        }
    }
}

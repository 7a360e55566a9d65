//! The per-round measures of one run, from the guest's lines.

use std::{collections::BTreeMap, path::Path};

use super::{
    Mode, ROWS,
    parse::{Latency, Lines, fio_latency},
};
use crate::bench::stats::{self, Spread};

/// Per-round values: `(row or device id, measure)` -> round -> value.
/// Measures: `pages` (written back), `mean_compr` (bytes), `bytes_per_page`
/// (backing bytes written per page), `bytes_ratio` (bytes_per_page /
/// mean_compr), `pps`, `p50_us`, `p99_us`, `blocks_per_read`,
/// `count_after` (blocks in use after the churn), `dead` (exact live
/// bytes), `dead_est` (estimated), and per device `call_ms`.
#[derive(Default)]
pub struct Packed {
    values: BTreeMap<(String, &'static str), BTreeMap<u32, f64>>,
}

impl Packed {
    fn put(&mut self, id: &str, measure: &'static str, round: u32, v: f64) {
        if v.is_finite() {
            self.values
                .entry((id.to_string(), measure))
                .or_default()
                .insert(round, v);
        }
    }

    pub fn get(&self, id: &str, measure: &'static str) -> Option<&BTreeMap<u32, f64>> {
        self.values
            .get(&(id.to_string(), measure))
            .filter(|v| !v.is_empty())
    }

    pub fn median(&self, id: &str, measure: &'static str) -> Option<f64> {
        stats::median_of(self.get(id, measure)?)
    }

    /// The rounds' values of one measure as a spread (a ratio measure).
    pub fn spread(&self, id: &str, measure: &'static str) -> Option<Spread> {
        Spread::of(&self.get(id, measure)?.values().copied().collect::<Vec<_>>())
    }

    /// Per-round `a / b` of one measure.
    pub fn vs(&self, a: &str, b: &str, measure: &'static str) -> Option<Spread> {
        Spread::paired(self.get(a, measure)?, self.get(b, measure)?)
    }
}

/// The per-round measures of one run, notes on samples left out, and
/// failures found in the results (reads that failed).
pub(super) fn measure(
    results: &Path,
    lines: &Lines,
    groups: u64,
) -> (Packed, Vec<String>, Vec<String>) {
    let mut p = Packed::default();
    let mut notes = Vec::new();
    let mut failures = Vec::new();
    let churned = 6 * groups;
    let mut compr_by_round: BTreeMap<(String, u32), (u64, f64)> = BTreeMap::new();
    for w in &lines.wb {
        let Some(row) = ROWS.iter().find(|r| r.id == w.id) else {
            continue;
        };
        if !w.ok {
            continue;
        }
        let nonsame = (w.orig / 4096).saturating_sub(w.same);
        if nonsame == 0 {
            continue;
        }
        let mean = w.compr as f64 / nonsame as f64;
        p.put(row.id, "mean_compr", w.round, mean);
        // Unpacked, a block is a page; packed, every page stored (not
        // same-filled) went when no compressed byte is left in RAM.
        let pages = if row.mode != Mode::Packed {
            w.writes
        } else if w.compr_after == 0 {
            nonsame
        } else {
            notes.push(format!(
                "{} round {}: {} compressed bytes left in RAM after the writeback: pages written back unknown",
                w.id, w.round, w.compr_after
            ));
            continue;
        };
        if pages == 0 {
            continue;
        }
        compr_by_round.insert((w.id.clone(), w.round), (w.compr, mean));
        let bpp = w.writes as f64 * 4096.0 / pages as f64;
        p.put(row.id, "pages", w.round, pages as f64);
        p.put(row.id, "bytes_per_page", w.round, bpp);
        p.put(row.id, "bytes_ratio", w.round, bpp / mean);
        if w.ns > 0 {
            p.put(row.id, "pps", w.round, pages as f64 / (w.ns as f64 / 1e9));
        }
        if w.count != w.writes && row.mode != Mode::Packed {
            notes.push(format!(
                "{} round {}: bd_stat count {} != writes {} after one writeback",
                w.id, w.round, w.count, w.writes
            ));
        }
    }
    let live_pages = lines
        .reference
        .as_ref()
        .map(|r| (r.live_orig / 4096).saturating_sub(r.live_same));
    for a in &lines.after {
        let Some(&(compr, mean)) = compr_by_round.get(&(a.id.clone(), a.round)) else {
            continue;
        };
        let Some(pages) = p.get(&a.id, "pages").and_then(|v| v.get(&a.round)) else {
            continue;
        };
        let pages = *pages as u64;
        // A failed read-back run's figures are no sample (the error is
        // listed with the others); reads that failed in a run that went on
        // are listed as errors, the others timed.
        if a.lat_ok
            && let Ok(Latency {
                p50_us,
                p99_us,
                ios,
                failed,
            }) = fio_latency(&results.join(format!("lat-{}-{}.json", a.id, a.round)))
        {
            if failed > 0 {
                failures.push(format!(
                    "{} round {}: {failed} read-back reads failed (fio: {ios} reads done)",
                    a.id, a.round
                ));
            }
            p.put(&a.id, "p50_us", a.round, p50_us);
            p.put(&a.id, "p99_us", a.round, p99_us);
            if ios > 0 {
                p.put(
                    &a.id,
                    "blocks_per_read",
                    a.round,
                    a.blocks_read as f64 / ios as f64,
                );
            }
        }
        if a.count == 0 {
            continue;
        }
        let space = a.count as f64 * 4096.0;
        p.put(&a.id, "count_after", a.round, a.count as f64);
        let remaining = pages.saturating_sub(churned);
        p.put(
            &a.id,
            "dead_est",
            a.round,
            1.0 - remaining as f64 * mean / space,
        );
        // Exact when the reference compressed the same data to the same
        // size and keeps as many pages as the churn left.
        match &lines.reference {
            Some(r) if r.compr == compr && live_pages == Some(remaining) => {
                p.put(&a.id, "dead", a.round, 1.0 - r.live_compr as f64 / space);
            }
            Some(r) => notes.push(format!(
                "{} round {}: the reference ({} bytes, {:?} pages left) does not match this device ({compr} bytes, {remaining} pages left): no exact dead space",
                a.id, a.round, r.compr, live_pages
            )),
            None => {}
        }
    }
    for c in &lines.cost {
        if c.ok && c.calls > 0 && c.ns > 0 {
            p.put(
                &c.dev,
                "call_ms",
                c.round,
                c.ns as f64 / 1e6 / c.calls as f64,
            );
        }
    }
    (p, notes, failures)
}

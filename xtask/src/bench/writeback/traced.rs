//! The traced pass of `bench writeback`: rows with one bio in flight
//! ([`TRACED`]) written back once more per round, untimed, with the block
//! layer's `block_rq_issue` and `block_rq_complete` tracepoints on, which
//! splits a page's time into the request's at the device (issue to
//! completion) and the driver's (a completion to the next issue).

use std::{collections::BTreeMap, fmt::Write as _, fs, io, path::Path};

use anyhow::{Context as _, Result, bail};

use super::{Rates, rows};
use crate::bench::stats::{self, Spread};

/// Rows also written back once more per round with the block layer's
/// request tracepoints on: one bio in flight, upstream's then rzram's.
pub const TRACED: [&str; 2] = ["zram-b1", "rzram-b1-bio1"];

/// awk over the trace's `block_rq_issue` and `block_rq_complete` lines (one
/// request at a time): prints `ID ROUND PAGES DEVICE_US GAP_US N_DEVICE
/// N_GAP`, the mean time from an issue to its completion and from a
/// completion to the next issue, if the writeback succeeded.
const TRACE_AWK: &str = r#"
{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+[.][0-9]+:$/) { t = substr($i, 1, length($i) - 1) * 1e6; break }
  if ($0 ~ / block_rq_issue: /) { if (done) { gap += t - done; ng++; done = 0 }; at = t }
  else if (at) { dev += t - at; nd++; done = t; at = 0 } }
END { if (ok && nd && ng) printf "%s %s %s %.2f %.2f %d %d\n", id, round, pages, dev / nd, gap / ng, nd, ng }"#;

/// The script's shell function `traced ID DEV BATCH BIO_PAGES|- ROUND`,
/// which appends [`TRACE_AWK`]'s line to `wb-trace.txt`; it uses the main
/// script's `setup`, `$R` and `$BD`.
pub(super) fn shell() -> String {
    format!(
        r#"T=/sys/kernel/tracing
[ -d $T/events/block ] || mount -t tracefs nodev $T 2>/dev/null
# The same writeback again, untimed, with the block layer's request
# tracepoints on: the mean time of a request at the device (issue to
# completion) and of the driver between a completion and the next issue.
# Meant for one bio in flight (batch 1, one-page bios), where they alternate.
traced() {{ # ID DEV BATCH BIO_PAGES|- ROUND
  [ -e $T/events/block/block_rq_issue/enable ] || {{ echo "$1 round $5: no block tracepoints" >> "$R/errors.txt"; return; }}
  setup "$@" || return
  echo 4096 > $T/buffer_size_kb
  echo > $T/trace
  echo 1 > $T/events/block/block_rq_issue/enable
  echo 1 > $T/events/block/block_rq_complete/enable
  echo 1 > $T/tracing_on
  if echo idle > $S/writeback; then ok=1; else ok=0; fi
  echo 0 > $T/tracing_on
  echo 0 > $T/events/block/block_rq_issue/enable
  echo 0 > $T/events/block/block_rq_complete/enable
  [ $ok = 1 ] || echo "$1 round $5: traced writeback failed" >> "$R/errors.txt"
  set -- "$1" "$2" "$3" "$4" "$5" $(cat $S/bd_stat)
  grep -E ' block_rq_(issue|complete): ' $T/trace \
    | awk -v id="$1" -v round="$5" -v pages="$8" -v ok=$ok '{TRACE_AWK}' >> "$R/wb-trace.txt"
  echo 1 > $S/reset
}}
"#
    )
}

/// A traced writeback's means, microseconds per request: at the device
/// (issue to completion) and in the driver (a completion to the next issue).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    pub device_us: f64,
    pub gap_us: f64,
}

/// Lines of `wb-trace.txt`: ID ROUND PAGES DEVICE_US GAP_US N_DEVICE N_GAP,
/// by row id and round.
fn parse_traced(text: &str) -> Result<BTreeMap<String, BTreeMap<u32, Split>>> {
    let mut out: BTreeMap<String, BTreeMap<u32, Split>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [id, round, _pages, device, gap, _, _] = f[..] else {
            bail!("bad line in wb-trace.txt: {line:?}");
        };
        let us = |v: &str, what: &str| -> Result<f64> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .with_context(|| format!("{what} in wb-trace.txt line {line:?}"))
        };
        let round = round
            .parse()
            .with_context(|| format!("round in wb-trace.txt line {line:?}"))?;
        out.entry(id.to_string()).or_default().insert(
            round,
            Split {
                device_us: us(device, "device µs")?,
                gap_us: us(gap, "gap µs")?,
            },
        );
    }
    Ok(out)
}

/// The traced pass of a run in `results`, by row id and round: empty when
/// the run made none (no `wb-trace.txt`, as in runs from before it).
pub(super) fn load(results: &Path) -> Result<BTreeMap<String, BTreeMap<u32, Split>>> {
    match fs::read_to_string(results.join("wb-trace.txt")) {
        Ok(text) => parse_traced(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).context("reading wb-trace.txt"),
    }
}

impl Rates {
    /// Per round, one measure of the traced pass of row `id`.
    pub fn traced_by(&self, id: &str, f: fn(&Split) -> f64) -> Option<BTreeMap<u32, f64>> {
        Some(
            self.traced
                .get(id)?
                .iter()
                .map(|(&r, x)| (r, f(x)))
                .collect(),
        )
    }

    /// Median over the rounds of one measure of the traced pass of row `id`.
    pub fn traced_median(&self, id: &str, f: fn(&Split) -> f64) -> Option<f64> {
        stats::median_of(&self.traced_by(id, f)?)
    }

    /// Per round, one measure of the traced pass of row `a` over row `b`.
    pub fn traced_vs(&self, a: &str, b: &str, f: fn(&Split) -> f64) -> Option<Spread> {
        Spread::paired(&self.traced_by(a, f)?, &self.traced_by(b, f)?)
    }

    /// Per-round driver time between a completion and the next issue, of
    /// `upstream` over `rzram`: above 1.0, rzram takes less.
    pub fn gap_vs(&self, rzram: &str, upstream: &str) -> Option<Spread> {
        self.traced_vs(upstream, rzram, |x| x.gap_us)
    }
}

/// Where a page's time goes with one bio in flight: the traced pass's
/// device and driver times per row, and their ratios.
pub(super) fn section(rates: &Rates) -> String {
    let [up, rz] = TRACED;
    if !rates.traced.contains_key(up) {
        return String::new();
    }
    let mut t = String::from(
        "\n**Where a page's time goes with one bio in flight** (batch 1, one-page bios). There a page's time is \
         the backing request's time at the device plus the driver's between one request's completion and the \
         next one's issue: waking the writer, reading the next page and building and submitting its bio, or \
         anything else it does first. After the timed rows, each round writes the same data back once more on \
         each of the two rows, untimed, with the block layer's `block_rq_issue` and `block_rq_complete` \
         tracepoints on (their cost is the same per request for both), and takes the mean of each interval \
         over the run's requests. The device's part is what the guest sees: QEMU's emulation of the disk, \
         under TCG on the same host cores as the guest, and the interrupt's delivery.\n\n\
         | row | at the device, µs per request: median | per round | driver, completion to next issue, µs: median | per round |\n\
         |---|---|---|---|---|\n",
    );
    for id in TRACED {
        let label = rows()
            .into_iter()
            .find(|r| r.id == id)
            .map_or("?", |r| r.label);
        let (Some(dev), Some(gap)) = (
            rates.traced_by(id, |x| x.device_us),
            rates.traced_by(id, |x| x.gap_us),
        ) else {
            let _ = writeln!(t, "| {label} | not measured | - | - | - |");
            continue;
        };
        let _ = writeln!(
            t,
            "| {label} | {} | {} | {} | {} |",
            stats::num(rates.traced_median(id, |x| x.device_us), 1),
            stats::rounds_list(&dev, 1),
            stats::num(rates.traced_median(id, |x| x.gap_us), 1),
            stats::rounds_list(&gap, 1),
        );
    }
    let device_ratio = rates.traced_vs(rz, up, |x| x.device_us);
    let _ = writeln!(
        t,
        "| **upstream / rzram**, driver time (above 1: rzram takes less) | | | {} | |\n\
         | **rzram / upstream**, device time (above 1: rzram's requests take longer there) | {} | | | |",
        stats::cell(rates.gap_vs(rz, up).as_ref()),
        stats::cell(device_ratio.as_ref()),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{BenchArgs, writeback::report_rates};

    #[test]
    fn the_traced_pass_splits_a_page_into_device_and_driver_time() {
        // Requests at 10.000100 (done 10.000300), 10.000340 (done 10.000500),
        // 10.000560 (done 10.000800): device 200, 160, 240 µs; driver 40,
        // 60 µs. Lines as the kernel's trace file prints them.
        let trace = "\
 kworker/u8:1-40 [001] d..1. 10.000100: block_rq_issue: 254,0 WS 4096 () 8 + 8 [bash]
 <idle>-0 [000] d.h1. 10.000300: block_rq_complete: 254,0 WS () 8 + 8 [0]
 bash-120 [001] d..1. 10.000340: block_rq_issue: 254,0 WS 4096 () 16 + 8 [bash]
 <idle>-0 [000] d.h1. 10.000500: block_rq_complete: 254,0 WS () 16 + 8 [0]
 bash-120 [001] d..1. 10.000560: block_rq_issue: 254,0 WS 4096 () 24 + 8 [bash]
 <idle>-0 [000] d.h1. 10.000800: block_rq_complete: 254,0 WS () 24 + 8 [0]
";
        let run = |ok: &str| {
            let mut child = std::process::Command::new("awk")
                .args(["-v", "id=zram-b1", "-v", "round=3", "-v", "pages=3", "-v"])
                .arg(format!("ok={ok}"))
                .arg(TRACE_AWK)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), trace.as_bytes()).unwrap();
            String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
        };
        let line = run("1");
        assert_eq!(line, "zram-b1 3 3 200.00 50.00 3 2\n");
        assert_eq!(run("0"), "", "a failed writeback gives no line");
        let split = &parse_traced(&line).unwrap()["zram-b1"][&3];
        assert_eq!((split.device_us, split.gap_us), (200.0, 50.0));
        assert!(parse_traced("zram-b1 3 3 x 50 3 2\n").is_err());

        let dir = std::env::temp_dir().join(format!("xtask-wb-traced-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("env.txt"), "rzram_writeback 1\nclk_tck 100\n").unwrap();
        fs::write(
            dir.join("writeback.txt"),
            "zram-b1 0 1000 1000000000 1 100\n",
        )
        .unwrap();
        fs::write(
            dir.join("wb-trace.txt"),
            "zram-b1 0 1000 170.00 45.00 1000 999\n\
             rzram-b1-bio1 0 1000 190.00 30.00 1000 999\n\
             zram-b1 1 1000 180.00 50.00 1000 999\n\
             rzram-b1-bio1 1 1000 180.00 25.00 1000 999\n",
        )
        .unwrap();
        let (text, _, r) = report_rates(&BenchArgs::for_test("writeback", 2), &dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let g = r.gap_vs("rzram-b1-bio1", "zram-b1").unwrap();
        assert_eq!((g.n, g.min, g.max), (2, 1.5, 2.0));
        assert!(text.contains("one bio in flight"));
        assert!(
            text.contains("| zram (C, upstream) | 175.0 | 170.0 / 180.0 | 47.5 | 45.0 / 50.0 |"),
            "{text}"
        );
    }
}

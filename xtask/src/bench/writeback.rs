//! `cargo xtask bench writeback`: idle writeback rate of upstream zram and
//! rzram on the same data and the same backing slice, against what the
//! backing device itself does (fio), in one VM run.
//!
//! Each row: a fresh 256 MiB lz4 device with a dm-linear slice of the VM's
//! scratch disk as backing device, the data set written with O_DIRECT,
//! `idle` <- `all`, then `writeback` <- `idle` timed; pages from `bd_stat`.
//! Rows are interleaved (upstream, rzram, upstream, ...; odd rounds run the
//! list backwards, so each pair alternates which goes first) and repeated
//! `--rounds` times; each round gives one rzram / upstream ratio per row,
//! reported as the median with its confidence interval (`stats`). Around each
//! writeback the guest's CPU busy time is read from /proc/stat (every CPU,
//! user + nice + system + irq + softirq): the driver's cost per written
//! page, wherever it ran (the writing process, kworkers, interrupts).
//! Rows with one bio in flight ([`TRACED`]) are written back once more per
//! round, untimed, with the block layer's request tracepoints on, to split a
//! page's time into the device's and the driver's.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result, bail};

use super::{
    BenchArgs, accel, env_value, fio_iops, publish, push_list, read_errors, read_result, run_in_vm,
    stats::{self, Spread},
};
use crate::util::{progress, repo_root};

mod traced;
pub use traced::TRACED;

/// One writeback configuration.
pub struct Row {
    pub id: String,
    pub label: &'static str,
    pub dev: &'static str,
    pub batch: u32,
    /// rzram's `writeback_bio_pages`; None on upstream zram.
    pub bio_pages: Option<u32>,
    /// The upstream row with the same batch size.
    pub upstream: Option<String>,
}

/// Batch sizes of the sweep.
pub const BATCHES: [u32; 6] = [1, 4, 8, 16, 32, 64];

/// In the order they run within a round: for each batch size upstream
/// zram, rzram with 32-page bios, and at batch 1 and 32 rzram with
/// one-page bios (upstream's bio shape).
pub fn rows() -> Vec<Row> {
    let mut v = Vec::new();
    for b in BATCHES {
        v.push(Row {
            id: format!("zram-b{b}"),
            label: "zram (C, upstream)",
            dev: "zram0",
            batch: b,
            bio_pages: None,
            upstream: None,
        });
        let bios: &[u32] = if b == 1 || b == 32 { &[1, 32] } else { &[32] };
        for &bio in bios {
            v.push(Row {
                id: format!("rzram-b{b}-bio{bio}"),
                label: "rzram (Rust)",
                dev: "rzram0",
                batch: b,
                bio_pages: Some(bio),
                upstream: Some(format!("zram-b{b}")),
            });
        }
    }
    v
}

/// fio jobs on the backing slice: (id, label, rw, iodepth).
const DEVICE_JOBS: [(&str, &str, &str, u32); 3] = [
    ("rand-qd1", "4K random write, QD1", "randwrite", 1),
    ("rand-qd32", "4K random write, QD32", "randwrite", 32),
    (
        "seq-qd32",
        "4K sequential write, QD32 (merging)",
        "write",
        32,
    ),
];

/// MiB of the scratch disk the benchmark uses (one dm-linear slice).
const SLICE_MIB: u32 = 512;

pub fn script(args: &BenchArgs) -> String {
    let rand_mib = (args.data_mib / 12).max(1);
    let text_mib = args.data_mib.saturating_sub(rand_mib).max(1);
    let mut s = format!(
        r#"set -u
R="$ZRAMCTL_RESULTS"
: > "$R/writeback.txt"
: > "$R/errors.txt"
: > "$R/wb-trace.txt"
[ -e /sys/module/rzram ] || insmod "$ZRAMCTL_MODROOT/lib/modules/$ZRAMCTL_KERNEL_RELEASE/kernel/drivers/block/rzram/rzram.ko" num_devices=2 \
  || echo "insmod rzram failed" >> "$R/errors.txt"
RZRAM=0
if [ -e /sys/block/rzram0/backing_dev ] && [ -e /sys/block/rzram0/writeback_bio_pages ]; then RZRAM=1; fi
{{
  echo "rzram_writeback $RZRAM"
  echo "kernel $(uname -r)"
  echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cpus $(nproc)"
  echo "clk_tck $(getconf CLK_TCK)"
}} > "$R/env.txt"
dmsetup remove wbbench 2>/dev/null
dmsetup create wbbench --table "0 {sectors} linear $ZRAMCTL_BACKING_DISK 0" || exit 1
BD=/dev/$(dmsetup info -c --noheadings -o blkdevname wbbench)
echo "backing $BD" >> "$R/env.txt"
# Write the whole slice once, so that no row pays for the host allocating
# blocks of the sparse disk image.
dd if=/dev/zero of="$BD" bs=1M count={SLICE_MIB} oflag=direct status=none || exit 1
# The data set, the same for every row: text and binaries, some random.
{{ find /usr/share/perl /usr/bin -type f | sort | xargs cat 2>/dev/null; }} | head -c {text_mib}M > /tmp/data.bin
head -c {rand_mib}M /dev/urandom >> /tmp/data.bin
echo "data_bytes $(stat -c %s /tmp/data.bin)" >> "$R/env.txt"

setup() {{ # ID DEV BATCH BIO_PAGES|- ROUND: a fresh device, the data in it, all idle
  S=/sys/block/$2
  echo 1 > $S/reset
  if ! echo "$BD" > $S/backing_dev; then echo "$1 round $5: backing_dev failed" >> "$R/errors.txt"; return 1; fi
  echo 256M > $S/disksize
  echo 0 > $S/writeback_limit_enable
  echo "$3" > $S/writeback_batch_size || echo "$1 round $5: writeback_batch_size failed" >> "$R/errors.txt"
  if [ "$4" != - ]; then
    echo "$4" > $S/writeback_bio_pages || echo "$1 round $5: writeback_bio_pages failed" >> "$R/errors.txt"
  fi
  dd if=/tmp/data.bin of=/dev/$2 bs=1M oflag=direct status=none
  echo all > $S/idle
  sync; sleep 0.5
}}
row() {{ # ID DEV BATCH BIO_PAGES|- ROUND
  setup "$@" || return
  # Builtins only between the two /proc/stat reads: no fork is counted.
  t0=${{EPOCHREALTIME/./}}
  read -r _ u n s _ _ q sq _ < /proc/stat; b0=$((u + n + s + q + sq))
  if echo idle > $S/writeback; then ok=1; else ok=0; fi
  read -r _ u n s _ _ q sq _ < /proc/stat; b1=$((u + n + s + q + sq))
  t1=${{EPOCHREALTIME/./}}
  [ $ok = 1 ] || echo "$1 round $5: writeback failed" >> "$R/errors.txt"
  set -- "$1" "$2" "$3" "$4" "$5" $(cat $S/bd_stat)
  echo "$1 $5 $8 $(( (t1 - t0) * 1000 )) $ok $((b1 - b0))" >> "$R/writeback.txt"
  echo "round $5: $1: $8 pages in $(( (t1 - t0) / 1000 )) ms, $((b1 - b0)) busy ticks; mm_stat $(cat $S/mm_stat)"
  echo 1 > $S/reset
}}
{traced_fn}"#,
        sectors = SLICE_MIB * 2048,
        traced_fn = traced::shell(),
    );
    let all = rows();
    for round in 0..args.rounds {
        let order: Vec<&Row> = if round % 2 == 0 {
            all.iter().collect()
        } else {
            all.iter().rev().collect()
        };
        for r in order {
            call(&mut s, "row", r, round);
        }
        // The traced pass of the one-bio-in-flight rows, after the timed
        // ones, the device going first alternating by round.
        let mut traced: Vec<&Row> = all
            .iter()
            .filter(|r| TRACED.contains(&r.id.as_str()))
            .collect();
        if round % 2 == 1 {
            traced.reverse();
        }
        for r in traced {
            call(&mut s, "traced", r, round);
        }
    }
    // The device rows are references, not comparisons: one run each.
    for (id, _, rw, depth) in DEVICE_JOBS {
        let _ = writeln!(
            s,
            "echo \"fio {id} on $BD\"\n\
             fio --name={id} --filename=\"$BD\" --rw={rw} --bs=4k --size=256M --direct=1 \
             --ioengine=libaio --iodepth={depth} --runtime={rt} --time_based --output-format=json \
             > \"$R/dev-{id}.json\" || exit 1",
            rt = args.runtime
        );
    }
    s.push_str("dmsetup remove wbbench\n");
    s
}

/// One timed writeback: round, pages written, nanoseconds, whether it
/// succeeded, guest CPU busy ticks (USER_HZ) meanwhile.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    round: u32,
    pages: u64,
    ns: u64,
    ok: bool,
    busy_ticks: u64,
}

/// Lines of `writeback.txt`: ID ROUND PAGES NS OK BUSY_TICKS, by row id.
fn parse_rows(text: &str) -> Result<BTreeMap<String, Vec<Sample>>> {
    let mut out: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [id, round, pages, ns, ok, busy] = f[..] else {
            bail!("bad line in writeback.txt: {line:?}");
        };
        let n = |s: &str, what: &str| {
            s.parse::<u64>()
                .with_context(|| format!("{what} in {line:?}"))
        };
        out.entry(id.to_string()).or_default().push(Sample {
            round: round
                .parse()
                .with_context(|| format!("round in {line:?}"))?,
            pages: n(pages, "pages")?,
            ns: n(ns, "ns")?,
            ok: ok == "1",
            busy_ticks: n(busy, "busy ticks")?,
        });
    }
    Ok(out)
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// One run's measurements: per row id and round, pages/s and guest CPU
/// microseconds per written page; fio IOPS per device job id.
pub struct Rates {
    pub pps: BTreeMap<String, BTreeMap<u32, f64>>,
    pub cpu_us: BTreeMap<String, BTreeMap<u32, f64>>,
    pub pages: BTreeMap<String, u64>,
    pub device: BTreeMap<&'static str, f64>,
    /// The traced pass ([`TRACED`]), by row id and round.
    pub traced: BTreeMap<String, BTreeMap<u32, traced::Split>>,
}

impl Rates {
    pub fn median(&self, id: &str) -> Option<f64> {
        stats::median_of(self.pps.get(id)?)
    }

    pub fn cpu_median(&self, id: &str) -> Option<f64> {
        stats::median_of(self.cpu_us.get(id)?)
    }

    /// Per-round pages/s of `a` over `b`.
    pub fn vs(&self, a: &str, b: &str) -> Option<Spread> {
        Spread::paired(self.pps.get(a)?, self.pps.get(b)?)
    }

    /// Per-round CPU per page of `upstream` over `rzram`: above 1.0, rzram
    /// costs less CPU per page.
    pub fn cpu_vs(&self, rzram: &str, upstream: &str) -> Option<Spread> {
        Spread::paired(self.cpu_us.get(upstream)?, self.cpu_us.get(rzram)?)
    }
}

/// A line of the script calling shell function `func` for row `r` (rzram's
/// only where its writeback exists).
fn call(s: &mut String, func: &str, r: &Row, round: u32) {
    let line = format!(
        "{func} {} {} {} {} {round}",
        r.id,
        r.dev,
        r.batch,
        r.bio_pages.map_or("-".into(), |b| b.to_string())
    );
    if r.dev.starts_with("rzram") {
        let _ = writeln!(s, "[ $RZRAM = 1 ] && {line}");
    } else {
        let _ = writeln!(s, "{line}");
    }
}

/// Row ids whose ratio to upstream carries a target (issue 16), with it.
pub const TARGETS: [(&str, f64); 2] = [("rzram-b1-bio1", 1.0), ("rzram-b32-bio1", 1.0)];

pub fn report(args: &BenchArgs, results: &Path) -> Result<(String, Vec<String>)> {
    report_rates(args, results).map(|(t, e, _)| (t, e))
}

pub fn report_rates(args: &BenchArgs, results: &Path) -> Result<(String, Vec<String>, Rates)> {
    let env = read_result(results, "env.txt")?;
    let samples = parse_rows(&fs::read_to_string(results.join("writeback.txt"))?)?;
    let errors = read_errors(results);
    let rzram = env_value(&env, "rzram_writeback") == Some("1");
    let cpu = env_value(&env, "cpu").unwrap_or("?");
    let clk_tck: f64 = env_value(&env, "clk_tck")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100.0);
    let accel = accel(cpu);

    let mut device = BTreeMap::new();
    for (id, _, rw, _) in DEVICE_JOBS {
        if let Ok(iops) = fio_iops(&results.join(format!("dev-{id}.json")), rw) {
            device.insert(id, iops);
        }
    }
    let all_rows = rows();
    let mut rates = Rates {
        pps: BTreeMap::new(),
        cpu_us: BTreeMap::new(),
        pages: BTreeMap::new(),
        device,
        traced: traced::load(results)?,
    };
    for r in &all_rows {
        let Some(v) = samples.get(&r.id) else {
            continue;
        };
        let ok: Vec<&Sample> = v
            .iter()
            .filter(|s| s.ok && s.ns > 0 && s.pages > 0)
            .collect();
        if ok.is_empty() {
            continue;
        }
        rates
            .pages
            .insert(r.id.clone(), ok.iter().map(|s| s.pages).max().unwrap_or(0));
        rates.pps.insert(
            r.id.clone(),
            ok.iter()
                .map(|s| (s.round, s.pages as f64 / (s.ns as f64 / 1e9)))
                .collect(),
        );
        rates.cpu_us.insert(
            r.id.clone(),
            ok.iter()
                .map(|s| {
                    (
                        s.round,
                        s.busy_ticks as f64 / clk_tck * 1e6 / s.pages as f64,
                    )
                })
                .collect(),
        );
    }

    let mut table = String::from(
        "| row | batch | bio pages | pages written | pages/s, median | pages/s per round | rzram / upstream, same batch: median (CI; min-max) | guest CPU µs per page, median | upstream CPU / rzram CPU per page (min-max) | vs device 4K seq QD32 |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let seq = rates.device.get("seq-qd32").copied();
    for r in &all_rows {
        let bio = r.bio_pages.map_or("1 (upstream)".into(), |b| b.to_string());
        match (rates.pps.get(&r.id), rates.median(&r.id)) {
            (Some(per_round), Some(pps)) => {
                let up = r.upstream.as_deref();
                let _ = writeln!(
                    table,
                    "| {} | {} | {bio} | {} | {pps:.0} | {} | {} | {} | {} | {} |",
                    r.label,
                    r.batch,
                    rates.pages[&r.id],
                    stats::rounds_list(per_round, 0),
                    up.map_or("-".into(), |u| stats::cell(rates.vs(&r.id, u).as_ref())),
                    stats::num(rates.cpu_median(&r.id), 1),
                    up.map_or("-".into(), |u| stats::cell(rates.cpu_vs(&r.id, u).as_ref())),
                    ratio(pps, seq),
                );
            }
            _ => {
                let why = if r.dev.starts_with("rzram") && !rzram {
                    "unavailable"
                } else if samples.contains_key(&r.id) {
                    "failed"
                } else {
                    "not measured"
                };
                let _ = writeln!(
                    table,
                    "| {} | {} | {bio} | - | {why} | - | - | - | - | - |",
                    r.label, r.batch
                );
            }
        }
    }
    for (id, label, _, _) in DEVICE_JOBS {
        let _ = writeln!(
            table,
            "| backing device: fio {label} | - | - | - | {} IOPS | - | - | - | - | - |",
            stats::num(rates.device.get(id).copied(), 0)
        );
    }
    let mut text = format!(
        "# bench writeback\n\n\
         Idle writeback (`echo idle > writeback`) of the same {} MiB data set (text, binaries, 1/12 random; \
         same-filled pages are never written back) from fresh 256 MiB lz4 devices to the same {SLICE_MIB} MiB \
         dm-linear slice of the VM's virtio disk, in {} interleaved rounds (odd rounds run the rows backwards, \
         so each rzram row and its upstream row alternate which goes first); each round gives one ratio per row, \
         shown as the median with its confidence interval and the min-max of the rounds. Kernel {}, {} CPUs. The guest runs {accel} (cpu: {cpu}): \
         absolute numbers are far below hardware, ratios measured in the same run are what this shows. The \
         device rows are one fio run each (libaio, O_DIRECT, {} s) on that slice.\n\n\
         **Guest CPU per page** is the guest's total CPU busy time (every CPU: user + nice + system + irq + \
         softirq from /proc/stat, read with shell builtins right before and after `echo idle > writeback`, \
         which returns when the last page is written) divided by the pages written. It is the fair measure \
         because the two drivers spend their work in different contexts (the writing process, bio completion \
         in interrupt context, kworkers): the writing process's rusage would miss completion and kworker \
         time, per-kworker accounting would miss what runs in interrupts. The guest runs nothing else meanwhile; the disk's emulation runs in QEMU outside the \
         guest's CPUs, the same for both. /proc/stat counts in ticks of 1/{clk_tck:.0} s, sampled per tick \
         (not exact per event), which averages out over the thousands of ticks a row takes.\n\n{table}",
        args.data_mib,
        args.rounds,
        env_value(&env, "kernel").unwrap_or("?"),
        env_value(&env, "cpus").unwrap_or("?"),
        args.runtime,
    );
    text.push_str(&traced::section(&rates));
    let fastest = all_rows
        .iter()
        .filter_map(|r| rates.median(&r.id))
        .fold(0.0, f64::max);
    if rates.device.values().any(|&iops| fastest > iops) {
        text.push_str(
            "\nA writeback row faster than the device rows is not a measuring error: fio pays a system \
             call and a completion reap per I/O, which under TCG costs more than the kernel issuing the \
             same writes, so the fio rows understate what the disk takes.\n",
        );
    }
    if !rzram {
        text.push_str(
            "\nrzram writeback is unavailable in this kernel (no /sys/block/rzram0/backing_dev or \
             writeback_bio_pages): only the upstream rows were measured.\n",
        );
    }
    push_list(&mut text, "Errors in the VM", &errors);
    Ok((text, errors, rates))
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let results = repo_root().join("target/bench/writeback");
    if !args.report_only {
        progress(&format!(
            "bench writeback: {} rounds x {} writeback rows ({} MiB each) + {} fio jobs x {}s in one VM",
            args.rounds,
            rows().len(),
            args.data_mib,
            DEVICE_JOBS.len(),
            args.runtime
        ));
        run_in_vm("writeback", &script(args))?;
    }
    let (text, errors) = report(args, &results)?;
    publish("writeback", &results, &text, &errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_rejects_junk() {
        let rows =
            parse_rows("zram-b1 0 100 1000000000 1 50\nzram-b1 1 100 500000000 0 7\n").unwrap();
        assert_eq!(
            rows["zram-b1"][1],
            Sample {
                round: 1,
                pages: 100,
                ns: 500_000_000,
                ok: false,
                busy_ticks: 7
            }
        );
        assert!(parse_rows("zram-b1 0 x 1 1 1\n").is_err());
        assert!(parse_rows("zram-b1 0 100 1 1\n").is_err());
    }

    #[test]
    fn report_pairs_rounds_and_counts_cpu_per_page() {
        let dir = std::env::temp_dir().join(format!("xtask-wb-report-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("env.txt"),
            "rzram_writeback 1\nkernel 7.3.4\ncpu QEMU TCG CPU\ncpus 2\nclk_tck 100\n",
        )
        .unwrap();
        // Round 0: rzram twice as fast, half the CPU; round 1: as fast, the
        // same CPU; 1000 pages, 100 ticks = 1 s = 1000 us per page.
        fs::write(
            dir.join("writeback.txt"),
            "zram-b32 0 1000 1000000000 1 100\n\
             rzram-b32-bio1 0 1000 500000000 1 50\n\
             rzram-b32-bio1 1 1000 1000000000 1 100\n\
             zram-b32 1 1000 1000000000 1 100\n\
             rzram-b32-bio32 1 1000 1000000000 0 100\n",
        )
        .unwrap();
        let (text, errors, r) = report_rates(&BenchArgs::for_test("writeback", 2), &dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(errors.is_empty());
        let s = r.vs("rzram-b32-bio1", "zram-b32").unwrap();
        assert_eq!((s.n, s.min, s.max), (2, 1.0, 2.0));
        assert_eq!(r.cpu_us["zram-b32"][&0], 1000.0);
        let c = r.cpu_vs("rzram-b32-bio1", "zram-b32").unwrap();
        assert_eq!((c.min, c.max), (1.0, 2.0));
        // A failed writeback is no sample.
        assert!(r.median("rzram-b32-bio32").is_none());
        assert!(text.contains("| rzram (Rust) | 32 | 32 | - | failed |"));
        assert!(text.contains("| rzram (Rust) | 1 | 1 | - | not measured |"));
        // No traced pass: no section.
        assert!(!text.contains("one bio in flight"));
    }

    #[test]
    fn script_skips_rzram_rows_without_its_writeback() {
        let args = BenchArgs {
            data_mib: 96,
            report_only: false,
            seed_mib: 48,
            seed_runs: 4,
            ..BenchArgs::for_test("writeback", 2)
        };
        let s = script(&args);
        assert_eq!(s.matches("\nrow zram-b1 zram0 1 - ").count(), 2);
        assert_eq!(
            s.matches("[ $RZRAM = 1 ] && row rzram-b32-bio32 rzram0 32 32 ")
                .count(),
            2
        );
        // Round 1 runs the rows backwards: each pair alternates.
        let first = |needle: &str| s.find(needle).unwrap();
        assert!(first("row zram-b1 zram0 1 - 0") < first("row rzram-b1-bio1 rzram0 1 1 0"));
        assert!(first("row rzram-b1-bio1 rzram0 1 1 1") < first("row zram-b1 zram0 1 - 1"));
        assert!(s.contains("--iodepth=32") && s.contains("--iodepth=1 "));
        // The traced pass: the one-bio-in-flight rows once a round each,
        // after the timed rows, alternating which goes first.
        assert_eq!(s.matches("\ntraced zram-b1 zram0 1 - ").count(), 2);
        assert!(first("row zram-b64 zram0 64 - 0") < first("traced zram-b1 zram0 1 - 0"));
        assert!(first("traced zram-b1 zram0 1 - 0") < first("traced rzram-b1-bio1 rzram0 1 1 0"));
        assert!(first("traced rzram-b1-bio1 rzram0 1 1 1") < first("traced zram-b1 zram0 1 - 1"));
    }
}

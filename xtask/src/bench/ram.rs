//! `cargo xtask bench ram`: 4K random I/O on the RAM tier, rzram against
//! upstream zram, in interleaved rounds of one VM run.
//!
//! Each round sets up fresh zram0 and rzram0 (512 MiB, lz4), fills both
//! with the same amount of ~2x compressible data, then runs each fio job on
//! both devices back to back (randwrite on A, on B, randread on A, on B);
//! the device that goes first alternates by round. Each round gives one
//! rzram / zram ratio per op; the report shows their median with its
//! confidence interval (`stats`).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Result;

use super::{
    BenchArgs, fio_iops,
    stats::{self, Spread},
};

pub const DEVICES: [(&str, &str); 2] =
    [("zram0", "zram (C, upstream)"), ("rzram0", "rzram (Rust)")];
pub const OPS: [&str; 2] = ["randwrite", "randread"];
/// MiB of data on each device (and fio's range).
pub const FILL_MIB: u32 = 128;

pub fn script(args: &BenchArgs) -> String {
    let mut s = format!(
        "set -e\n\
         [ -e /sys/module/rzram ] || insmod \"$ZRAMCTL_MODROOT/lib/modules/$ZRAMCTL_KERNEL_RELEASE/kernel/drivers/block/rzram/rzram.ko\"\n\
         Z=\"$ZRAMCTL_BIN\"\n\
         COMMON='--thread --bs=4k --size={FILL_MIB}M --direct=1 --numjobs=2 --group_reporting --buffer_compress_percentage=50 --refill_buffers --output-format=json'\n",
    );
    for round in 0..args.rounds {
        let order = stats::ab_order(DEVICES[0].0, DEVICES[1].0, round);
        for dev in order {
            let _ = write!(
                s,
                "$Z reset {dev} >/dev/null 2>&1 || true\n\
                 $Z setup {dev} --size 512M --algorithm lz4 >/dev/null\n\
                 fio --name=fill --thread --filename=/dev/{dev} --rw=write --bs=1M --size={FILL_MIB}M --direct=1 \
                 --buffer_compress_percentage=50 --refill_buffers --output-format=json > /dev/null\n"
            );
        }
        // A B B A, each half the runtime: a drift of the host's speed over
        // the round counts the same for both devices.
        let abba = [(order[0], 0), (order[1], 0), (order[1], 1), (order[0], 1)];
        for op in OPS {
            for (dev, half) in abba {
                let _ = write!(
                    s,
                    "echo \"round {round}: {op} on {dev} ({half})\"\n\
                     fio --name={op} --filename=/dev/{dev} --rw={op} $COMMON --runtime={ms}ms --time_based \
                     > \"$ZRAMCTL_RESULTS/{dev}-{op}-{round}-{half}.json\"\n",
                    ms = half_runtime_ms(args)
                );
            }
        }
        for dev in order {
            let _ = writeln!(s, "$Z status {dev}\n$Z reset {dev}");
        }
    }
    s
}

/// Milliseconds of each of a job's two runs on a device in a round.
fn half_runtime_ms(args: &BenchArgs) -> u64 {
    u64::from(args.runtime) * 1000 / 2
}

/// Per-round IOPS by (device, op), and the rzram / zram spread per op.
pub struct RamResult {
    pub iops: BTreeMap<(&'static str, &'static str), BTreeMap<u32, f64>>,
    pub ratio: BTreeMap<&'static str, Spread>,
}

impl RamResult {
    pub fn median(&self, dev: &str, op: &str) -> Option<f64> {
        self.iops
            .iter()
            .find(|((d, o), _)| *d == dev && *o == op)
            .and_then(|(_, v)| stats::median_of(v))
    }
}

/// The RAM-tier report; a round whose fio output is missing is left out.
pub fn report(args: &BenchArgs, results: &Path) -> Result<(String, RamResult)> {
    let mut iops = BTreeMap::new();
    for (dev, _) in DEVICES {
        for op in OPS {
            // A device's IOPS in a round: the mean of its two halves (equal
            // durations).
            let v: BTreeMap<u32, f64> = (0..args.rounds)
                .filter_map(|r| {
                    let half = |h: u32| {
                        fio_iops(&results.join(format!("{dev}-{op}-{r}-{h}.json")), op).ok()
                    };
                    Some((r, (half(0)? + half(1)?) / 2.0))
                })
                .collect();
            iops.insert((dev, op), v);
        }
    }
    if iops.values().all(BTreeMap::is_empty) {
        anyhow::bail!("no fio results in {}", results.display());
    }
    let mut ratio = BTreeMap::new();
    for op in OPS {
        if let Some(s) = Spread::paired(&iops[&("rzram0", op)], &iops[&("zram0", op)]) {
            ratio.insert(op, s);
        }
    }
    let mut table = String::from(
        "| device | 4K randwrite IOPS, median | per round | 4K randread IOPS, median | per round |\n|---|---|---|---|---|\n",
    );
    for (dev, label) in DEVICES {
        let _ = write!(table, "| {label} |");
        for op in OPS {
            let v = &iops[&(dev, op)];
            let _ = write!(
                table,
                " {} | {} |",
                stats::num(stats::median_of(v), 0),
                stats::rounds_list(v, 0)
            );
        }
        table.push('\n');
    }
    let _ = writeln!(
        table,
        "| **rzram / zram** (per-round ratios: median (CI; min-max)) | {} | | {} | |",
        stats::cell(ratio.get("randwrite")),
        stats::cell(ratio.get("randread")),
    );
    let text = format!(
        "# bench ram\n\n4K random I/O, O_DIRECT, 2 jobs, fio psync, {rt} s per job and device; in each of {n} rounds \
         fresh 512 MiB lz4 devices each filled with {FILL_MIB} MiB of ~2x compressible data, each job run on the \
         devices A B B A for {half} ms each (a device's IOPS is the mean of its two runs, so a drift of the host's \
         speed over the round counts the same for both), the device going first alternating by round; each round \
         gives one rzram / zram ratio, shown as the median with its confidence interval and the min-max of the rounds. The guest runs under TCG (software emulation) here: absolute \
         numbers are far below hardware, ratios are what this measures.\n\n{table}",
        rt = args.runtime,
        n = args.rounds,
        half = half_runtime_ms(args),
    );
    Ok((text, RamResult { iops, ratio }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fio_json(op: &str, iops: f64) -> String {
        let dir = if op.ends_with("write") {
            "write"
        } else {
            "read"
        };
        format!("{{\"jobs\": [{{\"{dir}\": {{\"iops\": {iops}}}}}]}}")
    }

    #[test]
    fn a_round_averages_each_device_over_its_two_runs_abba() {
        let args = BenchArgs::for_test("ram", 2);
        let script = script(&args);
        // Round 0 runs zram0 rzram0 rzram0 zram0, round 1 the other way.
        let runs: Vec<&str> = script
            .lines()
            .filter_map(|l| l.strip_prefix("echo \"round 0: randread on "))
            .collect();
        assert_eq!(
            runs,
            ["zram0 (0)\"", "rzram0 (0)\"", "rzram0 (1)\"", "zram0 (1)\""]
        );
        assert!(script.contains("--runtime=2500ms"));

        let dir = std::env::temp_dir().join(format!("xtask-ram-report-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // The host slows down over round 0: zram's runs 100 then 80, rzram's
        // 95 then 85, the same mean: 1.0x. Round 1 lacks rzram's second run.
        for (dev, op, round, half, iops) in [
            ("zram0", "randread", 0, 0, 100.0),
            ("rzram0", "randread", 0, 0, 95.0),
            ("rzram0", "randread", 0, 1, 85.0),
            ("zram0", "randread", 0, 1, 80.0),
            ("zram0", "randread", 1, 0, 100.0),
            ("zram0", "randread", 1, 1, 100.0),
            ("rzram0", "randread", 1, 0, 100.0),
        ] {
            fs::write(
                dir.join(format!("{dev}-{op}-{round}-{half}.json")),
                fio_json(op, iops),
            )
            .unwrap();
        }
        let (_, r) = report(&args, &dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(r.iops[&("zram0", "randread")][&0], 90.0);
        assert_eq!(r.iops[&("rzram0", "randread")][&0], 90.0);
        assert!(!r.iops[&("rzram0", "randread")].contains_key(&1));
        let s = &r.ratio["randread"];
        assert_eq!((s.median, s.min, s.max, s.n), (1.0, 1.0, 1.0, 1));
    }
}

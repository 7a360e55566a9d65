//! The seed's experiment ("[PATCH v2 3/3] zram: enable asynchronous
//! writeback"): ext4 on the device, three copies of a kernel tarball,
//! `echo all > idle`, `time echo idle > writeback`, four runs each, here
//! for upstream zram (batch 32) and rzram (batch 32, `writeback_bio_pages`
//! 32 and 1), all on the same backing slice in one VM run. One more untimed
//! run per device with `zramctl top` attached gives latency histograms.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result, bail};

use super::{
    BenchArgs, median, push_list, read_errors,
    stats::{self, Spread},
};

/// (id, label, device, writeback_bio_pages).
pub const CONFIGS: [(&str, &str, &str, Option<u32>); 3] = [
    ("zram", "zram (C, upstream), batch 32", "zram0", None),
    (
        "rzram-bio32",
        "rzram (Rust), batch 32, bio pages 32",
        "rzram0",
        Some(32),
    ),
    (
        "rzram-bio1",
        "rzram (Rust), batch 32, bio pages 1",
        "rzram0",
        Some(1),
    ),
];

const TARBALL: &str = "/usr/src/linux-source-7.3.tar.xz";

/// Backing slice size for `mib`-MiB copies (three of them, plus ext4).
fn slice_mib(args: &BenchArgs) -> u64 {
    let copy = if args.seed_mib == 0 {
        170
    } else {
        u64::from(args.seed_mib)
    };
    (copy * 3 + 64).next_power_of_two().max(256)
}

/// Whether the VM needs a disk bigger than the default 1 GiB.
pub fn disk_mib(args: &BenchArgs) -> u64 {
    (slice_mib(args) + 512).max(1024)
}

/// The guest script (bash: `time` on a builtin); results in `$R`.
pub fn script(args: &BenchArgs) -> String {
    let prefix = if args.seed_mib == 0 {
        format!("cp {TARBALL} /tmp/seed.tar.xz")
    } else {
        format!("head -c {}M {TARBALL} > /tmp/seed.tar.xz", args.seed_mib)
    };
    let slice = slice_mib(args);
    let mut s = format!(
        r#"R="$ZRAMCTL_RESULTS"
: > "$R/seed.txt"
: > "$R/errors.txt"
[ -e /sys/module/rzram ] || insmod "$ZRAMCTL_MODROOT/lib/modules/$ZRAMCTL_KERNEL_RELEASE/kernel/drivers/block/rzram/rzram.ko" num_devices=2
dmsetup remove seedbench 2>/dev/null
dmsetup create seedbench --table "0 {sectors} linear $ZRAMCTL_BACKING_DISK 0" || exit 1
BD=/dev/$(dmsetup info -c --noheadings -o blkdevname seedbench)
dd if=/dev/zero of="$BD" bs=1M count={slice} oflag=direct status=none || exit 1
{prefix} || exit 1
echo "tar_bytes $(stat -c %s /tmp/seed.tar.xz)" > "$R/env.txt"
mkdir -p /tmp/seedmnt
TIMEFORMAT='%R %U %S'
seed_run() {{ # ID DEV BIO RUN [top]
  S=/sys/block/$2
  echo 1 > $S/reset
  echo "$BD" > $S/backing_dev || {{ echo "$1 run $4: backing_dev failed" >> "$R/errors.txt"; return; }}
  echo {disksize}M > $S/disksize
  echo 0 > $S/writeback_limit_enable
  echo 32 > $S/writeback_batch_size || echo "$1 run $4: writeback_batch_size failed" >> "$R/errors.txt"
  [ "$3" != - ] && {{ echo "$3" > $S/writeback_bio_pages || echo "$1 run $4: writeback_bio_pages failed" >> "$R/errors.txt"; }}
  mkfs.ext4 -q -F /dev/$2 && mount /dev/$2 /tmp/seedmnt || {{ echo "$1 run $4: mkfs/mount failed" >> "$R/errors.txt"; return; }}
  for i in 1 2 3; do cp /tmp/seed.tar.xz /tmp/seedmnt/linux-$i.tar.xz; done
  sync
  if [ -n "$5" ]; then
    "$ZRAMCTL_BIN" top $2 --once --json --interval 3600 > "$R/top-$1.json" 2> "$R/top-$1.err" &
    TOP=$!
    sleep 3
  fi
  echo all > $S/idle
  t=$( {{ time echo idle > $S/writeback; }} 2>&1 ) || echo "$1 run $4: writeback failed" >> "$R/errors.txt"
  if [ -n "$5" ]; then sleep 1; kill -TERM $TOP; wait $TOP; fi
  set -- "$1" "$2" "$3" "$4" $(cat $S/bd_stat)
  echo "$1 $4 $7 $t" >> "$R/seed.txt"
  echo "seed: $1 run $4: $7 pages written back, real/user/sys $t"
  umount /tmp/seedmnt
  echo 1 > $S/reset
}}
"#,
        sectors = slice * 2048,
        disksize = slice,
    );
    for run in 0..args.seed_runs {
        // Odd runs go backwards: each rzram row alternates with upstream
        // which goes first.
        let order: Vec<_> = if run % 2 == 0 {
            CONFIGS.iter().collect()
        } else {
            CONFIGS.iter().rev().collect()
        };
        for &(id, _, dev, bio) in order {
            let bio = bio.map_or("-".into(), |b| b.to_string());
            let _ = writeln!(s, "seed_run {id} {dev} {bio} {run}");
        }
    }
    // Untimed runs with zramctl top attached: latency histograms.
    for (id, _, dev, bio) in CONFIGS.iter().take(2) {
        let bio = bio.map_or("-".into(), |b| b.to_string());
        let _ = writeln!(s, "seed_run {id} {dev} {bio} top top");
    }
    s.push_str("dmsetup remove seedbench\n");
    s
}

/// One timed run: run index, pages, real, user, sys seconds.
type Run = (u32, u64, f64, f64, f64);

fn parse(text: &str) -> Result<BTreeMap<String, Vec<Run>>> {
    let mut out: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [id, run, pages, real, user, sys] = f[..] else {
            bail!("bad line in seed.txt: {line:?}");
        };
        if run == "top" {
            continue;
        }
        let n = |s: &str| {
            s.parse::<f64>()
                .with_context(|| format!("{s:?} in {line:?}"))
        };
        out.entry(id.to_string()).or_default().push((
            run.parse().with_context(|| format!("run in {line:?}"))?,
            pages.parse()?,
            n(real)?,
            n(user)?,
            n(sys)?,
        ));
    }
    Ok(out)
}

/// Median seconds per config id, and per rzram config the per-run ratio
/// upstream seconds / rzram seconds.
pub struct SeedResult {
    pub markdown: String,
    pub median_secs: BTreeMap<String, f64>,
    pub speedup: BTreeMap<String, Spread>,
}

/// The rzram configs' targets (issue 16): upstream time / rzram time.
pub const TARGETS: [(&str, f64); 2] = [("rzram-bio32", 2.0), ("rzram-bio1", 1.0)];

pub fn report(args: &BenchArgs, dir: &Path) -> Result<SeedResult> {
    let runs = parse(&fs::read_to_string(dir.join("seed.txt")).context("seed.txt")?)?;
    let env = fs::read_to_string(dir.join("env.txt")).unwrap_or_default();
    let tar_bytes: u64 = env
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let errors = read_errors(dir);
    let mut md = String::new();
    let what = if args.seed_mib == 0 {
        format!(
            "three copies of Debian's `linux-source-7.3.tar.xz` ({:.0} MB each)",
            tar_bytes as f64 / 1e6
        )
    } else {
        format!(
            "three copies of the first {} MiB of Debian's `linux-source-7.3.tar.xz` (the whole 166 MB tarball \
             three times takes several minutes per run under TCG; `--seed-mib 0` uses it whole)",
            args.seed_mib
        )
    };
    let _ = writeln!(
        md,
        "The seed's test flow: `mkfs.ext4` on the device, mount it, copy {what}, `sync`, \
         `echo all > idle`, `time echo idle > writeback` (bash's `time`: real, user, sys; user and sys are the \
         writing shell's only). {} runs per row, interleaved (odd runs go backwards, so upstream and each rzram row \
         alternate which goes first), on the same dm-linear backing slice, batch size 32; each run gives one \
         ratio upstream time / rzram time, shown as the median with its confidence interval and the min-max of the runs.\n",
        args.seed_runs
    );
    let _ = writeln!(
        md,
        "| row | pages written | runs: real / user / sys (s) | median real | pages/s | upstream time / this time: median (CI; min-max) |\n|---|---|---|---|---|---|"
    );
    let mut median_secs = BTreeMap::new();
    let mut pages_all = 0;
    let mut speedup = BTreeMap::new();
    let secs = |id: &str| -> BTreeMap<u32, f64> {
        runs.get(id)
            .map(|r| r.iter().map(|x| (x.0, x.2)).collect())
            .unwrap_or_default()
    };
    for (id, label, _, _) in CONFIGS {
        let Some(r) = runs.get(id) else {
            let _ = writeln!(md, "| {label} | - | not run | - | - | - |");
            continue;
        };
        let med = median(r.iter().map(|x| x.2).collect());
        let pages = r.iter().map(|x| x.1).max().unwrap_or(0);
        pages_all = pages_all.max(pages);
        median_secs.insert(id.to_string(), med);
        let list = r
            .iter()
            .map(|x| format!("{:.2} / {:.2} / {:.2}", x.2, x.3, x.4))
            .collect::<Vec<_>>()
            .join("<br>");
        let ratio = (id != "zram")
            .then(|| Spread::paired(&secs("zram"), &secs(id)))
            .flatten();
        let _ = writeln!(
            md,
            "| {label} | {pages} | {list} | {med:.2} s | {:.0} | {} |",
            pages as f64 / med.max(1e-9),
            stats::cell(ratio.as_ref())
        );
        if let Some(r) = ratio {
            speedup.insert(id.to_string(), r);
        }
    }
    let _ = writeln!(
        md,
        "\nThe seed reported (Android phone, {{185072}} pages, sync vs async C zram): 3.09-3.47 s vs 2.29-2.49 s, \
         27 % faster."
    );
    let mut md = md.replace("{185072}", "185072");
    push_list(&mut md, "Errors in the VM", &errors);
    let _ = pages_all;
    Ok(SeedResult {
        markdown: md,
        median_secs,
        speedup,
    })
}

/// Latency histograms from the untimed runs with `zramctl top`: (name,
/// buckets as (low_ns, count)).
pub fn latency_series(dir: &Path) -> Vec<(String, Vec<(u64, u64)>)> {
    let mut out = Vec::new();
    let buckets = |v: &serde_json::Value| -> Vec<(u64, u64)> {
        v["buckets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| Some((b["low_ns"].as_u64()?, b["count"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (id, _, dev, _) in CONFIGS.iter().take(2) {
        let Ok(text) = fs::read_to_string(dir.join(format!("top-{id}.json"))) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let name = if *id == "zram" { "zram" } else { "rzram" };
        for d in v["devices"].as_array().into_iter().flatten() {
            if d["role"]["backing"]["of"] == *dev {
                out.push((
                    format!("{name}: backing-device write request"),
                    buckets(&d["latency"]["write"]),
                ));
            }
            if d["name"] == *dev && d["rzram"].is_object() {
                out.push((
                    "rzram: writeback per page (submit to end_io)".into(),
                    buckets(&d["rzram"]["wb_latency"]),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runs_skipping_top_runs() {
        let r =
            parse("zram 0 100 1.50 0.00 0.70\nzram top 100 2.0 0 1\nrzram-bio32 0 100 0.5 0 0.2\n")
                .unwrap();
        assert_eq!(r["zram"], [(0, 100, 1.5, 0.0, 0.7)]);
        assert_eq!(r.len(), 2);
        assert!(parse("zram 0 x 1 1 1\n").is_err());
    }
}

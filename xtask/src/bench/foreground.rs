//! `cargo xtask bench foreground`: what adaptive batching is for. A
//! foreground fio job (4K random reads and writes at a fixed rate, O_DIRECT,
//! the kind of I/O an app does on the same flash) runs on the VM's scratch
//! disk, next to the dm-linear slice that backs zram, in one VM run:
//!
//! 1. alone (no writeback);
//! 2. during idle writeback with upstream zram at batch 32;
//! 3. during idle writeback with rzram at a fixed batch 32 (32-page bios);
//! 4. during writeback by rzram driven by `zramctl daemon` (AIMD on the
//!    backing device's write p99, its target set to 1.2x the foreground's
//!    alone write p99 measured in step 1);
//!
//! and rzram's writeback alone at batch 32 (its unconstrained rate). For
//! each: the foreground's read and write latency p50/p99 (fio's completion
//! latency over the writeback's duration) and the writeback rate. Targets
//! (issue 15): with the daemon, the foreground p99 <= 1.2x alone while the
//! writeback keeps >= 70 % of rzram's unconstrained rate.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result};

use super::{BenchArgs, fio_json_file, run_in_vm, stats};
use crate::util::{progress, repo_root};

/// Foreground I/O per second (half reads, half writes).
pub const FG_RATE: u32 = 400;
/// Seconds of the foreground-alone run.
pub const ALONE_SECS: u32 = 15;
/// MiB of the scratch disk backing zram (the first slice); the foreground
/// uses the 256 MiB after it.
const SLICE_MIB: u32 = 512;

pub fn script(args: &BenchArgs) -> String {
    let data_mib = args.data_mib.max(64);
    format!(
        r#"set -u
R="$ZRAMCTL_RESULTS"
: > "$R/foreground.txt"
[ -e /sys/module/rzram ] || insmod "$ZRAMCTL_MODROOT/lib/modules/$ZRAMCTL_KERNEL_RELEASE/kernel/drivers/block/rzram/rzram.ko" num_devices=2 || exit 1
DISK="$ZRAMCTL_BACKING_DISK"
dmsetup remove fgbench 2>/dev/null
dmsetup create fgbench --table "0 {sectors} linear $DISK 0" || exit 1
BD=/dev/$(dmsetup info -c --noheadings -o blkdevname fgbench)
# Touch the whole disk once: no run pays for the host allocating blocks.
dd if=/dev/zero of="$DISK" bs=1M count={disk_mib} oflag=direct status=none || exit 1
{{ find /usr/share/perl /usr/bin -type f | sort | xargs cat 2>/dev/null; }} | head -c {data_mib}M > /tmp/data.bin
FG="--name=fg --filename=$DISK --offset={slice}M --size=256M --rw=randrw --rwmixread=50 --bs=4k --direct=1 --ioengine=psync --rate_iops={half},{half} --output-format=json"

fg_start() {{ # ID
  fio $FG --time_based --runtime=3600 > "$R/fg-$1.json" 2> "$R/fg-$1.err" &
  FIO=$!
  sleep 1
}}
fg_stop() {{
  kill -INT $FIO; wait $FIO
}}
prep() {{ # DEV BATCH BIO_PAGES|-
  S=/sys/block/$1
  echo 1 > $S/reset
  echo "$BD" > $S/backing_dev || exit 1
  echo 512M > $S/disksize
  echo 0 > $S/writeback_limit_enable
  echo "$2" > $S/writeback_batch_size
  [ "$3" != - ] && echo "$3" > $S/writeback_bio_pages
  dd if=/tmp/data.bin of=/dev/$1 bs=1M oflag=direct status=none
  echo all > $S/idle
}}
bd_writes() {{ set -- $(cat /sys/block/$1/bd_stat); echo $3; }}
timed_wb() {{ # ID DEV
  t0=$(date +%s%N)
  echo idle > /sys/block/$2/writeback || echo "$1: writeback failed"
  t1=$(date +%s%N)
  echo "$1 $(bd_writes $2) $((t1 - t0))" >> "$R/foreground.txt"
  echo "$1: $(bd_writes $2) pages in $(( (t1 - t0) / 1000000 )) ms"
}}

echo "=== foreground alone ({alone}s)"
fio $FG --time_based --runtime={alone} > "$R/fg-alone.json" 2> "$R/fg-alone.err"
echo "alone 0 {alone}000000000" >> "$R/foreground.txt"

echo "=== rzram batch 32 alone (unconstrained)"
prep rzram0 32 32
timed_wb unconstrained rzram0

echo "=== upstream zram batch 32 + foreground"
prep zram0 32 -
fg_start zram-b32
timed_wb zram-b32 zram0
fg_stop
echo 1 > /sys/block/zram0/reset

echo "=== rzram fixed batch 32 + foreground"
prep rzram0 32 32
fg_start rzram-b32
timed_wb rzram-b32 rzram0
fg_stop

echo "=== rzram driven by the daemon + foreground"
prep rzram0 32 32
echo 1 > /sys/block/rzram0/writeback_limit_enable
echo 0 > /sys/block/rzram0/writeback_limit
echo 0 > /sys/block/rzram0/writeback_limit_enable
# The daemon's target: 1.2x the foreground's alone write p99 (ms).
T=$(sed -n '/^{{/,$p' "$R/fg-alone.json" | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(max(0.5, 1.2*j["write"]["clat_ns"]["percentile"]["99.000000"]/1e6))')
echo "daemon target_p99_ms $T" | tee -a "$R/foreground.txt"
cat > /tmp/fg.toml <<EOF
[daemon]
interval_secs = 0.5
metrics_listen = "127.0.0.1:9478"
probes = "auto"
[policy]
period_secs = 1
min_interval_secs = 1
idle_age_initial_secs = 1
idle_age_floor_secs = 1
budget_per_day = "4096G"
budget_burst = "4G"
max_pages_per_round = 4096
batch_min = 1
batch_max = 64
batch_initial = 32
target_p99_ms = $T
[[device]]
name = "rzram0"
EOF
fg_start rzram-daemon
"$ZRAMCTL_BIN" daemon --config /tmp/fg.toml 2> "$R/daemon.log" &
DPID=$!
PAGES=$(( {data_mib} * 256 ))
t0=$(date +%s%N); first=0; last=0; prev=0; still=0
while :; do
  w=$(bd_writes rzram0); now=$(date +%s%N)
  [ "$w" -gt 0 ] && [ $first = 0 ] && first=$now
  if [ "$w" != "$prev" ]; then last=$now; still=0; prev=$w; else still=$((still + 1)); fi
  # Done: 95 % of the data out, or nothing new for 5 s, or 5 minutes.
  if [ "$w" -ge $((PAGES * 95 / 100)) ] || {{ [ $first != 0 ] && [ $still -ge 25 ]; }} || [ $((now - t0)) -gt 300000000000 ]; then break; fi
  sleep 0.2
done
fg_stop
kill -TERM $DPID; wait $DPID
[ $first = 0 ] && first=$t0 && last=$t0
echo "rzram-daemon $prev $((last - first))" >> "$R/foreground.txt"
echo "rzram-daemon: $prev pages in $(( (last - first) / 1000000 )) ms"
grep -c "batch size" "$R/daemon.log" | sed 's/^/daemon batch size changes: /'
echo 1 > /sys/block/rzram0/reset
dmsetup remove fgbench
"#,
        sectors = SLICE_MIB * 2048,
        slice = SLICE_MIB,
        disk_mib = SLICE_MIB + 256,
        half = FG_RATE / 2,
        alone = ALONE_SECS,
    )
}

/// One row: foreground latencies (read p50, read p99, write p50, write
/// p99, ms) and the writeback rate (pages/s).
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub id: String,
    pub fg: Option<[f64; 4]>,
    pub pages: u64,
    pub secs: f64,
}

impl Row {
    pub fn rate(&self) -> Option<f64> {
        (self.secs > 0.0 && self.pages > 0).then(|| self.pages as f64 / self.secs)
    }
}

fn fio_lat(path: &Path) -> Option<[f64; 4]> {
    let v = fio_json_file(path).ok()?;
    let j = &v["jobs"][0];
    let p = |dir: &str, q: &str| {
        j[dir]["clat_ns"]["percentile"][q]
            .as_f64()
            .map(|ns| ns / 1e6)
    };
    Some([
        p("read", "50.000000")?,
        p("read", "99.000000")?,
        p("write", "50.000000")?,
        p("write", "99.000000")?,
    ])
}

pub fn parse(dir: &Path) -> Result<(Vec<Row>, Option<f64>)> {
    let text = fs::read_to_string(dir.join("foreground.txt")).context("foreground.txt")?;
    let mut rows = Vec::new();
    let mut target = None;
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            ["daemon", "target_p99_ms", t] => target = t.parse().ok(),
            [id, pages, ns] => rows.push(Row {
                id: id.into(),
                fg: fio_lat(&dir.join(format!("fg-{id}.json"))),
                pages: pages.parse().unwrap_or(0),
                secs: ns.parse::<f64>().unwrap_or(0.0) / 1e9,
            }),
            _ => {}
        }
    }
    Ok((rows, target))
}

pub fn markdown(rows: &[Row], target: Option<f64>) -> String {
    let get = |id: &str| rows.iter().find(|r| r.id == id);
    let alone = get("alone").and_then(|r| r.fg);
    let unconstrained = get("unconstrained").and_then(Row::rate);
    let mut md = format!(
        "Foreground: fio 4K random reads and writes, {FG_RATE}/s (half each), O_DIRECT psync, on the VM's \
         scratch disk next to the 512 MiB dm-linear slice that backs zram; idle writeback of the same data set \
         on the slice meanwhile. Latency: fio completion latency over the writeback's duration. The daemon's \
         AIMD target is 1.2x the alone write p99{}. Under TCG: ratios, not absolute numbers, are what this shows.\n\n\
         | run | read p50 | read p99 | write p50 | write p99 | worst p99 / alone | writeback pages/s | / rzram unconstrained |\n\
         |---|---|---|---|---|---|---|---|\n",
        target.map_or(String::new(), |t| format!(" ({t:.1} ms)"))
    );
    for (id, label) in [
        ("alone", "foreground alone"),
        ("unconstrained", "rzram batch 32, no foreground"),
        ("zram-b32", "upstream zram, batch 32"),
        ("rzram-b32", "rzram, fixed batch 32 (32-page bios)"),
        ("rzram-daemon", "rzram driven by the daemon"),
    ] {
        let Some(r) = get(id) else {
            let _ = writeln!(md, "| {label} | not measured | | | | | | |");
            continue;
        };
        let lat = |i: usize| r.fg.map_or("-".into(), |l| format!("{:.2} ms", l[i]));
        let worst = match (r.fg, alone) {
            (Some(l), Some(a)) if id != "alone" => {
                format!("{:.2}x", (l[1] / a[1]).max(l[3] / a[3]))
            }
            _ => "-".into(),
        };
        let rate = r.rate();
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {worst} | {} | {} |",
            lat(0),
            lat(1),
            lat(2),
            lat(3),
            stats::num(rate, 0),
            match (rate, unconstrained) {
                (Some(a), Some(b)) if id != "alone" => format!("{:.0} %", 100.0 * a / b),
                _ => "-".into(),
            }
        );
    }
    md
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let results = repo_root().join("target/bench/foreground");
    if !args.report_only {
        progress("bench foreground: alone, zram b32, rzram b32, rzram + daemon, in one VM run");
        run_in_vm("foreground", &script(args))?;
    }
    let (rows, target) = parse(&results)?;
    let md = markdown(&rows, target);
    fs::write(repo_root().join("target/bench/foreground.md"), &md)?;
    println!("{md}");
    Ok(())
}

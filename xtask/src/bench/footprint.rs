//! eBPF per-event cost and the daemon's footprint: `zramctl daemon` (probes
//! on) manages rzram0 while fio reads it at a steady rate; its CPU time
//! from /proc/PID/stat and RSS from /proc/PID/status, the probes' cost from
//! the kernel's BPF stats through `zramctl top --once --json`. Also an idle
//! window (no I/O) as the baseline.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result};

/// (id, fio rate in 4K reads/s; 0 = no I/O).
pub const LEVELS: [(&str, u32); 2] = [("idle", 0), ("steady", 10_000)];
pub const SECS: u32 = 20;

pub fn script() -> String {
    let mut s = format!(
        r#"R="$ZRAMCTL_RESULTS"
[ -e /sys/module/rzram ] || insmod "$ZRAMCTL_MODROOT/lib/modules/$ZRAMCTL_KERNEL_RELEASE/kernel/drivers/block/rzram/rzram.ko" num_devices=2
S=/sys/block/rzram0
echo 1 > $S/reset
echo 256M > $S/disksize
fio --name=fill --filename=/dev/rzram0 --rw=write --bs=1M --size=128M --direct=1 --buffer_compress_percentage=50 \
  --refill_buffers --output=/dev/null
sysctl -qw kernel.bpf_stats_enabled=1
cat > /tmp/fp.toml <<EOF
[daemon]
interval_secs = 1
metrics_listen = "127.0.0.1:9477"
probes = "auto"
[policy]
period_secs = 10
[[device]]
name = "rzram0"
EOF
"$ZRAMCTL_BIN" daemon --config /tmp/fp.toml 2> "$R/daemon.log" &
DPID=$!
for i in $(seq 50); do grep -q "ready" "$R/daemon.log" 2>/dev/null && break; sleep 0.2; done
sleep 2
TCK=$(getconf CLK_TCK)
echo "clk_tck $TCK" > "$R/footprint.txt"
cpu() {{ set -- $(cut -d' ' -f14,15 /proc/$DPID/stat); echo $(( $1 + $2 )); }}
level() {{ # ID RATE
  "$ZRAMCTL_BIN" top rzram0 --once --json --interval {SECS} > "$R/top-$1.json" 2> "$R/top-$1.err" &
  TOP=$!
  sleep 1
  c0=$(cpu); t0=$(date +%s%N)
  if [ "$2" -gt 0 ]; then
    fio --name=$1 --filename=/dev/rzram0 --rw=randread --bs=4k --size=128M --direct=1 --rate_iops=$2 \
      --runtime={run} --time_based --output-format=json > "$R/fio-$1.json"
  else
    sleep {run}
  fi
  c1=$(cpu); t1=$(date +%s%N)
  wait $TOP
  rss=$(awk '/^VmRSS/ {{print $2}}' /proc/$DPID/status)
  hwm=$(awk '/^VmHWM/ {{print $2}}' /proc/$DPID/status)
  echo "$1 $2 $((c1 - c0)) $((t1 - t0)) $rss $hwm" >> "$R/footprint.txt"
  echo "footprint: $1: daemon $((c1 - c0)) ticks in $(( (t1 - t0) / 1000000 )) ms, VmRSS $rss kB, VmHWM $hwm kB"
}}
"#,
        run = SECS - 2
    );
    for (id, rate) in LEVELS {
        let _ = writeln!(s, "level {id} {rate}");
    }
    s.push_str("kill -TERM $DPID; wait $DPID\necho 1 > $S/reset\n");
    s
}

/// One level's figures.
#[derive(Default, Clone)]
pub struct Level {
    pub id: String,
    pub rate: u32,
    pub cpu_percent: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// Slot accesses per second seen by the probes (reads + writes).
    pub accesses_per_sec: f64,
    /// (program, ns/event, runs) from the kernel's BPF stats.
    pub costs: Vec<(String, f64, u64)>,
}

pub fn parse(dir: &Path) -> Result<Vec<Level>> {
    let text = fs::read_to_string(dir.join("footprint.txt")).context("footprint.txt")?;
    let mut tck = 100.0;
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            ["clk_tck", t] => tck = t.parse().unwrap_or(100.0),
            [id, rate, ticks, ns, rss, hwm] => {
                let ticks: f64 = ticks.parse().unwrap_or(0.0);
                let ns: f64 = ns.parse().unwrap_or(1.0);
                let mut lv = Level {
                    id: id.into(),
                    rate: rate.parse().unwrap_or(0),
                    cpu_percent: 100.0 * (ticks / tck) / (ns / 1e9),
                    rss_kib: rss.parse().unwrap_or(0),
                    hwm_kib: hwm.parse().unwrap_or(0),
                    ..Default::default()
                };
                if let Ok(t) = fs::read_to_string(dir.join(format!("top-{id}.json")))
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&t)
                {
                    for d in v["devices"].as_array().into_iter().flatten() {
                        if d["name"] == "rzram0" {
                            let r = &d["rates"]["pages_per_sec"];
                            lv.accesses_per_sec = r["read"].as_f64().unwrap_or(0.0)
                                + r["write"].as_f64().unwrap_or(0.0);
                        }
                    }
                    for p in v["programs"].as_array().into_iter().flatten() {
                        if let (Some(n), Some(c), Some(r)) = (
                            p["program"].as_str(),
                            p["ns_per_event"].as_f64(),
                            p["run_count"].as_u64(),
                        ) {
                            lv.costs.push((n.to_string(), c, r));
                        }
                    }
                }
                out.push(lv);
            }
            _ => {}
        }
    }
    Ok(out)
}

pub fn markdown(levels: &[Level]) -> String {
    let mut md = format!(
        "`zramctl daemon` (debug build, eBPF probes on, 1 s steps) managing rzram0 (256 MiB, 128 MiB stored) for \
         {SECS} s per level; `fio` 4K random reads at a fixed rate (O_DIRECT, psync) for the steady level; CPU from \
         /proc/PID/stat (utime + stime), memory from /proc/PID/status; probe cost from the kernel's BPF stats \
         (`kernel.bpf_stats_enabled`) read by `zramctl top --once --json` over the same window. \
         Targets (DESIGN.md): ≤ 1 % of a core and ≤ 20 MiB RSS at 50k accesses/s, ≤ 150 ns per access event.\n\n\
         | level | fio rate | slot accesses/s (probes) | daemon CPU | VmRSS | VmHWM |\n|---|---|---|---|---|---|\n"
    );
    for l in levels {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.2} % | {:.1} MiB | {:.1} MiB |",
            l.id,
            if l.rate == 0 {
                "none".into()
            } else {
                format!("{}/s", l.rate)
            },
            l.accesses_per_sec,
            l.cpu_percent,
            l.rss_kib as f64 / 1024.0,
            l.hwm_kib as f64 / 1024.0
        );
    }
    if let Some(l) = levels.iter().rev().find(|l| !l.costs.is_empty()) {
        let _ = writeln!(
            md,
            "\nProbe cost at the {} level (kernel BPF stats):\n\n| program | runs | ns/event |\n|---|---|---|",
            l.id
        );
        for (n, c, r) in &l.costs {
            let _ = writeln!(md, "| {n} | {r} | {c:.0} |");
        }
    }
    md
}

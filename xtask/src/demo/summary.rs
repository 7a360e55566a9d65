//! Step 4 of the demo's guest: the summary, and the report files
//! (`summary.md`, `summary.json`, `timeline.tsv`).

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::Result;

use super::{
    BURST_MIB, DEV, RATE_MIB, SLICE_MIB,
    observe::{Tick, mib},
    workload::PAGE,
};

/// What the summary is made of.
pub(super) struct Summary<'a> {
    pub(super) mib: u64,
    pub(super) secs: u64,
    pub(super) hot: u64,
    pub(super) cg_max: u64,
    pub(super) guest_secs: f64,
    pub(super) held: Tick,
    pub(super) ticks: &'a [Tick],
    pub(super) rounds: usize,
    pub(super) top: Option<&'a serde_json::Value>,
    pub(super) last_page: &'a str,
    pub(super) workload_last_line: String,
}

/// Prints the summary and writes the report files into `r`.
pub(super) fn write_summary(r: &Path, x: &Summary<'_>) -> Result<()> {
    let held = &x.held;
    let ticks = x.ticks;
    let last = ticks.last().cloned().unwrap_or_default();
    let top = x.top;
    let (hot, cg_max, rounds, elapsed) = (x.hot, x.cg_max, x.rounds, x.guest_secs);
    let rz = top.and_then(|v| {
        v["devices"]
            .as_array()?
            .iter()
            .find(|d| d["name"] == DEV)
            .map(|d| d["rzram"].clone())
    });
    let ns = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_f64)
            .map_or("-".into(), |n| {
                if n >= 1e6 {
                    format!("{:.2} ms", n / 1e6)
                } else {
                    format!("{:.1} us", n / 1e3)
                }
            })
    };
    let wb_p50 = ns(rz.as_ref().map(|x| &x["wb_latency"]["p50_ns"]));
    let wb_p99 = ns(rz.as_ref().map(|x| &x["wb_latency"]["p99_ns"]));
    let rz_refaults = rz.as_ref().and_then(|x| x["total"]["refaults"].as_u64());
    let rz_wb = rz
        .as_ref()
        .and_then(|x| x["total"]["wb_completed"].as_u64());
    let refault_p50 = rz
        .as_ref()
        .and_then(|x| x["refault_age"]["p50_secs"].as_f64())
        .map_or("-".into(), |s| format!("{s:.1} s"));
    let costs: Vec<String> = top
        .and_then(|v| v["programs"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some(format!(
                "{} {:.0} ns/event ({} runs)",
                p["program"].as_str()?,
                p["ns_per_event"].as_f64()?,
                p["run_count"].as_u64()?
            ))
        })
        .collect();
    let saved = held.swap_used - held.mem_used;
    let budget_allowed = (BURST_MIB << 20) as f64 + (RATE_MIB << 20) as f64 * last.t.max(0.0);
    let written = last.bd_writes as f64 * PAGE as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# cargo xtask demo: summary\n\n\
         Our Linux 7.3 under QEMU (TCG), rzram0 (lz4, 512 MiB) with a {SLICE_MIB} MiB dm-linear slice of the VM disk \
         as backing device and swap; `zramctl daemon` with eBPF probes; a {} MiB process ({hot} MiB hot) in a \
         {cg_max} MiB memory cgroup for {} s. Guest time {:.0} s.\n",
        x.mib, x.secs, elapsed
    );
    let _ = writeln!(s, "| what | value |\n|---|---|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "| {k} | {v} |");
    };
    row(
        "swapped out (end of hold)",
        format!("{} in swap on {DEV}", mib(held.swap_used)),
    );
    row(
        "RAM rzram used for it",
        format!(
            "{} ({} compressed, ratio {:.2}x in RAM)",
            mib(held.mem_used),
            mib(held.compr),
            held.ram_ratio()
        ),
    );
    row(
        "memory saved",
        format!(
            "{} ({:.0} % of what was swapped out); {} of it on the backing device",
            mib(saved.max(0.0)),
            if held.swap_used > 0.0 {
                100.0 * saved / held.swap_used
            } else {
                0.0
            },
            mib(held.bd_count as f64 * PAGE as f64)
        ),
    );
    row(
        "pages written back",
        format!(
            "{} ({}) in {rounds} daemon rounds; the daemon counted {:.0}; rzram tracepoints saw {}",
            last.bd_writes,
            mib(written),
            last.wb_pages,
            rz_wb.map_or("-".into(), |n| n.to_string())
        ),
    );
    row(
        "budget",
        format!(
            "{} allowed ({BURST_MIB} MiB burst + {RATE_MIB} MiB/s x {:.0} s), {} used ({:.0} %); the bucket was empty at {} of {} samples",
            mib(budget_allowed),
            last.t,
            mib(written),
            100.0 * written / budget_allowed,
            ticks.iter().filter(|t| t.budget_left < 65536.0).count(),
            ticks.len()
        ),
    );
    row(
        "refaults",
        format!(
            "{} (bd_stat bd_reads); rzram tracepoints: {}, p50 time from writeback to refault {refault_p50}",
            last.bd_reads,
            rz_refaults.map_or("-".into(), |n| n.to_string())
        ),
    );
    row(
        "writeback latency (rzram, submit to end_io, per page)",
        format!("p50 {wb_p50}, p99 {wb_p99}"),
    );
    row(
        "batch size",
        format!(
            "{} -> {} (min {}, max {} over the run)",
            ticks.first().map_or(0, |t| t.batch),
            last.batch,
            ticks.iter().map(|t| t.batch).min().unwrap_or(0),
            ticks.iter().map(|t| t.batch).max().unwrap_or(0)
        ),
    );
    row(
        "idle-age threshold",
        format!(
            "{:.0} s -> {:.0} s (max {:.0} s)",
            ticks.first().map_or(0.0, |t| t.idle_age),
            last.idle_age,
            ticks.iter().map(|t| t.idle_age).fold(0.0, f64::max)
        ),
    );
    row("eBPF probe cost", costs.join("; "));
    row(
        "/metrics",
        format!(
            "answered every scrape: {} ({} bytes last)",
            ticks.iter().all(|t| t.metrics_bytes > 0),
            x.last_page.len()
        ),
    );
    row("workload", x.workload_last_line.clone());
    fs::write(r.join("summary.md"), &s)?;
    let mut tsv = String::from(
        "t_secs\tswap_bytes\tzram_mem_used\torig\tcompr\tidle_slots\tbd_writes\tbd_reads\tbudget_left\tbatch\tidle_age\tbacking_p99_ms\n",
    );
    for t in ticks {
        let _ = writeln!(
            tsv,
            "{:.1}\t{:.0}\t{:.0}\t{:.0}\t{:.0}\t{:.0}\t{}\t{}\t{:.0}\t{}\t{:.0}\t{}",
            t.t,
            t.swap_used,
            t.mem_used,
            t.orig,
            t.compr,
            t.idle_slots,
            t.bd_writes,
            t.bd_reads,
            t.budget_left,
            t.batch,
            t.idle_age,
            t.p99_ms.map_or(String::new(), |p| format!("{p:.2}"))
        );
    }
    fs::write(r.join("timeline.tsv"), tsv)?;
    let mut j = BTreeMap::new();
    j.insert("swapped_bytes", held.swap_used);
    j.insert("zram_ram_bytes", held.mem_used);
    j.insert("memory_saved_bytes", saved);
    j.insert("pages_written_back", last.bd_writes as f64);
    j.insert("refaults", last.bd_reads as f64);
    j.insert("budget_allowed_bytes", budget_allowed);
    j.insert("guest_secs", elapsed);
    fs::write(
        r.join("summary.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "figures": j,
            "rzram": rz,
            "programs": top.map(|v| v["programs"].clone()),
        }))?,
    )?;
    println!("\n=== 4. summary ===\n{s}");
    Ok(())
}

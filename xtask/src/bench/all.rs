//! `cargo xtask bench` (`all`): the RAM tier, writeback by batch size,
//! packed writeback, the seed's experiment in one VM run (the daemon's footprint is measured on
//! the host, `cargo xtask bench footprint`, and shown here from its last run);
//! a Markdown report with SVG plots in docs/bench/.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Result, bail};

use super::{
    BenchArgs, env_value, footprint, foreground, packed, plot, ram, run_in_vm_with, seed,
    stats::{self, Spread, num},
    writeback,
};
use crate::util::{progress, repo_root};

/// Parts in the order they run: (name, script).
fn parts(args: &BenchArgs) -> Vec<(&'static str, String)> {
    vec![
        ("ram", ram::script(args)),
        ("writeback", writeback::script(args)),
        ("packed", packed::script(args)),
        ("seed", seed::script(args)),
    ]
}

/// One guest script running each part in its own results subdir; a
/// failing part is noted and the next one still runs.
fn script(parts: &[(&str, String)]) -> Result<String> {
    let dir = repo_root().join("target/bench/parts");
    fs::create_dir_all(&dir)?;
    let mut s = String::from("BASE=\"$ZRAMCTL_RESULTS\"\nrc=0\n");
    for (name, body) in parts {
        let path = dir.join(format!("{name}.sh"));
        fs::write(&path, body)?;
        let _ = writeln!(
            s,
            "echo \"=== bench part {name} ($(date +%T)) ===\"\n\
             mkdir -p \"$BASE/{name}\"\n\
             ZRAMCTL_RESULTS=\"$BASE/{name}\" bash {} || {{ echo \"bench part {name} failed\"; echo {name} >> \"$BASE/failed.txt\"; rc=1; }}",
            path.display()
        );
    }
    s.push_str("exit $rc\n");
    Ok(s)
}

/// `cargo xtask bench seed`: one part in its own VM run.
pub fn single(args: &BenchArgs) -> Result<()> {
    let name = args.what.as_str();
    let results = repo_root().join("target/bench").join(name);
    if !args.report_only {
        let body = seed::script(args);
        run_in_vm_with(
            name,
            &format!("bash -c {}", shell_quote(&body)),
            seed::disk_mib(args),
        )?;
    }
    let md = seed::report(args, &results)?.markdown;
    println!("{md}");
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let results = repo_root().join("target/bench/all");
    if !args.report_only {
        // Built (or found built) first: the time below is the VM run's.
        crate::kernel::build(&crate::kernel::KernelArgs::default())?;
    }
    let t = std::time::Instant::now();
    if !args.report_only {
        let wb_rows = writeback::rows().len();
        progress(&format!(
            "bench: one VM run: ram ({} rounds x 2 devices x 2 ops x {}s fio), writeback ({} rounds x {wb_rows} rows of {} MiB, 2 rows once more traced, + fio), packed ({} rounds x {} rows of {} MiB + one-page writebacks), seed ({} runs x {} rows, 3 x {} MiB); about 20 min under TCG",
            args.rounds,
            args.runtime,
            args.rounds,
            args.data_mib,
            args.rounds,
            packed::ROWS.len(),
            args.packed_mib.max(2),
            args.seed_runs,
            seed::CONFIGS.len(),
            if args.seed_mib == 0 {
                166
            } else {
                args.seed_mib
            }
        ));
        let s = script(&parts(args))?;
        // A failed part is reported below; the run itself goes on.
        let disk = seed::disk_mib(args).max(packed::disk_mib(args));
        if let Err(e) = run_in_vm_with("all", &s, disk) {
            progress(&format!("the VM run reported a failure: {e:#}"));
        }
        let secs = t.elapsed().as_secs_f64();
        progress(&format!("VM run done in {secs:.0}s"));
        fs::write(results.join("vm_secs.txt"), format!("{secs:.0}\n"))?;
    }
    report(args, &results)
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => format!("**{:.2}x**", a / b),
        _ => "-".into(),
    }
}

/// One headline row: measure, rzram, upstream, ratio spread, target.
fn headline_row(
    t: &mut String,
    measure: &str,
    rz: String,
    z: String,
    s: Option<&Spread>,
    target: Option<f64>,
) {
    let _ = writeln!(
        t,
        "| {measure} | {rz} | {z} | {} | {} | {} |",
        stats::cell(s),
        target.map_or("-".into(), |t| format!("≥ {t:.1}x")),
        stats::verdict(s, target)
    );
}

fn report(args: &BenchArgs, results: &Path) -> Result<()> {
    let out = repo_root().join("docs/bench");
    fs::create_dir_all(&out)?;
    let failed = fs::read_to_string(results.join("failed.txt")).unwrap_or_default();
    let vm_secs: Option<f64> = fs::read_to_string(results.join("vm_secs.txt"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let env = fs::read_to_string(results.join("writeback/env.txt")).unwrap_or_default();
    let env_v = |k: &str| env_value(&env, k).unwrap_or("?");
    let ram = ram::report(args, &results.join("ram")).ok();
    let wb = writeback::report_rates(args, &results.join("writeback")).ok();
    let pk = packed::report(args, &results.join("packed")).ok();
    let seed = seed::report(args, &results.join("seed")).ok();
    // `cargo xtask bench foreground`'s last run, if any.
    let fg = foreground::parse(&repo_root().join("target/bench/foreground")).ok();
    // The host's footprint run (`cargo xtask bench footprint`), if any.
    let fp = footprint::load(&repo_root().join("target/bench/footprint")).ok();

    // The headline table: every ratio is the median of per-round ratios
    // with the median's confidence interval; a target is met only by its
    // low end.
    let mut t = String::from(
        "| measure | rzram (median) | upstream zram (median) | rzram vs upstream: median (confidence interval of the median; min-max of rounds) | target | met? |\n|---|---|---|---|---|---|\n",
    );
    if let Some((_, m)) = &ram {
        for (op, label) in [
            ("randwrite", "4K random write IOPS (RAM tier)"),
            ("randread", "4K random read IOPS (RAM tier)"),
        ] {
            headline_row(
                &mut t,
                label,
                num(m.median("rzram0", op), 0),
                num(m.median("zram0", op), 0),
                m.ratio.get(op),
                Some(1.0),
            );
        }
    }
    if let Some((_, _, r)) = &wb {
        for (label, rz, z) in [
            (
                "idle writeback pages/s, batch 1, one-page bios",
                "rzram-b1-bio1",
                "zram-b1",
            ),
            (
                "idle writeback pages/s, batch 32, one-page bios",
                "rzram-b32-bio1",
                "zram-b32",
            ),
            (
                "idle writeback pages/s, batch 1, 32-page bios",
                "rzram-b1-bio32",
                "zram-b1",
            ),
            (
                "idle writeback pages/s, batch 32, 32-page bios",
                "rzram-b32-bio32",
                "zram-b32",
            ),
        ] {
            let target = writeback::TARGETS
                .iter()
                .find(|(id, _)| *id == rz)
                .map(|x| x.1);
            headline_row(
                &mut t,
                label,
                num(r.median(rz), 0),
                num(r.median(z), 0),
                r.vs(rz, z).as_ref(),
                target,
            );
        }
        for (label, rz) in [
            (
                "guest CPU µs per written-back page, batch 32, one-page bios (upstream / rzram)",
                "rzram-b32-bio1",
            ),
            (
                "guest CPU µs per written-back page, batch 32, 32-page bios (upstream / rzram)",
                "rzram-b32-bio32",
            ),
        ] {
            headline_row(
                &mut t,
                label,
                num(r.cpu_median(rz), 1),
                num(r.cpu_median("zram-b32"), 1),
                r.cpu_vs(rz, "zram-b32").as_ref(),
                Some(1.0),
            );
        }
        let [up, rz] = writeback::TRACED;
        if r.traced.contains_key(up) {
            let gap = |id| r.traced_median(id, |x| x.gap_us);
            headline_row(
                &mut t,
                "driver µs per page from a completion to the next issue, batch 1, one-page bios, traced (upstream / rzram; the rest of a page's time is the device's)",
                num(gap(rz), 1),
                num(gap(up), 1),
                r.gap_vs(rz, up).as_ref(),
                None,
            );
        }
    }
    if let Some((_, _, p)) = &pk {
        let bytes = |id| {
            p.median(id, "bytes_per_page")
                .map_or("-".into(), |v| format!("{v:.0} B"))
        };
        headline_row(
            &mut t,
            "backing bytes written per written-back page, rzram packed_writeback vs upstream compressed_writeback (upstream bytes / rzram bytes)",
            bytes(packed::PACKED),
            bytes("zram-compressed"),
            p.vs("zram-compressed", packed::PACKED, "bytes_per_page")
                .as_ref(),
            None,
        );
        let ms = |dev| {
            p.median(dev, "call_ms")
                .map_or("-".into(), |v| format!("{v:.2} ms"))
        };
        headline_row(
            &mut t,
            "one-page writeback call (`echo page_index=N > writeback`), plain (upstream time / rzram time)",
            ms("rzram0"),
            ms("zram0"),
            p.vs("zram0", "rzram0", "call_ms").as_ref(),
            None,
        );
    }
    if let Some(s) = &seed {
        let z = s.median_secs.get("zram").copied();
        for (id, label) in [
            (
                "rzram-bio32",
                "seed experiment: `time echo idle > writeback`, median s, bio pages 32 (upstream s / rzram s)",
            ),
            (
                "rzram-bio1",
                "seed experiment, median s, bio pages 1 (upstream s / rzram s)",
            ),
        ] {
            let target = seed::TARGETS.iter().find(|(t, _)| *t == id).map(|x| x.1);
            headline_row(
                &mut t,
                label,
                num(s.median_secs.get(id).copied(), 2),
                num(z, 2),
                s.speedup.get(id),
                target,
            );
        }
    }
    let mut refs = String::new();
    if let Some((_, _, r)) = &wb {
        let seq = r.device.get("seq-qd32").copied();
        let rand = r.device.get("rand-qd32").copied();
        let _ = writeln!(
            refs,
            "References (one fio run each on the backing slice, not paired): device 4K sequential write QD32 {} IOPS, \
             4K random write QD32 {} IOPS; medians rzram batch 32 (32-page bios) / device seq {}, upstream batch 32 / \
             device seq {}.\n",
            num(seq, 0),
            num(rand, 0),
            fmt_ratio(r.median("rzram-b32-bio32"), seq),
            fmt_ratio(r.median("zram-b32"), seq),
        );
    }
    if let Some(cells) = &fp
        && let Some(c) = cells
            .iter()
            .filter(|c| c.rate > 0)
            .max_by_key(|c| c.size_mib)
    {
        let _ = writeln!(
            refs,
            "Daemon (host, `cargo xtask bench footprint`'s last run): {:.2} % of a core at {:.0} slot accesses/s, \
             {} MiB disk, {} (target ≤ 1 %); VmRSS / VmHWM {:.1} / {:.1} MiB (target ≤ 16 MiB).\n",
            c.cpu_percent,
            c.fio_iops,
            c.size_mib,
            c.config,
            c.rss_kib as f64 / 1024.0,
            c.hwm_kib as f64 / 1024.0,
        );
    }
    t.push('\n');
    t.push_str(&refs);

    // Plots.
    let mut plots = String::new();
    if let Some((_, _, r)) = &wb {
        let series = |prefix: &str, suffix: &str| -> Vec<(f64, f64)> {
            writeback::BATCHES
                .iter()
                .filter_map(|&b| {
                    r.median(&format!("{prefix}{b}{suffix}"))
                        .map(|x| (f64::from(b), x))
                })
                .collect()
        };
        let mut s = vec![
            (
                "rzram, 32-page bios".to_string(),
                series("rzram-b", "-bio32"),
            ),
            ("upstream zram".to_string(), series("zram-b", "")),
        ];
        if let Some(&seq) = r.device.get("seq-qd32") {
            s.push((
                "device: fio 4K seq write QD32".into(),
                writeback::BATCHES
                    .iter()
                    .map(|&b| (f64::from(b), seq))
                    .collect(),
            ));
        }
        plot::log2_lines(
            &out.join("writeback-batch.svg"),
            "Idle writeback rate by writeback_batch_size (TCG guest)",
            "writeback_batch_size",
            "pages/s",
            &s,
        )?;
        plots.push_str("![writeback pages/s by batch size](writeback-batch.svg)\n\n");
    }
    let lat = seed::latency_series(&results.join("seed"));
    if !lat.is_empty() {
        plot::latency_hists(
            &out.join("writeback-latency.svg"),
            "Latency during idle writeback (seed experiment, batch 32)",
            &lat,
        )?;
        plots.push_str("![latency histograms during idle writeback](writeback-latency.svg)\n\n");
    }

    let mut md = format!(
        "# zramctl benchmark report\n\n\
         Made by `cargo xtask bench` in one VM run: our Linux 7.3 ({}) under **QEMU TCG (software emulation, no KVM)** \
         with {} vCPUs ({}), on this project's 2-core machine with other work alongside. Under TCG absolute \
         numbers are far below hardware and noisy; the ratios, measured side by side in the same run, are what this \
         report shows. Every rzram / upstream comparison runs in {} interleaved rounds (A/B alternating which goes \
         first, the same data, fresh devices each round); each round gives one ratio, and a ratio is shown as the \
         median of the rounds with a confidence interval for that median: the exact, distribution-free one from \
         order statistics (sorted, the k-th lowest to the k-th highest round, for the largest k whose chance of \
         missing the median is at most 5 %; each round falls above or below the median with probability 1/2; \
         for 9 rounds the second lowest to the second highest, 96 %; below 6 rounds the min-max, whose coverage \
         is stated), and the min-max of the rounds. A target counts as met only when the interval's low end \
         meets it. Nothing here is asserted: a benchmark never fails on a number.\n\n\
         ## Headline\n\n{t}\n{plots}",
        env_v("kernel"),
        env_v("cpus"),
        env_v("cpu"),
        args.rounds,
    );
    let console = fs::read_to_string(results.join("console.log")).unwrap_or_default();
    if let Some(line) = console
        .lines()
        .find(|l| l.contains("Kernel panic") || l.contains("BUG:"))
    {
        let _ = writeln!(
            md,
            "**The VM run ended early: the guest kernel failed** (`{}`; the whole oops is in \
             target/bench/all/console.log). Parts or rows without numbers below were not measured.\n",
            line.trim()
        );
    }
    if !failed.trim().is_empty() {
        let _ = writeln!(
            md,
            "**Parts that failed in this run:** {} (see target/bench/all/console.log).\n",
            failed.split_whitespace().collect::<Vec<_>>().join(", ")
        );
    }
    // A part of this VM run that gave no result failed; the two parts with
    // runs of their own say which command makes them.
    let failed_part = || "Not measured in this run (the part failed).".to_string();
    let section = |md: &mut String, title: &str, body: Option<String>, missing: String| {
        let _ = writeln!(md, "## {title}\n\n{}\n", body.unwrap_or(missing));
    };
    let own_run = |cmd: &str, dir: &str| {
        format!(
            "Not in this report: `{cmd}` is a run of its own, not part of this VM run, and {dir} holds no \
             result of it. Run it, then `cargo xtask bench --report-only`."
        )
    };
    section(
        &mut md,
        "RAM tier",
        ram.as_ref()
            .map(|(t, _)| t.trim_start_matches("# bench ram\n\n").to_string()),
        failed_part(),
    );
    section(
        &mut md,
        "Writeback",
        wb.as_ref()
            .map(|(t, _, _)| t.trim_start_matches("# bench writeback\n\n").to_string()),
        failed_part(),
    );
    section(
        &mut md,
        "Packed writeback (rzram's packed_writeback)",
        pk.as_ref()
            .map(|(t, _, _)| t.trim_start_matches("# bench packed\n\n").to_string()),
        failed_part(),
    );
    section(
        &mut md,
        "The seed's experiment",
        seed.as_ref().map(|s| s.markdown.clone()),
        failed_part(),
    );
    section(
        &mut md,
        "Foreground protection (what adaptive batching is for)",
        fg.as_ref().map(|(rows, t)| foreground::markdown(rows, *t)),
        own_run("cargo xtask bench foreground", "target/bench/foreground"),
    );
    section(
        &mut md,
        "Daemon footprint and eBPF cost (host)",
        fp.as_ref().map(|c| {
            format!(
                "(Measured on the host by `cargo xtask bench footprint`, not in this VM run.)\n\n{}",
                footprint::markdown(c)
            )
        }),
        own_run("cargo xtask bench footprint", "target/bench/footprint")
            + " Its last recorded run is in [FOOTPRINT.md](FOOTPRINT.md).",
    );
    let _ = writeln!(
        md,
        "## Reproducing\n\n`cargo xtask bench` ({} for this report's VM run: boot, the four parts, shutdown; the kernel already built); \
         `--report-only` re-renders this file from `target/bench/all`; `cargo xtask bench ram|writeback|packed|seed|footprint` \
         runs one part alone.",
        vm_secs.map_or("time not recorded".into(), |s| format!(
            "{:.0} min {:.0} s",
            (s / 60.0).floor(),
            s % 60.0
        ))
    );
    fs::write(out.join("REPORT.md"), &md)?;
    println!("{md}");
    progress(&format!(
        "report: {} (plots beside it); raw results in {}",
        out.join("REPORT.md").display(),
        results.display()
    ));
    if wb.is_none() && ram.is_none() && pk.is_none() && seed.is_none() {
        bail!("no part of the benchmark produced results");
    }
    Ok(())
}

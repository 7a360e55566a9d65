//! `cargo xtask bench` (`all`): the RAM tier, writeback by batch size, the
//! seed's experiment in one VM run (the daemon's footprint is measured on
//! the host, `cargo xtask bench footprint`, and shown here from its last run);
//! a Markdown report with SVG plots in docs/bench/.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Result, bail};

use super::{
    BenchArgs, footprint, foreground, plot, ram_report, ram_script, run_in_vm_with, seed, writeback,
};
use crate::util::{progress, repo_root};

/// Parts in the order they run: (name, script).
fn parts(args: &BenchArgs) -> Vec<(&'static str, String)> {
    vec![
        ("ram", ram_script(args)),
        ("writeback", writeback::script(args)),
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
    let t = std::time::Instant::now();
    if !args.report_only {
        let wb_rows = writeback::rows().len();
        progress(&format!(
            "bench: one VM run: ram ({} rounds x 2 devices x 2 ops x {}s fio), writeback ({} rounds x {wb_rows} rows of {} MiB + fio), seed ({} runs x {} rows, 3 x {} MiB); about 15 min under TCG",
            args.rounds,
            args.runtime,
            args.rounds,
            args.data_mib,
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
        if let Err(e) = run_in_vm_with("all", &s, seed::disk_mib(args)) {
            progress(&format!("the VM run reported a failure: {e:#}"));
        }
        progress(&format!("VM run done in {:.0}s", t.elapsed().as_secs_f64()));
    }
    report(args, &results)
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => format!("**{:.2}x**", a / b),
        _ => "-".into(),
    }
}

fn fmt(v: Option<f64>, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}{unit}"))
}

fn report(args: &BenchArgs, results: &Path) -> Result<()> {
    let out = repo_root().join("docs/bench");
    fs::create_dir_all(&out)?;
    let failed = fs::read_to_string(results.join("failed.txt")).unwrap_or_default();
    let env = fs::read_to_string(results.join("writeback/env.txt")).unwrap_or_default();
    let env_v = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
            .unwrap_or("?")
            .to_string()
    };
    let ram = ram_report(args, &results.join("ram")).ok();
    let wb = writeback::report_rates(args, &results.join("writeback")).ok();
    let seed = seed::report(args, &results.join("seed")).ok();
    // `cargo xtask bench foreground`'s last run, if any.
    let fg = foreground::parse(&repo_root().join("target/bench/foreground")).ok();
    // The host's footprint run (`cargo xtask bench footprint`), if any.
    let fp = footprint::load(&repo_root().join("target/bench/footprint")).ok();

    // The headline table.
    let mut t = String::from(
        "| measure | rzram | upstream zram | rzram / zram | other reference | rzram / reference |\n|---|---|---|---|---|---|\n",
    );
    if let Some((_, m)) = &ram {
        for (i, op) in [
            "4K random write IOPS (RAM tier)",
            "4K random read IOPS (RAM tier)",
        ]
        .iter()
        .enumerate()
        {
            let _ = writeln!(
                t,
                "| {op} | {:.0} | {:.0} | {} | - | - |",
                m[1][i],
                m[0][i],
                fmt_ratio(Some(m[1][i]), Some(m[0][i]))
            );
        }
    }
    if let Some((_, _, r)) = &wb {
        let g = |id: &str| r.rows.get(id).map(|x| x.0);
        let seq = r.device.get("seq-qd32").copied();
        let rand = r.device.get("rand-qd32").copied();
        for (label, rz, z) in [
            (
                "idle writeback pages/s, batch 32",
                "rzram-b32-bio32",
                "zram-b32",
            ),
            (
                "idle writeback pages/s, batch 32, one-page bios",
                "rzram-b32-bio1",
                "zram-b32",
            ),
            (
                "idle writeback pages/s, batch 1",
                "rzram-b1-bio32",
                "zram-b1",
            ),
            (
                "idle writeback pages/s, batch 64",
                "rzram-b64-bio32",
                "zram-b64",
            ),
        ] {
            let _ = writeln!(
                t,
                "| {label} | {} | {} | {} | device 4K seq write QD32 (fio): {} IOPS | {} |",
                fmt(g(rz), ""),
                fmt(g(z), ""),
                fmt_ratio(g(rz), g(z)),
                fmt(seq, ""),
                fmt_ratio(g(rz), seq)
            );
        }
        let _ = writeln!(
            t,
            "| (upstream zram batch 32 vs the device) | - | {} | - | device 4K random write QD32: {} IOPS | zram: {} of seq, {} of rand |",
            fmt(g("zram-b32"), ""),
            fmt(rand, ""),
            fmt_ratio(g("zram-b32"), seq),
            fmt_ratio(g("zram-b32"), rand)
        );
    }
    if let Some(s) = &seed {
        let z = s.median_secs.get("zram").copied();
        for (id, label) in [
            (
                "rzram-bio32",
                "seed experiment: `time echo idle > writeback`, median s (bio pages 32)",
            ),
            ("rzram-bio1", "seed experiment, median s (bio pages 1)"),
        ] {
            let rz = s.median_secs.get(id).copied();
            let _ = writeln!(
                t,
                "| {label} | {} | {} | {} (zram s / rzram s) | - | - |",
                rz.map_or("-".into(), |v| format!("{v:.2}")),
                z.map_or("-".into(), |v| format!("{v:.2}")),
                fmt_ratio(z, rz)
            );
        }
    }
    if let Some(cells) = &fp
        && let Some(c) = cells
            .iter()
            .filter(|c| c.rate > 0)
            .max_by_key(|c| c.size_mib)
    {
        let _ = writeln!(
            t,
            "| daemon CPU at {:.0} slot accesses/s, {} MiB disk, {} (host) | {:.2} % of a core | - | - | target ≤ 1 % | {} |",
            c.fio_iops,
            c.size_mib,
            c.config,
            c.cpu_percent,
            fmt_ratio(Some(c.cpu_percent), Some(1.0))
        );
        let _ = writeln!(
            t,
            "| daemon RSS (VmRSS / VmHWM), same | {:.1} / {:.1} MiB | - | - | target ≤ 16 MiB | {} |",
            c.rss_kib as f64 / 1024.0,
            c.hwm_kib as f64 / 1024.0,
            fmt_ratio(Some(c.rss_kib as f64 / 1024.0), Some(16.0))
        );
    }

    // Plots.
    let mut plots = String::new();
    if let Some((_, _, r)) = &wb {
        let series = |prefix: &str, suffix: &str| -> Vec<(f64, f64)> {
            writeback::BATCHES
                .iter()
                .filter_map(|&b| {
                    r.rows
                        .get(&format!("{prefix}{b}{suffix}"))
                        .map(|x| (f64::from(b), x.0))
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
         report shows. Nothing here is asserted: a benchmark never fails on a number.\n\n\
         ## Headline\n\n{t}\n{plots}",
        env_v("kernel"),
        env_v("cpus"),
        env_v("cpu")
    );
    if !failed.trim().is_empty() {
        let _ = writeln!(
            md,
            "**Parts that failed in this run:** {} (see target/bench/all/console.log).\n",
            failed.split_whitespace().collect::<Vec<_>>().join(", ")
        );
    }
    let section = |md: &mut String, title: &str, body: Option<String>| {
        let _ = writeln!(
            md,
            "## {title}\n\n{}\n",
            body.unwrap_or_else(|| "Not measured in this run (the part failed).".into())
        );
    };
    section(
        &mut md,
        "RAM tier",
        ram.as_ref()
            .map(|(t, _)| t.trim_start_matches("# bench ram\n\n").to_string()),
    );
    section(
        &mut md,
        "Writeback",
        wb.as_ref()
            .map(|(t, _, _)| t.trim_start_matches("# bench writeback\n\n").to_string()),
    );
    section(
        &mut md,
        "The seed's experiment",
        seed.as_ref().map(|s| s.markdown.clone()),
    );
    section(
        &mut md,
        "Foreground protection (what adaptive batching is for)",
        fg.as_ref().map(|(rows, t)| foreground::markdown(rows, *t)),
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
    );
    let _ = writeln!(
        md,
        "## Reproducing\n\n`cargo xtask bench` (about {:.0} min here); `--report-only` re-renders this file from \
         `target/bench/all`; `cargo xtask bench ram|writeback|seed|footprint` runs one part alone.",
        15
    );
    fs::write(out.join("REPORT.md"), &md)?;
    println!("{md}");
    progress(&format!(
        "report: {} (plots beside it); raw results in {}",
        out.join("REPORT.md").display(),
        results.display()
    ));
    if wb.is_none() && ram.is_none() && seed.is_none() {
        bail!("no part of the benchmark produced results");
    }
    Ok(())
}

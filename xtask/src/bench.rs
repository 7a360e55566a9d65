//! `cargo xtask bench`: benchmarks measured side by side in one VM run.
//!
//! Benchmarks print absolute figures and ratios; they never fail on a
//! number (the guest runs under TCG on these machines, so only ratios
//! measured in the same run mean much).

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result, bail};

mod all;
mod footprint;
mod foreground;
mod packed;
mod plot;
mod policy;
mod ram;
mod seed;
mod stats;
mod writeback;

use crate::{
    kernel::{self, KernelArgs},
    util::{progress, repo_root, run},
    vm,
};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: `all` (ram, writeback, packed and seed in one VM
    /// run, report in docs/bench/REPORT.md), `ram` (4K random I/O on rzram
    /// vs upstream zram), `writeback` (idle writeback rate by batch size,
    /// rzram vs upstream zram vs the backing device), `packed` (rzram's
    /// packed_writeback: backing bytes per written-back page, writeback
    /// rate, read-back latency and dead space after churn, against unpacked
    /// compressed_writeback and upstream zram, and the cost of a one-page
    /// writeback call), `seed` (the seed's ext4 + tarballs experiment),
    /// `foreground` (a foreground fio's latency during writeback: upstream
    /// batch 32, rzram batch 32, rzram driven by the daemon), `footprint`
    /// (the daemon's CPU and RSS and the eBPF cost per event by disk size
    /// and load, on the host's own kernel and zram, release build; not part
    /// of `all`).
    #[arg(default_value = "all")]
    pub what: String,
    /// Seconds per fio run (`packed`: the cap of each read-back run).
    #[arg(long, default_value_t = 5)]
    pub runtime: u32,
    /// Interleaved rounds (zram, rzram; rzram, zram; ...): each gives one
    /// ratio per row; the report shows their median with a confidence
    /// interval for it (9: the first count whose order-statistic interval,
    /// the second lowest to the second highest ratio, covers the median
    /// with >= 95 %; at 5 it is the min-max, 94 %).
    #[arg(long, default_value_t = 9)]
    pub rounds: u32,
    /// `writeback`: MiB of data written into each device before writeback.
    #[arg(long, default_value_t = 48)]
    pub data_mib: u32,
    /// `packed`: MiB of data written into each device before writeback
    /// (256: the timed writeback of 32 MiB took 50-80 ms, of 128 MiB
    /// 180-340 ms, where a 20 ms stall of the host moved a round by 10 %).
    #[arg(long, default_value_t = 256)]
    pub packed_mib: u32,
    /// Only print the report from the last run's results (no VM).
    #[arg(long)]
    pub report_only: bool,
    /// `seed`: MiB of the tarball each of the three copies takes (0: all of it).
    #[arg(long, default_value_t = 32)]
    pub seed_mib: u32,
    /// `seed`: timed runs per row (interleaved rounds; 9 as `--rounds`).
    #[arg(long, default_value_t = 9)]
    pub seed_runs: u32,
    /// `footprint`: seconds per measured window.
    #[arg(long, default_value_t = 30)]
    pub footprint_secs: u64,
    /// `footprint`: disk sizes in MiB (default 256,4096,16384).
    #[arg(long, value_delimiter = ',')]
    pub footprint_sizes: Vec<u64>,
    /// `footprint`: measure this zramctl binary instead of a fresh release
    /// build (e.g. a saved build of an earlier commit, for before/after).
    #[arg(long)]
    pub footprint_bin: Option<std::path::PathBuf>,
    /// `footprint`: results subdirectory of target/bench (default footprint).
    #[arg(long, default_value = "footprint")]
    pub footprint_out: String,
}

/// The JSON of a fio report in `text` (fio may print warnings before it);
/// `what` names the report in errors.
pub(crate) fn fio_json(text: &str, what: &str) -> Result<serde_json::Value> {
    let json = &text[text
        .find('{')
        .with_context(|| format!("no JSON in {what}"))?..];
    serde_json::from_str(json).with_context(|| format!("parsing {what}"))
}

/// The JSON of the fio report in the file `path`.
pub(crate) fn fio_json_file(path: &Path) -> Result<serde_json::Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    fio_json(&text, &path.display().to_string())
}

/// IOPS of the (single, group-reported) job in a fio JSON report.
pub(crate) fn fio_iops(path: &Path, op: &str) -> Result<f64> {
    let v = fio_json_file(path)?;
    let dir = if op.ends_with("write") {
        "write"
    } else {
        "read"
    };
    v["jobs"][0][dir]["iops"]
        .as_f64()
        .with_context(|| format!("no jobs[0].{dir}.iops in {}", path.display()))
}

/// The value of `key` in a guest's `env.txt` (lines `KEY VALUE`).
pub(crate) fn env_value<'a>(env: &'a str, key: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
}

/// How the guest ran, from its `cpu` line.
pub(crate) fn accel(cpu: &str) -> &'static str {
    if cpu.contains("TCG") || !cpu.contains("KVM") {
        "under TCG (software emulation)"
    } else {
        "under KVM"
    }
}

/// The file `name` of a results dir (it must be there).
pub(crate) fn read_result(results: &Path, name: &str) -> Result<String> {
    fs::read_to_string(results.join(name))
        .with_context(|| format!("no {name} in {}", results.display()))
}

/// The lines of a results dir's `errors.txt` (none when it is missing).
pub(crate) fn read_errors(results: &Path) -> Vec<String> {
    fs::read_to_string(results.join("errors.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Appends "TITLE:" and `items` as a Markdown list, when there are any.
pub(crate) fn push_list(text: &mut String, title: &str, items: &[String]) {
    if !items.is_empty() {
        let _ = write!(text, "\n{title}:\n\n");
        for item in items {
            let _ = writeln!(text, "- {item}");
        }
    }
}

/// Writes benchmark `name`'s report into its results dir and as
/// `target/bench/NAME.md`, prints it, and fails when the VM listed errors.
pub(crate) fn publish(name: &str, results: &Path, text: &str, errors: &[String]) -> Result<()> {
    let md = format!("{name}.md");
    fs::write(results.join(&md), text)?;
    fs::write(repo_root().join("target/bench").join(&md), text)?;
    println!("{text}");
    progress(&format!(
        "report written to {} and target/bench/{md}",
        results.join(&md).display()
    ));
    if !errors.is_empty() {
        bail!("{} error(s) in the VM (listed above)", errors.len());
    }
    Ok(())
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    match args.what.as_str() {
        "all" => all::bench(args),
        "ram" => bench_ram(args),
        "writeback" => writeback::bench(args),
        "seed" => all::single(args),
        "footprint" => footprint::bench(args),
        "foreground" => foreground::bench(args),
        "packed" => packed::bench(args),
        "policy" => policy::bench(),
        other => {
            bail!(
                "unknown benchmark {other:?}: available: all, ram, writeback, packed, seed, foreground, footprint, policy"
            )
        }
    }
}

/// Runs `script` in one VM with results in `target/bench/NAME`; returns
/// the results dir. Fails only when the script fails.
pub fn run_in_vm(name: &str, script: &str) -> Result<std::path::PathBuf> {
    run_in_vm_with(name, script, 1024)
}

/// [`run_in_vm`] with a scratch disk of `disk_mib` MiB.
pub fn run_in_vm_with(name: &str, script: &str, disk_mib: u64) -> Result<std::path::PathBuf> {
    let kernel = kernel::build(&KernelArgs::default())?;
    run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(repo_root())
            .args(["build", "--locked", "-q", "-p", "zramctl"]),
    )?;
    let results = repo_root().join("target/bench").join(name);
    fs::create_dir_all(repo_root().join("target/bench"))?;
    // A copy: a `cargo build` on the host while the VM runs (the guest sees
    // the host's files) would swap the binary under the guest.
    let bin = repo_root().join(format!("target/bench/zramctl-{name}"));
    fs::copy(repo_root().join("target/debug/zramctl"), &bin)?;
    let script = format!("export ZRAMCTL_BIN={}\n{script}", bin.display());
    let script_path = repo_root().join(format!("target/bench/{name}.sh"));
    fs::write(&script_path, script)?;
    let code = vm::run(
        &kernel,
        &vm::VmArgs {
            results: Some(results.clone()),
            disk: disk_mib,
            timeout: 3600,
            ..vm::VmArgs::with_command(format!("bash {}", script_path.display()))
        },
    )?;
    if code != 0 {
        bail!("the benchmark script failed in the VM (exit code {code})");
    }
    Ok(results)
}

fn bench_ram(args: &BenchArgs) -> Result<()> {
    let results = repo_root().join("target/bench/ram");
    if !args.report_only {
        progress(&format!(
            "bench ram: {} rounds x {} devices x {} ops x {}s of fio in the VM",
            args.rounds,
            ram::DEVICES.len(),
            ram::OPS.len(),
            args.runtime
        ));
        run_in_vm("ram", &ram::script(args))?;
    }
    let (report, _) = ram::report(args, &results)?;
    fs::write(repo_root().join("target/bench/ram.md"), &report)?;
    println!("{report}");
    Ok(())
}

#[cfg(test)]
impl BenchArgs {
    /// The command line's defaults for benchmark `what` in `rounds` rounds,
    /// report only.
    pub(crate) fn for_test(what: &str, rounds: u32) -> BenchArgs {
        BenchArgs {
            what: what.into(),
            runtime: 5,
            rounds,
            data_mib: 48,
            packed_mib: 256,
            report_only: true,
            seed_mib: 32,
            seed_runs: 9,
            footprint_secs: 30,
            footprint_sizes: Vec::new(),
            footprint_bin: None,
            footprint_out: "footprint".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_env_lines_fio_json_and_lists() {
        let env = "cpu QEMU TCG CPU\ncpus 2\n";
        assert_eq!(env_value(env, "cpu"), Some("QEMU TCG CPU"));
        assert_eq!(env_value(env, "cpus"), Some("2"));
        assert_eq!(env_value(env, "kernel"), None);
        assert_eq!(accel("QEMU TCG CPU"), "under TCG (software emulation)");
        assert_eq!(accel("Common KVM processor"), "under KVM");
        let v = fio_json("fio: a warning\n{\"jobs\": [1]}", "test").unwrap();
        assert_eq!(v["jobs"][0], 1);
        assert!(fio_json("no report", "test").is_err());
        let mut t = String::from("text\n");
        push_list(&mut t, "Notes", &[]);
        push_list(&mut t, "Errors in the VM", &["a".into(), "b".into()]);
        assert_eq!(t, "text\n\nErrors in the VM:\n\n- a\n- b\n");
    }
}

//! `cargo xtask`: what cargo alone cannot do for zramctl.
//!
//! - `setup`: install the toolchain (scripts/setup.sh);
//! - `test`: the whole suite: host tests, kernel build, VM tests;
//! - `demo`: rzram, the daemon and a swapping workload in one VM run;
//! - `bench`: benchmarks side by side in one VM run, with a report;
//! - `kernel`: build our Linux 7.3 (cached outside the clone);
//! - `vm -- CMD`: run CMD in that kernel under QEMU;
//! - `vm-test`: run the VM integration tests;
//! - `trace`: record the policy lab's swap traces in the VM.

mod bench;
mod deb;
mod demo;
mod kernel;
mod systemd_test;
mod trace;
mod util;
mod vm;

use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::util::{Tally, progress, repo_root, run, run_tallied};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "zramctl developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install everything the build, tests, kernel and VM need (idempotent).
    Setup {
        /// Only what `cargo build` and the host tests need.
        #[arg(long)]
        user: bool,
    },
    /// Run every test: host tests, then the kernel build and the VM suite.
    Test {
        /// Host tests only (no kernel, no VM).
        #[arg(long)]
        host_only: bool,
    },
    /// The whole system in one VM run: rzram with a backing device, the
    /// daemon with eBPF, a workload that swaps; report files in target/demo.
    Demo(demo::DemoArgs),
    /// (in the VM) The guest side of `demo`.
    #[command(hide = true)]
    DemoGuest(demo::GuestArgs),
    /// (in the VM) The demo's memory-hungry process.
    #[command(hide = true)]
    DemoWorkload(demo::WorkloadArgs),
    /// Build the VM kernel (Linux 7.3 + kernel/ overlay) in the cache dir.
    Kernel(kernel::KernelArgs),
    /// Boot the VM kernel and run CMD in it; exits with CMD's exit code.
    Vm(vm::VmArgs),
    /// Build the VM integration tests on the host and run them in the VM.
    VmTest(VmTestArgs),
    /// Record the policy lab's swap traces of real programs in the VM.
    Trace(trace::TraceArgs),
    /// (in the VM) The guest side of `trace`.
    #[command(hide = true)]
    TraceGuest(trace::GuestArgs),
    /// Benchmarks measured side by side in one VM run (prints ratios).
    Bench(bench::BenchArgs),
    /// Build the Debian package (target/deb/zramctl_VERSION_ARCH.deb).
    Deb(deb::DebArgs),
    /// Install the .deb in our kernel booted with systemd as PID 1 and run
    /// the daemon under its units.
    SystemdTest(systemd_test::SystemdTestArgs),
}

#[derive(clap::Args)]
struct VmTestArgs {
    /// Test target names (e.g. `reliability` or "reliability writeback":
    /// all their tests), or else test name filters (space-separated: tests
    /// whose name contains any of them), in every target.
    filter: Option<String>,
    /// Build the kernel with the debug fragment (KASAN, lockdep).
    #[arg(long)]
    debug_kernel: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup { user } => setup(user).map(|_| ExitCode::SUCCESS),
        Cmd::Test { host_only } => test(host_only).map(|_| ExitCode::SUCCESS),
        Cmd::Demo(args) => demo::demo(&args).map(|_| ExitCode::SUCCESS),
        Cmd::DemoGuest(args) => demo::guest(&args).map(|_| ExitCode::SUCCESS),
        Cmd::DemoWorkload(args) => demo::workload(&args).map(|_| ExitCode::SUCCESS),
        Cmd::Kernel(args) => {
            let k = kernel::build(&args)?;
            println!("{}", k.bzimage.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Vm(args) => {
            let k = kernel::build(&kernel::KernelArgs {
                debug: args.debug_kernel,
                ..Default::default()
            })?;
            let code = vm::run(&k, &args)?;
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        Cmd::Trace(args) => trace::trace(&args).map(|_| ExitCode::SUCCESS),
        Cmd::TraceGuest(args) => trace::guest(&args).map(|_| ExitCode::SUCCESS),
        Cmd::Bench(args) => bench::bench(&args).map(|_| ExitCode::SUCCESS),
        Cmd::Deb(args) => deb::deb(&args).map(|_| ExitCode::SUCCESS),
        Cmd::SystemdTest(args) => systemd_test::systemd_test(&args).map(|_| ExitCode::SUCCESS),
        Cmd::VmTest(args) => vm_test_tallied(&args, Tally::default()).map(|t| {
            println!(
                "vm: {} passed, {} failed, {} skipped",
                t.passed, t.failed, t.ignored
            );
            ExitCode::SUCCESS
        }),
    }
}

fn setup(user_only: bool) -> Result<()> {
    let script = repo_root().join("scripts/setup.sh");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(&script);
    if user_only {
        cmd.arg("--user");
    }
    run(&mut cmd).context("scripts/setup.sh failed")
}

fn cargo() -> std::process::Command {
    let mut c =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(repo_root());
    c
}

fn test(host_only: bool) -> Result<()> {
    let t0 = Instant::now();
    setup(host_only)?;
    progress(&format!("setup done ({:.0}s)", t0.elapsed().as_secs_f64()));
    let t1 = Instant::now();
    progress("lint: cargo fmt --check, cargo clippy -D warnings");
    run(cargo().args(["fmt", "--all", "--check"]))
        .context("code is not rustfmt-clean: run cargo fmt --all")?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]))
    .context("clippy found problems")?;
    progress("host tests: cargo test --workspace");
    let mut tally = Tally::default();
    run_tallied(
        cargo().args(["test", "--workspace", "--locked"]),
        &mut tally,
    )
    .context("host tests failed")?;
    progress(&format!(
        "host tests passed ({:.0}s)",
        t1.elapsed().as_secs_f64()
    ));
    if !host_only {
        let vm_args = VmTestArgs {
            filter: None,
            debug_kernel: false,
        };
        // The .deb under systemd: a systemd-nspawn container of a cached
        // debootstrapped root (this host's kernel enforces the whole
        // sandbox), then, after the VM suite, the same root booted with
        // systemd as PID 1 in our kernel (writeback under the units, the
        // writeback limit put back on stop).
        let t = Instant::now();
        let (passed, failed) = systemd_test::systemd_test(&Default::default())?;
        tally.passed += passed;
        tally.failed += failed;
        progress(&format!(
            "systemd test passed ({:.0}s)",
            t.elapsed().as_secs_f64()
        ));
        tally = vm_test_tallied(&vm_args, tally)?;
        let t = Instant::now();
        let (passed, failed) = systemd_test::systemd_test(&systemd_test::SystemdTestArgs {
            vm: true,
            ..Default::default()
        })?;
        tally.passed += passed;
        tally.failed += failed;
        progress(&format!(
            "systemd test in the VM passed ({:.0}s)",
            t.elapsed().as_secs_f64()
        ));
    }
    progress(&format!(
        "all tests passed ({:.0}s in all)",
        t0.elapsed().as_secs_f64()
    ));
    // The plain closing line CI reads. The VM tests are counted once: the host
    // run saw them as ignored, the VM run as passed.
    println!(
        "total: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    Ok(())
}

/// Finds the executable of an integration test target from cargo's JSON output.
fn build_test_binary(package: &str, test: &str) -> Result<PathBuf> {
    let out = cargo()
        .args([
            "test",
            "--locked",
            "--no-run",
            "--message-format=json",
            "-p",
            package,
            "--test",
            test,
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the {test} tests failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| {
            l.contains("\"reason\":\"compiler-artifact\"")
                && l.contains(&format!("\"name\":\"{test}\""))
        })
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            Some(PathBuf::from(&l[start..start + l[start..].find('"')?]))
        })
        .with_context(|| format!("no executable for test target {test} in cargo's output"))
}

/// Integration test targets of `tests/` that run inside the VM, with the
/// seconds each took in the last CI run (TCG): the suite runs in two VMs side
/// by side, the targets shared out by these times.
const VM_TEST_TARGETS: [(&str, u32); 9] = [
    ("vm", 137),
    ("rzram", 148),
    ("writeback", 260),
    ("ebpf_rzram", 13),
    ("daemon_vm", 222),
    ("backing", 283),
    ("reliability", 493),
    ("daemon_answers", 150),
    ("hardening", 300),
];

/// Targets run once more with an environment (and test name filters, if
/// any): upstream zram's VM tests, unchanged, on rzram (same ABI, same
/// results); the writeback tests with `compressed_writeback` on upstream
/// zram and rzram; the races and the fuzzer with rzram's `packed_writeback`.
const VM_TEST_REPEATS: [(&str, &str, &str, u32); 3] = [
    ("vm", "ZRAMCTL_VM_DEVICE=rzram0", "", 115),
    ("writeback", "ZRAMCTL_WB_COMPRESSED=1", "", 260),
    ("reliability", "ZRAMCTL_WB_PACKED=1", "races:: fuzz::", 400),
];

/// VMs the suite runs in, side by side.
const VM_TEST_VMS: usize = 2;

/// One run of a test target in a VM: (target, environment, test name
/// filters, seconds it took).
type Run<'a> = (&'a str, &'a str, &'a str, u32);

/// What a VM runs of a [`Run`]: (target, environment, filters).
type VmRun<'a> = (&'a str, &'a str, &'a str);

/// Shares `runs` out to `n` VMs: longest first, each to the VM with the
/// least so far. Each VM gets (target, environment, filters).
fn share_out<'a>(runs: &[Run<'a>], n: usize) -> Vec<Vec<VmRun<'a>>> {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.3));
    let mut vms: Vec<(u32, Vec<VmRun>)> = vec![(0, Vec::new()); n];
    for (t, env, filter, secs) in sorted {
        let vm = vms.iter_mut().min_by_key(|v| v.0).expect("n > 0");
        vm.0 += secs;
        vm.1.push((t, env, filter));
    }
    vms.into_iter()
        .map(|v| v.1)
        .filter(|v| !v.is_empty())
        .collect()
}

/// The test name filters of a run whose own filters are `own` when the
/// command line picked tests by `picked` names: only tests both would run.
/// libtest runs a test that matches any one filter, so a picked name that
/// narrows one of the run's filters (`races::soak` and `races::`) is kept,
/// a run's filter that narrows a picked name (`fuzz::` and `fuzz`) is kept,
/// and `None` (the run is left out) when no two meet: `faults::` in a
/// repeat that runs only `races:: fuzz::`.
fn narrow(own: &str, picked: &[&str]) -> Option<String> {
    let own: Vec<&str> = own.split_whitespace().collect();
    if own.is_empty() {
        return Some(picked.join(" "));
    }
    let mut kept: Vec<&str> = Vec::new();
    for p in picked {
        for o in &own {
            let f = if p.contains(o) {
                *p
            } else if o.contains(p) {
                *o
            } else {
                continue;
            };
            if !kept.contains(&f) {
                kept.push(f);
            }
        }
    }
    (!kept.is_empty()).then(|| kept.join(" "))
}

/// Runs the VM suite; adds its results to `tally` (the VM tests were counted
/// as ignored by the host run, so they move from ignored to passed).
fn vm_test_tallied(args: &VmTestArgs, mut tally: Tally) -> Result<Tally> {
    let kernel = kernel::build(&kernel::KernelArgs {
        debug: args.debug_kernel,
        ..Default::default()
    })?;
    progress("building zramctl and the VM tests");
    // zramctl, and the helper binaries the VM tests run (tests/src/bin).
    run(cargo().args([
        "build",
        "--locked",
        "-p",
        "zramctl",
        "-p",
        "zramctl-tests",
        "--bins",
    ]))?;
    // The guest runs copies: a host `cargo build` during the run (another
    // engineer's, or an editor's) would replace the binaries under it.
    let bin_dir = repo_root().join(format!("target/vm-test-bin/{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&bin_dir);
    std::fs::create_dir_all(&bin_dir)?;
    let copy = |src: &std::path::Path| -> Result<PathBuf> {
        let dst = bin_dir.join(src.file_name().context("binary name")?);
        std::fs::copy(src, &dst).with_context(|| format!("copying {}", src.display()))?;
        Ok(dst)
    };
    let zramctl = copy(&repo_root().join("target/debug/zramctl"))?;
    // The tests find their helper binaries (tests/src/bin) next to zramctl.
    for entry in std::fs::read_dir(repo_root().join("tests/src/bin"))? {
        let path = entry?.path();
        if let Some(stem) = path
            .file_stem()
            .filter(|_| path.extension() == Some("rs".as_ref()))
        {
            copy(&repo_root().join("target/debug").join(stem))?;
        }
    }
    // Every VM test target runs, even after one fails; the exit code is the
    // first failure's.
    let filter = args.filter.as_deref().unwrap_or("");
    // Target names ("reliability writeback") pick whole targets; anything
    // else is test name filters, in every target.
    let targets: Vec<&str> = filter.split_whitespace().collect();
    let whole_target = !targets.is_empty()
        && targets
            .iter()
            .all(|w| VM_TEST_TARGETS.iter().any(|t| t.0 == *w));
    let runs: Vec<Run> = VM_TEST_TARGETS
        .iter()
        .map(|&(t, secs)| (t, "", "", secs))
        .chain(VM_TEST_REPEATS)
        .filter(|(t, _, _, _)| !whole_target || targets.contains(t))
        .collect();
    // Tests picked by name print what they measured (`--nocapture`); a
    // whole target prints only failures' output.
    let picked: Vec<&str> = if whole_target { Vec::new() } else { targets };
    let narrowed: Vec<(Run, String)> = runs
        .into_iter()
        .filter_map(|r| {
            if picked.is_empty() {
                return Some((r, r.2.to_owned()));
            }
            narrow(r.2, &picked).map(|f| (r, format!("--nocapture {f}")))
        })
        .collect();
    // Each run with the filters it gets.
    let runs: Vec<Run> = narrowed
        .iter()
        .map(|((t, env, _, secs), f)| (*t, *env, f.as_str(), *secs))
        .collect();
    let mut scripts = Vec::new();
    for vm_runs in share_out(&runs, VM_TEST_VMS) {
        let mut cmd = String::from("rc=0\n");
        for (target, env, filters) in vm_runs {
            let bin = copy(&build_test_binary("zramctl-tests", target)?)?;
            cmd.push_str(&format!(
                "echo '==> {target} {env}'\n{env} ZRAMCTL_BIN={} {} --ignored --test-threads=1 --color=never {} || {{ r=$?; [ $rc = 0 ] && rc=$r; }}\n",
                zramctl.display(),
                bin.display(),
                filters
            ));
        }
        cmd.push_str("exit $rc");
        scripts.push(cmd);
    }
    let t = Instant::now();
    progress(&format!(
        "VM suite: booting {} VM(s) side by side and running the tests inside",
        scripts.len()
    ));
    let several = scripts.len() > 1;
    let results: Vec<(PathBuf, Result<i32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = scripts
            .into_iter()
            .enumerate()
            .map(|(i, cmd)| {
                let kernel = &kernel;
                s.spawn(move || {
                    // Per run (two suites in one checkout must not share
                    // a results directory: a new run empties it).
                    let dir = repo_root().join(format!(
                        "target/vm-results/vm-test-{}-{i}",
                        std::process::id()
                    ));
                    let code = vm::run(
                        kernel,
                        &vm::VmArgs {
                            results: Some(dir.clone()),
                            label: several.then(|| format!("vm{i}")),
                            // A hang is caught either way; a loaded machine
                            // (TCG) took 1353 s for `reliability` alone, and
                            // KASAN + lockdep make a VM about 3.5x slower.
                            timeout: if args.debug_kernel { 4 * 3600 } else { 3600 },
                            debug_kernel: args.debug_kernel,
                            ..vm::VmArgs::with_command(cmd)
                        },
                    );
                    (dir, code)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("VM thread panicked"))
            .collect()
    });
    let _ = std::fs::remove_dir_all(&bin_dir);
    let mut vm = Tally::default();
    let mut failed_code = 0;
    for (dir, code) in results {
        vm.add_text(&std::fs::read_to_string(dir.join("console.log")).unwrap_or_default());
        let code = code?;
        if code != 0 && failed_code == 0 {
            failed_code = code;
        }
    }
    if failed_code != 0 {
        bail!(
            "VM suite failed (exit code {failed_code}; {} passed, {} failed)",
            vm.passed,
            vm.failed
        );
    }
    if vm.passed == 0 {
        bail!("the VM suite ran no test");
    }
    progress(&format!(
        "VM suite passed: {} tests ({:.0}s)",
        vm.passed,
        t.elapsed().as_secs_f64()
    ));
    tally.passed += vm.passed;
    tally.failed += vm.failed;
    tally.ignored = tally.ignored.saturating_sub(vm.passed + vm.failed);
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_test_targets_are_shared_out_evenly_and_whole() {
        let runs: Vec<Run> = VM_TEST_TARGETS
            .iter()
            .map(|&(t, secs)| (t, "", "", secs))
            .chain(VM_TEST_REPEATS)
            .collect();
        let vms = share_out(&runs, 2);
        assert_eq!(vms.len(), 2);
        let mut all: Vec<_> = vms.iter().flatten().copied().collect();
        all.sort();
        let mut want: Vec<_> = runs.iter().map(|r| (r.0, r.1, r.2)).collect();
        want.sort();
        assert_eq!(all, want, "every run once");
        let secs = |vm: &[VmRun]| -> u32 {
            vm.iter()
                .map(|r| runs.iter().find(|x| (x.0, x.1, x.2) == *r).unwrap().3)
                .sum()
        };
        let (a, b) = (secs(&vms[0]), secs(&vms[1]));
        assert!(a.abs_diff(b) <= 493, "{a} s vs {b} s");
        // One target alone: one VM.
        assert_eq!(share_out(&runs[..1], 2).len(), 1);
    }

    #[test]
    fn picked_tests_run_only_where_a_run_would_run_them() {
        // A run with no filters of its own runs what was picked.
        assert_eq!(narrow("", &["faults::"]).as_deref(), Some("faults::"));
        // The packed repeat runs only races and fuzz: not the faults test,
        // which it once ran (and failed, its arithmetic being for pages).
        assert_eq!(narrow("races:: fuzz::", &["faults::"]), None);
        assert_eq!(
            narrow("races:: fuzz::", &["races::soak", "faults::"]).as_deref(),
            Some("races::soak")
        );
        assert_eq!(
            narrow("races:: fuzz::", &["fuzz"]).as_deref(),
            Some("fuzz::")
        );
    }
}

//! `cargo xtask demo`: the whole system at work, in one VM run.
//!
//! On the host: setup (idempotent), the kernel build when needed, zramctl
//! (with its eBPF object), then one VM boot. In the guest this same xtask
//! binary (`demo-guest`, hidden) loads rzram, gives rzram0 a dm-linear
//! slice of the scratch disk as backing device, swaps to it, starts
//! `zramctl daemon` with eBPF on a short-period config and `zramctl top`
//! for the rzram tracepoints, and runs a memory-hungry process
//! (`demo-workload`, hidden) in a memory cgroup. Every two seconds it prints
//! what happens (swap in rzram, idle slots, pages written back against the
//! budget, batch size, refaults, a `/metrics` scrape) and ends with a
//! summary. The report files land in `target/demo/`.
//!
//! `cargo xtask demo --host` is the old host-only demo (zramctl on this
//! machine's own zram0).

mod guest;
mod observe;
mod summary;
mod workload;

use std::{fs, path::PathBuf, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

pub use guest::{GuestArgs, guest};
pub use workload::{WorkloadArgs, workload};

use crate::{
    kernel,
    util::{progress, repo_root, run},
    vm,
};

/// The device the guest demo runs on.
const DEV: &str = "rzram0";
/// The daemon's metrics port in the guest.
const PORT: u16 = 9466;
/// The backing slice of the scratch disk.
const SLICE_MIB: u64 = 512;
/// The token bucket: a 16 MiB burst, then 1 MiB/s.
const BURST_MIB: u64 = 16;
const RATE_MIB: u64 = 1;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The old host-only demo: zramctl on this machine's zram0 (no VM).
    #[arg(long)]
    pub host: bool,
    /// MiB the workload allocates (in a cgroup with a third of it).
    #[arg(long, default_value_t = 96)]
    pub mib: u64,
    /// Seconds the workload holds its memory (its cold part ages meanwhile).
    #[arg(long, default_value_t = 40)]
    pub secs: u64,
}

/// Where the demo's report files go (the VM's results dir).
pub fn out_dir() -> PathBuf {
    repo_root().join("target/demo")
}

pub fn demo(args: &DemoArgs) -> Result<()> {
    if args.host {
        return host_demo();
    }
    let t0 = Instant::now();
    let step = |what: &str, t: Instant| {
        progress(&format!(
            "{what} ({:.0}s; {:.0}s since start)",
            t.elapsed().as_secs_f64(),
            t0.elapsed().as_secs_f64()
        ))
    };
    progress("setup: scripts/setup.sh (installs only what is missing)");
    let t = Instant::now();
    crate::setup(false)?;
    step("setup done", t);
    let t = Instant::now();
    progress("kernel: Linux 7.3 with rzram (a no-op when built; a fresh build takes ~15-20 min)");
    let k = kernel::build(&kernel::KernelArgs::default())?;
    step("kernel ready", t);
    let t = Instant::now();
    progress("building zramctl (with its eBPF programs)");
    run(crate::cargo().args(["build", "--locked", "-q", "-p", "zramctl"]))?;
    step("zramctl built", t);
    // This binary runs the guest side. Copies of it and of zramctl, so
    // that a `cargo build` on the host meanwhile (the guest sees the
    // host's files) cannot swap them under the guest.
    let me = std::env::current_exe().context("finding the xtask binary")?;
    let guest_bin = repo_root().join("target/demo-xtask");
    fs::copy(&me, &guest_bin).with_context(|| format!("copying {}", me.display()))?;
    let zramctl = repo_root().join("target/demo-zramctl");
    fs::copy(repo_root().join("target/debug/zramctl"), &zramctl)?;
    let out = out_dir();
    progress(&format!(
        "booting the VM (QEMU; TCG here): rzram + daemon + a {} MiB workload for {} s",
        args.mib, args.secs
    ));
    let t = Instant::now();
    let code = vm::run(
        &k,
        &vm::VmArgs {
            results: Some(out.clone()),
            timeout: 900,
            ..vm::VmArgs::with_command(format!(
                "{} demo-guest --zramctl {} --mib {} --secs {}",
                guest_bin.display(),
                zramctl.display(),
                args.mib,
                args.secs
            ))
        },
    )?;
    step("VM run done", t);
    if code != 0 {
        bail!(
            "the demo failed in the VM (exit code {code}); see {}",
            out.display()
        );
    }
    let mut files: Vec<String> = fs::read_dir(&out)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !matches!(n.as_str(), "cmd.sh" | "cmd.env" | "exit-code"))
        .collect();
    files.sort();
    progress(&format!(
        "demo done in {:.0}s; report files in {}: {}",
        t0.elapsed().as_secs_f64(),
        out.display(),
        files.join(", ")
    ));
    Ok(())
}

/// The first demo: zramctl on this machine's own zram0, no VM.
fn host_demo() -> Result<()> {
    crate::setup(true)?;
    run(crate::cargo().args(["build", "--quiet", "--locked", "-p", "zramctl"]))?;
    let bin = repo_root().join("target/debug/zramctl");
    let zramctl = |args: &[&str]| {
        println!("$ zramctl {}", args.join(" "));
        // The demo shows errors too (a kernel without writeback says so).
        let _ = Command::new(&bin).args(args).status();
    };
    progress("zramctl status: every zram device on this machine");
    zramctl(&["status"]);
    let initstate = fs::read_to_string("/sys/block/zram0/initstate").unwrap_or_default();
    if initstate.trim() != "0" {
        progress("zram0 is missing or in use: the demo stops at status");
        return Ok(());
    }
    progress("an unused zram0: set it up, store 24 MiB, look, mark idle, write back, reset");
    zramctl(&["setup", "zram0", "--size", "256M"]);
    // Text, zeros and random bytes: compressible, same-filled and huge pages.
    run(Command::new("sh").arg("-c").arg(
        "{ yes 'zram keeps swapped-out pages compressed in RAM' | head -c 8M; head -c 8M /dev/zero; \
         head -c 8M /dev/urandom; } | dd of=/dev/zram0 bs=1M oflag=direct status=none",
    ))?;
    zramctl(&["status", "zram0"]);
    zramctl(&["idle", "zram0", "--all"]);
    zramctl(&["writeback", "zram0", "--idle"]);
    zramctl(&["reset", "zram0"]);
    zramctl(&["status", "zram0", "--json"]);
    Ok(())
}

#[cfg(test)]
mod tests;

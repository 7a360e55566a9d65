//! `cargo xtask vm -- CMD`: boot our kernel under QEMU and run CMD in it.
//!
//! The guest's root filesystem is the host's `/`, shared read-only over 9p,
//! so host-built binaries (tests, zramctl) run in the guest as they are.
//! The guest gets tmpfs on /tmp, /run and /root, a raw virtio disk
//! (`/dev/vda`, the backing device for writeback tests), the modules we
//! built, and a results directory shared read-write (`$ZRAMCTL_RESULTS`,
//! `/tmp/results` in the guest) that comes back to the host. CMD's exit
//! code is the command's exit code; a timeout kills the VM; the guest console
//! is shown when anything fails.

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    kernel::Kernel,
    util::{cache_dir, progress, repo_root},
};

#[derive(clap::Args, Clone)]
pub struct VmArgs {
    /// Kill the VM after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u64,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Size of the backing disk /dev/vda in MiB (a fresh sparse file per run).
    #[arg(long, default_value_t = 1024)]
    pub disk: u64,
    /// Host directory for the results (default: a new
    /// target/vm-results/run-*, linked from target/vm-results/latest).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Use the debug kernel (KASAN, lockdep).
    #[arg(long)]
    pub debug_kernel: bool,
    /// Print the whole guest console, kernel messages included.
    #[arg(long, short)]
    pub verbose: bool,
    /// The command, run by /bin/sh in the guest in the current directory.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
    /// Put before each line of the command's output (VMs run side by side).
    #[arg(skip)]
    pub label: Option<String>,
}

impl VmArgs {
    pub fn with_command(cmd: String) -> Self {
        VmArgs {
            timeout: 1800,
            memory: 2048,
            cpus: 2,
            disk: 1024,
            results: None,
            debug_kernel: false,
            verbose: false,
            cmd: vec![cmd],
            label: None,
        }
    }
}

const GUEST_RESULTS: &str = "/tmp/results";
const EXIT_MARK: &str = "ZRAMCTL-VM-EXIT:";

/// The guest's /init: mounts what a test needs, runs the command, reports
/// its exit code on the console and in the results dir, powers off.
///
/// The host paths in `keep` (the repository, the kernel modules, the current
/// directory) stay visible at their own paths even when they live under
/// /tmp, /run or /root, which get a fresh tmpfs in the guest.
fn init_script(keep: &[PathBuf], modroot: &Path) -> String {
    let keep_list = keep
        .iter()
        .map(|p| shell_quote(&p.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts /dev/.keep
mount -t tmpfs keep /dev/.keep
i=0
for d in {keep_list}; do
  i=$((i+1)); mkdir -p /dev/.keep/$i; mount --bind "$d" /dev/.keep/$i
done
mount -t tmpfs shm /dev/shm
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t tmpfs home /root
i=0
for d in {keep_list}; do
  i=$((i+1)); mkdir -p "$d" 2>/dev/null; mount --move /dev/.keep/$i "$d" 2>/dev/null || mount --bind /dev/.keep/$i "$d"
done
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p {GUEST_RESULTS}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576 results {GUEST_RESULTS}
ip link set lo up 2>/dev/null
export HOME=/root ZRAMCTL_VM=1 ZRAMCTL_RESULTS={GUEST_RESULTS} ZRAMCTL_BACKING_DISK=/dev/vda
export ZRAMCTL_MODROOT={modroot}
. {GUEST_RESULTS}/cmd.env
cd "$ZRAMCTL_CWD" 2>/dev/null || cd /
echo "ZRAMCTL-VM-START"
/bin/sh {GUEST_RESULTS}/cmd.sh
rc=$?
echo $rc > {GUEST_RESULTS}/exit-code
sync
echo "{EXIT_MARK}$rc"
/bin/busybox poweroff -f
"#,
        modroot = shell_quote(&modroot.to_string_lossy()),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether KVM really works here; cached per host boot. On these machines
/// /dev/kvm exists but guests hang or QEMU aborts, so this is a quick probe
/// with a short timeout. ZRAMCTL_ACCEL=kvm|tcg overrides it.
fn accel(kernel: &Kernel) -> &'static str {
    match std::env::var("ZRAMCTL_ACCEL").as_deref() {
        Ok("kvm") => return "kvm",
        Ok("tcg") => return "tcg",
        _ => {}
    }
    if !Path::new("/dev/kvm").exists() {
        return "tcg";
    }
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let cache = cache_dir().join("kvm-probe");
    if let Ok(c) = fs::read_to_string(&cache)
        && let Some((id, verdict)) = c.split_once(' ')
        && id == boot_id.trim()
    {
        return if verdict.trim() == "kvm" {
            "kvm"
        } else {
            "tcg"
        };
    }
    progress("probing KVM (up to 10 s; the verdict is cached until the host reboots)");
    let ok = (|| -> Option<bool> {
        let mut child = Command::new("qemu-system-x86_64")
            .args([
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-m",
                "256",
                "-nographic",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&kernel.bzimage)
            .args([
                "-append",
                "console=ttyS0 panic=-1 init=/nonexistent",
                "-serial",
                "stdio",
                "-monitor",
                "none",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut out = child.stdout.take()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains("Kernel panic") {
                    let _ = tx.send(());
                    break;
                }
            }
        });
        let ok = rx.recv_timeout(Duration::from_secs(10)).is_ok();
        let _ = child.kill();
        let _ = child.wait();
        Some(ok)
    })()
    .unwrap_or(false);
    let verdict = if ok { "kvm" } else { "tcg" };
    let _ = fs::write(&cache, format!("{} {verdict}", boot_id.trim()));
    if !ok {
        progress("KVM does not work here: using TCG (software emulation)");
    }
    verdict
}

/// Boots the VM, runs the command, returns its exit code.
pub fn run(kernel: &Kernel, args: &VmArgs) -> Result<i32> {
    let results = match &args.results {
        Some(dir) => {
            if dir.exists() {
                fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
            }
            dir.clone()
        }
        // A directory of its own per run (concurrent runs must not mix their
        // consoles), and `latest` pointing at it.
        None => {
            let base = repo_root().join("target/vm-results");
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let name = format!("run-{stamp}-{}", std::process::id());
            fs::create_dir_all(&base)?;
            // Keep the last 20 runs.
            let mut old: Vec<_> = fs::read_dir(&base)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("run-"))
                .collect();
            old.sort_by_key(|n| {
                n.split('-')
                    .nth(1)
                    .and_then(|t| t.parse::<u128>().ok())
                    .unwrap_or(0)
            });
            for n in old.iter().rev().skip(19) {
                let _ = fs::remove_dir_all(base.join(n));
            }
            let latest = base.join("latest");
            let _ = fs::remove_file(&latest).or_else(|_| fs::remove_dir_all(&latest));
            let _ = std::os::unix::fs::symlink(&name, &latest);
            base.join(name)
        }
    };
    fs::create_dir_all(&results)?;
    let results = results.canonicalize()?;
    // Per run, so several VMs (of several processes, or of one) can run
    // side by side.
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run_dir = cache_dir().join("vm-run").join(format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    fs::create_dir_all(&run_dir)?;
    let _cleanup = RemoveOnDrop(run_dir.clone());
    let init = run_dir.join("init.sh");
    let cwd = std::env::current_dir()?;
    // The guest loads modules from a copy of its own: a kernel rebuild on
    // the host (another xtask run) replaces the modroot, and must not swap
    // rzram.ko under a guest that is about to load it.
    let modroot = run_dir.join("modroot");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&kernel.modroot)
        .arg(&modroot)
        .status()
        .context("running cp")?;
    if !copied.success() {
        bail!("copying {} for the guest failed", kernel.modroot.display());
    }
    let keep = [repo_root(), run_dir.clone(), cwd.clone()];
    fs::write(&init, init_script(&keep, &modroot))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;
    }
    fs::write(
        results.join("cmd.env"),
        format!(
            "export ZRAMCTL_CWD={} ZRAMCTL_KERNEL_RELEASE={} ZRAMCTL_DEBUG_KERNEL={}\n",
            shell_quote(&cwd.to_string_lossy()),
            shell_quote(&kernel.release),
            u8::from(args.debug_kernel)
        ),
    )?;
    fs::write(results.join("cmd.sh"), format!("{}\n", args.cmd.join(" ")))?;
    let disk = run_dir.join("backing.img");
    let _ = fs::remove_file(&disk);
    fs::File::create(&disk)?.set_len(args.disk << 20)?;
    let console = results.join("console.log");

    let accel = accel(kernel);
    let cpu = if accel == "kvm" { "host" } else { "max" };
    // The debug kernel boots with 4-level paging: under TCG `-cpu max` has
    // LA57, and with 5-level paging KASAN reported a wild access for an
    // interrupt taken during the boot CPU's identification (C code, before
    // any module), which taints the kernel and turns lockdep off.
    let append = format!(
        "console=ttyS0 root=hostroot rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=1048576,cache=loose \
         ro init={} panic=-1 oops=panic {} zram.num_devices=2{}",
        init.display(),
        // The debug kernel's reports print their call traces at the
        // default message level (4): its console shows that level too.
        match (args.verbose, args.debug_kernel) {
            (true, _) => "",
            (false, true) => "quiet loglevel=5",
            (false, false) => "quiet loglevel=4",
        },
        if args.debug_kernel { " no5lvl" } else { "" }
    );
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", accel, "-cpu", cpu])
        .args([
            "-m",
            &args.memory.to_string(),
            "-smp",
            &args.cpus.to_string(),
        ])
        .args([
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-nodefaults",
        ])
        .arg("-kernel")
        .arg(&kernel.bzimage)
        .args(["-append", &append])
        .args([
            "-chardev",
            &format!("file,id=con,path={}", console.display()),
        ])
        .args(["-serial", "chardev:con"])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ])
        .args([
            "-virtfs",
            &format!(
                "local,path={},mount_tag=results,security_model=none",
                results.display()
            ),
        ])
        .args([
            "-drive",
            &format!(
                "file={},if=virtio,format=raw,cache=none,aio=threads",
                disk.display()
            ),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .context("starting qemu-system-x86_64 (cargo xtask setup installs it)")?;
    let mut stderr = child.stderr.take().expect("piped");
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // Stream the console while the guest runs: the command's output always,
    // kernel messages only with --verbose.
    let mut pos = 0u64;
    let mut started = false;
    let mut pending = String::new();
    let mut exit_from_console = None;
    let mut timed_out = false;
    let status = loop {
        pump_console(&console, &mut pos, &mut pending, |line| {
            if line.contains("ZRAMCTL-VM-START") {
                started = true;
                progress(&format!(
                    "guest up after {:.1}s ({accel})",
                    start.elapsed().as_secs_f64()
                ));
            } else if let Some(rc) = line.strip_prefix(EXIT_MARK) {
                exit_from_console = rc.trim().parse::<i32>().ok();
            } else if started || args.verbose {
                print_line(args, line);
            }
        });
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(args.timeout) {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    pump_console(&console, &mut pos, &mut pending, |line| {
        if let Some(rc) = line.strip_prefix(EXIT_MARK) {
            exit_from_console = rc.trim().parse::<i32>().ok();
        } else if started || args.verbose {
            print_line(args, line);
        }
    });
    let qemu_err = stderr_thread.join().unwrap_or_default();
    let code = fs::read_to_string(results.join("exit-code"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .or(exit_from_console);
    let show_console = || {
        let text = fs::read_to_string(&console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(80);
        eprintln!(
            "----- guest console (last {} lines of {}) -----",
            lines.len() - from,
            console.display()
        );
        eprintln!("{}", lines[from..].join("\n"));
        eprintln!("----- end of guest console -----");
    };
    if timed_out {
        show_console();
        bail!("VM timed out after {}s and was killed", args.timeout);
    }
    // A kernel splat fails the run even when the command passed: KASAN,
    // lockdep, sleeping in atomic context, WARN_ON, hung tasks, RCU stalls.
    let text = fs::read_to_string(&console).unwrap_or_default();
    let splats = find_splats(&text);
    if !splats.is_empty() {
        eprintln!(
            "----- kernel splats in the guest console ({}) -----",
            console.display()
        );
        for s in &splats {
            eprintln!("{s}");
        }
        eprintln!("----- end of splats -----");
        bail!(
            "the kernel reported {} problem(s) during the run (see above)",
            splats.len()
        );
    }
    match code {
        Some(c) => {
            if c != 0 {
                show_console();
            }
            progress(&format!(
                "VM exited in {:.1}s, command exit code {c}",
                start.elapsed().as_secs_f64()
            ));
            Ok(c)
        }
        None => {
            show_console();
            if !qemu_err.trim().is_empty() {
                eprintln!("qemu: {}", qemu_err.trim());
            }
            bail!(
                "the guest stopped without reporting an exit code (qemu {status:?}): it crashed or panicked before the command finished"
            )
        }
    }
}

fn print_line(args: &VmArgs, line: &str) {
    match &args.label {
        Some(l) => println!("[{l}] {line}"),
        None => println!("{line}"),
    }
}

/// Reads new console output from `pos`, calling `f` for each complete line.
fn pump_console(path: &Path, pos: &mut u64, pending: &mut String, mut f: impl FnMut(&str)) {
    let Ok(mut file) = fs::File::open(path) else {
        return;
    };
    if file.seek(SeekFrom::Start(*pos)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    if file.read_to_end(&mut buf).is_err() {
        return;
    }
    *pos += buf.len() as u64;
    pending.push_str(&String::from_utf8_lossy(&buf));
    while let Some(i) = pending.find('\n') {
        let line: String = pending.drain(..=i).collect();
        f(line.trim_end_matches(['\r', '\n']));
    }
}

/// Removes a directory when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Markers of kernel problem reports on the console.
const SPLAT_MARKERS: [&str; 9] = [
    "BUG: ",
    "WARNING: ",
    "kernel BUG at",
    "Oops",
    "general protection fault",
    "UBSAN:",
    "Kernel panic",
    "blocked for more than",
    "rcu_sched self-detected stall",
];

/// Each kernel problem report in `console`, with the 12 lines that follow it.
fn find_splats(console: &str) -> Vec<String> {
    let lines: Vec<&str> = console.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| SPLAT_MARKERS.iter().any(|m| l.contains(m)))
        .map(|(i, _)| lines[i..(i + 12).min(lines.len())].join("\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::find_splats;

    #[test]
    fn finds_kasan_lockdep_and_warn_reports() {
        let console = "[    1.0] rzram: 2 device(s) created\n\
                       test swap ... ok\n\
                       [    2.0] BUG: KASAN: slab-use-after-free in rzram_read+0x10\n\
                       [    2.1] Read of size 8\n\
                       [    3.0] WARNING: possible circular locking dependency detected\n\
                       [    4.0] BUG: sleeping function called from invalid context\n";
        let found = find_splats(console);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].contains("Read of size 8"),
            "context follows the marker"
        );
        assert!(find_splats("test result: ok. 5 passed\nok 1 rzram_slots\n").is_empty());
    }
}

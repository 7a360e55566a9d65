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

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::{BufRead as _, Read as _, Write as _},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    kernel,
    util::{progress, repo_root, run},
    vm,
};

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

// ---------------------------------------------------------------------------
// The workload: a process with a hot part, a cold majority and a warm slice
// read back once (refaults), verifying everything at the end.

#[derive(clap::Args)]
pub struct WorkloadArgs {
    pub mib: u64,
    pub hot_mib: u64,
    pub secs: u64,
}

const PAGE: usize = 4096;

/// Words of a made-up vocabulary: text-like pages that lz4 compresses
/// about 2-4x, as swapped-out heaps often do.
const WORDS: [&str; 32] = [
    "zram ",
    "keeps ",
    "swapped ",
    "pages ",
    "compressed ",
    "in ",
    "RAM; ",
    "writeback ",
    "moves ",
    "cold ",
    "ones ",
    "to ",
    "a ",
    "backing ",
    "device ",
    "and ",
    "the ",
    "daemon ",
    "decides ",
    "which, ",
    "how ",
    "many ",
    "and ",
    "when. ",
    "rzram ",
    "is ",
    "zram ",
    "in ",
    "Rust, ",
    "with ",
    "async ",
    "bios.\n",
];

/// Pools the pages are cut from, built once: text from the vocabulary
/// and pseudo-random bytes. Copying slices keeps the fill fast even in a
/// debug build under TCG.
struct Pools {
    text: Vec<u8>,
    random: Vec<u8>,
}

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

impl Pools {
    fn new() -> Pools {
        let mut next = xorshift(42);
        let mut text = Vec::with_capacity(256 << 10);
        while text.len() < 256 << 10 {
            text.extend_from_slice(WORDS[(next() % 32) as usize].as_bytes());
        }
        let random = (0..(1 << 20) / 8)
            .flat_map(|_| next().to_le_bytes())
            .collect();
        Pools { text, random }
    }

    /// The content of page `i`: one in 8 zero (same-filled), one in 8
    /// pseudo-random (incompressible), the rest text; each non-zero page
    /// starts with its number, so no two are the same.
    fn fill_page(&self, i: u64, page: &mut [u8]) {
        let h = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize;
        let pool = match i % 8 {
            0 => {
                page.fill(0);
                return;
            }
            1 => &self.random,
            _ => &self.text,
        };
        let at = h % (pool.len() - PAGE);
        page.copy_from_slice(&pool[at..at + PAGE]);
        page[..16].copy_from_slice(format!("page {i:010}\n").as_bytes());
    }
}

pub fn workload(args: &WorkloadArgs) -> Result<()> {
    let pages = (args.mib << 20) as usize / PAGE;
    let hot = ((args.hot_mib << 20) as usize / PAGE).min(pages);
    let warm = (hot..(hot * 3).min(pages)).step_by(2);
    let t = Instant::now();
    let pools = Pools::new();
    let mut mem = vec![0u8; pages * PAGE];
    for (i, p) in mem.chunks_mut(PAGE).enumerate() {
        pools.fill_page(i as u64, p);
    }
    println!(
        "workload: filled {} MiB in {:.1}s ({} MiB hot, re-read every 200 ms; the rest goes cold)",
        args.mib,
        t.elapsed().as_secs_f64(),
        args.hot_mib
    );
    let hold = Instant::now();
    let mut sum = 0u64;
    let mut warm_done = false;
    while hold.elapsed() < Duration::from_secs(args.secs) {
        for p in 0..hot {
            sum = sum.wrapping_add(u64::from(mem[p * PAGE + 17]));
        }
        if !warm_done && hold.elapsed() > Duration::from_secs(args.secs * 3 / 5) {
            let t = Instant::now();
            let n = warm.len();
            for p in warm.clone() {
                sum = sum.wrapping_add(u64::from(mem[p * PAGE + 5]));
            }
            println!(
                "workload: read back {n} cold pages ({} MiB) once in {:.1}s: written-back ones refault",
                (n * PAGE) >> 20,
                t.elapsed().as_secs_f64()
            );
            warm_done = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("workload: hold over, checking all {} MiB", args.mib);
    let t = Instant::now();
    let mut want = vec![0u8; PAGE];
    let mut bad = 0usize;
    for (i, p) in mem.chunks(PAGE).enumerate() {
        pools.fill_page(i as u64, &mut want);
        if p != want.as_slice() {
            bad += 1;
        }
    }
    std::hint::black_box(sum);
    println!(
        "workload: {} of {pages} pages differ (checked in {:.1}s)",
        bad,
        t.elapsed().as_secs_f64()
    );
    if bad > 0 {
        bail!("{bad} pages came back wrong");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The guest side.

#[derive(clap::Args)]
pub struct GuestArgs {
    #[arg(long)]
    pub zramctl: PathBuf,
    #[arg(long, default_value_t = 96)]
    pub mib: u64,
    #[arg(long, default_value_t = 40)]
    pub secs: u64,
}

const DEV: &str = "rzram0";
const PORT: u16 = 9466;
const SLICE_MIB: u64 = 512;
/// The token bucket: a 16 MiB burst, then 1 MiB/s.
const BURST_MIB: u64 = 16;
const RATE_MIB: u64 = 1;

fn sh(cmd: &str) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn say(cmd: &str) -> Result<String> {
    println!("# {cmd}");
    let out = sh(cmd)?;
    if !out.trim().is_empty() {
        println!("{}", out.trim_end());
    }
    Ok(out)
}

fn sysfs(attr: &str) -> String {
    fs::read_to_string(format!("/sys/block/{DEV}/{attr}")).unwrap_or_default()
}

fn nums(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn mib(bytes: f64) -> String {
    format!("{:.1}M", bytes / 1048576.0)
}

fn scrape() -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", PORT)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The first sample of `name` whose labels include every `k="v"`.
pub fn metric(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().find_map(|l| {
        if l.starts_with('#') {
            return None;
        }
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())?
    })
}

/// Touched slots idle for at least `secs` (the `zramctl_slot_age_slots`
/// buckets whose lower bound is at least `secs`), and all touched slots.
fn idle_slots(page: &str, secs: f64) -> Option<(f64, f64)> {
    let mut idle = 0.0;
    let mut all = None;
    for l in page
        .lines()
        .filter(|l| l.starts_with("zramctl_slot_age_slots{"))
    {
        let (series, value) = l.rsplit_once(' ')?;
        let v: f64 = value.parse().ok()?;
        let ge: f64 = series
            .split("age_ge_seconds=\"")
            .nth(1)?
            .split('"')
            .next()?
            .parse()
            .ok()?;
        if ge >= secs {
            idle += v;
        }
        *all.get_or_insert(0.0) += v;
    }
    all.map(|a| (idle, a))
}

/// One observation of the device and the daemon.
#[derive(Clone, Default)]
struct Tick {
    t: f64,
    orig: f64,
    compr: f64,
    mem_used: f64,
    swap_used: f64,
    bd_count: u64,
    bd_reads: u64,
    bd_writes: u64,
    batch: u64,
    wb_pages: f64,
    budget_left: f64,
    idle_age: f64,
    idle_slots: f64,
    refaults: f64,
    p99_ms: Option<f64>,
    skips_budget: f64,
    metrics_bytes: usize,
}

impl Tick {
    /// Compression ratio of what is in RAM: orig_data_size counts
    /// written-back pages too (as upstream's does), so they come off.
    fn ram_ratio(&self) -> f64 {
        let in_ram = self.orig - self.bd_count as f64 * PAGE as f64;
        if self.compr > 0.0 && in_ram > 1048576.0 {
            in_ram / self.compr
        } else {
            0.0
        }
    }
}

fn swap_used_bytes() -> f64 {
    let m = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |k: &str| {
        m.lines()
            .find_map(|l| {
                l.strip_prefix(k)?
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    (kb("SwapTotal:") - kb("SwapFree:")) * 1024.0
}

fn observe(t0: Instant) -> (Tick, Option<String>) {
    let mm = nums(&sysfs("mm_stat"));
    let bd = nums(&sysfs("bd_stat"));
    let page = scrape();
    let g = |name: &str| {
        page.as_deref()
            .and_then(|p| metric(p, name, &[("device", DEV)]))
            .unwrap_or(0.0)
    };
    let idle_age = g("zramctl_idle_age_threshold_seconds");
    let tick = Tick {
        t: t0.elapsed().as_secs_f64(),
        orig: mm.first().copied().unwrap_or(0) as f64,
        compr: mm.get(1).copied().unwrap_or(0) as f64,
        mem_used: mm.get(2).copied().unwrap_or(0) as f64,
        swap_used: swap_used_bytes(),
        bd_count: bd.first().copied().unwrap_or(0),
        bd_reads: bd.get(1).copied().unwrap_or(0),
        bd_writes: bd.get(2).copied().unwrap_or(0),
        batch: sysfs("writeback_batch_size").trim().parse().unwrap_or(0),
        wb_pages: g("zramctl_writeback_pages_total"),
        budget_left: g("zramctl_budget_remaining_bytes"),
        idle_age,
        idle_slots: page
            .as_deref()
            .and_then(|p| idle_slots(p, idle_age))
            .map_or(0.0, |x| x.0),
        refaults: g("zramctl_refaults_total"),
        p99_ms: page
            .as_deref()
            .and_then(|p| metric(p, "zramctl_backing_write_p99_seconds", &[("device", DEV)]))
            .map(|s| s * 1e3),
        skips_budget: page
            .as_deref()
            .and_then(|p| {
                metric(
                    p,
                    "zramctl_writeback_skips_total",
                    &[("device", DEV), ("reason", "budget_spent")],
                )
            })
            .unwrap_or(0.0),
        metrics_bytes: page.as_ref().map_or(0, String::len),
    };
    (tick, page)
}

/// Kills (SIGTERM) a child and waits up to 10 s.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn results_dir() -> PathBuf {
    std::env::var_os("ZRAMCTL_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// Workload phases, for the monitor: filling, holding, checking, done.
const FILLING: u8 = 0;
const HOLDING: u8 = 1;
const CHECKING: u8 = 2;
const DONE: u8 = 3;

pub fn guest(args: &GuestArgs) -> Result<()> {
    let t0 = Instant::now();
    let r = results_dir();
    let z = args.zramctl.display().to_string();
    println!("\n=== 1. rzram, the Rust zram driver, with a backing device ===");
    let modroot = std::env::var("ZRAMCTL_MODROOT").context("ZRAMCTL_MODROOT")?;
    let release = std::env::var("ZRAMCTL_KERNEL_RELEASE").context("ZRAMCTL_KERNEL_RELEASE")?;
    say(&format!(
        "insmod {modroot}/lib/modules/{release}/kernel/drivers/block/rzram/rzram.ko num_devices=1"
    ))?;
    let disk = std::env::var("ZRAMCTL_BACKING_DISK").unwrap_or_else(|_| "/dev/vda".into());
    say(&format!(
        "dmsetup create demo-backing --table '0 {} linear {disk} 0'",
        SLICE_MIB * 2048
    ))?;
    let backing = format!(
        "/dev/{}",
        sh("dmsetup info -c --noheadings -o blkdevname demo-backing")?.trim()
    );
    say(&format!(
        "{z} setup {DEV} --size 512M --algorithm lz4 --backing-dev {backing}"
    ))?;
    // Multi-page bios (rzram only): one bio per run of consecutive blocks.
    let _ = fs::write(format!("/sys/block/{DEV}/writeback_bio_pages"), "32");
    say(&format!(
        "mkswap /dev/{DEV} >/dev/null && swapon --discard /dev/{DEV} && swapon --show"
    ))?;
    let cg_max = (args.mib / 3).max(16);
    say(&format!(
        "echo +memory > /sys/fs/cgroup/cgroup.subtree_control; mkdir -p /sys/fs/cgroup/demo && \
         echo {cg_max}M > /sys/fs/cgroup/demo/memory.max && echo 'memory cgroup demo: memory.max {cg_max}M'"
    ))?;

    println!("\n=== 2. the policy daemon, eBPF probes on, short periods for a demo ===");
    let config = format!(
        r#"# cargo xtask demo: periods of seconds instead of minutes.
[daemon]
interval_secs = 1
metrics_listen = "127.0.0.1:{PORT}"
probes = "auto"
[policy]
budget_per_day = {per_day}
budget_burst = "{BURST_MIB}M"
max_pages_per_round = 4096
period_secs = 3
min_interval_secs = 1
idle_age_initial_secs = 4
idle_age_floor_secs = 4
idle_age_ceiling_secs = 64
refault_window_secs = 60
refault_high = 0.05
refault_low = 0.01
backoff_initial_secs = 1
backoff_max_secs = 4
batch_min = 1
batch_max = 64
batch_initial = 4
target_p99_ms = 40.0
[[device]]
name = "{DEV}"
"#,
        per_day = RATE_MIB * 86_400 * 1048576
    );
    let cfg_path = r.join("daemon.toml");
    fs::write(&cfg_path, &config)?;
    println!(
        "config {}: every 3 s, idle age 4 s (rising on refaults), budget {BURST_MIB} MiB burst + {RATE_MIB} MiB/s, batch 4 adapting to backing p99 40 ms",
        cfg_path.display()
    );
    say(&format!(
        "{z} daemon --check --config {}",
        cfg_path.display()
    ))?;
    let log_path = r.join("daemon.log");
    let mut daemon = Command::new(&args.zramctl)
        .args(["daemon", "--config"])
        .arg(&cfg_path)
        .env("ZRAMCTL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log_path)?)
        .spawn()
        .context("starting zramctl daemon")?;
    let t = Instant::now();
    let page = loop {
        if let Some(st) = daemon.try_wait()? {
            bail!(
                "the daemon exited ({st}):\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if let Some(p) = scrape() {
            break p;
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("no /metrics after 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "daemon pid {} up in {:.1}s; GET http://127.0.0.1:{PORT}/metrics: 200, {} bytes, probe_up {}",
        daemon.id(),
        t.elapsed().as_secs_f64(),
        page.len(),
        metric(&page, "zramctl_probe_up", &[]).unwrap_or(-1.0)
    );
    for l in fs::read_to_string(&log_path).unwrap_or_default().lines() {
        println!("daemon: {l}");
    }
    // zramctl top over the whole run: rzram's tracepoints (writeback
    // latency, refaults) and what each probe costs; SIGTERM ends it with
    // one JSON report.
    sh("sysctl -qw kernel.bpf_stats_enabled=1")?;
    let top_json = r.join("top.json");
    let mut top = Command::new(&args.zramctl)
        .args(["top", DEV, "--once", "--json", "--interval", "3600"])
        .stdout(fs::File::create(&top_json)?)
        .stderr(fs::File::create(r.join("top.stderr"))?)
        .spawn()
        .context("starting zramctl top")?;
    println!(
        "zramctl top {DEV} --once --json attached (pid {})",
        top.id()
    );

    println!(
        "\n=== 3. a {} MiB process in a {cg_max} MiB cgroup: it swaps to {DEV} ===",
        args.mib
    );
    let me = std::env::current_exe()?;
    let hot = (args.mib / 12).max(4);
    let mut work = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > /sys/fs/cgroup/demo/cgroup.procs && exec {} demo-workload {} {hot} {}",
            me.display(),
            args.mib,
            args.secs
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the workload")?;
    let phase = Arc::new(AtomicU8::new(FILLING));
    let work_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let out = work.stdout.take().expect("piped");
        let phase = phase.clone();
        let lines = work_lines.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                println!("  >> {l}");
                if l.contains("filled") {
                    phase.store(HOLDING, Ordering::Relaxed);
                } else if l.contains("hold over") {
                    phase.store(CHECKING, Ordering::Relaxed);
                }
                lines.lock().unwrap().push(l);
            }
            phase.store(DONE, Ordering::Relaxed);
        })
    };
    println!(
        "{:>5} {:>8} {:>8} {:>6} {:>10} {:>9} {:>9} {:>9} {:>5} {:>8} {:>8}",
        "t",
        "swapped",
        "zram-RAM",
        "ratio",
        "idle≥age",
        "wb-pages",
        "wb-total",
        "budget",
        "batch",
        "refaults",
        "bd-p99"
    );
    let start = Instant::now();
    let mut ticks: Vec<Tick> = Vec::new();
    let mut last = Tick::default();
    let mut held: Option<Tick> = None;
    let mut last_page = String::new();
    let mut done_at: Option<Instant> = None;
    let mut due = Instant::now();
    loop {
        // A line every 2 s, or as soon as the last one is out when the
        // guest is too busy for that (no catching up).
        due = (due + Duration::from_secs(2)).max(Instant::now());
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let (tick, page) = observe(start);
        if let Some(p) = page {
            last_page = p;
        }
        let ph = phase.load(Ordering::Relaxed);
        if ph == HOLDING {
            held = Some(tick.clone());
        }
        // Events first: what changed since the last line.
        if last.t > 0.0 {
            if tick.batch != last.batch {
                println!(
                    "  ** batch size {} -> {} (AIMD on the backing device's p99 write latency, now {}, target 40 ms)",
                    last.batch,
                    tick.batch,
                    tick.p99_ms.map_or("-".into(), |p| format!("{p:.1} ms"))
                );
            }
            if (tick.idle_age - last.idle_age).abs() > 0.5 {
                println!(
                    "  ** idle-age threshold {:.0}s -> {:.0}s ({})",
                    last.idle_age,
                    tick.idle_age,
                    if tick.idle_age > last.idle_age {
                        "refaults above refault_high: colder pages only"
                    } else {
                        "few refaults: back towards the floor"
                    }
                );
            }
            if tick.skips_budget > last.skips_budget {
                println!(
                    "  ** budget spent: the daemon skips a round until the bucket refills ({} left)",
                    mib(tick.budget_left)
                );
            }
            if tick.bd_reads > last.bd_reads {
                println!(
                    "  ** {} pages read back from the backing device (refaults)",
                    tick.bd_reads - last.bd_reads
                );
            }
        }
        println!(
            "{:>4.0}s {:>8} {:>8} {:>5.2}x {:>10.0} {:>+9.0} {:>9} {:>9} {:>5} {:>8.0} {:>8}",
            tick.t,
            mib(tick.swap_used),
            mib(tick.mem_used),
            tick.ram_ratio(),
            tick.idle_slots,
            tick.bd_writes as f64 - last.bd_writes as f64,
            mib(tick.bd_writes as f64 * PAGE as f64),
            mib(tick.budget_left),
            tick.batch,
            tick.refaults.max(tick.bd_reads as f64),
            tick.p99_ms.map_or("-".into(), |p| format!("{p:.1}ms"))
        );
        ticks.push(tick.clone());
        last = tick;
        if ph == DONE && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        if done_at.is_some_and(|d| d.elapsed() > Duration::from_secs(3)) {
            break;
        }
        if start.elapsed() > Duration::from_secs(args.secs * 4 + 120) {
            println!("the workload takes too long: stopping it");
            let _ = work.kill();
        }
    }
    let _ = reader.join();
    let work_status = work.wait()?;
    let metrics_ok = scrape();
    println!(
        "GET /metrics: {}",
        metrics_ok
            .as_ref()
            .map_or("no answer".into(), |p| format!("200, {} bytes", p.len()))
    );
    if let Some(p) = &metrics_ok {
        last_page = p.clone();
    }
    fs::write(r.join("metrics.txt"), &last_page)?;
    terminate(&mut top);
    terminate(&mut daemon);
    let top_text = fs::read_to_string(&top_json).unwrap_or_default();
    let top: Option<serde_json::Value> = serde_json::from_str(&top_text).ok();
    let dlog = fs::read_to_string(&log_path).unwrap_or_default();
    let rounds = dlog
        .lines()
        .filter(|l| l.contains("writeback round"))
        .count();
    let _ = sh(&format!("swapoff /dev/{DEV}"));

    // The summary.
    let held = held.unwrap_or_else(|| last.clone());
    let rz = top.as_ref().and_then(|v| {
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
        .as_ref()
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
    let elapsed = t0.elapsed().as_secs_f64();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# cargo xtask demo: summary\n\n\
         Our Linux 7.3 under QEMU (TCG), rzram0 (lz4, 512 MiB) with a {SLICE_MIB} MiB dm-linear slice of the VM disk \
         as backing device and swap; `zramctl daemon` with eBPF probes; a {} MiB process ({hot} MiB hot) in a \
         {cg_max} MiB memory cgroup for {} s. Guest time {:.0} s.\n",
        args.mib, args.secs, elapsed
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
            last_page.len()
        ),
    );
    row(
        "workload",
        work_lines
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default(),
    );
    fs::write(r.join("summary.md"), &s)?;
    let mut tsv = String::from(
        "t_secs\tswap_bytes\tzram_mem_used\torig\tcompr\tidle_slots\tbd_writes\tbd_reads\tbudget_left\tbatch\tidle_age\tbacking_p99_ms\n",
    );
    for t in &ticks {
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
            "programs": top.as_ref().map(|v| v["programs"].clone()),
        }))?,
    )?;
    println!("\n=== 4. summary ===\n{s}");
    if !work_status.success() {
        bail!("the workload failed: {work_status}");
    }
    if last.bd_writes == 0 {
        bail!("nothing was written back");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_deterministic_and_mixed() {
        let pools = Pools::new();
        let (mut a, mut b) = (vec![0u8; PAGE], vec![0u8; PAGE]);
        pools.fill_page(10, &mut a);
        pools.fill_page(10, &mut b);
        assert_eq!(a, b);
        pools.fill_page(8, &mut a);
        assert!(a.iter().all(|&x| x == 0), "one in 8 is zero");
        pools.fill_page(11, &mut b);
        assert!(b.starts_with(b"page 0000000011\n"));
    }

    #[test]
    fn idle_slots_from_cumulative_ages() {
        let page = "zramctl_slot_age_slots{device=\"rzram0\",age_ge_seconds=\"2\",age_lt_seconds=\"4\"} 10\n\
                    zramctl_slot_age_slots{device=\"rzram0\",age_ge_seconds=\"4\",age_lt_seconds=\"8\"} 20\n\
                    zramctl_slot_age_slots{device=\"rzram0\",age_ge_seconds=\"8\",age_lt_seconds=\"16\"} 60\n\
                    zramctl_slot_age_slots{device=\"rzram0\",age_ge_seconds=\"16\",age_lt_seconds=\"+Inf\"} 10\n";
        assert_eq!(idle_slots(page, 8.0), Some((70.0, 100.0)));
        assert_eq!(
            metric(page, "zramctl_slot_age_slots", &[("age_lt_seconds", "8")]),
            Some(20.0)
        );
    }
}

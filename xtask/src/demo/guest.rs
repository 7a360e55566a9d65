//! `demo-guest` (in the VM): the demo itself, in four steps: rzram with a
//! backing device and swap; the daemon and `zramctl top`; the workload,
//! watched every two seconds; the summary ([`super::summary`]).

use std::{
    fs,
    io::BufRead as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    BURST_MIB, DEV, PORT, RATE_MIB, SLICE_MIB,
    observe::{Tick, metric, mib, observe, results_dir, say, scrape, sh, terminate},
    summary::{Summary, write_summary},
    workload::PAGE,
};

#[derive(clap::Args)]
pub struct GuestArgs {
    #[arg(long)]
    pub zramctl: PathBuf,
    #[arg(long, default_value_t = 96)]
    pub mib: u64,
    #[arg(long, default_value_t = 40)]
    pub secs: u64,
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
    let cg_max = setup_rzram(args, &z)?;
    let (mut daemon, log_path) = start_daemon(args, &z, &r)?;
    let (mut top, top_json) = start_top(args, &r)?;
    let hot = (args.mib / 12).max(4);
    let run = run_workload(args, cg_max, hot)?;
    let metrics_ok = scrape();
    println!(
        "GET /metrics: {}",
        metrics_ok
            .as_ref()
            .map_or("no answer".into(), |p| format!("200, {} bytes", p.len()))
    );
    let last_page = metrics_ok.unwrap_or(run.last_page);
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
    let last = run.ticks.last().cloned().unwrap_or_default();
    write_summary(
        &r,
        &Summary {
            mib: args.mib,
            secs: args.secs,
            hot,
            cg_max,
            guest_secs: t0.elapsed().as_secs_f64(),
            held: run.held.unwrap_or_else(|| last.clone()),
            ticks: &run.ticks,
            rounds,
            top: top.as_ref(),
            last_page: &last_page,
            workload_last_line: run.work_lines.last().cloned().unwrap_or_default(),
        },
    )?;
    if !run.work_status.success() {
        bail!("the workload failed: {}", run.work_status);
    }
    if last.bd_writes == 0 {
        bail!("nothing was written back");
    }
    Ok(())
}

/// Step 1: rzram0 with a dm-linear slice of the scratch disk as backing
/// device, swap on it, and a memory cgroup; returns the cgroup's MiB.
fn setup_rzram(args: &GuestArgs, z: &str) -> Result<u64> {
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

    Ok(cg_max)
}

/// Step 2: the daemon on a short-period config, up when `/metrics` answers;
/// returns it and its log file.
fn start_daemon(args: &GuestArgs, z: &str, r: &Path) -> Result<(Child, PathBuf)> {
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
    Ok((daemon, log_path))
}

/// `zramctl top` over the whole run: rzram's tracepoints (writeback
/// latency, refaults) and what each probe costs; SIGTERM ends it with one
/// JSON report. Returns it and the report's file.
fn start_top(args: &GuestArgs, r: &Path) -> Result<(Child, PathBuf)> {
    sh("sysctl -qw kernel.bpf_stats_enabled=1")?;
    let top_json = r.join("top.json");
    let top = Command::new(&args.zramctl)
        .args(["top", DEV, "--once", "--json", "--interval", "3600"])
        .stdout(fs::File::create(&top_json)?)
        .stderr(fs::File::create(r.join("top.stderr"))?)
        .spawn()
        .context("starting zramctl top")?;
    println!(
        "zramctl top {DEV} --once --json attached (pid {})",
        top.id()
    );

    Ok((top, top_json))
}

/// What step 3 saw.
struct Run {
    ticks: Vec<Tick>,
    /// The last tick while the workload held its memory.
    held: Option<Tick>,
    last_page: String,
    work_status: ExitStatus,
    work_lines: Vec<String>,
}

/// Step 3: the workload in the cgroup, a line every 2 s (and the events
/// since the last one) until it is done.
fn run_workload(args: &GuestArgs, cg_max: u64, hot: u64) -> Result<Run> {
    println!(
        "\n=== 3. a {} MiB process in a {cg_max} MiB cgroup: it swaps to {DEV} ===",
        args.mib
    );
    let me = std::env::current_exe()?;
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
            print_events(&last, &tick);
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
    let work_lines = work_lines.lock().unwrap().clone();
    Ok(Run {
        ticks,
        held,
        last_page,
        work_status,
        work_lines,
    })
}

/// The events since the last line: batch size and idle-age moves, the
/// budget running out, refaults.
fn print_events(last: &Tick, tick: &Tick) {
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

//! `cargo xtask bench footprint`: the daemon's cost at real scale, on the
//! host's own kernel and zram (not the VM: TCG would measure the emulator).
//!
//! For each disk size (256 MiB, 4 GiB, 16 GiB) a zram device is hot-added
//! (never the host's zram0, which host tests may use) and half filled with
//! highly compressible pages that are not same-filled (a 7-byte pattern:
//! every page is stored in zsmalloc, ~40 bytes each, so 8 GiB of data takes
//! a few hundred MiB of RAM, and every written slot is a slot the probes and
//! the daemon track). Then the release build of `zramctl daemon` (eBPF
//! probes on) manages it, once with the default config (10 s steps) and
//! once with 1 s steps, for a window idle and a window of fio 4K random
//! reads over the written half at a fixed rate (50k/s: random over the
//! whole written range, the worst case for the slot array's cache misses).
//! `/metrics` is scraped every 15 s during each window, as Prometheus would.
//! Per window: the daemon's CPU (utime + stime from /proc/PID/stat) as %
//! of one core, its VmRSS/VmHWM and RssAnon, and each of its eBPF
//! programs' ns/event from the kernel's BPF stats (`run_time_ns` and
//! `run_cnt` of the program fds it holds, /proc/PID/fdinfo; names from
//! the kernel's program list). The device is reset and removed afterwards.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use super::{BenchArgs, fio_json};
use crate::util::{progress, repo_root, run};

/// Disk sizes, MiB.
pub const SIZES_MIB: [u64; 3] = [256, 4096, 16384];
/// Slot accesses per second of the loaded window (fio 4K random reads).
pub const RATE: u32 = 50_000;
/// (label, interval_secs or None for the shipped default).
const CONFIGS: [(&str, Option<f64>); 2] =
    [("default (10 s steps)", None), ("1 s steps", Some(1.0))];

/// One measured window.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub size_mib: u64,
    pub config: String,
    pub rate: u32,
    pub secs: f64,
    pub cpu_percent: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub rss_anon_kib: u64,
    /// fio's achieved 4K reads/s (0 when idle).
    pub fio_iops: f64,
    /// (program, runs in the window, ns/event) from the kernel's BPF stats.
    pub programs: Vec<(String, u64, f64)>,
}

/// A hot-added zram device, reset and removed on drop.
struct HotZram {
    id: u32,
}

impl HotZram {
    fn add() -> Result<Self> {
        let id: u32 = fs::read_to_string("/sys/class/zram-control/hot_add")
            .context(
                "hot_add a zram device (/sys/class/zram-control/hot_add; needs root and zram)",
            )?
            .trim()
            .parse()
            .context("hot_add answer")?;
        Ok(HotZram { id })
    }
    fn name(&self) -> String {
        format!("zram{}", self.id)
    }
    fn attr(&self, a: &str) -> PathBuf {
        PathBuf::from(format!("/sys/block/zram{}/{a}", self.id))
    }
}

impl Drop for HotZram {
    fn drop(&mut self) {
        let _ = fs::write(self.attr("reset"), "1");
        if let Err(e) = fs::write("/sys/class/zram-control/hot_remove", self.id.to_string()) {
            eprintln!("footprint: hot_remove zram{}: {e}", self.id);
        }
    }
}

/// The daemon under measurement, SIGTERMed (then killed) on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of `pid`, clock ticks (all threads).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`, which may hold spaces.
    let rest = &s[s.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14 and stime 15 of stat, i.e. 11 and 12 after comm.
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)?
                    .trim_start_matches(':')
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// prog_id -> (run_time_ns, run_cnt) of every BPF program fd `pid` holds.
fn prog_stats(pid: u32) -> BTreeMap<u32, (u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(link) = fs::read_link(e.path()) else {
            continue;
        };
        if link.to_string_lossy() != "anon_inode:bpf-prog" {
            continue;
        }
        let Ok(info) = fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            e.file_name().to_string_lossy()
        )) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(t), Some(n)) =
            (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
        {
            out.insert(id as u32, (t, n));
        }
    }
    out
}

/// Names of loaded BPF programs by id.
fn prog_names() -> BTreeMap<u32, String> {
    aya::programs::loaded_programs()
        .flatten()
        .map(|p| (p.id(), p.name_as_str().unwrap_or("?").to_owned()))
        .collect()
}

fn fio_read_iops(json_text: &str) -> f64 {
    fio_json(json_text, "fio's output")
        .ok()
        .and_then(|v| v["jobs"][0]["read"]["iops"].as_f64())
        .unwrap_or(0.0)
}

/// GET /metrics from 127.0.0.1:`port` (what a Prometheus scrape costs the
/// daemon); the page's length, 0 if it did not answer.
fn scrape(port: u16) -> usize {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out.len()
}

/// Seconds between the scrapes of a window (Prometheus' default interval).
const SCRAPE_EVERY: u64 = 15;

fn start_daemon(bin: &Path, dir: &Path, dev: &str, interval: Option<f64>) -> Result<Daemon> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cfg = String::from("[daemon]\n");
    if let Some(i) = interval {
        let _ = writeln!(cfg, "interval_secs = {i}");
    }
    let _ = write!(
        cfg,
        "metrics_listen = \"127.0.0.1:{port}\"\nprobes = \"auto\"\n[[device]]\nname = \"{dev}\"\n"
    );
    let path = dir.join("daemon.toml");
    fs::write(&path, cfg)?;
    let log = dir.join(format!(
        "daemon-{dev}-{}.log",
        interval.map_or("default".into(), |i| format!("{i}s"))
    ));
    let mut child = Command::new(bin)
        .args(["daemon", "--config"])
        .arg(&path)
        .env_remove("NOTIFY_SOCKET")
        .env("ZRAMCTL_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    // Copy stderr to the log, noting "ready".
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().context("stderr")?;
    let mut logf = fs::File::create(&log)?;
    std::thread::spawn(move || {
        use std::io::Write as _;
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = writeln!(logf, "{l}");
            if l.contains("ready") {
                let _ = tx.send(());
            }
        }
    });
    let d = Daemon { child, port };
    rx.recv_timeout(Duration::from_secs(60))
        .with_context(|| format!("the daemon did not get ready in 60 s: {}", log.display()))?;
    Ok(d)
}

/// Runs the benchmark on the host and writes `target/bench/footprint`.
pub fn bench(args: &BenchArgs) -> Result<()> {
    let out = repo_root().join("target/bench").join(&args.footprint_out);
    if args.report_only {
        let cells = load(&out)?;
        println!("{}", markdown(&cells));
        return Ok(());
    }
    if unsafe_geteuid() != 0 {
        bail!("bench footprint runs on the host's zram and eBPF: run it as root");
    }
    if Command::new("fio").arg("--version").output().is_err() {
        bail!("bench footprint needs fio (scripts/setup.sh installs it)");
    }
    fs::create_dir_all(&out)?;
    let bin = out.join("zramctl");
    let _ = fs::remove_file(&bin);
    match &args.footprint_bin {
        Some(b) => {
            fs::copy(b, &bin).with_context(|| format!("copying {}", b.display()))?;
        }
        None => {
            progress("bench footprint: cargo build --release -p zramctl");
            run(
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                    .current_dir(repo_root())
                    .args(["build", "--release", "--locked", "-q", "-p", "zramctl"]),
            )?;
            fs::copy(repo_root().join("target/release/zramctl"), &bin)?;
        }
    }
    let stats_path = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_before = fs::read_to_string(stats_path).unwrap_or_else(|_| "0".into());
    fs::write(stats_path, "1").context("enabling kernel.bpf_stats_enabled")?;
    let r = measure(args, &bin, &out);
    let _ = fs::write(stats_path, stats_before.trim());
    let cells = r?;
    save(&out, &cells)?;
    let md = markdown(&cells);
    fs::write(out.join("footprint.md"), &md)?;
    println!("{md}");
    progress(&format!(
        "footprint: {}",
        out.join("footprint.md").display()
    ));
    Ok(())
}

fn unsafe_geteuid() -> u32 {
    // Parsed from /proc to keep xtask free of libc.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(u32::MAX)
}

fn measure(args: &BenchArgs, bin: &Path, out: &Path) -> Result<Vec<Cell>> {
    let secs = args.footprint_secs;
    let mut cells = Vec::new();
    let sizes: Vec<u64> = if args.footprint_sizes.is_empty() {
        SIZES_MIB.to_vec()
    } else {
        args.footprint_sizes.clone()
    };
    for size in sizes {
        let z = HotZram::add()?;
        let dev = z.name();
        fs::write(z.attr("disksize"), format!("{size}M"))
            .with_context(|| format!("{dev}: disksize {size}M"))?;
        let half = size / 2;
        progress(&format!(
            "footprint: {dev} {size} MiB, writing {half} MiB of compressible pages"
        ));
        let t = Instant::now();
        run(Command::new("fio").args([
            "--name=fill",
            &format!("--filename=/dev/{dev}"),
            "--rw=write",
            "--bs=1M",
            &format!("--size={half}M"),
            "--direct=1",
            "--ioengine=psync",
            // 7 bytes: no page is same-filled; each compresses to ~40 bytes.
            "--buffer_pattern=\"zramctl\"",
            "--output=/dev/null",
        ]))?;
        let mm = fs::read_to_string(z.attr("mm_stat")).unwrap_or_default();
        progress(&format!(
            "footprint: filled in {:.1}s; mm_stat {}",
            t.elapsed().as_secs_f64(),
            mm.trim()
        ));
        for (label, interval) in CONFIGS {
            let d = start_daemon(bin, out, &dev, interval)?;
            let pid = d.child.id();
            // Let it attach and take its first steps.
            std::thread::sleep(Duration::from_secs(3));
            for rate in [0, RATE] {
                let names = prog_names();
                let p0 = prog_stats(pid);
                let c0 = cpu_ticks(pid)?;
                let t0 = Instant::now();
                // Scraped like Prometheus would, every 15 s from the start.
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let scraper = {
                    let (stop, port) = (stop.clone(), d.port);
                    std::thread::spawn(move || {
                        let mut n = 0;
                        let t = Instant::now();
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            if t.elapsed() >= Duration::from_secs(n * SCRAPE_EVERY) {
                                scrape(port);
                                n += 1;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    })
                };
                let mut fio_iops = 0.0;
                if rate == 0 {
                    std::thread::sleep(Duration::from_secs(secs));
                } else {
                    let o = Command::new("fio")
                        .args([
                            "--name=load",
                            &format!("--filename=/dev/{dev}"),
                            "--rw=randread",
                            "--bs=4k",
                            &format!("--size={half}M"),
                            "--direct=1",
                            "--ioengine=psync",
                            // Two jobs: one psync thread cannot keep 50k/s
                            // on a busy 2-core machine.
                            "--numjobs=2",
                            "--group_reporting",
                            &format!("--rate_iops={}", rate / 2),
                            &format!("--runtime={secs}"),
                            "--time_based",
                            "--output-format=json",
                        ])
                        .output()
                        .context("fio")?;
                    fio_iops = fio_read_iops(&String::from_utf8_lossy(&o.stdout));
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = scraper.join();
                let c1 = cpu_ticks(pid)?;
                let wall = t0.elapsed().as_secs_f64();
                let p1 = prog_stats(pid);
                let mut programs = Vec::new();
                for (id, (t1, n1)) in &p1 {
                    let (t0, n0) = p0.get(id).copied().unwrap_or((0, 0));
                    let runs = n1.saturating_sub(n0);
                    let ns = if runs > 0 {
                        t1.saturating_sub(t0) as f64 / runs as f64
                    } else {
                        0.0
                    };
                    let name = names.get(id).cloned().unwrap_or_else(|| format!("id{id}"));
                    programs.push((name, runs, ns));
                }
                programs.sort_by(|a, b| a.0.cmp(&b.0));
                let cell = Cell {
                    size_mib: size,
                    config: label.into(),
                    rate,
                    secs: wall,
                    cpu_percent: 100.0 * (c1 - c0) as f64 / clk_tck() / wall,
                    rss_kib: status_kib(pid, "VmRSS"),
                    hwm_kib: status_kib(pid, "VmHWM"),
                    rss_anon_kib: status_kib(pid, "RssAnon"),
                    fio_iops,
                    programs,
                };
                progress(&format!(
                    "footprint: {size} MiB, {label}, {}: CPU {:.2} %, RSS {:.1} MiB (anon {:.1}), fio {:.0}/s",
                    if rate == 0 {
                        "idle".to_string()
                    } else {
                        format!("{rate}/s")
                    },
                    cell.cpu_percent,
                    cell.rss_kib as f64 / 1024.0,
                    cell.rss_anon_kib as f64 / 1024.0,
                    cell.fio_iops
                ));
                cells.push(cell);
            }
            drop(d);
        }
        drop(z);
    }
    Ok(cells)
}

fn clk_tck() -> f64 {
    // USER_HZ is 100 on every Linux architecture this runs on.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn save(dir: &Path, cells: &[Cell]) -> Result<()> {
    let v: Vec<_> = cells
        .iter()
        .map(|c| {
            json!({
                "size_mib": c.size_mib, "config": c.config, "rate": c.rate, "secs": c.secs,
                "cpu_percent": c.cpu_percent, "rss_kib": c.rss_kib, "hwm_kib": c.hwm_kib,
                "rss_anon_kib": c.rss_anon_kib, "fio_iops": c.fio_iops,
                "programs": c.programs.iter().map(|(n, r, ns)| json!({"program": n, "runs": r, "ns_per_event": ns})).collect::<Vec<_>>(),
            })
        })
        .collect();
    fs::write(
        dir.join("footprint.json"),
        serde_json::to_string_pretty(&v)?,
    )?;
    Ok(())
}

/// The cells of the last run (`target/bench/footprint/footprint.json`).
pub fn load(dir: &Path) -> Result<Vec<Cell>> {
    let text = fs::read_to_string(dir.join("footprint.json"))
        .with_context(|| format!("{}/footprint.json", dir.display()))?;
    let v: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    Ok(v.iter()
        .map(|c| Cell {
            size_mib: c["size_mib"].as_u64().unwrap_or(0),
            config: c["config"].as_str().unwrap_or("").into(),
            rate: c["rate"].as_u64().unwrap_or(0) as u32,
            secs: c["secs"].as_f64().unwrap_or(0.0),
            cpu_percent: c["cpu_percent"].as_f64().unwrap_or(0.0),
            rss_kib: c["rss_kib"].as_u64().unwrap_or(0),
            hwm_kib: c["hwm_kib"].as_u64().unwrap_or(0),
            rss_anon_kib: c["rss_anon_kib"].as_u64().unwrap_or(0),
            fio_iops: c["fio_iops"].as_f64().unwrap_or(0.0),
            programs: c["programs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["program"].as_str().unwrap_or("").into(),
                        p["runs"].as_u64().unwrap_or(0),
                        p["ns_per_event"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect(),
        })
        .collect())
}

fn size_label(mib: u64) -> String {
    if mib >= 1024 {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

pub fn markdown(cells: &[Cell]) -> String {
    let mut md = format!(
        "`zramctl daemon` (release build, eBPF probes on) managing a hot-added zram device of the host's own kernel \
         ({}), half full of compressible pages that are not same-filled; per window of ~{:.0} s: idle, or fio 4K \
         random reads over the written half at {RATE}/s (two jobs, O_DIRECT, psync; the achieved rate is shown); \
         `/metrics` scraped every {SCRAPE_EVERY} s as Prometheus would. CPU from /proc/PID/stat (utime + \
         stime) as % of one core, memory from /proc/PID/status at the window's end (VmRSS includes the eBPF maps \
         the daemon mmaps; RssAnon is its own heap), each program's ns/event from the kernel's BPF stats over the \
         window. Targets (issue 15): CPU <= 1 % and RSS <= 16 MiB at every size and load, flat with size.\n\n\
         | disk size | config | load | fio reads/s | CPU | VmRSS | RssAnon | VmHWM | programs: ns/event (events/s) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| "Linux".into()),
        cells.first().map_or(0.0, |c| c.secs),
    );
    for c in cells {
        let progs: Vec<String> = c
            .programs
            .iter()
            .filter(|(_, runs, _)| *runs > 0)
            .map(|(n, runs, ns)| format!("{n} {ns:.0} ({:.0}/s)", *runs as f64 / c.secs))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} % | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} |",
            size_label(c.size_mib),
            c.config,
            if c.rate == 0 {
                "idle".to_string()
            } else {
                format!("{}k/s", c.rate / 1000)
            },
            c.fio_iops,
            c.cpu_percent,
            c.rss_kib as f64 / 1024.0,
            c.rss_anon_kib as f64 / 1024.0,
            c.hwm_kib as f64 / 1024.0,
            if progs.is_empty() {
                "-".into()
            } else {
                progs.join(", ")
            }
        );
    }
    // Growth with size: the largest over the smallest, per config and load.
    let mut growth = String::new();
    for (label, _) in CONFIGS {
        for rate in [0, RATE] {
            let row: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.config == label && c.rate == rate)
                .collect();
            if let (Some(a), Some(b)) = (row.first(), row.last())
                && a.size_mib != b.size_mib
            {
                let _ = writeln!(
                    growth,
                    "- {label}, {}: {} -> {}: CPU {:.2} % -> {:.2} %, VmRSS {:.1} -> {:.1} MiB ({:+.2} MiB per GiB of disk)",
                    if rate == 0 { "idle" } else { "50k/s" },
                    size_label(a.size_mib),
                    size_label(b.size_mib),
                    a.cpu_percent,
                    b.cpu_percent,
                    a.rss_kib as f64 / 1024.0,
                    b.rss_kib as f64 / 1024.0,
                    (b.rss_kib as f64 - a.rss_kib as f64)
                        / 1024.0
                        / ((b.size_mib - a.size_mib) as f64 / 1024.0)
                );
            }
        }
    }
    if !growth.is_empty() {
        let _ = write!(md, "\nGrowth with disk size:\n\n{growth}");
    }
    md
}

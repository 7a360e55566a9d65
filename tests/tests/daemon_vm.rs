//! The real `zramctl daemon` on rzram in the VM: a swap workload written
//! back within the token-bucket budget, the batch size under a foreground
//! fio, a device reset and re-setup under the daemon, and a daemon that may
//! not load BPF. Each test sets up `rzram0` with a dm-linear slice of the
//! VM's scratch disk as backing device, starts the daemon (the built binary)
//! with a config written to `$ZRAMCTL_RESULTS` (its log goes next to it),
//! scrapes its `/metrics` on a free loopback port and reads sysfs. A guard
//! stops the daemon, fio and the workload, swapoffs, removes the cgroup,
//! resets the device and removes the slice, also when a test fails.
//!
//! `#[ignore]`d on the host; `cargo xtask vm-test` runs them in the VM.

use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use zramctl_tests::{
    PAGE, SECTORS_PER_MIB, bd_stat, free_port, load_rzram, read_pages_direct, results_dir,
    scratch_disk, sh, sysfs_read, sysfs_write, time_scale, wait_for, write_pages_direct,
    zramctl_bin,
};

const DEV: &str = "rzram0";
/// The backing slice: the first 256 MiB of the scratch disk. Foreground
/// fio writes to its second half, never to the slice.
const SLICE_MIB: u64 = 256;
const FIO_OFFSET_MIB: u64 = 512;

fn bin(name: &str) -> PathBuf {
    zramctl_bin().with_file_name(name)
}

// ---------------------------------------------------------------------------
// The rig: device, backing slice, swap, cgroup, daemon, helpers; undone on drop.

struct Rig {
    test: &'static str,
    backing: PathBuf,
    dm_name: String,
    swap: bool,
    cgroup: Option<PathBuf>,
    daemon: Option<Daemon>,
    /// Background processes (fio) killed on drop.
    children: Vec<Child>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Rig {
    /// rzram0 reset, with a fresh 256 MiB dm slice of the scratch disk as
    /// backing device (not yet attached).
    fn new(test: &'static str) -> Rig {
        assert!(
            std::env::var_os("ZRAMCTL_VM").is_some(),
            "run with cargo xtask vm-test"
        );
        load_rzram();
        let _ = Command::new("swapoff")
            .arg(format!("/dev/{DEV}"))
            .stderr(Stdio::null())
            .status();
        sysfs_write(DEV, "reset", "1").unwrap_or_else(|e| panic!("{DEV}: reset: errno {e}"));
        sysfs_write(DEV, "writeback_limit_enable", "0").unwrap();
        sysfs_write(DEV, "writeback_batch_size", "32").unwrap();
        let _ = sysfs_write(DEV, "writeback_bio_pages", "32");
        let dm_name = format!("dvm-{DEV}");
        let _ = Command::new("dmsetup")
            .args(["remove", "--retry", &dm_name])
            .stderr(Stdio::null())
            .status();
        sh(&format!(
            "dmsetup create {dm_name} --table '0 {} linear {} 0'",
            SLICE_MIB * SECTORS_PER_MIB,
            scratch_disk().display()
        ));
        let kname = sh(&format!(
            "dmsetup info -c --noheadings -o blkdevname {dm_name}"
        ));
        let backing = PathBuf::from(format!("/dev/{}", kname.trim()));
        wait_for(Duration::from_secs(10), "the dm device node", || {
            backing.exists()
        });
        Rig {
            test,
            backing,
            dm_name,
            swap: false,
            cgroup: None,
            daemon: None,
            children: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// backing_dev, then disksize.
    fn setup(&self, disksize: &str) {
        sysfs_write(DEV, "backing_dev", self.backing.to_str().unwrap()).unwrap_or_else(|e| {
            panic!(
                "{DEV}: backing_dev <- {}: errno {e}",
                self.backing.display()
            )
        });
        sysfs_write(DEV, "disksize", disksize)
            .unwrap_or_else(|e| panic!("{DEV}: disksize <- {disksize}: errno {e}"));
    }

    fn swapon(&mut self) {
        sh(&format!(
            "mkswap /dev/{DEV} >/dev/null && swapon --discard /dev/{DEV}"
        ));
        self.swap = true;
    }

    fn cgroup(&mut self, max: &str) -> PathBuf {
        let cg = PathBuf::from(format!("/sys/fs/cgroup/dvm-{}", self.test));
        sh(&format!(
            "echo +memory > /sys/fs/cgroup/cgroup.subtree_control; mkdir -p {cg} && echo {max} > {cg}/memory.max",
            cg = cg.display()
        ));
        self.cgroup = Some(cg.clone());
        cg
    }

    /// Starts the daemon on `config` (a TOML text with `@PORT@` for the
    /// metrics port), under `wrapper` (argv prefix, e.g. setpriv) if given,
    /// and waits for its first /metrics.
    fn start_daemon(&mut self, config: &str, wrapper: &[&str]) -> &Daemon {
        let port = free_port();
        let config = config.replace("@PORT@", &port.to_string());
        let dir = results_dir();
        let path = dir.join(format!("daemon-{}.toml", self.test));
        let log = dir.join(format!("daemon-{}.log", self.test));
        std::fs::write(&path, &config).unwrap();
        let logf = std::fs::File::create(&log).unwrap();
        let zramctl = zramctl_bin();
        let mut argv: Vec<&std::ffi::OsStr> = wrapper.iter().map(std::ffi::OsStr::new).collect();
        argv.push(zramctl.as_os_str());
        argv.extend(["daemon", "--config"].map(std::ffi::OsStr::new));
        argv.push(path.as_os_str());
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .env("ZRAMCTL_LOG", "info,zramctl=debug")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", zramctl.display()));
        let started = Instant::now();
        self.daemon = Some(Daemon {
            child,
            port,
            log,
            started,
        });
        let d = self.daemon.as_mut().unwrap();
        let t = Instant::now();
        loop {
            if let Some(st) = d.child.try_wait().unwrap() {
                panic!("the daemon exited ({st}) at start:\n{}", d.log_text());
            }
            if d.try_scrape().is_some() {
                break;
            }
            assert!(
                t.elapsed() < scaled(60),
                "no /metrics after {:?}:\n{}",
                scaled(60),
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "[{}] daemon up after {:.1}s, metrics on port {port}",
            self.test,
            started.elapsed().as_secs_f64()
        );
        self.daemon.as_ref().unwrap()
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("daemon started")
    }

    /// Runs `f` on a thread until the rig stops it (drop) or `stop()`.
    fn spawn(&mut self, f: impl FnOnce(Arc<AtomicBool>) + Send + 'static) {
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || f(stop)));
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.stop.store(false, Ordering::Relaxed);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(mut d) = self.daemon.take() {
            d.terminate();
            if std::thread::panicking() {
                eprintln!("daemon log ({}):\n{}", d.log.display(), d.log_text());
            }
        }
        if let Some(cg) = &self.cgroup {
            let _ = std::fs::write(cg.join("cgroup.kill"), "1");
            for _ in 0..50 {
                if std::fs::remove_dir(cg).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if self.swap {
            let _ = Command::new("swapoff").arg(format!("/dev/{DEV}")).status();
        }
        for _ in 0..50 {
            if sysfs_write(DEV, "reset", "1").is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = sysfs_write(DEV, "writeback_limit_enable", "0");
        let _ = Command::new("dmsetup")
            .args(["remove", "--retry", &self.dm_name])
            .status();
    }
}

struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
    started: Instant,
}

impl Daemon {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn try_scrape(&self) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(scaled(10))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    }

    /// /metrics, asserting the daemon is alive and answers.
    #[track_caller]
    fn scrape(&mut self) -> Metrics {
        self.assert_alive();
        Metrics(self.try_scrape().unwrap_or_else(|| {
            panic!("/metrics did not answer:\n{}", self.log_text());
        }))
    }

    #[track_caller]
    fn assert_alive(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("the daemon exited ({st}):\n{}", self.log_text());
        }
    }

    /// SIGTERM, then SIGKILL after 10 s (scaled); the exit status if it stopped.
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < scaled(10) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

/// A /metrics page.
struct Metrics(String);

impl Metrics {
    /// The value of the first sample of `name` whose labels contain every
    /// `k="v"` of `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.lines().find_map(|l| {
            if l.starts_with('#') {
                return None;
            }
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, r)) => (n, r),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse().ok())?
        })
    }

    /// [`Self::get`] for `device="rzram0"`, panicking with the page when missing.
    #[track_caller]
    fn dev(&self, name: &str) -> f64 {
        self.get(name, &[("device", DEV)])
            .unwrap_or_else(|| panic!("no {name}{{device=\"{DEV}\"}} in /metrics:\n{}", self.0))
    }

    fn has_family(&self, name: &str) -> bool {
        self.0.contains(&format!("# TYPE {name} "))
    }
}

fn sysfs_u64(attr: &str) -> u64 {
    sysfs_read(DEV, attr).trim().parse().unwrap()
}

/// Writes `pages` pages of seed `seed` to rzram0 in 64-page O_DIRECT writes.
fn fill(seed: u64, pages: u64) {
    let dev = PathBuf::from(format!("/dev/{DEV}"));
    let mut p = 0;
    while p < pages {
        let n = 64.min(pages - p);
        write_pages_direct(&dev, seed, p, n).unwrap();
        p += n;
    }
}

#[track_caller]
fn verify(seed: u64, pages: u64) {
    let dev = PathBuf::from(format!("/dev/{DEV}"));
    let mut bad = Vec::new();
    let mut p = 0;
    while p < pages {
        let n = 256.min(pages - p);
        bad.extend(read_pages_direct(&dev, seed, p, n).unwrap());
        p += n;
    }
    assert!(
        bad.is_empty(),
        "{} of {pages} pages differ, first {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
}

const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------
// 1. Swap workload, token-bucket budget, /metrics.

/// Budget: 2 MiB burst, refilled at 256 KiB/s. The workload's cold part
/// (about 60 MiB swapped out) is far more than that, so the budget binds.
const BURST: u64 = 2 * MIB;

/// Budget refill rate, bytes/s: slower on a slower kernel, whose workload
/// takes longer, so the budget binds as much.
fn rate() -> u64 {
    (256 << 10) / u64::from(time_scale())
}

/// `secs` seconds, longer on a slower kernel (`time_scale`): for waits
/// that only bound a hang and phases of a workload measured in rounds.
fn scaled(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(time_scale()))
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn swap_workload_is_written_back_within_budget() {
    let t0 = Instant::now();
    let mut rig = Rig::new("budget");
    rig.setup("256M");
    rig.swapon();
    let cg = rig.cgroup("32M");
    let config = format!(
        r#"
[daemon]
interval_secs = 1
metrics_listen = "127.0.0.1:@PORT@"
[policy]
budget_per_day = {per_day}
budget_burst = {BURST}
max_pages_per_round = 4096
period_secs = 2
min_interval_secs = 1
idle_age_initial_secs = 4
idle_age_floor_secs = 2
idle_age_ceiling_secs = 120
refault_window_secs = 60
# The hot part, pushed out while the rest is filled, refaults at first;
# this test is about the budget, so the idle age stays at its floor.
refault_high = 1000.0
backoff_initial_secs = 1
backoff_max_secs = 4
batch_min = 1
batch_max = 64
[[device]]
name = "{DEV}"
"#,
        per_day = rate() * 86_400
    );
    rig.start_daemon(&config, &[]);
    let started = rig.daemon().started;
    // 80 MiB through a 32 MiB cgroup: ~60 MiB goes to rzram and stays
    // there (cold) for 40 s while 8 MiB is re-read; then all is checked.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} 80 8 40",
            cg.display(),
            bin("swapload").display()
        ))
        .output()
        .expect("running swapload");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{}", stdout.trim());
    assert!(
        out.status.success() && stdout.contains(" 0 words differ"),
        "swapload failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (m, (bd_count, bd_reads, bd_writes)) = scrape_settled(&mut rig, 20);
    let elapsed = started.elapsed().as_secs_f64();
    let written = bd_writes * PAGE as u64;
    let allowed = BURST as f64 + rate() as f64 * elapsed;
    println!(
        "bd_stat: count {bd_count} reads {bd_reads} writes {bd_writes}; written {:.1} MiB in {elapsed:.1}s, budget {:.1} MiB ({:.0} %)",
        written as f64 / MIB as f64,
        allowed / MIB as f64,
        100.0 * written as f64 / allowed
    );
    assert!(bd_writes > 0, "nothing was written back");
    assert!(
        (written as f64) <= allowed + PAGE as f64,
        "{written} bytes written back in {elapsed:.1}s: over the budget of {allowed:.0}"
    );
    assert!(
        bd_reads > 0,
        "the final check read written-back pages from the backing device"
    );
    // The budget bound: the cold data was far more than the budget, so
    // most of the budget was used and some rounds found it spent.
    let spent = m.get(
        "zramctl_writeback_skips_total",
        &[("device", DEV), ("reason", "budget_spent")],
    );
    println!(
        "skips budget_spent {spent:?}, rounds {:?}",
        m.get(
            "zramctl_writeback_rounds_total",
            &[("device", DEV), ("trigger", "period")]
        )
    );
    assert!(
        written as f64 >= 0.5 * allowed,
        "the budget was binding: only {written} of {allowed:.0} bytes used"
    );
    // /metrics: the families the dashboard reads, with this device's values.
    for fam in [
        "zramctl_backing_bytes",
        "zramctl_backing_read_bytes_total",
        "zramctl_backing_written_bytes_total",
        "zramctl_writeback_pages_total",
        "zramctl_writeback_batch_size",
        "zramctl_policy_batch_size",
        "zramctl_budget_remaining_bytes",
        "zramctl_budget_spent_bytes_total",
        "zramctl_orig_data_bytes",
        "zramctl_idle_age_threshold_seconds",
    ] {
        assert!(m.has_family(fam), "no {fam} in /metrics:\n{}", m.0);
        m.dev(fam);
    }
    let wb_pages = m.dev("zramctl_writeback_pages_total") as u64;
    println!(
        "metrics: writeback_pages {wb_pages}, backing_written {:.0}, budget left {:.0}, spent {:.0}, batch {}",
        m.dev("zramctl_backing_written_bytes_total"),
        m.dev("zramctl_budget_remaining_bytes"),
        m.dev("zramctl_budget_spent_bytes_total"),
        m.dev("zramctl_writeback_batch_size"),
    );
    // The daemon counts what the kernel charged to writeback_limit. rzram
    // charges a page at submit and keeps the charge when the slot was freed
    // or rewritten while its write was in flight, but bd_writes leaves such
    // writes out; so the daemon's count may be a little higher, never lower,
    // and it is within the budget too.
    assert!(
        wb_pages >= bd_writes && wb_pages - bd_writes <= bd_writes / 20 + 64,
        "the daemon counts what the kernel wrote: {wb_pages} pages vs bd_writes {bd_writes}"
    );
    assert!(
        (wb_pages * PAGE as u64) as f64 <= allowed + PAGE as f64,
        "{wb_pages} pages charged: over the budget of {allowed:.0} bytes"
    );
    assert_eq!(
        m.dev("zramctl_backing_written_bytes_total") as u64,
        written,
        "bd_stat bd_writes in bytes"
    );
    assert_eq!(
        m.get("zramctl_probe_up", &[]),
        Some(1.0),
        "eBPF probes attached in the guest:\n{}",
        m.0
    );
    assert!(
        m.get(
            "zramctl_backing_latency_seconds_count",
            &[("device", DEV), ("op", "write")]
        )
        .unwrap_or(0.0)
            > 0.0,
        "backing-device write latency seen by eBPF:\n{}",
        m.0
    );
    // SIGTERM: a clean stop that puts the writeback limit back as found.
    let st = rig
        .daemon()
        .terminate()
        .expect("the daemon stops on SIGTERM");
    assert!(st.success(), "daemon exit: {st}");
    assert_eq!(sysfs_read(DEV, "writeback_limit_enable").trim(), "0");
    println!("test took {:.1}s", t0.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// 2. Batch size under a foreground fio on the same disk.

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn batch_size_falls_under_foreground_io_and_rises_after() {
    let t0 = Instant::now();
    let mut rig = Rig::new("batch");
    rig.setup("256M");
    // Small bios: many latency samples per window.
    let _ = sysfs_write(DEV, "writeback_bio_pages", "8");
    // Between the backing writes' p99 without fio (8-16 ms under TCG) and
    // with it (30-33 ms, held for its whole run): the batch falls above
    // 24 ms and rises below 16 (20 ms and the band). At 40 ms only a spike
    // when fio started lowered it, and the test passed or failed by that
    // spike (it failed 3 of 4 runs on a quiet machine, with and without
    // this session's writeback engine).
    let target_ms: f64 = std::env::var("ZRAMCTL_TEST_TARGET_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0)
        * f64::from(time_scale());
    let config = format!(
        r#"
[daemon]
interval_secs = 2
metrics_listen = "127.0.0.1:@PORT@"
[policy]
budget_per_day = "100000G"
budget_burst = "1G"
max_pages_per_round = 4096
period_secs = 2
min_interval_secs = 1
idle_age_initial_secs = 2
idle_age_floor_secs = 1
idle_age_ceiling_secs = 2
backoff_initial_secs = 1
backoff_max_secs = 4
batch_min = 1
batch_max = 64
batch_initial = 32
target_p99_ms = {target_ms}
batch_band = 0.2
[[device]]
name = "{DEV}"
"#
    );
    // A writer keeps making cold pages: 64-page O_DIRECT writes cycling
    // over the disk at about 1000 pages/s.
    let pages_written = Arc::new(AtomicU64::new(0));
    {
        let pw = pages_written.clone();
        rig.spawn(move |stop| {
            let dev = PathBuf::from(format!("/dev/{DEV}"));
            let total = (256 * MIB) / PAGE as u64;
            let mut p = 0;
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                write_pages_direct(&dev, 7, p, 64).unwrap();
                p = (p + 64) % total;
                let n = pw.fetch_add(64, Ordering::Relaxed) + 64;
                let due = Duration::from_millis(n);
                if let Some(wait) = due.checked_sub(t.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        });
    }
    rig.start_daemon(&config, &[]);
    let trace_start = Instant::now();
    let mut trace: Vec<(f64, &str, u64, f64, Option<f64>)> = Vec::new();
    let pw2 = pages_written.clone();
    let mut sample = |rig: &mut Rig, phase: &'static str, secs: u64| {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_secs(1));
            let m = rig.daemon().scrape();
            let sys = sysfs_u64("writeback_batch_size");
            let want = m.dev("zramctl_policy_batch_size");
            let p99 = m.get("zramctl_backing_write_p99_seconds", &[("device", DEV)]);
            let t = trace_start.elapsed().as_secs_f64();
            println!(
                "{t:6.1}s {phase:6} batch sysfs {sys:3} policy {want:3} backing p99 {} (bd_writes {}, pages written {})",
                p99.map_or("-".into(), |p| format!("{:.2} ms", p * 1e3)),
                bd_stat(DEV).2,
                pw2.load(Ordering::Relaxed)
            );
            trace.push((t, phase, sys, want, p99));
        }
    };
    // Let the batch size settle without foreground I/O: at least 16 s, and
    // until it is back to 12 or more (a loaded host makes TCG latency spiky;
    // "falls under fio" needs a start worth falling from), at most 50 s.
    let scale = u64::from(time_scale());
    sample(&mut rig, "idle", 16 * scale);
    let idle_until = trace_start + scaled(50);
    while sysfs_u64("writeback_batch_size") < 12 && Instant::now() < idle_until {
        sample(&mut rig, "idle", 2);
    }
    let fio = Command::new("fio")
        .args([
            "--name=foreground",
            &format!("--filename={}", scratch_disk().display()),
            &format!("--offset={}M", FIO_OFFSET_MIB),
            "--size=512M",
            "--rw=randwrite",
            "--bs=4k",
            "--direct=1",
            "--ioengine=libaio",
            "--iodepth=64",
            "--time_based",
            &format!("--runtime={}", 36 * scale),
            "--thread",
            "--output=/dev/null",
            "--eta=never",
        ])
        .spawn()
        .expect("running fio");
    rig.children.push(fio);
    sample(&mut rig, "fio", 36 * scale);
    let _ = rig.children[0].wait();
    sample(&mut rig, "after", 36 * scale);
    rig.stop_threads();
    // Where the idle phase ended, when fio started.
    let before = trace
        .iter()
        .filter(|s| s.1 == "idle")
        .map(|s| s.2)
        .next_back()
        .unwrap();
    let (t_min, min_fio) = trace
        .iter()
        .filter(|s| s.1 == "fio")
        .map(|s| (s.0, s.2))
        .min_by_key(|s| s.1)
        .unwrap();
    let max_after = trace
        .iter()
        .filter(|s| s.1 == "after" || (s.1 == "fio" && s.0 > t_min))
        .map(|s| s.2)
        .max()
        .unwrap();
    let p99s = |phase: &str| {
        let v: Vec<f64> = trace
            .iter()
            .filter(|s| s.1 == phase)
            .filter_map(|s| s.4)
            .collect();
        v.iter().copied().fold(0.0f64, f64::max) * 1e3
    };
    println!(
        "batch: {before} before fio, down to {min_fio} under fio (at {t_min:.0}s), up to {max_after} after; max backing p99 idle {:.2} ms, fio {:.2} ms, after {:.2} ms; target {target_ms} ms; {} pages written by the test",
        p99s("idle"),
        p99s("fio"),
        p99s("after"),
        pages_written.load(Ordering::Relaxed)
    );
    let (_, _, bd_writes) = bd_stat(DEV);
    assert!(bd_writes > 0, "writeback happened");
    assert!(
        min_fio < before,
        "the batch size fell under foreground I/O: {before} -> {min_fio}"
    );
    assert!(
        max_after > min_fio,
        "the batch size rose again after fio: {min_fio} -> {max_after}"
    );
    println!("test took {:.1}s", t0.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// 3. Survival: a reset and re-setup under the daemon; no BPF.

const SURVIVE_CONFIG: &str = r#"
[daemon]
interval_secs = 1
metrics_listen = "127.0.0.1:@PORT@"
[policy]
budget_per_day = "100000G"
budget_burst = "1G"
period_secs = 1
min_interval_secs = 1
idle_age_initial_secs = 2
idle_age_floor_secs = 1
idle_age_ceiling_secs = 2
backoff_initial_secs = 1
backoff_max_secs = 2
[[device]]
name = "rzram0"
"#;

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn daemon_survives_a_reset_and_resumes_on_the_new_device() {
    let t0 = Instant::now();
    let mut rig = Rig::new("reset");
    rig.setup("128M");
    fill(1, 4096);
    rig.start_daemon(SURVIVE_CONFIG, &[]);
    wait_for(scaled(40), "a first writeback", || bd_stat(DEV).2 > 0);
    let m = rig.daemon().scrape();
    assert_eq!(m.get("zramctl_probe_up", &[]), Some(1.0), "{}", m.0);
    verify(1, 4096);
    let before = bd_stat(DEV);
    println!("before reset: bd_stat {before:?}");
    // Reset under the daemon (it may be mid-round: retry while busy).
    wait_for(scaled(30), "reset", || {
        sysfs_write(DEV, "reset", "1").is_ok()
    });
    std::thread::sleep(scaled(3));
    let m = rig.daemon().scrape();
    assert_eq!(m.dev("zramctl_initialized"), 0.0, "{}", m.0);
    assert_eq!(m.dev("zramctl_writeback_active"), 0.0, "{}", m.0);
    let pages_before = m.dev("zramctl_writeback_pages_total");
    let steps = m.get("zramctl_daemon_steps_total", &[]).unwrap();
    // Re-setup, smaller, with the same backing device, and new data.
    rig.setup("64M");
    fill(2, 2048);
    wait_for(scaled(40), "writeback on the new device", || {
        bd_stat(DEV).2 > 0
    });
    // /metrics shows the round once it has ended (up to 60 s).
    let deadline = Instant::now() + scaled(60);
    let m = loop {
        let m = rig.daemon().scrape();
        if m.dev("zramctl_writeback_pages_total") > pages_before || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!(
        "after re-setup: bd_stat {:?}, writeback pages {} -> {}",
        bd_stat(DEV),
        pages_before,
        m.dev("zramctl_writeback_pages_total")
    );
    assert!(m.get("zramctl_daemon_steps_total", &[]).unwrap() > steps);
    assert_eq!(m.dev("zramctl_initialized"), 1.0);
    assert_eq!(m.dev("zramctl_writeback_active"), 1.0);
    assert_eq!(m.dev("zramctl_disksize_bytes"), (64 * MIB) as f64);
    assert!(m.dev("zramctl_writeback_pages_total") > pages_before);
    assert_eq!(
        m.get("zramctl_probe_up", &[]),
        Some(1.0),
        "probes re-attached to the new device:\n{}",
        m.0
    );
    assert!(
        m.get("zramctl_slots_untouched", &[("device", DEV)])
            .unwrap_or(0.0)
            <= (64 * MIB / 4096) as f64,
        "slot tracking sized for the new disk:\n{}",
        m.0
    );
    verify(2, 2048);
    let log = rig.daemon().log_text();
    assert!(!log.contains("panicked"), "{log}");
    let st = rig.daemon().terminate().expect("stops on SIGTERM");
    assert!(st.success(), "daemon exit: {st}");
    println!("test took {:.1}s", t0.elapsed().as_secs_f64());
}

/// /metrics shows a round's pages when the round ends (a scrape during one
/// gets the page of the last round): scrapes until a scrape lies between
/// two equal bd_stat reads and counts their writes, for up to `secs`.
/// Returns that scrape and bd_stat.
fn scrape_settled(rig: &mut Rig, secs: u64) -> (Metrics, (u64, u64, u64)) {
    let deadline = Instant::now() + scaled(secs);
    loop {
        let before = bd_stat(DEV);
        let m = rig.daemon().scrape();
        let after = bd_stat(DEV);
        let counted = m.get("zramctl_writeback_pages_total", &[("device", DEV)]);
        if (before == after && counted >= Some(after.2 as f64)) || Instant::now() > deadline {
            return (m, after);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn daemon_refused_bpf_falls_back_to_idle_marking() {
    let t0 = Instant::now();
    let mut rig = Rig::new("nobpf");
    rig.setup("128M");
    fill(3, 4096);
    // Without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN the kernel refuses
    // every BPF program; sysfs stays writable for root.
    rig.start_daemon(
        SURVIVE_CONFIG,
        &[
            "setpriv",
            "--bounding-set",
            "-bpf,-perfmon,-sys_admin",
            "--",
        ],
    );
    wait_for(scaled(60), "writeback by idle marking", || {
        bd_stat(DEV).2 > 0
    });
    let (m, bd) = scrape_settled(&mut rig, 60);
    println!(
        "bd_stat {:?}; probe_up {:?}; {}",
        bd,
        m.get("zramctl_probe_up", &[]),
        m.0.lines()
            .find(|l| l.starts_with("zramctl_probe_info"))
            .unwrap_or("")
    );
    assert_eq!(m.get("zramctl_probe_up", &[]), Some(0.0), "{}", m.0);
    assert!(m.dev("zramctl_writeback_pages_total") > 0.0);
    let log = rig.daemon().log_text();
    assert!(log.contains("eBPF probes not used"), "{log}");
    verify(3, 4096);
    // A second page set, written after the first rounds, goes too.
    let (_, _, w1) = bd_stat(DEV);
    write_pages_direct(Path::new("/dev/rzram0"), 4, 8192, 1024).unwrap();
    wait_for(scaled(40), "more writeback", || bd_stat(DEV).2 > w1);
    let st = rig.daemon().terminate().expect("stops on SIGTERM");
    assert!(st.success(), "daemon exit: {st}");
    println!("test took {:.1}s", t0.elapsed().as_secs_f64());
}

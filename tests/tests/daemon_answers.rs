//! The daemon keeps answering during a long writeback round (issue 15):
//! rzram0's backing device is a dm-delay of the VM's scratch disk that
//! holds every write 100 ms, rzram writes one page per bio with one bio in
//! flight, so a round of 2048 pages would take about 200 s. While the round
//! runs (observed for 60 s): `/metrics` answers every scrape within 1 s,
//! the systemd watchdog (`WATCHDOG=1` on `$NOTIFY_SOCKET`, every 1 s with
//! `WATCHDOG_USEC=2000000`) keeps coming, a SIGHUP is served; then SIGTERM
//! stops the daemon within 5 s, with the writeback limit back as found and
//! every page readable and intact (the delay table swapped for a plain
//! linear one first, so the check does not take minutes).
//!
//! `#[ignore]`d on the host; xtask's `VM_TEST_TARGETS` runs it in the VM.

use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixDatagram,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use zramctl_tests::{
    load_rzram, read_pages_direct, scratch_disk, sh, sysfs_read, sysfs_write, write_pages_direct,
    zramctl_bin,
};

const DEV: &str = "rzram0";
const DM: &str = "dans-delay";
/// 256 MiB of the scratch disk.
const SECTORS: u64 = 256 * 2048;
const WRITE_DELAY_MS: u64 = 100;
/// 8 MiB of data: about 200 s of writeback at one page per 100 ms.
const PAGES: u64 = 2048;
const SEED: u64 = 1515;
/// What the admin set before the daemon: the daemon must put it back.
const ADMIN_LIMIT: u64 = 12345;

/// One scrape: when it was sent, how long the answer took or why none came.
type Scrape = (Instant, Result<Duration, String>);

fn results_dir() -> PathBuf {
    std::env::var_os("ZRAMCTL_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn bd_writes() -> u64 {
    sysfs_read(DEV, "bd_stat")
        .split_whitespace()
        .nth(2)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// Undoes everything on drop, also when the test fails.
struct Guard {
    daemon: Option<Child>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A plain table, so a reset does not wait on delayed writes.
        let _ = swap_table_linear();
        for _ in 0..50 {
            if sysfs_write(DEV, "reset", "1").is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = sysfs_write(DEV, "writeback_limit_enable", "0");
        let _ = sysfs_write(DEV, "writeback_batch_size", "32");
        let _ = sysfs_write(DEV, "writeback_bio_pages", "32");
        let _ = Command::new("dmsetup")
            .args(["remove", "--retry", DM])
            .status();
        let _ = std::fs::remove_file(notify_path());
    }
}

fn swap_table_linear() -> std::io::Result<std::process::ExitStatus> {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dmsetup suspend --nolockfs --noflush {DM} && dmsetup reload {DM} --table '0 {SECTORS} linear {} 0' && dmsetup resume {DM}",
            scratch_disk().display()
        ))
        .status()
}

fn notify_path() -> PathBuf {
    // tmpfs: a unix socket cannot live on the 9p results dir.
    PathBuf::from("/tmp/zramctl-daemon-answers.notify")
}

/// GET /metrics; the time it took, or the error.
fn scrape(port: u16) -> Result<(Duration, String), String> {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )
    .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read after {:.1}s: {e}", t.elapsed().as_secs_f64()))?;
    if !out.starts_with("HTTP/1.1 200") {
        return Err(format!("answer: {:?}", out.lines().next()));
    }
    Ok((t.elapsed(), out))
}

#[test]
#[ignore = "VM only"]
fn daemon_answers_during_a_long_round() {
    assert!(
        std::env::var_os("ZRAMCTL_VM").is_some(),
        "run with cargo xtask vm-test"
    );
    let targets = sh("dmsetup targets");
    assert!(
        targets.lines().any(|l| l.starts_with("delay ")),
        "the kernel has no dm-delay target (CONFIG_DM_DELAY in kernel/configs): `dmsetup targets` lists:\n{targets}"
    );
    load_rzram();
    let _ = Command::new("swapoff")
        .arg(format!("/dev/{DEV}"))
        .stderr(Stdio::null())
        .status();
    let _ = Command::new("dmsetup")
        .args(["remove", "--retry", DM])
        .stderr(Stdio::null())
        .status();
    sysfs_write(DEV, "reset", "1").unwrap_or_else(|e| panic!("{DEV}: reset: errno {e}"));
    let disk = scratch_disk();
    sh(&format!(
        "dmsetup create {DM} --table '0 {SECTORS} delay {d} 0 0 {d} 0 {WRITE_DELAY_MS}'",
        d = disk.display()
    ));
    let mut guard = Guard {
        daemon: None,
        stop: Arc::new(AtomicBool::new(false)),
        threads: Vec::new(),
    };
    let kname = sh(&format!("dmsetup info -c --noheadings -o blkdevname {DM}"));
    let backing = format!("/dev/{}", kname.trim());
    for _ in 0..50 {
        if std::path::Path::new(&backing).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    sysfs_write(DEV, "backing_dev", &backing).unwrap_or_else(|e| panic!("backing_dev: errno {e}"));
    sysfs_write(DEV, "disksize", "64M").unwrap();
    // One page per bio, one bio in flight: every page waits out the delay.
    sysfs_write(DEV, "writeback_bio_pages", "1").unwrap();
    sysfs_write(DEV, "writeback_batch_size", "1").unwrap();
    let dev = PathBuf::from(format!("/dev/{DEV}"));
    let mut p = 0;
    while p < PAGES {
        write_pages_direct(&dev, SEED, p, 64).unwrap();
        p += 64;
    }
    // The admin's limit, which the daemon must put back.
    sysfs_write(DEV, "writeback_limit_enable", "1").unwrap();
    sysfs_write(DEV, "writeback_limit", &ADMIN_LIMIT.to_string()).unwrap();
    // Everything is idle after 1 s; one round may take all of it.
    std::thread::sleep(Duration::from_secs(2));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = results_dir().join("daemon-answers.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\ninterval_secs = 0.5\nmetrics_listen = \"127.0.0.1:{port}\"\nprobes = \"auto\"\n\
             [policy]\nperiod_secs = 1\nmin_interval_secs = 1\nidle_age_initial_secs = 1\nidle_age_floor_secs = 1\n\
             budget_burst = \"64M\"\nbudget_per_day = \"64G\"\nbatch_min = 1\nbatch_max = 1\nbatch_initial = 1\n\
             [[device]]\nname = \"{DEV}\"\n"
        ),
    )
    .unwrap();
    let _ = std::fs::remove_file(notify_path());
    let sock = UnixDatagram::bind(notify_path()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = results_dir().join("daemon-answers.log");
    let child = Command::new(zramctl_bin())
        .args(["daemon", "--config"])
        .arg(&cfg)
        .env("ZRAMCTL_LOG", "info,zramctl=debug")
        .env("NOTIFY_SOCKET", notify_path())
        .env("WATCHDOG_USEC", "2000000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    guard.daemon = Some(child);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // sd_notify messages with their arrival times.
    let notes: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    {
        let (notes, stop) = (notes.clone(), guard.stop.clone());
        guard.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    notes.lock().unwrap().push((Instant::now(), m));
                }
            }
        }));
    }
    // Wait for the round to start writing.
    let t0 = Instant::now();
    while bd_writes() == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no writeback within 60 s of the start:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let round_start = Instant::now();
    println!(
        "round started {:.1}s after the daemon",
        t0.elapsed().as_secs_f64()
    );
    // Scrapes every 250 ms from here on: (sent at, result).
    let scrapes: Arc<Mutex<Vec<Scrape>>> = Arc::default();
    {
        let (scrapes, stop) = (scrapes.clone(), guard.stop.clone());
        guard.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                let r = scrape(port).map(|(d, _)| d);
                scrapes.lock().unwrap().push((at, r));
                std::thread::sleep(Duration::from_millis(250));
            }
        }));
    }
    // A SIGHUP 10 s into the round.
    std::thread::sleep(Duration::from_secs(10));
    let hup_at = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    while round_start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let written_at_60s = bd_writes();
    println!("after 60 s of the round: {written_at_60s} of {PAGES} pages written back");
    assert!(
        written_at_60s < PAGES,
        "the round did not last 60 s (all {PAGES} pages went): the delay does not bind"
    );
    // Any word of the reload in the log by 60 s (a daemon stuck in its
    // round says nothing until the round ends).
    let hup_served = log_text().contains("reload");

    // SIGTERM: stopped within 5 s?
    let term_at = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let child = guard.daemon.as_mut().unwrap();
    let mut stopped = None;
    while term_at.elapsed() < Duration::from_secs(5) {
        if let Some(st) = child.try_wait().unwrap() {
            stopped = Some((term_at.elapsed(), st));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    guard.stop.store(true, Ordering::Relaxed);
    for t in guard.threads.drain(..) {
        let _ = t.join();
    }
    if stopped.is_none() {
        // Let a daemon stuck in its round finish quickly, to see the rest.
        let _ = swap_table_linear();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(120) {
            if let Some(st) = child.try_wait().unwrap() {
                println!(
                    "SIGTERM: the daemon stopped only {:.1}s after it, once the delay was lifted",
                    term_at.elapsed().as_secs_f64()
                );
                let _ = st;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // What the daemon did while the round ran.
    let scrapes = scrapes.lock().unwrap().clone();
    let during: Vec<_> = scrapes.iter().filter(|(at, _)| *at < term_at).collect();
    let slow: Vec<String> = during
        .iter()
        .filter_map(|(at, r)| match r {
            Ok(d) if *d <= Duration::from_secs(1) => None,
            Ok(d) => Some(format!(
                "at {:.1}s: {:.2}s",
                at.duration_since(round_start).as_secs_f64(),
                d.as_secs_f64()
            )),
            Err(e) => Some(format!(
                "at {:.1}s: {e}",
                at.duration_since(round_start).as_secs_f64()
            )),
        })
        .collect();
    let max_scrape = during
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .max()
        .copied()
        .unwrap_or_default();
    let notes = notes.lock().unwrap().clone();
    let pings: Vec<Instant> = notes
        .iter()
        .filter(|(at, m)| m.contains("WATCHDOG=1") && *at >= round_start && *at < term_at)
        .map(|(at, _)| *at)
        .collect();
    let mut max_gap = Duration::ZERO;
    let mut prev = round_start;
    for &p in pings.iter().chain(std::iter::once(&term_at)) {
        max_gap = max_gap.max(p.duration_since(prev));
        prev = p;
    }
    println!(
        "during the round ({:.1}s until SIGTERM): {} scrapes, {} slower than 1 s or failed, slowest answer {:.3}s; \
         {} watchdog pings, longest gap {:.2}s; SIGHUP at {:.1}s served: {hup_served}; SIGTERM: {}",
        term_at.duration_since(round_start).as_secs_f64(),
        during.len(),
        slow.len(),
        max_scrape.as_secs_f64(),
        pings.len(),
        max_gap.as_secs_f64(),
        hup_at.duration_since(round_start).as_secs_f64(),
        match &stopped {
            Some((d, st)) => format!("stopped in {:.2}s ({st})", d.as_secs_f64()),
            None => "still running after 5 s".into(),
        }
    );

    // Nothing lost: the limit as the admin left it, every page intact.
    let _ = swap_table_linear();
    let enable = sysfs_read(DEV, "writeback_limit_enable");
    let limit = sysfs_read(DEV, "writeback_limit");
    let mut bad = Vec::new();
    let mut p = 0;
    while p < PAGES {
        bad.extend(read_pages_direct(&dev, SEED, p, 256).unwrap());
        p += 256;
    }
    let bd = sysfs_read(DEV, "bd_stat");
    println!(
        "after the stop: writeback_limit_enable {}, writeback_limit {}, bd_stat {}, {} of {PAGES} pages differ",
        enable.trim(),
        limit.trim(),
        bd.trim(),
        bad.len()
    );

    assert!(
        slow.is_empty() && !during.is_empty(),
        "/metrics must answer within 1 s throughout the round; {} of {} did not: {:?}\n{}",
        slow.len(),
        during.len(),
        &slow[..slow.len().min(10)],
        log_text()
    );
    assert!(
        pings.len() >= 50 && max_gap <= Duration::from_secs(2),
        "the watchdog must keep coming (every 1 s): {} pings in the round, longest gap {:.1}s",
        pings.len(),
        max_gap.as_secs_f64()
    );
    assert!(
        hup_served,
        "SIGHUP during the round was not served:\n{}",
        log_text()
    );
    let (took, st) = stopped.expect("SIGTERM must stop the daemon within 5 s during a round");
    assert!(st.success(), "exit {st}:\n{}", log_text());
    println!("SIGTERM to exit: {:.2}s", took.as_secs_f64());
    assert_eq!(
        (enable.trim(), limit.trim().parse::<u64>().unwrap()),
        ("1", ADMIN_LIMIT),
        "the writeback limit must be back as found"
    );
    assert!(
        bad.is_empty(),
        "pages lost or changed: {:?}",
        &bad[..bad.len().min(10)]
    );
}

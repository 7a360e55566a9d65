//! Suite 5: Daemon chaos: the real daemon killed, restarted, its disk failing,
//! its device reset and removed, its port taken.

use crate::common::*;

// ---------------------------------------------------------------------------
// 5. Daemon chaos.

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    fn start(tag: &str, config: &str) -> Daemon {
        let dir = results_dir();
        let path = dir.join(format!("chaos-{tag}.toml"));
        let log = dir.join(format!("chaos-{tag}.log"));
        std::fs::write(&path, config).unwrap();
        let child = Command::new(zramctl_bin())
            .args(["daemon", "--config"])
            .arg(&path)
            .env("ZRAMCTL_LOG", "info,zramctl=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("zramctl daemon");
        Daemon { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[track_caller]
    fn assert_alive(&mut self, when: &str) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("the daemon exited ({st}) {when}:\n{}", self.log_text());
        }
    }

    fn signal(&mut self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `secs` for the daemon to exit.
    fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(15);
        if st.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        st
    }

    fn scrape(&self, port: u16) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("daemon log ({}):\n{}", self.log.display(), self.log_text());
        }
    }
}

/// after a second, sysfs-only (no probes: the point is sysfs state).
pub fn chaos_config(port: u16, devices: &[&str]) -> String {
    let mut c = format!(
        "[daemon]\ninterval_secs = 0.2\nmetrics_listen = \"127.0.0.1:{port}\"\nprobes = \"off\"\n\n\
         [policy]\nbudget_per_day = \"100G\"\nbudget_burst = \"1G\"\nperiod_secs = 1\nmin_interval_secs = 1\n\
         idle_age_initial_secs = 1\nidle_age_floor_secs = 1\nbatch_initial = 4\nbatch_min = 1\nbatch_max = 8\n"
    );
    for d in devices {
        c.push_str(&format!("\n[[device]]\nname = \"{d}\"\n"));
    }
    c
}

/// The device's writeback limit switch and value.
pub fn limit_state(dev: &str) -> (String, String) {
    (
        sysfs_read(dev, "writeback_limit_enable").trim().to_string(),
        sysfs_read(dev, "writeback_limit").trim().to_string(),
    )
}

pub struct ChaosGuard {
    pub dm: Vec<String>,
    pub hot: Vec<String>,
}

impl Drop for ChaosGuard {
    fn drop(&mut self) {
        let _ = Command::new("swapoff")
            .arg("/dev/rzram0")
            .stderr(Stdio::null())
            .status();
        for _ in 0..50 {
            if sysfs_write("rzram0", "reset", "1").is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = sysfs_write("rzram0", "writeback_limit_enable", "0");
        for id in &self.hot {
            let _ = std::fs::write("/sys/class/rzram-control/hot_remove", id);
        }
        for n in &self.dm {
            let _ = Command::new("dmsetup")
                .args(["remove", "--force", "--retry", n])
                .status();
        }
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
pub fn daemon_chaos() {
    in_vm();
    load_rzram();
    let t0 = Instant::now();
    const DEV: &str = "rzram0";
    prepare(DEV);
    let dm = DmSlice::linear("rel-chaos", 768, 256);
    let mut guard = ChaosGuard {
        dm: vec!["rel-chaos".into()],
        hot: Vec::new(),
    };
    let path = PathBuf::from(format!("/dev/{DEV}"));
    let setup = |pages: u64| {
        reset(DEV);
        sysfs_write(DEV, "backing_dev", dm.path.to_str().unwrap()).unwrap();
        sysfs_write(DEV, "disksize", "128M").unwrap();
        write_gen(&path, 7, 0, pages);
    };
    const PAGES: u64 = 16384;
    setup(PAGES);
    let found = limit_state(DEV);
    assert_eq!(found.0, "0");

    // a. Metrics port taken: a clear message and an exit, the device
    // untouched.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut d = Daemon::start("port-taken", &chaos_config(port, &[DEV]));
    let st = d.wait_exit(30);
    let log = d.log_text();
    println!(
        "chaos: metrics port taken: {st:?}: {}",
        log.lines().last().unwrap_or("")
    );
    match st {
        Some(st) => {
            assert!(!st.success(), "exit status {st}");
            assert!(
                log.contains(&format!("127.0.0.1:{port}")) && log.contains("metrics_listen"),
                "the message names the address and the field:\n{log}"
            );
        }
        None => {
            d.assert_alive("with its port taken");
            assert!(log.contains(&port.to_string()), "{log}");
            d.stop();
        }
    }
    drop(taken);
    assert_eq!(limit_state(DEV), found, "port taken: limit untouched");

    // b. SIGKILL during writeback, then restart and SIGTERM: the device's
    // data is intact, its blocks accounted, and the limit as first found.
    let port = free_port();
    let mut d = Daemon::start("sigkill", &chaos_config(port, &[DEV]));
    let bd_writes = || fields(DEV, "bd_stat")[2];
    wait_for(
        Duration::from_secs(60),
        "the daemon's first writeback",
        || {
            d.assert_alive("before any writeback");
            bd_writes() > 0
        },
    );
    // Kill it while pages are moving.
    let w0 = bd_writes();
    wait_for(Duration::from_secs(30), "writeback in progress", || {
        bd_writes() > w0
    });
    d.signal(libc::SIGKILL);
    let st = d.wait_exit(10).expect("SIGKILL");
    let killed = limit_state(DEV);
    println!(
        "chaos: SIGKILL ({st}) at bd_writes {}: limit left {killed:?} (found {found:?})",
        bd_writes()
    );
    drop(d);
    let mut d = Daemon::start("restart", &chaos_config(port, &[DEV]));
    let w1 = bd_writes();
    // Up and serving (its signal handlers are in place) before the SIGTERM
    // below: with every page already written back the next wait can end at
    // once, and a SIGTERM before the handlers would just kill it.
    wait_for(
        Duration::from_secs(60),
        "the restarted daemon's metrics",
        || {
            d.assert_alive("after the restart");
            d.scrape(port).is_some()
        },
    );
    wait_for(
        Duration::from_secs(60),
        "writeback after the restart",
        || {
            d.assert_alive("after the restart");
            bd_writes() > w1 || fields(DEV, "bd_stat")[0] == candidates_of(PAGES)
        },
    );
    let st = d.stop().expect("SIGTERM stops the daemon");
    assert!(st.success(), "clean exit: {st}\n{}", d.log_text());
    let after = limit_state(DEV);
    println!("chaos: after restart + SIGTERM: limit {after:?}");
    let gens = vec![7u64; PAGES as usize];
    drop_caches();
    let before = stats(DEV);
    let bad = verify_gens(&path, &gens);
    assert!(bad.is_empty(), "{} pages differ after SIGKILL", bad.len());
    let s = stats(DEV);
    assert_eq!(
        s.bd_reads - before.bd_reads,
        s.bd_count,
        "blocks = written-back slots"
    );
    assert_eq!(
        after, found,
        "the writeback limit after a SIGKILL, restart and SIGTERM is not as first found: \
         the restarted daemon took the killed one's half-open limit for the admin's"
    );
    drop(d);

    // c. The backing device fails, then is removed under the daemon: it
    // keeps running, counts the errors, the data stays readable from RAM.
    setup(PAGES);
    let port = free_port();
    let mut d = Daemon::start("backing-gone", &chaos_config(port, &[DEV]));
    wait_for(Duration::from_secs(60), "metrics", || {
        d.scrape(port).is_some()
    });
    dm.load(&format!("0 {} error", dm.sectors()));
    let f0 = stats(DEV).failed_writes;
    wait_for(Duration::from_secs(60), "failed writeback rounds", || {
        d.assert_alive("with a failing backing disk");
        stats(DEV).failed_writes > f0
    });
    sh("dmsetup remove --force rel-chaos || true");
    std::thread::sleep(Duration::from_secs(3));
    d.assert_alive("after its backing disk was removed");
    let m = d.scrape(port).expect("metrics with the backing disk gone");
    let errors: f64 = m
        .lines()
        .filter(|l| l.starts_with("zramctl_writeback_errors_total{") && l.contains(DEV))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    println!("chaos: backing disk failing then removed: daemon alive, {errors} errors counted");
    assert!(errors > 0.0, "writeback errors in /metrics");
    // What was written back before is lost with the disk; what never left
    // RAM still reads.
    let s = stats(DEV);
    println!("chaos: {DEV} with the disk gone: {s:?}");

    // d. The device reset and re-setup under the daemon, then a managed
    // device hot-removed: it keeps running and says why it skips them.
    d.stop();
    drop(d);
    reset(DEV);
    let dm2 = DmSlice::linear("rel-chaos2", 768, 256);
    guard.dm.push("rel-chaos2".into());
    sysfs_write(DEV, "backing_dev", dm2.path.to_str().unwrap()).unwrap();
    sysfs_write(DEV, "disksize", "128M").unwrap();
    write_gen(&path, 8, 0, 4096);
    let id = std::fs::read_to_string("/sys/class/rzram-control/hot_add")
        .unwrap()
        .trim()
        .to_string();
    guard.hot.push(id.clone());
    let extra = format!("rzram{id}");
    let port = free_port();
    let mut d = Daemon::start("reset-hot-remove", &chaos_config(port, &[DEV, &extra]));
    wait_for(Duration::from_secs(60), "metrics", || {
        d.scrape(port).is_some()
    });
    reset(DEV);
    std::thread::sleep(Duration::from_secs(2));
    d.assert_alive("after a reset under it");
    sysfs_write(DEV, "backing_dev", dm2.path.to_str().unwrap()).unwrap();
    sysfs_write(DEV, "disksize", "64M").unwrap();
    write_gen(&path, 9, 0, 4096);
    let w = stats(DEV).bd_writes;
    wait_for(
        Duration::from_secs(60),
        "writeback on the re-setup device",
        || {
            d.assert_alive("after re-setup");
            stats(DEV).bd_writes > w
        },
    );
    std::fs::write("/sys/class/rzram-control/hot_remove", &id).unwrap();
    guard.hot.clear();
    std::thread::sleep(Duration::from_secs(3));
    d.assert_alive(&format!("after {extra} was hot-removed"));
    assert!(d.scrape(port).is_some(), "metrics after hot_remove");
    let st = d.stop().expect("SIGTERM");
    assert!(st.success(), "{st}");
    let log = d.log_text();
    assert!(
        log.contains(&extra),
        "the log names the removed device:\n{log}"
    );
    assert_eq!(limit_state(DEV).0, "0", "limit switch restored at SIGTERM");
    drop(d);
    reset(DEV);
    drop(dm2);
    drop(dm);
    drop(guard);
    println!("chaos: done ({:.1}s)", t0.elapsed().as_secs_f64());
}

pub fn candidates_of(pages: u64) -> u64 {
    (0..pages).filter(|&i| !is_same_filled(7, i)).count() as u64
}

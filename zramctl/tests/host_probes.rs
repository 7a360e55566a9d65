//! Host tests of the access and latency probes (`zramctl::probes::Probes`) on
//! this machine's real zram0 and on a loop device, and of `zramctl top`.
//! They run as root when zram0 exists and is unused, and print why they
//! skipped otherwise. Every test that uses zram0 holds the ZRAM0 lock and
//! resets zram0 when it ends, failed or not.
//!
//! Per-event costs are printed (`--nocapture` shows them), never asserted.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
};

use zramctl::{
    probes::{BlockDevInfo, Flavour, LatencyKind, ProbeError, ProbeOptions, Probes, WatchSpec},
    sysfs::Sysfs,
};
use zramctl_common::op;
use zramctl_tests::{
    PAGE, Zram0Reset, discard_pages, interrupt_and_collect, is_root, read_pages_direct,
    require_zram0, vmstat, write_pages_direct, zramctl_bin,
};

static ZRAM0: Mutex<()> = Mutex::new(());

const ZRAM0_DEV: &str = "/dev/zram0";
const DISK_PAGES: u64 = 4096; // 16 MiB

/// Sets zram0 up with `pages` pages and returns its watch spec.
fn setup_zram0(pages: u64, latency: bool) -> WatchSpec {
    let dev = Sysfs::system().device("zram0").unwrap();
    dev.set_disksize(pages * PAGE as u64).unwrap();
    let (major, minor) = dev.dev_numbers().unwrap();
    WatchSpec {
        name: "zram0".into(),
        major,
        minor,
        slots: pages as u32,
        latency: latency.then_some(LatencyKind::Bio),
        rzram: false,
    }
}

/// Attaches, or explains why not (the error must name what is missing).
fn attach(devs: &[WatchSpec], flavour: Option<Flavour>) -> Option<Probes> {
    match Probes::attach(
        devs,
        ProbeOptions {
            flavour,
            stats: true,
            cost_floor: true,
        },
    ) {
        Ok(p) => {
            // As root, the probes keep the kernel's BPF stats on.
            assert_eq!(p.stats_enabled(), Ok(()));
            Some(p)
        }
        // The kernel or the user may not allow BPF: the error says what is
        // missing. Anything else (a verifier rejection) is a failure.
        Err(e @ (ProbeError::Refused { .. } | ProbeError::Btf(_))) => {
            eprintln!("skipped: {e}");
            None
        }
        Err(e) => panic!("attaching the probes: {e}"),
    }
}

fn print_costs(label: &str, probes: &Probes) {
    for c in probes.costs().unwrap() {
        eprintln!(
            "cost [{label}] {} ({:?}, {}): {} runs, {}",
            c.program,
            c.flavour,
            c.tracepoint,
            c.run_count,
            c.ns_per_event()
                .map(|n| format!("{n:.0} ns/event"))
                .unwrap_or_else(|| "no runs".into())
        );
    }
}

/// Expected per-slot (reads, writes, discards).
struct Model(Vec<(u32, u32, u32)>);

impl Model {
    fn new(pages: u64) -> Self {
        Model(vec![(0, 0, 0); pages as usize])
    }
    fn add(&mut self, first: u64, pages: u64, class: usize) {
        for s in &mut self.0[first as usize..(first + pages) as usize] {
            match class {
                op::READ => s.0 += 1,
                op::WRITE => s.1 += 1,
                _ => s.2 += 1,
            }
        }
    }
}

fn zram_access_pattern_counts_exactly(flavour: Flavour) {
    let _guard = ZRAM0.lock().unwrap_or_else(|e| e.into_inner());
    require_zram0!();
    let _reset = Zram0Reset;
    let spec = setup_zram0(DISK_PAGES, true);
    let Some(probes) = attach(std::slice::from_ref(&spec), Some(flavour)) else {
        return;
    };
    assert_eq!(probes.flavour(), flavour);
    let dev = Path::new(ZRAM0_DEV);
    let mut model = Model::new(DISK_PAGES);

    // 64 one-page writes, one 16-page write, one 300-page write (one or
    // more bios; a bio of N pages touches N slots), then reads and a discard.
    for p in 0..64 {
        write_pages_direct(dev, 1, p, 1).unwrap();
    }
    model.add(0, 64, op::WRITE);
    write_pages_direct(dev, 1, 100, 16).unwrap();
    model.add(100, 16, op::WRITE);
    write_pages_direct(dev, 1, 1000, 300).unwrap();
    model.add(1000, 300, op::WRITE);
    for p in 0..32 {
        assert!(read_pages_direct(dev, 1, p, 1).unwrap().is_empty());
    }
    model.add(0, 32, op::READ);
    assert!(read_pages_direct(dev, 1, 100, 8).unwrap().is_empty());
    model.add(100, 8, op::READ);
    // Rewrite one page and read it twice: counts accumulate per slot.
    write_pages_direct(dev, 1, 5, 1).unwrap();
    model.add(5, 1, op::WRITE);
    assert!(read_pages_direct(dev, 1, 5, 1).unwrap().is_empty());
    assert!(read_pages_direct(dev, 1, 5, 1).unwrap().is_empty());
    model.add(5, 1, op::READ);
    model.add(5, 1, op::READ);
    discard_pages(dev, 200, 8).unwrap();
    model.add(200, 8, op::DISCARD);
    // The last page of the disk.
    write_pages_direct(dev, 1, DISK_PAGES - 1, 1).unwrap();
    model.add(DISK_PAGES - 1, 1, op::WRITE);

    let snap = probes.snapshot().unwrap();
    let d = &snap.devices[0];
    // Stock zram: rzram's programs are skipped, which is not an error.
    assert_eq!(probes.rzram_status(), Err("no rzram device watched"));
    assert!(d.rzram.is_none());
    let access = d.access.expect("access counters");
    assert_eq!(access.pages.write, 64 + 16 + 300 + 1 + 1, "{access:?}");
    assert_eq!(access.pages.read, 32 + 8 + 2, "{access:?}");
    assert_eq!(access.pages.discard, 8, "{access:?}");
    assert_eq!(access.untracked_pages, 0, "{access:?}");
    // Reads are at most 8 pages: one bio each. The 300-page write is >= 2.
    assert_eq!(access.bios.read, 32 + 1 + 2, "{access:?}");
    // 64 one-page, the 16-page, the 300-page (one bio when the buffer is
    // physically contiguous enough for multi-page vectors), two one-page.
    let min_write_bios = 64 + 1 + 1 + 2;
    assert!(access.bios.write >= min_write_bios, "{access:?}");
    assert!(access.bios.discard >= 1, "{access:?}");

    let slots = probes.slots(0);
    assert_eq!(slots.len(), DISK_PAGES as usize);
    let mut touched = 0;
    for (i, (s, want)) in slots.iter().zip(&model.0).enumerate() {
        assert_eq!(
            (s.reads, s.writes, s.discards),
            *want,
            "slot {i}: {s:?}, expected (reads, writes, discards) = {want:?}"
        );
        let is_touched = *want != (0, 0, 0);
        assert_eq!(s.last_time != 0, is_touched, "slot {i}: {s:?}");
        touched += u64::from(is_touched);
    }
    let ages = d.slot_ages.as_ref().unwrap();
    assert_eq!(ages.slots, DISK_PAGES);
    assert_eq!(ages.touched(), touched);
    // Slot times are CLOCK_MONOTONIC, comparable with ours.
    let newest = slots.iter().map(|s| s.last_time).max().unwrap();
    let now = (snap.monotonic_ns >> zramctl_common::SLOT_TIME_SHIFT) as u32;
    assert!(newest <= now, "{newest} > {now}");

    // zram is bio-based: every queued bio traced a completion.
    let lat = d.latency.as_ref().expect("zram bio latency");
    for (class, n) in [
        (op::READ, access.bios.read),
        (op::WRITE, access.bios.write),
        (op::DISCARD, access.bios.discard),
    ] {
        assert_eq!(lat[class].count, n, "{} latency count", op::NAMES[class]);
        assert_eq!(lat[class].buckets.iter().sum::<u64>(), n);
        assert!(lat[class].percentile(0.5).is_some());
    }
    assert_eq!(snap.health.lat_start_dropped, 0, "{:?}", snap.health);
    print_costs(&format!("zram0 pattern, {flavour:?}"), &probes);
}

#[test]
fn zram0_access_pattern_counts_exactly_tp_btf() {
    zram_access_pattern_counts_exactly(Flavour::TpBtf);
}

#[test]
fn zram0_access_pattern_counts_exactly_raw_tp() {
    zram_access_pattern_counts_exactly(Flavour::RawTp);
}

/// A loop device on a file in /tmp, detached when dropped.
struct LoopDev {
    path: PathBuf,
    _file: tempfile::NamedTempFile,
}

impl LoopDev {
    fn new(bytes: u64) -> Result<Self, String> {
        let file = tempfile::Builder::new()
            .prefix("zramctl-loop-")
            .tempfile_in("/tmp")
            .map_err(|e| format!("temp file in /tmp: {e}"))?;
        file.as_file()
            .set_len(bytes)
            .map_err(|e| format!("sizing the loop file: {e}"))?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file.path())
            .output()
            .map_err(|e| format!("running losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(LoopDev { path, _file: file })
    }

    /// (read, write, flush) requests completed, from /sys/block/loopN/stat.
    fn completed(&self) -> (u64, u64, u64) {
        let name = self.path.file_name().unwrap().to_str().unwrap();
        let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat")).unwrap();
        let f: Vec<u64> = stat
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (f[0], f[4], f.get(15).copied().unwrap_or(0))
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

#[test]
fn loop_request_latency_sums_to_requests_issued() {
    if !is_root() {
        return eprintln!("skipped: not root");
    }
    let lo = match LoopDev::new(16 << 20) {
        Ok(l) => l,
        Err(e) => return eprintln!("skipped: no loop device: {e}"),
    };
    let info = BlockDevInfo::from_path(&lo.path).unwrap();
    assert!(info.blk_mq, "loop devices are blk-mq: {info:?}");
    assert_eq!(info.latency_kind(), LatencyKind::Request);
    let spec = WatchSpec {
        name: info.name.clone(),
        major: info.major,
        minor: info.minor,
        slots: 0,
        latency: Some(LatencyKind::Request),
        rzram: false,
    };
    let Some(probes) = attach(std::slice::from_ref(&spec), None) else {
        return;
    };
    let before = lo.completed();
    let (writes, reads) = (100u64, 50u64);
    for p in 0..writes {
        // Every other page: nothing to merge, one request per write.
        write_pages_direct(&lo.path, 3, 2 * p, 1).unwrap();
    }
    for p in 0..reads {
        assert!(read_pages_direct(&lo.path, 3, 2 * p, 1).unwrap().is_empty());
    }
    let after = lo.completed();
    let snap = probes.snapshot().unwrap();
    let lat = snap.devices[0].latency.as_ref().unwrap();
    let (r, w) = (&lat[op::READ], &lat[op::WRITE]);
    eprintln!(
        "loop ({:?}) read: {:?}, write: {:?}",
        probes.flavour(),
        r.summary(),
        w.summary()
    );
    assert_eq!(
        r.count,
        after.0 - before.0,
        "reads completed per sysfs stat"
    );
    assert_eq!(
        w.count,
        after.1 - before.1,
        "writes completed per sysfs stat"
    );
    assert_eq!(r.count, reads);
    assert_eq!(w.count, writes);
    for h in [r, w] {
        assert_eq!(h.buckets.iter().sum::<u64>(), h.count);
        let (p50, p99) = (h.percentile(0.5).unwrap(), h.percentile(0.99).unwrap());
        assert!(0.0 < p50 && p50 <= p99, "{p50} {p99}");
        assert!(h.mean_ns().unwrap() > 0.0);
    }
    // No access tracking was asked for: no access program attached.
    assert!(snap.devices[0].access.is_none());
    let costs = probes.costs().unwrap();
    let names: Vec<&str> = costs.iter().map(|c| c.program.as_str()).collect();
    let want: &[&str] = match probes.flavour() {
        Flavour::TpBtf => &["rq_done", "rq_start", "cost_floor"],
        Flavour::RawTp => &["rq_done_raw", "rq_start_raw", "cost_floor_raw"],
    };
    assert_eq!(names, want);
    print_costs("loop", &probes);
}

/// Per-event cost of each program under a zram0 workload of one-page bios,
/// for both program types. Prints ns/event; asserts only that the kernel's
/// stats counted the runs.
#[test]
fn probe_costs_per_event_on_zram0() {
    let _guard = ZRAM0.lock().unwrap_or_else(|e| e.into_inner());
    require_zram0!();
    let _reset = Zram0Reset;
    let spec = setup_zram0(DISK_PAGES, true);
    let dev = Path::new(ZRAM0_DEV);
    for p in 0..DISK_PAGES {
        write_pages_direct(dev, 2, p, 1).unwrap();
    }
    for flavour in [Flavour::TpBtf, Flavour::RawTp] {
        let Some(probes) = attach(std::slice::from_ref(&spec), Some(flavour)) else {
            return;
        };
        let before = probes.costs().unwrap();
        let n = 4 * DISK_PAGES;
        for i in 0..n {
            let p = i * 7 % DISK_PAGES;
            if i % 2 == 0 {
                write_pages_direct(dev, 2, p, 1).unwrap();
            } else {
                read_pages_direct(dev, 2, p, 1).unwrap();
            }
        }
        let after = probes.costs().unwrap();
        for (a, b) in after.iter().zip(&before) {
            let d = a.since(b);
            assert!(
                d.run_count >= n,
                "{}: {} runs for {n} bios",
                d.program,
                d.run_count
            );
            eprintln!(
                "cost [{n} one-page zram0 bios, {flavour:?}] {} on {}: {:.0} ns/event ({} runs)",
                d.program,
                d.tracepoint,
                d.ns_per_event().unwrap(),
                d.run_count
            );
        }
    }
}

/// `zramctl top zram0 --once --json`: the real binary, ended early by
/// SIGINT once the workload is done; its counts are the workload's.
#[test]
fn top_once_json_reports_zram0_accesses() {
    let _guard = ZRAM0.lock().unwrap_or_else(|e| e.into_inner());
    require_zram0!();
    let _reset = Zram0Reset;
    setup_zram0(DISK_PAGES, false);
    let record = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(zramctl_bin())
        .args(["top", "zram0", "--once", "--json", "--interval", "600"])
        .arg("--record")
        .arg(record.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running zramctl");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // Notes may come first; "watching" means attached, EOF means it failed.
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("watching") {}
    if !line.contains("watching") {
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        let _ = child.wait();
        let msg = format!("{line}{rest}");
        // Only a kernel or user that does not allow BPF is a reason to skip.
        assert!(
            msg.contains("the kernel refused BPF") || msg.contains("kernel BTF is needed"),
            "zramctl top failed: {msg}"
        );
        return eprintln!("skipped: {msg}");
    }
    let dev = Path::new(ZRAM0_DEV);
    write_pages_direct(dev, 4, 0, 10).unwrap();
    for p in 0..10 {
        read_pages_direct(dev, 4, p, 1).unwrap();
    }
    let out = interrupt_and_collect(&mut child);
    let status = child.wait().unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    let d = &v["devices"][0];
    assert_eq!(d["name"], "zram0", "{v:#}");
    assert_eq!(d["access"]["pages"]["write"], 10, "{v:#}");
    assert_eq!(d["access"]["pages"]["read"], 10, "{v:#}");
    assert_eq!(d["access"]["bios"]["read"], 10, "{v:#}");
    assert_eq!(d["slot_ages"]["slots"], DISK_PAGES, "{v:#}");
    assert_eq!(d["slot_ages"]["untouched"], DISK_PAGES - 10, "{v:#}");
    assert_eq!(d["latency"]["read"]["count"], 10, "{v:#}");
    assert!(d["rates"]["pages_per_sec"]["read"].as_f64().unwrap() > 0.0);
    // Stock zram: the rzram fields are there and "n/a" (null).
    assert!(d.get("rzram").is_some_and(|r| r.is_null()), "{v:#}");
    assert_eq!(v["rzram_probes"], "not attached: no rzram device watched");
    let progs = v["programs"].as_array().unwrap();
    assert!(
        progs
            .iter()
            .any(|p| p["program"] == "slot_access" || p["program"] == "slot_access_raw"),
        "{v:#}"
    );
    for p in progs {
        eprintln!(
            "cost [top] {}: {} ns/event",
            p["program"], p["ns_per_event"]
        );
    }
    // --record got the same report, as one JSON line.
    let recorded = std::fs::read_to_string(record.path()).unwrap();
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
    let line: serde_json::Value = serde_json::from_str(recorded.trim()).unwrap();
    assert_eq!(line, v);
}

/// A memory cgroup with a limit (v2 `memory.max` or v1
/// `memory.limit_in_bytes`), removed when dropped.
struct MemCgroup {
    dir: PathBuf,
    procs: PathBuf,
}

impl MemCgroup {
    fn new(limit: u64) -> Result<Self, String> {
        let name = format!("zramctl-test-{}", std::process::id());
        // cgroup v2: the unified hierarchy with the memory controller.
        for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let controllers = std::fs::read_to_string(format!("{root}/cgroup.controllers"));
            if controllers.is_ok_and(|c| c.split_whitespace().any(|x| x == "memory")) {
                let _ = std::fs::write(format!("{root}/cgroup.subtree_control"), "+memory");
                let dir = Path::new(root).join(&name);
                return Self::make(dir, "memory.max", limit);
            }
        }
        if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
            let dir = Path::new("/sys/fs/cgroup/memory").join(&name);
            return Self::make(dir, "memory.limit_in_bytes", limit);
        }
        Err("no memory cgroup controller (v2 memory.max or v1 memory.limit_in_bytes)".into())
    }

    fn make(dir: PathBuf, limit_file: &str, limit: u64) -> Result<Self, String> {
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cg = MemCgroup {
            procs: dir.join("cgroup.procs"),
            dir,
        };
        std::fs::write(cg.dir.join(limit_file), limit.to_string())
            .map_err(|e| format!("setting {limit_file}: {e}"))?;
        Ok(cg)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Forks a child that joins `cg`, fills `bytes` of anonymous memory with a
/// verifiable, compressible pattern (more than the cgroup's limit, so it
/// swaps), reads it all back twice and exits 0 if every word matched.
/// Returns the child's wait status.
fn swap_workload(cg: &MemCgroup, bytes: usize) -> i32 {
    use std::os::unix::ffi::OsStrExt as _;
    let procs = std::ffi::CString::new(cg.procs.as_os_str().as_bytes()).unwrap();
    // SAFETY: the child of a multi-threaded process may only make
    // async-signal-safe calls until it exits; it uses open/write/close/
    // mmap/munmap/_exit and plain arithmetic on its own mapping, no
    // allocation and no locks. The parent only waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above; every pointer is to memory the child owns.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(3);
            }
            libc::close(fd);
            let p = libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                libc::_exit(4);
            }
            let words = std::slice::from_raw_parts_mut(p.cast::<u64>(), bytes / 8);
            // Small numbers per page: compressible, never same-filled.
            let word = |i: usize| (((i / 512) as u64) << 16) | ((i % 512) as u64 % 37);
            for (i, w) in words.iter_mut().enumerate() {
                *w = word(i);
            }
            for _ in 0..2 {
                for (i, w) in words.iter().enumerate() {
                    if std::ptr::read_volatile(w) != word(i) {
                        libc::_exit(2);
                    }
                }
            }
            libc::munmap(p, bytes);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

/// zram0 as the only swap device, a process swapping through a memory
/// cgroup limit: the pages the probe counts are exactly the kernel's
/// pswpout/pswpin.
#[test]
fn zram0_swap_pages_match_vmstat() {
    let _guard = ZRAM0.lock().unwrap_or_else(|e| e.into_inner());
    require_zram0!();
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
    if swaps.lines().count() > 1 {
        return eprintln!("skipped: other swap devices are active:\n{swaps}");
    }
    let _reset = Zram0Reset;
    let pages = 65536; // 256 MiB of slots
    let spec = setup_zram0(pages, true);
    let run = |cmd: &str, args: &[&str]| {
        let out = Command::new(cmd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("mkswap", &[ZRAM0_DEV]);
    run("swapon", &["--priority", "100", ZRAM0_DEV]);
    let cg = match MemCgroup::new(32 << 20) {
        Ok(c) => c,
        Err(e) => return eprintln!("skipped: {e}"),
    };
    let Some(probes) = attach(std::slice::from_ref(&spec), None) else {
        return;
    };
    let (in0, out0) = (vmstat("pswpin"), vmstat("pswpout"));
    let status = swap_workload(&cg, 96 << 20);
    let (in1, out1) = (vmstat("pswpin"), vmstat("pswpout"));
    let snap = probes.snapshot().unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the swapping child failed (status {status:#x}; exit 2: data differed after swap-in)"
    );
    let access = snap.devices[0].access.unwrap();
    let (swapped_in, swapped_out) = (in1 - in0, out1 - out0);
    eprintln!(
        "swap: pswpout +{swapped_out}, pswpin +{swapped_in}; probe pages: {access:?}; {}",
        probes
            .costs()
            .unwrap()
            .iter()
            .map(|c| format!(
                "{} {:.0} ns/event",
                c.program,
                c.ns_per_event().unwrap_or(0.0)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // 96 MiB through a 32 MiB limit: tens of thousands of pages each way.
    assert!(swapped_out > 8192, "pswpout +{swapped_out}");
    assert!(swapped_in > 8192, "pswpin +{swapped_in}");
    assert_eq!(access.pages.write, swapped_out, "pages written vs pswpout");
    assert_eq!(access.pages.read, swapped_in, "pages read vs pswpin");
    assert_eq!(access.untracked_pages, 0);
    let slots = probes.slots(0);
    let writes: u64 = slots.iter().map(|s| u64::from(s.writes)).sum();
    let reads: u64 = slots.iter().map(|s| u64::from(s.reads)).sum();
    assert_eq!((writes, reads), (swapped_out, swapped_in), "per-slot sums");
}

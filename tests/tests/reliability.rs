//! Reliability (issue 9) in the VM: races, faults, bad input and daemon
//! chaos on rzram, with upstream C zram (`zram1`) as the oracle wherever
//! both can do the same thing.
//!
//! - `rzram_races_lose_nothing`: writeback in every mode, `idle` marking,
//!   batch / bio size / limit changes, `compact`, `recompress` and `reset`
//!   attempts loop on two rzram devices with backing disks while one is a
//!   raw disk with its own writer, discarder and full verifier (>= 10 passes
//!   over every page) and the other is swap under a memory-limited cgroup
//!   with a process verifying its memory.
//! - `{zram,rzram}_backing_faults`: dm-flakey (error_writes, drop_writes),
//!   dm `error`, and fail_make_request at 5, 30 and 100 % on the backing
//!   device: counters, the RAM copy, EIO to readers, no leaked blocks,
//!   zsmalloc back to 0 after reset.
//! - `sysfs_fuzz_errnos_match_upstream`: thousands of malformed values to
//!   every writable attribute of rzram1 and zram1 (and of their control
//!   classes), before and after init; the errno of each must be upstream's.
//! - `daemon_chaos`: the real daemon on rzram0 killed mid-writeback and
//!   restarted, its backing disk failing and removed, the device reset and
//!   hot-removed under it, its metrics port taken.
//! - `rzram_unloads_cleanly`: rmmod at the end.
//!
//! `#[ignore]`d on the host; `cargo xtask vm-test reliability` runs them.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use zramctl_tests::{
    Kind, PAGE, discard_pages, drop_caches, fields, load_rzram, page_data, read_bytes_direct,
    scratch_disk, sh, sysfs_read, sysfs_write, write_bytes_direct, zramctl_bin,
};

const SECTORS_PER_MIB: u64 = 2048;

fn results_dir() -> PathBuf {
    std::env::var_os("ZRAMCTL_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn in_vm() {
    assert!(
        std::env::var_os("ZRAMCTL_VM").is_some(),
        "run with cargo xtask vm-test"
    );
}

// ---------------------------------------------------------------------------
// Small tools.

/// xorshift64*: deterministic test randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One write(2) of `value` to `path`: the byte count or the errno (of the
/// open or of the write).
fn write_once(path: &Path, value: &[u8]) -> Result<usize, i32> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.raw_os_error().unwrap_or(-1))?;
    f.write(value).map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// `sysfs_write` that fails the test instead of hanging the suite when the
/// kernel does not return within `secs`.
fn sysfs_write_timed(dev: &str, attr: &str, value: &str, secs: u64) -> Result<(), i32> {
    let (tx, rx) = mpsc::channel();
    let (d, a, v) = (dev.to_string(), attr.to_string(), value.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(sysfs_write(&d, &a, &v));
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{dev}: {attr} <- {value:?} did not return within {secs} s"))
}

fn writeback(dev: &str, arg: &str) -> Result<(), i32> {
    sysfs_write_timed(dev, "writeback", arg, 120)
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EINVAL => "EINVAL".into(),
        libc::EIO => "EIO".into(),
        libc::EBUSY => "EBUSY".into(),
        libc::ENODEV => "ENODEV".into(),
        libc::ENOMEM => "ENOMEM".into(),
        libc::ENOSPC => "ENOSPC".into(),
        libc::ERANGE => "ERANGE".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::ENOTBLK => "ENOTBLK".into(),
        libc::E2BIG => "E2BIG".into(),
        libc::EAGAIN => "EAGAIN".into(),
        libc::ENAMETOOLONG => "ENAMETOOLONG".into(),
        libc::EPERM => "EPERM".into(),
        libc::EEXIST => "EEXIST".into(),
        libc::ENOTDIR => "ENOTDIR".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::ENXIO => "ENXIO".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        e => format!("errno {e}"),
    }
}

fn show(r: &Result<usize, i32>) -> String {
    match r {
        Ok(n) => format!("ok({n})"),
        Err(e) => errno_name(*e),
    }
}

/// bd_stat, mm_stat and io_stat fields the tests look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stats {
    bd_count: u64,
    bd_reads: u64,
    bd_writes: u64,
    orig: u64,
    compr: u64,
    mem_used: u64,
    same: u64,
    huge: u64,
    failed_reads: u64,
    failed_writes: u64,
}

fn stats(dev: &str) -> Stats {
    let bd = fields(dev, "bd_stat");
    let mm = fields(dev, "mm_stat");
    let io = fields(dev, "io_stat");
    Stats {
        bd_count: bd[0],
        bd_reads: bd[1],
        bd_writes: bd[2],
        orig: mm[0],
        compr: mm[1],
        mem_used: mm[2],
        same: mm[5],
        huge: mm[7],
        failed_reads: io[0],
        failed_writes: io[1],
    }
}

/// swapoff, then reset (retrying while the device is still busy).
fn reset(dev: &str) {
    let _ = Command::new("swapoff")
        .arg(format!("/dev/{dev}"))
        .stderr(Stdio::null())
        .status();
    for _ in 0..100 {
        if sysfs_write(dev, "reset", "1").is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{dev}: reset stayed EBUSY for 10 s");
}

/// Resets a device when dropped (also when a test fails half-way).
struct ResetOnDrop(&'static str);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/kernel/debug/fail_make_request/probability", "0");
        for _ in 0..50 {
            if sysfs_write(self.0, "reset", "1").is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = sysfs_write(self.0, "writeback_limit_enable", "0");
    }
}

/// Sets a flag when dropped: background loops stop before what they use goes.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Reset, and the writeback settings a reset keeps put back to defaults.
fn prepare(dev: &str) {
    if dev.starts_with("rzram") {
        load_rzram();
    }
    reset(dev);
    sysfs_write(dev, "writeback_limit_enable", "0").unwrap();
    sysfs_write(dev, "writeback_limit", "0").unwrap();
    sysfs_write(dev, "writeback_batch_size", "32").unwrap();
    let _ = sysfs_write(dev, "writeback_bio_pages", "32");
}

// ---------------------------------------------------------------------------
// Backing devices: device-mapper over slices of the scratch disk.
//
// Slices (MiB of the 1 GiB disk): races 0-255 (rzram1) and 256-511
// (rzram0); faults 512-575 (zram1) and 576-639 (rzram1); fuzzer 640-671
// (zram1) and 672-703 (rzram1); daemon 768-1023 (rzram0).

struct Dm {
    name: String,
    path: PathBuf,
    offset_mib: u64,
    size_mib: u64,
}

impl Dm {
    fn linear(name: &str, offset_mib: u64, size_mib: u64) -> Dm {
        let _ = Command::new("dmsetup")
            .args(["remove", "--retry", name])
            .stderr(Stdio::null())
            .status();
        let mut d = Dm {
            name: name.into(),
            path: PathBuf::new(),
            offset_mib,
            size_mib,
        };
        sh(&format!(
            "dmsetup create {name} --table '{}'",
            d.linear_table()
        ));
        // No udev in the guest: devtmpfs has /dev/dm-N.
        let kname = sh(&format!(
            "dmsetup info -c --noheadings -o blkdevname {name}"
        ));
        d.path = PathBuf::from(format!("/dev/{}", kname.trim()));
        let t = Instant::now();
        while !d.path.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no {}",
                d.path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn sectors(&self) -> u64 {
        self.size_mib * SECTORS_PER_MIB
    }

    fn linear_table(&self) -> String {
        format!(
            "0 {} linear {} {}",
            self.sectors(),
            scratch_disk().display(),
            self.offset_mib * SECTORS_PER_MIB
        )
    }

    /// Always "down" (up 0 s, down 3600 s) with one feature
    /// (`error_writes`, `drop_writes`): reads pass, writes fail or vanish.
    fn flakey_table(&self, feature: &str) -> String {
        format!(
            "0 {} flakey {} {} 0 3600 1 {feature}",
            self.sectors(),
            scratch_disk().display(),
            self.offset_mib * SECTORS_PER_MIB
        )
    }

    fn load(&self, table: &str) {
        sh(&format!(
            "dmsetup suspend {n} && dmsetup reload {n} --table '{table}' && dmsetup resume {n}",
            n = self.name
        ));
    }

    /// `dm-N`, for /sys/block/dm-N/make-it-fail.
    fn kname(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Dm {
    fn drop(&mut self) {
        let _ = Command::new("dmsetup")
            .args(["resume", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("dmsetup")
            .args(["remove", "--retry", &self.name])
            .status();
    }
}

/// fail_make_request on one block device: every bio submitted to it fails
/// with probability `percent` while this lives.
struct FailMakeRequest {
    dev: String,
}

impl FailMakeRequest {
    fn new(dev: &str, percent: u32) -> FailMakeRequest {
        let dir = Path::new("/sys/kernel/debug/fail_make_request");
        assert!(
            dir.exists(),
            "no {}: kernel without CONFIG_FAIL_MAKE_REQUEST + FAULT_INJECTION_DEBUG_FS, or debugfs not mounted",
            dir.display()
        );
        for (f, v) in [
            ("probability", percent.to_string()),
            ("interval", "1".into()),
            ("times", "-1".into()),
            ("space", "0".into()),
            ("verbose", "0".into()),
        ] {
            std::fs::write(dir.join(f), v).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        std::fs::write(format!("/sys/block/{dev}/make-it-fail"), "1").unwrap();
        FailMakeRequest { dev: dev.into() }
    }
}

impl Drop for FailMakeRequest {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("/sys/block/{}/make-it-fail", self.dev), "0");
        let _ = std::fs::write("/sys/kernel/debug/fail_make_request/probability", "0");
    }
}

// ---------------------------------------------------------------------------
// Page contents: text, incompressible and same-filled pages, by generation.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Content {
    Text,
    Random,
    Pattern,
    Zero,
}

fn content_of(gen_: u64, i: u64) -> Content {
    match (gen_.wrapping_mul(31) ^ i) % 16 {
        3 => Content::Zero,
        7 => Content::Pattern,
        11 | 12 => Content::Random,
        _ => Content::Text,
    }
}

/// The bytes of page `i` written in generation `gen_` (0: never written or
/// discarded, reads as zeros).
fn page_of(gen_: u64, i: u64) -> Vec<u8> {
    if gen_ == 0 {
        return vec![0; PAGE];
    }
    match content_of(gen_, i) {
        Content::Text => page_data(gen_, i),
        Content::Zero => vec![0; PAGE],
        Content::Pattern => ((gen_ ^ i).wrapping_mul(0x0101_0101_0101_0101) | 0x80)
            .to_le_bytes()
            .repeat(PAGE / 8),
        Content::Random => {
            let mut r = Rng::new(gen_ << 32 ^ i);
            (0..PAGE / 8).flat_map(|_| r.next().to_le_bytes()).collect()
        }
    }
}

fn is_same_filled(gen_: u64, i: u64) -> bool {
    gen_ == 0 || matches!(content_of(gen_, i), Content::Zero | Content::Pattern)
}

/// Writes pages `first..first+n` of generation `gen_` (O_DIRECT, 64 pages a write).
fn write_gen(dev: &Path, gen_: u64, first: u64, n: u64) {
    let mut p = first;
    while p < first + n {
        let k = 64.min(first + n - p);
        let data: Vec<u8> = (p..p + k).flat_map(|i| page_of(gen_, i)).collect();
        write_bytes_direct(dev, p, &data)
            .unwrap_or_else(|e| panic!("writing {} at {p}: {e}", dev.display()));
        p += k;
    }
}

/// Pages of `0..gens.len()` that differ from their generation.
fn verify_gens(dev: &Path, gens: &[u64]) -> Vec<u64> {
    let mut bad = Vec::new();
    let mut p = 0u64;
    let n = gens.len() as u64;
    while p < n {
        let k = 256.min(n - p);
        let data = read_bytes_direct(dev, p, k)
            .unwrap_or_else(|e| panic!("reading {} at page {p}: {e}", dev.display()));
        for (j, page) in data.chunks(PAGE).enumerate() {
            let i = p + j as u64;
            if page != page_of(gens[i as usize], i) {
                bad.push(i);
            }
        }
        p += k;
    }
    bad
}

// ---------------------------------------------------------------------------
// 1. Races.

/// Outcomes of the chaos loop, by operation and result.
#[derive(Default)]
struct Tally(BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, op: &str, r: &Result<(), i32>) {
        let k = match r {
            Ok(()) => format!("{op}: ok"),
            Err(e) => format!("{op}: {}", errno_name(*e)),
        };
        *self.0.entry(k).or_default() += 1;
    }
}

/// What may fail in the chaos loop and how: writeback says EIO when the
/// limit is spent (the loop turns it on and off); `reset` must always say
/// EBUSY (the device is open); everything else must succeed.
fn allowed(op: &str, r: &Result<(), i32>) -> bool {
    match (op, r) {
        ("reset", Err(e)) => *e == libc::EBUSY,
        ("reset", Ok(())) => false,
        (op, Err(e)) if op.starts_with("writeback") => *e == libc::EIO,
        (_, r) => r.is_ok(),
    }
}

/// One device's chaos loop until `stop`; the tally of what happened.
fn chaos(dev: &'static str, pages: u64, seed: u64, stop: Arc<AtomicBool>) -> Tally {
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (op, r): (&str, Result<(), i32>) = match i % 16 {
            0 => ("idle all", sysfs_write(dev, "idle", "all")),
            1 => ("writeback idle", writeback(dev, "idle")),
            2 => ("writeback huge", writeback(dev, "huge")),
            3 => ("writeback huge_idle", writeback(dev, "type=huge_idle")),
            4 => ("writeback incompressible", writeback(dev, "incompressible")),
            5 => {
                let a = rng.below(pages);
                let b = (a + rng.below(512)).min(pages - 1);
                let arg = if rng.below(4) == 0 {
                    format!("page_index={a}")
                } else {
                    format!(
                        "page_indexes={a}-{b} page_indexes={}-{}",
                        b / 2,
                        (b / 2 + 16).min(pages - 1)
                    )
                };
                ("writeback page_indexes", writeback(dev, &arg))
            }
            6 => (
                "idle age",
                sysfs_write(dev, "idle", &rng.below(3).to_string()),
            ),
            7 => (
                "writeback_batch_size",
                sysfs_write(
                    dev,
                    "writeback_batch_size",
                    &(1 + rng.below(64)).to_string(),
                ),
            ),
            8 => (
                "writeback_bio_pages",
                sysfs_write(dev, "writeback_bio_pages", &(1 + rng.below(32)).to_string()),
            ),
            9 => (
                "writeback_limit",
                sysfs_write(dev, "writeback_limit", &rng.below(3000).to_string()),
            ),
            10 => (
                "writeback_limit_enable",
                sysfs_write(
                    dev,
                    "writeback_limit_enable",
                    if rng.below(3) == 0 { "1" } else { "0" },
                ),
            ),
            11 => ("compact", sysfs_write(dev, "compact", "1")),
            12 => (
                "recompress",
                sysfs_write_timed(
                    dev,
                    "recompress",
                    ["type=idle", "type=huge", "type=huge_idle threshold=1000"]
                        [rng.below(3) as usize],
                    120,
                ),
            ),
            13 => ("reset", sysfs_write(dev, "reset", "1")),
            14 => ("writeback type=idle", writeback(dev, "type=idle")),
            _ => {
                std::thread::sleep(Duration::from_millis(20 + rng.below(80)));
                i += 1;
                continue;
            }
        };
        if !allowed(op, &r) {
            panic!("{dev}: {op} -> {r:?} (not allowed in the chaos loop)");
        }
        t.add(op, &r);
        i += 1;
    }
    t
}

/// A cgroup removed when dropped (its processes killed first).
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str, max: &str) -> Cgroup {
        let cg = PathBuf::from(format!("/sys/fs/cgroup/{name}"));
        sh(&format!(
            "echo +memory > /sys/fs/cgroup/cgroup.subtree_control; mkdir -p {cg} && echo {max} > {cg}/memory.max && echo 0 > {cg}/memory.swap.max 2>/dev/null; echo max > {cg}/memory.swap.max",
            cg = cg.display()
        ));
        Cgroup(cg)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Undoes the races' setup: swapoff, reset both devices.
struct RaceGuard;

impl Drop for RaceGuard {
    fn drop(&mut self) {
        for dev in ["rzram0", "rzram1"] {
            let _ = Command::new("swapoff")
                .arg(format!("/dev/{dev}"))
                .stderr(Stdio::null())
                .status();
            for _ in 0..50 {
                if sysfs_write(dev, "reset", "1").is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = sysfs_write(dev, "writeback_limit_enable", "0");
        }
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_races_lose_nothing() {
    in_vm();
    load_rzram();
    let t0 = Instant::now();
    const RAW: &str = "rzram1";
    const SWAP: &str = "rzram0";
    const RAW_PAGES: u64 = 4096; // 16 MiB
    const MIN_PASSES: u32 = 10;
    const SWAP_PASSES: u32 = 4;
    prepare(RAW);
    prepare(SWAP);
    let raw_backing = Dm::linear("rel-race-raw", 0, 256);
    let swap_backing = Dm::linear("rel-race-swap", 256, 256);
    let guard = RaceGuard;
    for (dev, backing, size) in [(RAW, &raw_backing, "16M"), (SWAP, &swap_backing, "192M")] {
        sysfs_write(dev, "recomp_algorithm", "algo=zstd").unwrap();
        sysfs_write(dev, "backing_dev", backing.path.to_str().unwrap()).unwrap();
        sysfs_write(dev, "disksize", size).unwrap();
    }
    sh(&format!(
        "mkswap /dev/{SWAP} >/dev/null && swapon --discard /dev/{SWAP}"
    ));
    let cg = Cgroup::new("rel-races", "16M");

    // The raw disk: held open for the whole test (so reset must say EBUSY).
    let raw = PathBuf::from(format!("/dev/{RAW}"));
    let hold = std::fs::File::open(&raw).unwrap();
    let mut gens = vec![1u64; RAW_PAGES as usize];
    write_gen(&raw, 1, 0, RAW_PAGES);

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(stop.clone());
    let chaos_threads: Vec<_> = [(RAW, RAW_PAGES, 1u64), (SWAP, 192 * 256, 2)]
        .into_iter()
        .map(|(dev, pages, seed)| {
            let stop = stop.clone();
            std::thread::spawn(move || chaos(dev, pages, seed, stop))
        })
        .collect();

    // The swap workload: 32 MiB through a 16 MiB cgroup, verified 4 times
    // (the raw disk gives the >= 10 full passes; swap is slower under TCG).
    let memcheck = zramctl_bin().with_file_name("memcheck");
    let mut swapper = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} 32 {SWAP_PASSES}",
            cg.0.display(),
            memcheck.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memcheck");

    // The raw disk's own writer, discarder and verifier.
    let mut rng = Rng::new(99);
    let (mut passes, mut verified, mut writes, mut discards) = (0u32, 0u64, 0u64, 0u64);
    let mut next_gen = 2u64;
    let mut swap_out = None;
    let deadline = Duration::from_secs(600);
    loop {
        for _ in 0..24 {
            let first = rng.below(RAW_PAGES);
            let n = (1 + rng.below(96)).min(RAW_PAGES - first);
            if rng.below(4) == 0 {
                discard_pages(&raw, first, n).expect("BLKDISCARD");
                gens[first as usize..(first + n) as usize].fill(0);
                discards += 1;
            } else {
                write_gen(&raw, next_gen, first, n);
                gens[first as usize..(first + n) as usize].fill(next_gen);
                next_gen += 1;
                writes += 1;
            }
        }
        let bad = verify_gens(&raw, &gens);
        assert!(
            bad.is_empty(),
            "pass {passes}: {} of {RAW_PAGES} pages differ, first {:?}",
            bad.len(),
            &bad[..bad.len().min(10)]
        );
        passes += 1;
        verified += RAW_PAGES;
        if swap_out.is_none()
            && let Some(_st) = swapper.try_wait().unwrap()
        {
            swap_out = Some(swapper_output(&mut swapper));
        }
        if passes >= MIN_PASSES && swap_out.is_some() {
            break;
        }
        assert!(
            t0.elapsed() < deadline,
            "not done in {deadline:?}: {passes} raw passes, memcheck done: {}",
            swap_out.is_some()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = chaos_threads
        .into_iter()
        .map(|t| t.join().expect("chaos thread"))
        .collect();
    let (code, swap_stdout) = swap_out.unwrap();
    println!("{}", swap_stdout.trim());
    assert!(
        code == 0 && swap_stdout.contains(" 0 words differ"),
        "memcheck: exit {code}: {swap_stdout}"
    );
    // A last pass after the chaos stopped, from a cold cache, and the slot
    // accounting: reading every page once reads each written-back one from
    // the backing disk exactly once.
    drop_caches();
    let before = stats(RAW);
    let bad = verify_gens(&raw, &gens);
    assert!(bad.is_empty(), "final pass: {} pages differ", bad.len());
    verified += RAW_PAGES;
    passes += 1;
    let after = stats(RAW);
    assert_eq!(
        after.bd_reads - before.bd_reads,
        after.bd_count,
        "{RAW}: bd_count must equal the written-back slots (each read once): {after:?}"
    );
    for (dev, tally) in [RAW, SWAP].iter().zip(&tallies) {
        let s = stats(dev);
        println!("{dev}: {s:?}");
        for (k, v) in &tally.0 {
            println!("{dev}:   {k:<34} {v}");
        }
        assert_eq!((s.failed_reads, s.failed_writes), (0, 0), "{dev}: {s:?}");
        assert!(s.bd_writes > 0, "{dev}: nothing was written back: {s:?}");
        assert!(
            tally.0.get("reset: EBUSY").copied().unwrap_or(0) > 0,
            "{dev}: reset was tried"
        );
    }
    let wb_ok: u64 = tallies
        .iter()
        .flat_map(|t| t.0.iter())
        .filter(|(k, _)| k.starts_with("writeback") && k.ends_with(": ok"))
        .map(|(_, v)| v)
        .sum();
    println!(
        "races: {passes} full verify passes of {RAW} ({verified} pages verified, {writes} writes, {discards} discards), \
         memcheck 32 MiB x {SWAP_PASSES} passes through swap on {SWAP}, {wb_ok} writebacks ok, \
         bd_writes {} + {}, 0 mismatches ({:.1}s)",
        stats(RAW).bd_writes,
        stats(SWAP).bd_writes,
        t0.elapsed().as_secs_f64()
    );
    drop(hold);
    drop(cg);
    drop(guard);
}

fn swapper_output(c: &mut Child) -> (i32, String) {
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let code = c.wait().unwrap().code().unwrap_or(-1);
    (code, format!("{out}{err}"))
}

// ---------------------------------------------------------------------------
// 2. Faults of the backing device.

const FAULT_PAGES: u64 = 1024;

/// Reads every page once from a cold cache and checks it; returns how many
/// reads went to the backing disk (the written-back slots).
#[track_caller]
fn verify_and_count_wb(dev: &str, gen_: u64) -> u64 {
    drop_caches();
    let path = PathBuf::from(format!("/dev/{dev}"));
    let before = stats(dev);
    let gens = vec![gen_; FAULT_PAGES as usize];
    let bad = verify_gens(&path, &gens);
    assert!(
        bad.is_empty(),
        "{dev}: {} pages differ, first {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    stats(dev).bd_reads - before.bd_reads
}

fn candidates(gen_: u64) -> u64 {
    (0..FAULT_PAGES)
        .filter(|&i| !is_same_filled(gen_, i))
        .count() as u64
}

fn backing_faults(kind: Kind) {
    in_vm();
    let t0 = Instant::now();
    let dev = kind.dev();
    prepare(dev);
    let offset = if kind == Kind::Zram { 512 } else { 576 };
    let dm = Dm::linear(&format!("rel-fault-{dev}"), offset, 64);
    // Dropped before the dm device: the device lets go of it.
    let _reset = ResetOnDrop(dev);
    let path = PathBuf::from(format!("/dev/{dev}"));
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    let setup = |gen_: u64| {
        reset(dev);
        sysfs_write(dev, "backing_dev", dm.path.to_str().unwrap()).unwrap();
        sysfs_write(dev, "disksize", "16M").unwrap();
        write_gen(&path, gen_, 0, FAULT_PAGES);
    };

    // a. Writes fail (dm-flakey error_writes, dm error): EIO from write(2),
    // the pages stay in RAM, no block leaks, the limit is not charged;
    // rzram counts the failed writes in io_stat, upstream does not.
    setup(1);
    sysfs_write(dev, "writeback_limit_enable", "1").unwrap();
    sysfs_write(dev, "writeback_limit", "100000").unwrap();
    for (what, table) in [
        ("dm-flakey error_writes", dm.flakey_table("error_writes")),
        ("dm error", format!("0 {} error", dm.sectors())),
    ] {
        dm.load(&table);
        sysfs_write(dev, "idle", "all").unwrap();
        let before = stats(dev);
        assert_eq!(writeback(dev, "idle"), Err(libc::EIO), "{dev}: {what}");
        let after = stats(dev);
        assert_eq!(
            (after.bd_count, after.bd_writes),
            (before.bd_count, before.bd_writes),
            "{dev}: {what}: no block kept"
        );
        assert_eq!(
            (after.orig, after.compr, after.huge, after.same),
            (before.orig, before.compr, before.huge, before.same),
            "{dev}: {what}: pages stay in RAM"
        );
        assert_eq!(sysfs_read(dev, "writeback_limit"), "100000\n", "{what}");
        let failed = after.failed_writes - before.failed_writes;
        match kind {
            Kind::Zram => assert_eq!(failed, 0, "upstream counts no writeback failures"),
            Kind::Rzram => assert_eq!(
                failed,
                candidates(1),
                "{dev}: {what}: every failed page counted"
            ),
        }
        *injected.entry(what.into()).or_default() += candidates(1);
        dm.load(&dm.linear_table());
        assert_eq!(verify_and_count_wb(dev, 1), 0, "{what}: nothing on disk");
    }
    sysfs_write(dev, "writeback_limit_enable", "0").unwrap();

    // b. fail_make_request on the backing device at 5, 30, 100 %: some
    // pages go, the rest stay in RAM; bd_count is exactly the written-back
    // slots; every page reads back.
    for (k, percent) in [5u32, 30, 100].into_iter().enumerate() {
        let g = 2 + k as u64;
        setup(g);
        sysfs_write(dev, "idle", "all").unwrap();
        let before = stats(dev);
        let r = {
            let _f = FailMakeRequest::new(&dm.kname(), percent);
            writeback(dev, "idle")
        };
        let after = stats(dev);
        let written = after.bd_writes - before.bd_writes;
        let failed = candidates(g) - written;
        println!(
            "{dev}: fail_make_request {percent}%: writeback -> {r:?}, {written} written, {failed} failed, {after:?}"
        );
        assert_eq!(after.bd_count, written, "{dev}: {percent}%");
        assert_eq!(r.is_err(), failed > 0, "{dev}: {percent}%: {r:?}");
        if failed > 0 {
            assert_eq!(r, Err(libc::EIO));
        }
        if percent == 100 {
            assert_eq!(written, 0);
        } else if percent >= 30 {
            assert!(
                written > 0 && failed > 0,
                "{dev}: {percent}%: {written}/{failed}"
            );
        }
        // At 5 % the odds are per request: rzram's 32-page bios make about
        // 28 requests of these 896 pages, so no failure at all is likely
        // (0.95^28 = 24 %); only the invariants above and below hold.
        match kind {
            Kind::Zram => assert_eq!(after.failed_writes, before.failed_writes),
            Kind::Rzram => assert_eq!(after.failed_writes - before.failed_writes, failed),
        }
        *injected
            .entry(format!("fail_make_request {percent}% writes"))
            .or_default() += failed;
        assert_eq!(
            verify_and_count_wb(dev, g),
            written,
            "{dev}: {percent}%: backing reads = written-back slots"
        );
        assert_eq!(stats(dev).bd_count, written);
    }

    // c. Reads of written-back pages fail: EIO to the reader (100 %), or
    // the right data or EIO page by page (30 %), never anything else; and
    // the data is all there once the disk is healthy again.
    let g = 5;
    setup(g);
    sysfs_write(dev, "idle", "all").unwrap();
    writeback(dev, "idle").unwrap();
    assert_eq!(stats(dev).bd_count, candidates(g));
    for percent in [100u32, 30] {
        drop_caches();
        let before = stats(dev);
        let (mut eio, mut ok) = (0u64, 0u64);
        {
            let _f = FailMakeRequest::new(&dm.kname(), percent);
            for i in 0..FAULT_PAGES {
                match read_bytes_direct(&path, i, 1) {
                    Ok(p) => {
                        assert!(p == page_of(g, i), "{dev}: {percent}%: page {i} is garbage");
                        ok += 1;
                    }
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{dev}: page {i}");
                        assert!(!is_same_filled(g, i), "{dev}: same-filled page {i} failed");
                        eio += 1;
                    }
                }
            }
        }
        let after = stats(dev);
        println!(
            "{dev}: reads with fail_make_request {percent}%: {eio} EIO, {ok} ok, failed_reads +{}",
            after.failed_reads - before.failed_reads
        );
        if percent == 100 {
            assert_eq!(eio, candidates(g));
        } else {
            assert!(eio > 0 && eio < candidates(g));
        }
        // Upstream counts no failed backing reads in io_stat (the error
        // goes to the reader through the chained bio); rzram does the same.
        assert_eq!(after.failed_reads, before.failed_reads, "{dev}");
        *injected
            .entry(format!("fail_make_request {percent}% reads"))
            .or_default() += eio;
    }
    assert_eq!(
        verify_and_count_wb(dev, g),
        candidates(g),
        "{dev}: all there"
    );

    // d. No leaks: discarding everything frees every block; reset takes
    // zsmalloc back to 0.
    discard_pages(&path, 0, FAULT_PAGES).unwrap();
    let s = stats(dev);
    assert_eq!(s.bd_count, 0, "{dev}: discard freed every block: {s:?}");
    reset(dev);
    let mm = fields(dev, "mm_stat");
    assert!(
        mm.iter().all(|v| *v == 0),
        "{dev}: mm_stat after reset: {mm:?}"
    );

    // e. Writes silently dropped (dm-flakey drop_writes): zram has no
    // checksums and trusts a completed write, so writeback "succeeds", the
    // RAM copy is freed, and reading the page returns whatever the disk
    // held (here zeros): the data is lost, and both drivers say so the
    // same way (no error anywhere). This is documented zram behaviour: the
    // backing device must be reliable.
    sh(&format!(
        "dd if=/dev/zero of={} bs=1M count=64 oflag=direct status=none",
        dm.path.display()
    ));
    let g = 6;
    setup(g);
    dm.load(&dm.flakey_table("drop_writes"));
    sysfs_write(dev, "idle", "all").unwrap();
    let before = stats(dev);
    assert_eq!(
        writeback(dev, "idle"),
        Ok(()),
        "{dev}: dropped writes succeed"
    );
    let after = stats(dev);
    assert_eq!(after.bd_count, candidates(g));
    assert_eq!(after.failed_writes, before.failed_writes);
    dm.load(&dm.linear_table());
    drop_caches();
    let mut zeros = 0;
    for i in 0..FAULT_PAGES {
        let p = read_bytes_direct(&path, i, 1).unwrap_or_else(|e| panic!("{dev}: page {i}: {e}"));
        if is_same_filled(g, i) {
            assert!(p == page_of(g, i), "{dev}: same-filled page {i}");
        } else {
            assert!(
                p.iter().all(|b| *b == 0),
                "{dev}: page {i} after a dropped write: not the disk's stale zeros"
            );
            zeros += 1;
        }
    }
    *injected.entry("dm-flakey drop_writes".into()).or_default() += zeros;
    println!("{dev}: drop_writes: {zeros} pages read back as the disk's stale zeros (no error)");
    reset(dev);
    assert_eq!(
        fields(dev, "bd_stat"),
        [0, 0, 0],
        "{dev}: bd_stat after reset"
    );
    assert_eq!(
        fields(dev, "mm_stat")[2],
        0,
        "{dev}: mem_used_total after reset"
    );
    drop(_reset);
    drop(dm);
    println!(
        "{dev}: faults injected {injected:?} ({:.1}s)",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_backing_faults() {
    backing_faults(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_backing_faults() {
    load_rzram();
    backing_faults(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// 3. Bad input: rzram's errno for each input must be upstream zram's.

/// The state both devices are put in before an input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Reset, no backing device.
    Fresh,
    /// recomp_algorithm zstd, backing device, 4 MiB, 16 pages written, idle.
    Live,
}

fn build_state(dev: &str, backing: &Path, st: State) {
    reset(dev);
    sysfs_write(dev, "writeback_limit_enable", "0").unwrap();
    sysfs_write(dev, "writeback_limit", "0").unwrap();
    sysfs_write(dev, "writeback_batch_size", "32").unwrap();
    sysfs_write(dev, "comp_algorithm", "lz4").unwrap();
    if st == State::Live {
        sysfs_write(dev, "recomp_algorithm", "algo=zstd").unwrap();
        sysfs_write(dev, "backing_dev", backing.to_str().unwrap()).unwrap();
        sysfs_write(dev, "disksize", "4M").unwrap();
        write_gen(&PathBuf::from(format!("/dev/{dev}")), 1, 0, 16);
        sysfs_write(dev, "idle", "all").unwrap();
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Inputs every attribute gets.
fn generic_inputs() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "",
        "\n",
        " ",
        "\t",
        "\n\n",
        "0",
        "1",
        "2",
        "-1",
        "+1",
        "01",
        "0x1",
        "0x",
        "1 ",
        "1\n",
        " 1",
        "1\n\n",
        "\n1",
        "1 2",
        "1,2",
        "1\t",
        "abc",
        "ABC",
        "-",
        "=",
        "==",
        "all",
        "none",
        "idle",
        "huge",
        "yes",
        "no",
        "true",
        "on",
        "4096",
        "4095",
        "4097",
        "16M",
        "16m",
        "1K",
        "1k",
        "1G",
        "1T",
        "1P",
        "1E",
        "8E",
        "15E",
        "16E",
        "k",
        "M",
        "1MM",
        "1.5M",
        "1e6",
        "1M ",
        " 1M",
        "99999999999999999999",
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775807",
        "9223372036854775808",
        "4294967295",
        "4294967296",
        "65535",
        "65536",
        "2147483647",
        "2147483648",
        "-9223372036854775808",
        "-0",
        "+0",
        "0.0",
        "00",
        "zstd",
        "lz4",
        "lzo",
        "lzo-rle",
        "deflate",
        "842",
        "lz4hc",
        "LZ4",
        "zstd\n",
        " zstd",
        "algo=zstd",
        "type=idle",
        "page_index=1",
        "page_indexes=1-2",
        "/dev/null",
        "１",
        "１６M",
        "é",
        "💥",
        "ß\n",
        "\u{202e}1",
    ]
    .iter()
    .map(|s| b(s))
    .collect();
    v.extend([
        b"\0".to_vec(),
        b"1\0".to_vec(),
        b"\x001".to_vec(),
        b"idle\0huge".to_vec(),
        b"all\0".to_vec(),
        b"zstd\0lz4".to_vec(),
        b"\xff\xfe".to_vec(),
        b"1\xff".to_vec(),
        b"\xc3".to_vec(),
        b"\x1b[2J".to_vec(),
        b"\x7f".to_vec(),
        b"1\r\n".to_vec(),
        b"1\r".to_vec(),
    ]);
    for len in [64usize, 255, 256, 1000, 4095, 4096, 5000] {
        v.push(vec![b'1'; len]);
        v.push(vec![b'a'; len]);
    }
    let mut r = Rng::new(4242);
    for _ in 0..40 {
        let n = 1 + r.below(48) as usize;
        v.push((0..n).map(|_| r.next() as u8).collect());
    }
    for _ in 0..20 {
        let n = 1 + r.below(20) as usize;
        v.push(
            (0..n)
                .map(|_| b"0123456789-= \nkKmMgG\t,x"[r.below(23) as usize])
                .collect(),
        );
    }
    v
}

/// Inputs for one attribute, on top of the generic ones: its valid values
/// and near misses.
fn attr_inputs(attr: &str, backing: &str) -> Vec<Vec<u8>> {
    let list: Vec<String> = match attr {
        "writeback" => {
            let mut v: Vec<String> = [
                "idle",
                "huge",
                "huge_idle",
                "incompressible",
                "type=idle",
                "type=huge",
                "type=huge_idle",
                "type=incompressible",
                "type=",
                "type",
                "type==idle",
                "type=idle type=huge",
                "idle huge",
                "idle=1",
                "Idle",
                "IDLE",
                "idle\n",
                " idle",
                "idle ",
                "\tidle",
                "page_index=",
                "page_index",
                "page_index=0",
                "page_index=63",
                "page_index=64",
                "page_index=1023",
                "page_index=1024",
                "page_index=1025",
                "page_index=-1",
                "page_index=+1",
                "page_index=0x10",
                "page_index=1,2",
                "page_index=1 page_index=2",
                "page_index=1 garbage",
                "page_index=1 page_index=9999",
                "page_index=18446744073709551615",
                "page_index=18446744073709551616",
                "page_index=4294967296",
                "page_index=1e3",
                "page_index=01",
                "page_index= 1",
                "Page_index=1",
                "page_indexes=0-1023",
                "page_indexes=0-1024",
                "page_indexes=5-3",
                "page_indexes=3-3",
                "page_indexes=-1-3",
                "page_indexes=1-",
                "page_indexes=-3",
                "page_indexes=1--3",
                "page_indexes=0x10-0x20",
                "page_indexes= 1-2",
                "page_indexes=1-2-3",
                "page_indexes=1 -2",
                "page_indexes=",
                "page_indexes",
                "page_indexes=7",
                "page_indexes=a-b",
                "page_indexes=0-18446744073709551615",
                "page_indexes=18446744073709551615-0",
                "page_indexes=1023-1023",
                "page_indexes=1024-1024",
                "page_indexes=0-0 page_indexes=2-1",
                "page_indexes=0-10 type=idle",
                "type=idle page_indexes=0-10",
                "page_index=5 idle",
                "idle page_index=5",
                "type=huge page_index=5",
                "page_indexes=0-63 page_index=3 page_indexes=10-20",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            v.push(format!("page_index={}", "9".repeat(100)));
            v.push(format!("page_indexes=0-{}", "9".repeat(40)));
            v.push("page_index=1 ".repeat(300));
            v
        }
        "idle" => [
            "all",
            "all\n",
            "ALL",
            "All",
            " all",
            "all ",
            "all all",
            "0",
            "1",
            "60",
            "86400",
            "4294967295",
            "4294967296",
            "-1",
            "1s",
            "1.5",
            "0x10",
            "+5",
            "5 ",
            " 5",
            "5\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "comp_algorithm" | "recomp_algorithm" | "recompress" => [
            "lz4",
            "zstd",
            "lz4hc",
            "lzo",
            "lzo-rle",
            "842",
            "deflate",
            "LZ4",
            "Zstd",
            "zstd\n",
            " zstd",
            "zstd ",
            "zstd lz4",
            "algo=zstd",
            "algo=lz4",
            "algo=zstd priority=1",
            "algo=lz4 priority=2",
            "algo=zstd priority=0",
            "algo=zstd priority=3",
            "algo=zstd priority=4",
            "algo=zstd priority=99999999999",
            "priority=1 algo=zstd",
            "algo=",
            "priority=",
            "priority=1",
            "algo=nope",
            "algo=nope priority=1",
            "algo=zstd priority=-1",
            "algo=zstd priority=x",
            "algo=zstd extra=1",
            "algo=zstd priority=1 priority=2",
            "algo=zstd algo=lz4",
            "algo=zstd\n",
            "algo =zstd",
            "algo= zstd",
            "type=idle",
            "type=huge",
            "type=huge_idle",
            "type=nope",
            "type=",
            "threshold=100",
            "threshold=0",
            "threshold=1",
            "threshold=3072",
            "threshold=4095",
            "threshold=4096",
            "threshold=99999999999",
            "threshold=-1",
            "threshold=",
            "threshold=x",
            "max_pages=10",
            "max_pages=0",
            "max_pages=-1",
            "max_pages=",
            "max_pages=18446744073709551616",
            "type=idle threshold=1000 max_pages=4",
            "type=idle algo=zstd",
            "type=idle algo=zstd priority=1",
            "type=idle priority=1",
            "type=idle priority=2",
            "type=huge priority=0",
            "type=idle algo=lz4",
            "type=idle garbage",
            "garbage=1",
            "type=idle type=huge",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "backing_dev" => {
            let mut v: Vec<String> = [
                "/dev/null",
                "/dev/zero",
                "/nonexistent",
                "relative/path",
                "/",
                "/tmp",
                "/dev",
                "/proc/self/mem",
                "/sys/block",
                "none",
                "/dev/mapper",
                "//",
                "/./",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            v.push(backing.into());
            v.push(format!("{backing}\n"));
            v.push(format!("{backing} "));
            v.push(format!(" {backing}"));
            v.push(format!("{backing}\n\n"));
            v.push(format!("{backing}x"));
            v.push(format!("/{}", "a".repeat(300)));
            v.push(format!("/{}", "a/".repeat(2100)));
            v
        }
        "disksize" | "mem_limit" => [
            "4M",
            "4m",
            "1",
            "4096",
            "4095",
            "8191",
            "1K",
            "1k",
            "64M",
            "1G",
            "1g",
            "16G",
            "1T",
            "1P",
            "4P",
            "1E",
            "8E",
            "15E",
            "16E",
            "17E",
            "1Z",
            "18446744073709547520",
            "18446744073709551615",
            "0",
            "0K",
            "-4096",
            "-1M",
            "4M\n",
            " 4M",
            "4 M",
            "4MB",
            "4MiB",
            "4M4",
            "0x1000",
            "0x1000M",
            "010",
            "4.5M",
            "+4M",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "writeback_limit"
        | "writeback_limit_enable"
        | "writeback_batch_size"
        | "mem_used_max"
        | "reset"
        | "compact"
        | "hot_remove" => [
            "0",
            "1",
            "2",
            "32",
            "255",
            "256",
            "257",
            "1024",
            "65535",
            "65536",
            "100000",
            "4294967295",
            "4294967296",
            "18446744073709551615",
            "18446744073709551616",
            "-0",
            "0\n",
            "1\n",
            "1 ",
            " 1",
            "+1",
            "01",
            "0x1",
            "1K",
            "1.0",
            "true",
            "y",
            "Y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        _ => Vec::new(),
    };
    list.into_iter().map(|s| s.into_bytes()).collect()
}

/// Writable attributes of both drivers that the fuzzer drives, and
/// read-only ones (a write must fail the same way).
const FUZZ_ATTRS: [&str; 19] = [
    "disksize",
    "reset",
    "comp_algorithm",
    "mem_limit",
    "mem_used_max",
    "idle",
    "compact",
    "recomp_algorithm",
    "recompress",
    "backing_dev",
    "writeback",
    "writeback_limit",
    "writeback_limit_enable",
    "writeback_batch_size",
    "initstate",
    "mm_stat",
    "io_stat",
    "bd_stat",
    "debug_stat",
];

const READ_ONLY: [&str; 5] = ["initstate", "mm_stat", "io_stat", "bd_stat", "debug_stat"];

/// Whether upstream's different answer is an accident of its C parsing
/// rather than an ABI: it reads up to the first NUL (`"1\0"` is `"1"`),
/// and `memparse()` (disksize, mem_limit) takes a numeric prefix, ignores
/// what follows and wraps around on overflow (`"1\xff"`, `"16E"` and
/// `"1111...1"` are accepted). rzram rejects those inputs with EINVAL.
fn upstream_accident(attr: &str, input: &[u8], rzram: &Result<usize, i32>) -> bool {
    if input.contains(&0) {
        return true;
    }
    matches!(attr, "disksize" | "mem_limit")
        && *rzram == Err(libc::EINVAL)
        && !memparse_clean(input)
}

/// `DIGITS[kKmMgGtTpPeE][\n]` whose value fits in 64 bits.
fn memparse_clean(input: &[u8]) -> bool {
    let s = input.strip_suffix(b"\n").unwrap_or(input);
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return false;
    }
    let shift = match &s[digits..] {
        b"" => 0,
        [c] => match c.to_ascii_lowercase() {
            b'k' => 10,
            b'm' => 20,
            b'g' => 30,
            b't' => 40,
            b'p' => 50,
            b'e' => 60,
            _ => return false,
        },
        _ => return false,
    };
    std::str::from_utf8(&s[..digits])
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .and_then(|v| v.checked_mul(1 << shift))
        .is_some()
}

#[derive(Debug)]
struct Mismatch {
    attr: String,
    state: State,
    input: Vec<u8>,
    zram: Result<usize, i32>,
    rzram: Result<usize, i32>,
}

fn printable(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    let e = format!("{s:?}");
    if e.len() > 60 {
        format!("{}...({} bytes)", &e[..e.floor_char_boundary(56)], v.len())
    } else {
        e
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn sysfs_fuzz_errnos_match_upstream() {
    in_vm();
    load_rzram();
    let t0 = Instant::now();
    let devs = ["zram1", "rzram1"];
    for d in devs {
        prepare(d);
    }
    let zb = Dm::linear("rel-fuzz-zram1", 640, 32);
    let rb = Dm::linear("rel-fuzz-rzram1", 672, 32);
    let backings = [zb.path.clone(), rb.path.clone()];
    let _guard = FuzzGuard;

    // Attributes the fuzzer cannot compare (one side only).
    let attrs_of = |d: &str| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(format!("/sys/block/{d}"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let (za, ra) = (attrs_of("zram1"), attrs_of("rzram1"));
    println!(
        "fuzz: attributes only upstream has: {:?}; only rzram has: {:?}",
        za.difference(&ra).collect::<Vec<_>>(),
        ra.difference(&za).collect::<Vec<_>>()
    );

    let generic = generic_inputs();
    let mut tried = 0u64;
    let mut rebuilds = 0u64;
    let mut mismatches: Vec<Mismatch> = Vec::new();
    let mut accidents: Vec<Mismatch> = Vec::new();
    let mut by_result: BTreeMap<String, u64> = BTreeMap::new();
    for state in [State::Fresh, State::Live] {
        for (d, bk) in devs.iter().zip(&backings) {
            build_state(d, bk, state);
        }
        for attr in FUZZ_ATTRS {
            let ta = Instant::now();
            let tried_before = tried;
            // Same-meaning inputs for both: the backing path differs, so
            // each device gets its own slice's path in "its" position.
            // Read-only attributes fail at open(2): a few inputs do;
            // `compact` takes any input (each one a compaction and a rebuild).
            let n = if READ_ONLY.contains(&attr) {
                6
            } else if attr == "compact" {
                40
            } else {
                generic.len()
            };
            let mut inputs: Vec<(Vec<u8>, Vec<u8>)> = generic[..n]
                .iter()
                .map(|v| (v.clone(), v.clone()))
                .collect();
            let za = attr_inputs(attr, zb.path.to_str().unwrap());
            let ra = attr_inputs(attr, rb.path.to_str().unwrap());
            inputs.extend(za.into_iter().zip(ra));
            for (zin, rin) in inputs {
                let rz = write_once(&PathBuf::from(format!("/sys/block/zram1/{attr}")), &zin);
                let rr = write_once(&PathBuf::from(format!("/sys/block/rzram1/{attr}")), &rin);
                tried += 1;
                *by_result
                    .entry(format!("{attr}: {}", show(&rz)))
                    .or_default() += 1;
                // Successful writes report the whole input; an errno must be
                // upstream's.
                let same = match (&rz, &rr) {
                    (Ok(a), Ok(b)) => a == b || zin != rin,
                    (Err(a), Err(b)) => a == b,
                    _ => false,
                };
                let rebuild = [rz.is_ok(), rr.is_ok()];
                if !same {
                    let m = Mismatch {
                        attr: attr.into(),
                        state,
                        input: rin.clone(),
                        zram: rz,
                        rzram: rr,
                    };
                    if upstream_accident(attr, &rin, &m.rzram) {
                        accidents.push(m);
                    } else {
                        mismatches.push(m);
                    }
                }
                // A write that took effect changed the device: put it back.
                for ((d, bk), r) in devs.iter().zip(&backings).zip(rebuild) {
                    if r {
                        build_state(d, bk, state);
                        rebuilds += 1;
                    }
                }
            }
            println!(
                "fuzz: {state:?} {attr}: {} inputs in {:.1}s",
                tried - tried_before,
                ta.elapsed().as_secs_f64()
            );
        }
    }

    // The control classes: hot_add (read-only to writers) and hot_remove.
    let (zc, rc) = (
        Path::new("/sys/class/zram-control"),
        Path::new("/sys/class/rzram-control"),
    );
    let mut control_inputs = generic.clone();
    control_inputs.extend(attr_inputs("hot_remove", ""));
    for attr in ["hot_add", "hot_remove"] {
        for input in &control_inputs {
            // Never name a device that exists: those are other tests'.
            // (Upstream reads up to the first NUL: "1\0" is "1".)
            let c_str = input.split(|b| *b == 0).next().unwrap_or_default();
            if attr == "hot_remove"
                && let Ok(s) = std::str::from_utf8(c_str)
                && let Ok(id) = s.trim().parse::<i64>()
                && (0..64).contains(&id)
            {
                continue;
            }
            let rz = write_once(&zc.join(attr), input);
            let rr = write_once(&rc.join(attr), input);
            tried += 1;
            let same = match (&rz, &rr) {
                (Ok(_), Ok(_)) => true,
                (Err(a), Err(b)) => a == b,
                _ => false,
            };
            if !same {
                let m = Mismatch {
                    attr: format!("{attr} (control)"),
                    state: State::Fresh,
                    input: input.clone(),
                    zram: rz,
                    rzram: rr,
                };
                if upstream_accident(attr, input, &m.rzram) {
                    accidents.push(m);
                } else {
                    mismatches.push(m);
                }
            }
        }
    }
    // hot_add, then hot_remove of the new device: open (EBUSY), closed (ok),
    // gone (ENODEV), each the same on both.
    let add = |c: &Path| -> String { std::fs::read_to_string(c.join("hot_add")).unwrap() };
    let (zid, rid) = (add(zc), add(rc));
    let (zid, rid) = (zid.trim().to_string(), rid.trim().to_string());
    {
        let _zo = std::fs::File::open(format!("/dev/zram{zid}")).unwrap();
        let _ro = std::fs::File::open(format!("/dev/rzram{rid}")).unwrap();
        let rz = write_once(&zc.join("hot_remove"), zid.as_bytes());
        let rr = write_once(&rc.join("hot_remove"), rid.as_bytes());
        assert_eq!(rz, Err(libc::EBUSY), "zram{zid}: hot_remove while open");
        tried += 1;
        if rz != rr {
            mismatches.push(Mismatch {
                attr: "hot_remove (open device)".into(),
                state: State::Fresh,
                input: rid.clone().into_bytes(),
                zram: rz,
                rzram: rr,
            });
        }
    }
    for step in ["closed", "gone"] {
        let rz = write_once(&zc.join("hot_remove"), format!("{zid}\n").as_bytes());
        let rr = write_once(&rc.join("hot_remove"), format!("{rid}\n").as_bytes());
        tried += 1;
        if rz.is_ok() != rr.is_ok() || (rz.is_err() && rz != rr) {
            mismatches.push(Mismatch {
                attr: format!("hot_remove ({step} device)"),
                state: State::Fresh,
                input: rid.clone().into_bytes(),
                zram: rz,
                rzram: rr,
            });
        }
    }

    println!(
        "fuzz: {tried} inputs to each driver ({} attributes x 2 states + control), {rebuilds} state rebuilds, \
         {} mismatches, {} more where upstream's answer is an accident of C parsing ({:.1}s)",
        FUZZ_ATTRS.len(),
        mismatches.len(),
        accidents.len(),
        t0.elapsed().as_secs_f64()
    );
    for m in &accidents {
        println!(
            "accident {:<24} {:<5?} {:<64} zram {:<10} rzram {}",
            m.attr,
            m.state,
            printable(&m.input),
            show(&m.zram),
            show(&m.rzram)
        );
    }
    let mut per_attr: BTreeMap<&str, u64> = BTreeMap::new();
    for m in &mismatches {
        *per_attr.entry(&m.attr).or_default() += 1;
    }
    println!("fuzz: mismatches per attribute: {per_attr:?}");
    for m in &mismatches {
        println!(
            "MISMATCH {:<24} {:<5?} {:<64} zram {:<10} rzram {}",
            m.attr,
            m.state,
            printable(&m.input),
            show(&m.zram),
            show(&m.rzram)
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} of {tried} inputs got another result from rzram than from upstream zram (listed above)",
        mismatches.len()
    );
}

struct FuzzGuard;

impl Drop for FuzzGuard {
    fn drop(&mut self) {
        for d in ["zram1", "rzram1"] {
            for _ in 0..50 {
                if sysfs_write(d, "reset", "1").is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = sysfs_write(d, "writeback_limit_enable", "0");
            let _ = sysfs_write(d, "writeback_batch_size", "32");
            let _ = sysfs_write(d, "comp_algorithm", "lz4");
        }
    }
}

// ---------------------------------------------------------------------------
// 5. Daemon chaos.

struct Daemon {
    child: Child,
    log: PathBuf,
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[track_caller]
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A policy that writes back fast: big budget, short periods, pages idle
/// after a second, sysfs-only (no probes: the point is sysfs state).
fn chaos_config(port: u16, devices: &[&str]) -> String {
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
fn limit_state(dev: &str) -> (String, String) {
    (
        sysfs_read(dev, "writeback_limit_enable").trim().to_string(),
        sysfs_read(dev, "writeback_limit").trim().to_string(),
    )
}

struct ChaosGuard {
    dm: Vec<String>,
    hot: Vec<String>,
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
fn daemon_chaos() {
    in_vm();
    load_rzram();
    let t0 = Instant::now();
    const DEV: &str = "rzram0";
    prepare(DEV);
    let dm = Dm::linear("rel-chaos", 768, 256);
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
    wait_for(60, "the daemon's first writeback", || {
        d.assert_alive("before any writeback");
        bd_writes() > 0
    });
    // Kill it while pages are moving.
    let w0 = bd_writes();
    wait_for(30, "writeback in progress", || bd_writes() > w0);
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
    wait_for(60, "the restarted daemon's metrics", || {
        d.assert_alive("after the restart");
        d.scrape(port).is_some()
    });
    wait_for(60, "writeback after the restart", || {
        d.assert_alive("after the restart");
        bd_writes() > w1 || fields(DEV, "bd_stat")[0] == candidates_of(PAGES)
    });
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
    wait_for(60, "metrics", || d.scrape(port).is_some());
    dm.load(&format!("0 {} error", dm.sectors()));
    let f0 = stats(DEV).failed_writes;
    wait_for(60, "failed writeback rounds", || {
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
    let dm2 = Dm::linear("rel-chaos2", 768, 256);
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
    wait_for(60, "metrics", || d.scrape(port).is_some());
    reset(DEV);
    std::thread::sleep(Duration::from_secs(2));
    d.assert_alive("after a reset under it");
    sysfs_write(DEV, "backing_dev", dm2.path.to_str().unwrap()).unwrap();
    sysfs_write(DEV, "disksize", "64M").unwrap();
    write_gen(&path, 9, 0, 4096);
    let w = stats(DEV).bd_writes;
    wait_for(60, "writeback on the re-setup device", || {
        d.assert_alive("after re-setup");
        stats(DEV).bd_writes > w
    });
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

fn candidates_of(pages: u64) -> u64 {
    (0..pages).filter(|&i| !is_same_filled(7, i)).count() as u64
}

// ---------------------------------------------------------------------------
// The end: rzram unloads cleanly, and loads again for whoever comes next.

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_unloads_cleanly() {
    in_vm();
    load_rzram();
    for d in ["rzram0", "rzram1"] {
        reset(d);
        let mm = fields(d, "mm_stat");
        assert_eq!(mm[2], 0, "{d}: mem_used_total after reset: {mm:?}");
        assert_eq!(fields(d, "bd_stat"), [0, 0, 0], "{d}");
    }
    sh("rmmod rzram");
    assert!(!Path::new("/sys/block/rzram0").exists());
    assert!(!Path::new("/sys/class/rzram-control").exists());
    load_rzram();
}

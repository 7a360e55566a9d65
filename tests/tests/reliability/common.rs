//! What the reliability suites share: small sysfs tools, fail_make_request,
//! and page contents by generation.

#![allow(unused_imports)]

pub use std::{
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

pub use zramctl_tests::{
    DmSlice, Kind, PAGE, SECTORS_PER_MIB, Stats, discard_pages, drop_caches, fields, free_port,
    in_vm, load_rzram, page_data, read_bytes_direct, results_dir, scratch_disk, sh, stats,
    sysfs_read, sysfs_write, sysfs_write_timed, wait_for, write_bytes_direct, writeback,
    zramctl_bin,
};

// ---------------------------------------------------------------------------
// Small tools.

/// xorshift64*: deterministic test randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One write(2) of `value` to `path`: the byte count or the errno (of the
/// open or of the write).
pub fn write_once(path: &Path, value: &[u8]) -> Result<usize, i32> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.raw_os_error().unwrap_or(-1))?;
    f.write(value).map_err(|e| e.raw_os_error().unwrap_or(-1))
}

pub fn errno_name(e: i32) -> String {
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

pub fn show(r: &Result<usize, i32>) -> String {
    match r {
        Ok(n) => format!("ok({n})"),
        Err(e) => errno_name(*e),
    }
}

/// swapoff, then reset (retrying while the device is still busy).
pub fn reset(dev: &str) {
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
pub struct ResetOnDrop(pub &'static str);

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
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Whether this run writes back packed (`ZRAMCTL_WB_PACKED=1`: the suite
/// runs the races and the fuzzer a second time so).
pub fn packed_run() -> bool {
    std::env::var("ZRAMCTL_WB_PACKED").is_ok_and(|v| v == "1")
}

/// rzram's `packed_writeback` as this run wants it (a reset keeps it, so it
/// is set either way); nothing on upstream zram, which has no such mode.
pub fn set_packed(dev: &str) {
    if dev.starts_with("rzram") {
        sysfs_write(
            dev,
            "packed_writeback",
            if packed_run() { "1" } else { "0" },
        )
        .unwrap();
    }
}

/// Reset, and the writeback settings a reset keeps put back to defaults
/// (packed as this run wants).
pub fn prepare(dev: &str) {
    if dev.starts_with("rzram") {
        load_rzram();
    }
    reset(dev);
    sysfs_write(dev, "writeback_limit_enable", "0").unwrap();
    sysfs_write(dev, "writeback_limit", "0").unwrap();
    sysfs_write(dev, "writeback_batch_size", "32").unwrap();
    let _ = sysfs_write(dev, "writeback_bio_pages", "32");
    set_packed(dev);
}

// Backing devices are device-mapper slices of the scratch disk
// (`DmSlice`).
//
// Slices (MiB of the 1 GiB disk): races 0-255 (rzram1) and 256-511
// (rzram0); faults 512-575 (zram1) and 576-639 (rzram1); fuzzer 640-671
// (zram1) and 672-703 (rzram1); daemon 768-1023 (rzram0).

/// fail_make_request on one block device: every bio submitted to it fails
/// with probability `percent` while this lives.
pub struct FailMakeRequest {
    pub dev: String,
}

impl FailMakeRequest {
    pub fn new(dev: &str, percent: u32) -> FailMakeRequest {
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
pub enum Content {
    Text,
    Random,
    Pattern,
    Zero,
}

pub fn content_of(gen_: u64, i: u64) -> Content {
    match (gen_.wrapping_mul(31) ^ i) % 16 {
        3 => Content::Zero,
        7 => Content::Pattern,
        11 | 12 => Content::Random,
        _ => Content::Text,
    }
}

/// The bytes of page `i` written in generation `gen_` (0: never written or
/// discarded, reads as zeros).
pub fn page_of(gen_: u64, i: u64) -> Vec<u8> {
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

pub fn is_same_filled(gen_: u64, i: u64) -> bool {
    gen_ == 0 || matches!(content_of(gen_, i), Content::Zero | Content::Pattern)
}

/// Writes pages `first..first+n` of generation `gen_` (O_DIRECT, 64 pages a write).
pub fn write_gen(dev: &Path, gen_: u64, first: u64, n: u64) {
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
pub fn verify_gens(dev: &Path, gens: &[u64]) -> Vec<u64> {
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

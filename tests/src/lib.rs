//! Helpers for zramctl's integration tests (`tests/`): run the real binary,
//! make verifiable data, talk to real block devices.

mod vm;

pub use vm::{
    DmSlice, SECTORS_PER_MIB, bd_stat, dm_create, dm_remove, free_port, in_vm, results_dir,
    wait_for,
};

use std::{
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

/// Output of one zramctl run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "zramctl failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout))
    }
}

/// The zramctl binary: $ZRAMCTL_BIN (the VM suite) or the one cargo built.
pub fn zramctl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ZRAMCTL_BIN") {
        return p.into();
    }
    // target/debug/deps/<test> -> target/debug/zramctl
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("zramctl")
}

/// Runs zramctl with `args`.
pub fn zramctl(args: &[&str]) -> Run {
    let out = Command::new(zramctl_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (build it with cargo build -p zramctl)",
                zramctl_bin().display()
            )
        });
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub const PAGE: usize = 4096;

/// Deterministic, verifiable page contents: text-like (compresses about
/// 2-3x, like real anonymous memory), never same-filled, unique per page
/// and seed so misplaced pages are caught.
pub fn page_data(seed: u64, index: u64) -> Vec<u8> {
    let mut s =
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    let words: [&[u8]; 8] = [
        b"zram ", b"page ", b"swap ", b"cold ", b"idle ", b"write", b"back ", b"data ",
    ];
    let mut out = Vec::with_capacity(PAGE);
    out.extend_from_slice(format!("seed {seed} page {index}\n").as_bytes());
    while out.len() < PAGE {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        if s.is_multiple_of(4) {
            out.extend_from_slice(&s.to_le_bytes()[..3]);
        } else {
            out.extend_from_slice(words[(s % 8) as usize]);
        }
    }
    out.truncate(PAGE);
    out
}

/// Writes `pages` pages of [`page_data`] to a block device from page 0, and syncs.
pub fn write_pages(dev: &Path, seed: u64, pages: u64) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(dev)?;
    let mut buf = Vec::with_capacity(256 * PAGE);
    for i in 0..pages {
        buf.extend_from_slice(&page_data(seed, i));
        if buf.len() == buf.capacity() || i + 1 == pages {
            f.write_all(&buf)?;
            buf.clear();
        }
    }
    f.sync_all()
}

/// Reads the pages back bypassing the page cache (O_DIRECT) and returns the
/// indexes of pages that differ from [`page_data`].
pub fn verify_pages(dev: &Path, seed: u64, pages: u64) -> std::io::Result<Vec<u64>> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)?;
    f.seek(SeekFrom::Start(0))?;
    let chunk = 64usize;
    let mut aligned = AlignedBuf::new(chunk * PAGE);
    let mut bad = Vec::new();
    let mut i = 0;
    while i < pages {
        let n = chunk.min((pages - i) as usize);
        let buf = &mut aligned.bytes_mut()[..n * PAGE];
        f.read_exact(buf)?;
        for k in 0..n {
            if buf[k * PAGE..(k + 1) * PAGE] != page_data(seed, i + k as u64)[..] {
                bad.push(i + k as u64);
            }
        }
        i += n as u64;
    }
    Ok(bad)
}

/// A page-aligned buffer for O_DIRECT.
pub struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, PAGE).expect("layout");
        // SAFETY: len is non-zero in every caller and the layout is valid.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        AlignedBuf { ptr, len }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr points to len initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, PAGE).expect("layout");
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

/// Drops clean page cache so later reads go to the device.
pub fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Opens a block device for O_DIRECT reads and writes.
fn open_direct(dev: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev)
}

/// Writes pages `first..first + pages` of [`page_data`] with one O_DIRECT
/// `pwrite` (one bio unless the block layer splits it), bypassing the page
/// cache so the device sees exactly these pages.
pub fn write_pages_direct(dev: &Path, seed: u64, first: u64, pages: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let f = open_direct(dev)?;
    let mut buf = AlignedBuf::new(pages as usize * PAGE);
    for (k, chunk) in buf.bytes_mut().chunks_mut(PAGE).enumerate() {
        chunk.copy_from_slice(&page_data(seed, first + k as u64));
    }
    f.write_all_at(buf.bytes_mut(), first * PAGE as u64)
}

/// Reads pages `first..first + pages` with one O_DIRECT `pread` and returns
/// the indexes of pages that differ from [`page_data`] for `seed`.
pub fn read_pages_direct(
    dev: &Path,
    seed: u64,
    first: u64,
    pages: u64,
) -> std::io::Result<Vec<u64>> {
    use std::os::unix::fs::FileExt as _;
    let f = open_direct(dev)?;
    let mut buf = AlignedBuf::new(pages as usize * PAGE);
    f.read_exact_at(buf.bytes_mut(), first * PAGE as u64)?;
    Ok(buf
        .bytes_mut()
        .chunks(PAGE)
        .enumerate()
        .filter(|(k, chunk)| *chunk != &page_data(seed, first + *k as u64)[..])
        .map(|(k, _)| first + k as u64)
        .collect())
}

/// Discards pages `first..first + pages` (BLKDISCARD).
pub fn discard_pages(dev: &Path, first: u64, pages: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // _IO(0x12, 119) from <linux/fs.h>.
    const BLKDISCARD: libc::c_ulong = 0x1277;
    let f = std::fs::OpenOptions::new().write(true).open(dev)?;
    let range: [u64; 2] = [first * PAGE as u64, pages * PAGE as u64];
    // SAFETY: BLKDISCARD reads two u64 (start, length) from the pointer,
    // which points at `range`, alive for the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKDISCARD, range.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Why this machine's zram0 cannot be used by a host test, if it cannot:
/// not root, no zram0, or zram0 initialised (in use by someone else).
pub fn zram0_unusable() -> Option<String> {
    if !is_root() {
        return Some("not root".into());
    }
    let dir = Path::new("/sys/block/zram0");
    if !dir.exists() {
        return Some("no /sys/block/zram0 on this machine".into());
    }
    match std::fs::read_to_string(dir.join("initstate")) {
        Ok(s) if s.trim() == "0" => None,
        Ok(_) => Some("zram0 is initialised (in use by someone else); not touching it".into()),
        Err(e) => Some(format!("cannot read zram0/initstate: {e}")),
    }
}

/// Pages the kernel has handed out and not had back: every `pgalloc_*`
/// minus `pgfree`. Events are summed over CPUs when read, and a page in a
/// per-CPU free list counts as free, so two reads compare exactly (unlike
/// `nr_free_pages`, which per-CPU lists blur by megabytes).
pub fn pages_held() -> i64 {
    let vmstat = std::fs::read_to_string("/proc/vmstat").unwrap();
    let mut held = 0i64;
    for line in vmstat.lines() {
        let Some((name, v)) = line.split_once(' ') else {
            continue;
        };
        let v: i64 = v.trim().parse().unwrap();
        if name.starts_with("pgalloc_") {
            held += v;
        } else if name == "pgfree" {
            held -= v;
        }
    }
    held
}

/// A counter from /proc/vmstat (e.g. `pswpout`).
pub fn vmstat(field: &str) -> u64 {
    // /proc/vmstat sums global counters that CPUs update in batches (up to
    // a second late, or more on a busy guest): fold the per-CPU deltas in
    // first, so that two reads compare exactly.
    let _ = std::fs::write("/proc/sys/vm/stat_refresh", "1");
    std::fs::read_to_string("/proc/vmstat")
        .expect("reading /proc/vmstat")
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/vmstat"))
}

/// Stops a child with SIGINT and returns everything it printed on stdout.
pub fn interrupt_and_collect(child: &mut std::process::Child) -> String {
    use std::io::Read as _;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .expect("reading the child's stdout");
    }
    out
}

/// Skips the calling test (returns) with the reason printed when this
/// machine's zram0 cannot be used (see [`zram0_unusable`]).
#[macro_export]
macro_rules! require_zram0 {
    () => {
        if let Some(why) = $crate::zram0_unusable() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// Resets zram0 when dropped, even when a test fails half-way (swapoff
/// first, in case a test used it as swap).
pub struct Zram0Reset;

impl Drop for Zram0Reset {
    fn drop(&mut self) {
        let _ = Command::new("swapoff")
            .arg("/dev/zram0")
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::write("/sys/block/zram0/reset", "1");
    }
}

/// Runs a shell command that must succeed; returns its stdout.
#[track_caller]
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `value` to `/sys/block/DEV/ATTR` with one write(2); the errno on failure.
pub fn sysfs_write(dev: &str, attr: &str, value: &str) -> Result<(), i32> {
    std::fs::write(format!("/sys/block/{dev}/{attr}"), value)
        .map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// Reads `/sys/block/DEV/ATTR`; panics with the path when it cannot.
#[track_caller]
pub fn sysfs_read(dev: &str, attr: &str) -> String {
    let path = format!("/sys/block/{dev}/{attr}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The whitespace-separated numbers of a sysfs attribute (mm_stat,
/// bd_stat, io_stat, ...).
pub fn fields(dev: &str, attr: &str) -> Vec<u64> {
    sysfs_read(dev, attr)
        .split_whitespace()
        .map(|f| {
            f.parse()
                .unwrap_or_else(|_| panic!("{dev}/{attr}: bad field {f:?}"))
        })
        .collect()
}

/// The counters the VM tests look at, from bd_stat (4K blocks), mm_stat and
/// io_stat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub bd_count: u64,
    pub bd_reads: u64,
    pub bd_writes: u64,
    pub orig: u64,
    pub compr: u64,
    pub mem_used: u64,
    pub same: u64,
    pub huge: u64,
    pub failed_reads: u64,
    pub failed_writes: u64,
    pub notify_free: u64,
}

/// The device's [`Stats`] now; each file must have upstream's field count.
pub fn stats(dev: &str) -> Stats {
    let bd = fields(dev, "bd_stat");
    assert_eq!(bd.len(), 3, "{dev}: bd_stat has 3 fields: {bd:?}");
    let mm = fields(dev, "mm_stat");
    assert_eq!(mm.len(), 9, "{dev}: mm_stat has 9 fields: {mm:?}");
    let io = fields(dev, "io_stat");
    assert_eq!(io.len(), 4, "{dev}: io_stat has 4 fields: {io:?}");
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
        notify_free: io[3],
    }
}

/// `sysfs_write` that fails the test instead of hanging the suite when the
/// kernel does not return within `secs` (times [`time_scale`]).
pub fn sysfs_write_timed(dev: &str, attr: &str, value: &str, secs: u64) -> Result<(), i32> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (d, a, v) = (dev.to_string(), attr.to_string(), value.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(sysfs_write(&d, &a, &v));
    });
    let limit = std::time::Duration::from_secs(secs) * time_scale();
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{dev}: {attr} <- {value:?} did not return within {limit:?}"))
}

/// Writes `arg` to the device's `writeback`, failing the test (instead of
/// hanging the suite) if the write does not return within two minutes.
pub fn writeback(dev: &str, arg: &str) -> Result<(), i32> {
    sysfs_write_timed(dev, "writeback", arg, 120)
}

/// After a writeback that failed at the backing device (`before` and
/// `after` it): no block kept or written, every page still in RAM, and
/// `writeback_limit` still `limit` (nothing charged).
pub fn assert_failed_writeback_kept_nothing(
    dev: &str,
    what: &str,
    before: &Stats,
    after: &Stats,
    limit: u64,
) {
    assert_eq!(
        (after.bd_count, after.bd_writes),
        (before.bd_count, before.bd_writes),
        "{dev}: {what}: no block kept: {after:?}"
    );
    assert_eq!(
        (after.orig, after.compr, after.huge, after.same),
        (before.orig, before.compr, before.huge, before.same),
        "{dev}: {what}: pages stay in RAM"
    );
    assert_eq!(
        sysfs_read(dev, "writeback_limit"),
        format!("{limit}\n"),
        "{dev}: {what}: the limit is not charged"
    );
}

/// The VM's scratch disk (a fresh 1 GiB virtio disk per run).
pub fn scratch_disk() -> PathBuf {
    std::env::var_os("ZRAMCTL_BACKING_DISK")
        .map(PathBuf::from)
        .expect("ZRAMCTL_BACKING_DISK is set by cargo xtask vm")
}

/// The two drivers a VM test body runs on: upstream zram and rzram, each
/// through its second device (the first stays free for other tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Upstream C zram, built into the VM kernel.
    Zram,
    /// rzram, our Rust driver (module).
    Rzram,
}

impl Kind {
    /// The device name: zram1 or rzram1.
    pub fn dev(self) -> &'static str {
        match self {
            Kind::Zram => "zram1",
            Kind::Rzram => "rzram1",
        }
    }
}

/// How much slower than the normal kernel the guest's kernel runs: about
/// 5 on the debug kernel (KASAN + lockdep under TCG; `hardening` took 4.6x
/// its normal time), 1 otherwise. Wall-clock deadlines that only catch a
/// hang are multiplied by it.
pub fn time_scale() -> u32 {
    if debug_kernel() { 5 } else { 1 }
}

/// Whether the guest runs the debug kernel (KASAN + lockdep): `cargo xtask
/// vm-test --debug-kernel`. There the suite hunts splats, which a checker
/// reports the first time a path runs; soak loops that repeat the same
/// paths to find rare data mismatches do fewer rounds (see [`soak`]).
pub fn debug_kernel() -> bool {
    std::env::var("ZRAMCTL_DEBUG_KERNEL").is_ok_and(|v| v == "1")
}

/// Rounds of a soak loop: `normal` on the normal kernel, `debug` on the
/// debug kernel, where every path still runs but the normal run carries
/// the repetition (docs/testing.md).
pub fn soak(normal: u32, debug: u32) -> u32 {
    if debug_kernel() { debug } else { normal }
}

/// In the VM: loads the rzram module we built with two devices unless it is
/// loaded.
pub fn load_rzram() {
    assert!(
        std::env::var_os("ZRAMCTL_VM").is_some(),
        "run with cargo xtask vm-test"
    );
    if Path::new("/sys/block/rzram0").exists() {
        return;
    }
    let modroot = std::env::var("ZRAMCTL_MODROOT").expect("ZRAMCTL_MODROOT");
    let release = std::env::var("ZRAMCTL_KERNEL_RELEASE").expect("ZRAMCTL_KERNEL_RELEASE");
    let ko = format!("{modroot}/lib/modules/{release}/kernel/drivers/block/rzram/rzram.ko");
    sh(&format!("insmod {ko} num_devices=2"));
    assert!(
        Path::new("/sys/block/rzram1").exists(),
        "num_devices=2 makes rzram0 and rzram1"
    );
}

/// Writes `data` (whole pages) at page `first` with one O_DIRECT `pwrite`.
pub fn write_bytes_direct(dev: &Path, first: u64, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    assert!(data.len().is_multiple_of(PAGE), "whole pages only");
    let f = open_direct(dev)?;
    let mut buf = AlignedBuf::new(data.len());
    buf.bytes_mut().copy_from_slice(data);
    f.write_all_at(buf.bytes_mut(), first * PAGE as u64)
}

/// Reads `pages` pages from page `first` with one O_DIRECT `pread`.
pub fn read_bytes_direct(dev: &Path, first: u64, pages: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt as _;
    let f = open_direct(dev)?;
    let mut buf = AlignedBuf::new(pages as usize * PAGE);
    f.read_exact_at(buf.bytes_mut(), first * PAGE as u64)?;
    Ok(buf.bytes_mut().to_vec())
}

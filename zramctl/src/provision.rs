//! Backing devices zramctl provisions itself, the way Android and ChromeOS
//! do: a preallocated file on a loop device with direct I/O, and with
//! `--encrypt` dm-integrity (AEAD tags) under dm-crypt with a random key
//! that exists only in the kernel, so written-back pages are unreadable
//! after a reboot and tampering with the file reads back as `EIO`.
//!
//! ```text
//!  zramN ──backing_dev──▶ /dev/dm-B  zramctl-zramN-crypt      capi:gcm(aes)-random, 4K sectors,
//!                          │                                  integrity:28:aead, key from getrandom(2)
//!                          ▼
//!                         /dev/dm-A  zramctl-zramN-integrity  28-byte tags per 4K block, mode D
//!                          │                                  (no journal: the key dies with the boot)
//!                          ▼
//!                         /dev/loopN  --direct-io=on
//!                          │
//!                          ▼
//!                         FILE (fallocate'd)
//! ```
//!
//! Everything is found again from the kernel and one record file, never
//! from memory: the dm devices have fixed names and uuids derived from the
//! zram device ([`dm_name`]), the loop device is whatever is attached to the
//! recorded file or sits under the integrity device, and the record
//! (`/run/zramctl/<dev>.backing`, written before the loop device is
//! attached) names the file. So a setup killed half-way is cleaned up by
//! the next `setup` or `reset` of the same device ([`plan_teardown`]).
//!
//! The key is 32 bytes from `getrandom(2)`, hex-encoded only inside the
//! table that goes to `dmsetup` through a pipe (never argv, a file or a
//! log) and zeroed in our memory right after.

use std::{
    ffi::CString,
    io::Write as _,
    os::unix::{ffi::OsStrExt as _, fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    size::ByteSize,
    sysfs::{BackingDev, Device, Sysfs},
};

/// `--backing-size`: bytes, or `auto` (see [`auto_size`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackingSize {
    Auto,
    Bytes(u64),
}

impl FromStr for BackingSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(BackingSize::Auto);
        }
        let b: ByteSize = s.parse().map_err(|e| format!("{e}, or auto"))?;
        if b.0 < MIN_FILE {
            return Err(format!(
                "backing file size {b} is too small: at least {}",
                ByteSize(MIN_FILE)
            ));
        }
        Ok(BackingSize::Bytes(b.0))
    }
}

impl std::fmt::Display for BackingSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackingSize::Auto => f.write_str("auto"),
            BackingSize::Bytes(b) => write!(f, "{}", ByteSize(*b)),
        }
    }
}

/// What `setup` is asked to provision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackingSpec {
    pub file: PathBuf,
    pub size: BackingSize,
    pub encrypt: bool,
}

// ---------------------------------------------------------------------------
// Sizing.

/// `auto` takes this fraction of the free space (1/4) ...
pub const AUTO_FRACTION_DIV: u64 = 4;
/// ... at most this much (8 GiB) and never more than the zram disk size
/// (writeback cannot store more pages than the disk has) ...
pub const AUTO_MAX: u64 = 8 << 30;
/// ... and refuses below this (64 MiB, or the disk size when smaller).
pub const AUTO_MIN: u64 = 64 << 20;
/// Sizes are whole MiB.
pub const SIZE_ALIGN: u64 = 1 << 20;
/// The smallest file `--backing-size` takes (dm-integrity needs room for
/// its superblock, journal and tags).
pub const MIN_FILE: u64 = 4 << 20;

/// The `auto` size, like ChromeOS's and Android's writeback files: a
/// quarter of the free space of the file's filesystem (`free` counts the
/// blocks an existing file already holds), capped at the zram disk size and
/// [`AUTO_MAX`], in whole MiB; an error when that is below [`AUTO_MIN`]
/// (or the disk size, if smaller).
pub fn auto_size(free: u64, disksize: u64) -> Result<u64, String> {
    let cap = disksize.div_ceil(SIZE_ALIGN) * SIZE_ALIGN;
    let size = (free / AUTO_FRACTION_DIV).min(cap).min(AUTO_MAX) / SIZE_ALIGN * SIZE_ALIGN;
    let need = AUTO_MIN.min(cap).max(MIN_FILE);
    if size < need {
        return Err(format!(
            "not enough free space for an automatic backing file: {} free, auto uses a quarter of it and needs at least {} (so {} free); free some space or give --backing-size",
            ByteSize(free),
            ByteSize(need),
            ByteSize(need * AUTO_FRACTION_DIV)
        ));
    }
    Ok(size)
}

/// What to do with the file at the path: reuse it, or (re)allocate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilePlan {
    Reuse(u64),
    Allocate(u64),
}

/// Decides the file's size. `existing`: (size, bytes allocated) of a file
/// already there; `free`: free bytes of its filesystem (not counting it).
/// A file of the right size is reused; for `auto`, any existing file of a
/// size `auto` could have chosen (between the minimum and the cap) is.
pub fn plan_file(
    size: BackingSize,
    existing: Option<(u64, u64)>,
    free: u64,
    disksize: u64,
) -> Result<FilePlan, String> {
    let held = existing.map_or(0, |(_, alloc)| alloc);
    let want = match size {
        BackingSize::Bytes(b) => b,
        BackingSize::Auto => {
            if let Some((len, _)) = existing {
                let cap = disksize.div_ceil(SIZE_ALIGN) * SIZE_ALIGN;
                if len >= AUTO_MIN.min(cap).max(MIN_FILE) && len <= cap.min(AUTO_MAX) {
                    return Ok(FilePlan::Reuse(len));
                }
            }
            auto_size(free + held, disksize)?
        }
    };
    if existing.is_some_and(|(len, _)| len == want) {
        return Ok(FilePlan::Reuse(want));
    }
    if want > free + held {
        return Err(format!(
            "not enough free space for a {} backing file: {} free",
            ByteSize(want),
            ByteSize(free + held)
        ));
    }
    Ok(FilePlan::Allocate(want))
}

// ---------------------------------------------------------------------------
// Names.

/// The layers zramctl stacks with device-mapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Integrity,
    Crypt,
}

impl Layer {
    fn suffix(self) -> &'static str {
        match self {
            Layer::Integrity => "integrity",
            Layer::Crypt => "crypt",
        }
    }
}

/// `zramctl-zram0-crypt`: fixed per zram device and layer, so a crashed
/// setup's devices are found by the next run.
pub fn dm_name(zram: &str, layer: Layer) -> String {
    format!("zramctl-{zram}-{}", layer.suffix())
}

/// `ZRAMCTL-zram0-crypt`: the dm uuid, which says the device is ours.
pub fn dm_uuid(zram: &str, layer: Layer) -> String {
    format!("ZRAMCTL-{zram}-{}", layer.suffix())
}

/// Where records live (`ZRAMCTL_STATE_DIR` overrides; tmpfs, so nothing
/// survives a reboot, like the loop and dm devices themselves).
pub fn state_dir() -> PathBuf {
    std::env::var_os("ZRAMCTL_STATE_DIR")
        .map_or_else(|| PathBuf::from("/run/zramctl"), PathBuf::from)
}

/// What a setup left behind to be found again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub file: PathBuf,
    pub encrypt: bool,
}

impl Record {
    fn path(zram: &str) -> PathBuf {
        state_dir().join(format!("{zram}.backing"))
    }

    fn render(&self) -> String {
        format!(
            "# zramctl: backing file provisioned for this zram device\nfile={}\nencrypt={}\n",
            self.file.display(),
            u8::from(self.encrypt)
        )
    }

    fn parse(s: &str) -> Option<Record> {
        let mut file = None;
        let mut encrypt = false;
        for l in s.lines() {
            if let Some(f) = l.strip_prefix("file=") {
                file = Some(PathBuf::from(f));
            } else if let Some(e) = l.strip_prefix("encrypt=") {
                encrypt = e.trim() == "1";
            }
        }
        Some(Record {
            file: file?,
            encrypt,
        })
    }

    pub fn load(zram: &str) -> Option<Record> {
        Record::parse(&std::fs::read_to_string(Record::path(zram)).ok()?)
    }

    fn store(&self, zram: &str) -> Result<()> {
        let p = Record::path(zram);
        std::fs::create_dir_all(state_dir())
            .with_context(|| format!("creating {}", state_dir().display()))?;
        std::fs::write(&p, self.render()).with_context(|| format!("writing {}", p.display()))
    }
}

// ---------------------------------------------------------------------------
// What is there, and the teardown plan.

/// A device-mapper device as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmDev {
    pub name: String,
    /// `dm-3`.
    pub kname: String,
    pub uuid: String,
    /// Kernel names of the devices under it (`loop0`, `dm-2`).
    pub slaves: Vec<String>,
}

/// The provisioning state of one zram device, read from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub zram: String,
    pub zram_initialised: bool,
    pub zram_backing: Option<PathBuf>,
    pub record: Option<Record>,
    pub crypt: Option<DmDev>,
    pub integrity: Option<DmDev>,
    /// Loop devices of ours (`loop3`): attached to the recorded file or
    /// under our integrity device.
    pub loops: Vec<String>,
}

impl Observed {
    /// Whether any of our layers exists (or a record says one might).
    pub fn has_stack(&self) -> bool {
        self.record.is_some()
            || self.crypt.is_some()
            || self.integrity.is_some()
            || !self.loops.is_empty()
    }

    /// Whether zram's backing device is one of our layers.
    fn backing_is_ours(&self) -> bool {
        let Some(b) = &self.zram_backing else {
            return false;
        };
        let k = b.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut ours = self.loops.clone();
        ours.extend(self.crypt.iter().map(|d| d.kname.clone()));
        ours.extend(self.integrity.iter().map(|d| d.kname.clone()));
        let names = [Layer::Crypt, Layer::Integrity].map(|l| dm_name(&self.zram, l));
        k.is_some_and(|k| ours.contains(&k) || names.contains(&k))
    }
}

/// One teardown action, in the order they must run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `reset` the zram device (frees its memory and lets go of the backing device).
    ResetZram,
    /// `dmsetup remove` this name.
    RemoveDm(String),
    /// `losetup -d /dev/<kname>`.
    DetachLoop(String),
    DeleteFile(PathBuf),
    DropRecord,
}

/// The steps that take `o` down: the zram device first (when asked, or when
/// it still holds one of our layers, as a setup killed after `backing_dev`
/// leaves it), then dm-crypt, dm-integrity, the loop devices, the file (only
/// with `delete_file`) and the record.
pub fn plan_teardown(o: &Observed, reset_zram: bool, delete_file: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if reset_zram || o.backing_is_ours() {
        steps.push(Step::ResetZram);
    }
    if let Some(d) = &o.crypt {
        steps.push(Step::RemoveDm(d.name.clone()));
    }
    if let Some(d) = &o.integrity {
        steps.push(Step::RemoveDm(d.name.clone()));
    }
    for l in &o.loops {
        steps.push(Step::DetachLoop(l.clone()));
    }
    if let Some(r) = &o.record {
        if delete_file {
            steps.push(Step::DeleteFile(r.file.clone()));
        }
        steps.push(Step::DropRecord);
    }
    steps
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn list_dir(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The dm device called `name`, from `<sys>/block/dm-*/dm/name`.
pub fn find_dm(sys_root: &Path, name: &str) -> Option<DmDev> {
    let block = sys_root.join("block");
    list_dir(&block)
        .into_iter()
        .filter(|k| k.starts_with("dm-"))
        .find(|k| read_trim(&block.join(k).join("dm/name")).as_deref() == Some(name))
        .map(|k| DmDev {
            name: name.to_owned(),
            uuid: read_trim(&block.join(&k).join("dm/uuid")).unwrap_or_default(),
            slaves: list_dir(&block.join(&k).join("slaves")),
            kname: k,
        })
}

/// Loop devices whose backing file is `file`.
pub fn loops_on_file(sys_root: &Path, file: &Path) -> Vec<String> {
    let want = file.canonicalize().unwrap_or_else(|_| file.to_owned());
    let block = sys_root.join("block");
    let mut out: Vec<String> = list_dir(&block)
        .into_iter()
        .filter(|k| k.starts_with("loop"))
        .filter(|k| {
            read_trim(&block.join(k).join("loop/backing_file")).is_some_and(|b| {
                let b = b.strip_suffix(" (deleted)").unwrap_or(&b);
                Path::new(b) == want || Path::new(b) == file
            })
        })
        .collect();
    out.sort();
    out
}

/// Reads what exists of `dev`'s provisioned stack.
pub fn observe(sys: &Sysfs, dev: &Device) -> Result<Observed> {
    let root = sys.root();
    let zram = dev.name().to_owned();
    let record = Record::load(&zram);
    let mut crypt = find_dm(root, &dm_name(&zram, Layer::Crypt));
    let mut integrity = find_dm(root, &dm_name(&zram, Layer::Integrity));
    // A dm device of that name that is not ours is left alone.
    for d in [&mut crypt, &mut integrity] {
        if d.as_ref().is_some_and(|x| !x.uuid.starts_with("ZRAMCTL-")) {
            *d = None;
        }
    }
    let mut loops = Vec::new();
    if let Some(r) = &record {
        loops.extend(loops_on_file(root, &r.file));
    }
    for d in crypt.iter().chain(integrity.iter()) {
        loops.extend(d.slaves.iter().filter(|s| s.starts_with("loop")).cloned());
    }
    loops.sort();
    loops.dedup();
    Ok(Observed {
        zram_initialised: dev.initstate()?,
        zram_backing: match dev.backing_dev()? {
            BackingDev::Path(p) => Some(p),
            _ => None,
        },
        zram,
        record,
        crypt,
        integrity,
        loops,
    })
}

// ---------------------------------------------------------------------------
// Running tools.

/// Runs a tool; stdout on success, an error with its stderr otherwise.
/// `stdin` is piped (and never shown in errors: it may hold a key).
fn tool(prog: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<String> {
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "{prog} not found: install it (util-linux for losetup, dmsetup for device-mapper)"
            )
        } else {
            anyhow::anyhow!("cannot run {prog}: {e}")
        }
    })?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let r = pipe.write_all(input);
        drop(pipe);
        r.with_context(|| format!("writing to {prog}"))?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits for a device node that devtmpfs (or udev) creates.
fn wait_node(p: &Path) -> Result<()> {
    let t = Instant::now();
    while !p.exists() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("{} did not appear", p.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Test hook: `ZRAMCTL_CRASH_AFTER=<step>` kills the process with SIGKILL
/// right after that step (`file`, `loop`, `integrity`, `crypt`, `backing`),
/// the way a power cut or OOM kill would, so tests can check that the next
/// `setup`/`reset` cleans up.
pub fn crash_point(step: &str) {
    if std::env::var("ZRAMCTL_CRASH_AFTER").as_deref() == Ok(step) {
        // SAFETY: kill(2) on ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

/// Carries out a teardown plan; stops at the first failure (the record
/// stays, so the next run tries again).
pub fn run_teardown(dev: &Device, steps: &[Step], out: &mut dyn std::io::Write) -> Result<()> {
    for s in steps {
        match s {
            Step::ResetZram => {
                dev.reset()?;
            }
            Step::RemoveDm(name) => {
                tool("dmsetup", &["remove", "--retry", name], None)
                    .with_context(|| format!("{}: removing {name}", dev.name()))?;
                writeln!(out, "{}: removed {name}", dev.name())?;
            }
            Step::DetachLoop(k) => {
                tool("losetup", &["-d", &format!("/dev/{k}")], None)
                    .with_context(|| format!("{}: detaching /dev/{k}", dev.name()))?;
                writeln!(out, "{}: detached /dev/{k}", dev.name())?;
            }
            Step::DeleteFile(f) => match std::fs::remove_file(f) {
                Ok(()) => writeln!(out, "{}: deleted {}", dev.name(), f.display())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "{}: deleting {}",
                        dev.name(),
                        f.display()
                    )));
                }
            },
            Step::DropRecord => {
                let _ = std::fs::remove_file(Record::path(dev.name()));
            }
        }
    }
    Ok(())
}

/// Takes down whatever of `dev`'s stack exists. `reset_zram`: reset the
/// device even when it does not hold our stack (the `reset` command).
pub fn teardown(
    sys: &Sysfs,
    dev: &Device,
    reset_zram: bool,
    delete_file: bool,
    out: &mut dyn std::io::Write,
) -> Result<Observed> {
    let o = observe(sys, dev)?;
    let steps = plan_teardown(&o, reset_zram, delete_file);
    run_teardown(dev, &steps, out)?;
    Ok(o)
}

// ---------------------------------------------------------------------------
// Setting up.

/// What [`provision`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    /// The device to write to `backing_dev`.
    pub top: PathBuf,
    pub file: PathBuf,
    pub file_size: u64,
    pub reused: bool,
    pub loop_dev: PathBuf,
    /// The loop device really does direct I/O.
    pub direct_io: bool,
    /// Usable bytes of `top`.
    pub capacity: u64,
    pub encrypted: bool,
}

/// Free bytes (for root: reserved blocks count) on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statvfs writes into the zeroed struct we pass.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path, st a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statvfs {}", dir.display()));
    }
    Ok(st.f_bfree * st.f_frsize)
}

/// Creates or reuses the file; returns (size, reused).
fn prepare_file(spec: &BackingSpec, disksize: u64) -> Result<(u64, bool)> {
    use std::os::unix::fs::MetadataExt as _;
    let file = &spec.file;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "directory {} of the backing file does not exist",
            dir.display()
        );
    }
    let existing = match std::fs::metadata(file) {
        Ok(m) if m.is_file() => Some((m.len(), m.blocks() * 512)),
        Ok(_) => bail!(
            "{} exists and is not a regular file (for a block device use --backing-dev)",
            file.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("{}", file.display()))),
    };
    let free = free_bytes(&dir)?;
    let plan = plan_file(spec.size, existing, free, disksize)
        .map_err(|m| anyhow::anyhow!("{}: {m}", dir.display()))?;
    let (size, reused) = match plan {
        FilePlan::Reuse(s) => (s, true),
        FilePlan::Allocate(s) => (s, false),
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    if !reused {
        f.set_len(0)?;
    }
    // Allocates every block now (also the holes of a reused sparse file),
    // so writeback never meets ENOSPC or a fragmented file later.
    use std::os::fd::AsRawFd as _;
    // SAFETY: fallocate on an open fd we own.
    if unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, size as libc::off_t) } != 0 {
        let e = std::io::Error::last_os_error();
        let hint = match e.raw_os_error() {
            Some(libc::ENOSPC) => ": the filesystem is full",
            Some(libc::EOPNOTSUPP) => {
                ": this filesystem cannot preallocate (use ext4, xfs, btrfs or tmpfs)"
            }
            _ => "",
        };
        bail!(
            "preallocating {} bytes for {}: {e}{hint}",
            size,
            file.display()
        );
    }
    if spec.encrypt {
        // A fresh dm-integrity superblock on every setup: the old contents
        // are unreadable without the old key anyway.
        use std::os::unix::fs::FileExt as _;
        f.write_all_at(&[0u8; 64 << 10], 0)?;
    }
    f.sync_all()?;
    Ok((size, reused))
}

/// Attaches `file` to a free loop device with direct I/O.
fn attach_loop(sys_root: &Path, file: &Path) -> Result<(PathBuf, bool)> {
    let f = file.to_string_lossy();
    let out = tool("losetup", &["--find", "--show", "--direct-io=on", &f], None)?;
    let dev = PathBuf::from(out.trim());
    let k = dev
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    wait_node(&dev)?;
    let dio = read_trim(&sys_root.join("block").join(&k).join("loop/dio")).as_deref() == Some("1");
    Ok((dev, dio))
}

/// Sectors of a block device, from sysfs.
fn sectors(sys_root: &Path, kname: &str) -> Result<u64> {
    let p = sys_root.join("block").join(kname).join("size");
    read_trim(&p)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("reading {}", p.display()))
}

/// 28 bytes per 4K block: gcm(aes)'s 16-byte tag + its 12-byte random IV.
const TAG_SIZE: u32 = 28;

fn integrity_table(len: u64, lower: &Path) -> String {
    format!(
        "0 {len} integrity {} 0 {TAG_SIZE} D 2 block_size:4096 fix_padding",
        lower.display()
    )
}

/// Bytes that are wiped when dropped (the key and the table holding it).
struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid, aligned pointer to a byte we own; volatile so
            // the wipe is not optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

fn random_key() -> Result<Secret> {
    let mut key = Secret(vec![0u8; 32]);
    let mut got = 0;
    while got < key.0.len() {
        // SAFETY: writes at most len - got bytes into our buffer.
        let n = unsafe { libc::getrandom(key.0[got..].as_mut_ptr().cast(), key.0.len() - got, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("getrandom");
        }
        got += n as usize;
    }
    Ok(key)
}

fn dm_create(name: &str, uuid: &str, table: &[u8]) -> Result<()> {
    tool("dmsetup", &["create", name, "--uuid", uuid], Some(table)).map_err(|e| {
        e.context(format!(
            "creating {name} (a kernel without dm-integrity/dm-crypt or AES-GCM fails here: CONFIG_DM_INTEGRITY, CONFIG_DM_CRYPT, CONFIG_CRYPTO_AES, CONFIG_CRYPTO_GCM)"
        ))
    })?;
    Ok(())
}

fn dm_node(sys_root: &Path, name: &str) -> Result<(String, PathBuf)> {
    let d = find_dm(sys_root, name).with_context(|| format!("{name} is not in sysfs"))?;
    // No udev in minimal systems: /dev/dm-N from devtmpfs, not /dev/mapper.
    let p = PathBuf::from("/dev").join(&d.kname);
    wait_node(&p)?;
    Ok((d.kname, p))
}

/// Stacks dm-integrity and dm-crypt on `lower`; returns the crypt device
/// and its size in bytes.
fn stack_encryption(sys_root: &Path, zram: &str, lower: &Path) -> Result<(PathBuf, u64)> {
    let iname = dm_name(zram, Layer::Integrity);
    // One block first: dm-integrity formats the zeroed superblock and says
    // how many data sectors the device provides; then the full table.
    dm_create(
        &iname,
        &dm_uuid(zram, Layer::Integrity),
        integrity_table(8, lower).as_bytes(),
    )?;
    let status = tool("dmsetup", &["status", &iname], None)?;
    let provided: u64 = status
        .split_whitespace()
        .nth(4)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("unexpected dm-integrity status {status:?}"))?;
    tool(
        "dmsetup",
        &["reload", &iname],
        Some(integrity_table(provided, lower).as_bytes()),
    )?;
    tool("dmsetup", &["resume", &iname], None)?;
    let (ik, inode) = dm_node(sys_root, &iname)?;
    if sectors(sys_root, &ik)? != provided {
        bail!("{iname}: size did not change to {provided} sectors");
    }
    crash_point("integrity");

    let cname = dm_name(zram, Layer::Crypt);
    let key = random_key()?;
    let prefix = format!("0 {provided} crypt capi:gcm(aes)-random ");
    let suffix = format!(
        " 0 {} 0 2 integrity:{TAG_SIZE}:aead sector_size:4096\n",
        inode.display()
    );
    let mut table = Secret(Vec::with_capacity(prefix.len() + 64 + suffix.len()));
    table.0.extend_from_slice(prefix.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in &key.0 {
        table.0.push(HEX[usize::from(b >> 4)]);
        table.0.push(HEX[usize::from(b & 15)]);
    }
    table.0.extend_from_slice(suffix.as_bytes());
    drop(key);
    dm_create(&cname, &dm_uuid(zram, Layer::Crypt), &table.0)?;
    drop(table);
    let (ck, cnode) = dm_node(sys_root, &cname)?;
    let bytes = sectors(sys_root, &ck)? * 512;
    crash_point("crypt");
    Ok((cnode, bytes))
}

/// Refuses `--encrypt` early, before anything is made, on a kernel
/// without the dm targets it needs.
fn check_encryption_support() -> Result<()> {
    // Modules, if built as such.
    let _ = Command::new("modprobe")
        .args(["-q", "-a", "dm-integrity", "dm-crypt"])
        .stderr(Stdio::null())
        .status();
    let targets = tool("dmsetup", &["targets"], None)?;
    let have = |t: &str| {
        targets
            .lines()
            .any(|l| l.split_whitespace().next() == Some(t))
    };
    let missing: Vec<&str> = [
        ("integrity", "CONFIG_DM_INTEGRITY"),
        ("crypt", "CONFIG_DM_CRYPT"),
    ]
    .into_iter()
    .filter(|(t, _)| !have(t))
    .map(|(_, c)| c)
    .collect();
    if !missing.is_empty() {
        bail!(
            "--encrypt needs device-mapper's integrity and crypt targets, which this kernel lacks: build it with {} (and CONFIG_CRYPTO_AES, CONFIG_CRYPTO_GCM)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Provisions `spec` for `dev` (which must be unused): cleans up what an
/// earlier, interrupted setup left, creates or reuses the file, attaches
/// the loop device and stacks the encryption. On failure, what was made is
/// taken down again (the file stays).
pub fn provision(
    sys: &Sysfs,
    dev: &Device,
    spec: &BackingSpec,
    disksize: u64,
    out: &mut dyn std::io::Write,
) -> Result<Provisioned> {
    let root = sys.root().to_owned();
    tool("losetup", &["--version"], None)?;
    if spec.encrypt {
        check_encryption_support()?;
    }
    let stale = observe(sys, dev)?;
    if stale.has_stack() {
        writeln!(
            out,
            "{}: cleaning up an earlier setup that did not finish",
            dev.name()
        )?;
        run_teardown(dev, &plan_teardown(&stale, false, false), out)?;
    }
    if let Some(l) = loops_on_file(&root, &spec.file).first() {
        bail!(
            "{} is already attached to /dev/{l} (not by zramctl for {}): detach it first",
            spec.file.display(),
            dev.name()
        );
    }
    let (file_size, reused) = prepare_file(spec, disksize)?;
    Record {
        file: spec.file.clone(),
        encrypt: spec.encrypt,
    }
    .store(dev.name())?;
    crash_point("file");
    let result = (|| -> Result<Provisioned> {
        let (loop_dev, direct_io) = attach_loop(&root, &spec.file)?;
        crash_point("loop");
        let k = loop_dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (top, capacity) = if spec.encrypt {
            stack_encryption(&root, dev.name(), &loop_dev)?
        } else {
            (loop_dev.clone(), sectors(&root, &k)? * 512)
        };
        Ok(Provisioned {
            top,
            file: spec.file.clone(),
            file_size,
            reused,
            loop_dev,
            direct_io,
            capacity,
            encrypted: spec.encrypt,
        })
    })();
    match result {
        Ok(p) => Ok(p),
        Err(e) => {
            let mut sink = std::io::sink();
            if let Err(t) = teardown(sys, dev, false, false, &mut sink) {
                return Err(e.context(format!("and cleaning up failed too: {t:#}")));
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    #[test]
    fn auto_size_is_a_bounded_fraction_of_free_space() {
        // A quarter of free space, in whole MiB ...
        assert_eq!(auto_size(10 * G + 3, 64 * G), Ok(2560 * M));
        // ... capped at the zram disk size ...
        assert_eq!(auto_size(100 * G, 2 * G), Ok(2 * G));
        assert_eq!(auto_size(100 * G, 2 * G + 1), Ok(2 * G + M));
        // ... and at 8 GiB.
        assert_eq!(auto_size(1000 * G, 64 * G), Ok(8 * G));
        // Refused below 64 MiB: 256 MiB free is the least auto takes.
        assert_eq!(auto_size(256 * M, 4 * G), Ok(64 * M));
        let e = auto_size(256 * M - 1, 4 * G).unwrap_err();
        assert!(e.contains("not enough free space"), "{e}");
        assert!(e.contains("at least 64M (so 256M free)"), "{e}");
        // A disk smaller than 64 MiB needs only its own size.
        assert_eq!(auto_size(200 * M, 32 * M), Ok(32 * M));
        assert!(auto_size(100 * M, 32 * M).is_err());
    }

    #[test]
    fn file_plans() {
        // Explicit size: a file of that size is reused, another is reallocated.
        let b = BackingSize::Bytes(512 * M);
        assert_eq!(
            plan_file(b, None, 10 * G, G),
            Ok(FilePlan::Allocate(512 * M))
        );
        assert_eq!(
            plan_file(b, Some((512 * M, 512 * M)), 0, G),
            Ok(FilePlan::Reuse(512 * M))
        );
        assert_eq!(
            plan_file(b, Some((256 * M, 256 * M)), 300 * M, G),
            Ok(FilePlan::Allocate(512 * M))
        );
        let e = plan_file(b, Some((256 * M, 256 * M)), 200 * M, G).unwrap_err();
        assert!(
            e.contains("not enough free space for a 512M backing file: 456M free"),
            "{e}"
        );
        // auto reuses an existing file of a size auto could have picked.
        let a = BackingSize::Auto;
        assert_eq!(
            plan_file(a, Some((300 * M, 300 * M)), 0, G),
            Ok(FilePlan::Reuse(300 * M))
        );
        assert_eq!(
            plan_file(a, Some((2 * G, 2 * G)), 8 * G, G),
            Ok(FilePlan::Allocate(G))
        );
        assert_eq!(
            plan_file(a, None, 2 * G, 4 * G),
            Ok(FilePlan::Allocate(512 * M))
        );
        assert!(plan_file(a, None, 100 * M, 4 * G).is_err());
    }

    #[test]
    fn backing_size_parses() {
        assert_eq!("auto".parse(), Ok(BackingSize::Auto));
        assert_eq!("AUTO".parse(), Ok(BackingSize::Auto));
        assert_eq!("1G".parse(), Ok(BackingSize::Bytes(G)));
        assert!(
            "1K".parse::<BackingSize>()
                .unwrap_err()
                .contains("too small")
        );
        assert!(
            "lots"
                .parse::<BackingSize>()
                .unwrap_err()
                .contains("or auto")
        );
    }

    #[test]
    fn names_are_deterministic() {
        assert_eq!(dm_name("zram0", Layer::Crypt), "zramctl-zram0-crypt");
        assert_eq!(
            dm_name("rzram1", Layer::Integrity),
            "zramctl-rzram1-integrity"
        );
        assert_eq!(dm_uuid("zram0", Layer::Crypt), "ZRAMCTL-zram0-crypt");
        let r = Record {
            file: "/var/lib/zramctl/zram0.img".into(),
            encrypt: true,
        };
        assert_eq!(Record::parse(&r.render()), Some(r));
        assert_eq!(Record::parse("encrypt=1\n"), None);
    }

    #[test]
    fn integrity_table_and_key_stay_apart() {
        assert_eq!(
            integrity_table(8, Path::new("/dev/loop3")),
            "0 8 integrity /dev/loop3 0 28 D 2 block_size:4096 fix_padding"
        );
        let k = random_key().unwrap();
        assert_eq!(k.0.len(), 32);
        assert!(k.0.iter().any(|&b| b != 0));
    }

    fn dm(name: &str, kname: &str, slaves: &[&str]) -> DmDev {
        DmDev {
            name: name.into(),
            kname: kname.into(),
            uuid: format!("ZRAMCTL-{name}"),
            slaves: slaves.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn full_stack() -> Observed {
        Observed {
            zram: "zram0".into(),
            zram_initialised: true,
            zram_backing: Some("/dev/dm-5".into()),
            record: Some(Record {
                file: "/var/swap/zram0".into(),
                encrypt: true,
            }),
            crypt: Some(dm("zramctl-zram0-crypt", "dm-5", &["dm-4"])),
            integrity: Some(dm("zramctl-zram0-integrity", "dm-4", &["loop2"])),
            loops: vec!["loop2".into()],
        }
    }

    #[test]
    fn teardown_runs_top_down() {
        let o = full_stack();
        assert_eq!(
            plan_teardown(&o, true, false),
            [
                Step::ResetZram,
                Step::RemoveDm("zramctl-zram0-crypt".into()),
                Step::RemoveDm("zramctl-zram0-integrity".into()),
                Step::DetachLoop("loop2".into()),
                Step::DropRecord,
            ]
        );
        let with_delete = plan_teardown(&o, true, true);
        assert_eq!(
            with_delete[4..],
            [Step::DeleteFile("/var/swap/zram0".into()), Step::DropRecord]
        );
    }

    #[test]
    fn teardown_after_crashes_between_steps() {
        let full = full_stack();
        // Killed after backing_dev, before disksize: zram is not initialised
        // but holds the crypt device; setup's cleanup must reset it first.
        let o = Observed {
            zram_initialised: false,
            ..full.clone()
        };
        assert_eq!(plan_teardown(&o, false, false)[0], Step::ResetZram);
        // Killed after dm-integrity: no crypt, zram untouched.
        let o = Observed {
            zram_initialised: false,
            zram_backing: None,
            crypt: None,
            ..full.clone()
        };
        assert_eq!(
            plan_teardown(&o, false, false),
            [
                Step::RemoveDm("zramctl-zram0-integrity".into()),
                Step::DetachLoop("loop2".into()),
                Step::DropRecord,
            ]
        );
        // Killed after the loop device: only the record finds it.
        let o = Observed {
            zram_initialised: false,
            zram_backing: None,
            crypt: None,
            integrity: None,
            ..full.clone()
        };
        assert_eq!(
            plan_teardown(&o, false, false),
            [Step::DetachLoop("loop2".into()), Step::DropRecord]
        );
        // Killed after the file: the record alone.
        let o = Observed { loops: vec![], ..o };
        assert_eq!(plan_teardown(&o, false, false), [Step::DropRecord]);
        assert!(o.has_stack());
        // Nothing of ours: a plain reset, and a user's own backing device
        // (not ours) does not make setup reset the device.
        let o = Observed {
            zram: "zram0".into(),
            zram_backing: Some("/dev/vdb".into()),
            ..Observed::default()
        };
        assert!(!o.has_stack());
        assert_eq!(plan_teardown(&o, false, false), []);
        assert_eq!(plan_teardown(&o, true, true), [Step::ResetZram]);
    }
}

//! One typed layer over the zram sysfs ABI
//! (`Documentation/admin-guide/blockdev/zram.rst`).
//!
//! Everything zramctl reads from or writes to `/sys/block/zramN/` (and
//! `rzramN`, the Rust driver with the same ABI) goes through [`Device`]. The
//! sysfs root is a parameter and all file access goes through [`SysfsIo`], so
//! tests can point the whole tool at a fake tree or a simulated kernel.
//!
//! Every failure is an [`Error`] that names the device, the attribute and,
//! for writes, the errno together with what it means for zram.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;

/// Raw file access under the sysfs root. [`RealSysfs`] uses the filesystem;
/// tests substitute their own to simulate kernel behaviour and errnos.
pub trait SysfsIo: Send + Sync {
    /// Reads a whole attribute.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `value` to an attribute in a single `write(2)`, as sysfs needs.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Names of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
}

/// [`SysfsIo`] on the real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSysfs;

impl SysfsIo for RealSysfs {
    fn read(&self, path: &Path) -> io::Result<String> {
        use std::io::Read as _;
        // Big reads: some files (debugfs block_state) return nothing when
        // a line does not fit the buffer, as a small first read would.
        let mut f = std::fs::File::open(path)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        // One write(2): sysfs store handlers see the whole value at once.
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to sysfs",
            ));
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// Errors of the sysfs layer. Each names the device and attribute involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid device {0:?}: expected zramN, rzramN, /dev/zramN or /sys/block/zramN")]
    BadDeviceName(String),
    #[error("no such zram device: {name} ({path} does not exist{hint})")]
    NoDevice {
        name: String,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("cannot list block devices in {path}: {}", describe_io(.io))]
    List { path: PathBuf, io: io::Error },
    #[error("{device}: cannot read {attr}: {}", describe_io(.io))]
    Read {
        device: String,
        attr: &'static str,
        io: io::Error,
    },
    #[error("{device}: unexpected contents of {attr} ({content:?}): {reason}")]
    Parse {
        device: String,
        attr: &'static str,
        content: String,
        reason: String,
    },
    #[error("{device}: {attr} is not available: {hint}")]
    Unsupported {
        device: String,
        attr: &'static str,
        hint: &'static str,
    },
    #[error("{device}: writing {value:?} to {attr} failed: {meaning} ({})", errno_label(*.errno))]
    Write {
        device: String,
        attr: &'static str,
        value: String,
        errno: Option<i32>,
        meaning: String,
    },
    #[error("{device}: {message}")]
    Invalid { device: String, message: String },
}

impl Error {
    /// The errno of a failed write, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Write { errno, .. } => *errno,
            Error::Read { io, .. } => io.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => "permission denied: run as root".into(),
        Some(n) => format!("{} ({})", strerror(n), errno_label(Some(n))),
        None => e.to_string(),
    }
}

fn strerror(n: i32) -> String {
    let s = io::Error::from_raw_os_error(n).to_string();
    // "Device or resource busy (os error 16)" -> "Device or resource busy"
    s.split(" (os error").next().unwrap_or(&s).to_owned()
}

/// `EBUSY`, `EINVAL`, … for the errnos zram returns; `errno N` otherwise.
pub fn errno_label(n: Option<i32>) -> String {
    let Some(n) = n else {
        return "no errno".into();
    };
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {n}"),
    };
    name.into()
}

/// The sysfs tree zramctl works on, e.g. `/sys`.
#[derive(Clone)]
pub struct Sysfs {
    root: PathBuf,
    io: Arc<dyn SysfsIo>,
}

impl fmt::Debug for Sysfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sysfs").field("root", &self.root).finish()
    }
}

/// Device name prefixes zramctl manages: upstream C zram and rzram.
pub const DEVICE_PREFIXES: [&str; 2] = ["zram", "rzram"];

/// Splits `zram12` into (`zram`, 12); `None` for anything else.
fn split_name(name: &str) -> Option<(&'static str, u32)> {
    // Longest prefix first so "rzram0" is not read as "r" + "zram0".
    let (prefix, rest) = ["rzram", "zram"]
        .into_iter()
        .find_map(|p| name.strip_prefix(p).map(|rest| (p, rest)))?;
    if rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_digit())
        || (rest.len() > 1 && rest.starts_with('0'))
    {
        return None;
    }
    Some((prefix, rest.parse().ok()?))
}

/// Normalises what a user typed (`zram0`, `/dev/zram0`, `/sys/block/zram0/`,
/// `rzram1`) to the bare device name.
pub fn normalize_device_name(spec: &str) -> Result<String> {
    let trimmed = spec.trim().trim_end_matches('/');
    let name = trimmed
        .strip_prefix("/dev/")
        .or_else(|| trimmed.strip_prefix("/sys/block/"))
        .or_else(|| trimmed.strip_prefix("/sys/class/block/"))
        .unwrap_or(trimmed);
    match split_name(name) {
        Some(_) => Ok(name.to_owned()),
        None => Err(Error::BadDeviceName(spec.to_owned())),
    }
}

impl Sysfs {
    /// The real `/sys`.
    pub fn system() -> Self {
        Self::new("/sys", RealSysfs)
    }

    /// A tree rooted at `root` (the directory that holds `block/`).
    pub fn new(root: impl Into<PathBuf>, io: impl SysfsIo + 'static) -> Self {
        Self {
            root: root.into(),
            io: Arc::new(io),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All zram and rzram devices, ordered zram0, zram1, …, rzram0, ….
    pub fn devices(&self) -> Result<Vec<Device>> {
        let dir = self.root.join("block");
        let names = self.io.list(&dir).map_err(|io| Error::List {
            path: dir.clone(),
            io,
        })?;
        let mut found: Vec<(&'static str, u32, String)> = names
            .into_iter()
            .filter_map(|n| split_name(&n).map(|(p, i)| (p, i, n)))
            .collect();
        found.sort_by_key(|(p, i, _)| (*p == "rzram", *i));
        Ok(found
            .into_iter()
            .map(|(_, _, n)| self.device_unchecked(n))
            .collect())
    }

    /// The device a user named; it must exist.
    pub fn device(&self, spec: &str) -> Result<Device> {
        let name = normalize_device_name(spec)?;
        let dev = self.device_unchecked(name);
        if !self.io.exists(&dev.dir) {
            let hint = if dev.name.starts_with("rzram") {
                ": is the rzram module loaded?"
            } else {
                ": is the zram module loaded? (modprobe zram)"
            };
            return Err(Error::NoDevice {
                name: dev.name,
                path: dev.dir,
                hint,
            });
        }
        Ok(dev)
    }

    fn device_unchecked(&self, name: String) -> Device {
        Device {
            dir: self.root.join("block").join(&name),
            name,
            io: self.io.clone(),
        }
    }
}

/// One zram or rzram device, `/sys/block/<name>/`.
#[derive(Clone)]
pub struct Device {
    name: String,
    dir: PathBuf,
    io: Arc<dyn SysfsIo>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device").field("name", &self.name).finish()
    }
}

/// `mm_stat`: memory statistics, in bytes except the page counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MmStat {
    /// Uncompressed size of the data stored.
    pub orig_data_size: u64,
    /// Compressed size of the data stored.
    pub compr_data_size: u64,
    /// Memory allocated for it, including allocator fragmentation.
    pub mem_used_total: u64,
    /// Memory limit, 0 for none.
    pub mem_limit: u64,
    /// Peak of `mem_used_total`.
    pub mem_used_max: u64,
    /// Pages that are one repeated word and take no memory.
    pub same_pages: u64,
    /// Pages freed by compaction.
    pub pages_compacted: u64,
    /// Incompressible pages stored whole (absent before Linux 4.19).
    pub huge_pages: Option<u64>,
    /// Huge pages ever stored since init (absent before Linux 5.15).
    pub huge_pages_since: Option<u64>,
}

/// `io_stat`: failed and invalid I/O counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IoStat {
    pub failed_reads: u64,
    pub failed_writes: u64,
    /// Always 0 on kernels since 6.x (kept for ABI).
    pub invalid_io: u64,
    pub notify_free: u64,
}

/// `bd_stat`: backing-device use, in pages (CONFIG_ZRAM_WRITEBACK only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BdStat {
    /// Pages currently stored on the backing device.
    pub bd_count: u64,
    /// Pages read back from it since init.
    pub bd_reads: u64,
    /// Pages written to it since init.
    pub bd_writes: u64,
}

/// `debug_stat`: explicitly unstable; kept as its version and raw numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DebugStat {
    pub version: u32,
    pub values: Vec<u64>,
}

/// `comp_algorithm`: the available algorithms, with the current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompAlgorithms {
    pub current: String,
    pub available: Vec<String>,
}

/// `backing_dev`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "path", rename_all = "snake_case")]
pub enum BackingDev {
    /// The kernel was built without CONFIG_ZRAM_WRITEBACK.
    Unsupported,
    /// Writeback is supported but no backing device is set.
    None,
    Path(PathBuf),
}

/// `writeback_limit_enable` + `writeback_limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WritebackLimit {
    Unsupported,
    Off,
    /// Pages that may still be written back.
    On {
        pages_left: u64,
    },
}

/// What `idle` marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleMode {
    /// Every allocated slot.
    All,
    /// Slots not accessed for at least this many seconds
    /// (needs CONFIG_ZRAM_TRACK_ENTRY_ACTIME).
    Age(u64),
}

impl IdleMode {
    pub fn sysfs_value(self) -> String {
        match self {
            IdleMode::All => "all".into(),
            IdleMode::Age(s) => s.to_string(),
        }
    }
}

/// One writeback request. The kernel takes one mode per write, or any
/// number of `page_index`/`page_indexes` in one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritebackMode {
    Idle,
    Huge,
    HugeIdle,
    Incompressible,
    /// Pages `first..=last`.
    Pages {
        first: u64,
        last: u64,
    },
}

impl WritebackMode {
    /// The token the kernel expects for this mode.
    pub fn sysfs_token(self) -> String {
        match self {
            WritebackMode::Idle => "idle".into(),
            WritebackMode::Huge => "huge".into(),
            WritebackMode::HugeIdle => "huge_idle".into(),
            WritebackMode::Incompressible => "incompressible".into(),
            WritebackMode::Pages { first, last } if first == last => format!("page_index={first}"),
            // Inclusive on both ends, like the kernel's parse_page_indexes().
            WritebackMode::Pages { first, last } => format!("page_indexes={first}-{last}"),
        }
    }
}

/// One configured recompression (secondary) algorithm: `recomp_algorithm`
/// prints `#PRIO: algo [algo] ...` per configured priority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecompAlgorithm {
    /// 1..=3 (0 is the primary `comp_algorithm`).
    pub priority: u32,
    pub algorithms: CompAlgorithms,
}

impl RecompAlgorithm {
    /// Parses the whole `recomp_algorithm` file (empty: none configured).
    ///
    /// Linux 7.3's `recomp_algorithm_show()` adds the length of each
    /// `#N: ` prefix twice (`zcomp_available_show()` returns the new offset,
    /// not what it added), so the file ends in that many NUL bytes per
    /// priority: they are skipped.
    pub fn parse_all(s: &str) -> std::result::Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for line in s
            .lines()
            .map(|l| l.trim_matches(|c: char| c == '\0' || c.is_whitespace()))
            .filter(|l| !l.is_empty())
        {
            let (prio, rest) = line
                .strip_prefix('#')
                .and_then(|l| l.split_once(':'))
                .ok_or_else(|| format!("expected \"#PRIO: algorithms\", found {line:?}"))?;
            let priority = prio
                .trim()
                .parse()
                .map_err(|_| format!("{prio:?} is not a priority"))?;
            out.push(RecompAlgorithm {
                priority,
                algorithms: CompAlgorithms::parse(rest)?,
            });
        }
        Ok(out)
    }
}

/// Which pages `recompress` picks (`type=`); `None` in [`Recompress`] is
/// every stored page (filtered by the threshold).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecompressType {
    Idle,
    Huge,
    HugeIdle,
}

/// One write to `recompress`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recompress {
    pub kind: Option<RecompressType>,
    /// Only pages whose compressed size is at least this many bytes.
    pub threshold: Option<u64>,
    /// The secondary algorithm by name (`algo=`).
    pub algo: Option<String>,
    /// The secondary algorithm by priority (`priority=`, preferred).
    pub priority: Option<u32>,
    /// At most this many pages (`max_pages=`).
    pub max_pages: Option<u64>,
}

impl Recompress {
    /// The line the kernel expects, e.g. `type=idle threshold=2000 priority=1`.
    pub fn sysfs_value(&self) -> String {
        let mut v = Vec::new();
        if let Some(k) = self.kind {
            v.push(
                match k {
                    RecompressType::Idle => "type=idle",
                    RecompressType::Huge => "type=huge",
                    RecompressType::HugeIdle => "type=huge_idle",
                }
                .to_string(),
            );
        }
        if let Some(t) = self.threshold {
            v.push(format!("threshold={t}"));
        }
        if let Some(m) = self.max_pages {
            v.push(format!("max_pages={m}"));
        }
        if let Some(a) = &self.algo {
            v.push(format!("algo={a}"));
        }
        if let Some(p) = self.priority {
            v.push(format!("priority={p}"));
        }
        v.join(" ")
    }
}

fn parse_u64_fields(s: &str) -> std::result::Result<Vec<u64>, String> {
    s.split_whitespace()
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| format!("{t:?} is not a number"))
        })
        .collect()
}

fn need(fields: &[u64], n: usize) -> std::result::Result<(), String> {
    if fields.len() < n {
        Err(format!(
            "expected at least {n} numbers, found {}",
            fields.len()
        ))
    } else {
        Ok(())
    }
}

impl MmStat {
    /// Parses `mm_stat`; the two huge-page fields are optional (older kernels).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let f = parse_u64_fields(s)?;
        need(&f, 7)?;
        Ok(MmStat {
            orig_data_size: f[0],
            compr_data_size: f[1],
            mem_used_total: f[2],
            mem_limit: f[3],
            mem_used_max: f[4],
            same_pages: f[5],
            pages_compacted: f[6],
            huge_pages: f.get(7).copied(),
            huge_pages_since: f.get(8).copied(),
        })
    }

    /// orig / compr, or `None` when nothing is stored.
    pub fn ratio(&self) -> Option<f64> {
        (self.compr_data_size > 0).then(|| self.orig_data_size as f64 / self.compr_data_size as f64)
    }
}

impl IoStat {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let f = parse_u64_fields(s)?;
        need(&f, 3)?;
        Ok(IoStat {
            failed_reads: f[0],
            failed_writes: f[1],
            invalid_io: f[2],
            notify_free: f.get(3).copied().unwrap_or(0),
        })
    }
}

impl BdStat {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let f = parse_u64_fields(s)?;
        need(&f, 3)?;
        Ok(BdStat {
            bd_count: f[0],
            bd_reads: f[1],
            bd_writes: f[2],
        })
    }
}

impl DebugStat {
    /// `version: N` on the first line, then numbers.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut lines = s.lines();
        let first = lines.next().unwrap_or("");
        let version = first
            .trim()
            .strip_prefix("version:")
            .ok_or_else(|| "missing \"version:\" line".to_string())?
            .trim()
            .parse()
            .map_err(|_| "bad version number".to_string())?;
        let rest: Vec<&str> = lines.collect();
        Ok(DebugStat {
            version,
            values: parse_u64_fields(&rest.join(" "))?,
        })
    }
}

impl CompAlgorithms {
    /// `lzo [lz4] zstd`: the bracketed one is current.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut current = None;
        let mut available = Vec::new();
        for tok in s.split_whitespace() {
            if let Some(name) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                if current.replace(name.to_owned()).is_some() {
                    return Err("more than one algorithm is marked current".into());
                }
                available.push(name.to_owned());
            } else {
                available.push(tok.to_owned());
            }
        }
        match current {
            Some(current) => Ok(CompAlgorithms { current, available }),
            None => Err("no algorithm is marked current with [brackets]".into()),
        }
    }
}

fn parse_bool01(s: &str) -> std::result::Result<bool, String> {
    match s.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(format!("expected 0 or 1, found {other:?}")),
    }
}

fn parse_one_u64(s: &str) -> std::result::Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected one number".to_string())
}

/// What an errno from a write means for this attribute, in words a user can act on.
fn explain_write_errno(attr: &str, errno: Option<i32>) -> String {
    match (attr, errno) {
        (_, Some(libc::EACCES | libc::EPERM)) => "permission denied: run as root".into(),
        ("reset", Some(libc::EBUSY)) => {
            "device is in use (swap or mounted): swapoff or umount it first".into()
        }
        ("writeback" | "idle" | "compact" | "recompress", Some(libc::EBUSY)) => {
            "device is busy with another writeback or not initialised".into()
        }
        (_, Some(libc::EBUSY)) => "device already initialised: reset it first".into(),
        ("writeback", Some(libc::ENODEV)) => {
            "no backing device is set: set one with `zramctl setup --backing-dev` before disksize"
                .into()
        }
        ("writeback", Some(libc::ENOSPC)) => "backing device is full".into(),
        ("writeback", Some(libc::EIO)) => "I/O error on the backing device".into(),
        ("writeback" | "idle", Some(libc::EINVAL)) => {
            "invalid request, or the device is not initialised (set disksize first)".into()
        }
        ("writeback", Some(libc::ERANGE)) => "page index out of range for the disk size".into(),
        ("disksize" | "mem_limit", Some(libc::EINVAL)) => "invalid size".into(),
        ("disksize", Some(libc::ENOMEM)) => "not enough memory for a device of this size".into(),
        ("comp_algorithm", Some(libc::EINVAL)) => "algorithm not supported by this kernel".into(),
        ("backing_dev", Some(libc::ENOTBLK)) => "not a block device".into(),
        ("backing_dev", Some(libc::ENOENT)) => "no such file".into(),
        ("writeback_batch_size", Some(libc::EINVAL)) => "batch size must be at least 1".into(),
        ("recompress", Some(libc::EINVAL)) => {
            "invalid request: no recompression algorithm at that priority or name (set one with `zramctl setup --recomp-algorithm` before disksize), a threshold at or above the huge class size, or the device is not initialised".into()
        }
        ("recompress", Some(libc::EAGAIN)) => {
            "writeback or another recompression is running: retry later".into()
        }
        ("recomp_algorithm", Some(libc::EINVAL)) => {
            "algorithm not supported by this kernel, or priority not 1-3".into()
        }
        (_, Some(libc::EINVAL)) => "invalid value".into(),
        (_, Some(n)) => strerror(n),
        (_, None) => "write failed".into(),
    }
}

/// Attributes that only exist with CONFIG_ZRAM_WRITEBACK.
const WRITEBACK_ATTRS: [&str; 6] = [
    "backing_dev",
    "writeback",
    "writeback_limit",
    "writeback_limit_enable",
    "bd_stat",
    "writeback_batch_size",
];

fn missing_attr_hint(attr: &str) -> &'static str {
    match attr {
        "writeback_batch_size" => {
            "this kernel's zram has no batched writeback (added in Linux 6.19)"
        }
        a if WRITEBACK_ATTRS.contains(&a) => {
            "this kernel's zram was built without CONFIG_ZRAM_WRITEBACK"
        }
        "recomp_algorithm" | "recompress" => {
            "this kernel's zram was built without CONFIG_ZRAM_MULTI_COMP"
        }
        _ => "this kernel's zram does not have this attribute",
    }
}

impl Device {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/sys/block/<name>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the attribute exists (feature detection).
    pub fn has(&self, attr: &str) -> bool {
        self.io.exists(&self.dir.join(attr))
    }

    /// The error for an attribute this kernel does not have.
    fn unsupported(&self, attr: &'static str) -> Error {
        // Without CONFIG_ZRAM_WRITEBACK every writeback attribute is missing;
        // say that rather than the more specific reason of the newest ones.
        let hint = if WRITEBACK_ATTRS.contains(&attr) && !self.has("writeback") {
            missing_attr_hint("writeback")
        } else if matches!(attr, "recomp_algorithm" | "recompress")
            && self.name.starts_with("rzram")
        {
            "this rzram module has no recompression (recomp_algorithm/recompress attributes)"
        } else {
            missing_attr_hint(attr)
        };
        Error::Unsupported {
            device: self.name.clone(),
            attr,
            hint,
        }
    }

    fn read_raw(&self, attr: &'static str) -> Result<String> {
        self.io.read(&self.dir.join(attr)).map_err(|io| {
            if io.kind() == io::ErrorKind::NotFound && !self.has(attr) {
                self.unsupported(attr)
            } else {
                Error::Read {
                    device: self.name.clone(),
                    attr,
                    io,
                }
            }
        })
    }

    fn read_parsed<T>(
        &self,
        attr: &'static str,
        parse: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let content = self.read_raw(attr)?;
        parse(&content).map_err(|reason| Error::Parse {
            device: self.name.clone(),
            attr,
            content,
            reason,
        })
    }

    /// Like [`Self::read_parsed`], but `None` when the kernel lacks the attribute.
    fn read_optional<T>(
        &self,
        attr: &'static str,
        parse: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match self.read_parsed(attr, parse) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Unsupported { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one attribute, turning the errno into an [`Error`] with meaning.
    pub fn write_attr(&self, attr: &'static str, value: &str) -> Result<()> {
        self.io.write(&self.dir.join(attr), value).map_err(|e| {
            // ENOENT is also what the kernel returns for e.g. a backing_dev
            // path that does not exist: only a missing file means no support.
            if e.kind() == io::ErrorKind::NotFound && !self.has(attr) {
                return self.unsupported(attr);
            }
            let errno = e.raw_os_error();
            Error::Write {
                device: self.name.clone(),
                attr,
                value: value.to_owned(),
                errno,
                meaning: explain_write_errno(attr, errno),
            }
        })
    }

    /// Device numbers from `dev` (`253:0`).
    pub fn dev_numbers(&self) -> Result<(u32, u32)> {
        self.read_parsed("dev", |s| {
            let (a, b) = s.trim().split_once(':').ok_or("expected MAJOR:MINOR")?;
            Ok((
                a.parse().map_err(|_| "bad major number")?,
                b.parse().map_err(|_| "bad minor number")?,
            ))
        })
    }

    pub fn disksize(&self) -> Result<u64> {
        self.read_parsed("disksize", parse_one_u64)
    }

    pub fn initstate(&self) -> Result<bool> {
        self.read_parsed("initstate", parse_bool01)
    }

    pub fn comp_algorithm(&self) -> Result<CompAlgorithms> {
        self.read_parsed("comp_algorithm", CompAlgorithms::parse)
    }

    pub fn mm_stat(&self) -> Result<MmStat> {
        self.read_parsed("mm_stat", MmStat::parse)
    }

    pub fn io_stat(&self) -> Result<IoStat> {
        self.read_parsed("io_stat", IoStat::parse)
    }

    /// `None` without CONFIG_ZRAM_WRITEBACK.
    pub fn bd_stat(&self) -> Result<Option<BdStat>> {
        self.read_optional("bd_stat", BdStat::parse)
    }

    pub fn debug_stat(&self) -> Result<DebugStat> {
        self.read_parsed("debug_stat", DebugStat::parse)
    }

    pub fn backing_dev(&self) -> Result<BackingDev> {
        Ok(
            match self.read_optional("backing_dev", |s| Ok(s.trim().to_owned()))? {
                None => BackingDev::Unsupported,
                Some(p) if p == "none" || p.is_empty() => BackingDev::None,
                Some(p) => BackingDev::Path(p.into()),
            },
        )
    }

    pub fn writeback_limit(&self) -> Result<WritebackLimit> {
        let Some(enabled) = self.read_optional("writeback_limit_enable", parse_bool01)? else {
            return Ok(WritebackLimit::Unsupported);
        };
        if !enabled {
            return Ok(WritebackLimit::Off);
        }
        let pages_left = self.read_parsed("writeback_limit", parse_one_u64)?;
        Ok(WritebackLimit::On { pages_left })
    }

    /// `None` on kernels without batched writeback.
    pub fn writeback_batch_size(&self) -> Result<Option<u64>> {
        self.read_optional("writeback_batch_size", parse_one_u64)
    }

    /// Whether the device can recompress (upstream CONFIG_ZRAM_MULTI_COMP,
    /// or an rzram with the attributes): detected by attribute presence.
    pub fn has_recompression(&self) -> bool {
        self.has("recompress") && self.has("recomp_algorithm")
    }

    /// The configured secondary algorithms; `None` without recompression support.
    pub fn recomp_algorithms(&self) -> Result<Option<Vec<RecompAlgorithm>>> {
        self.read_optional("recomp_algorithm", RecompAlgorithm::parse_all)
    }

    /// Sets the secondary algorithm of `priority` (1-3); only before disksize.
    pub fn set_recomp_algorithm(&self, algo: &str, priority: u32) -> Result<()> {
        self.write_attr(
            "recomp_algorithm",
            &format!("algo={algo} priority={priority}"),
        )
    }

    /// Recompresses pages with a secondary algorithm, synchronously.
    pub fn recompress(&self, req: &Recompress) -> Result<()> {
        if !self.has("recompress") {
            return Err(self.unsupported("recompress"));
        }
        self.write_attr("recompress", &req.sysfs_value())
    }

    /// Slots recompressed with a secondary algorithm, from debugfs
    /// `zram/<name>/block_state` (CONFIG_ZRAM_MEMORY_TRACKING, upstream
    /// only); `None` when that file cannot be read.
    pub fn recompressed_slots(&self) -> Option<u64> {
        let root = self.dir.parent()?.parent()?;
        let path = root
            .join("kernel/debug/zram")
            .join(&self.name)
            .join("block_state");
        let text = self.io.read(&path).ok()?;
        Some(
            text.lines()
                .filter(|l| l.split_whitespace().nth(2).is_some_and(|f| f.contains('r')))
                .count() as u64,
        )
    }

    pub fn set_disksize(&self, bytes: u64) -> Result<()> {
        self.write_attr("disksize", &bytes.to_string())
    }

    pub fn set_comp_algorithm(&self, algo: &str) -> Result<()> {
        self.write_attr("comp_algorithm", algo)
    }

    pub fn set_backing_dev(&self, path: &Path) -> Result<()> {
        self.write_attr("backing_dev", &path.to_string_lossy())
    }

    pub fn set_mem_limit(&self, bytes: u64) -> Result<()> {
        self.write_attr("mem_limit", &bytes.to_string())
    }

    pub fn reset(&self) -> Result<()> {
        self.write_attr("reset", "1")
    }

    pub fn mark_idle(&self, mode: IdleMode) -> Result<()> {
        self.write_attr("idle", &mode.sysfs_value())
    }

    pub fn set_writeback_limit(&self, pages: u64) -> Result<()> {
        self.write_attr("writeback_limit", &pages.to_string())
    }

    pub fn set_writeback_limit_enable(&self, on: bool) -> Result<()> {
        self.write_attr("writeback_limit_enable", if on { "1" } else { "0" })
    }

    pub fn set_writeback_batch_size(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Err(Error::Invalid {
                device: self.name.clone(),
                message: "writeback_batch_size must be at least 1".into(),
            });
        }
        self.write_attr("writeback_batch_size", &n.to_string())
    }

    /// Writes back the given modes and waits for it: one write per mode
    /// (the kernel stops parsing after a mode), and all page ranges together
    /// in one write.
    ///
    /// An `EIO` while a writeback limit is enabled and spent is reported as
    /// "writeback limit exhausted", which is what the kernel means by it.
    pub fn writeback(&self, modes: &[WritebackMode]) -> Result<()> {
        if !self.has("writeback") {
            return Err(self.unsupported("writeback"));
        }
        if modes.is_empty() {
            return Err(Error::Invalid {
                device: self.name.clone(),
                message: "no writeback mode given".into(),
            });
        }
        let (ranges, kinds): (Vec<&WritebackMode>, Vec<&WritebackMode>) = modes
            .iter()
            .partition(|m| matches!(m, WritebackMode::Pages { .. }));
        let mut writes: Vec<String> = kinds.iter().map(|m| m.sysfs_token()).collect();
        if !ranges.is_empty() {
            writes.push(
                ranges
                    .iter()
                    .map(|m| m.sysfs_token())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        for value in writes {
            self.write_writeback(&value)?;
        }
        Ok(())
    }

    fn write_writeback(&self, value: &str) -> Result<()> {
        match self.write_attr("writeback", value) {
            Err(Error::Write {
                device,
                attr,
                value,
                errno: Some(libc::EIO),
                meaning,
            }) => {
                let meaning = match self.writeback_limit() {
                    Ok(WritebackLimit::On { pages_left: 0 }) => {
                        "writeback limit exhausted: raise it with `zramctl limit` or turn it off with `--off`".into()
                    }
                    _ => meaning,
                };
                Err(Error::Write {
                    device,
                    attr,
                    value,
                    errno: Some(libc::EIO),
                    meaning,
                })
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Formats exactly as zram_drv.c prints them (Linux 7.3 and older).
    #[test]
    fn mm_stat_current_and_old_kernels() {
        let s =
            "  1048576    16384    65536        0    65536        3        0        1        2\n";
        let m = MmStat::parse(s).unwrap();
        assert_eq!(m.orig_data_size, 1 << 20);
        assert_eq!(m.compr_data_size, 16384);
        assert_eq!(m.same_pages, 3);
        assert_eq!(m.huge_pages, Some(1));
        assert_eq!(m.huge_pages_since, Some(2));
        assert_eq!(m.ratio(), Some(64.0));
        // 4.x kernels: 7 fields, no huge page counts; tabs and odd spacing.
        let old = MmStat::parse("4096\t2048 8192 0  8192 0 0").unwrap();
        assert_eq!(old.huge_pages, None);
        assert_eq!(old.huge_pages_since, None);
        assert!(MmStat::parse("1 2 3").unwrap_err().contains("at least 7"));
        assert!(
            MmStat::parse("1 2 3 x 5 6 7")
                .unwrap_err()
                .contains("\"x\"")
        );
        assert_eq!(MmStat::default().ratio(), None);
    }

    #[test]
    fn io_and_bd_stat() {
        // 6.x+ prints a literal 0 for invalid_io.
        let io = IoStat::parse("       1        2 0        7\n").unwrap();
        assert_eq!(
            (
                io.failed_reads,
                io.failed_writes,
                io.invalid_io,
                io.notify_free
            ),
            (1, 2, 0, 7)
        );
        let old = IoStat::parse("1 2 3").unwrap();
        assert_eq!(old.notify_free, 0);
        let bd = BdStat::parse("      12        3       40\n").unwrap();
        assert_eq!(
            bd,
            BdStat {
                bd_count: 12,
                bd_reads: 3,
                bd_writes: 40
            }
        );
        assert!(BdStat::parse("").is_err());
    }

    #[test]
    fn debug_stat_versions() {
        let d = DebugStat::parse("version: 1\n0        5\n").unwrap();
        assert_eq!(
            d,
            DebugStat {
                version: 1,
                values: vec![0, 5]
            }
        );
        assert!(DebugStat::parse("0 5\n").is_err());
    }

    #[test]
    fn comp_algorithm_brackets() {
        let c = CompAlgorithms::parse("lzo lzo-rle [lz4] lz4hc 842 zstd \n").unwrap();
        assert_eq!(c.current, "lz4");
        assert_eq!(
            c.available,
            ["lzo", "lzo-rle", "lz4", "lz4hc", "842", "zstd"]
        );
        assert!(CompAlgorithms::parse("lzo lz4").is_err());
        assert!(CompAlgorithms::parse("[lzo] [lz4]").is_err());
    }

    #[test]
    fn device_names() {
        for (spec, name) in [
            ("zram0", "zram0"),
            ("/dev/zram1", "zram1"),
            ("/sys/block/zram12/", "zram12"),
            ("rzram3", "rzram3"),
            ("/dev/rzram0", "rzram0"),
        ] {
            assert_eq!(normalize_device_name(spec).unwrap(), name);
        }
        for bad in [
            "",
            "zram",
            "sda",
            "zram-1",
            "zram01",
            "/dev/loop0",
            "zram0/../sda",
            "xzram0",
        ] {
            let e = normalize_device_name(bad).unwrap_err();
            assert!(e.to_string().contains("expected zramN"), "{bad}: {e}");
        }
    }

    #[test]
    fn writeback_tokens() {
        assert_eq!(WritebackMode::HugeIdle.sysfs_token(), "huge_idle");
        assert_eq!(
            WritebackMode::Pages { first: 5, last: 5 }.sysfs_token(),
            "page_index=5"
        );
        assert_eq!(
            WritebackMode::Pages {
                first: 1,
                last: 100
            }
            .sysfs_token(),
            "page_indexes=1-100"
        );
    }

    #[test]
    fn recompression_formats() {
        let r = RecompAlgorithm::parse_all("#1: lzo lzo-rle lz4 [zstd] \n#2: lzo [lz4] zstd\n")
            .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].priority, r[0].algorithms.current.as_str()),
            (1, "zstd")
        );
        assert_eq!(
            (r[1].priority, r[1].algorithms.current.as_str()),
            (2, "lz4")
        );
        assert!(RecompAlgorithm::parse_all("").unwrap().is_empty());
        // Exactly what 7.3's upstream zram prints (NULs from its double count).
        let r = RecompAlgorithm::parse_all("#1: lz4 [zstd] \n\0\0\0\0").unwrap();
        assert_eq!((r.len(), r[0].algorithms.current.as_str()), (1, "zstd"));
        assert!(RecompAlgorithm::parse_all("zstd\n").is_err());
        let req = Recompress {
            kind: Some(RecompressType::Idle),
            threshold: Some(2000),
            priority: Some(1),
            ..Recompress::default()
        };
        assert_eq!(req.sysfs_value(), "type=idle threshold=2000 priority=1");
        let req = Recompress {
            kind: Some(RecompressType::HugeIdle),
            algo: Some("zstd".into()),
            max_pages: Some(42),
            ..Recompress::default()
        };
        assert_eq!(req.sysfs_value(), "type=huge_idle max_pages=42 algo=zstd");
    }

    #[test]
    fn errno_meanings() {
        assert_eq!(
            explain_write_errno("disksize", Some(libc::EBUSY)),
            "device already initialised: reset it first"
        );
        assert!(explain_write_errno("reset", Some(libc::EBUSY)).contains("in use"));
        assert_eq!(
            explain_write_errno("disksize", Some(libc::EACCES)),
            "permission denied: run as root"
        );
        assert_eq!(errno_label(Some(libc::EINVAL)), "EINVAL");
        assert_eq!(errno_label(Some(4095)), "errno 4095");
    }
}

//! Operations util-linux's `zramctl(8)` does on zram devices, as it does
//! them, for [`crate::ulcompat`]: devices looked up by `/dev` path or kernel
//! name through `/sys/dev/block/MAJ:MIN`; the first free device, created
//! through `/sys/class/zram-control/hot_add` when every one is in use;
//! hot-removing a reset device; attributes read and written whole, failures
//! as the errno util-linux reports; where a device is mounted or swapped on.
//! Nothing here parses arguments or prints.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _},
    path::{Path, PathBuf},
};

/// Where the tool looks: sysfs, device nodes, procfs.
#[derive(Debug, Clone)]
pub struct Env {
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub proc: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        let sys = std::env::var_os("ZRAMCTL_SYSFS_ROOT")
            .filter(|s| !s.is_empty())
            .map_or_else(|| PathBuf::from("/sys"), PathBuf::from);
        Self {
            sys,
            dev: "/dev".into(),
            proc: "/proc".into(),
        }
    }
}

/// A device as util-linux names it.
#[derive(Debug, Clone)]
pub struct Zram {
    /// What util-linux prints in NAME: the path given, or `/dev/<kernel name>`.
    pub devname: String,
    /// `/sys/dev/block/MAJ:MIN`.
    pub sysdir: PathBuf,
}

/// Finds the sysfs directory of a device given as a `/dev` path or a name
/// (util-linux's `sysfs_devname_to_devno()` + `/sys/dev/block/MAJ:MIN`).
pub fn resolve(env: &Env, name: &str) -> Option<Zram> {
    let mut rdev = None;
    let mut sysname = name;
    if let Some(rest) = name.strip_prefix("/dev/") {
        match fs::metadata(name) {
            Ok(m) => rdev = Some(m.rdev()),
            Err(_) => sysname = rest,
        }
    }
    let (major, minor) = match rdev {
        Some(0) => return None,
        Some(r) => (libc::major(r), libc::minor(r)),
        None => {
            let sysname = sysname.replace('/', "!");
            let block = env.sys.join("block").join(&sysname);
            let read = |p: PathBuf| -> Option<(u32, u32)> {
                let s = fs::read_to_string(p).ok()?;
                let (a, b) = s.trim().split_once(':')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            };
            read(block.join("dev")).or_else(|| read(block.join("device/dev")))?
        }
    };
    let sysdir = env.sys.join(format!("dev/block/{major}:{minor}"));
    if !sysdir.exists() {
        return None;
    }
    let devname = if name.starts_with('/') {
        name.to_owned()
    } else {
        let kname = fs::canonicalize(&sysdir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| name.to_owned());
        format!("/dev/{kname}")
    };
    Some(Zram { devname, sysdir })
}

pub fn read_attr(dir: &Path, attr: &str) -> Option<String> {
    let s = fs::read_to_string(dir.join(attr)).ok()?;
    Some(s.strip_suffix('\n').unwrap_or(&s).to_owned())
}

/// Writes an attribute in one write(2); the errno on failure.
pub fn write_attr(dir: &Path, attr: &str, value: &str) -> Result<(), i32> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(dir.join(attr))
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    f.write_all(value.as_bytes())
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

pub fn is_used(z: &Zram) -> bool {
    read_attr(&z.sysdir, "disksize")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// Initialised devices in the order util-linux finds them: `/dev` entries
/// `zramN` in directory order. With another sysfs root (tests), that tree's
/// `block/` instead.
pub fn list_used(env: &Env) -> Result<Vec<Zram>, i32> {
    let mut numbers = Vec::new();
    if env.sys == Path::new("/sys") {
        let dir = match fs::read_dir(&env.dev) {
            Ok(d) => d,
            Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = scan_number(&name, "zram") {
                numbers.push(n);
            }
        }
    } else if let Ok(dir) = fs::read_dir(env.sys.join("block")) {
        let mut names: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        numbers = names
            .iter()
            .filter_map(|n| scan_number(n, "zram"))
            .collect();
    }
    Ok(numbers
        .into_iter()
        .filter_map(|n| {
            let name = format!("/dev/zram{n}");
            let z = resolve(env, &name).or_else(|| {
                // No node under this /dev (another sysfs root): by name.
                resolve(env, &format!("zram{n}")).map(|z| Zram {
                    devname: name.clone(),
                    ..z
                })
            })?;
            is_used(&z).then_some(Zram { devname: name, ..z })
        })
        .collect())
}

/// `sscanf(s, "<prefix>%d", &n)`.
pub fn scan_number(s: &str, prefix: &str) -> Option<i64> {
    let rest = s.strip_prefix(prefix)?;
    let rest = rest.trim_start();
    let (sign, digits) = match rest.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, rest.strip_prefix('+').unwrap_or(rest)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    digits[..end].parse::<i64>().ok().map(|n| sign * n)
}

fn control_dir(env: &Env) -> PathBuf {
    env.sys.join("class/zram-control")
}

/// util-linux's `find_free_zram()`: the first existing zramN without a
/// disksize; when zram0.. are all in use, a new one from `hot_add`.
pub fn find_free(env: &Env) -> Option<Zram> {
    let mut i = 0u64;
    loop {
        let name = format!("/dev/zram{i}");
        let z = match resolve(env, &name).or_else(|| by_name(env, i)) {
            Some(z) => z,
            None => {
                let ctl = control_dir(env);
                if !ctl.exists() {
                    return None;
                }
                match read_attr(&ctl, "hot_add").map(|s| s.trim().parse::<i64>()) {
                    Some(Ok(n)) if n >= 0 => {
                        let name = format!("/dev/zram{n}");
                        match resolve(env, &name).or_else(|| by_name(env, n as u64)) {
                            Some(z) => z,
                            // A device that cannot be looked up is "free" to
                            // util-linux too; its setup then fails.
                            None => {
                                return Some(Zram {
                                    devname: name,
                                    sysdir: PathBuf::new(),
                                });
                            }
                        }
                    }
                    _ => return None,
                }
            }
        };
        if !is_used(&z) {
            return Some(z);
        }
        i += 1;
    }
}

/// zramN by its sysfs name, printed as `/dev/zramN` (a node that udev has
/// not made yet, or another sysfs root).
fn by_name(env: &Env, n: u64) -> Option<Zram> {
    resolve(env, &format!("zram{n}")).map(|z| Zram {
        devname: format!("/dev/zram{n}"),
        ..z
    })
}

/// util-linux's `zram_control_remove()`: hot-remove `/dev/zramN`; errors
/// are ignored as util-linux ignores them.
pub fn control_remove(env: &Env, devname: &str) {
    let ctl = control_dir(env);
    if !ctl.exists() {
        return;
    }
    if let Some(n) = scan_number(devname, "/dev/zram") {
        let _ = write_attr(&ctl, "hot_remove", &n.to_string());
    }
}

fn block_rdev(path: &str) -> Option<u64> {
    let m = fs::metadata(path).ok()?;
    m.file_type().is_block_device().then(|| m.rdev())
}

/// Where the device is in use: `[SWAP]` (in /proc/swaps) or its mount point.
pub fn mountpoint(env: &Env, devname: &str) -> Option<String> {
    let rdev = block_rdev(devname);
    let same = |src: &str| src == devname || (rdev.is_some() && block_rdev(src) == rdev);
    if let Ok(swaps) = fs::read_to_string(env.proc.join("swaps")) {
        for line in swaps.lines().skip(1) {
            let file = line.split([' ', '\t']).next().unwrap_or("");
            if same(file) {
                return Some("[SWAP]".into());
            }
        }
    }
    let mounts = fs::read_to_string(env.proc.join("mounts")).ok()?;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(src), Some(dir)) = (f.next(), f.next()) else {
            continue;
        };
        let src = unescape_mount(src);
        if src.starts_with('/') && same(&src) {
            return Some(unescape_mount(dir));
        }
    }
    None
}

/// `\040`-style octal escapes of /proc/mounts.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

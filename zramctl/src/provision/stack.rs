//! Building the stack: the file, the loop device, dm-integrity and
//! dm-crypt, through `losetup` and `dmsetup`.

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::{
    BackingSpec, Error, FilePlan, Result,
    found::{find_dm, read_trim},
    plan_file,
    record::{Layer, dm_name, dm_uuid},
    tools::{crash_point, tool, wait_node},
};

/// Returns an [`Error::Failed`] with the formatted message.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(Error::Failed(format!($($t)*)))
    };
}

/// Free bytes (for root: reserved blocks count) on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::Failed(format!("{}: a path with a NUL byte", dir.display())))?;
    // SAFETY: statvfs writes into the zeroed struct we pass.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path, st a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::io(format!("statvfs {}", dir.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(st.f_bfree * st.f_frsize)
}

/// Creates or reuses the file; returns (size, reused).
pub(super) fn prepare_file(spec: &BackingSpec, disksize: u64) -> Result<(u64, bool)> {
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
        Err(e) => return Err(Error::io(file.display().to_string())(e)),
    };
    let free = free_bytes(&dir)?;
    let plan = plan_file(spec.size, existing, free, disksize)
        .map_err(|m| Error::Failed(format!("{}: {m}", dir.display())))?;
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
        .map_err(Error::io(format!("creating {}", file.display())))?;
    if !reused {
        f.set_len(0)
            .map_err(Error::io(format!("truncating {}", file.display())))?;
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
        f.write_all_at(&[0u8; 64 << 10], 0)
            .map_err(Error::io(format!("writing {}", file.display())))?;
    }
    f.sync_all()
        .map_err(Error::io(format!("syncing {}", file.display())))?;
    Ok((size, reused))
}

/// Attaches `file` to a free loop device with direct I/O.
pub(super) fn attach_loop(sys_root: &Path, file: &Path) -> Result<(PathBuf, bool)> {
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
pub(super) fn sectors(sys_root: &Path, kname: &str) -> Result<u64> {
    let p = sys_root.join("block").join(kname).join("size");
    read_trim(&p)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Failed(format!("reading {}", p.display())))
}

/// 28 bytes per 4K block: gcm(aes)'s 16-byte tag + its 12-byte random IV.
const TAG_SIZE: u32 = 28;

pub(super) fn integrity_table(len: u64, lower: &Path) -> String {
    format!(
        "0 {len} integrity {} 0 {TAG_SIZE} D 2 block_size:4096 fix_padding",
        lower.display()
    )
}

/// Bytes that are wiped when dropped (the key and the table holding it).
pub(super) struct Secret(pub(super) Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid, aligned pointer to a byte we own; volatile so
            // the wipe is not optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

pub(super) fn random_key() -> Result<Secret> {
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
            return Err(Error::io("getrandom")(e));
        }
        got += n as usize;
    }
    Ok(key)
}

fn dm_create(name: &str, uuid: &str, table: &[u8]) -> Result<()> {
    tool("dmsetup", &["create", name, "--uuid", uuid], Some(table)).map_err(|e| {
        e.step(format!(
            "creating {name} (a kernel without dm-integrity/dm-crypt or AES-GCM fails here: CONFIG_DM_INTEGRITY, CONFIG_DM_CRYPT, CONFIG_CRYPTO_AES, CONFIG_CRYPTO_GCM)"
        ))
    })?;
    Ok(())
}

fn dm_node(sys_root: &Path, name: &str) -> Result<(String, PathBuf)> {
    let d =
        find_dm(sys_root, name).ok_or_else(|| Error::Failed(format!("{name} is not in sysfs")))?;
    // No udev in minimal systems: /dev/dm-N from devtmpfs, not /dev/mapper.
    let p = PathBuf::from("/dev").join(&d.kname);
    wait_node(&p)?;
    Ok((d.kname, p))
}

/// Stacks dm-integrity and dm-crypt on `lower`; returns the crypt device
/// and its size in bytes.
pub(super) fn stack_encryption(
    sys_root: &Path,
    zram: &str,
    lower: &Path,
) -> Result<(PathBuf, u64)> {
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
        .ok_or_else(|| Error::Failed(format!("unexpected dm-integrity status {status:?}")))?;
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
pub(super) fn check_encryption_support() -> Result<()> {
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

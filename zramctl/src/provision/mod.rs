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

mod found;
mod record;
mod stack;
mod teardown;
mod tools;

use std::{path::PathBuf, str::FromStr};

pub use found::{DmDev, find_dm, loops_on_file};
pub use record::{Layer, Record, dm_name, dm_uuid, state_dir};
use stack::{attach_loop, check_encryption_support, prepare_file, sectors, stack_encryption};
pub use teardown::{Observed, Step, observe, plan_teardown, run_teardown, teardown};
pub use tools::crash_point;
use tools::tool;

use crate::{
    size::ByteSize,
    sysfs::{Device, Sysfs},
};

/// Why provisioning or tearing down failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sysfs(#[from] crate::sysfs::Error),
    /// What went wrong, in words (a tool that failed or is missing, not
    /// enough space, a device that did not appear, ...).
    #[error("{0}")]
    Failed(String),
    /// A file or system call failed while doing `what`.
    #[error("{what}: {io}")]
    Io { what: String, io: std::io::Error },
    /// A step failed: `what` says which, `cause` why.
    #[error("{what}: {cause}")]
    Step { what: String, cause: Box<Error> },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |io| Error::Io { what, io }
    }

    pub(crate) fn step(self, what: impl Into<String>) -> Error {
        Error::Step {
            what: what.into(),
            cause: Box::new(self),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a backing file size cannot be had: a bad `--backing-size`, or not
/// enough free space.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SizingError(pub String);

impl From<SizingError> for Error {
    fn from(e: SizingError) -> Self {
        Error::Failed(e.0)
    }
}

/// What provisioning or a teardown did, as it does it (for the caller to
/// show or log; the device's name is not in it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// An earlier setup left (part of) a stack: it is taken down first.
    CleaningUp,
    /// `dmsetup remove` of this name.
    Removed(String),
    /// `losetup -d` of this loop device (`/dev/loop3`).
    Detached(String),
    /// The backing file was deleted.
    Deleted(PathBuf),
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::CleaningUp => f.write_str("cleaning up an earlier setup that did not finish"),
            Progress::Removed(n) => write!(f, "removed {n}"),
            Progress::Detached(k) => write!(f, "detached /dev/{k}"),
            Progress::Deleted(p) => write!(f, "deleted {}", p.display()),
        }
    }
}

/// `--backing-size`: bytes, or `auto` (see [`auto_size`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackingSize {
    Auto,
    Bytes(u64),
}

impl FromStr for BackingSize {
    type Err = SizingError;

    fn from_str(s: &str) -> Result<Self, SizingError> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(BackingSize::Auto);
        }
        let b: ByteSize = s
            .parse()
            .map_err(|e| SizingError(format!("{e}, or auto")))?;
        if b.0 < MIN_FILE {
            return Err(SizingError(format!(
                "backing file size {b} is too small: at least {}",
                ByteSize(MIN_FILE)
            )));
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
pub fn auto_size(free: u64, disksize: u64) -> Result<u64, SizingError> {
    let cap = disksize.div_ceil(SIZE_ALIGN) * SIZE_ALIGN;
    let size = (free / AUTO_FRACTION_DIV).min(cap).min(AUTO_MAX) / SIZE_ALIGN * SIZE_ALIGN;
    let need = AUTO_MIN.min(cap).max(MIN_FILE);
    if size < need {
        return Err(SizingError(format!(
            "not enough free space for an automatic backing file: {} free, auto uses a quarter of it and needs at least {} (so {} free); free some space or give --backing-size",
            ByteSize(free),
            ByteSize(need),
            ByteSize(need * AUTO_FRACTION_DIV)
        )));
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
) -> Result<FilePlan, SizingError> {
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
        return Err(SizingError(format!(
            "not enough free space for a {} backing file: {} free",
            ByteSize(want),
            ByteSize(free + held)
        )));
    }
    Ok(FilePlan::Allocate(want))
}

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

/// Provisions `spec` for `dev` (which must be unused): cleans up what an
/// earlier, interrupted setup left, creates or reuses the file, attaches
/// the loop device and stacks the encryption. On failure, what was made is
/// taken down again (the file stays).
pub fn provision(
    sys: &Sysfs,
    dev: &Device,
    spec: &BackingSpec,
    disksize: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<Provisioned> {
    let root = sys.root().to_owned();
    tool("losetup", &["--version"], None)?;
    if spec.encrypt {
        check_encryption_support()?;
    }
    let stale = observe(sys, dev)?;
    if stale.has_stack() {
        progress(Progress::CleaningUp);
        run_teardown(dev, &plan_teardown(&stale, false, false), progress)?;
    }
    if let Some(l) = loops_on_file(&root, &spec.file).first() {
        return Err(Error::Failed(format!(
            "{} is already attached to /dev/{l} (not by zramctl for {}): detach it first",
            spec.file.display(),
            dev.name()
        )));
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
            if let Err(t) = teardown(sys, dev, false, false, &mut |_| {}) {
                return Err(Error::Failed(format!(
                    "{e}: and cleaning up failed too: {t}"
                )));
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;

//! Errors of the sysfs layer, and what an errno means for zram.

use std::{io, path::PathBuf};

use super::parse::ParseError;

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
        reason: ParseError,
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

/// What a writeback's `EIO` means while the writeback limit is on and spent.
pub(super) const LIMIT_EXHAUSTED: &str = "writeback limit exhausted";

impl Error {
    /// Whether a writeback stopped because the writeback limit was spent.
    pub fn limit_exhausted(&self) -> bool {
        matches!(self, Error::Write { attr: "writeback", meaning, .. } if meaning == LIMIT_EXHAUSTED)
    }

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

pub(super) fn strerror(n: i32) -> String {
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

/// What an errno from a write means for this attribute, in words a user can act on.
pub(super) fn explain_write_errno(attr: &str, errno: Option<i32>) -> String {
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
            "no backing device is set (it can only be set before disksize)"
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
            "invalid request: no recompression algorithm at that priority or name (one can only be set before disksize), a threshold at or above the huge class size, or the device is not initialised".into()
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

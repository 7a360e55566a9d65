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

mod device;
mod error;
pub mod fake;
mod io;
mod model;
mod parse;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

pub use device::Device;
pub use error::{Error, Result, errno_label};
pub use io::{RealSysfs, SysfsIo};
pub use model::*;
pub use parse::ParseError;

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

#[cfg(test)]
mod tests;

//! What the probes watch: the devices, how their latency is measured, and
//! the table handed to the programs.

use std::path::Path;

use serde::Serialize;
use zramctl_common::{MAX_DEVS, WatchTable, WatchedDev, kernel_dev, watch};

use super::ProbeError;

/// How latency of a device is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    /// Bio queue to bio completion: bio-based devices (zram, dm).
    Bio,
    /// Request issue to request completion: blk-mq devices (loop,
    /// virtio-blk, nvme, scsi). Their bios never trace a completion.
    Request,
}

/// A device for [`Probes`] to watch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchSpec {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Slots to track (disksize / 4096) for access tracking; 0 for none.
    pub slots: u32,
    /// Latency to measure, if any.
    pub latency: Option<LatencyKind>,
    /// An rzram device: use rzram's tracepoints for it (slot accesses,
    /// writeback, refaults) when they can be attached.
    pub rzram: bool,
}

/// A block device as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevInfo {
    /// Kernel name (`loop0`, `nvme0n1p3`).
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Whether the (parent) disk is blk-mq (has `mq/` in sysfs), i.e. its
    /// latency is measured per request rather than per bio.
    pub blk_mq: bool,
}

impl BlockDevInfo {
    /// The latency kind that works for this device.
    pub fn latency_kind(&self) -> LatencyKind {
        if self.blk_mq {
            LatencyKind::Request
        } else {
            LatencyKind::Bio
        }
    }

    /// Describes the block device at `path` (`/dev/loop0`), using the real `/sys`.
    ///
    /// zram's `backing_dev` is the path of the opened node as the kernel sees
    /// it from the reader's root. When the opener's mount namespace is gone
    /// (`zramctl-setup.service` runs in its own, as any sandboxed unit does)
    /// the node's devtmpfs mount is detached and the kernel shows the path
    /// inside it, `/loop0`: such a path is looked up under `/dev` too.
    pub fn from_path(path: &Path) -> Result<Self, ProbeError> {
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
        let meta = std::fs::metadata(path)
            .or_else(|e| match detached_dev_path(path) {
                Some(dev) if e.kind() == std::io::ErrorKind::NotFound => std::fs::metadata(dev),
                _ => Err(e),
            })
            .map_err(|e| ProbeError::Invalid(format!("{}: {e}", path.display())))?;
        if !meta.file_type().is_block_device() {
            return Err(ProbeError::Invalid(format!(
                "{}: not a block device",
                path.display()
            )));
        }
        let rdev = meta.rdev();
        Self::from_numbers(Path::new("/sys"), libc::major(rdev), libc::minor(rdev))
    }

    /// Describes block device `major:minor` from the sysfs tree at `sysfs`.
    pub fn from_numbers(sysfs: &Path, major: u32, minor: u32) -> Result<Self, ProbeError> {
        let link = sysfs.join(format!("dev/block/{major}:{minor}"));
        let dir = std::fs::canonicalize(&link).map_err(|e| {
            ProbeError::Invalid(format!(
                "block device {major}:{minor}: {}: {e}",
                link.display()
            ))
        })?;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ProbeError::Invalid(format!("odd sysfs path {}", dir.display())))?
            .to_owned();
        // A partition's queue belongs to its parent disk.
        let disk = if dir.join("partition").exists() {
            dir.parent().unwrap_or(&dir).to_path_buf()
        } else {
            dir.clone()
        };
        Ok(BlockDevInfo {
            name,
            major,
            minor,
            blk_mq: disk.join("mq").is_dir(),
        })
    }
}

/// The watch table and the slot layout for `devices`.
pub fn watch_table(devices: &[WatchSpec]) -> Result<(WatchTable, u32), ProbeError> {
    if devices.is_empty() {
        return Err(ProbeError::Invalid("nothing: no devices given".into()));
    }
    if devices.len() > MAX_DEVS {
        return Err(ProbeError::Invalid(format!(
            "{} devices: at most {MAX_DEVS} at once",
            devices.len()
        )));
    }
    let mut table = WatchTable::default();
    let mut base = 0u32;
    for (i, d) in devices.iter().enumerate() {
        let dev = kernel_dev(d.major, d.minor);
        if devices[..i]
            .iter()
            .any(|o| kernel_dev(o.major, o.minor) == dev)
        {
            return Err(ProbeError::Invalid(format!(
                "{} ({}:{}) twice",
                d.name, d.major, d.minor
            )));
        }
        let mut flags = 0;
        if d.slots > 0 {
            flags |= watch::ACCESS;
        }
        if d.rzram {
            flags |= watch::RZRAM;
        }
        match d.latency {
            Some(LatencyKind::Bio) => flags |= watch::BIO_LATENCY,
            Some(LatencyKind::Request) => flags |= watch::RQ_LATENCY,
            None => {}
        }
        if flags == 0 {
            return Err(ProbeError::Invalid(format!(
                "{}: neither access tracking (no slots), latency nor rzram events asked for",
                d.name
            )));
        }
        table.devs[i] = WatchedDev {
            dev,
            flags,
            slot_base: base,
            slot_count: d.slots,
        };
        base = base.checked_add(d.slots).ok_or_else(|| {
            ProbeError::Invalid(format!("{}: more than 2^32 slots in total", d.name))
        })?;
    }
    table.count = devices.len() as u32;
    Ok((table, base))
}

/// Why a device is watched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A zram (or rzram) device: access tracking and bio latency.
    Zram,
    /// The backing device of the named zram device: latency.
    Backing { of: String },
    /// Named with `--latency-dev`: latency.
    Extra,
}

/// The devices to watch, why, and what could not be watched.
#[derive(Clone, Debug, Default)]
pub struct WatchList {
    pub specs: Vec<WatchSpec>,
    /// `roles[i]` is why `specs[i]` is watched.
    pub roles: Vec<Role>,
    /// What is left out and why (a backing device that cannot be described,
    /// slot tracking off on a page size other than 4 KiB), for the caller
    /// to show.
    pub notes: Vec<String>,
}

/// Why no watch list could be made.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Sysfs(#[from] crate::sysfs::Error),
    #[error("{0}: device is not initialised: nothing to watch")]
    NotInitialised(String),
    #[error("{0}: more than 2^32 slots, too large to track")]
    TooManySlots(String),
    #[error("{what}: {error}")]
    LatencyDev { what: String, error: ProbeError },
    #[error("no initialised zram device to watch under {} (and no --latency-dev)", .0.display())]
    Nothing(std::path::PathBuf),
}

impl WatchList {
    fn push(&mut self, spec: WatchSpec, role: Role) {
        if self
            .specs
            .iter()
            .any(|s| (s.major, s.minor) == (spec.major, spec.minor))
        {
            return;
        }
        self.specs.push(spec);
        self.roles.push(role);
    }
}

/// The devices to watch: `device` (else every initialised zram and rzram
/// device) with its backing device, and the `latency_devs` (latency only).
/// A named device that is not initialised is an error; unnamed ones are
/// skipped.
pub fn watch_list(
    sys: &crate::sysfs::Sysfs,
    device: Option<&str>,
    latency_devs: &[std::path::PathBuf],
) -> Result<WatchList, WatchError> {
    let zrams = match device {
        Some(spec) => vec![sys.device(spec)?],
        None => sys.devices()?,
    };
    let mut list = WatchList::default();
    let page = crate::platform::page_size();
    let track_slots = page == 4096;
    if !track_slots {
        list.notes.push(format!(
            "page size {page} is not 4 KiB: slot tracking is off (it assumes 8 sectors per slot)"
        ));
    }
    for dev in &zrams {
        if !dev.initstate()? {
            if device.is_some() {
                return Err(WatchError::NotInitialised(dev.name().to_owned()));
            }
            continue;
        }
        let (major, minor) = dev.dev_numbers()?;
        let slots = if track_slots {
            u32::try_from(dev.disksize()? / 4096)
                .map_err(|_| WatchError::TooManySlots(dev.name().to_owned()))?
        } else {
            0
        };
        list.push(
            WatchSpec {
                name: dev.name().to_owned(),
                major,
                minor,
                slots,
                latency: Some(LatencyKind::Bio),
                rzram: dev.name().starts_with("rzram"),
            },
            Role::Zram,
        );
        if let crate::sysfs::BackingDev::Path(p) = dev.backing_dev()? {
            match BlockDevInfo::from_path(&p) {
                Ok(b) => list.push(
                    b.latency_watch(),
                    Role::Backing {
                        of: dev.name().to_owned(),
                    },
                ),
                Err(e) => list.notes.push(format!(
                    "{}: not watching backing device {}: {e}",
                    dev.name(),
                    p.display()
                )),
            }
        }
    }
    for p in latency_devs {
        let b = BlockDevInfo::from_path(p).map_err(|error| WatchError::LatencyDev {
            what: format!("--latency-dev {}", p.display()),
            error,
        })?;
        list.push(b.latency_watch(), Role::Extra);
    }
    if list.specs.is_empty() {
        return Err(WatchError::Nothing(sys.root().join("block")));
    }
    Ok(list)
}

impl BlockDevInfo {
    /// A watch on this device for its request latency only (no slots).
    pub fn latency_watch(&self) -> WatchSpec {
        WatchSpec {
            name: self.name.clone(),
            major: self.major,
            minor: self.minor,
            slots: 0,
            latency: Some(self.latency_kind()),
            rzram: false,
        }
    }
}

/// `/dev/NAME` for a backing_dev path `/NAME` shown for a node on a detached
/// devtmpfs mount (see [`BlockDevInfo::from_path`]); `None` for other paths.
fn detached_dev_path(path: &Path) -> Option<std::path::PathBuf> {
    let rel = path.strip_prefix("/").ok()?;
    (rel.components().count() == 1).then(|| Path::new("/dev").join(rel))
}

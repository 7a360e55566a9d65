//! Setting a device up: [`DeviceSpec`], the one validated description of a
//! device to set up, and [`setup`], which carries it out.
//!
//! Both front ends build a [`DeviceSpec`]: the CLI from `zramctl setup`'s
//! arguments, the daemon from a `[[device]]` of its configuration, each
//! wording the [`SpecError`] in its own terms (a flag, a config field).
//! What can only be checked against the device (the kernel's algorithms,
//! its features) is checked by [`setup`] before anything is written.

use std::{fmt, path::PathBuf};

use super::{Error, Result, recompress::unsupported_hint};
use crate::{
    provision::{self, BackingSpec, Progress, Provisioned},
    size::ByteSize,
    sysfs::{self, Sysfs},
};

/// Where a device writes back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// An existing block device (a partition, a loop device).
    Device(PathBuf),
    /// A file zramctl provisions (see [`crate::provision`]).
    File(BackingSpec),
}

/// The most secondary (recompression) algorithms: priorities 1-3.
pub const MAX_RECOMP_ALGORITHMS: usize = 3;

/// Why a [`DeviceSpec`] cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("the disk size must be larger than 0")]
    ZeroSize,
    #[error("{0} recompression algorithms: at most 3 (priorities 1-3)")]
    TooManyRecompAlgorithms(usize),
}

/// A device to set up, validated: disk size, algorithms, backing, memory
/// limit. Built with [`DeviceSpec::new`] and the `with_*` methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    disksize: u64,
    algorithm: Option<String>,
    recomp_algorithms: Vec<String>,
    backing: Option<Backing>,
    mem_limit: Option<u64>,
}

impl DeviceSpec {
    /// A device of `disksize` bytes with the kernel's default algorithm,
    /// no backing device and no memory limit.
    pub fn new(disksize: u64) -> Result<Self, SpecError> {
        if disksize == 0 {
            return Err(SpecError::ZeroSize);
        }
        Ok(DeviceSpec {
            disksize,
            algorithm: None,
            recomp_algorithms: Vec::new(),
            backing: None,
            mem_limit: None,
        })
    }

    pub fn with_algorithm(mut self, algorithm: Option<String>) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Secondary algorithms for recompression, priority 1 first.
    pub fn with_recomp_algorithms(mut self, algos: Vec<String>) -> Result<Self, SpecError> {
        if algos.len() > MAX_RECOMP_ALGORITHMS {
            return Err(SpecError::TooManyRecompAlgorithms(algos.len()));
        }
        self.recomp_algorithms = algos;
        Ok(self)
    }

    pub fn with_backing(mut self, backing: Option<Backing>) -> Self {
        self.backing = backing;
        self
    }

    pub fn with_mem_limit(mut self, bytes: Option<u64>) -> Self {
        self.mem_limit = bytes;
        self
    }

    pub fn disksize(&self) -> u64 {
        self.disksize
    }

    pub fn algorithm(&self) -> Option<&str> {
        self.algorithm.as_deref()
    }

    pub fn recomp_algorithms(&self) -> &[String] {
        &self.recomp_algorithms
    }

    pub fn backing(&self) -> Option<&Backing> {
        self.backing.as_ref()
    }

    pub fn mem_limit(&self) -> Option<u64> {
        self.mem_limit
    }
}

/// What [`setup`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupOutcome {
    pub device: String,
    pub disksize: u64,
    /// The algorithm in use, read back from the device.
    pub algorithm: String,
    pub backing: Option<BackingOutcome>,
    pub mem_limit: Option<u64>,
}

/// The backing of a set-up device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackingOutcome {
    Device(PathBuf),
    File(Provisioned),
}

impl fmt::Display for SetupOutcome {
    /// `zram0: 1G zstd, backing /dev/dm-1 (new 256M file, ...)`: what
    /// `zramctl setup` prints and the daemon logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {}",
            self.device,
            ByteSize(self.disksize),
            self.algorithm
        )?;
        match &self.backing {
            Some(BackingOutcome::File(p)) => write!(
                f,
                ", backing {} ({} {}{}, {}{} on {}{})",
                p.top.display(),
                if p.reused { "reused" } else { "new" },
                ByteSize(p.file_size),
                if p.encrypted {
                    format!(" file, {} usable", ByteSize(p.capacity))
                } else {
                    " file".into()
                },
                if p.encrypted {
                    "dm-crypt aes-gcm + dm-integrity "
                } else {
                    ""
                },
                p.file.display(),
                p.loop_dev.display(),
                if p.direct_io {
                    " direct I/O"
                } else {
                    ", buffered I/O: the filesystem refused direct I/O"
                },
            )?,
            Some(BackingOutcome::Device(b)) => write!(f, ", backing {}", b.display())?,
            None => {}
        }
        if let Some(m) = self.mem_limit {
            write!(f, ", mem_limit {}", ByteSize(m))?;
        }
        Ok(())
    }
}

/// Sets `device` up as `spec` says: the backing device (provisioning a
/// backing file first), the algorithms, then disksize and the memory
/// limit, in the order the kernel needs. The device must not be
/// initialised. On failure the device is reset (and a provisioned backing
/// file taken down again) rather than left half-configured.
pub fn setup(
    sys: &Sysfs,
    device: &str,
    spec: &DeviceSpec,
    progress: &mut dyn FnMut(Progress),
) -> Result<SetupOutcome> {
    let dev = sys.device(device)?;
    if dev.initstate()? {
        return Err(Error::AlreadyInitialised {
            device: dev.name().to_owned(),
            disksize: ByteSize(dev.disksize()?),
        });
    }
    if let Some(algo) = &spec.algorithm {
        let algos = dev.comp_algorithm()?;
        if !algos.available.iter().any(|x| x == algo) {
            return Err(Error::invalid(
                dev.name(),
                format!(
                    "unknown compression algorithm {algo:?}: this kernel offers {}",
                    algos.available.join(", ")
                ),
            ));
        }
    }
    for algo in &spec.recomp_algorithms {
        if !dev.has_recompression() {
            return Err(sysfs::Error::Unsupported {
                device: dev.name().to_owned(),
                attr: "recomp_algorithm",
                hint: unsupported_hint(&dev),
            }
            .into());
        }
        let algos = dev.comp_algorithm()?;
        if !algos.available.iter().any(|x| x == algo) {
            return Err(Error::invalid(
                dev.name(),
                format!(
                    "unknown recompression algorithm {algo:?}: this kernel offers {}",
                    algos.available.join(", ")
                ),
            ));
        }
    }
    match &spec.backing {
        Some(Backing::File(_)) if !dev.has("backing_dev") => {
            return Err(Error::invalid(
                dev.name(),
                "cannot set a backing file: this kernel's zram was built without CONFIG_ZRAM_WRITEBACK",
            ));
        }
        Some(Backing::Device(bd)) => {
            if !dev.has("backing_dev") {
                return Err(Error::invalid(
                    dev.name(),
                    "cannot set a backing device: this kernel's zram was built without CONFIG_ZRAM_WRITEBACK",
                ));
            }
            if !bd.exists() {
                return Err(Error::invalid(
                    dev.name(),
                    format!("backing device {} does not exist", bd.display()),
                ));
            }
        }
        _ => {}
    }
    // The backing file's stack first; everything below undoes it on failure.
    let provisioned = match &spec.backing {
        Some(Backing::File(file)) => Some(provision::provision(
            sys,
            &dev,
            file,
            spec.disksize,
            progress,
        )?),
        _ => None,
    };
    let backing = match (&spec.backing, &provisioned) {
        (Some(Backing::Device(bd)), _) => Some(bd.clone()),
        (_, Some(p)) => Some(p.top.clone()),
        _ => None,
    };
    // Order matters: backing device and algorithms only before disksize.
    let result = (|| -> sysfs::Result<()> {
        if let Some(bd) = &backing {
            dev.set_backing_dev(bd)?;
            provision::crash_point("backing");
        }
        if let Some(algo) = &spec.algorithm {
            dev.set_comp_algorithm(algo)?;
        }
        for (i, algo) in spec.recomp_algorithms.iter().enumerate() {
            dev.set_recomp_algorithm(algo, i as u32 + 1)?;
        }
        dev.set_disksize(spec.disksize)?;
        if let Some(limit) = spec.mem_limit {
            dev.set_mem_limit(limit)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Leave the device as we found it, not half-configured.
        let cause = Box::new(Error::Sysfs(e));
        let name = dev.name();
        let what = if provisioned.is_some() {
            match provision::teardown(sys, &dev, true, false, &mut |_| {}) {
                Ok(_) => format!("{name}: setup failed; device reset and backing file detached"),
                Err(r) => format!("{name}: setup failed and undoing it failed too: {r}"),
            }
        } else {
            match dev.reset() {
                Ok(()) => format!("{name}: setup failed; device reset to unconfigured"),
                Err(r) => {
                    format!("{name}: setup failed and the reset to undo it failed too: {r}")
                }
            }
        };
        return Err(Error::Undone { what, cause });
    }
    Ok(SetupOutcome {
        device: dev.name().to_owned(),
        disksize: spec.disksize,
        algorithm: dev.comp_algorithm()?.current,
        backing: match (provisioned, &spec.backing) {
            (Some(p), _) => Some(BackingOutcome::File(p)),
            (None, Some(Backing::Device(b))) => Some(BackingOutcome::Device(b.clone())),
            _ => None,
        },
        mem_limit: spec.mem_limit,
    })
}

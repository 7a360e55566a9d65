//! Why an operation was refused or failed.

use crate::{provision, size::ByteSize, sysfs};

/// Errors of [`crate::ops`]. Each names the device; none names a command
/// (the CLI adds how to fix it in its own words).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sysfs(#[from] sysfs::Error),
    #[error(transparent)]
    Provision(#[from] provision::Error),
    /// The operation needs an initialised device (disksize set).
    #[error("{0}: device is not initialised")]
    NotInitialised(String),
    /// Setup needs a device that is not initialised.
    #[error("{device}: device already initialised (disksize {disksize})")]
    AlreadyInitialised { device: String, disksize: ByteSize },
    /// Recompression without a secondary algorithm (set before disksize).
    #[error("{0}: no recompression algorithm is configured: it can only be set before disksize")]
    NoRecompAlgorithm(String),
    /// The request does not fit the device (unknown algorithm, page out of
    /// range, ...).
    #[error("{device}: {message}")]
    Invalid { device: String, message: String },
    /// A setup step failed; `what` says how the device was left.
    #[error("{what}: {cause}")]
    Undone { what: String, cause: Box<Error> },
}

impl Error {
    pub(crate) fn invalid(device: &str, message: impl Into<String>) -> Self {
        Error::Invalid {
            device: device.to_owned(),
            message: message.into(),
        }
    }

    /// The sysfs error underneath, if that is what failed.
    pub fn sysfs(&self) -> Option<&sysfs::Error> {
        match self {
            Error::Sysfs(e) | Error::Provision(provision::Error::Sysfs(e)) => Some(e),
            Error::Undone { cause, .. } => cause.sysfs(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Reset: the device, and a backing file stack provisioned for it.

use super::Result;
use crate::{
    provision::{self, Progress},
    sysfs::{Device, Sysfs},
};

/// What a reset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOutcome {
    /// The device had a backing file provisioned by `setup` (so a request
    /// to delete it had something to delete).
    pub had_backing_file: bool,
}

/// Resets `dev` and takes down the backing file stack `setup` made for it
/// (dm-crypt, dm-integrity, the loop device, in that order); the file is
/// deleted only with `delete_backing_file`. `progress` hears each step.
pub fn reset(
    sys: &Sysfs,
    dev: &Device,
    delete_backing_file: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<ResetOutcome> {
    let o = provision::teardown(sys, dev, true, delete_backing_file, progress)?;
    Ok(ResetOutcome {
        had_backing_file: o.record.is_some(),
    })
}

//! `zramctl setup` and `zramctl reset`: the arguments become an
//! [`ops::setup::DeviceSpec`] (the same type a daemon configuration's
//! device becomes), and the outcome is printed.

use std::io::Write;

use anyhow::{Result, bail};

use crate::{
    cli::{ResetArgs, SetupArgs},
    ops::{
        self,
        setup::{Backing, DeviceSpec, SpecError},
    },
    provision::BackingSpec,
    sysfs::Sysfs,
};

/// The spec `zramctl setup`'s arguments ask for; errors in the flags' terms.
pub(super) fn spec_from_args(a: &SetupArgs, device: &str) -> Result<DeviceSpec> {
    let spec = DeviceSpec::new(a.size.0)
        .and_then(|s| s.with_recomp_algorithms(a.recomp_algorithms.clone()))
        .or_else(|e| match e {
            SpecError::ZeroSize => bail!("{device}: --size must be larger than 0"),
            SpecError::TooManyRecompAlgorithms(_) => {
                bail!("{device}: at most 3 --recomp-algorithm (priorities 1-3)")
            }
        })?;
    let backing = match (&a.backing_dev, &a.backing_file) {
        (Some(d), _) => Some(Backing::Device(d.clone())),
        (None, Some(f)) => Some(Backing::File(BackingSpec {
            file: f.clone(),
            size: a.backing_size,
            encrypt: a.encrypt,
        })),
        (None, None) => None,
    };
    Ok(spec
        .with_algorithm(a.algorithm.clone())
        .with_backing(backing)
        .with_mem_limit(a.mem_limit.map(|m| m.0)))
}

pub(super) fn setup(sys: &Sysfs, a: &SetupArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    let spec = spec_from_args(a, dev.name())?;
    let name = dev.name().to_owned();
    let outcome = ops::setup::setup(sys, &name, &spec, &mut |p| {
        let _ = writeln!(out, "{name}: {p}");
    })?;
    writeln!(out, "{outcome}")?;
    Ok(())
}

pub(super) fn reset(sys: &Sysfs, a: &ResetArgs, out: &mut dyn Write) -> Result<()> {
    let dev = sys.device(&a.device)?;
    let name = dev.name().to_owned();
    let o = ops::reset::reset(sys, &dev, a.delete_backing_file, &mut |p| {
        let _ = writeln!(out, "{name}: {p}");
    })?;
    if a.delete_backing_file && !o.had_backing_file {
        writeln!(out, "{name}: no backing file of zramctl's to delete")?;
    }
    writeln!(out, "{name}: reset")?;
    Ok(())
}

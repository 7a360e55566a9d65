//! What the user can do about an error, in terms of zramctl's commands.
//! The layers below say what is wrong; only the CLI knows its commands.

use crate::{ops, provision, sysfs};

/// `e` with a hint appended where one helps, else `e` unchanged.
pub(super) fn add(e: anyhow::Error) -> anyhow::Error {
    match hint(&e) {
        Some(h) => anyhow::anyhow!("{e:#}{h}"),
        None => e,
    }
}

fn hint(e: &anyhow::Error) -> Option<String> {
    if let Some(o) = e.downcast_ref::<ops::Error>() {
        return ops_hint(o);
    }
    let s = e.downcast_ref::<sysfs::Error>().or_else(|| {
        e.downcast_ref::<provision::Error>().and_then(|p| match p {
            provision::Error::Sysfs(s) => Some(s),
            _ => None,
        })
    })?;
    sysfs_hint(s).map(str::to_owned)
}

fn ops_hint(e: &ops::Error) -> Option<String> {
    match e {
        ops::Error::NotInitialised(_) => Some(": set it up first with `zramctl setup`".into()),
        ops::Error::AlreadyInitialised { device, .. } => {
            Some(format!(": reset it first with `zramctl reset {device}`"))
        }
        ops::Error::NoRecompAlgorithm(d) => Some(format!(
            " (`zramctl reset {d}`, then `zramctl setup {d} --recomp-algorithm zstd ...`)"
        )),
        _ => e.sysfs().and_then(sysfs_hint).map(str::to_owned),
    }
}

fn sysfs_hint(e: &sysfs::Error) -> Option<&'static str> {
    if e.limit_exhausted() {
        return Some(": raise it with `zramctl limit` or turn it off with `--off`");
    }
    match e {
        sysfs::Error::Write {
            attr: "writeback",
            errno: Some(libc::ENODEV),
            ..
        } => Some(": set one with `zramctl setup --backing-dev`"),
        sysfs::Error::Write {
            attr: "recompress",
            errno: Some(libc::EINVAL),
            ..
        } => Some(": a recompression algorithm is set with `zramctl setup --recomp-algorithm`"),
        _ => None,
    }
}

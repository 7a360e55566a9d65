//! Small helpers shared by the xtask commands.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The workspace root (the parent of xtask/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cache dir outside the clone: $ZRAMCTL_CACHE or ~/.cache/zramctl.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ZRAMCTL_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache/zramctl")
}

/// A progress line on stderr.
pub fn progress(msg: &str) {
    eprintln!("\x1b[1m==>\x1b[0m {msg}");
}

/// Runs a command with inherited stdio; fails on non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// FNV-1a, for cache keys (not security).
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

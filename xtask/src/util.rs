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

/// Totals of libtest's `test result:` lines.
#[derive(Default, Debug, Clone, Copy)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Tally {
    /// Adds one line if it is libtest's summary
    /// (`test result: ok. 19 passed; 0 failed; 2 ignored; ...`).
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let n = |w: &str| w.parse::<u64>().ok();
            match words.as_slice() {
                [.., num, "passed"] => self.passed += n(num).unwrap_or(0),
                [num, "failed"] => self.failed += n(num).unwrap_or(0),
                [num, "ignored"] => self.ignored += n(num).unwrap_or(0),
                _ => {}
            }
        }
    }

    pub fn add_text(&mut self, text: &str) {
        text.lines().for_each(|l| self.add_line(l));
    }
}

/// Runs a command, echoing its stdout while tallying libtest summaries.
pub fn run_tallied(cmd: &mut Command, tally: &mut Tally) -> Result<()> {
    use std::io::BufRead as _;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let out = child.stdout.take().expect("piped");
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        println!("{line}");
        tally.add_line(&line);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

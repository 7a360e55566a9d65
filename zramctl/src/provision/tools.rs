//! Running `losetup`/`dmsetup`, waiting for device nodes, and the crash
//! hook the tests use.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{Error, Result};

/// Returns an [`Error::Failed`] with the formatted message.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(Error::Failed(format!($($t)*)))
    };
}

/// Runs a tool; stdout on success, an error with its stderr otherwise.
/// `stdin` is piped (and never shown in errors: it may hold a key).
pub(super) fn tool(prog: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<String> {
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Failed(format!(
                "{prog} not found: install it (util-linux for losetup, dmsetup for device-mapper)"
            ))
        } else {
            Error::Failed(format!("cannot run {prog}: {e}"))
        }
    })?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let r = pipe.write_all(input);
        drop(pipe);
        r.map_err(Error::io(format!("writing to {prog}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(Error::io(format!("running {prog}")))?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits for a device node that devtmpfs (or udev) creates.
pub(super) fn wait_node(p: &Path) -> Result<()> {
    let t = Instant::now();
    while !p.exists() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("{} did not appear", p.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Test hook: `ZRAMCTL_CRASH_AFTER=<step>` kills the process with SIGKILL
/// right after that step (`file`, `loop`, `integrity`, `crypt`, `backing`),
/// the way a power cut or OOM kill would, so tests can check that the next
/// `setup`/`reset` cleans up.
pub fn crash_point(step: &str) {
    if std::env::var("ZRAMCTL_CRASH_AFTER").as_deref() == Ok(step) {
        // SAFETY: kill(2) on ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

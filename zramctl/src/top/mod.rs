//! `zramctl top`: a live terminal view of what the eBPF probes see: access
//! rates, slot-age histograms and latency histograms (bcc biolatency's
//! bars), per-program cost; on rzram devices also writeback rate, latency
//! and errors, and refaults with the time since their writeback ("n/a" on
//! stock zram). Plain ANSI escapes, no terminal library.
//!
//! [`TopReport::between`] and [`render_text`] are pure (unit-tested);
//! [`run`] attaches the probes and drives the loop.

mod render;
mod report;

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

pub use render::render_text;
pub use report::{AgeBucket, RzramReport, SlotAges, TopDevice, TopProgram, TopReport};

use crate::{
    platform::stdout_is_tty,
    probes::{Flavour, ProbeOptions, Probes, WatchError, watch_list},
    sysfs::Sysfs,
};

/// Which eBPF program type to load: `None` tries tp_btf, then raw tracepoints.
pub type ProbeChoice = Option<Flavour>;

/// What `zramctl top` is asked to do (the CLI's arguments, validated).
#[derive(Clone, Debug, Default)]
pub struct TopOptions {
    /// zramN or rzramN; `None`: every initialised device.
    pub device: Option<String>,
    pub interval_secs: f64,
    pub once: bool,
    pub json: bool,
    pub record: Option<PathBuf>,
    pub latency_devs: Vec<PathBuf>,
    pub flavour: ProbeChoice,
}

/// Set by SIGINT/SIGTERM while `top` runs.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Catches SIGINT and SIGTERM while alive; restores the previous handlers.
struct SignalGuard {
    old: [(libc::c_int, libc::sigaction); 2],
}

impl SignalGuard {
    fn install() -> Result<Self> {
        STOP.store(false, Ordering::Relaxed);
        // SAFETY: all-zero is a valid sigaction (no flags, empty mask).
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let mut old = [(libc::SIGINT, act), (libc::SIGTERM, act)];
        for (sig, prev) in &mut old {
            // SAFETY: installs a handler that only stores to an atomic
            // (async-signal-safe); `prev` receives the old action.
            if unsafe { libc::sigaction(*sig, &act, prev) } != 0 {
                return Err(std::io::Error::last_os_error()).context("installing a signal handler");
            }
        }
        Ok(SignalGuard { old })
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores the action saved by `install`.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

/// Sleeps until `deadline` or a signal; returns whether a signal came.
fn sleep_until(deadline: Instant) -> bool {
    loop {
        if STOP.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// Runs `zramctl top`.
pub fn run(sys: &Sysfs, a: &TopOptions, out: &mut dyn Write) -> Result<()> {
    let list = match watch_list(sys, a.device.as_deref(), &a.latency_devs) {
        Ok(l) => l,
        Err(e @ WatchError::NotInitialised(_)) => {
            return Err(anyhow::anyhow!("{e} (set it up with `zramctl setup`)"));
        }
        Err(e) => return Err(e.into()),
    };
    for note in &list.notes {
        eprintln!("zramctl top: {note}");
    }
    let (specs, roles) = (list.specs, list.roles);
    let flavour = a.flavour;
    let probes = Probes::attach(
        &specs,
        ProbeOptions {
            flavour,
            stats: true,
            cost_floor: false,
        },
    )
    .context("attaching the eBPF probes (zramctl top needs them)")?;
    if let Err(why) = probes.stats_enabled() {
        eprintln!("zramctl top: no per-program costs: {why}");
    }
    if specs.iter().any(|s| s.rzram)
        && let Err(why) = probes.rzram_status()
    {
        eprintln!("zramctl top: no rzram writeback events: {why}");
    }
    let mut record = match &a.record {
        Some(path) => Some(open_record(path)?),
        None => None,
    };
    let _signals = SignalGuard::install()?;
    // The first snapshot before saying so: what happens after the message
    // is in the first interval (a test waits for it).
    let mut prev = (probes.snapshot()?, probes.costs()?);
    eprintln!(
        "zramctl top: watching {} with {} probes",
        specs
            .iter()
            .map(|s| format!("{} ({}:{})", s.name, s.major, s.minor))
            .collect::<Vec<_>>()
            .join(", "),
        match probes.flavour() {
            Flavour::TpBtf => "tp_btf",
            Flavour::RawTp => "raw_tp",
        }
    );
    let live = !a.once && stdout_is_tty();
    let interval = Duration::from_secs_f64(a.interval_secs);
    let mut next = Instant::now() + interval;
    if live {
        write!(out, "\x1b[?25l\x1b[2J")?;
    }
    let result = (|| -> Result<()> {
        loop {
            let stopped = sleep_until(next);
            next += interval;
            let cur = (probes.snapshot()?, probes.costs()?);
            let report = TopReport::between(
                &prev.0,
                &cur.0,
                &prev.1,
                &cur.1,
                &roles,
                probes.flavour(),
                probes.rzram_status(),
            );
            if let Some((file, path)) = &mut record {
                serde_json::to_writer(&mut *file, &report)
                    .and_then(|()| writeln!(file).map_err(serde_json::Error::io))
                    .with_context(|| format!("writing to {}", path.display()))?;
            }
            if a.once {
                if a.json {
                    serde_json::to_writer_pretty(&mut *out, &report)?;
                    writeln!(out)?;
                } else {
                    render_text(&report, out)?;
                }
                return Ok(());
            }
            if live {
                // Home, draw, clear what the last frame left below.
                write!(out, "\x1b[H")?;
                let mut frame = Vec::new();
                render_text(&report, &mut frame)?;
                for line in String::from_utf8_lossy(&frame).lines() {
                    writeln!(out, "{line}\x1b[K")?;
                }
                write!(out, "\x1b[J")?;
            } else {
                render_text(&report, out)?;
                writeln!(out)?;
            }
            out.flush()?;
            prev = cur;
            if stopped {
                return Ok(());
            }
        }
    })();
    if live {
        write!(out, "\x1b[?25h")?;
        out.flush()?;
    }
    result
}

fn open_record(path: &Path) -> Result<(std::fs::File, PathBuf)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening --record file {}", path.display()))?;
    Ok((f, path.to_owned()))
}

#[cfg(test)]
mod tests;

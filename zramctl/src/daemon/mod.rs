//! `zramctl daemon`: the policy daemon.
//!
//! [`DaemonCore`] does the work synchronously and is what the tests drive
//! (on [`crate::sysfs::fake`] with a fake clock and [`FakeProbes`]):
//!
//! - [`core`]: the core's state and what changes it from outside a step
//!   (reload, new probes, shutdown);
//! - [`step`](self::step): one step: read the devices and probes, build the policy's
//!   inputs, decide;
//! - [`actions`]: every device write of a step (batch size, writeback
//!   limit and round, recompression, limit restore);
//! - [`state`]: what is kept per device; [`limit`]: the limit record;
//! - [`sources`]: the probe and pressure sources ([`fake`]: simulated ones);
//! - [`exposition`]: the `/metrics` families, in the text format of
//!   [`metrics`];
//! - [`service`]: the tokio shell (timer, signals, sd_notify via
//!   [`notify`], the HTTP [`server`]);
//! - [`config`]: the TOML configuration.

mod actions;
mod candidates;
pub mod config;
pub mod core;
mod exposition;
pub mod fake;
mod limit;
pub mod metrics;
pub mod notify;
mod process;
mod server;
mod service;
pub mod sources;
mod state;
mod step;

use std::path::Path;

use anyhow::{Context as _, Result};

use self::config::Config;
pub use self::{
    core::DaemonCore,
    fake::{FakeProbeState, FakeProbes},
    service::setup_configured,
    sources::{PressureSource, ProbeDevice, ProbeSource, ProbeView, PsiFile},
    state::ProbeStatus,
};
use crate::{platform::stderr_is_tty, sysfs::Sysfs};

fn init_logging() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_env("ZRAMCTL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd the journal adds its own timestamps; no colours there.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let b = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!journald && stderr_is_tty())
        .with_target(false);
    let _ = if journald {
        b.without_time().try_init()
    } else {
        b.try_init()
    };
}

/// Runs the daemon with the configuration at `config_path` until SIGTERM
/// or SIGINT; with `check`, only validates it. `fake`: on simulated devices
/// with synthetic probes (demos and tests).
pub fn run(sys: &Sysfs, config_path: &Path, check: bool, fake: bool) -> Result<()> {
    init_logging();
    let config = Config::load(config_path)?;
    if check {
        println!(
            "{}: valid ({} device{})",
            config_path.display(),
            config.devices.len(),
            if config.devices.len() == 1 { "" } else { "s" }
        );
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(service::main_loop(sys.clone(), config_path, fake, config))
}

/// Sets up the devices the configuration at `config_path` sets up (disksize,
/// algorithms, `[device.backing]`; devices already set up are left as
/// found), then returns: `zramctl daemon --setup-only`, run by
/// zramctl-setup.service with the privileges that needs.
pub fn setup_only(sys: &Sysfs, config_path: &Path) -> Result<()> {
    init_logging();
    let config = Config::load(config_path)?;
    setup_configured(sys, &config.devices)
}

#[cfg(test)]
mod tests;

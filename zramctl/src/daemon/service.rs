//! The tokio shell around [`DaemonCore`]: the step timer, SIGHUP reload,
//! SIGTERM/SIGINT shutdown, sd_notify and the metrics server.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};
use tracing::{error, info, warn};

use super::{
    config::{Config, DeviceConfig, ProbeMode},
    core::DaemonCore,
    fake::fake_setup,
    notify::{self, Notifier},
    server::{Page, serve},
    sources::{ProbeSource, PsiFile, attach_probes},
};
use crate::{ops, platform::monotonic_ns, sysfs::Sysfs};

/// Runs the daemon on `sys` until SIGTERM or SIGINT. `fake`: on simulated
/// devices with synthetic probes instead.
pub(super) async fn main_loop(
    sys: Sysfs,
    config_path: &Path,
    fake: bool,
    config: Config,
) -> Result<()> {
    let notify = Notifier::from_env().context("NOTIFY_SOCKET")?;
    let (sys, fake_probes) = if fake {
        let (s, p) = fake_setup(&config);
        (s, Some(p))
    } else {
        (sys, None)
    };
    // Devices the configuration sets up (disksize, [device.backing]).
    setup_configured(&sys, &config.devices)?;
    let probe_factory = |sys: &Sysfs, c: &Config| -> Result<Box<dyn ProbeSource>> {
        match &fake_probes {
            Some(p) => Ok(Box::new(p.clone())),
            None => attach_probes(sys, c),
        }
    };
    let probes = probe_factory(&sys, &config);
    match &probes {
        Ok(p) => info!(flavour = p.flavour(), "eBPF probes attached"),
        Err(why) => warn!("eBPF probes not used, policy runs on sysfs only: {why}"),
    }
    let core = DaemonCore::new(
        sys.clone(),
        config.clone(),
        probes,
        Box::new(PsiFile(config.psi_path.clone())),
        monotonic_ns(),
    )?;
    let cancel = core.cancel_handle();
    // The core runs its steps on a blocking thread (a writeback round may
    // take minutes on a slow backing device); this loop keeps serving the
    // watchdog, the signals and /metrics meanwhile.
    let core = Arc::new(Mutex::new(core));
    let lock =
        |c: &Arc<Mutex<DaemonCore>>| c.lock().unwrap_or_else(|e| e.into_inner()).status_line();
    let page = Arc::new(Page::new(core.clone()));
    let listen = config.metrics_listen;
    if let Some(addr) = listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("daemon.metrics_listen: cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        info!(%bound, "metrics on http://{bound}/metrics");
        tokio::spawn(serve(listener, page.clone()));
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut interval_secs = config.interval_secs;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wd_every = notify::watchdog_interval().map(|d| d / 2);
    let mut wd = tokio::time::interval(wd_every.unwrap_or(Duration::from_secs(3600)));
    {
        let c = core.clone();
        tokio::task::spawn_blocking(move || {
            c.lock()
                .unwrap_or_else(|e| e.into_inner())
                .step(monotonic_ns())
        })
        .await
        .context("the first step")?;
    }
    page.render();
    // The allocator keeps what loading the probes (BTF, the object) freed:
    // give it back.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    if let Err(e) = notify.ready(&lock(&core)) {
        warn!("sd_notify READY failed: {e}");
    }
    info!(
        devices = config.devices.len(),
        interval_secs = config.interval_secs,
        "ready"
    );
    // The step running on the blocking thread, if any, and a configuration
    // read by SIGHUP during it, applied when it is done.
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    let mut pending: Option<Config> = None;
    // Reloads refused while a round held the core, not yet counted.
    let mut refused: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick(), if running.is_none() => {
                let c = core.clone();
                running = Some(tokio::task::spawn_blocking(move || {
                    c.lock().unwrap_or_else(|e| e.into_inner()).step(monotonic_ns());
                }));
            }
            r = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                running = None;
                if let Err(e) = r {
                    error!("a daemon step failed: {e}");
                }
                let mut g = core.lock().unwrap_or_else(|e| e.into_inner());
                page.after_step(&g);
                g.reloads_failed += std::mem::take(&mut refused);
                if g.take_reattach() && g.config().probes != ProbeMode::Off {
                    // A device was reset or set up again: watch it as it is now.
                    let c = g.config().clone();
                    let p = probe_factory(&sys, &c);
                    match &p {
                        Ok(p) => info!(flavour = p.flavour(), "eBPF probes attached again"),
                        Err(why) => warn!("eBPF probes not used until the devices change again: {why}"),
                    }
                    g.set_probes(p);
                }
                if let Some(c) = pending.take() {
                    apply_reload(&mut g, c, config_path, listen, &mut interval_secs, &mut tick, &sys, &probe_factory);
                    // SIGHUP sent RELOADING=1: systemd's reload job (and
                    // `systemctl reload`) waits for this READY=1.
                    if let Err(e) = notify.ready(&g.status_line()) {
                        warn!("sd_notify READY failed: {e}");
                    }
                } else {
                    let _ = notify.status(&g.status_line());
                }
            }
            _ = wd.tick(), if wd_every.is_some() => {
                let _ = notify.watchdog();
            }
            _ = hup.recv() => {
                let _ = notify.reloading();
                info!("SIGHUP: reloading the configuration from {}", config_path.display());
                let refused_now = match Config::load(config_path) {
                    Err(e) => {
                        // Counted now, or when a running round lets go of
                        // the core: the event loop never waits for a round.
                        refused += 1;
                        if running.is_none() {
                            core.lock().unwrap_or_else(|e| e.into_inner()).reloads_failed += std::mem::take(&mut refused);
                        }
                        error!("reload refused, the running configuration stays: {e}");
                        // READY=1 ends systemd's reload job (RELOADING=1 above).
                        let _ = notify.ready(&format!("reload refused: {e}"));
                        true
                    }
                    Ok(c) if running.is_some() => {
                        info!("configuration valid: applied when the running step (a writeback round) ends");
                        pending = Some(c);
                        false
                    }
                    Ok(c) => {
                        let mut g = core.lock().unwrap_or_else(|e| e.into_inner());
                        apply_reload(&mut g, c, config_path, listen, &mut interval_secs, &mut tick, &sys, &probe_factory);
                        false
                    }
                };
                // RELOADING=1 was sent: READY=1 ends systemd's reload job;
                // a configuration that waits for the running round sends it
                // when it is applied (above), a refused one has sent it.
                if running.is_none() && !refused_now {
                    let _ = notify.ready(&lock(&core));
                }
            }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
        }
    }
    let _ = notify.stopping();
    // A round in progress ends after its current chunk.
    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(r) = running.take() {
        let _ = r.await;
    }
    let mut g = core.lock().unwrap_or_else(|e| e.into_inner());
    g.shutdown();
    g.set_probes(Err(anyhow::anyhow!("stopping"))); // detaches the probes
    drop(g);
    info!("stopped");
    Ok(())
}

/// Attaches probes for a configuration (real or `--fake` ones).
type ProbeFactory<'a> = dyn Fn(&Sysfs, &Config) -> Result<Box<dyn ProbeSource>> + 'a;

/// Adopts a configuration read on SIGHUP.
#[allow(clippy::too_many_arguments)]
fn apply_reload(
    core: &mut DaemonCore,
    c: Config,
    config_path: &Path,
    listen: Option<std::net::SocketAddr>,
    interval_secs: &mut f64,
    tick: &mut tokio::time::Interval,
    sys: &Sysfs,
    probe_factory: &ProbeFactory<'_>,
) {
    if c.metrics_listen != listen {
        warn!("daemon.metrics_listen changed: takes effect at the next restart");
    }
    if c.interval_secs != *interval_secs {
        *interval_secs = c.interval_secs;
        *tick = tokio::time::interval(Duration::from_secs_f64(c.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let probes_before = core.config().probes;
    let new_probes = c.probes;
    match core.reload(c, monotonic_ns()) {
        Ok(changed) => {
            if changed || new_probes != probes_before {
                let c2 = core.config().clone();
                core.set_probes(probe_factory(sys, &c2));
            }
            info!("configuration reloaded from {}", config_path.display());
        }
        Err(e) => error!("reload refused, the running configuration stays: {e:#}"),
    }
}

/// The daemon's start: sets up every unused device whose configuration has
/// a disk size (and maybe `[device.backing]`), as `zramctl setup` would.
/// A device already initialised is left as it is.
pub fn setup_configured(sys: &Sysfs, devices: &[DeviceConfig]) -> Result<()> {
    for d in devices {
        let Some(spec) = &d.setup else { continue };
        let dev = sys.device(&d.name)?;
        if dev.initstate()? {
            tracing::info!(device = %d.name, "already set up: configuration's disksize/backing left as found");
            continue;
        }
        let name = d.name.clone();
        let outcome = ops::setup::setup(sys, &d.name, spec, &mut |p| {
            tracing::info!(device = %name, "{p}");
        })
        .with_context(|| format!("{}: setting up from the configuration", d.name))?;
        tracing::info!(device = %d.name, "{outcome}");
    }
    Ok(())
}

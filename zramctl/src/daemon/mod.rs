//! `zramctl daemon`: the policy daemon.
//!
//! [`core::DaemonCore`] does the work synchronously (and is what the tests
//! drive, on [`crate::fake`] with a fake clock and [`FakeProbes`]); this
//! module is its tokio shell: the step timer, SIGHUP reload, SIGTERM/SIGINT
//! shutdown, sd_notify and the `/metrics` endpoint.

pub mod config;
pub mod core;
pub mod metrics;
pub mod notify;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};
use tracing::{error, info, warn};
use zramctl_common::{LatHist, SLOT_TIME_SHIFT, SlotState, lat_bucket, op};

use self::{
    config::{Config, ProbeMode},
    core::{DaemonCore, ProbeDevice, ProbeSource, ProbeView, PsiFile},
    notify::Notifier,
};
use crate::{
    cli::DaemonArgs,
    ebpf::{ProbeOptions, Probes, monotonic_ns},
    fake::{FAKE_ROOT, FakeDevice, FakeZram},
    hist::LatencyHistogram,
    sysfs::Sysfs,
    top::Role,
};

/// Probes as the daemon reads them.
struct RealProbes {
    probes: Probes,
    roles: Vec<Role>,
    attached_ns: u64,
    flavour: String,
}

impl ProbeSource for RealProbes {
    fn flavour(&self) -> &str {
        &self.flavour
    }

    fn read(&mut self) -> Result<ProbeView, String> {
        let snap = self.probes.snapshot().map_err(|e| e.to_string())?;
        let devices = snap
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| ProbeDevice {
                name: d.spec.name.clone(),
                backing_of: match &self.roles[i] {
                    Role::Backing { of } => Some(of.clone()),
                    _ => None,
                },
                slots: (d.spec.slots > 0).then(|| self.probes.slots(i)),
                latency: d.latency.clone(),
            })
            .collect();
        Ok(ProbeView {
            now_ns: snap.monotonic_ns,
            attached_ns: self.attached_ns,
            devices,
            lat_start_dropped: snap.health.lat_start_dropped,
            lat_unmatched: snap.health.lat_unmatched,
        })
    }
}

/// Attaches the eBPF probes to the configured devices, or says why not.
fn attach_probes(sys: &Sysfs, config: &Config) -> Result<Box<dyn ProbeSource>, String> {
    if config.probes == ProbeMode::Off {
        return Err("probes = \"off\" in the configuration".into());
    }
    let mut specs = Vec::new();
    let mut roles = Vec::new();
    for d in &config.devices {
        let (s, r) = match crate::top::watch_list(sys, Some(&d.name), &[]) {
            Ok(x) => x,
            Err(e) => return Err(format!("{e:#}")),
        };
        for (spec, role) in s.into_iter().zip(r) {
            if !specs
                .iter()
                .any(|x: &crate::ebpf::WatchSpec| (x.major, x.minor) == (spec.major, spec.minor))
            {
                specs.push(spec);
                roles.push(role);
            }
        }
    }
    let probes = Probes::attach(&specs, ProbeOptions::default()).map_err(|e| e.to_string())?;
    let flavour = match probes.flavour() {
        crate::ebpf::Flavour::TpBtf => "tp_btf",
        crate::ebpf::Flavour::RawTp => "raw_tp",
    }
    .to_owned();
    Ok(Box::new(RealProbes {
        probes,
        roles,
        attached_ns: monotonic_ns(),
        flavour,
    }))
}

/// Simulated probes: per-slot access times and latency histograms set by
/// a test (or by `--fake`'s synthetic workload). Clones share state.
#[derive(Clone, Default)]
pub struct FakeProbes {
    state: Arc<Mutex<FakeProbeState>>,
}

#[derive(Default)]
pub struct FakeProbeState {
    pub now_ns: u64,
    pub attached_ns: u64,
    pub devices: Vec<ProbeDevice>,
    /// The next read fails with this.
    pub fail: Option<String>,
    /// `--fake`: advance on every read (real clock, synthetic traffic).
    pub synthetic: bool,
    reads: u64,
}

impl FakeProbes {
    /// A zram device with `slots` slots, all last touched at `attached_ns`,
    /// and its backing device `<name>-backing` with empty histograms.
    pub fn new(zram: &[(&str, usize)], attached_ns: u64) -> Self {
        let mut devices = Vec::new();
        let t = (attached_ns >> SLOT_TIME_SHIFT) as u32;
        for &(name, slots) in zram {
            devices.push(ProbeDevice {
                name: name.into(),
                backing_of: None,
                slots: Some(vec![
                    SlotState {
                        last_time: t,
                        ..SlotState::default()
                    };
                    slots
                ]),
                latency: Some(vec![LatencyHistogram::from(&LatHist::default()); op::COUNT]),
            });
            devices.push(ProbeDevice {
                name: format!("{name}-backing"),
                backing_of: Some(name.into()),
                slots: None,
                latency: Some(vec![LatencyHistogram::from(&LatHist::default()); op::COUNT]),
            });
        }
        FakeProbes {
            state: Arc::new(Mutex::new(FakeProbeState {
                now_ns: attached_ns,
                attached_ns,
                devices,
                ..FakeProbeState::default()
            })),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeProbeState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Marks slots `range` as accessed at `at_ns`.
    pub fn touch(&self, dev: &str, range: std::ops::Range<usize>, at_ns: u64) {
        self.with(|s| {
            if let Some(slots) = s
                .devices
                .iter_mut()
                .find(|d| d.name == dev)
                .and_then(|d| d.slots.as_mut())
            {
                for i in range {
                    if let Some(x) = slots.get_mut(i) {
                        x.last_time = (at_ns >> SLOT_TIME_SHIFT) as u32;
                        x.reads += 1;
                    }
                }
            }
        });
    }

    /// Adds `n` completions of `ns` each to a device's histogram of `op`.
    pub fn complete(&self, dev: &str, o: usize, n: u64, ns: u64) {
        self.with(|s| {
            if let Some(h) = s
                .devices
                .iter_mut()
                .find(|d| d.name == dev)
                .and_then(|d| d.latency.as_mut())
                .and_then(|l| l.get_mut(o))
            {
                h.buckets[lat_bucket(ns)] += n;
                h.count += n;
                h.sum_ns += n * ns;
            }
        });
    }
}

impl ProbeSource for FakeProbes {
    fn flavour(&self) -> &str {
        "fake"
    }

    fn read(&mut self) -> Result<ProbeView, String> {
        let synthetic = self.with(|s| {
            if s.synthetic {
                s.now_ns = monotonic_ns();
                s.reads += 1;
            }
            s.synthetic.then_some((s.now_ns, s.reads))
        });
        if let Some((now, reads)) = synthetic {
            // A hot working set re-read every step, the rest cold; the
            // backing device answers in 0.5-4 ms.
            let names: Vec<(String, bool)> = self.with(|s| {
                s.devices
                    .iter()
                    .map(|d| (d.name.clone(), d.backing_of.is_some()))
                    .collect()
            });
            for (name, backing) in names {
                if backing {
                    self.complete(&name, op::WRITE, 50, 500_000 << (reads % 4));
                    self.complete(&name, op::READ, 5, 200_000);
                } else {
                    self.touch(&name, 0..1024, now);
                    self.complete(&name, op::READ, 1000, 3_000);
                    self.complete(&name, op::WRITE, 400, 6_000);
                }
            }
        }
        self.with(|s| {
            if let Some(e) = s.fail.take() {
                return Err(e);
            }
            Ok(ProbeView {
                now_ns: s.now_ns,
                attached_ns: s.attached_ns,
                devices: s.devices.clone(),
                lat_start_dropped: 0,
                lat_unmatched: 0,
            })
        })
    }
}

/// `--fake`: a simulated zram device per configured name, 64 MiB with a
/// backing device and 12000 stored pages.
fn fake_setup(config: &Config) -> (Sysfs, FakeProbes) {
    let fake = FakeZram::new();
    let mut names = Vec::new();
    for d in &config.devices {
        fake.add(
            &d.name,
            FakeDevice {
                disksize: 64 << 20,
                backing_dev: Some("/dev/fake-backing".into()),
                ..FakeDevice::default()
            },
        );
        fake.store_pages(&d.name, 12_000, 10);
        names.push((d.name.as_str(), (64usize << 20) / 4096));
    }
    let probes = FakeProbes::new(&names, monotonic_ns().saturating_sub(3600 * 1_000_000_000));
    probes.with(|s| s.synthetic = true);
    (Sysfs::new(FAKE_ROOT, fake), probes)
}

fn init_logging() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_env("ZRAMCTL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd the journal adds its own timestamps; no colours there.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let b = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!journald && unsafe { libc::isatty(libc::STDERR_FILENO) } == 1)
        .with_target(false);
    let _ = if journald {
        b.without_time().try_init()
    } else {
        b.try_init()
    };
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(sys: &Sysfs, a: &DaemonArgs) -> Result<()> {
    init_logging();
    let config = Config::load(&a.config)?;
    if a.check {
        println!(
            "{}: valid ({} device{})",
            a.config.display(),
            config.devices.len(),
            if config.devices.len() == 1 { "" } else { "s" }
        );
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(main_loop(sys.clone(), a, config))
}

async fn main_loop(sys: Sysfs, a: &DaemonArgs, config: Config) -> Result<()> {
    let notify = Notifier::from_env().context("NOTIFY_SOCKET")?;
    let (sys, fake_probes) = if a.fake {
        let (s, p) = fake_setup(&config);
        (s, Some(p))
    } else {
        (sys, None)
    };
    // Devices the configuration sets up (disksize, [device.backing]).
    crate::commands::setup_configured(&sys, &config.devices)?;
    let probe_factory = |sys: &Sysfs, c: &Config| -> Result<Box<dyn ProbeSource>, String> {
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
    let mut core = DaemonCore::new(
        sys.clone(),
        config.clone(),
        probes,
        Box::new(PsiFile(config.psi_path.clone())),
        monotonic_ns(),
    )?;
    let page = Arc::new(Mutex::new(String::new()));
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
    let mut tick = tokio::time::interval(Duration::from_secs_f64(config.interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wd_every = notify::watchdog_interval().map(|d| d / 2);
    let mut wd = tokio::time::interval(wd_every.unwrap_or(Duration::from_secs(3600)));
    core.step(monotonic_ns());
    *page.lock().unwrap_or_else(|e| e.into_inner()) = core.metrics();
    if let Err(e) = notify.ready(&core.status_line()) {
        warn!("sd_notify READY failed: {e}");
    }
    info!(
        devices = config.devices.len(),
        interval_secs = config.interval_secs,
        "ready"
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {
                core.step(monotonic_ns());
                if core.take_reattach() && core.config().probes != ProbeMode::Off {
                    // A device was reset or set up again: watch it as it is now.
                    let c = core.config().clone();
                    let p = probe_factory(&sys, &c);
                    match &p {
                        Ok(p) => info!(flavour = p.flavour(), "eBPF probes attached again"),
                        Err(why) => warn!("eBPF probes not used until the devices change again: {why}"),
                    }
                    core.set_probes(p);
                }
                let _ = notify.status(&core.status_line());
            }
            _ = wd.tick(), if wd_every.is_some() => {
                let _ = notify.watchdog();
            }
            _ = hup.recv() => {
                let _ = notify.reloading();
                match Config::load(&a.config) {
                    Err(e) => {
                        core.reloads_failed += 1;
                        error!("reload refused, the running configuration stays: {e}");
                        let _ = notify.status(&format!("reload refused: {e}"));
                    }
                    Ok(c) => {
                        if c.metrics_listen != listen {
                            warn!("daemon.metrics_listen changed: takes effect at the next restart");
                        }
                        if c.interval_secs != core.config().interval_secs {
                            tick = tokio::time::interval(Duration::from_secs_f64(c.interval_secs));
                            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        }
                        let probes_before = core.config().probes;
                        let new_probes = c.probes;
                        match core.reload(c, monotonic_ns()) {
                            Ok(changed) => {
                                if changed || new_probes != probes_before {
                                    let c2 = core.config().clone();
                                    core.set_probes(probe_factory(&sys, &c2));
                                }
                                info!("configuration reloaded from {}", a.config.display());
                            }
                            Err(e) => error!("reload refused, the running configuration stays: {e:#}"),
                        }
                    }
                }
                let _ = notify.ready(&core.status_line());
            }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
        }
        *page.lock().unwrap_or_else(|e| e.into_inner()) = core.metrics();
    }
    let _ = notify.stopping();
    core.shutdown();
    drop(core); // detaches the probes
    info!("stopped");
    Ok(())
}

/// Serves `/metrics` from the last rendered page. Each connection is
/// bounded: 8 KiB of request, 5 s to send it.
async fn serve(listener: TcpListener, page: Arc<Mutex<String>>) {
    loop {
        let (mut sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let page = page.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while buf.len() < 8192 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let req = String::from_utf8_lossy(&buf);
            let first = req.lines().next().unwrap_or("");
            let mut parts = first.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let path = target.split('?').next().unwrap_or("");
            let (status, ctype, body) = match (method, path) {
                ("GET" | "HEAD", "/metrics") => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    page.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                ),
                ("GET" | "HEAD", "/") => (
                    "200 OK",
                    "text/plain; charset=utf-8",
                    "zramctl daemon: metrics at /metrics\n".to_owned(),
                ),
                ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "GET only\n".to_owned(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                sock.write_all(head.as_bytes()).await?;
                if method != "HEAD" {
                    sock.write_all(body.as_bytes()).await?;
                }
                sock.shutdown().await
            })
            .await;
            let _ = peer;
        });
    }
}

#[cfg(test)]
mod tests;

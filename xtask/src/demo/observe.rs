//! What the demo's guest watches: the device's sysfs, swap, a `/metrics`
//! scrape, folded into one [`Tick`] every two seconds.

use std::{
    fs,
    io::{Read as _, Write as _},
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{DEV, PORT, workload::PAGE};

pub(super) fn sh(cmd: &str) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(super) fn say(cmd: &str) -> Result<String> {
    println!("# {cmd}");
    let out = sh(cmd)?;
    if !out.trim().is_empty() {
        println!("{}", out.trim_end());
    }
    Ok(out)
}

pub(super) fn sysfs(attr: &str) -> String {
    fs::read_to_string(format!("/sys/block/{DEV}/{attr}")).unwrap_or_default()
}

pub(super) fn nums(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

pub(super) fn mib(bytes: f64) -> String {
    format!("{:.1}M", bytes / 1048576.0)
}

pub(super) fn scrape() -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", PORT)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The first sample of `name` whose labels include every `k="v"`.
pub(super) fn metric(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().find_map(|l| {
        if l.starts_with('#') {
            return None;
        }
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())?
    })
}

/// Touched slots idle for at least `secs` (the `zramctl_slot_age_slots`
/// buckets whose lower bound is at least `secs`), and all touched slots.
pub(super) fn idle_slots(page: &str, secs: f64) -> Option<(f64, f64)> {
    let mut idle = 0.0;
    let mut all = None;
    for l in page
        .lines()
        .filter(|l| l.starts_with("zramctl_slot_age_slots{"))
    {
        let (series, value) = l.rsplit_once(' ')?;
        let v: f64 = value.parse().ok()?;
        let ge: f64 = series
            .split("age_ge_seconds=\"")
            .nth(1)?
            .split('"')
            .next()?
            .parse()
            .ok()?;
        if ge >= secs {
            idle += v;
        }
        *all.get_or_insert(0.0) += v;
    }
    all.map(|a| (idle, a))
}

/// One observation of the device and the daemon.
#[derive(Clone, Default)]
pub(super) struct Tick {
    pub(super) t: f64,
    pub(super) orig: f64,
    pub(super) compr: f64,
    pub(super) mem_used: f64,
    pub(super) swap_used: f64,
    pub(super) bd_count: u64,
    pub(super) bd_reads: u64,
    pub(super) bd_writes: u64,
    pub(super) batch: u64,
    pub(super) wb_pages: f64,
    pub(super) budget_left: f64,
    pub(super) idle_age: f64,
    pub(super) idle_slots: f64,
    pub(super) refaults: f64,
    pub(super) p99_ms: Option<f64>,
    pub(super) skips_budget: f64,
    pub(super) metrics_bytes: usize,
}

impl Tick {
    /// Compression ratio of what is in RAM: orig_data_size counts
    /// written-back pages too (as upstream's does), so they come off.
    pub(super) fn ram_ratio(&self) -> f64 {
        let in_ram = self.orig - self.bd_count as f64 * PAGE as f64;
        if self.compr > 0.0 && in_ram > 1048576.0 {
            in_ram / self.compr
        } else {
            0.0
        }
    }
}

pub(super) fn swap_used_bytes() -> f64 {
    let m = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |k: &str| {
        m.lines()
            .find_map(|l| {
                l.strip_prefix(k)?
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    (kb("SwapTotal:") - kb("SwapFree:")) * 1024.0
}

pub(super) fn observe(t0: Instant) -> (Tick, Option<String>) {
    let mm = nums(&sysfs("mm_stat"));
    let bd = nums(&sysfs("bd_stat"));
    let page = scrape();
    let g = |name: &str| {
        page.as_deref()
            .and_then(|p| metric(p, name, &[("device", DEV)]))
            .unwrap_or(0.0)
    };
    let idle_age = g("zramctl_idle_age_threshold_seconds");
    let tick = Tick {
        t: t0.elapsed().as_secs_f64(),
        orig: mm.first().copied().unwrap_or(0) as f64,
        compr: mm.get(1).copied().unwrap_or(0) as f64,
        mem_used: mm.get(2).copied().unwrap_or(0) as f64,
        swap_used: swap_used_bytes(),
        bd_count: bd.first().copied().unwrap_or(0),
        bd_reads: bd.get(1).copied().unwrap_or(0),
        bd_writes: bd.get(2).copied().unwrap_or(0),
        batch: sysfs("writeback_batch_size").trim().parse().unwrap_or(0),
        wb_pages: g("zramctl_writeback_pages_total"),
        budget_left: g("zramctl_budget_remaining_bytes"),
        idle_age,
        idle_slots: page
            .as_deref()
            .and_then(|p| idle_slots(p, idle_age))
            .map_or(0.0, |x| x.0),
        refaults: g("zramctl_refaults_total"),
        p99_ms: page
            .as_deref()
            .and_then(|p| metric(p, "zramctl_backing_write_p99_seconds", &[("device", DEV)]))
            .map(|s| s * 1e3),
        skips_budget: page
            .as_deref()
            .and_then(|p| {
                metric(
                    p,
                    "zramctl_writeback_skips_total",
                    &[("device", DEV), ("reason", "budget_spent")],
                )
            })
            .unwrap_or(0.0),
        metrics_bytes: page.as_ref().map_or(0, String::len),
    };
    (tick, page)
}

/// Kills (SIGTERM) a child and waits up to 10 s.
pub(super) fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(super) fn results_dir() -> PathBuf {
    std::env::var_os("ZRAMCTL_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

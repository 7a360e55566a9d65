//! The daemon core on a simulated zram (FakeZram through the sysfs layer),
//! with a fake clock and fake probes.

use std::path::Path;

use super::{
    config::Config,
    core::DaemonCore,
    fake::FakeProbes,
    sources::{PressureSource, ProbeSource, parse_psi_some_avg10},
};
use crate::sysfs::{
    Sysfs,
    fake::{FAKE_ROOT, FakeDevice, FakeZram},
};
use zramctl_common::{SLOT_TIME_SHIFT, op};

const S: u64 = 1_000_000_000;
/// The fake clock starts here (the probes attached an hour before).
const T0: u64 = 10_000 * S;

struct NoPsi;
impl PressureSource for NoPsi {
    fn some_avg10(&mut self) -> anyhow::Result<Option<f64>> {
        Ok(None)
    }
}

const CONFIG: &str = r#"
[daemon]
interval_secs = 10
[policy]
budget_per_day = 0
budget_burst = 1228800   # 300 pages
period_secs = 60
min_interval_secs = 10
idle_age_initial_secs = 600
idle_age_floor_secs = 300
batch_min = 4
batch_max = 64
batch_initial = 32
target_p99_ms = 5
[[device]]
name = "zram0"
"#;

fn config(src: &str) -> Config {
    Config::parse(Path::new("test.toml"), src).unwrap()
}

fn fake(writeback: bool) -> FakeZram {
    let z = FakeZram::new();
    z.add(
        "zram0",
        FakeDevice {
            disksize: 1024 * 4096,
            backing_dev: writeback.then(|| "/dev/loop7".into()),
            ..FakeDevice::default()
        },
    );
    z.store_pages("zram0", 1000, 0);
    z
}

fn core(z: &FakeZram, probes: anyhow::Result<Box<dyn ProbeSource>>) -> DaemonCore {
    core_with(z, probes, CONFIG)
}

/// A core on the fake devices with the configuration `src`.
fn core_with(z: &FakeZram, probes: anyhow::Result<Box<dyn ProbeSource>>, src: &str) -> DaemonCore {
    DaemonCore::new(
        Sysfs::new(FAKE_ROOT, z.clone()),
        config(src),
        probes,
        Box::new(NoPsi),
        T0,
    )
    .unwrap()
}

/// Steps the core at T0 and one minute later, the probes' clock with it.
fn two_steps_a_minute_apart(c: &mut DaemonCore, p: &FakeProbes) {
    for k in 0..=1u64 {
        let t = T0 + k * 60 * S;
        at(p, t);
        c.step(t);
    }
}

fn probes() -> FakeProbes {
    FakeProbes::new(&[("zram0", 1024)], T0 - 3600 * S)
}

fn at(p: &FakeProbes, t: u64) {
    p.with(|s| s.now_ns = t);
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{text}"))
        .parse()
        .unwrap()
}

fn wb_writes(z: &FakeZram) -> Vec<(String, String)> {
    z.writes()
        .into_iter()
        .filter(|(_, a, _)| a.starts_with("writeback") || a == "idle")
        .map(|(_, a, v)| (a, v))
        .collect()
}

/// The pages of the `page_indexes=`/`page_index=` writebacks, in order.
fn pages_written(w: &[(String, String)]) -> Vec<u64> {
    let mut out = Vec::new();
    for (a, v) in w {
        if a != "writeback" {
            continue;
        }
        for tok in v.split_whitespace() {
            if let Some(r) = tok.strip_prefix("page_indexes=") {
                let (x, y) = r.split_once('-').unwrap();
                out.extend(x.parse::<u64>().unwrap()..=y.parse::<u64>().unwrap());
            } else if let Some(i) = tok.strip_prefix("page_index=") {
                out.push(i.parse().unwrap());
            }
        }
    }
    out
}

#[test]
fn writes_back_the_oldest_slots_within_the_budget_through_writeback_limit() {
    let z = fake(true);
    let p = probes();
    let mut c = core(&z, Ok(Box::new(p.clone())));
    // Slots 0-99 are hot: touched at every step.
    for k in 0..=1u64 {
        let t = T0 + k * 60 * S;
        at(&p, t);
        p.touch("zram0", 0..100, t);
        c.step(t);
    }
    // First step not due; at +60 s a period round: threshold 600 -> 540,
    // the 300 oldest (all 3660 s old, ties by index) = 100..=399.
    // In chunks (each a few sysfs writes), in order.
    let w = wb_writes(&z);
    assert_eq!(
        (&w[..2], w.last()),
        (
            &[
                ("writeback_limit".into(), "300".into()),
                ("writeback_limit_enable".into(), "1".into()),
            ][..],
            Some(&("writeback_limit".into(), "0".into()))
        )
    );
    assert_eq!(pages_written(&w), (100..=399).collect::<Vec<u64>>());
    assert_eq!(z.with("zram0", |d| d.bd_writes), 300);
    let m = c.metrics();
    assert_eq!(
        metric(&m, "zramctl_writeback_pages_total{device=\"zram0\"}"),
        300.0
    );
    // Pages only: no second counter of the same thing in bytes.
    assert!(!m.contains("zramctl_writeback_bytes_total"), "{m}");
    assert_eq!(
        metric(&m, "zramctl_budget_remaining_bytes{device=\"zram0\"}"),
        0.0
    );
    assert_eq!(
        metric(&m, "zramctl_idle_age_threshold_seconds{device=\"zram0\"}"),
        540.0
    );
    assert_eq!(
        metric(
            &m,
            "zramctl_writeback_rounds_total{device=\"zram0\",trigger=\"period\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "zramctl_backing_written_bytes_total{device=\"zram0\"}"),
        300.0 * 4096.0
    );
    assert_eq!(metric(&m, "zramctl_probe_up"), 1.0);
    // The budget is spent: later periods write nothing more.
    for k in 2..10u64 {
        let t = T0 + k * 60 * S;
        at(&p, t);
        c.step(t);
    }
    assert_eq!(z.with("zram0", |d| d.bd_writes), 300, "budget exceeded");
    let m = c.metrics();
    assert!(
        metric(
            &m,
            "zramctl_writeback_skips_total{device=\"zram0\",reason=\"budget_spent\"}"
        ) >= 1.0
    );
    // SIGTERM path: the limit goes back to how it was found (off).
    c.shutdown();
    let last = z.writes();
    assert_eq!(
        last[last.len() - 2..],
        [
            ("zram0".into(), "writeback_limit".into(), "0".into()),
            ("zram0".into(), "writeback_limit_enable".into(), "0".into()),
        ]
    );
}

/// Found on rzram in the VM: on a device set up after the probes attached,
/// the never-touched slots (the "oldest") are empty, and rounds of them
/// wrote nothing for half a minute while real cold pages waited.
#[test]
fn untouched_slots_are_left_out_when_touched_ones_hold_all_the_data() {
    let z = fake(true);
    // 100 pages stored, all touched after the attach (reads count too).
    z.with("zram0", |d| {
        d.pages.iter_mut().skip(100).for_each(|p| p.stored = false)
    });
    let p = probes();
    p.touch("zram0", 0..100, T0 - 1000 * S);
    let mut c = core(&z, Ok(Box::new(p.clone())));
    for k in 0..=1u64 {
        let t = T0 + k * 60 * S;
        at(&p, t);
        c.step(t);
    }
    assert_eq!(
        pages_written(&wb_writes(&z)),
        (0..=99).collect::<Vec<u64>>(),
        "only the slots that hold data"
    );
    assert_eq!(z.with("zram0", |d| d.bd_writes), 100);
}

#[test]
fn a_reset_and_new_setup_ask_for_probes_again_and_resume() {
    let z = fake(true);
    let p = probes();
    let mut c = core(&z, Ok(Box::new(p.clone())));
    at(&p, T0);
    c.step(T0);
    assert!(!c.take_reattach());
    let dev = Sysfs::new(FAKE_ROOT, z.clone()).device("zram0").unwrap();
    dev.reset().unwrap();
    let t = T0 + 60 * S;
    at(&p, t);
    c.step(t);
    assert!(c.take_reattach(), "reset seen");
    assert!(!c.take_reattach(), "once");
    let m = c.metrics();
    assert_eq!(metric(&m, "zramctl_initialized{device=\"zram0\"}"), 0.0);
    assert_eq!(
        metric(&m, "zramctl_writeback_active{device=\"zram0\"}"),
        0.0
    );
    // Set up again, larger, with data: one step notices, the next writes back.
    dev.set_backing_dev(Path::new("/dev/loop6")).unwrap();
    dev.set_disksize(2048 * 4096).unwrap();
    z.store_pages("zram0", 200, 0);
    let t = T0 + 120 * S;
    at(&p, t);
    c.step(t);
    assert!(c.take_reattach(), "new setup seen");
    c.set_probes(Err(anyhow::anyhow!("not attached in this test")));
    for k in 3..6u64 {
        let t = T0 + k * 60 * S;
        c.step(t);
    }
    assert!(z.with("zram0", |d| d.bd_writes) > 0, "{:?}", wb_writes(&z));
    let m = c.metrics();
    assert_eq!(
        metric(&m, "zramctl_writeback_active{device=\"zram0\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "zramctl_disksize_bytes{device=\"zram0\"}"),
        2048.0 * 4096.0
    );
}

#[test]
fn batch_size_follows_backing_latency_and_stays_in_bounds() {
    let z = fake(true);
    let p = probes();
    let mut c = core(&z, Ok(Box::new(p.clone())));
    // 50 ms p99 against a 5 ms target: halve, down to batch_min.
    let mut seen = Vec::new();
    for k in 0..8u64 {
        let t = T0 + k * 10 * S;
        at(&p, t);
        p.complete("zram0-backing", op::WRITE, 100, 50_000_000);
        c.step(t);
        seen.push(z.with("zram0", |d| d.batch));
    }
    assert_eq!(seen, [16, 8, 4, 4, 4, 4, 4, 4]);
    // Fast completions: grows again (after the cooldown), never above 64.
    for k in 8..40u64 {
        let t = T0 + k * 10 * S;
        at(&p, t);
        p.complete("zram0-backing", op::WRITE, 100, 100_000);
        c.step(t);
        let b = z.with("zram0", |d| d.batch);
        assert!((4..=64).contains(&b), "{b}");
    }
    assert_eq!(z.with("zram0", |d| d.batch), 64);
    let m = c.metrics();
    // The backing device's latency, labelled with the zram device it
    // backs, in 9 buckets (every second power of two, 131 us to 8.6 s).
    assert!(m.contains("zramctl_backing_latency_seconds_bucket{device=\"zram0\",op=\"write\",le=\"0.000131072\"}"), "{m}");
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with(
                "zramctl_backing_latency_seconds_bucket{device=\"zram0\",op=\"write\""
            ))
            .count(),
        10,
        "{m}"
    );
    assert!(!m.contains("role=") && !m.contains("zram=\""), "{m}");
    assert_eq!(
        metric(&m, "zramctl_writeback_batch_size{device=\"zram0\"}"),
        64.0
    );
}

#[test]
fn eio_backs_off_and_is_counted() {
    let z = fake(true);
    let p = probes();
    let mut c = core(&z, Ok(Box::new(p.clone())));
    z.inject("writeback", libc::EIO);
    let t = T0 + 60 * S;
    at(&p, t);
    c.step(t);
    let m = c.metrics();
    assert_eq!(
        metric(
            &m,
            "zramctl_writeback_errors_total{device=\"zram0\",kind=\"io\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "zramctl_backoff_seconds{device=\"zram0\"}"),
        10.0
    );
    // During the backoff nothing is tried, even when due.
    let n = z.writes().len();
    at(&p, t + 5 * S);
    c.step(t + 5 * S);
    assert_eq!(z.writes().len(), n);
    // Afterwards it works again, and the limit was closed after the failure.
    at(&p, t + 130 * S);
    c.step(t + 130 * S);
    assert_eq!(z.with("zram0", |d| d.bd_writes), 300);
}

#[test]
fn without_probes_it_uses_kernel_idle_marking_and_learns_missing_actime() {
    let z = fake(true);
    z.with("zram0", |d| d.actime = false);
    let mut c = core(&z, Err(anyhow::anyhow!("no BTF")));
    c.step(T0 + 60 * S);
    // `idle 540` is refused (no CONFIG_ZRAM_TRACK_ENTRY_ACTIME) ...
    assert_eq!(z.with("zram0", |d| d.bd_writes), 0);
    // ... so the next rounds mark all, then write back what stayed idle.
    c.step(T0 + 120 * S);
    c.step(T0 + 1000 * S);
    let w = wb_writes(&z);
    // Stopped by the limit (EIO from the kernel, which is the budget working).
    let marks = w
        .iter()
        .filter(|x| *x == &("idle".to_owned(), "all".to_owned()))
        .count();
    assert_eq!(marks, 2, "{w:?}");
    assert_eq!(z.with("zram0", |d| d.bd_writes), 300);
    // In chunks cut by writeback_limit (so SIGTERM is served between
    // them), each with its `writeback idle` (refused with EIO once the
    // chunk is spent, so not in the fake's log): 8, 16, ... up to the
    // round's 300 pages, then the re-marking.
    let round = w
        .iter()
        .rposition(|x| *x == ("writeback_limit_enable".to_owned(), "1".to_owned()))
        .unwrap();
    let limits: Vec<u64> = w[round + 1..]
        .iter()
        .take_while(|x| x.0 == "writeback_limit")
        .map(|x| x.1.parse().unwrap())
        .collect();
    assert!(limits.len() > 1 && limits[0] == 8, "{limits:?} in {w:?}");
    assert_eq!(limits.iter().sum::<u64>(), 300, "{limits:?}");
    let m = c.metrics();
    assert_eq!(metric(&m, "zramctl_probe_up"), 0.0);
    assert_eq!(
        metric(
            &m,
            "zramctl_writeback_errors_total{device=\"zram0\",kind=\"io\"}"
        ),
        0.0
    );
    assert!(m.contains("zramctl_probe_info{flavour=\"none\"} 1"), "{m}");
}

#[test]
fn a_device_without_backing_is_only_watched() {
    let z = fake(false);
    let mut c = core(&z, Err(anyhow::anyhow!("off")));
    for k in 0..5 {
        c.step(T0 + k * 100 * S);
    }
    assert!(z.writes().is_empty(), "{:?}", z.writes());
    let m = c.metrics();
    assert_eq!(
        metric(&m, "zramctl_writeback_active{device=\"zram0\"}"),
        0.0
    );
    assert_eq!(
        metric(&m, "zramctl_orig_data_bytes{device=\"zram0\"}"),
        1000.0 * 4096.0
    );
    assert!(
        c.status_line().contains("no backing device"),
        "{}",
        c.status_line()
    );
}

#[test]
fn reload_keeps_state_and_a_bad_device_keeps_the_old_config() {
    let z = fake(true);
    let mut c = core(&z, Err(anyhow::anyhow!("off")));
    c.step(T0 + 60 * S);
    let bad = CONFIG.replace(
        "name = \"zram0\"",
        "name = \"zram0\"\n[[device]]\nname = \"zram5\"",
    );
    let e = c.reload(config(&bad), T0 + 70 * S).unwrap_err();
    assert!(e.to_string().contains("zram5"), "{e}");
    assert_eq!(c.config().devices.len(), 1);
    assert_eq!(c.reloads_failed, 1);
    let good = CONFIG.replace("batch_max = 64", "batch_max = 8");
    assert!(
        !c.reload(config(&good), T0 + 80 * S).unwrap(),
        "same devices"
    );
    c.step(T0 + 90 * S);
    assert_eq!(z.with("zram0", |d| d.batch), 8);
    let m = c.metrics();
    assert_eq!(
        metric(&m, "zramctl_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "zramctl_config_reloads_total{result=\"error\"}"),
        1.0
    );
    // The budget spent before the reload is still spent.
    assert_eq!(
        metric(&m, "zramctl_budget_spent_bytes_total{device=\"zram0\"}"),
        300.0 * 4096.0
    );
}

#[test]
fn metrics_are_well_formed_and_complete() {
    let z = fake(true);
    let p = probes();
    let mut c = core(&z, Ok(Box::new(p.clone())));
    p.complete("zram0", op::READ, 10, 3000);
    at(&p, T0);
    c.step(T0);
    let m = c.metrics();
    for name in [
        "zramctl_orig_data_bytes",
        "zramctl_compr_data_bytes",
        "zramctl_mem_used_bytes",
        "zramctl_mem_limit_bytes",
        "zramctl_mem_used_max_bytes",
        "zramctl_same_pages",
        "zramctl_pages_compacted_total",
        "zramctl_huge_pages",
        "zramctl_huge_pages_stored_total",
        "zramctl_failed_reads_total",
        "zramctl_failed_writes_total",
        "zramctl_invalid_io_total",
        "zramctl_notify_free_total",
        "zramctl_backing_bytes",
        "zramctl_backing_read_bytes_total",
        "zramctl_backing_written_bytes_total",
        "zramctl_writeback_batch_size",
        "zramctl_budget_remaining_bytes",
        "zramctl_idle_age_threshold_seconds",
        "zramctl_refaults_total",
        "zramctl_slot_age_slots",
        "zramctl_backing_latency_seconds",
        "zramctl_probe_up",
        "zramctl_budget_rate_bytes_per_second",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "zramctl_writeback_errors_total",
    ] {
        assert!(m.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    // Every sample line: name{labels} value, and each family's TYPE once.
    let mut types = std::collections::HashSet::new();
    for l in m.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            assert!(
                types.insert(rest.split(' ').next().unwrap().to_owned()),
                "{l}"
            );
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        let (_, v) = l.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok() || v == "+Inf", "{l}");
    }
    // 1024 slots, all touched an hour ago (3600 s is in the 2048-4096 bucket).
    assert!(
        m.contains("zramctl_slot_age_slots{device=\"zram0\",age_ge_seconds=\"2048\",age_lt_seconds=\"4096\"} 1024"),
        "{m}"
    );
    assert!(
        m.contains("zramctl_slot_age_slots{device=\"zram0\",age_ge_seconds=\"1024\",age_lt_seconds=\"2048\"} 0"),
        "{m}"
    );
    // Not cumulative: the buckets add up to the touched slots.
    let sum: f64 = m
        .lines()
        .filter(|l| l.starts_with("zramctl_slot_age_slots{device=\"zram0\""))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(sum, 1024.0, "{m}");
}

#[test]
fn psi_lines() {
    let s = "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=1.00 avg60=0 avg300=0 total=1\n";
    assert_eq!(parse_psi_some_avg10(s).unwrap(), 12.5);
    assert!(parse_psi_some_avg10("full avg10=1").is_err());
    assert!(parse_psi_some_avg10("some avg10=x").is_err());
}

/// Issue 9 (daemon chaos): a daemon killed between opening the writeback
/// limit and putting it back leaves it on; the next daemon must restore the
/// limit the first one found, not the half-open one.
#[test]
fn a_killed_daemons_limit_is_restored_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let z = fake(true);
    let p = probes();
    let mut c = core(&z, Ok(Box::new(p.clone())));
    c.set_limit_record_dir(dir.path());
    for k in 0..=1u64 {
        let t = T0 + k * 60 * S;
        at(&p, t);
        c.step(t);
    }
    assert!(z.with("zram0", |d| d.bd_writes) > 0, "a round ran");
    let on = |z: &FakeZram| z.with("zram0", |d| d.limit_enable);
    assert!(on(&z), "the round left the limit switched on");
    // SIGKILL: no shutdown(). The next daemon starts on the device as left.
    drop(c);
    let mut c = core(&z, Ok(Box::new(p.clone())));
    c.set_limit_record_dir(dir.path());
    let t = T0 + 120 * S;
    at(&p, t);
    c.step(t);
    c.shutdown();
    assert!(
        !on(&z),
        "the limit is off again, as the first daemon found it"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the record is gone once restored"
    );
}

#[test]
fn a_cancelled_round_stops_before_its_next_chunk_and_closes_the_limit() {
    let z = fake(true);
    let p = probes();
    let mut c = core(&z, Ok(Box::new(p.clone())));
    at(&p, T0);
    c.step(T0);
    // Shutdown asked for: the round that is due writes nothing more.
    c.cancel_handle()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let t = T0 + 60 * S;
    at(&p, t);
    c.step(t);
    let w = wb_writes(&z);
    assert!(pages_written(&w).is_empty(), "{w:?}");
    assert_eq!(
        w.last(),
        Some(&("writeback_limit".into(), "0".into())),
        "the limit is closed after the stopped round: {w:?}"
    );
    assert_eq!(z.with("zram0", |d| d.bd_writes), 0);
}

/// A scrape while a step holds the core is served the last page; that page
/// is rendered again after each step that ran a round. Before, it was the
/// page of the last scrape that found the core free: with 1 s steps and
/// rounds of a second or more, `/metrics` showed the first step's zeros for
/// a whole run (daemon_vm's budget test saw 0 pages vs bd_writes 3491).
#[test]
fn metrics_scraped_during_a_step_show_the_last_round() {
    use std::sync::{Arc, Mutex};
    let z = fake(true);
    let p = probes();
    let core = Arc::new(Mutex::new(core(&z, Ok(Box::new(p.clone())))));
    let page = super::server::Page::new(core.clone());
    let pages = |text: &str| metric(text, "zramctl_writeback_pages_total{device=\"zram0\"}");
    assert_eq!(pages(&page.render()), 0.0);
    for k in 0..=1u64 {
        let t = T0 + k * 60 * S;
        at(&p, t);
        p.touch("zram0", 0..100, t);
        let mut g = core.lock().unwrap();
        g.step(t);
        // Scraped while the step holds the core.
        assert_eq!(pages(&page.render()), 0.0, "the page before the round");
        page.after_step(&g);
    }
    let _held = core.lock().unwrap();
    assert_eq!(pages(&page.render()), 300.0, "the page of the round");
}

/// `round_huge_age_factor`: a round starts with `idle <threshold x factor>`
/// and `writeback huge_idle` under the round's limit, then the age-chosen
/// pages take what is left of it.
#[test]
fn a_round_writes_huge_pages_first_at_their_younger_age() {
    let z = FakeZram::new();
    z.add(
        "zram0",
        FakeDevice {
            disksize: 1024 * 4096,
            backing_dev: Some("/dev/loop7".into()),
            ..FakeDevice::default()
        },
    );
    z.store_pages("zram0", 1000, 10); // 100 huge pages
    let p = probes();
    let src = CONFIG.replace("[[device]]", "round_huge_age_factor = 0.5\n[[device]]");
    let mut c = core_with(&z, Ok(Box::new(p.clone())), &src);
    two_steps_a_minute_apart(&mut c, &p);
    let w = wb_writes(&z);
    // Threshold 600 -> 540 s at the round: huge pages idle 270 s go first.
    let i = w
        .iter()
        .position(|x| *x == ("idle".into(), "270".into()))
        .unwrap_or_else(|| panic!("{w:?}"));
    assert_eq!(w[i + 1], ("writeback".into(), "huge_idle".into()));
    assert!(w[i + 2].1.starts_with("page_index"), "{w:?}");
    // The round's limit (300 pages) holds for both: 100 huge, 200 more.
    assert_eq!(z.with("zram0", |d| d.bd_writes), 300);
    assert_eq!(pages_written(&w)[0], 0, "then the oldest by eBPF age");
    // 0 turns the pass off; out of range is an error naming the key.
    let off = CONFIG.replace("[[device]]", "round_huge_age_factor = 0\n[[device]]");
    assert_eq!(config(&off).devices[0].policy.round.huge_age_factor, None);
    let bad = CONFIG.replace("[[device]]", "round_huge_age_factor = 2\n[[device]]");
    let e = Config::parse(Path::new("test.toml"), &bad).unwrap_err();
    assert!(e.to_string().contains("round_huge_age_factor"), "{e}");
}

/// `round_reread_age_factor` (issue 17): the daemon ranks its eBPF
/// candidates with the policy core's `ranked_age`: a slot read before
/// ages that many times slower. 100 pages stored in slots 0-99, read
/// 1000 s ago; slots 100-199 written 800 s ago, never read; threshold
/// 600 s. Without the key the read slots are the oldest and go first; at
/// 4 they count 250 s and stay.
#[test]
fn read_back_slots_age_slower_with_round_reread_age_factor() {
    let run = |src: &str| {
        let z = fake(true);
        z.with("zram0", |d| {
            d.pages.iter_mut().skip(200).for_each(|p| p.stored = false)
        });
        let p = probes();
        p.touch("zram0", 0..100, T0 - 1000 * S);
        p.with(|s| {
            for x in &mut s.slot_states[0].1[100..200] {
                x.last_time = ((T0 - 800 * S) >> SLOT_TIME_SHIFT) as u32;
                x.writes = 1;
            }
        });
        let mut c = core_with(&z, Ok(Box::new(p.clone())), src);
        two_steps_a_minute_apart(&mut c, &p);
        pages_written(&wb_writes(&z))
    };
    let plain = run(CONFIG);
    assert_eq!(plain.len(), 200, "{plain:?}");
    let src = CONFIG.replace("[[device]]", "round_reread_age_factor = 4\n[[device]]");
    assert_eq!(
        config(&src).devices[0].policy.round.reread_age_factor,
        Some(4.0)
    );
    let w = run(&src);
    assert_eq!(
        w,
        (100..200).collect::<Vec<u64>>(),
        "only the never-read slots"
    );
    // 1 turns it off; below 1 is an error naming the key.
    let off = CONFIG.replace("[[device]]", "round_reread_age_factor = 1\n[[device]]");
    assert_eq!(config(&off).devices[0].policy.round.reread_age_factor, None);
    let bad = CONFIG.replace("[[device]]", "round_reread_age_factor = 0.5\n[[device]]");
    let e = Config::parse(Path::new("test.toml"), &bad).unwrap_err();
    assert!(e.to_string().contains("round_reread_age_factor"), "{e}");
    let on = CONFIG.replace("[[device]]", "idle_age_mature_evidence = true\n[[device]]");
    assert!(config(&on).devices[0].policy.round.mature_evidence);
    assert!(!config(CONFIG).devices[0].policy.round.mature_evidence);
}

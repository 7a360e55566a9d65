//! VM tests of the eBPF programs on rzram's own tracepoints
//! (`rzram_slot_access`, `rzram_wb_submit`, `rzram_wb_complete`,
//! `rzram_bd_read`), through zramctl's loader: per-slot access counts of a
//! known I/O pattern, writeback completions and their latency histogram
//! against `bd_stat`, refaults and the time since their writeback, errors
//! of a failing backing device (dm `error`), and `zramctl top --once
//! --json` on rzram. Per-event costs (kernel BPF stats) are printed, never
//! asserted. They need root, our 7.3 kernel, rzram.ko and the scratch disk,
//! so they are `#[ignore]`d on the host and run inside the VM by
//! `cargo xtask vm-test`.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use zramctl::{
    probes::hist::RzramStats,
    probes::{LatencyKind, ProbeOptions, Probes, WatchSpec},
};
use zramctl_common::SlotState;
use zramctl_tests::{
    DmSlice, PAGE, bd_stat, discard_pages, drop_caches, interrupt_and_collect, load_rzram,
    read_bytes_direct, read_pages_direct, sysfs_read, sysfs_write, write_pages_direct, zramctl_bin,
};

const DEV: &str = "rzram1";
const DISK_PAGES: u64 = 16384; // 64 MiB
/// The backing device: a dm slice of the scratch disk's first MiBs, so a
/// test can swap its table for dm's `error` target under the live device.
const BACKING_MIB: u64 = 64;

fn dev_path() -> PathBuf {
    PathBuf::from(format!("/dev/{DEV}"))
}

/// rzram1 set up over a [`DmSlice`]; reset (before the backing goes) when
/// dropped.
struct Dev {
    backing: DmSlice,
}

impl Drop for Dev {
    fn drop(&mut self) {
        for _ in 0..50 {
            if sysfs_write(DEV, "reset", "1").is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn setup() -> (Dev, WatchSpec) {
    load_rzram();
    let _ = sysfs_write(DEV, "reset", "1");
    let backing = DmSlice::linear("ebpf-rz", 0, BACKING_MIB);
    sysfs_write(DEV, "backing_dev", backing.path.to_str().unwrap())
        .unwrap_or_else(|e| panic!("{DEV}: backing_dev <- {:?}: errno {e}", backing.path));
    sysfs_write(DEV, "disksize", &(DISK_PAGES * PAGE as u64).to_string()).unwrap();
    let numbers = sysfs_read(DEV, "dev");
    let (major, minor) = numbers.trim().split_once(':').unwrap();
    let spec = WatchSpec {
        name: DEV.into(),
        major: major.parse().unwrap(),
        minor: minor.parse().unwrap(),
        slots: DISK_PAGES as u32,
        latency: Some(LatencyKind::Bio),
        rzram: true,
    };
    (Dev { backing }, spec)
}

fn attach(spec: &WatchSpec) -> Probes {
    let p = Probes::attach(
        std::slice::from_ref(spec),
        ProbeOptions {
            flavour: None,
            stats: true,
            cost_floor: false,
        },
    )
    .expect("attaching the probes");
    assert_eq!(p.rzram_status(), Ok(()), "rzram's programs attach");
    p
}

fn fields(attr: &str) -> Vec<u64> {
    sysfs_read(DEV, attr)
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect()
}

/// io_stat's failed_writes.
fn failed_writes() -> u64 {
    fields("io_stat")[1]
}

fn writeback() -> Result<(), i32> {
    sysfs_write(DEV, "idle", "all").unwrap();
    sysfs_write(DEV, "writeback", "idle")
}

fn rz(probes: &Probes) -> RzramStats {
    let snap = probes.snapshot().unwrap();
    snap.devices[0].rzram.clone().expect("rzram stats")
}

fn print_costs(label: &str, probes: &Probes) {
    for c in probes.costs().unwrap() {
        println!(
            "cost [{label}] {} ({}): {} runs, {}",
            c.program,
            c.tracepoint,
            c.run_count,
            c.ns_per_event()
                .map(|n| format!("{n:.0} ns/event"))
                .unwrap_or_else(|| "no runs".into())
        );
    }
}

const SEED: u64 = 61;
/// Pages written, read back before writeback, discarded, refaulted.
const WRITTEN: u64 = 256;
const READ: u64 = 64;
const DISCARD_FIRST: u64 = 224;
const REFAULTED: u64 = 48;

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn slot_accesses_writeback_and_refaults_are_counted_exactly() {
    let (_dev, spec) = setup();
    let probes = attach(&spec);
    let path = dev_path();
    // The I/O pattern: every page written once, the first READ read once,
    // the tail discarded.
    write_pages_direct(&path, SEED, 0, WRITTEN).unwrap();
    assert!(read_pages_direct(&path, SEED, 0, READ).unwrap().is_empty());
    discard_pages(&path, DISCARD_FIRST, WRITTEN - DISCARD_FIRST).unwrap();
    let stored = DISCARD_FIRST;

    let before = bd_stat(DEV);
    let t = Instant::now();
    writeback().unwrap();
    println!("writeback of {stored} pages: {:?}", t.elapsed());
    let after = bd_stat(DEV);
    let written_back = after.2 - before.2;
    assert_eq!(written_back, stored, "bd_stat {before:?} -> {after:?}");
    let s = rz(&probes);
    println!("after writeback: {s:?}");
    assert_eq!(s.counts.wb_completed, written_back, "{s:?}");
    assert_eq!(s.counts.wb_submitted, written_back, "{s:?}");
    assert_eq!(s.counts.wb_errors, 0, "{s:?}");
    assert_eq!(s.wb_latency.count, written_back);
    assert_eq!(s.wb_latency.buckets.iter().sum::<u64>(), written_back);
    assert!(s.wb_latency.percentile(0.5).unwrap() > 0.0);
    assert_eq!(s.counts.refaults, 0);
    // Every written-back slot has its writeback time, the others none.
    let wb = probes.wb_times(0).unwrap();
    assert_eq!(wb.len() as u64, DISK_PAGES);
    for (k, &t) in wb.iter().enumerate() {
        assert_eq!(t != 0, (k as u64) < stored, "slot {k}: wb time {t}");
    }

    // Refaults: read written-back pages again from the device (O_DIRECT,
    // one bio per page, after dropping caches anyway).
    drop_caches();
    let before_reads = bd_stat(DEV).1;
    for p in 0..REFAULTED {
        assert!(
            read_pages_direct(&path, SEED, p, 1).unwrap().is_empty(),
            "page {p} intact"
        );
    }
    let refaults = bd_stat(DEV).1 - before_reads;
    assert_eq!(refaults, REFAULTED, "bd_reads delta");
    let s = rz(&probes);
    println!("after refaults: {s:?}");
    assert_eq!(s.counts.refaults, refaults, "{s:?}");
    assert_eq!(s.counts.refault_errors, 0);
    assert_eq!(s.counts.refaults_no_wb_time, 0);
    assert_eq!(s.refault_age_us.count, refaults, "every refault has an age");
    assert_eq!(s.bd_read_latency.count, refaults);
    let age = s.refault_age_us.percentile(1.0).unwrap();
    assert!(
        age < 600e6,
        "refault ages are since the writeback: {age} us"
    );

    // Slot accesses, exactly the pattern: from rzram's tracepoint only
    // (block_bio_queue leaves rzram's slots alone), writeback not counted.
    assert_eq!(s.counts.slot_writes, WRITTEN, "{s:?}");
    assert_eq!(s.counts.slot_reads, READ + REFAULTED, "{s:?}");
    assert_eq!(s.counts.slot_frees, WRITTEN - DISCARD_FIRST, "{s:?}");
    assert_eq!(s.counts.untracked, 0);
    let slots = probes.slots(0);
    assert_eq!(slots.len() as u64, DISK_PAGES);
    for (k, slot) in slots.iter().enumerate() {
        let k = k as u64;
        let want = if k < WRITTEN {
            (
                u32::from(k < READ) + u32::from(k < REFAULTED),
                1,
                u32::from(k >= DISCARD_FIRST),
            )
        } else {
            (0, 0, 0)
        };
        let SlotState {
            last_time,
            reads,
            writes,
            discards,
        } = *slot;
        assert_eq!((reads, writes, discards), want, "slot {k}: {slot:?}");
        assert_eq!(last_time != 0, k < WRITTEN, "slot {k}: {slot:?}");
    }
    // block_bio_queue still counts rzram's bios and pages.
    let snap = probes.snapshot().unwrap();
    let access = snap.devices[0].access.unwrap();
    assert_eq!(access.pages.write, WRITTEN, "{access:?}");
    assert_eq!(access.pages.read, READ + REFAULTED, "{access:?}");
    assert_eq!(access.pages.discard, WRITTEN - DISCARD_FIRST, "{access:?}");
    print_costs("exact", &probes);
    for c in probes.costs().unwrap() {
        if c.program.starts_with("rz_") {
            assert!(c.run_count > 0, "{c:?}");
        }
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn a_failing_backing_device_counts_errors() {
    const PAGES: u64 = 64;
    let (dev, spec) = setup();
    let probes = attach(&spec);
    let path = dev_path();
    write_pages_direct(&path, SEED, 0, PAGES).unwrap();
    let before = (bd_stat(DEV), failed_writes());
    dev.backing.fail_all_io();
    assert_eq!(writeback(), Err(libc::EIO), "writeback to a failing disk");
    let after = (bd_stat(DEV), failed_writes());
    let s = rz(&probes);
    println!("failing writes: {before:?} -> {after:?}: {s:?}");
    assert_eq!(after.0.2, before.0.2, "nothing written back");
    assert!(s.counts.wb_errors > 0, "{s:?}");
    assert_eq!(
        s.counts.wb_errors,
        after.1 - before.1,
        "io_stat failed_writes"
    );
    assert_eq!(s.counts.wb_completed, s.counts.wb_errors, "{s:?}");
    assert_eq!(s.counts.wb_submitted, s.counts.wb_completed, "{s:?}");
    assert_eq!(s.wb_latency.count, s.counts.wb_completed);
    assert!(probes.wb_times(0).unwrap().iter().all(|&t| t == 0));
    let errors = s.counts.wb_errors;

    // A healthy disk again: all of them go, errors stay what they were.
    dev.backing.restore();
    assert_eq!(writeback(), Ok(()));
    let s = rz(&probes);
    assert_eq!(bd_stat(DEV).2 - before.0.2, PAGES);
    assert_eq!(s.counts.wb_written(), PAGES, "{s:?}");
    assert_eq!(s.counts.wb_errors, errors, "{s:?}");

    // Failing reads of written-back pages: refaults with errors.
    dev.backing.fail_all_io();
    drop_caches();
    let reads = bd_stat(DEV).1;
    let r = read_bytes_direct(&path, 0, 1);
    assert_eq!(r.err().and_then(|e| e.raw_os_error()), Some(libc::EIO));
    dev.backing.restore();
    let s = rz(&probes);
    assert_eq!(s.counts.refaults, bd_stat(DEV).1 - reads, "{s:?}");
    assert!(s.counts.refault_errors >= 1, "{s:?}");
    assert_eq!(s.counts.refault_errors, s.counts.refaults, "{s:?}");
    print_costs("errors", &probes);
}

/// `zramctl top rzram1 --once --json`: the writeback and refault fields,
/// ended early by SIGINT once the workload is done.
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn top_once_json_shows_rzram_writeback_and_refaults() {
    const PAGES: u64 = 32;
    const REFAULTS: u64 = 8;
    let (_dev, _spec) = setup();
    let path = dev_path();
    write_pages_direct(&path, SEED, 0, PAGES).unwrap();
    let mut child = Command::new(zramctl_bin())
        .args(["top", DEV, "--once", "--json", "--interval", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running zramctl top");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("watching") {}
    assert!(line.contains("watching"), "zramctl top: {line}");
    let before = bd_stat(DEV);
    writeback().unwrap();
    drop_caches();
    for p in 0..REFAULTS {
        assert!(read_pages_direct(&path, SEED, p, 1).unwrap().is_empty());
    }
    let after = bd_stat(DEV);
    let out = interrupt_and_collect(&mut child);
    assert!(child.wait().unwrap().success());
    let v: serde_json::Value = serde_json::from_str(&out).expect("top --json output");
    println!("{out}");
    assert_eq!(v["rzram_probes"], "attached", "{v:#}");
    let d = &v["devices"][0];
    assert_eq!(d["name"], DEV);
    let r = &d["rzram"];
    assert_eq!(r["total"]["wb_completed"], after.2 - before.2, "{v:#}");
    assert_eq!(r["interval"]["wb_completed"], PAGES, "{v:#}");
    assert_eq!(r["total"]["wb_errors"], 0, "{v:#}");
    assert_eq!(r["wb_latency"]["count"], PAGES, "{v:#}");
    assert!(r["wb_latency"]["p99_ns"].as_f64().unwrap() > 0.0, "{v:#}");
    assert_eq!(r["total"]["refaults"], after.1 - before.1, "{v:#}");
    assert_eq!(r["total"]["refaults"], REFAULTS, "{v:#}");
    assert_eq!(r["refault_age"]["count"], REFAULTS, "{v:#}");
    assert!(
        r["refault_age"]["p50_secs"].as_f64().unwrap() > 0.0,
        "{v:#}"
    );
    assert_eq!(r["total"]["slot_reads"], REFAULTS, "{v:#}");
    let progs: Vec<&str> = v["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["program"].as_str())
        .collect();
    for p in [
        "rz_slot_access",
        "rz_wb_submit",
        "rz_wb_complete",
        "rz_bd_read",
    ] {
        assert!(progs.contains(&p), "{p} in {progs:?}");
    }
}

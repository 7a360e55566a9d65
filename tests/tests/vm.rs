//! VM integration tests: upstream C zram in our Linux 7.3, driven by the real
//! zramctl binary. They need root, a kernel with CONFIG_ZRAM_WRITEBACK and a
//! spare backing disk, so they are `#[ignore]`d on the host and run inside
//! the VM by `cargo xtask vm-test` (which passes `--ignored`).
//!
//! `cargo xtask vm-test` runs them twice: on upstream zram0, and unchanged
//! on rzram0 (`ZRAMCTL_VM_DEVICE=rzram0`): same ABI, same results.

use std::path::{Path, PathBuf};

use zramctl_tests::{drop_caches, interrupt_and_collect, verify_pages, write_pages, zramctl};

/// The device under test: `$ZRAMCTL_VM_DEVICE`, zram0 by default; an rzram
/// device loads the module first.
fn device() -> &'static str {
    static DEV: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DEV.get_or_init(|| {
        let dev = std::env::var("ZRAMCTL_VM_DEVICE").unwrap_or_else(|_| "zram0".into());
        if dev.starts_with("rzram") {
            zramctl_tests::load_rzram();
        }
        dev
    })
}
const PAGES: u64 = 8192; // 32 MiB of data on a 128 MiB device

/// A clean zram0 with the VM's disk as backing device and `PAGES` pages of data.
fn fresh_device(seed: u64) -> PathBuf {
    assert!(
        std::env::var_os("ZRAMCTL_VM").is_some(),
        "run with cargo xtask vm-test"
    );
    zramctl(&["reset", device()]).ok();
    let bd = zramctl_tests::scratch_disk();
    zramctl(&[
        "setup",
        device(),
        "--size",
        "128M",
        "--algorithm",
        "lz4",
        "--backing-dev",
        bd.to_str().unwrap(),
    ])
    .ok();
    let dev = PathBuf::from(format!("/dev/{}", device()));
    write_pages(&dev, seed, PAGES).expect("writing test data");
    dev
}

fn status() -> serde_json::Value {
    zramctl(&["status", device(), "--json"]).ok().json()[0].clone()
}

fn bd(field: &str) -> u64 {
    status()["bd_stat"][field]
        .as_u64()
        .expect("bd_stat present")
}

fn assert_intact(dev: &Path, seed: u64) {
    drop_caches();
    let bad = verify_pages(dev, seed, PAGES).expect("reading back");
    assert!(
        bad.is_empty(),
        "{} pages differ after writeback, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
}

/// Parses "zram0: wrote back N pages (...) in Xs".
fn pages_written(stdout: &str) -> u64 {
    let rest = stdout
        .split("wrote back ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn idle_writeback_moves_pages_and_data_reads_back() {
    let dev = fresh_device(1);
    let before = status();
    assert_eq!(
        before["mm_stat"]["orig_data_size"].as_u64(),
        Some(PAGES * 4096)
    );
    assert_eq!(before["bd_stat"]["bd_count"].as_u64(), Some(0));
    assert_eq!(
        before["backing_dev"]["path"].as_str(),
        zramctl_tests::scratch_disk().to_str()
    );

    zramctl(&["idle", device(), "--all"]).ok();
    let out = zramctl(&["writeback", device(), "--idle"]).ok();
    let n = pages_written(&out.stdout);
    println!("{}", out.stdout.trim());
    assert_eq!(n, PAGES, "every page was idle and none is same-filled");
    let after = status();
    assert_eq!(after["bd_stat"]["bd_count"].as_u64(), Some(PAGES));
    assert_eq!(after["bd_stat"]["bd_writes"].as_u64(), Some(PAGES));
    // orig_data_size still counts written-back pages (as upstream does);
    // the compressed bytes held in RAM are what writeback frees.
    let compr = |s: &serde_json::Value| s["mm_stat"]["compr_data_size"].as_u64().unwrap();
    assert!(compr(&before) > 0);
    assert_eq!(compr(&after), 0, "every page left RAM: {after}");

    assert_intact(&dev, 1);
    assert_eq!(
        bd("bd_reads"),
        PAGES,
        "every page was read back from the backing device"
    );
    zramctl(&["reset", device()]).ok();
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn writeback_limit_exhaustion_is_a_clear_error_and_loses_nothing() {
    let dev = fresh_device(2);
    zramctl(&["limit", device(), "--pages", "100"]).ok();
    assert_eq!(
        status()["writeback_limit"],
        serde_json::json!({"state": "on", "pages_left": 100})
    );
    zramctl(&["idle", device(), "--all"]).ok();
    let r = zramctl(&["writeback", device(), "--idle"]);
    assert_ne!(r.code, 0, "writeback past the limit must fail: {r:?}");
    assert!(
        r.stderr.contains("writeback limit exhausted"),
        "stderr: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("EIO"),
        "stderr names the errno: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("os error"),
        "no raw errno text: {}",
        r.stderr
    );
    assert_eq!(bd("bd_writes"), 100, "exactly the budget was written");
    assert_eq!(status()["writeback_limit"]["pages_left"].as_u64(), Some(0));
    assert_intact(&dev, 2);

    // Lifting the limit lets the rest go.
    zramctl(&["limit", device(), "--off"]).ok();
    zramctl(&["idle", device(), "--all"]).ok();
    let n = pages_written(&zramctl(&["writeback", device(), "--idle"]).ok().stdout);
    assert_eq!(n, PAGES - 100);
    assert_intact(&dev, 2);
    zramctl(&["reset", device()]).ok();
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn page_ranges_and_batch_size() {
    let dev = fresh_device(3);
    zramctl(&["batch", device(), "4"]).ok();
    assert_eq!(status()["writeback_batch_size"].as_u64(), Some(4));
    let r = zramctl(&["batch", device(), "0"]);
    assert_ne!(r.code, 0, "batch 0 is rejected");

    let n = pages_written(
        &zramctl(&["writeback", device(), "--pages", "0-9,20,100-199"])
            .ok()
            .stdout,
    );
    assert_eq!(n, 10 + 1 + 100);
    assert_eq!(bd("bd_count"), 111);
    // Already written back: a second pass writes nothing more.
    let again = pages_written(
        &zramctl(&["writeback", device(), "--pages", "0-9"])
            .ok()
            .stdout,
    );
    assert_eq!(again, 0);

    let r = zramctl(&["writeback", device(), "--pages", &format!("{}", 128 * 256)]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("out of range"), "stderr: {}", r.stderr);
    assert_intact(&dev, 3);
    zramctl(&["reset", device()]).ok();
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn configuring_an_initialised_device_is_refused_without_damage() {
    let dev = fresh_device(4);
    let r = zramctl(&["setup", device(), "--size", "64M"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("reset it first"), "stderr: {}", r.stderr);
    assert_eq!(
        status()["disksize"].as_u64(),
        Some(128 << 20),
        "size unchanged"
    );
    assert_intact(&dev, 4);
    zramctl(&["reset", device()]).ok();
    assert_eq!(status()["initialized"].as_bool(), Some(false));
}

/// The eBPF probes on this kernel, whose struct offsets differ from the
/// host's (they come from BTF at load time): `zramctl top --once --json`
/// while pages are written back and read back. zram's own reads show as
/// slot accesses and bio latency, writeback and read-back as request
/// latency of the (blk-mq) backing disk.
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn top_sees_zram_accesses_and_backing_disk_requests() {
    use std::io::{BufRead as _, BufReader};
    let dev = fresh_device(5);
    let mut child = std::process::Command::new(zramctl_tests::zramctl_bin())
        .args(["top", device(), "--once", "--json", "--interval", "600"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running zramctl top");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("watching"), "zramctl top: {line}");
    zramctl(&["idle", device(), "--all"]).ok();
    let n = pages_written(&zramctl(&["writeback", device(), "--idle"]).ok().stdout);
    assert_eq!(n, PAGES);
    assert_intact(&dev, 5);
    let out = interrupt_and_collect(&mut child);
    assert!(child.wait().unwrap().success());
    let v: serde_json::Value = serde_json::from_str(&out).expect("top --json output");
    println!("{out}");
    let devs = v["devices"].as_array().unwrap();
    let zram = devs.iter().find(|d| d["role"] == "zram").expect("zram0");
    // assert_intact reads every page once with O_DIRECT; writeback does not
    // go through zram's queue.
    assert_eq!(
        zram["access"]["pages"]["read"].as_u64(),
        Some(PAGES),
        "{v:#}"
    );
    assert_eq!(zram["access"]["pages"]["write"].as_u64(), Some(0), "{v:#}");
    assert_eq!(
        zram["latency"]["read"]["count"], zram["access"]["bios"]["read"],
        "every zram read bio completed: {v:#}"
    );
    let disk = devs
        .iter()
        .find(|d| d["role"]["backing"]["of"] == device())
        .unwrap_or_else(|| panic!("backing disk watched: {v:#}"));
    let count = |op: &str| disk["latency"][op]["count"].as_u64().unwrap_or(0);
    assert!(count("write") > 0, "writeback requests: {v:#}");
    assert!(count("write") <= PAGES, "{v:#}");
    assert!(count("read") > 0, "read-back requests: {v:#}");
    for p in v["programs"].as_array().unwrap() {
        println!("{}: {} ns/event", p["program"], p["ns_per_event"]);
        assert!(p["run_count"].as_u64().unwrap() > 0, "{p}");
    }
    zramctl(&["reset", device()]).ok();
}

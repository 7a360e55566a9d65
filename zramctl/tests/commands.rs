//! Every CLI command, run in-process against the simulated kernel
//! ([`FakeZram`]): what it prints, what it writes to sysfs and in which
//! order, and the error a user gets on each failure path.

use clap::Parser as _;
use serde_json::{Value, json};
use zramctl::{
    app,
    cli::Cli,
    sysfs::{
        Sysfs,
        fake::{FAKE_ROOT, FakeDevice, FakeZram},
    },
};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
/// Disk size of the initialised test devices: 64M = 16384 pages.
const DISK: u64 = 64 * MIB;
const DISK_PAGES: u64 = DISK / PAGE;

// ---------------------------------------------------------------- helpers

/// Parses `zramctl <args>` and runs it against `fake` rooted at `root`.
fn run_at(root: &str, fake: &FakeZram, args: &[&str]) -> Result<String, String> {
    let cli = Cli::try_parse_from(std::iter::once("zramctl").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("zramctl {args:?} did not parse: {e}"));
    let sys = Sysfs::new(root, fake.clone());
    let mut out = Vec::new();
    let result = app::run(cli, &sys, &mut out);
    let out = String::from_utf8(out).expect("output is UTF-8");
    result.map(|()| out).map_err(|e| format!("{e:#}"))
}

/// Runs a command that must succeed; returns what it printed.
fn ok(fake: &FakeZram, args: &[&str]) -> String {
    run_at(FAKE_ROOT, fake, args).unwrap_or_else(|e| panic!("zramctl {args:?} failed: {e}"))
}

/// Runs a command that must fail; returns the full error message.
fn err(fake: &FakeZram, args: &[&str]) -> String {
    err_at(FAKE_ROOT, fake, args)
}

fn err_at(root: &str, fake: &FakeZram, args: &[&str]) -> String {
    match run_at(root, fake, args) {
        Ok(out) => panic!("zramctl {args:?} succeeded, expected an error; printed:\n{out}"),
        Err(e) => {
            assert_no_raw_errno(&e);
            e
        }
    }
}

/// A user must never be left with just "os error N".
fn assert_no_raw_errno(msg: &str) {
    assert!(
        !msg.contains("os error"),
        "raw errno in error message: {msg}"
    );
}

/// Asserts `msg` contains every one of `parts`.
#[track_caller]
fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "expected {p:?} in:\n{msg}");
    }
}

/// Whether clap rejects `zramctl <args>`; returns its message.
fn parse_error(args: &[&str]) -> String {
    match Cli::try_parse_from(std::iter::once("zramctl").chain(args.iter().copied())) {
        Ok(cli) => panic!("zramctl {args:?} parsed, expected a usage error: {cli:?}"),
        Err(e) => e.to_string(),
    }
}

/// Successful sysfs writes so far, as `"dev attr=value"`.
fn writes(fake: &FakeZram) -> Vec<String> {
    fake.writes()
        .into_iter()
        .map(|(dev, attr, value)| format!("{dev} {attr}={value}"))
        .collect()
}

/// A fake with one unconfigured device `zram0` (default kernel features).
fn fresh() -> FakeZram {
    let fake = FakeZram::new();
    fake.add("zram0", FakeDevice::default());
    fake
}

/// An initialised device: 64M, lzo-rle, backed by /dev/vdb.
fn initialised() -> FakeDevice {
    FakeDevice {
        disksize: DISK,
        backing_dev: Some("/dev/vdb".into()),
        ..FakeDevice::default()
    }
}

/// A fake whose `zram0` is initialised and holds `stored` pages, every
/// `huge_every`th one huge (0: none).
fn ready(stored: usize, huge_every: usize) -> FakeZram {
    let fake = FakeZram::new();
    fake.add("zram0", initialised());
    fake.store_pages("zram0", stored, huge_every);
    fake
}

/// The data rows of a `status` table, each as (column name, cell) pairs.
fn table(out: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header line")
        .split_whitespace()
        .collect();
    assert_eq!(header[0], "NAME", "not a status table:\n{out}");
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cells.len(), header.len(), "ragged row {l:?} in:\n{out}");
            header
                .iter()
                .zip(cells)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect()
        })
        .collect()
}

/// One cell of a `status` table.
fn cell(out: &str, device: &str, column: &str) -> String {
    let rows = table(out);
    let row = rows
        .iter()
        .find(|r| r[0].1 == device)
        .unwrap_or_else(|| panic!("no row for {device} in:\n{out}"));
    row.iter()
        .find(|(h, _)| h == column)
        .unwrap_or_else(|| panic!("no column {column} in:\n{out}"))
        .1
        .clone()
}

fn names(out: &str) -> Vec<String> {
    table(out).into_iter().map(|r| r[0].1.clone()).collect()
}

fn status_json(fake: &FakeZram, args: &[&str]) -> Vec<Value> {
    let out = ok(fake, args);
    match serde_json::from_str(&out) {
        Ok(Value::Array(devs)) => devs,
        other => panic!("status --json is not a JSON array ({other:?}):\n{out}"),
    }
}

/// zram0 as `status` tests use it: 100 pages stored (25 huge), pages
/// 0-9 (3 of them huge) written back under a 100-page limit.
fn busy_device() -> FakeZram {
    let fake = ready(100, 4);
    fake.with("zram0", |d| {
        d.limit_enable = true;
        d.limit = 100;
    });
    ok(&fake, &["writeback", "zram0", "--pages", "0-9"]);
    fake
}

// ----------------------------------------------------------------- status

#[test]
fn status_lists_zram_before_rzram_in_numeric_order_and_skips_other_disks() {
    let fake = FakeZram::new();
    for name in ["rzram0", "zram10", "zram1", "zram0", "zram2"] {
        fake.add(name, FakeDevice::default());
    }
    let out = ok(&fake, &["status"]);
    assert_eq!(names(&out), ["zram0", "zram1", "zram2", "zram10", "rzram0"]);
    // The fake's /sys/block also lists loop0 and vda.
    assert!(!out.contains("loop0") && !out.contains("vda"), "{out}");
}

#[test]
fn status_prints_human_sizes() {
    let fake = busy_device();
    let out = ok(&fake, &["status"]);
    let c = |col| cell(&out, "zram0", col);
    assert_eq!(c("ALGORITHM"), "lzo-rle");
    assert_eq!(c("DISKSIZE"), "64M");
    // 90 pages left in RAM: 22 huge (whole pages), 68 at a quarter page.
    assert_eq!(c("DATA"), "360K");
    assert_eq!(c("COMPR"), "156K");
    assert_eq!(c("TOTAL"), "156K");
    assert_eq!(c("RATIO"), "2.31");
    assert_eq!(c("SAME"), "0");
    assert_eq!(c("HUGE"), "22");
    assert_eq!(c("BACKING"), "/dev/vdb");
    assert_eq!(c("BD-USED"), "40K");
    assert_eq!(c("BD-READS"), "0B");
    assert_eq!(c("BD-WRITES"), "40K");
    assert_eq!(c("WB-LIMIT"), "360K");
    assert_eq!(c("BATCH"), "32");
    assert_eq!(c("FAILED-IO"), "0/0");
}

#[test]
fn status_bytes_prints_exact_sizes() {
    let fake = busy_device();
    for flag in ["--bytes", "-b"] {
        let out = ok(&fake, &["status", flag]);
        let c = |col| cell(&out, "zram0", col);
        assert_eq!(c("DISKSIZE"), DISK.to_string());
        assert_eq!(c("DATA"), (90 * PAGE).to_string());
        assert_eq!(c("COMPR"), (68 * PAGE / 4 + 22 * PAGE).to_string());
        assert_eq!(c("BD-WRITES"), (10 * PAGE).to_string());
        assert_eq!(c("WB-LIMIT"), (90 * PAGE).to_string());
        // Counts stay counts.
        assert_eq!(c("HUGE"), "22");
    }
}

#[test]
fn status_unconfigured_device_shows_dashes_not_zero_ratio() {
    let fake = fresh();
    let out = ok(&fake, &["status"]);
    assert_eq!(cell(&out, "zram0", "DISKSIZE"), "0B");
    assert_eq!(cell(&out, "zram0", "RATIO"), "-");
    assert_eq!(cell(&out, "zram0", "BACKING"), "none");
    assert_eq!(cell(&out, "zram0", "WB-LIMIT"), "off");
}

#[test]
fn status_json_has_the_numbers() {
    let fake = busy_device();
    fake.add("zram1", FakeDevice::default());
    let devs = status_json(&fake, &["status", "--json"]);
    assert_eq!(devs.len(), 2);
    let z0 = &devs[0];
    assert_eq!(z0["name"], "zram0");
    assert_eq!(z0["initialized"], true);
    assert_eq!(z0["disksize"], DISK);
    assert_eq!(z0["algorithm"], "lzo-rle");
    assert_eq!(
        z0["algorithms_available"],
        json!(["lzo", "lzo-rle", "lz4", "zstd"])
    );
    assert_eq!(z0["mm_stat"]["orig_data_size"], 90 * PAGE);
    assert_eq!(z0["mm_stat"]["huge_pages"], 22);
    assert_eq!(
        z0["bd_stat"],
        json!({"bd_count": 10, "bd_reads": 0, "bd_writes": 10})
    );
    assert_eq!(
        z0["backing_dev"],
        json!({"state": "path", "path": "/dev/vdb"})
    );
    assert_eq!(
        z0["writeback_limit"],
        json!({"state": "on", "pages_left": 90})
    );
    assert_eq!(z0["writeback_batch_size"], 32);
    assert_eq!(z0["page_size"], PAGE);
    assert!((z0["ratio"].as_f64().unwrap() - 368640.0 / 159744.0).abs() < 1e-9);

    let z1 = &devs[1];
    assert_eq!(z1["name"], "zram1");
    assert_eq!(z1["initialized"], false);
    assert_eq!(z1["disksize"], 0);
    assert_eq!(z1["ratio"], Value::Null);
    assert_eq!(z1["backing_dev"], json!({"state": "none"}));
    assert_eq!(z1["writeback_limit"], json!({"state": "off"}));
}

#[test]
fn status_one_device_by_every_spelling() {
    let fake = busy_device();
    fake.add("zram1", FakeDevice::default());
    for spec in [
        "zram0",
        "/dev/zram0",
        "/sys/block/zram0",
        "/sys/block/zram0/",
        "/sys/class/block/zram0",
    ] {
        let out = ok(&fake, &["status", spec]);
        assert_eq!(names(&out), ["zram0"], "status {spec}");
        let devs = status_json(&fake, &["status", spec, "--json"]);
        assert_eq!(devs.len(), 1, "status {spec} --json");
        assert_eq!(devs[0]["name"], "zram0");
    }
}

#[test]
fn status_rzram_device() {
    let fake = FakeZram::new();
    fake.add("rzram0", initialised());
    let out = ok(&fake, &["status", "/dev/rzram0"]);
    assert_eq!(names(&out), ["rzram0"]);
    assert_eq!(cell(&out, "rzram0", "DISKSIZE"), "64M");
}

#[test]
fn status_kernel_without_writeback() {
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            writeback_support: false,
            ..initialised()
        },
    );
    fake.with("zram0", |d| d.backing_dev = None);
    let out = ok(&fake, &["status"]);
    let c = |col| cell(&out, "zram0", col);
    assert_eq!(c("BACKING"), "unsupported");
    for col in ["BD-USED", "BD-READS", "BD-WRITES", "WB-LIMIT", "BATCH"] {
        assert_eq!(c(col), "-", "{col}");
    }
    assert_eq!(c("DISKSIZE"), "64M");

    let devs = status_json(&fake, &["status", "--json"]);
    assert_eq!(devs[0]["backing_dev"], json!({"state": "unsupported"}));
    assert_eq!(devs[0]["bd_stat"], Value::Null);
    assert_eq!(devs[0]["writeback_limit"], json!({"state": "unsupported"}));
    assert_eq!(devs[0]["writeback_batch_size"], Value::Null);
}

#[test]
fn status_kernel_without_batched_writeback() {
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            batch_support: false,
            ..initialised()
        },
    );
    let out = ok(&fake, &["status"]);
    assert_eq!(cell(&out, "zram0", "BATCH"), "-");
    assert_eq!(cell(&out, "zram0", "BACKING"), "/dev/vdb");
    assert_eq!(cell(&out, "zram0", "BD-WRITES"), "0B");

    let devs = status_json(&fake, &["status", "--json"]);
    assert_eq!(devs[0]["writeback_batch_size"], Value::Null);
    assert_eq!(devs[0]["bd_stat"]["bd_writes"], 0);
}

#[test]
fn status_without_any_device() {
    let fake = FakeZram::new();
    let out = ok(&fake, &["status"]);
    assert_has(
        &out,
        &["no zram devices under /fake-sys/block", "modprobe zram"],
    );
    assert_eq!(
        status_json(&fake, &["status", "--json"]),
        Vec::<Value>::new()
    );
}

#[test]
fn status_bad_device_name() {
    let e = err(&fresh(), &["status", "sda"]);
    assert_has(
        &e,
        &[
            "invalid device \"sda\"",
            "expected zramN, rzramN, /dev/zramN or /sys/block/zramN",
        ],
    );
}

#[test]
fn status_missing_device() {
    let e = err(&fresh(), &["status", "zram7"]);
    assert_has(
        &e,
        &[
            "no such zram device: zram7",
            "/fake-sys/block/zram7 does not exist",
            "modprobe zram",
        ],
    );
    let e = err(&fresh(), &["status", "rzram3"]);
    assert_has(&e, &["no such zram device: rzram3", "rzram module"]);
}

#[test]
fn status_unreadable_attribute_says_run_as_root() {
    let fake = ready(10, 0);
    fake.inject("mm_stat", libc::EACCES);
    let e = err(&fake, &["status"]);
    assert_has(&e, &["zram0", "mm_stat", "permission denied: run as root"]);
}

#[test]
fn status_read_error_names_attribute_and_errno() {
    let fake = ready(10, 0);
    fake.inject("io_stat", libc::EIO);
    let e = err(&fake, &["status", "zram0"]);
    assert_has(&e, &["zram0: cannot read io_stat", "EIO"]);
}

#[test]
fn status_with_a_sysfs_root_that_does_not_exist() {
    // `zramctl --sysfs-root /wrong status`: the block directory cannot be listed.
    let e = err_at("/no-such-sysfs", &fresh(), &["status"]);
    assert_has(&e, &["/no-such-sysfs/block"]);
}

#[test]
fn every_device_command_rejects_bad_and_missing_devices() {
    let cmds: [&[&str]; 7] = [
        &["status"],
        &["setup", "--size", "64M"],
        &["writeback", "--idle"],
        &["idle", "--all"],
        &["limit", "--pages", "10"],
        &["batch", "8"],
        &["reset"],
    ];
    for cmd in cmds {
        for (dev, expect) in [
            ("sda", "invalid device \"sda\""),
            ("zram7", "no such zram device: zram7"),
        ] {
            let mut args = vec![cmd[0], dev];
            args.extend_from_slice(&cmd[1..]);
            let fake = fresh();
            let e = err(&fake, &args);
            assert_has(&e, &[expect]);
            assert_eq!(
                writes(&fake),
                Vec::<String>::new(),
                "{args:?} wrote something"
            );
        }
    }
}

// ------------------------------------------------------------------ setup

#[test]
fn setup_writes_backing_dev_and_algorithm_before_disksize_and_mem_limit_after() {
    let backing = tempfile::NamedTempFile::new().unwrap();
    let backing = backing.path().to_str().unwrap();
    let fake = fresh();
    let out = ok(
        &fake,
        &[
            "setup",
            "/dev/zram0",
            "--size",
            "64M",
            "--algorithm",
            "zstd",
            "--backing-dev",
            backing,
            "--mem-limit",
            "32M",
        ],
    );
    assert_eq!(
        writes(&fake),
        [
            format!("zram0 backing_dev={backing}"),
            "zram0 comp_algorithm=zstd".into(),
            format!("zram0 disksize={DISK}"),
            format!("zram0 mem_limit={}", 32 * MIB),
        ]
    );
    assert_eq!(
        out.trim(),
        format!("zram0: 64M zstd, backing {backing}, mem_limit 32M")
    );
    fake.with("zram0", |d| {
        assert_eq!(d.disksize, DISK);
        assert_eq!(d.algorithm, "zstd");
        assert_eq!(d.backing_dev.as_deref(), Some(backing));
        assert_eq!(d.mem_limit, 32 * MIB);
    });
}

#[test]
fn setup_with_only_a_size_keeps_the_kernel_default_algorithm() {
    let fake = fresh();
    let out = ok(&fake, &["setup", "zram0", "--size", "1.5G"]);
    assert_eq!(writes(&fake), [format!("zram0 disksize={}", 1536 * MIB)]);
    assert_eq!(out.trim(), "zram0: 1.5G lzo-rle");
    fake.with("zram0", |d| assert_eq!(d.backing_dev, None));
}

#[test]
fn setup_rejects_an_unknown_algorithm_naming_the_available_ones() {
    let fake = fresh();
    let e = err(
        &fake,
        &["setup", "zram0", "--size", "64M", "--algorithm", "brotli"],
    );
    assert_has(
        &e,
        &[
            "zram0",
            "unknown compression algorithm \"brotli\"",
            "lzo, lzo-rle, lz4, zstd",
        ],
    );
    assert_eq!(writes(&fake), Vec::<String>::new());
    fake.with("zram0", |d| assert_eq!(d.disksize, 0));
}

#[test]
fn setup_refuses_an_initialised_device() {
    let fake = ready(10, 0);
    let e = err(
        &fake,
        &["setup", "zram0", "--size", "128M", "--algorithm", "zstd"],
    );
    assert_has(
        &e,
        &[
            "zram0",
            "already initialised",
            "64M",
            "reset it first",
            "zramctl reset zram0",
        ],
    );
    assert_eq!(writes(&fake), Vec::<String>::new());
    fake.with("zram0", |d| {
        assert_eq!(d.disksize, DISK);
        assert_eq!(d.algorithm, "lzo-rle");
        assert_eq!(d.backing_dev.as_deref(), Some("/dev/vdb"));
        assert_eq!(d.pages.iter().filter(|p| p.stored).count(), 10);
    });
}

#[test]
fn setup_failing_on_disksize_resets_the_device() {
    let backing = tempfile::NamedTempFile::new().unwrap();
    let backing = backing.path().to_str().unwrap();
    let fake = fresh();
    fake.inject("disksize", libc::ENOMEM);
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--algorithm",
            "lz4",
            "--backing-dev",
            backing,
        ],
    );
    assert_has(
        &e,
        &[
            "setup failed; device reset to unconfigured",
            "disksize",
            "not enough memory",
            "ENOMEM",
        ],
    );
    // Not half configured: what was set before the failure is undone.
    fake.with("zram0", |d| {
        assert_eq!(d.disksize, 0);
        assert_eq!(d.backing_dev, None);
        assert_eq!(d.algorithm, "lzo-rle");
    });
    assert_eq!(
        writes(&fake),
        [
            format!("zram0 backing_dev={backing}"),
            "zram0 comp_algorithm=lz4".into(),
            "zram0 reset=1".into()
        ]
    );
}

#[test]
fn setup_failing_on_mem_limit_resets_the_device() {
    let fake = fresh();
    fake.inject("mem_limit", libc::EINVAL);
    let e = err(
        &fake,
        &["setup", "zram0", "--size", "64M", "--mem-limit", "1G"],
    );
    assert_has(&e, &["device reset to unconfigured", "mem_limit", "EINVAL"]);
    fake.with("zram0", |d| {
        assert_eq!(d.disksize, 0);
        assert_eq!(d.mem_limit, 0);
    });
    assert_eq!(
        writes(&fake).last().map(String::as_str),
        Some("zram0 reset=1")
    );
}

#[test]
fn setup_reports_when_the_undo_reset_fails_too() {
    let fake = fresh();
    fake.with("zram0", |d| d.in_use = true);
    fake.inject("disksize", libc::ENOMEM);
    let e = err(&fake, &["setup", "zram0", "--size", "64M"]);
    assert_has(&e, &["reset to undo it failed too", "ENOMEM", "EBUSY"]);
}

#[test]
fn setup_permission_denied_says_run_as_root() {
    let fake = fresh();
    fake.inject("disksize", libc::EACCES);
    let e = err(&fake, &["setup", "zram0", "--size", "64M"]);
    assert_has(
        &e,
        &["disksize", "permission denied: run as root", "EACCES"],
    );
}

#[test]
fn setup_rejects_a_backing_device_that_does_not_exist() {
    let fake = fresh();
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--backing-dev",
            "/nonexistent/zram-backing",
        ],
    );
    assert_has(
        &e,
        &[
            "zram0",
            "backing device /nonexistent/zram-backing does not exist",
        ],
    );
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[test]
fn setup_backing_dev_on_kernel_without_writeback() {
    let backing = tempfile::NamedTempFile::new().unwrap();
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            writeback_support: false,
            ..FakeDevice::default()
        },
    );
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--backing-dev",
            backing.path().to_str().unwrap(),
        ],
    );
    assert_has(&e, &["zram0", "backing device", "CONFIG_ZRAM_WRITEBACK"]);
    assert_eq!(writes(&fake), Vec::<String>::new());
    fake.with("zram0", |d| assert_eq!(d.disksize, 0));
}

#[test]
fn setup_backing_dev_refused_by_the_kernel_with_enoent() {
    // The kernel's backing_dev_store() returns ENOENT when it cannot open
    // the path. That is not the same as the attribute being missing.
    let backing = tempfile::NamedTempFile::new().unwrap();
    let fake = fresh();
    fake.inject("backing_dev", libc::ENOENT);
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--backing-dev",
            backing.path().to_str().unwrap(),
        ],
    );
    assert_has(&e, &["backing_dev", "no such file", "ENOENT"]);
    assert!(
        !e.contains("CONFIG_ZRAM_WRITEBACK"),
        "misreported as a missing kernel feature: {e}"
    );
    fake.with("zram0", |d| assert_eq!(d.disksize, 0));
}

#[test]
fn setup_rejects_a_zero_size() {
    let fake = fresh();
    let e = err(&fake, &["setup", "zram0", "--size", "0"]);
    assert_has(&e, &["zram0", "--size must be larger than 0"]);
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[test]
fn setup_size_is_parsed_by_clap() {
    assert_has(
        &parse_error(&["setup", "zram0", "--size", "12Q"]),
        &["invalid size \"12Q\"", "unknown unit"],
    );
    assert_has(&parse_error(&["setup", "zram0"]), &["--size"]);
}

// -------------------------------------------------------------- writeback

#[test]
fn writeback_idle_writes_back_the_pages_marked_idle() {
    let fake = ready(100, 0);
    let out = ok(&fake, &["idle", "zram0", "--all"]);
    assert_eq!(out.trim(), "zram0: marked all pages idle");
    // Pages 50-99 are accessed again after the marking: no longer idle.
    fake.with("zram0", |d| {
        d.pages[50..100].iter_mut().for_each(|p| p.idle = false)
    });

    let out = ok(&fake, &["writeback", "zram0", "--idle"]);
    assert_has(&out, &["zram0: wrote back 50 pages (200K)"]);
    assert_eq!(writes(&fake), ["zram0 idle=all", "zram0 writeback=idle"]);
    fake.with("zram0", |d| {
        assert_eq!(d.bd_writes, 50);
        assert!(d.pages[..50].iter().all(|p| p.written_back));
        assert!(d.pages[50..100].iter().all(|p| !p.written_back));
    });
}

#[test]
fn writeback_idle_with_nothing_idle_writes_back_zero_pages() {
    let fake = ready(100, 0);
    let out = ok(&fake, &["writeback", "zram0", "--idle"]);
    assert_has(&out, &["zram0: wrote back 0 pages (0B)"]);
}

#[test]
fn writeback_huge() {
    let fake = ready(100, 4);
    let out = ok(&fake, &["writeback", "zram0", "--huge"]);
    assert_has(&out, &["zram0: wrote back 25 pages (100K)"]);
    assert_eq!(writes(&fake), ["zram0 writeback=huge"]);
    fake.with("zram0", |d| {
        for (i, p) in d.pages.iter().enumerate().take(100) {
            assert_eq!(p.written_back, i % 4 == 0, "page {i}");
        }
    });
}

#[test]
fn writeback_several_modes_are_separate_writes() {
    let fake = ready(100, 4);
    ok(&fake, &["idle", "zram0", "--all"]);
    let out = ok(&fake, &["writeback", "zram0", "--huge", "--idle"]);
    // Kernel stops parsing after a mode: one write each, in a fixed order.
    assert_eq!(
        writes(&fake),
        [
            "zram0 idle=all",
            "zram0 writeback=idle",
            "zram0 writeback=huge"
        ]
    );
    assert_has(&out, &["wrote back 100 pages"]);
}

#[test]
fn writeback_page_ranges_are_inclusive_and_written_together() {
    let fake = ready(100, 0);
    let out = ok(&fake, &["writeback", "zram0", "--pages", "0-3,7,10-11"]);
    assert_eq!(
        writes(&fake),
        ["zram0 writeback=page_indexes=0-3 page_index=7 page_indexes=10-11"]
    );
    assert_has(&out, &["zram0: wrote back 7 pages (28K)"]);
    fake.with("zram0", |d| {
        let back: Vec<usize> = (0..d.pages.len())
            .filter(|&i| d.pages[i].written_back)
            .collect();
        assert_eq!(back, [0, 1, 2, 3, 7, 10, 11]);
    });
}

#[test]
fn writeback_last_page_of_the_disk_is_in_range() {
    let fake = ready(DISK_PAGES as usize, 0);
    let last = (DISK_PAGES - 1).to_string();
    let out = ok(&fake, &["writeback", "zram0", "--pages", &last]);
    assert_has(&out, &["wrote back 1 pages"]);
    assert_eq!(
        writes(&fake),
        [format!("zram0 writeback=page_index={last}")]
    );
}

#[test]
fn writeback_page_beyond_the_disk_is_rejected_before_writing() {
    let fake = ready(100, 0);
    let range = format!("0-3,{}-{}", DISK_PAGES - 4, DISK_PAGES);
    let e = err(&fake, &["writeback", "zram0", "--pages", &range]);
    assert_has(
        &e,
        &[
            &format!("page {DISK_PAGES} is out of range"),
            &format!("{DISK_PAGES} pages (0-{})", DISK_PAGES - 1),
        ],
    );
    assert_eq!(writes(&fake), Vec::<String>::new());
    fake.with("zram0", |d| assert_eq!(d.bd_writes, 0));
}

#[test]
fn writeback_bad_page_ranges_are_rejected_by_clap() {
    assert_has(
        &parse_error(&["writeback", "zram0", "--pages", "9-3"]),
        &["reversed"],
    );
    assert_has(
        &parse_error(&["writeback", "zram0", "--pages", "x"]),
        &["not a page index"],
    );
    assert!(!parse_error(&["writeback", "zram0"]).is_empty());
}

#[test]
fn writeback_without_a_backing_device() {
    let fake = ready(100, 0);
    fake.with("zram0", |d| d.backing_dev = None);
    let e = err(&fake, &["writeback", "zram0", "--huge"]);
    assert_has(&e, &["zram0", "writeback", "no backing device", "ENODEV"]);
}

#[test]
fn writeback_with_the_limit_exhausted() {
    let fake = ready(100, 0);
    fake.with("zram0", |d| {
        d.limit_enable = true;
        d.limit = 0;
    });
    ok(&fake, &["idle", "zram0", "--all"]);
    let e = err(&fake, &["writeback", "zram0", "--idle"]);
    assert_has(
        &e,
        &["zram0", "writeback limit exhausted", "zramctl limit", "EIO"],
    );
    fake.with("zram0", |d| assert_eq!(d.bd_writes, 0));
}

#[test]
fn writeback_running_into_the_limit_midway() {
    let fake = ready(100, 0);
    ok(&fake, &["limit", "zram0", "--pages", "5"]);
    ok(&fake, &["idle", "zram0", "--all"]);
    let e = err(&fake, &["writeback", "zram0", "--idle"]);
    assert_has(&e, &["writeback limit exhausted", "EIO"]);
    fake.with("zram0", |d| {
        assert_eq!(d.bd_writes, 5);
        assert_eq!(d.limit, 0);
    });
}

#[test]
fn writeback_io_error_with_limit_off_is_not_called_exhausted() {
    let fake = ready(100, 0);
    fake.inject("writeback", libc::EIO);
    let e = err(&fake, &["writeback", "zram0", "--huge"]);
    assert_has(&e, &["I/O error on the backing device", "EIO"]);
    assert!(!e.contains("exhausted"), "{e}");
}

#[test]
fn writeback_on_kernel_without_writeback() {
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            writeback_support: false,
            ..initialised()
        },
    );
    for mode in ["--idle", "--huge"] {
        let e = err(&fake, &["writeback", "zram0", mode]);
        assert_has(&e, &["zram0", "writeback", "CONFIG_ZRAM_WRITEBACK"]);
    }
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[test]
fn writeback_permission_denied_says_run_as_root() {
    let fake = ready(100, 0);
    fake.inject("writeback", libc::EACCES);
    let e = err(&fake, &["writeback", "zram0", "--idle"]);
    assert_has(
        &e,
        &["writeback", "permission denied: run as root", "EACCES"],
    );
}

#[test]
fn writeback_before_init() {
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            backing_dev: Some("/dev/vdb".into()),
            ..FakeDevice::default()
        },
    );
    let e = err(&fake, &["writeback", "zram0", "--idle"]);
    assert_has(&e, &["zram0", "writeback", "not initialised", "EINVAL"]);
}

#[test]
fn writeback_pages_before_init_says_not_initialised() {
    // A device with no disksize has no pages; telling the user it "has 0
    // pages (0-0)" is wrong (there is no page 0) and hides the real problem.
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            backing_dev: Some("/dev/vdb".into()),
            ..FakeDevice::default()
        },
    );
    let e = err(&fake, &["writeback", "zram0", "--pages", "0"]);
    assert_has(&e, &["zram0", "not initialised"]);
    assert!(!e.contains("(0-0)"), "{e}");
}

// ------------------------------------------------------------------- idle

#[test]
fn idle_all_marks_every_stored_page() {
    let fake = ready(30, 0);
    ok(&fake, &["idle", "/dev/zram0", "--all"]);
    fake.with("zram0", |d| {
        assert!(d.pages[..30].iter().all(|p| p.idle));
        assert!(d.pages[30..].iter().all(|p| !p.idle));
    });
    assert_eq!(writes(&fake), ["zram0 idle=all"]);
}

#[test]
fn idle_by_age() {
    let fake = ready(30, 0);
    let out = ok(&fake, &["idle", "zram0", "--age", "3600"]);
    assert_has(&out, &["zram0", "3600s"]);
    assert_eq!(writes(&fake), ["zram0 idle=3600"]);
    fake.with("zram0", |d| assert!(d.pages[..30].iter().all(|p| p.idle)));
}

#[test]
fn idle_by_age_without_actime_tracking() {
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            actime: false,
            ..initialised()
        },
    );
    fake.store_pages("zram0", 30, 0);
    let e = err(&fake, &["idle", "zram0", "--age", "3600"]);
    assert_has(&e, &["CONFIG_ZRAM_TRACK_ENTRY_ACTIME", "idle", "EINVAL"]);
    assert_eq!(writes(&fake), Vec::<String>::new());
    // --all still works there.
    ok(&fake, &["idle", "zram0", "--all"]);
}

#[test]
fn idle_on_an_uninitialised_device() {
    let fake = fresh();
    let e = err(&fake, &["idle", "zram0", "--all"]);
    assert_has(&e, &["zram0", "idle", "not initialised", "EINVAL"]);
    let e = err(&fake, &["idle", "zram0", "--age", "60"]);
    assert_has(&e, &["not initialised"]);
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[test]
fn idle_needs_exactly_one_of_all_or_age() {
    assert!(!parse_error(&["idle", "zram0"]).is_empty());
    assert!(!parse_error(&["idle", "zram0", "--all", "--age", "5"]).is_empty());
}

// ------------------------------------------------------------------ limit

#[test]
fn limit_pages_sets_the_limit_then_enables_it() {
    let fake = ready(0, 0);
    let out = ok(&fake, &["limit", "zram0", "--pages", "1000"]);
    assert_eq!(
        writes(&fake),
        [
            "zram0 writeback_limit=1000",
            "zram0 writeback_limit_enable=1"
        ]
    );
    assert_eq!(out.trim(), "zram0: writeback limit on: 1000 pages (3.9M)");
    fake.with("zram0", |d| {
        assert!(d.limit_enable);
        assert_eq!(d.limit, 1000);
    });
}

#[test]
fn limit_bytes_is_converted_to_pages() {
    let fake = ready(0, 0);
    let out = ok(&fake, &["limit", "zram0", "--bytes", "1M"]);
    assert_eq!(
        writes(&fake),
        [
            "zram0 writeback_limit=256",
            "zram0 writeback_limit_enable=1"
        ]
    );
    assert_has(&out, &["256 pages (1M)"]);
    fake.with("zram0", |d| assert_eq!(d.limit, 256));
}

#[test]
fn limit_off() {
    let fake = ready(0, 0);
    fake.with("zram0", |d| {
        d.limit_enable = true;
        d.limit = 7;
    });
    let out = ok(&fake, &["limit", "zram0", "--off"]);
    assert_eq!(out.trim(), "zram0: writeback limit off");
    assert_eq!(writes(&fake), ["zram0 writeback_limit_enable=0"]);
    fake.with("zram0", |d| assert!(!d.limit_enable));
}

#[test]
fn limit_on_kernel_without_writeback() {
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            writeback_support: false,
            ..initialised()
        },
    );
    for args in [
        ["limit", "zram0", "--pages", "10"].as_slice(),
        &["limit", "zram0", "--off"],
    ] {
        let e = err(&fake, args);
        assert_has(&e, &["zram0", "not available", "CONFIG_ZRAM_WRITEBACK"]);
    }
}

#[test]
fn limit_takes_exactly_one_of_pages_bytes_off() {
    assert!(!parse_error(&["limit", "zram0"]).is_empty());
    assert!(!parse_error(&["limit", "zram0", "--pages", "1", "--off"]).is_empty());
    assert!(!parse_error(&["limit", "zram0", "--pages", "1", "--bytes", "1M"]).is_empty());
}

// ------------------------------------------------------------------ batch

#[test]
fn batch_sets_writeback_batch_size() {
    let fake = ready(0, 0);
    let out = ok(&fake, &["batch", "zram0", "64"]);
    assert_eq!(out.trim(), "zram0: writeback_batch_size = 64");
    assert_eq!(writes(&fake), ["zram0 writeback_batch_size=64"]);
    fake.with("zram0", |d| assert_eq!(d.batch, 64));
}

#[test]
fn batch_zero_is_rejected_by_clap() {
    assert!(!parse_error(&["batch", "zram0", "0"]).is_empty());
}

#[test]
fn batch_on_kernel_without_batched_writeback() {
    let fake = FakeZram::new();
    fake.add(
        "zram0",
        FakeDevice {
            batch_support: false,
            ..initialised()
        },
    );
    let e = err(&fake, &["batch", "zram0", "8"]);
    assert_has(
        &e,
        &[
            "zram0",
            "writeback_batch_size is not available",
            "batched writeback",
        ],
    );
    assert_eq!(writes(&fake), Vec::<String>::new());
    fake.with("zram0", |d| assert_eq!(d.batch, 32));
}

// ------------------------------------------------------------------ reset

#[test]
fn reset_returns_the_device_to_unconfigured() {
    let fake = ready(100, 0);
    fake.with("zram0", |d| d.algorithm = "zstd".into());
    let out = ok(&fake, &["reset", "/sys/block/zram0"]);
    assert_eq!(out.trim(), "zram0: reset");
    assert_eq!(writes(&fake), ["zram0 reset=1"]);
    fake.with("zram0", |d| {
        assert_eq!(d.disksize, 0);
        assert_eq!(d.backing_dev, None);
        assert_eq!(d.algorithm, "lzo-rle");
        assert!(d.pages.is_empty());
    });
    // And it can be set up again.
    ok(&fake, &["setup", "zram0", "--size", "64M"]);
}

#[test]
fn reset_of_a_device_in_use() {
    let fake = ready(100, 0);
    fake.with("zram0", |d| d.in_use = true);
    let e = err(&fake, &["reset", "zram0"]);
    assert_has(
        &e,
        &["zram0", "reset", "in use", "swapoff or umount", "EBUSY"],
    );
    fake.with("zram0", |d| {
        assert_eq!(d.disksize, DISK);
        assert_eq!(d.backing_dev.as_deref(), Some("/dev/vdb"));
    });
    assert_eq!(writes(&fake), Vec::<String>::new());
}

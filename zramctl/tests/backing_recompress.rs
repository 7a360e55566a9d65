//! `setup --backing-file/--backing-size/--encrypt/--recomp-algorithm`,
//! `reset --delete-backing-file` and `recompress`, run in-process against
//! the simulated kernel ([`FakeZram`]): the options, what reaches sysfs and
//! the error for every refusal. Everything refused here is refused before
//! any file, loop or dm device is made (the real stack is tested in the VM:
//! `tests/tests/backing.rs`).

use clap::Parser as _;
use zramctl::{
    app,
    cli::Cli,
    sysfs::{
        Sysfs,
        fake::{FAKE_ROOT, FakeDevice, FakeZram},
    },
};

const MIB: u64 = 1 << 20;

fn run(fake: &FakeZram, args: &[&str]) -> Result<String, String> {
    let cli = Cli::try_parse_from(std::iter::once("zramctl").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("zramctl {args:?} did not parse: {e}"));
    let sys = Sysfs::new(FAKE_ROOT, fake.clone());
    let mut out = Vec::new();
    let r = app::run(cli, &sys, &mut out);
    let out = String::from_utf8(out).expect("UTF-8");
    r.map(|()| out).map_err(|e| format!("{e:#}"))
}

#[track_caller]
fn err(fake: &FakeZram, args: &[&str]) -> String {
    let e = run(fake, args).expect_err("expected an error");
    assert!(!e.contains("os error"), "raw errno: {e}");
    e
}

#[track_caller]
fn ok(fake: &FakeZram, args: &[&str]) -> String {
    run(fake, args).unwrap_or_else(|e| panic!("zramctl {args:?}: {e}"))
}

#[track_caller]
fn has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{p:?} not in: {msg}");
    }
}

fn fake_with(dev: FakeDevice) -> FakeZram {
    let f = FakeZram::new();
    f.add("zram0", dev);
    f
}

fn parse_err(args: &[&str]) -> String {
    Cli::try_parse_from(std::iter::once("zramctl").chain(args.iter().copied()))
        .expect_err("expected a parse error")
        .to_string()
}

// ------------------------------------------------------------------ setup

#[test]
fn backing_options_need_a_backing_file_and_exclude_backing_dev() {
    let e = parse_err(&["setup", "zram0", "--size", "1G", "--encrypt"]);
    has(&e, &["--backing-file"]);
    let e = parse_err(&["setup", "zram0", "--size", "1G", "--backing-size", "1G"]);
    has(&e, &["--backing-file"]);
    let e = parse_err(&[
        "setup",
        "zram0",
        "--size",
        "1G",
        "--backing-file",
        "/f",
        "--backing-dev",
        "/dev/vdb",
    ]);
    has(&e, &["cannot be used with"]);
    let e = parse_err(&[
        "setup",
        "zram0",
        "--size",
        "1G",
        "--backing-file",
        "/f",
        "--backing-size",
        "2X",
    ]);
    has(&e, &["invalid size", "or auto"]);
    let e = parse_err(&[
        "setup",
        "zram0",
        "--size",
        "1G",
        "--backing-file",
        "/f",
        "--backing-size",
        "1M",
    ]);
    has(&e, &["too small: at least 4M"]);
}

#[test]
fn backing_file_without_writeback_support_is_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zram0.img");
    let fake = fake_with(FakeDevice {
        writeback_support: false,
        ..FakeDevice::default()
    });
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--backing-file",
            file.to_str().unwrap(),
            "--encrypt",
        ],
    );
    has(
        &e,
        &["zram0: cannot set a backing file", "CONFIG_ZRAM_WRITEBACK"],
    );
    assert!(!file.exists(), "nothing may be created");
    assert!(fake.writes().is_empty());
}

#[test]
fn backing_file_refusals_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // SAFETY: tests in this file set it to the same kind of value; nothing
    // else reads it concurrently in a way that matters.
    unsafe { std::env::set_var("ZRAMCTL_STATE_DIR", state.path()) };
    let fake = fake_with(FakeDevice::default());
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    // More than the filesystem has.
    let f = path("huge.img");
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--backing-file",
            &f,
            "--backing-size",
            "1E",
        ],
    );
    has(&e, &["not enough free space for a 1E backing file", "free"]);
    assert!(!std::path::Path::new(&f).exists());
    // A directory that does not exist.
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--backing-file",
            "/nonexistent-dir/zram0.img",
        ],
    );
    has(
        &e,
        &["directory /nonexistent-dir of the backing file does not exist"],
    );
    // Not a regular file.
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--backing-file",
            dir.path().to_str().unwrap(),
        ],
    );
    has(&e, &["is not a regular file", "--backing-dev"]);
    // An initialised device is refused first.
    let busy = fake_with(FakeDevice {
        disksize: 64 * MIB,
        ..FakeDevice::default()
    });
    let e = err(
        &busy,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--backing-file",
            &path("x.img"),
        ],
    );
    has(&e, &["already initialised", "zramctl reset zram0"]);
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[test]
fn recomp_algorithms_are_set_by_priority_before_disksize() {
    let fake = fake_with(FakeDevice::default());
    ok(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--algorithm",
            "lz4",
            "--recomp-algorithm",
            "zstd",
            "--recomp-algorithm",
            "lzo",
        ],
    );
    let w: Vec<String> = fake
        .writes()
        .into_iter()
        .map(|(_, a, v)| format!("{a}={v}"))
        .collect();
    assert_eq!(
        w,
        [
            "comp_algorithm=lz4",
            "recomp_algorithm=algo=zstd priority=1",
            "recomp_algorithm=algo=lzo priority=2",
            "disksize=67108864",
        ]
    );
    // Unknown algorithm, and a kernel without recompression.
    let fake = fake_with(FakeDevice::default());
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--recomp-algorithm",
            "brotli",
        ],
    );
    has(&e, &["unknown recompression algorithm \"brotli\"", "zstd"]);
    let fake = fake_with(FakeDevice {
        recomp_support: false,
        ..FakeDevice::default()
    });
    let e = err(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--recomp-algorithm",
            "zstd",
        ],
    );
    has(
        &e,
        &[
            "recomp_algorithm is not available",
            "CONFIG_ZRAM_MULTI_COMP",
        ],
    );
    assert!(fake.writes().is_empty());
}

// ------------------------------------------------------------- recompress

fn recompressible() -> FakeZram {
    let fake = fake_with(FakeDevice::default());
    ok(
        &fake,
        &[
            "setup",
            "zram0",
            "--size",
            "64M",
            "--recomp-algorithm",
            "zstd",
        ],
    );
    fake.store_pages("zram0", 100, 10);
    fake
}

#[test]
fn recompress_idle_reports_the_saving() {
    let fake = recompressible();
    // Nothing idle yet: nothing saved.
    let out = ok(&fake, &["recompress", "zram0", "--idle"]);
    has(&out, &["type=idle priority=1", "saved 0B (0.0%)"]);
    ok(&fake, &["idle", "zram0", "--all"]);
    // 90 normal pages go from 1K to 512B each: 45K of 90K + 10 huge pages.
    let out = ok(&fake, &["recompress", "zram0", "--idle", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["request"], "type=idle priority=1");
    assert_eq!(v["compr_before"], 90 * 1024 + 10 * 4096);
    assert_eq!(
        v["saved_bytes"],
        90 * 1024 - 90 * 512 + 10 * 4096 - 10 * 512
    );
    // Huge pages by threshold, by name.
    let fake = recompressible();
    let out = ok(
        &fake,
        &[
            "recompress",
            "zram0",
            "--huge",
            "--threshold",
            "2000",
            "--algo",
            "zstd",
        ],
    );
    has(&out, &["type=huge threshold=2000 algo=zstd", "saved 35K"]);
}

#[test]
fn recompress_errors_are_clear() {
    // No algorithm configured before disksize.
    let fake = fake_with(FakeDevice {
        disksize: 64 * MIB,
        ..FakeDevice::default()
    });
    let e = err(&fake, &["recompress", "zram0", "--idle"]);
    has(
        &e,
        &[
            "no recompression algorithm is configured",
            "before disksize",
            "--recomp-algorithm zstd",
        ],
    );
    // Not initialised.
    let fake = fake_with(FakeDevice::default());
    let e = err(&fake, &["recompress", "zram0", "--idle"]);
    has(&e, &["not initialised", "zramctl setup"]);
    // A name or priority that is not configured.
    let fake = recompressible();
    let e = err(&fake, &["recompress", "zram0", "--idle", "--algo", "lz4"]);
    has(
        &e,
        &["lz4 is not a configured recompression algorithm", "1=zstd"],
    );
    let e = err(&fake, &["recompress", "zram0", "--idle", "--priority", "2"]);
    has(&e, &["no recompression algorithm at priority 2"]);
    // The kernel's EINVAL for a threshold at or above the huge class.
    let e = err(
        &fake,
        &["recompress", "zram0", "--all", "--threshold", "3072"],
    );
    has(
        &e,
        &[
            "writing \"threshold=3072 priority=1\" to recompress failed",
            "huge class size",
            "EINVAL",
        ],
    );
    // No recompression in the kernel: upstream and rzram say so differently.
    let fake = fake_with(FakeDevice {
        disksize: 64 * MIB,
        recomp_support: false,
        ..FakeDevice::default()
    });
    let e = err(&fake, &["recompress", "zram0", "--idle"]);
    has(
        &e,
        &[
            "zram0: recompress is not available",
            "CONFIG_ZRAM_MULTI_COMP",
        ],
    );
    let fake = FakeZram::new();
    fake.add(
        "rzram0",
        FakeDevice {
            disksize: 64 * MIB,
            recomp_support: false,
            ..FakeDevice::default()
        },
    );
    let e = err(&fake, &["recompress", "rzram0", "--huge"]);
    has(
        &e,
        &[
            "rzram0: recompress is not available",
            "rzram module has no recompression",
        ],
    );
    // EAGAIN (writeback running) is explained.
    let fake = recompressible();
    fake.inject("recompress", libc::EAGAIN);
    let e = err(&fake, &["recompress", "zram0", "--idle"]);
    has(&e, &["retry later", "EAGAIN"]);
}

// ------------------------------------------------------------------ reset

#[test]
fn reset_without_a_provisioned_stack_is_a_plain_reset() {
    let fake = fake_with(FakeDevice {
        disksize: 64 * MIB,
        backing_dev: Some("/dev/vdb".into()),
        ..FakeDevice::default()
    });
    let out = ok(&fake, &["reset", "zram0", "--delete-backing-file"]);
    has(
        &out,
        &["no backing file of zramctl's to delete", "zram0: reset"],
    );
    // In use: the reset fails and nothing else is touched.
    let fake = fake_with(FakeDevice {
        disksize: 64 * MIB,
        in_use: true,
        ..FakeDevice::default()
    });
    let e = err(&fake, &["reset", "zram0"]);
    has(&e, &["swapoff or umount it first", "EBUSY"]);
}

// ------------------------------------------------------------------ daemon

mod daemon {
    use std::path::Path;

    use zramctl::{
        daemon::{DaemonCore, PressureSource, config::Config},
        sysfs::{
            Sysfs,
            fake::{FAKE_ROOT, FakeDevice, FakeZram},
        },
    };

    const S: u64 = 1_000_000_000;
    const T0: u64 = 10_000 * S;

    struct NoPsi;
    impl PressureSource for NoPsi {
        fn some_avg10(&mut self) -> anyhow::Result<Option<f64>> {
            Ok(None)
        }
    }

    const CONFIG: &str = r#"
[daemon]
probes = "off"
[policy]
period_secs = 60
recompress_idle_age_secs = 1800
recompress_interval_secs = 600
[[device]]
name = "zram0"
"#;

    fn core(z: &FakeZram) -> DaemonCore {
        DaemonCore::new(
            Sysfs::new(FAKE_ROOT, z.clone()),
            Config::parse(Path::new("t.toml"), CONFIG).unwrap(),
            Err(anyhow::anyhow!("off")),
            Box::new(NoPsi),
            T0,
        )
        .unwrap()
    }

    fn fake(recomp: &[(u32, &str)]) -> FakeZram {
        let z = FakeZram::new();
        z.add(
            "zram0",
            FakeDevice {
                disksize: 1024 * 4096,
                backing_dev: Some("/dev/loop7".into()),
                recomp_algorithms: recomp.iter().map(|(p, a)| (*p, a.to_string())).collect(),
                ..FakeDevice::default()
            },
        );
        z.store_pages("zram0", 1000, 0);
        z
    }

    fn metric(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    fn recompress_writes(z: &FakeZram) -> Vec<String> {
        z.writes()
            .into_iter()
            .filter(|(_, a, _)| a == "recompress" || a == "idle")
            .map(|(_, a, v)| format!("{a}={v}"))
            .collect()
    }

    #[test]
    fn recompresses_idle_pages_before_writeback_once_per_interval() {
        let z = fake(&[(2, "lz4"), (1, "zstd")]);
        let mut c = core(&z);
        c.step(T0);
        let w = recompress_writes(&z);
        // Its own idle marking and recompression come first, then the
        // writeback policy's own marking.
        assert_eq!(w[..2], ["idle=1800", "recompress=type=idle priority=1"]);
        let m = c.metrics();
        assert_eq!(
            metric(&m, "zramctl_recompress_runs_total{device=\"zram0\"}"),
            1.0
        );
        assert_eq!(
            metric(&m, "zramctl_recompress_saved_bytes_total{device=\"zram0\"}"),
            (1000 * (1024 - 512)) as f64
        );
        assert_eq!(
            metric(&m, "zramctl_recompress_errors_total{device=\"zram0\"}"),
            0.0
        );
        // Not again within recompress_interval_secs; again after it.
        let n = recompress_writes(&z).len();
        c.step(T0 + 300 * S);
        assert!(
            !recompress_writes(&z)[n..]
                .iter()
                .any(|w| w.starts_with("recompress"))
        );
        c.step(T0 + 601 * S);
        assert!(
            recompress_writes(&z)[n..]
                .iter()
                .any(|w| w.starts_with("recompress"))
        );
        assert_eq!(
            metric(
                &c.metrics(),
                "zramctl_recompress_runs_total{device=\"zram0\"}"
            ),
            2.0
        );
    }

    #[test]
    fn the_daemon_sets_up_configured_devices_that_are_unused() {
        let cfg = Config::parse(
            Path::new("t.toml"),
            "[[device]]\nname = \"zram0\"\ndisksize = \"8M\"\nalgorithm = \"lz4\"\nrecomp_algorithm = [\"zstd\"]\n[[device]]\nname = \"zram1\"\ndisksize = \"8M\"\n",
        )
        .unwrap();
        let z = FakeZram::new();
        z.add("zram0", FakeDevice::default());
        z.add(
            "zram1",
            FakeDevice {
                disksize: 4 << 20,
                ..FakeDevice::default()
            },
        );
        zramctl::daemon::setup_configured(&Sysfs::new(FAKE_ROOT, z.clone()), &cfg.devices).unwrap();
        let w: Vec<String> = z
            .writes()
            .into_iter()
            .map(|(d, a, v)| format!("{d} {a}={v}"))
            .collect();
        // zram1 is in use already: left as found.
        assert_eq!(
            w,
            [
                "zram0 comp_algorithm=lz4",
                "zram0 recomp_algorithm=algo=zstd priority=1",
                "zram0 disksize=8388608",
            ]
        );
    }

    #[test]
    fn an_unconfigured_algorithm_or_driver_is_an_error_not_a_crash() {
        // zstd is not a secondary algorithm of the device.
        let z = fake(&[(1, "lz4")]);
        let mut c = core(&z);
        c.step(T0);
        assert!(
            !recompress_writes(&z)
                .iter()
                .any(|w| w.starts_with("recompress"))
        );
        assert_eq!(
            metric(
                &c.metrics(),
                "zramctl_recompress_errors_total{device=\"zram0\"}"
            ),
            1.0
        );
        // No recompression in the driver: said once, never tried again.
        let z = fake(&[]);
        z.with("zram0", |d| d.recomp_support = false);
        let mut c = core(&z);
        c.step(T0);
        c.step(T0 + 700 * S);
        assert!(
            !recompress_writes(&z)
                .iter()
                .any(|w| w.starts_with("recompress"))
        );
        assert_eq!(
            metric(
                &c.metrics(),
                "zramctl_recompress_runs_total{device=\"zram0\"}"
            ),
            0.0
        );
    }
}

//! util-linux compatibility, proven differentially: the same argument lists
//! go through util-linux's `/usr/sbin/zramctl` (the oracle) and ours, on
//! this host's real zram devices, and stdout, stderr (program path
//! normalised) and the exit code must be equal, and so must the devices'
//! state afterwards (disksize, algorithm, which devices exist).
//!
//! The devices are made for the test with `hot_add` (A: 64 MiB lz4 with
//! data, B: unused, C: swap) and removed afterwards; a device of someone
//! else's that is in use is never touched. A free, unopened device of
//! someone else's below ours (the host's zram0) is borrowed for the run (set
//! up, then reset), so that `--find` reaches ours and `hot_add`. Before each
//! run of either tool the devices are put back in the same state. The
//! differences that are deliberate (`-V`, `-h`) are listed in
//! `docs/util-linux.md` and checked here for what they must still do.
//!
//! Also here: zram-tools' `zramswap start/status/stop`, unchanged, with ours
//! first in PATH. Both need root, zram with `hot_add` and util-linux's
//! binary; they skip with the reason otherwise.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
    time::Instant,
};

use zramctl_tests::{is_root, write_pages};

const ORACLE: &str = "/usr/sbin/zramctl";
const CONTROL: &str = "/sys/class/zram-control";
static LOCK: Mutex<()> = Mutex::new(());

fn ours() -> &'static str {
    env!("CARGO_BIN_EXE_zramctl")
}

/// Why this host cannot run the comparison, if it cannot.
fn unusable() -> Option<String> {
    if !is_root() {
        return Some("not root".into());
    }
    if !Path::new(ORACLE).exists() {
        return Some(format!("{ORACLE} (util-linux's zramctl) is not installed"));
    }
    if !Path::new(CONTROL).join("hot_add").exists() {
        return Some(format!(
            "{CONTROL}/hot_add is missing (no zram, or zram without hot_add)"
        ));
    }
    None
}

macro_rules! require_host {
    () => {
        if let Some(why) = unusable() {
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

fn read(dev: u32, attr: &str) -> String {
    fs::read_to_string(format!("/sys/block/zram{dev}/{attr}"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn write(dev: u32, attr: &str, value: &str) -> Result<(), String> {
    fs::write(format!("/sys/block/zram{dev}/{attr}"), value)
        .map_err(|e| format!("zram{dev}/{attr} <- {value}: {e}"))
}

fn exists(dev: u32) -> bool {
    Path::new(&format!("/sys/block/zram{dev}")).exists()
}

fn zram_devices() -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("zram"))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    v.sort();
    v
}

fn hot_add() -> u32 {
    fs::read_to_string(Path::new(CONTROL).join("hot_add"))
        .expect("hot_add")
        .trim()
        .parse()
        .expect("hot_add number")
}

fn hot_remove(dev: u32) {
    let _ = fs::write(Path::new(CONTROL).join("hot_remove"), dev.to_string());
}

fn in_swap(dev: u32) -> bool {
    fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(&format!("/dev/zram{dev}")))
}

/// Free (no disksize) and not held open by anyone (O_EXCL open works).
fn free_and_unopened(dev: u32) -> bool {
    read(dev, "disksize") == "0"
        && fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(format!("/dev/zram{dev}"))
            .is_ok()
}

fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd}: {text}"))
    }
}

/// Waits for udev/devtmpfs to make `/dev/zramN`.
fn wait_node(dev: u32) {
    for _ in 0..200 {
        if Path::new(&format!("/dev/zram{dev}")).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("/dev/zram{dev} did not appear");
}

const A_PAGES: u64 = 256;

/// The test's devices and what it borrowed.
struct Fixture {
    a: u32,
    b: u32,
    c: u32,
    b_algorithm: String,
    borrowed: Vec<u32>,
    /// zram devices that existed at the start (others are removed on restore).
    initial: Vec<u32>,
}

impl Fixture {
    fn new() -> Fixture {
        let before = zramctl_devices_state();
        let mut borrowed = Vec::new();
        let (a, b, c) = (hot_add(), hot_add(), hot_add());
        for d in [a, b, c] {
            wait_node(d);
        }
        // Someone else's free device below ours would be --find's pick:
        // borrow it (it is free and nobody holds it open) for the run.
        for d in before
            .keys()
            .copied()
            .filter(|d| *d < b && ![a, b, c].contains(d))
        {
            if free_and_unopened(d) && write(d, "disksize", "16M").is_ok() {
                borrowed.push(d);
            }
        }
        let f = Fixture {
            a,
            b,
            c,
            b_algorithm: selected(&read(b, "comp_algorithm")),
            borrowed,
            initial: zram_devices(),
        };
        f.restore();
        f
    }

    /// Puts every device back as the cases expect it.
    fn restore(&self) {
        for d in [self.a, self.b, self.c] {
            for _ in 0..8 {
                if exists(d) {
                    break;
                }
                let n = hot_add();
                if n != d && !self.initial.contains(&n) {
                    hot_remove(n);
                }
            }
            assert!(exists(d), "zram{d} could not be re-created");
            wait_node(d);
        }
        for d in zram_devices() {
            if !self.initial.contains(&d) {
                let _ = write(d, "reset", "1");
                hot_remove(d);
            }
        }
        for &d in &self.borrowed {
            if read(d, "disksize") != (16u64 << 20).to_string() {
                let _ = write(d, "reset", "1");
                write(d, "disksize", "16M").unwrap();
            }
        }
        let a_ok = read(self.a, "disksize") == (64u64 << 20).to_string()
            && selected(&read(self.a, "comp_algorithm")) == "lz4"
            && read(self.a, "mm_stat").split_whitespace().next()
                == Some(&(A_PAGES * 4096).to_string());
        if !a_ok {
            write(self.a, "reset", "1").unwrap();
            write(self.a, "comp_algorithm", "lz4").unwrap();
            write(self.a, "disksize", "64M").unwrap();
            write_pages(Path::new(&format!("/dev/zram{}", self.a)), 3, A_PAGES).unwrap();
        }
        if read(self.b, "disksize") != "0" {
            write(self.b, "reset", "1").unwrap();
        }
        if selected(&read(self.b, "comp_algorithm")) != self.b_algorithm {
            write(self.b, "comp_algorithm", &self.b_algorithm).unwrap();
        }
        if !in_swap(self.c) {
            let _ = write(self.c, "reset", "1");
            write(self.c, "disksize", "32M").unwrap();
            sh(&format!(
                "mkswap /dev/zram{0} >/dev/null && swapon -p 1 /dev/zram{0}",
                self.c
            ))
            .unwrap();
        }
    }

    /// The argument list with the placeholders filled in.
    fn args(&self, case: &[&str]) -> Vec<String> {
        let x = zram_devices().last().copied().unwrap_or(0) + 40;
        case.iter()
            .map(|a| {
                a.replace("{A}", &format!("/dev/zram{}", self.a))
                    .replace("{a}", &format!("zram{}", self.a))
                    .replace("{B}", &format!("/dev/zram{}", self.b))
                    .replace("{b}", &format!("zram{}", self.b))
                    .replace("{C}", &format!("/dev/zram{}", self.c))
                    .replace("{X}", &format!("/dev/zram{x}"))
                    .replace("{x}", &format!("zram{x}"))
            })
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = sh(&format!("swapoff /dev/zram{}", self.c));
        for d in zram_devices() {
            if !self.initial.contains(&d) || [self.a, self.b, self.c].contains(&d) {
                let _ = write(d, "reset", "1");
                hot_remove(d);
            }
        }
        for &d in &self.borrowed {
            let _ = write(d, "reset", "1");
        }
    }
}

/// `lz4` from `lzo [lz4] zstd`.
fn selected(comp: &str) -> String {
    comp.split_whitespace()
        .find_map(|a| a.strip_prefix('[').and_then(|a| a.strip_suffix(']')))
        .unwrap_or("")
        .to_owned()
}

/// Which zram devices exist, with disksize and algorithm.
fn zramctl_devices_state() -> BTreeMap<u32, (String, String)> {
    zram_devices()
        .into_iter()
        .map(|d| {
            (
                d,
                (read(d, "disksize"), selected(&read(d, "comp_algorithm"))),
            )
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    state: BTreeMap<u32, (String, String)>,
}

fn run(bin: &str, args: &[String]) -> Outcome {
    let out = Command::new(bin)
        .args(args)
        .env("LC_ALL", "C")
        .env_remove("ZRAMCTL_SYSFS_ROOT")
        .output()
        .unwrap();
    // glibc's getopt names the program as invoked: the path differs.
    let norm = |s: &[u8]| String::from_utf8_lossy(s).replace(bin, "zramctl");
    Outcome {
        code: out.status.code(),
        stdout: norm(&out.stdout),
        stderr: norm(&out.stderr),
        state: zramctl_devices_state(),
    }
}

/// What differs on purpose (see docs/util-linux.md): the exit code must
/// still match and the output be there.
fn deliberate(args: &[&str]) -> Option<&'static str> {
    match args {
        ["-V"] | ["--version"] => Some("version names zramctl, not util-linux"),
        ["-h"] | ["--help"] => Some("help also lists our commands and --sysfs-root"),
        _ => None,
    }
}

/// Extra step before a case: B in use too, so `--find` must `hot_add`.
const FILL_B: &str = "@fill-b";

const CASES: &[&[&str]] = &[
    // listing and one device
    &[],
    &["{A}"],
    &["{a}"],
    &["{B}"],
    &["{C}"],
    &["{X}"],
    &["{x}"],
    &["/dev/null"],
    &["/sys/block/{a}"],
    &["--", "{A}"],
    // output formats
    &["-b"],
    &["-b", "{A}"],
    &["--bytes", "{C}"],
    &["-n"],
    &["-n", "{A}"],
    &["-bn", "{A}"],
    &["--raw"],
    &["--raw", "{A}"],
    &["--raw", "-n", "{C}"],
    &["--output-all"],
    &["--output-all", "{A}"],
    &["--output-all", "-b", "--raw", "{A}"],
    &["-o", "NAME,DISKSIZE", "{A}"],
    &["-o", "name,algorithm,mountpoint"],
    &[
        "-o",
        "NAME,ZERO-PAGES,MEM-LIMIT,MEM-USED,MIGRATED",
        "-b",
        "{A}",
    ],
    &["--output=NAME,TOTAL", "{A}"],
    &["-oNAME,STREAMS", "{C}"],
    &["{A}", "-o", "NAME", "-o", "DISKSIZE"],
    &["-o", "NAME", "--output-all", "{A}"],
    &["--noheadings", "--raw", "-o", "NAME,DISKSIZE,DATA,COMPR"],
    &["-o", "NAME,BOGUS,DATA", "{A}"],
    &["-o", "NAME,,DATA"],
    &["-o", ""],
    &["-o", "NAME,"],
    &["--out", "NAME"],
    &["--outp=NAME", "{A}"],
    // --find
    &["-f"],
    &["--find"],
    &["-f", "{A}"],
    &["-f", "-o", "NAME"],
    &["-f", "-a", "lz4"],
    &["-f", "-s", "64M"],
    &["--find", "--size", "4G", "--algorithm", "lz4"],
    &[FILL_B, "-f", "-s", "64M"],
    &[FILL_B, "--find"],
    // setup
    &["-s", "64M", "{B}"],
    &["{B}", "-s", "64M", "-a", "lz4"],
    &["{B}", "--size", "64MiB", "--algorithm", "lzo"],
    &["{b}", "--size=100MB"],
    &["{B}", "-s", "1.5G"],
    &["{B}", "-s", "0x100000"],
    &["{B}", "-s", "010M"],
    &["{B}", "-s", "64k"],
    &["{B}", "-s", "0"],
    &["{B}", "-s", "64X"],
    &["{B}", "-s", "64 M"],
    &["{B}", "-s", "-1"],
    &["{B}", "-s", "99999999999999999999"],
    &["{B}", "-s", "16E"],
    &["{B}", "-s", "64M", "-a", "nosuchalg"],
    &["{B}", "-s", "64M", "-t", "4"],
    &["{B}", "-s", "64M", "-t", "x"],
    &["{B}", "-s", "64M", "-t", "-1"],
    &["{A}", "-s", "32M"],
    &["{C}", "-s", "32M"],
    &["-s", "64M"],
    &["{X}", "-s", "64M"],
    &["-s", "64M", "-r", "{B}"],
    &["-r", "-s", "1M", "{B}"],
    // reset
    &["-r", "{B}"],
    &["-r", "{b}"],
    &["--reset", "{A}", "{B}"],
    &["-r", "{X}"],
    &["-r", "{x}"],
    &["-r"],
    &["-r", "{C}"],
    // misuse
    &["{A}", "{B}"],
    &["-a", "lz4", "{A}"],
    &["-t", "2"],
    &["-x"],
    &["--bogus"],
    &["--bogus=1"],
    &["--size"],
    &["-s"],
    &["--bytes=1"],
    // deliberate differences
    &["-V"],
    &["--version"],
    &["-h"],
];

#[test]
fn util_linux_forms_match_util_linux() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require_host!();
    let started = Instant::now();
    let fx = Fixture::new();
    println!(
        "devices: A=zram{} (64M lz4, data) B=zram{} (unused) C=zram{} (swap); borrowed: {:?}",
        fx.a, fx.b, fx.c, fx.borrowed
    );
    let (mut same, mut deliberate_n, mut failures) = (0, 0, Vec::new());
    for case in CASES {
        let fill_b = case.first() == Some(&FILL_B);
        let raw: Vec<&str> = case.iter().copied().filter(|a| *a != FILL_B).collect();
        let args = fx.args(&raw);
        let mut attempt = 0;
        let (oracle, mine) = loop {
            attempt += 1;
            let prep = || {
                fx.restore();
                if fill_b {
                    write(fx.b, "disksize", "16M").unwrap();
                }
            };
            prep();
            let oracle = run(ORACLE, &args);
            prep();
            let mine = run(ours(), &args);
            fx.restore();
            // Someone else's device changing between the two runs shows in
            // a listing: run the pair again.
            if oracle != mine && attempt < 3 && raw.is_empty() {
                continue;
            }
            break (oracle, mine);
        };
        if let Some(why) = deliberate(&raw) {
            deliberate_n += 1;
            println!("deliberate: {args:?}: {why}");
            assert_eq!(oracle.code, mine.code, "{args:?}");
            assert!(!mine.stdout.is_empty(), "{args:?}");
            continue;
        }
        if oracle == mine {
            same += 1;
        } else {
            failures.push(format!(
                "{args:?}\n  util-linux: {oracle:?}\n  ours:       {mine:?}"
            ));
        }
    }
    println!(
        "{} argument lists: {same} identical, {deliberate_n} deliberate differences, {} differ ({:.1}s)",
        CASES.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(CASES.len() >= 60);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A directory with `zramctl` (ours) and a `modprobe` stand-in: this host's
/// zram is built in, so `modprobe zram` has nothing to load and `modprobe -r
/// zram` nothing to unload (zram-tools' script stops by unloading it).
fn path_with_ours(dir: &Path) -> String {
    std::os::unix::fs::symlink(ours(), dir.join("zramctl")).unwrap();
    fs::write(dir.join("modprobe"), "#!/bin/sh\nexit 0\n").unwrap();
    sh(&format!("chmod +x {}/modprobe", dir.display())).unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The zram-tools package's `zramswap`, unpacked (not installed: its
/// postinst would start it on the host's zram0).
fn zramswap_script(dir: &Path) -> Result<PathBuf, String> {
    let deb = sh(&format!(
        "cd {} && apt-get download zram-tools >/dev/null 2>&1 && ls zram-tools_*.deb",
        dir.display()
    ))?;
    let deb = dir.join(deb.trim());
    sh(&format!(
        "dpkg-deb -x {} {}/root",
        deb.display(),
        dir.display()
    ))?;
    Ok(dir.join("root/usr/sbin/zramswap"))
}

#[test]
fn zram_tools_zramswap_runs_with_ours() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require_host!();
    if sh("command -v unshare && command -v mkswap && command -v swapon").is_err() {
        eprintln!("SKIP: unshare, mkswap or swapon missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = match zramswap_script(dir.path()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIP: cannot get zram-tools' zramswap from the Debian archive: {e}");
            return;
        }
    };
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let path = path_with_ours(&bin);
    // zramswap drives /dev/zram0 by name. It gets a device of its own in a
    // private mount namespace: our hot-added zramN's node and sysfs
    // directory are bind-mounted over zram0's, /etc/default holds our
    // zramswap config.
    let dev = hot_add();
    wait_node(dev);
    let conf = dir.path().join("zramswap.conf");
    fs::write(&conf, "ALGO=lz4\nSIZE=48\nPRIORITY=5\n").unwrap();
    let inner = format!(
        "set -e
mount --make-rprivate /
mount --bind /dev/zram{dev} /dev/zram0
mount --bind /sys/devices/virtual/block/zram{dev} /sys/devices/virtual/block/zram0
mount -t tmpfs zramswap-test /etc/default
cp {conf} /etc/default/zramswap
export PATH={path}
bash {script} start 2>&1
echo ---status
bash {script} status
echo ---util-linux
/usr/sbin/zramctl /dev/zram0
echo ---swaps
grep -cE '^/dev/zram(0|{dev})[[:space:]]' /proc/swaps || true
echo ---stop
bash {script} stop 2>&1
echo ---after
grep -cE '^/dev/zram(0|{dev})[[:space:]]' /proc/swaps || true",
        conf = conf.display(),
        script = script.display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "bash", "-c", &inner])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    let _ = sh(&format!("swapoff /dev/zram{dev}"));
    let _ = write(dev, "reset", "1");
    hot_remove(dev);
    assert!(out.status.success(), "zramswap failed");
    let section = |name: &str| -> String {
        text.split(&format!("---{name}\n"))
            .nth(1)
            .unwrap_or("")
            .split("---")
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let status = section("status");
    assert!(
        status.contains("/dev/zram0 lz4") && status.contains("48M") && status.contains("[SWAP]"),
        "{status}"
    );
    assert_eq!(
        status,
        section("util-linux"),
        "ours and util-linux's show the same"
    );
    assert_eq!(section("swaps").trim(), "1", "zramswap start made it swap");
    assert_eq!(
        section("after").trim(),
        "0",
        "zramswap stop took the swap down"
    );
}

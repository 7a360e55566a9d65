//! VM tests of backing files zramctl provisions (`setup --backing-file
//! [--encrypt]`) and of `zramctl recompress`, each body run on upstream C
//! zram (`zram1`) and on rzram (`rzram1`):
//!
//! - a written-back page's plaintext never appears in the raw backing file
//!   when encrypted (a marker in every page, scanned for: 0 hits), and does
//!   without `--encrypt` (the control); data round-trips through the stack;
//!   writeback pages/s through the encrypted stack and a plain loop device,
//!   measured in the same run and printed (never asserted);
//! - bytes of the backing file changed under dm-integrity make reading those
//!   pages an I/O error, never wrong data;
//! - a setup killed after each of its steps (file, loop, integrity, crypt,
//!   backing_dev) is cleaned up by the next `setup` or `reset`;
//! - recompression with zstd shrinks compr_data_size of an idle set and the
//!   data stays identical (a clear error where the driver cannot recompress).
//!
//! The backing files live on an ext4 made on the VM's scratch disk.
//! Needs root and our kernel with CONFIG_DM_CRYPT, CONFIG_DM_INTEGRITY,
//! CONFIG_CRYPTO_AES and CONFIG_CRYPTO_GCM; `#[ignore]`d on the host.

use std::{
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use zramctl_tests::{
    AlignedBuf, Kind, PAGE, bd_stat, drop_caches, load_rzram, page_data, read_bytes_direct, sh,
    sysfs_read, sysfs_write, write_bytes_direct, zramctl_bin,
};

const MARKER: &[u8] = b"ZRAMCTL-PLAINTEXT-MARKER-5f3a9c";
const MNT: &str = "/tmp/zramctl-backing-fs";

/// An ext4 on the scratch disk for the backing files, unmounted when dropped.
struct Scratch;

impl Scratch {
    fn new() -> Scratch {
        let disk = std::env::var("ZRAMCTL_BACKING_DISK").expect("run with cargo xtask vm");
        let _ = Command::new("umount")
            .arg(MNT)
            .stderr(std::process::Stdio::null())
            .status();
        sh(&format!(
            "mkfs.ext4 -q -F -E nodiscard {disk} && mkdir -p {MNT} && mount {disk} {MNT}"
        ));
        Scratch
    }

    fn file(&self, name: &str) -> PathBuf {
        Path::new(MNT).join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(MNT).status();
    }
}

/// The device under test; `zramctl reset --delete-backing-file` when dropped.
struct Dev(Kind);

impl Dev {
    fn new(kind: Kind) -> Dev {
        if kind == Kind::Rzram {
            load_rzram();
        }
        let d = Dev(kind);
        let _ = zramctl_env(&["reset", kind.dev()], &[]);
        d
    }

    fn name(&self) -> &'static str {
        self.0.dev()
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/{}", self.name()))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = zramctl_env(&["reset", self.name(), "--delete-backing-file"], &[]);
    }
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn zramctl_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let o = Command::new(zramctl_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("running zramctl");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[track_caller]
fn zramctl_ok(args: &[&str]) -> String {
    let o = zramctl_env(args, &[]);
    assert_eq!(
        o.code,
        Some(0),
        "zramctl {args:?} failed:\n{}\n{}",
        o.stdout,
        o.stderr
    );
    print!("{}", o.stdout);
    o.stdout
}

/// A page of text-like data with the marker at its start and middle.
fn marker_page(i: u64) -> Vec<u8> {
    let mut p = page_data(7, i);
    p[..MARKER.len()].copy_from_slice(MARKER);
    p[2048..2048 + MARKER.len()].copy_from_slice(MARKER);
    p
}

fn write_marker_pages(dev: &Path, pages: u64) {
    let mut all = Vec::with_capacity(pages as usize * PAGE);
    for i in 0..pages {
        all.extend_from_slice(&marker_page(i));
    }
    for (k, chunk) in all.chunks(256 * PAGE).enumerate() {
        write_bytes_direct(dev, k as u64 * 256, chunk).expect("writing pages");
    }
}

/// Reads every page with O_DIRECT, one page per read: (pages equal to what
/// was written, pages that read as EIO). Panics on wrong data.
fn check_pages(dev: &Path, pages: u64) -> (u64, u64) {
    let (mut good, mut eio) = (0, 0);
    for i in 0..pages {
        match read_bytes_direct(dev, i, 1) {
            Ok(b) => {
                assert!(
                    b == marker_page(i),
                    "page {i} of {} read back WRONG data",
                    dev.display()
                );
                good += 1;
            }
            // dm-integrity's BLK_STS_PROTECTION reaches the reader as
            // EILSEQ; EIO is the other form of "I/O error".
            Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EILSEQ)) => eio += 1,
            Err(e) => panic!("reading page {i}: {e}"),
        }
    }
    (good, eio)
}

fn mm_compr(dev: &str) -> u64 {
    sysfs_read(dev, "mm_stat")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Idle-marks everything and writes it back; (pages, seconds).
fn writeback_all(dev: &str) -> (u64, f64) {
    sysfs_write(dev, "idle", "all").expect("idle all");
    let before = bd_stat(dev).2;
    let t = Instant::now();
    sysfs_write(dev, "writeback", "idle").expect("writeback idle");
    let secs = t.elapsed().as_secs_f64();
    (bd_stat(dev).2 - before, secs)
}

/// Occurrences of MARKER in a file, read with O_DIRECT (not the page cache).
fn count_marker(file: &Path) -> u64 {
    use std::io::Read as _;
    drop_caches();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(file)
        .expect("opening the backing file");
    let mut buf = AlignedBuf::new(1 << 20);
    let mut hits = 0;
    loop {
        let b = buf.bytes_mut();
        let n = f.read(b).expect("reading the backing file");
        if n == 0 {
            break;
        }
        // The marker never straddles a 1 MiB boundary (it sits at 0 and 2048
        // of 4K-aligned pages).
        let hay = &b[..n];
        let mut at = 0;
        while at < hay.len() {
            // SAFETY: memmem reads within hay[at..] and MARKER, both live.
            let p = unsafe {
                libc::memmem(
                    hay[at..].as_ptr().cast(),
                    hay.len() - at,
                    MARKER.as_ptr().cast(),
                    MARKER.len(),
                )
            };
            if p.is_null() {
                break;
            }
            hits += 1;
            at = p as usize - hay.as_ptr() as usize + 1;
        }
    }
    hits
}

/// Names of our dm devices for `dev` that exist now.
fn our_dm(dev: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Ok(name) = std::fs::read_to_string(e.path().join("dm/name"))
            && name.trim().starts_with(&format!("zramctl-{dev}-"))
        {
            out.push(format!("{} ({n})", name.trim()));
        }
    }
    out
}

/// Loop devices attached to `file`.
fn loops_on(file: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file"))
            && Path::new(b.trim()) == file
        {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// Why `--encrypt` cannot be tested on this kernel, if it cannot: the
/// guest kernel lacks dm-integrity or dm-crypt (CONFIG_DM_INTEGRITY,
/// CONFIG_DM_CRYPT, CONFIG_CRYPTO_AES, CONFIG_CRYPTO_GCM in
/// kernel/configs/zramctl.config). The plain-file parts still run.
fn encryption_unavailable() -> Option<String> {
    let t = sh("dmsetup targets");
    let have = |n: &str| t.lines().any(|l| l.split_whitespace().next() == Some(n));
    (!have("integrity") || !have("crypt")).then(|| {
        format!(
            "this kernel has no dm-integrity/dm-crypt (dmsetup targets: {}): encrypted parts skipped",
            t.split_whitespace()
                .step_by(2)
                .collect::<Vec<_>>()
                .join(" ")
        )
    })
}

#[track_caller]
fn assert_clean(dev: &str, file: &Path) {
    assert_eq!(our_dm(dev), Vec::<String>::new(), "dm devices left behind");
    assert_eq!(
        loops_on(file),
        Vec::<String>::new(),
        "loop devices left behind"
    );
    assert!(
        !Path::new(&format!("/run/zramctl/{dev}.backing")).exists(),
        "record left behind"
    );
    assert_eq!(sysfs_read(dev, "initstate").trim(), "0");
}

// ---------------------------------------------------------------------------
// Plaintext scan, round trip, rates.

fn plaintext_and_rates(kind: Kind) {
    let scratch = Scratch::new();
    let dev = Dev::new(kind);
    let pages = 4096u64; // 16 MiB
    let mut rates = Vec::new();
    let skip = encryption_unavailable();
    // Plain, encrypted, encrypted, plain: both see the same warm-up and
    // drift. The debug kernel runs each once (it checks paths, not rates).
    let rounds = zramctl_tests::soak(4, 2) as usize;
    for encrypt in [false, true, true, false].into_iter().take(rounds) {
        if encrypt && let Some(why) = &skip {
            println!("{}: skipped: {why}", dev.name());
            return;
        }
        let file = scratch.file(&format!("{}-{encrypt}.img", dev.name()));
        let mut args = vec![
            "setup",
            dev.name(),
            "--size",
            "64M",
            "--backing-file",
            file.to_str().unwrap(),
            "--backing-size",
            "96M",
        ];
        if encrypt {
            args.push("--encrypt");
        }
        let out = zramctl_ok(&args);
        assert!(
            out.contains(if encrypt { "dm-crypt aes-gcm" } else { "file" }),
            "{out}"
        );
        assert!(
            out.contains("direct I/O"),
            "the loop device must do direct I/O: {out}"
        );
        let backing = sysfs_read(dev.name(), "backing_dev");
        assert!(
            backing
                .trim()
                .starts_with(if encrypt { "/dev/dm-" } else { "/dev/loop" }),
            "{backing}"
        );
        write_marker_pages(&dev.path(), pages);
        let (written, secs) = writeback_all(dev.name());
        assert_eq!(written, pages, "every page written back");
        rates.push((encrypt, written as f64 / secs));
        // Round trip: every page comes back from the backing file intact.
        drop_caches();
        assert_eq!(check_pages(&dev.path(), pages), (pages, 0));
        assert_eq!(
            bd_stat(dev.name()).1,
            pages,
            "all read from the backing device"
        );
        let hits = count_marker(&file);
        println!(
            "{}: {} backing file: {hits} marker hits in {} pages written back",
            dev.name(),
            if encrypt { "encrypted" } else { "plain" },
            written
        );
        if encrypt {
            assert_eq!(hits, 0, "plaintext found in the encrypted backing file");
        } else {
            assert!(
                hits >= pages,
                "control: plain file must show the marker ({hits} hits)"
            );
        }
        zramctl_ok(&["reset", dev.name(), "--delete-backing-file"]);
        assert_clean(dev.name(), &file);
        assert!(!file.exists(), "--delete-backing-file");
    }
    let mean = |e: bool| {
        let v: Vec<f64> = rates.iter().filter(|r| r.0 == e).map(|r| r.1).collect();
        (v.iter().sum::<f64>() / v.len() as f64, v)
    };
    let ((plain, pv), (enc, ev)) = (mean(false), mean(true));
    println!(
        "{}: idle writeback of {pages} pages: plain loop {plain:.0} pages/s {pv:.0?}, dm-integrity + dm-crypt {enc:.0} pages/s {ev:.0?} ({:.0}% of plain)",
        dev.name(),
        100.0 * enc / plain
    );
    if let Ok(dir) = std::env::var("ZRAMCTL_RESULTS") {
        let _ = std::fs::write(
            format!("{dir}/backing-rate-{}.txt", dev.name()),
            format!("plain {plain:.0} encrypted {enc:.0} pages/s\n"),
        );
    }
}

#[test]
#[ignore = "VM test: needs our kernel (cargo xtask vm-test backing)"]
fn plaintext_never_reaches_the_encrypted_file_zram() {
    plaintext_and_rates(Kind::Zram);
}

#[test]
#[ignore = "VM test: needs our kernel (cargo xtask vm-test backing)"]
fn plaintext_never_reaches_the_encrypted_file_rzram() {
    plaintext_and_rates(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// Corruption.

fn corruption_reads_as_eio(kind: Kind) {
    if let Some(why) = encryption_unavailable() {
        println!("skipped: {why}");
        return;
    }
    let scratch = Scratch::new();
    let dev = Dev::new(kind);
    let file = scratch.file(&format!("{}-corrupt.img", dev.name()));
    zramctl_ok(&[
        "setup",
        dev.name(),
        "--size",
        "32M",
        "--backing-file",
        file.to_str().unwrap(),
        "--backing-size",
        "32M",
        "--encrypt",
    ]);
    let pages = 1024u64;
    write_marker_pages(&dev.path(), pages);
    let (written, _) = writeback_all(dev.name());
    assert_eq!(written, pages);
    // Flip one byte in every 4K block of the file past the superblock,
    // underneath dm-integrity (through the loop device, O_DIRECT).
    let integrity = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .find(|e| {
            std::fs::read_to_string(e.path().join("dm/name"))
                .is_ok_and(|n| n.trim() == format!("zramctl-{}-integrity", dev.name()))
        })
        .expect("the integrity device");
    let lower = std::fs::read_dir(integrity.path().join("slaves"))
        .unwrap()
        .flatten()
        .next()
        .expect("a device under dm-integrity")
        .file_name();
    let lower = PathBuf::from("/dev").join(lower);
    let len = std::fs::metadata(&file).unwrap().len();
    {
        use std::os::unix::fs::FileExt as _;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&lower)
            .unwrap();
        let chunk = 1usize << 20;
        let mut buf = AlignedBuf::new(chunk);
        let mut off = 0u64;
        while off < len {
            let b = buf.bytes_mut();
            f.read_exact_at(b, off).unwrap();
            for (k, block) in b.chunks_mut(PAGE).enumerate() {
                if off + (k * PAGE) as u64 >= 4096 {
                    block[100] ^= 0x5a;
                }
            }
            f.write_all_at(b, off).unwrap();
            off += chunk as u64;
        }
    }
    drop_caches();
    let (good, eio) = check_pages(&dev.path(), pages);
    println!(
        "{}: after corrupting the backing file: {good} pages read intact, {eio} I/O errors (EILSEQ or EIO), 0 wrong",
        dev.name()
    );
    assert_eq!(
        (good, eio),
        (0, pages),
        "every corrupted page must read as an I/O error"
    );
    // zram counts failed backing-device reads in neither kind's io_stat
    // (the error reaches the reader); shown, not asserted.
    println!(
        "{}: io_stat after: {}",
        dev.name(),
        sysfs_read(dev.name(), "io_stat").trim()
    );
    zramctl_ok(&["reset", dev.name(), "--delete-backing-file"]);
    assert_clean(dev.name(), &file);
}

#[test]
#[ignore = "VM test: needs our kernel (cargo xtask vm-test backing)"]
fn corrupted_backing_file_reads_as_eio_zram() {
    corruption_reads_as_eio(Kind::Zram);
}

#[test]
#[ignore = "VM test: needs our kernel (cargo xtask vm-test backing)"]
fn corrupted_backing_file_reads_as_eio_rzram() {
    corruption_reads_as_eio(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// Crashes half-way.

fn crash_then_cleanup(kind: Kind) {
    let scratch = Scratch::new();
    let dev = Dev::new(kind);
    let file = scratch.file(&format!("{}-crash.img", dev.name()));
    let mut setup = vec![
        "setup",
        dev.name(),
        "--size",
        "16M",
        "--backing-file",
        file.to_str().unwrap(),
        "--backing-size",
        "16M",
    ];
    let steps: &[&str] = match encryption_unavailable() {
        None => {
            setup.push("--encrypt");
            &["file", "loop", "integrity", "crypt", "backing"]
        }
        Some(why) => {
            println!("{}: {why}: crashes of the plain stack only", dev.name());
            &["file", "loop", "backing"]
        }
    };
    let encrypted = steps.len() == 5;
    for (i, &step) in steps.iter().enumerate() {
        let o = zramctl_env(&setup, &[("ZRAMCTL_CRASH_AFTER", step)]);
        assert_eq!(
            o.code, None,
            "killed after {step}: {}{}",
            o.stdout, o.stderr
        );
        let left = our_dm(dev.name());
        let loops = loops_on(&file);
        println!(
            "{}: killed after {step}: left dm {left:?}, loops {loops:?}",
            dev.name()
        );
        match step {
            "file" => assert!(left.is_empty() && loops.is_empty()),
            "loop" => assert!(left.is_empty() && loops.len() == 1),
            "integrity" => assert_eq!(left.len(), 1),
            _ if !encrypted => assert!(left.is_empty() && loops.len() == 1),
            _ => assert_eq!(left.len(), 2),
        }
        if i % 2 == 0 {
            // The next setup cleans up and succeeds.
            let out = zramctl_ok(&setup);
            assert!(out.contains("cleaning up an earlier setup"), "{out}");
            write_marker_pages(&dev.path(), 64);
            drop_caches();
            assert_eq!(check_pages(&dev.path(), 64), (64, 0));
        }
        zramctl_ok(&["reset", dev.name()]);
        assert_clean(dev.name(), &file);
        assert!(file.exists(), "reset keeps the file by default");
    }
    // And a full setup after all that.
    zramctl_ok(&setup);
    write_marker_pages(&dev.path(), 256);
    assert_eq!(writeback_all(dev.name()).0, 256);
    drop_caches();
    assert_eq!(check_pages(&dev.path(), 256), (256, 0));
}

#[test]
#[ignore = "VM test: needs our kernel (cargo xtask vm-test backing)"]
fn killed_setup_is_cleaned_up_zram() {
    crash_then_cleanup(Kind::Zram);
}

#[test]
#[ignore = "VM test: needs our kernel (cargo xtask vm-test backing)"]
fn killed_setup_is_cleaned_up_rzram() {
    crash_then_cleanup(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// Recompression.

fn recompression(kind: Kind) {
    let dev = Dev::new(kind);
    if !Path::new(&format!("/sys/block/{}/recompress", dev.name())).exists() {
        let o = zramctl_env(
            &[
                "setup",
                dev.name(),
                "--size",
                "32M",
                "--recomp-algorithm",
                "zstd",
            ],
            &[],
        );
        assert_ne!(o.code, Some(0));
        println!("{}: no recompression: {}", dev.name(), o.stderr.trim());
        assert!(
            o.stderr.contains("recomp_algorithm is not available"),
            "{}",
            o.stderr
        );
        return;
    }
    zramctl_ok(&[
        "setup",
        dev.name(),
        "--size",
        "32M",
        "--algorithm",
        "lz4",
        "--recomp-algorithm",
        "zstd",
    ]);
    let pages = 2048u64;
    write_marker_pages(&dev.path(), pages);
    let before = mm_compr(dev.name());
    zramctl_ok(&["idle", dev.name(), "--all"]);
    let out = zramctl_ok(&["recompress", dev.name(), "--idle", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let after = mm_compr(dev.name());
    println!(
        "{}: recompressing {pages} idle pages lz4 -> zstd: compr_data_size {before} -> {after} ({:.1}% saved)",
        dev.name(),
        100.0 * (before - after) as f64 / before as f64
    );
    assert!(after < before, "zstd must shrink lz4's text pages");
    assert_eq!(v["saved_bytes"].as_u64(), Some(before - after));
    // Upstream's debugfs block_state says which slots were recompressed.
    if let Some(n) = v["recompressed_slots"].as_u64() {
        println!("{}: {n} of {pages} slots recompressed", dev.name());
        assert!(n > 0 && n <= pages, "{n}");
    }
    drop_caches();
    assert_eq!(check_pages(&dev.path(), pages), (pages, 0));
    // Recompressed pages are not recompressed again.
    zramctl_ok(&["idle", dev.name(), "--all"]);
    let out = zramctl_ok(&["recompress", dev.name(), "--idle", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["saved_bytes"].as_u64(), Some(0));
}

#[test]
#[ignore = "VM test: needs our kernel (cargo xtask vm-test backing)"]
fn recompression_saves_memory_zram() {
    recompression(Kind::Zram);
}

#[test]
#[ignore = "VM test: needs our kernel (cargo xtask vm-test backing)"]
fn recompression_saves_memory_rzram() {
    recompression(Kind::Rzram);
}

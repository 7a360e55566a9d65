//! VM tests of zram writeback that run the same bodies on upstream C zram
//! (`zram1`) and on rzram (`rzram1`): one `fn` per device kind calling a
//! shared body, so rzram is held to upstream's exact sysfs behaviour:
//! `backing_dev`, `bd_stat`, `writeback` (every mode and page selector),
//! `writeback_limit[_enable]`, `writeback_batch_size`, errnos, faults of the
//! backing device, ext4 and swap on top. They need root, our 7.3 kernel and
//! its spare disk, so they are `#[ignore]`d on the host and run inside the
//! VM by `cargo xtask vm-test`.
//!
//! With `ZRAMCTL_WB_COMPRESSED=1` (the suite runs the target twice) every
//! device is set up with `compressed_writeback` (upstream 7.0+): pages go
//! to the backing device as their compressed bytes, and the same bodies
//! must hold. rzram's `packed_writeback` has tests of its own (`packed`).
//!
//! Backing devices are dm-linear slices of the VM's scratch disk (`zram` the
//! first 512 MiB, `rzram` the second), so a fault test can swap a slice's
//! table for dm's `error` target under a live device. Everything a test sets
//! up (mount, swap, cgroup, device, dm slice) is undone by a guard, also when
//! the test fails half-way.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use zramctl_tests::{
    DmSlice, Kind, PAGE, dm_create, dm_remove, drop_caches, fields, in_vm, load_rzram, page_data,
    read_bytes_direct, sh, stats, sysfs_read, sysfs_write, write_bytes_direct, writeback,
    zramctl_bin,
};

/// First MiB of a kind's slice of the scratch disk.
fn slice_offset_mib(kind: Kind) -> u64 {
    match kind {
        Kind::Zram => 0,
        Kind::Rzram => SLICE_MIB,
    }
}

const SLICE_MIB: u64 = 512;

// ---------------------------------------------------------------------------
// Backing devices: dm slices of the scratch disk.

/// This kind's 512 MiB slice of the scratch disk (dm-linear), removed when
/// dropped.
fn slice(kind: Kind) -> DmSlice {
    DmSlice::linear(
        &format!("wb-{}", kind.dev()),
        slice_offset_mib(kind),
        SLICE_MIB,
    )
}

// ---------------------------------------------------------------------------
// The device under test.

/// A zram/rzram device set up by a test; swapoff, umount, cgroup removal
/// and reset when dropped, then its backing slice goes.
struct Dev {
    name: &'static str,
    path: PathBuf,
    mount: Option<PathBuf>,
    swap: bool,
    cgroup: Option<PathBuf>,
    // Dropped after Dev::drop has reset the device (fields drop after the body).
    backing: Option<DmSlice>,
}

impl Dev {
    /// `name` as set up by the caller, reset when dropped; no backing slice
    /// of its own.
    fn bare(name: &'static str) -> Dev {
        Dev {
            name,
            path: PathBuf::from(format!("/dev/{name}")),
            mount: None,
            swap: false,
            cgroup: None,
            backing: None,
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(m) = &self.mount {
            let _ = Command::new("umount").arg(m).status();
        }
        if self.swap {
            let _ = Command::new("swapoff").arg(&self.path).status();
        }
        if let Some(cg) = &self.cgroup {
            let _ = std::fs::remove_dir(cg);
        }
        // An unmount or swapoff may leave the device busy for a moment.
        for _ in 0..50 {
            if sysfs_write(self.name, "reset", "1").is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What every test does first: checks the kind has the writeback ABI
/// (failing clearly when it has not), then resets the device and puts back
/// the writeback settings a reset keeps (upstream keeps batch size and limit
/// across reset).
fn prepare(kind: Kind) -> &'static str {
    in_vm();
    let name = kind.dev();
    if kind == Kind::Rzram {
        load_rzram();
    }
    let dir = Path::new("/sys/block").join(name);
    assert!(dir.exists(), "no {}", dir.display());
    for attr in [
        "backing_dev",
        "bd_stat",
        "writeback",
        "writeback_limit",
        "writeback_limit_enable",
        "writeback_batch_size",
    ] {
        assert!(
            dir.join(attr).exists(),
            "{name} has no writeback ABI: {}/{attr} is missing{}",
            dir.display(),
            if kind == Kind::Rzram {
                " (rzram's writeback has not landed in kernel/ yet)"
            } else {
                " (kernel without CONFIG_ZRAM_WRITEBACK?)"
            }
        );
    }
    let _ = Command::new("swapoff")
        .arg(format!("/dev/{name}"))
        .stderr(std::process::Stdio::null())
        .status();
    sysfs_write(name, "reset", "1").unwrap_or_else(|e| panic!("{name}: reset: errno {e}"));
    // Kept across reset, as the batch size.
    set_compressed(name, compressed_run());
    if kind == Kind::Rzram {
        set_packed(name, false);
    }
    sysfs_write(name, "writeback_limit_enable", "0").unwrap();
    sysfs_write(name, "writeback_batch_size", "32").unwrap();
    if has_bio_pages(kind) {
        sysfs_write(name, "writeback_bio_pages", "32").unwrap();
    }
    name
}

/// Whether this run of the target writes back compressed
/// (`ZRAMCTL_WB_COMPRESSED=1`).
fn compressed_run() -> bool {
    std::env::var("ZRAMCTL_WB_COMPRESSED").is_ok_and(|v| v == "1")
}

/// Sets `compressed_writeback` (before the device is initialised).
fn set_compressed(name: &str, on: bool) {
    sysfs_write(name, "compressed_writeback", if on { "yes" } else { "no" })
        .unwrap_or_else(|e| panic!("{name}: compressed_writeback <- {on}: errno {e}"));
    assert_eq!(
        sysfs_read(name, "compressed_writeback"),
        format!("{}\n", u8::from(on))
    );
}

/// Sets rzram's `packed_writeback` (before the device is initialised).
fn set_packed(name: &str, on: bool) {
    sysfs_write(name, "packed_writeback", if on { "1" } else { "0" })
        .unwrap_or_else(|e| panic!("{name}: packed_writeback <- {on}: errno {e}"));
}

/// rzram's attribute beyond upstream: pages merged into one bio.
fn has_bio_pages(kind: Kind) -> bool {
    Path::new("/sys/block")
        .join(kind.dev())
        .join("writeback_bio_pages")
        .exists()
}

/// A fresh device of `disksize` with this kind's slice as backing device.
fn device(kind: Kind, disksize: &str) -> Dev {
    device_with(kind, disksize, compressed_run())
}

/// As [`device`], writing back compressed or not.
fn device_with(kind: Kind, disksize: &str, compressed: bool) -> Dev {
    let name = prepare(kind);
    set_compressed(name, compressed);
    attach(kind, name, disksize)
}

/// Device `name` (prepared, settings made) with this kind's slice as
/// backing device, initialised at `disksize`.
fn attach(kind: Kind, name: &'static str, disksize: &str) -> Dev {
    let backing = slice(kind);
    sysfs_write(name, "backing_dev", backing.path.to_str().unwrap()).unwrap_or_else(|e| {
        panic!(
            "{name}: backing_dev <- {}: errno {e}",
            backing.path.display()
        )
    });
    sysfs_write(name, "disksize", disksize).unwrap();
    let mut d = Dev::bare(name);
    d.backing = Some(backing);
    d
}

// ---------------------------------------------------------------------------
// Stats.

fn mark_idle(dev: &str) {
    sysfs_write(dev, "idle", "all").unwrap_or_else(|e| panic!("{dev}: idle <- all: errno {e}"));
}

// ---------------------------------------------------------------------------
// A page layout with known kinds of content, and a model of what writeback
// may pick.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Content {
    /// page_data: compresses ~2-3x.
    Text,
    /// All zeros: a same-filled page, never written back.
    Zero,
    /// One repeated 8-byte word: also same-filled.
    Pattern,
    /// Pseudo-random bytes: incompressible, stored whole ("huge").
    Random,
}

fn content_of(i: u64) -> Content {
    match i % 16 {
        3 => Content::Zero,
        7 => Content::Pattern,
        11 => Content::Random,
        _ => Content::Text,
    }
}

/// The bytes of page `i` of the layout for `seed`.
fn layout_page(seed: u64, i: u64) -> Vec<u8> {
    match content_of(i) {
        Content::Text => page_data(seed, i),
        Content::Zero => vec![0; PAGE],
        Content::Pattern => {
            let word = (seed ^ i).wrapping_mul(0x0101_0101_0101_0101) | 0x80;
            word.to_le_bytes().repeat(PAGE / 8)
        }
        Content::Random => {
            let mut s = (seed << 32 ^ i).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            let mut out = Vec::with_capacity(PAGE);
            while out.len() < PAGE {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                out.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            out
        }
    }
}

fn write_layout(dev: &Path, seed: u64, first: u64, pages: u64) {
    let data: Vec<u8> = (first..first + pages)
        .flat_map(|i| layout_page(seed, i))
        .collect();
    for (k, chunk) in data.chunks(256 * PAGE).enumerate() {
        write_bytes_direct(dev, first + 256 * k as u64, chunk)
            .unwrap_or_else(|e| panic!("writing {}: {e}", dev.display()));
    }
}

/// Reads pages `0..pages` back with O_DIRECT; the indexes that differ.
fn verify_layout(dev: &Path, seed: u64, pages: u64) -> Vec<u64> {
    let mut bad = Vec::new();
    let mut i = 0;
    while i < pages {
        let n = 256.min(pages - i);
        let data = read_bytes_direct(dev, i, n)
            .unwrap_or_else(|e| panic!("reading {} at page {i}: {e}", dev.display()));
        for (k, page) in data.chunks(PAGE).enumerate() {
            let idx = i + k as u64;
            if page != layout_page(seed, idx) {
                bad.push(idx);
            }
        }
        i += n;
    }
    bad
}

#[track_caller]
fn assert_layout_intact(dev: &Path, seed: u64, pages: u64) {
    let bad = verify_layout(dev, seed, pages);
    assert!(
        bad.is_empty(),
        "{} of {pages} pages differ, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
}

/// What `writeback` selects.
#[derive(Debug)]
enum Sel<'a> {
    Idle,
    Huge,
    HugeIdle,
    Incompressible,
    Pages(&'a [u64]),
}

/// The slot flags writeback looks at, for pages `0..pages` (all written).
struct Model {
    wb: Vec<bool>,
    idle: Vec<bool>,
}

impl Model {
    fn new(pages: u64) -> Model {
        Model {
            wb: vec![false; pages as usize],
            idle: vec![false; pages as usize],
        }
    }

    fn same(i: u64) -> bool {
        matches!(content_of(i), Content::Zero | Content::Pattern)
    }

    /// `idle` <- all: every stored page that is neither same-filled nor
    /// written back.
    fn mark_idle(&mut self) {
        for i in 0..self.wb.len() {
            self.idle[i] = !self.wb[i] && !Self::same(i as u64);
        }
    }

    /// A page written again: fresh in RAM, its backing block freed.
    fn rewritten(&mut self, i: u64) {
        self.wb[i as usize] = false;
        self.idle[i as usize] = false;
    }

    fn eligible(&self, sel: &Sel) -> Vec<u64> {
        let candidates: Vec<u64> = match sel {
            Sel::Pages(p) => p.to_vec(),
            _ => (0..self.wb.len() as u64).collect(),
        };
        candidates
            .into_iter()
            .filter(|&i| {
                let (wb, idle) = (self.wb[i as usize], self.idle[i as usize]);
                let huge = content_of(i) == Content::Random;
                !wb && !Self::same(i)
                    && match sel {
                        Sel::Idle => idle,
                        Sel::Huge => huge,
                        Sel::HugeIdle => huge && idle,
                        Sel::Incompressible => false,
                        Sel::Pages(_) => true,
                    }
            })
            .collect()
    }

    fn written_back(&mut self, pages: &[u64]) {
        for &i in pages {
            self.wb[i as usize] = true;
            self.idle[i as usize] = false;
        }
    }

    fn wb_count(&self) -> u64 {
        self.wb.iter().filter(|w| **w).count() as u64
    }
}

/// Writes `arg` to `writeback` and checks that exactly the pages the model
/// selects were written back.
#[track_caller]
fn step(d: &Dev, m: &mut Model, arg: &str, sel: Sel) {
    let before = stats(d.name);
    writeback(d.name, arg)
        .unwrap_or_else(|e| panic!("{}: writeback <- {arg:?}: errno {e}", d.name));
    let after = stats(d.name);
    let expect = m.eligible(&sel);
    m.written_back(&expect);
    println!(
        "{}: writeback <- {arg:?}: {} pages (bd_count {})",
        d.name,
        after.bd_writes - before.bd_writes,
        after.bd_count
    );
    assert_eq!(
        after.bd_writes - before.bd_writes,
        expect.len() as u64,
        "{}: writeback <- {arg:?} ({sel:?}) should write {} pages: {expect:?}",
        d.name,
        expect.len()
    );
    assert_eq!(
        after.bd_count,
        m.wb_count(),
        "{}: bd_count after {arg:?}",
        d.name
    );
    assert_eq!(after.failed_writes, before.failed_writes);
}

// ---------------------------------------------------------------------------
// a. ext4 on the device: idle writeback, remount, every file reads back.

fn ext4_idle_writeback_and_remount(kind: Kind) {
    let t = Instant::now();
    let mut d = device(kind, "256M");
    let mnt = PathBuf::from(format!("/tmp/wb-mnt-{}", d.name));
    sh(&format!(
        "mkfs.ext4 -q {dev} && mkdir -p {m} && mount {dev} {m}",
        dev = d.path.display(),
        m = mnt.display()
    ));
    d.mount = Some(mnt.clone());
    // ~40 MiB: Perl's library (text), random bytes, zeros.
    sh(&format!(
        "cp -a /usr/share/perl {m}/perl && head -c 12M /dev/urandom > {m}/random.bin && \
         head -c 8M /dev/zero > {m}/zeros.bin && sync",
        m = mnt.display()
    ));
    let sums = format!(
        "cd {} && find . -type f -print0 | sort -z | xargs -0 md5sum",
        mnt.display()
    );
    let before_sums = sh(&sums);
    let files = before_sums.lines().count();
    assert!(files > 500, "copied {files} files");
    let before = stats(d.name);
    assert_eq!((before.bd_count, before.bd_writes), (0, 0));
    assert!(before.compr > 0 && before.orig > 32 << 20, "{before:?}");

    mark_idle(d.name);
    writeback(d.name, "idle")
        .unwrap_or_else(|e| panic!("{}: writeback <- idle: errno {e}", d.name));
    let after = stats(d.name);
    println!(
        "{}: before {before:?}\n{}: after  {after:?}",
        d.name, d.name
    );
    // Every stored page that is not same-filled was idle; ext4 may have
    // touched a few metadata blocks since.
    let candidates = before.orig / 4096 - before.same;
    assert!(after.bd_writes > 0 && after.bd_count > 0, "{after:?}");
    assert_eq!(after.bd_count, after.bd_writes, "nothing freed yet");
    assert!(
        after.bd_count >= candidates * 9 / 10 && after.bd_count <= candidates,
        "wrote back {} of {candidates} candidate pages",
        after.bd_count
    );
    // Written-back pages leave zsmalloc: compressed bytes in RAM drop (the
    // huge ones by 4 KiB each); orig_data_size still counts them, as
    // upstream does.
    assert!(
        after.compr <= before.compr / 10,
        "compr_data_size {} -> {}",
        before.compr,
        after.compr
    );
    assert_eq!(after.huge, 0, "huge pages written back: {after:?}");
    assert!(after.orig >= before.orig - (1 << 20), "{after:?}");

    sh(&format!("umount {}", mnt.display()));
    d.mount = None;
    drop_caches();
    sh(&format!("mount {} {}", d.path.display(), mnt.display()));
    d.mount = Some(mnt.clone());
    let after_sums = sh(&sums);
    assert!(
        before_sums == after_sums,
        "files differ after writeback and remount:\n{}",
        before_sums
            .lines()
            .zip(after_sums.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("{a}\n{b}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let reread = stats(d.name);
    assert!(
        reread.bd_reads > after.bd_reads,
        "reading the files went to the backing device: {reread:?}"
    );
    assert_eq!((reread.failed_reads, reread.failed_writes), (0, 0));
    println!(
        "{}: {files} files byte-identical after writeback of {} pages; bd_reads {} ({:.1}s)",
        d.name,
        after.bd_writes,
        reread.bd_reads,
        t.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_ext4_idle_writeback_and_remount() {
    ext4_idle_writeback_and_remount(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_ext4_idle_writeback_and_remount() {
    ext4_idle_writeback_and_remount(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// b. Every mode and page selector writes exactly the pages it should.

fn every_mode_writes_exactly_its_pages(kind: Kind) {
    const SEED: u64 = 7;
    const PAGES: u64 = 1024;
    let d = device(kind, "16M");
    write_layout(&d.path, SEED, 0, PAGES);
    let s = stats(d.name);
    let same = (0..PAGES).filter(|&i| Model::same(i)).count() as u64;
    let random: Vec<u64> = (0..PAGES)
        .filter(|&i| content_of(i) == Content::Random)
        .collect();
    assert_eq!(s.same, same, "same-filled pages: {s:?}");
    assert_eq!(s.huge, random.len() as u64, "huge pages: {s:?}");
    let mut m = Model::new(PAGES);

    // Nothing is idle yet; nothing failed recompression.
    step(&d, &mut m, "huge_idle", Sel::HugeIdle);
    step(&d, &mut m, "incompressible", Sel::Incompressible);
    step(&d, &mut m, "type=incompressible", Sel::Incompressible);
    mark_idle(d.name);
    m.mark_idle();
    step(&d, &mut m, "huge_idle", Sel::HugeIdle);
    assert_eq!(stats(d.name).huge, 0, "written-back huge pages left RAM");
    step(&d, &mut m, "huge", Sel::Huge);

    // Rewriting written-back pages frees their blocks; `huge` takes them again.
    write_layout(&d.path, SEED, 0, PAGES.min(16 * 8));
    (0..128).for_each(|i| m.rewritten(i));
    assert_eq!(
        stats(d.name).bd_count,
        m.wb_count(),
        "rewrites freed blocks"
    );
    step(&d, &mut m, "huge", Sel::Huge);
    step(&d, &mut m, "type=huge", Sel::Huge);

    step(&d, &mut m, "page_index=1", Sel::Pages(&[1]));
    step(&d, &mut m, "page_index=3", Sel::Pages(&[3])); // same-filled: never
    step(&d, &mut m, "page_index=1", Sel::Pages(&[1])); // already written back
    step(&d, &mut m, "page_index=1 page_index=5", Sel::Pages(&[1, 5]));
    let range: Vec<u64> = (16..=47).collect();
    step(&d, &mut m, "page_indexes=16-47", Sel::Pages(&range));
    let repeated: Vec<u64> = (200..=209).chain([300]).chain(500..=510).collect();
    step(
        &d,
        &mut m,
        "page_indexes=200-209 page_index=300 page_indexes=500-510",
        Sel::Pages(&repeated),
    );
    step(&d, &mut m, "page_indexes=600-600", Sel::Pages(&[600]));
    // The legacy bare form.
    step(&d, &mut m, "idle", Sel::Idle);
    step(&d, &mut m, "idle", Sel::Idle);

    // Fresh writes are not idle until marked; `type=` forms.
    write_layout(&d.path, SEED, 700, 32);
    (700..732).for_each(|i| m.rewritten(i));
    step(&d, &mut m, "type=idle", Sel::Idle);
    mark_idle(d.name);
    m.mark_idle();
    step(&d, &mut m, "type=huge_idle", Sel::HugeIdle);
    step(&d, &mut m, "type=idle", Sel::Idle);
    assert_eq!(
        m.wb_count(),
        PAGES - same,
        "every page but the same-filled ones is written back"
    );

    // Everything reads back; each written-back page once from the backing
    // device.
    let before = stats(d.name);
    drop_caches();
    assert_layout_intact(&d.path, SEED, PAGES);
    let after = stats(d.name);
    assert_eq!(
        after.bd_reads - before.bd_reads,
        m.wb_count(),
        "one backing read per written-back page"
    );
    assert_eq!((after.failed_reads, after.failed_writes), (0, 0));
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_every_mode_writes_exactly_its_pages() {
    every_mode_writes_exactly_its_pages(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_every_mode_writes_exactly_its_pages() {
    every_mode_writes_exactly_its_pages(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// c. Errors, read from write(2).

fn errors_match_upstream(kind: Kind) {
    let name = prepare(kind);
    // Not initialised: EINVAL, with or without a backing device.
    assert_eq!(writeback(name, "idle"), Err(libc::EINVAL), "before init");
    assert_eq!(sysfs_read(name, "backing_dev"), "none\n");
    std::fs::write("/tmp/wb-regular-file", vec![0u8; 1 << 20]).unwrap();
    assert_eq!(
        sysfs_write(name, "backing_dev", "/tmp/wb-regular-file"),
        Err(libc::ENOTBLK),
        "a regular file"
    );
    assert_eq!(
        sysfs_write(name, "backing_dev", "/tmp/wb-no-such-file"),
        Err(libc::ENOENT)
    );
    assert_eq!(sysfs_read(name, "backing_dev"), "none\n", "still none");

    // Initialised without a backing device: ENODEV; backing_dev now EBUSY.
    let mut d = Dev::bare(name);
    sysfs_write(name, "disksize", "16M").unwrap();
    write_layout(&d.path, 3, 0, 256);
    mark_idle(name);
    assert_eq!(writeback(name, "idle"), Err(libc::ENODEV), "no backing_dev");
    assert_eq!(writeback(name, "page_index=1"), Err(libc::ENODEV));
    let slice = slice(kind);
    assert_eq!(
        sysfs_write(name, "backing_dev", slice.path.to_str().unwrap()),
        Err(libc::EBUSY),
        "backing_dev after disksize"
    );
    assert_eq!(sysfs_read(name, "backing_dev"), "none\n");

    // With a backing device: malformed requests.
    sysfs_write(name, "reset", "1").unwrap();
    assert_eq!(writeback(name, "idle"), Err(libc::EINVAL), "after reset");
    sysfs_write(name, "backing_dev", slice.path.to_str().unwrap()).unwrap();
    let slice_path = slice.path.clone();
    d.backing = Some(slice);
    assert_eq!(
        sysfs_read(name, "backing_dev"),
        format!("{}\n", slice_path.display())
    );
    assert_eq!(
        writeback(name, "idle"),
        Err(libc::EINVAL),
        "backing device but not initialised"
    );
    sysfs_write(name, "disksize", "16M").unwrap(); // 4096 pages
    assert_eq!(fields(name, "bd_stat"), [0, 0, 0]);
    write_layout(&d.path, 3, 0, 256);
    mark_idle(name);
    for (arg, errno) in [
        ("garbage", libc::EINVAL),
        ("type=garbage", libc::EINVAL),
        ("Idle", libc::EINVAL),
        ("page_index=4096", libc::ERANGE),
        ("page_index=99999999999", libc::ERANGE),
        ("page_index=abc", libc::EINVAL),
        ("page_index=-1", libc::EINVAL),
        ("page_indexes=10-5", libc::ERANGE),
        ("page_indexes=0-4096", libc::ERANGE),
        ("page_indexes=4096-4097", libc::ERANGE),
        ("page_indexes=7", libc::EINVAL),
        ("page_indexes=a-b", libc::EINVAL),
    ] {
        assert_eq!(writeback(name, arg), Err(errno), "writeback <- {arg:?}");
    }
    for (attr, value) in [
        ("writeback_batch_size", "0"),
        ("writeback_batch_size", "abc"),
        ("writeback_batch_size", "-1"),
        ("writeback_limit", "lots"),
        ("writeback_limit", "-5"),
        ("writeback_limit_enable", "yes"),
    ] {
        assert_eq!(
            sysfs_write(name, attr, value),
            Err(libc::EINVAL),
            "{attr} <- {value:?}"
        );
    }
    assert_eq!(sysfs_read(name, "writeback_batch_size"), "32\n");
    // compressed_writeback: set before init only; a value kstrtobool
    // refuses is EINVAL first.
    assert_eq!(
        sysfs_write(name, "compressed_writeback", "maybe"),
        Err(libc::EINVAL)
    );
    assert_eq!(
        sysfs_write(name, "compressed_writeback", "1"),
        Err(libc::EBUSY),
        "compressed_writeback after disksize"
    );
    assert_eq!(
        sysfs_read(name, "compressed_writeback"),
        format!("{}\n", u8::from(compressed_run()))
    );
    // backing_dev stays EBUSY on a live device, and bd_stat is read-only.
    assert_eq!(
        sysfs_write(name, "backing_dev", "/dev/null"),
        Err(libc::EBUSY)
    );
    assert_eq!(sysfs_write(name, "bd_stat", "0"), Err(libc::EACCES));
    // None of it wrote anything, and the device works.
    assert_eq!(fields(name, "bd_stat"), [0, 0, 0]);
    assert_layout_intact(&d.path, 3, 256);
    mark_idle(name);
    writeback(name, "idle").unwrap();
    let s = stats(name);
    let expect = (0..256).filter(|&i| !Model::same(i)).count() as u64;
    assert_eq!((s.bd_count, s.bd_writes), (expect, expect));
    drop(d);
    let _ = std::fs::remove_file("/tmp/wb-regular-file");
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_errors_match_upstream() {
    errors_match_upstream(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_errors_match_upstream() {
    errors_match_upstream(Kind::Rzram);
}

/// A small backing device whose writes fail after a delay: dm-delay (1 s)
/// over dm `error`, `blocks` 4K blocks. Removed when dropped.
struct SlowFailingDisk {
    name: String,
    path: PathBuf,
}

impl SlowFailingDisk {
    fn new(name: &str, blocks: u64) -> SlowFailingDisk {
        let sectors = blocks * 8;
        let under = dm_create(&format!("{name}-err"), &format!("0 {sectors} error"));
        let table = format!("0 {sectors} delay {} 0 1000", under.display());
        SlowFailingDisk {
            name: name.into(),
            path: dm_create(name, &table),
        }
    }
}

impl Drop for SlowFailingDisk {
    fn drop(&mut self) {
        dm_remove(&self.name);
        dm_remove(&format!("{}-err", self.name));
    }
}

/// The backing device fills up while its writes are failing: 16 blocks,
/// fewer than a window of bios, every write failing after 1 s. Upstream's
/// `zram_writeback_slots` stops with ENOSPC, then reports the last bio
/// error of the bios it waits for ("we need to signal user-space that some
/// writes were not successful"): EIO. Every page stays in RAM.
fn failed_writes_are_reported_ahead_of_enospc(kind: Kind) {
    let name = prepare(kind);
    let disk = SlowFailingDisk::new(&format!("wb-slowfail-{name}"), 16);
    sysfs_write(name, "backing_dev", disk.path.to_str().unwrap()).unwrap();
    sysfs_write(name, "disksize", "16M").unwrap();
    let d = Dev::bare(name);
    write_layout(&d.path, 5, 0, 256);
    let candidates = (0..256).filter(|&i| !Model::same(i)).count();
    assert!(candidates > 16, "more pages than blocks: {candidates}");
    mark_idle(name);
    // The limit (disabled) is kept across resets, as upstream's.
    let limit = sysfs_read(name, "writeback_limit").trim().parse().unwrap();
    let before = stats(name);
    let r = writeback(name, "idle");
    let after = stats(name);
    println!("{name}: idle writeback of {candidates} pages to 16 failing blocks: {r:?}, {after:?}");
    assert_eq!(r, Err(libc::EIO), "{name}: the bios' error, not ENOSPC");
    zramctl_tests::assert_failed_writeback_kept_nothing(name, "EIO", &before, &after, limit);
    assert_layout_intact(&d.path, 5, 256);
    drop(d);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_failed_writes_are_reported_ahead_of_enospc() {
    failed_writes_are_reported_ahead_of_enospc(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_failed_writes_are_reported_ahead_of_enospc() {
    failed_writes_are_reported_ahead_of_enospc(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// d. writeback_limit.

fn limit_is_exact_and_eio_when_spent(kind: Kind) {
    const SEED: u64 = 9;
    const PAGES: u64 = 2048;
    let d = device(kind, "16M");
    let name = d.name;
    write_layout(&d.path, SEED, 0, PAGES);
    let candidates = (0..PAGES).filter(|&i| !Model::same(i)).count() as u64;
    mark_idle(name);
    sysfs_write(name, "writeback_limit_enable", "1").unwrap();
    assert_eq!(sysfs_read(name, "writeback_limit_enable"), "1\n");
    sysfs_write(name, "writeback_limit", "100").unwrap();
    assert_eq!(sysfs_read(name, "writeback_limit"), "100\n");

    // The budget is spent exactly, and the writeback that hits it says EIO.
    let before = stats(name);
    assert_eq!(writeback(name, "idle"), Err(libc::EIO), "limit hit");
    let s = stats(name);
    assert_eq!((s.bd_writes, s.bd_count), (100, 100), "exactly the limit");
    // Largest objects first (upstream's size buckets): the layout has 128
    // incompressible pages, stored whole, so the 100 written are all huge
    // and free 100 whole pages of RAM.
    assert_eq!(
        (before.huge - s.huge, before.compr - s.compr),
        (100, 100 * PAGE as u64),
        "a limited writeback takes the largest objects first (huge pages, compressed bytes freed)"
    );
    assert_eq!(sysfs_read(name, "writeback_limit"), "0\n");
    // Spent: EIO and nothing written, for every selector.
    for arg in ["idle", "huge", "page_index=2000", "page_indexes=1500-1600"] {
        assert_eq!(
            writeback(name, arg),
            Err(libc::EIO),
            "{arg} on a spent limit"
        );
    }
    assert_eq!(stats(name).bd_writes, 100, "nothing more written");
    // A selection with nothing to write needs no budget.
    assert_eq!(writeback(name, "page_index=3"), Ok(()), "same-filled page");

    // Raising the limit lets it continue, by exactly that much.
    sysfs_write(name, "writeback_limit", "50").unwrap();
    assert_eq!(writeback(name, "idle"), Err(libc::EIO));
    assert_eq!(stats(name).bd_writes, 150);
    // A limit exactly as large as what is left: no error, limit back to 0.
    let left = candidates - 150;
    sysfs_write(name, "writeback_limit", &left.to_string()).unwrap();
    assert_eq!(
        writeback(name, "idle"),
        Ok(()),
        "{left} pages, limit {left}"
    );
    assert_eq!(stats(name).bd_writes, candidates);
    assert_eq!(sysfs_read(name, "writeback_limit"), "0\n");

    // Disabled: the limit is ignored (and not charged).
    write_layout(&d.path, SEED, 0, 64);
    mark_idle(name);
    sysfs_write(name, "writeback_limit_enable", "0").unwrap();
    assert_eq!(writeback(name, "idle"), Ok(()));
    let expect_more = (0..64).filter(|&i| !Model::same(i)).count() as u64;
    let s = stats(name);
    assert_eq!(s.bd_writes, candidates + expect_more);
    assert_eq!(s.bd_count, candidates);
    assert_eq!(sysfs_read(name, "writeback_limit"), "0\n");
    drop_caches();
    assert_layout_intact(&d.path, SEED, PAGES);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_limit_is_exact_and_eio_when_spent() {
    limit_is_exact_and_eio_when_spent(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_limit_is_exact_and_eio_when_spent() {
    limit_is_exact_and_eio_when_spent(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// e. Swap under a memory limit while a thread keeps writing back.

fn swap_with_concurrent_writeback(kind: Kind) {
    let t = Instant::now();
    let mut d = device(kind, "512M");
    sh(&format!(
        "mkswap {dev} >/dev/null && swapon --discard {dev}",
        dev = d.path.display()
    ));
    d.swap = true;
    let cg = PathBuf::from(format!("/sys/fs/cgroup/wb-{}", d.name));
    sh(&format!(
        "echo +memory > /sys/fs/cgroup/cgroup.subtree_control; mkdir -p {cg} && echo 40M > {cg}/memory.max",
        cg = cg.display()
    ));
    d.cgroup = Some(cg.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let name = d.name;
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut rounds, mut errors) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let mode = if rounds % 4 == 3 { "huge" } else { "idle" };
                if let Err(e) = sysfs_write(name, "idle", "all") {
                    errors.push(format!("idle <- all: errno {e}"));
                }
                if let Err(e) = writeback(name, mode) {
                    errors.push(format!("writeback <- {mode}: errno {e}"));
                }
                rounds += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
            (rounds, errors)
        })
    };
    // 96 MiB through a 40 MiB cgroup, verified twice: pages go out to
    // the device, to the backing disk, and come back.
    let memcheck = zramctl_bin().with_file_name("memcheck");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} 96 2",
            cg.display(),
            memcheck.display()
        ))
        .output()
        .expect("running memcheck");
    stop.store(true, Ordering::Relaxed);
    let (rounds, errors) = writer.join().expect("writeback thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{}", stdout.trim());
    assert!(
        out.status.success() && stdout.contains(" 0 words differ"),
        "memcheck failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(errors.is_empty(), "writeback thread errors: {errors:?}");
    let s = stats(name);
    println!(
        "{name}: {rounds} writeback rounds, {s:?} ({:.1}s)",
        t.elapsed().as_secs_f64()
    );
    assert!(rounds > 0);
    assert!(s.bd_writes > 0, "pages were written back: {s:?}");
    assert!(s.bd_reads > 0, "written-back pages were swapped in: {s:?}");
    assert!(s.notify_free > 0, "swap freed slots: {s:?}");
    assert!(s.bd_count <= s.bd_writes);
    assert_eq!((s.failed_reads, s.failed_writes), (0, 0), "{s:?}");
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_swap_with_concurrent_writeback() {
    swap_with_concurrent_writeback(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_swap_with_concurrent_writeback() {
    swap_with_concurrent_writeback(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// f. A backing device that fails writes, then reads.

fn backing_faults_lose_nothing(kind: Kind) {
    const SEED: u64 = 13;
    const PAGES: u64 = 1024;
    let d = device(kind, "16M");
    let name = d.name;
    let backing = d.backing.as_ref().unwrap();
    write_layout(&d.path, SEED, 0, PAGES);
    let candidates = (0..PAGES).filter(|&i| !Model::same(i)).count() as u64;
    mark_idle(name);
    sysfs_write(name, "writeback_limit_enable", "1").unwrap();
    sysfs_write(name, "writeback_limit", "100000").unwrap();
    let before = stats(name);

    // Writes fail: write(2) says EIO (upstream returns the last bio error),
    // the blocks are given back, the pages stay in RAM, the limit is not
    // charged.
    backing.fail_all_io();
    assert_eq!(
        writeback(name, "idle"),
        Err(libc::EIO),
        "failing backing writes"
    );
    let after = stats(name);
    println!("{name}: before {before:?}\n{name}: after  {after:?}");
    zramctl_tests::assert_failed_writeback_kept_nothing(name, "EIO", &before, &after, 100000);
    match kind {
        // Upstream counts only failed zram writes in io_stat, not writeback's.
        Kind::Zram => assert_eq!(after.failed_writes, before.failed_writes),
        Kind::Rzram => assert!(
            after.failed_writes > before.failed_writes,
            "rzram counts failed writeback writes in io_stat: {after:?}"
        ),
    }
    // Still idle and still there: a healthy disk takes them all.
    backing.restore();
    assert_eq!(writeback(name, "idle"), Ok(()));
    let s = stats(name);
    assert_eq!((s.bd_count, s.bd_writes), (candidates, candidates));

    // Reads fail: the reader gets EIO, never stale or zeroed data.
    backing.fail_all_io();
    drop_caches();
    for first in [0u64, 1, 500] {
        let r = read_bytes_direct(&d.path, first, 1);
        assert_eq!(
            r.as_ref().map_err(|e| e.raw_os_error()).err(),
            Some(Some(libc::EIO)),
            "reading written-back page {first} from a failing disk: {:?}",
            r.map(|_| "data")
        );
    }
    let r = read_bytes_direct(&d.path, 0, 64);
    assert_eq!(r.err().and_then(|e| e.raw_os_error()), Some(libc::EIO));
    // Same-filled pages never left RAM and still read.
    assert_eq!(
        read_bytes_direct(&d.path, 3, 1).unwrap(),
        layout_page(SEED, 3)
    );
    let s = stats(name);
    println!("{name}: with failing reads {s:?}");
    // Back to a healthy disk: the data was there all along.
    backing.restore();
    drop_caches();
    assert_layout_intact(&d.path, SEED, PAGES);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_backing_faults_lose_nothing() {
    backing_faults_lose_nothing(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_backing_faults_lose_nothing() {
    backing_faults_lose_nothing(Kind::Rzram);
}

// ---------------------------------------------------------------------------
// g. Batch sizes (and rzram's bio size) do not change the data.

fn batch_and_bio_sizes_give_identical_data(kind: Kind) {
    const SEED: u64 = 17;
    const PAGES: u64 = 2048;
    let mut configs: Vec<(u32, Option<u32>)> = vec![(1, None), (32, None)];
    if kind == Kind::Rzram {
        configs = vec![(1, Some(1)), (32, Some(1)), (1, Some(32)), (32, Some(32))];
    }
    let candidates = (0..PAGES).filter(|&i| !Model::same(i)).count() as u64;
    let mut digests = Vec::new();
    for (batch, bio_pages) in configs {
        let d = device(kind, "16M");
        sysfs_write(d.name, "writeback_batch_size", &batch.to_string()).unwrap();
        assert_eq!(
            sysfs_read(d.name, "writeback_batch_size"),
            format!("{batch}\n")
        );
        if let Some(b) = bio_pages {
            assert!(
                has_bio_pages(kind),
                "rzram has no writeback_bio_pages attribute"
            );
            sysfs_write(d.name, "writeback_bio_pages", &b.to_string()).unwrap();
            assert_eq!(sysfs_read(d.name, "writeback_bio_pages"), format!("{b}\n"));
        }
        write_layout(&d.path, SEED, 0, PAGES);
        mark_idle(d.name);
        let t = Instant::now();
        writeback(d.name, "idle").unwrap();
        let secs = t.elapsed().as_secs_f64();
        let s = stats(d.name);
        println!(
            "{}: batch {batch}, bio pages {bio_pages:?}: {} pages in {secs:.2}s",
            d.name, s.bd_writes
        );
        assert_eq!((s.bd_count, s.bd_writes), (candidates, candidates));
        drop_caches();
        let data = read_bytes_direct(&d.path, 0, PAGES).unwrap();
        let bad: Vec<u64> = data
            .chunks(PAGE)
            .enumerate()
            .filter(|(i, p)| *p != layout_page(SEED, *i as u64))
            .map(|(i, _)| i as u64)
            .take(10)
            .collect();
        assert!(
            bad.is_empty(),
            "batch {batch}, bio pages {bio_pages:?}: pages differ: {bad:?}"
        );
        assert_eq!(stats(d.name).bd_reads, candidates);
        digests.push(digest(&data));
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

/// FNV-1a of the read-back bytes, to compare runs.
fn digest(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_batch_sizes_give_identical_data() {
    batch_and_bio_sizes_give_identical_data(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_batch_and_bio_sizes_give_identical_data() {
    batch_and_bio_sizes_give_identical_data(Kind::Rzram);
}

/// With `compressed_writeback` the backing device receives compressed
/// bytes: of the pages written back, only those stored uncompressed
/// (huge) reach it as they are. Without it, every one does. Read back,
/// both give the pages written.
fn compressed_writeback_writes_compressed_bytes(kind: Kind) {
    const SEED: u64 = 0x5eed_c0de;
    const PAGES: u64 = 512;
    // The pages writeback may pick (not the same-filled ones, which would
    // also match the blanked blocks).
    let pages: std::collections::HashSet<Vec<u8>> = (0..PAGES)
        .filter(|&i| !Model::same(i))
        .map(|i| layout_page(SEED, i))
        .collect();
    for compressed in [false, true] {
        let d = device_with(kind, "16M", compressed);
        let backing = d.backing.as_ref().unwrap().path.clone();
        // Blank the blocks the writeback will use (with room to spare).
        write_bytes_direct(&backing, 0, &vec![0u8; (PAGES as usize + 16) * PAGE]).unwrap();
        write_layout(&d.path, SEED, 0, PAGES);
        let before = stats(d.name);
        mark_idle(d.name);
        writeback(d.name, "idle").unwrap();
        let s = stats(d.name);
        let candidates = (0..PAGES).filter(|&i| !Model::same(i)).count() as u64;
        assert_eq!(s.bd_writes, candidates);
        let blocks = read_bytes_direct(&backing, 0, PAGES + 16).unwrap();
        let whole = blocks.chunks(PAGE).filter(|b| pages.contains(*b)).count() as u64;
        println!(
            "{}: compressed_writeback {compressed}: {} pages written back, {whole} as they are ({} huge)",
            d.name, s.bd_writes, before.huge
        );
        let want = if compressed { before.huge } else { candidates };
        assert_eq!(
            whole, want,
            "{}: compressed_writeback {compressed}: pages found whole on the backing device",
            d.name
        );
        drop_caches();
        assert_layout_intact(&d.path, SEED, PAGES);
        assert_eq!(stats(d.name).bd_reads, candidates);
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zram_compressed_writeback_writes_compressed_bytes() {
    compressed_writeback_writes_compressed_bytes(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_compressed_writeback_writes_compressed_bytes() {
    compressed_writeback_writes_compressed_bytes(Kind::Rzram);
}

mod packed;

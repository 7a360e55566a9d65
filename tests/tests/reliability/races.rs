//! Suite 1: Races: writeback, marking, tuning, compaction, recompression and
//! reset attempts looping on two rzram devices under load.

use crate::common::*;

// ---------------------------------------------------------------------------
// 1. Races.

/// Outcomes of the chaos loop, by operation and result.
#[derive(Default)]
pub struct Tally(pub BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, op: &str, r: &Result<(), i32>) {
        let k = match r {
            Ok(()) => format!("{op}: ok"),
            Err(e) => format!("{op}: {}", errno_name(*e)),
        };
        *self.0.entry(k).or_default() += 1;
    }
}

/// What may fail in the chaos loop and how: writeback says EIO when the
/// limit is spent (the loop turns it on and off); `reset` must always say
/// EBUSY (the device is open); everything else must succeed.
pub fn allowed(op: &str, r: &Result<(), i32>) -> bool {
    match (op, r) {
        ("reset", Err(e)) => *e == libc::EBUSY,
        ("reset", Ok(())) => false,
        (op, Err(e)) if op.starts_with("writeback") => *e == libc::EIO,
        (_, r) => r.is_ok(),
    }
}

/// One device's chaos loop until `stop`; the tally of what happened.
pub fn chaos(dev: &'static str, pages: u64, seed: u64, stop: Arc<AtomicBool>) -> Tally {
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (op, r): (&str, Result<(), i32>) = match i % 16 {
            0 => ("idle all", sysfs_write(dev, "idle", "all")),
            1 => ("writeback idle", writeback(dev, "idle")),
            2 => ("writeback huge", writeback(dev, "huge")),
            3 => ("writeback huge_idle", writeback(dev, "type=huge_idle")),
            4 => ("writeback incompressible", writeback(dev, "incompressible")),
            5 => {
                let a = rng.below(pages);
                let b = (a + rng.below(512)).min(pages - 1);
                let arg = if rng.below(4) == 0 {
                    format!("page_index={a}")
                } else {
                    format!(
                        "page_indexes={a}-{b} page_indexes={}-{}",
                        b / 2,
                        (b / 2 + 16).min(pages - 1)
                    )
                };
                ("writeback page_indexes", writeback(dev, &arg))
            }
            6 => (
                "idle age",
                sysfs_write(dev, "idle", &rng.below(3).to_string()),
            ),
            7 => (
                "writeback_batch_size",
                sysfs_write(
                    dev,
                    "writeback_batch_size",
                    &(1 + rng.below(64)).to_string(),
                ),
            ),
            8 => (
                "writeback_bio_pages",
                sysfs_write(dev, "writeback_bio_pages", &(1 + rng.below(32)).to_string()),
            ),
            9 => (
                "writeback_limit",
                sysfs_write(dev, "writeback_limit", &rng.below(3000).to_string()),
            ),
            10 => (
                "writeback_limit_enable",
                sysfs_write(
                    dev,
                    "writeback_limit_enable",
                    if rng.below(3) == 0 { "1" } else { "0" },
                ),
            ),
            11 => ("compact", sysfs_write(dev, "compact", "1")),
            12 => (
                "recompress",
                sysfs_write_timed(
                    dev,
                    "recompress",
                    ["type=idle", "type=huge", "type=huge_idle threshold=1000"]
                        [rng.below(3) as usize],
                    120,
                ),
            ),
            13 => ("reset", sysfs_write(dev, "reset", "1")),
            14 => ("writeback type=idle", writeback(dev, "type=idle")),
            _ => {
                std::thread::sleep(Duration::from_millis(20 + rng.below(80)));
                i += 1;
                continue;
            }
        };
        if !allowed(op, &r) {
            panic!("{dev}: {op} -> {r:?} (not allowed in the chaos loop)");
        }
        t.add(op, &r);
        i += 1;
    }
    t
}

/// A cgroup removed when dropped (its processes killed first).
pub struct Cgroup(pub PathBuf);

impl Cgroup {
    fn new(name: &str, max: &str) -> Cgroup {
        let cg = PathBuf::from(format!("/sys/fs/cgroup/{name}"));
        sh(&format!(
            "echo +memory > /sys/fs/cgroup/cgroup.subtree_control; mkdir -p {cg} && echo {max} > {cg}/memory.max && echo 0 > {cg}/memory.swap.max 2>/dev/null; echo max > {cg}/memory.swap.max",
            cg = cg.display()
        ));
        Cgroup(cg)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Undoes the races' setup: swapoff, reset both devices.
pub struct RaceGuard;

impl Drop for RaceGuard {
    fn drop(&mut self) {
        for dev in ["rzram0", "rzram1"] {
            let _ = Command::new("swapoff")
                .arg(format!("/dev/{dev}"))
                .stderr(Stdio::null())
                .status();
            for _ in 0..50 {
                if sysfs_write(dev, "reset", "1").is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = sysfs_write(dev, "writeback_limit_enable", "0");
        }
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
pub fn rzram_races_lose_nothing() {
    in_vm();
    load_rzram();
    let t0 = Instant::now();
    const RAW: &str = "rzram1";
    const SWAP: &str = "rzram0";
    const RAW_PAGES: u64 = 4096; // 16 MiB
    // On the debug kernel 3 raw passes and 1 memcheck pass: swap there is
    // too slow for 4 (not done in 3000 s with the machine shared).
    let min_passes = zramctl_tests::soak(10, 3);
    let swap_passes = zramctl_tests::soak(4, 1);
    prepare(RAW);
    prepare(SWAP);
    let raw_backing = DmSlice::linear("rel-race-raw", 0, 256);
    let swap_backing = DmSlice::linear("rel-race-swap", 256, 256);
    let guard = RaceGuard;
    for (dev, backing, size) in [(RAW, &raw_backing, "16M"), (SWAP, &swap_backing, "192M")] {
        sysfs_write(dev, "recomp_algorithm", "algo=zstd").unwrap();
        sysfs_write(dev, "backing_dev", backing.path.to_str().unwrap()).unwrap();
        sysfs_write(dev, "disksize", size).unwrap();
    }
    sh(&format!(
        "mkswap /dev/{SWAP} >/dev/null && swapon --discard /dev/{SWAP}"
    ));
    let cg = Cgroup::new("rel-races", "16M");

    // The raw disk: held open for the whole test (so reset must say EBUSY).
    let raw = PathBuf::from(format!("/dev/{RAW}"));
    let hold = std::fs::File::open(&raw).unwrap();
    let mut gens = vec![1u64; RAW_PAGES as usize];
    write_gen(&raw, 1, 0, RAW_PAGES);

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(stop.clone());
    let chaos_threads: Vec<_> = [(RAW, RAW_PAGES, 1u64), (SWAP, 192 * 256, 2)]
        .into_iter()
        .map(|(dev, pages, seed)| {
            let stop = stop.clone();
            std::thread::spawn(move || chaos(dev, pages, seed, stop))
        })
        .collect();

    // The swap workload: 32 MiB through a 16 MiB cgroup, verified 4 times
    // (the raw disk gives the >= 10 full passes; swap is slower under TCG).
    let memcheck = zramctl_bin().with_file_name("memcheck");
    let mut swapper = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} 32 {swap_passes}",
            cg.0.display(),
            memcheck.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memcheck");

    // The raw disk's own writer, discarder and verifier.
    let mut rng = Rng::new(99);
    let (mut passes, mut verified, mut writes, mut discards) = (0u32, 0u64, 0u64, 0u64);
    let mut next_gen = 2u64;
    let mut swap_out = None;
    // A hang guard: 320 s alone on a quiet machine; a machine running four
    // VMs on two cores got 4 passes in 600 s (packed) and 7-11 (plain).
    let deadline = Duration::from_secs(1200) * zramctl_tests::time_scale();
    loop {
        for _ in 0..24 {
            let first = rng.below(RAW_PAGES);
            let n = (1 + rng.below(96)).min(RAW_PAGES - first);
            if rng.below(4) == 0 {
                discard_pages(&raw, first, n).expect("BLKDISCARD");
                gens[first as usize..(first + n) as usize].fill(0);
                discards += 1;
            } else {
                write_gen(&raw, next_gen, first, n);
                gens[first as usize..(first + n) as usize].fill(next_gen);
                next_gen += 1;
                writes += 1;
            }
        }
        let bad = verify_gens(&raw, &gens);
        assert!(
            bad.is_empty(),
            "pass {passes}: {} of {RAW_PAGES} pages differ, first {:?}",
            bad.len(),
            &bad[..bad.len().min(10)]
        );
        passes += 1;
        verified += RAW_PAGES;
        if swap_out.is_none()
            && let Some(_st) = swapper.try_wait().unwrap()
        {
            swap_out = Some(swapper_output(&mut swapper));
        }
        if passes >= min_passes && swap_out.is_some() {
            break;
        }
        assert!(
            t0.elapsed() < deadline,
            "not done in {deadline:?}: {passes} raw passes, memcheck done: {}",
            swap_out.is_some()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = chaos_threads
        .into_iter()
        .map(|t| t.join().expect("chaos thread"))
        .collect();
    let (code, swap_stdout) = swap_out.unwrap();
    println!("{}", swap_stdout.trim());
    assert!(
        code == 0 && swap_stdout.contains(" 0 words differ"),
        "memcheck: exit {code}: {swap_stdout}"
    );
    // A last pass after the chaos stopped, from a cold cache, and the slot
    // accounting: reading every page once reads each written-back one from
    // the backing disk exactly once (packed: each block in use at least
    // once, as each holds a live object).
    drop_caches();
    let before = stats(RAW);
    let bad = verify_gens(&raw, &gens);
    assert!(bad.is_empty(), "final pass: {} pages differ", bad.len());
    verified += RAW_PAGES;
    passes += 1;
    let after = stats(RAW);
    let reads = after.bd_reads - before.bd_reads;
    if packed_run() {
        assert!(
            reads >= after.bd_count,
            "{RAW}: every block in use holds a live object: {reads} blocks read: {after:?}"
        );
    } else {
        assert_eq!(
            reads, after.bd_count,
            "{RAW}: bd_count must equal the written-back slots (each read once): {after:?}"
        );
    }
    for (dev, tally) in [RAW, SWAP].iter().zip(&tallies) {
        let s = stats(dev);
        println!("{dev}: {s:?}");
        for (k, v) in &tally.0 {
            println!("{dev}:   {k:<34} {v}");
        }
        assert_eq!((s.failed_reads, s.failed_writes), (0, 0), "{dev}: {s:?}");
        assert!(s.bd_writes > 0, "{dev}: nothing was written back: {s:?}");
        assert!(
            tally.0.get("reset: EBUSY").copied().unwrap_or(0) > 0,
            "{dev}: reset was tried"
        );
    }
    let wb_ok: u64 = tallies
        .iter()
        .flat_map(|t| t.0.iter())
        .filter(|(k, _)| k.starts_with("writeback") && k.ends_with(": ok"))
        .map(|(_, v)| v)
        .sum();
    println!(
        "races: {passes} full verify passes of {RAW} ({verified} pages verified, {writes} writes, {discards} discards), \
         memcheck 32 MiB x {swap_passes} passes through swap on {SWAP}, {wb_ok} writebacks ok, \
         bd_writes {} + {}{}, 0 mismatches ({:.1}s)",
        stats(RAW).bd_writes,
        stats(SWAP).bd_writes,
        if packed_run() { " blocks, packed" } else { "" },
        t0.elapsed().as_secs_f64()
    );
    // Blocks accounted exactly: with every page discarded and swap off,
    // no block is left in use.
    discard_pages(&raw, 0, RAW_PAGES).expect("BLKDISCARD");
    sh(&format!("swapoff /dev/{SWAP}"));
    discard_pages(&PathBuf::from(format!("/dev/{SWAP}")), 0, 192 * 256).expect("BLKDISCARD");
    for dev in [RAW, SWAP] {
        let s = stats(dev);
        assert_eq!(
            s.bd_count, 0,
            "{dev}: blocks left in use with no page stored: {s:?}"
        );
    }
    drop(hold);
    drop(cg);
    drop(guard);
}

pub fn swapper_output(c: &mut Child) -> (i32, String) {
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let code = c.wait().unwrap().code().unwrap_or(-1);
    (code, format!("{out}{err}"))
}

//! VM tests of rzram's crash and corruption paths (issue 19): the lifetime
//! of a disk against openers, swapon, reset, hot_remove and /proc walkers;
//! partitions; writeback storms followed by reset and module unload. Run
//! them on the KASAN + lockdep kernel (`cargo xtask vm-test --debug-kernel
//! hardening`): any splat fails the run.
//!
//! `memory.rs`: writeback while allocations fail.
//! `hotplug.rs`: compression workspaces as CPUs go down and come up.
//! `parity.rs`: where rzram must behave as upstream zram does (I/O
//! accounting, lockdep classes, backing reads, hot_remove during reset),
//! each checked on zram1 and rzram1 side by side.

mod hotplug;
mod memory;
mod parity;

use std::{
    collections::BTreeMap,
    ffi::CString,
    fs::OpenOptions,
    io::Write as _,
    os::unix::fs::{FileExt as _, OpenOptionsExt as _},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use zramctl_tests::{PAGE, load_rzram, sh, sysfs_read, sysfs_write, vmstat};

/// Outcomes by operation: "op: ok" or "op: EBUSY" -> count.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, op: &str, r: Result<(), i32>) {
        let key = match r {
            Ok(()) => format!("{op}: ok"),
            Err(e) => format!("{op}: {}", errno_name(e)),
        };
        *self.0.lock().unwrap().entry(key).or_default() += 1;
    }
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EBUSY => "EBUSY".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::ENXIO => "ENXIO".into(),
        libc::ENODEV => "ENODEV".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EIO => "EIO".into(),
        libc::ENOMEM => "ENOMEM".into(),
        libc::EPERM => "EPERM".into(),
        other => format!("errno {other}"),
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// A swap header for a device of `pages` pages (what mkswap writes), so the
/// swapon loop needs no process per iteration.
fn swap_header(pages: u32) -> Vec<u8> {
    let mut h = vec![0u8; PAGE];
    h[1024..1028].copy_from_slice(&1u32.to_ne_bytes());
    h[1028..1032].copy_from_slice(&(pages - 1).to_ne_bytes());
    h[PAGE - 10..].copy_from_slice(b"SWAPSPACE2");
    h
}

/// A loop device on a sparse tmpfs file, a backing device of a test's own;
/// detached and deleted when dropped (reset the zram device first).
struct LoopBacking {
    img: String,
    /// `/dev/loopN`.
    dev: String,
}

impl LoopBacking {
    fn new(name: &str, mib: u64) -> Self {
        let img = format!("/tmp/hardening-{name}.img");
        std::fs::write(&img, []).unwrap();
        sh(&format!("truncate -s {mib}M {img}"));
        let dev = sh(&format!("losetup -f --show {img}")).trim().to_owned();
        Self { img, dev }
    }
}

impl Drop for LoopBacking {
    fn drop(&mut self) {
        let detached = std::process::Command::new("losetup")
            .args(["-d", &self.dev])
            .status()
            .is_ok_and(|st| st.success());
        let _ = std::fs::remove_file(&self.img);
        // A failed detach fails the test, unless it is failing already
        // (a panic while unwinding would abort).
        if !detached && !std::thread::panicking() {
            panic!("losetup -d {} failed", self.dev);
        }
    }
}

/// Makes sure upstream zram's `zram1` exists (the VM boots two zram
/// devices; zram-control adds it back if a test removed it).
fn ensure_zram1() {
    if !Path::new("/sys/block/zram1").exists() {
        let id = std::fs::read_to_string("/sys/class/zram-control/hot_add").unwrap();
        assert_eq!(id.trim(), "1", "zram1 is the next zram device");
    }
}

fn hot_add() -> Result<u32, i32> {
    std::fs::read_to_string("/sys/class/rzram-control/hot_add")
        .map_err(|e| errno(&e))
        .map(|s| s.trim().parse().expect("hot_add prints an index"))
}

fn hot_remove(id: u32) -> Result<(), i32> {
    std::fs::write("/sys/class/rzram-control/hot_remove", id.to_string()).map_err(|e| errno(&e))
}

/// Opens `/dev/rzramN`, reads and writes its first page, closes it.
fn open_io(id: u32) -> Result<(), i32> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/rzram{id}"))
        .map_err(|e| errno(&e))?;
    let mut buf = vec![0u8; PAGE];
    // A reset device has no capacity: reads return 0 bytes, no error.
    f.read_at(&mut buf, 0).map_err(|e| errno(&e))?;
    Ok(())
}

/// Writes a swap header to `/dev/rzramN` (an 8 MiB device).
fn write_swap_header(id: u32) -> Result<(), i32> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(format!("/dev/rzram{id}"))
        .map_err(|e| errno(&e))?;
    f.write_all(&swap_header(2048)).map_err(|e| errno(&e))?;
    f.sync_all().map_err(|e| errno(&e))
}

fn swap_cycle(id: u32) -> Result<(), i32> {
    let path = CString::new(format!("/dev/rzram{id}")).unwrap();
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::swapon(path.as_ptr(), 0) } != 0 {
        return Err(errno(&std::io::Error::last_os_error()));
    }
    // SAFETY: as above.
    let r = unsafe { libc::swapoff(path.as_ptr()) };
    assert_eq!(
        r,
        0,
        "swapoff of a swap we turned on failed: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Errnos upstream zram gives each operation when it races another.
fn allowed(op: &str, e: i32) -> bool {
    // A sysfs write opens with O_CREAT: an attribute removed with its
    // disk a moment ago, in a directory still there, gives EACCES.
    let gone = [libc::ENOENT, libc::ENXIO, libc::ENODEV, libc::EACCES];
    match op {
        // Claimed by a reset or removal, or removed.
        "open" => e == libc::EBUSY || gone.contains(&e),
        // Open or claimed by someone else.
        "reset" => e == libc::EBUSY || gone.contains(&e),
        "hot_remove" => e == libc::EBUSY || e == libc::ENODEV,
        // Already initialised.
        "disksize" => e == libc::EBUSY || gone.contains(&e),
        // ETXTBSY: the disk is active swap (swapon denies writers).
        "header" => {
            e == libc::EBUSY || gone.contains(&e) || e == libc::ENOSPC || e == libc::ETXTBSY
        }
        // No swap signature (reset since), busy (open elsewhere), gone.
        "swapon" => e == libc::EINVAL || e == libc::EBUSY || gone.contains(&e),
        _ => false,
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn open_swapon_reset_and_hot_remove_race_safely() {
    load_rzram();
    let secs: u64 = std::env::var("ZRAMCTL_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    // Hot-added devices that may exist; the threads pick from it.
    let ids: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new()));
    let pick = |ids: &Mutex<Vec<u32>>, n: usize| -> Option<u32> {
        let v = ids.lock().unwrap();
        (!v.is_empty()).then(|| v[n % v.len()])
    };
    let mut threads = Vec::new();
    // Adds a device, sizes it, writes a swap header, removes it.
    {
        let (stop, tally, ids) = (stop.clone(), tally.clone(), ids.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                n += 1;
                let live = ids.lock().unwrap().len();
                if live < 3 {
                    let id = hot_add().expect("hot_add");
                    tally.add("hot_add", Ok(()));
                    tally.add(
                        "disksize",
                        sysfs_write(&format!("rzram{id}"), "disksize", "8M"),
                    );
                    tally.add("header", write_swap_header(id));
                    ids.lock().unwrap().push(id);
                } else {
                    let id = ids.lock().unwrap()[(n as usize) % live];
                    let r = hot_remove(id);
                    if r.is_ok() {
                        ids.lock().unwrap().retain(|i| *i != id);
                    }
                    tally.add("hot_remove", r);
                }
            }
        }));
    }
    // Resets and re-initialises devices.
    {
        let (stop, tally, ids) = (stop.clone(), tally.clone(), ids.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Relaxed) {
                n += 1;
                let Some(id) = pick(&ids, n) else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let dev = format!("rzram{id}");
                tally.add("reset", sysfs_write(&dev, "reset", "1"));
                tally.add("disksize", sysfs_write(&dev, "disksize", "8M"));
                tally.add("header", write_swap_header(id));
            }
        }));
    }
    // Openers and swapon/swapoff.
    for kind in ["open", "swapon"] {
        let (stop, tally, ids) = (stop.clone(), tally.clone(), ids.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 7usize;
            while !stop.load(Relaxed) {
                n += 1;
                let Some(id) = pick(&ids, n) else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let r = if kind == "open" {
                    open_io(id)
                } else {
                    swap_cycle(id)
                };
                tally.add(kind, r);
            }
        }));
    }
    // Walkers of the disk list, which hold disk references for a moment.
    {
        let (stop, tally) = (stop.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                for f in ["/proc/partitions", "/proc/diskstats"] {
                    tally.add("walk", std::fs::read(f).map(|_| ()).map_err(|e| errno(&e)));
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Relaxed);
    for t in threads {
        t.join().expect("race thread panicked");
    }
    // Nobody holds them now: every removal succeeds.
    for id in ids.lock().unwrap().drain(..) {
        assert_eq!(hot_remove(id), Ok(()), "hot_remove {id} after the race");
    }
    let counts = tally.0.lock().unwrap();
    let mut bad = Vec::new();
    for (key, n) in counts.iter() {
        println!("{key:>24}  {n}");
        let (op, what) = key.split_once(": ").unwrap();
        if what == "ok" {
            continue;
        }
        let e = match what {
            "EBUSY" => libc::EBUSY,
            "ENOENT" => libc::ENOENT,
            "ENXIO" => libc::ENXIO,
            "ENODEV" => libc::ENODEV,
            "EINVAL" => libc::EINVAL,
            other => other
                .strip_prefix("errno ")
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1),
        };
        if !allowed(op, e) {
            bad.push(format!("{key} ({n})"));
        }
    }
    for op in ["open", "swapon", "reset", "hot_remove"] {
        assert!(
            counts.get(&format!("{op}: ok")).copied().unwrap_or(0) > 0,
            "{op} never succeeded: the race did not exercise it"
        );
    }
    assert!(
        bad.is_empty(),
        "outcomes upstream zram does not give: {bad:?}"
    );
}

/// The partition ioctls and a partition table give the same outcome on
/// rzram as on zram: zram refuses partitions (`GENHD_FL_NO_PART`).
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn partition_tables_behave_as_on_zram() {
    load_rzram();
    ensure_zram1();
    let mut outcomes = Vec::new();
    for dev in ["zram1", "rzram1"] {
        let _ = sysfs_write(dev, "reset", "1");
        sysfs_write(dev, "disksize", "16M").unwrap();
        // An MBR with one Linux partition over sectors 2048..32767.
        let mut mbr = vec![0u8; 512];
        let entry = &mut mbr[446..462];
        entry[4] = 0x83;
        entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
        entry[12..16].copy_from_slice(&(32768u32 - 2048).to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        let path = format!("/dev/{dev}");
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open(&path)
            .unwrap();
        f.write_all_at(&mbr, 0).unwrap();
        drop(f);
        let rr = std::process::Command::new("blockdev")
            .args(["--rereadpt", &path])
            .output()
            .unwrap();
        let px = std::process::Command::new("partx")
            .args(["-a", "--nr", "1", &path])
            .output()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let part = Path::new(&format!("/sys/block/{dev}/{dev}p1")).exists();
        let outcome = (rr.status.code(), px.status.code(), part);
        println!(
            "{dev}: blockdev --rereadpt exit {:?} ({}), partx -a exit {:?} ({}), {dev}p1 exists: {part}",
            rr.status.code(),
            String::from_utf8_lossy(&rr.stderr).trim(),
            px.status.code(),
            String::from_utf8_lossy(&px.stderr).trim(),
        );
        outcomes.push(outcome);
        // No partition may outlive the test either way.
        let _ = std::process::Command::new("partx")
            .args(["-d", &path])
            .output();
        assert_eq!(sysfs_write(dev, "reset", "1"), Ok(()), "{dev} reset");
    }
    assert!(!outcomes[0].2, "zram refuses partitions");
    assert_eq!(outcomes[1], outcomes[0], "rzram1 behaves as zram1");
}

fn rzram_ko() -> String {
    let modroot = std::env::var("ZRAMCTL_MODROOT").expect("ZRAMCTL_MODROOT");
    let release = std::env::var("ZRAMCTL_KERNEL_RELEASE").expect("ZRAMCTL_KERNEL_RELEASE");
    format!("{modroot}/lib/modules/{release}/kernel/drivers/block/rzram/rzram.ko")
}

/// Writeback storms, each followed at once by a reset and a module unload:
/// completion work must be finished before either lets go of the device.
/// zsmalloc pages in use (`nr_zspages`) less those of upstream zram's pools
/// (`mem_used_total` of each zram device): with rzram unloaded, what rzram
/// left behind, whatever upstream zram devices do meanwhile.
fn zspages_outside_zram() -> i64 {
    let mut n = vmstat("nr_zspages") as i64;
    for e in std::fs::read_dir("/sys/block").unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.starts_with("zram")
            && let Some(used) = zramctl_tests::fields(&name, "mm_stat").get(2)
        {
            n -= (*used / PAGE as u64) as i64;
        }
    }
    n
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn writeback_storms_then_reset_and_rmmod() {
    let cycles: u32 = std::env::var("ZRAMCTL_STORM_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    load_rzram();
    for d in ["rzram0", "rzram1"] {
        let _ = sysfs_write(d, "reset", "1");
    }
    sh("rmmod rzram");
    let zspages = zspages_outside_zram();
    let lo = LoopBacking::new("backing", 64);
    let pages = 512u64;
    let data: Vec<u8> = (0..pages as usize * PAGE)
        .map(|i| (i / 7 % 251) as u8 ^ (i / PAGE) as u8)
        .collect();
    let started = Instant::now();
    for cycle in 0..cycles {
        sh(&format!("insmod {} num_devices=2", rzram_ko()));
        sysfs_write("rzram1", "backing_dev", &lo.dev).unwrap();
        sysfs_write("rzram1", "disksize", "4M").unwrap();
        {
            let f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open("/dev/rzram1")
                .unwrap();
            let mut buf = zramctl_tests::AlignedBuf::new(data.len());
            buf.bytes_mut().copy_from_slice(&data);
            f.write_all_at(buf.bytes_mut(), 0).unwrap();
        }
        sysfs_write("rzram1", "idle", "all").unwrap();
        // The storm in one thread, reset and unload right behind it.
        let wb = std::thread::spawn(|| sysfs_write("rzram1", "writeback", "idle"));
        std::thread::sleep(Duration::from_millis(u64::from(cycle % 5)));
        let reset = sysfs_write("rzram1", "reset", "1");
        let wb = wb.join().unwrap();
        assert!(
            matches!(wb, Ok(()) | Err(libc::EINVAL)),
            "cycle {cycle}: writeback {wb:?}"
        );
        assert_eq!(reset, Ok(()), "cycle {cycle}: reset");
        let out = std::process::Command::new("rmmod")
            .arg("rzram")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cycle {cycle}: rmmod: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let secs = started.elapsed().as_secs_f64();
    drop(lo);
    // zsmalloc may free a zspage from a worker a moment later. (A run
    // without `stat_refresh` in `vmstat` saw 0 -> 18 and 1 -> 0 here:
    // per-CPU vmstat deltas not yet folded in.)
    let mut after = zspages_outside_zram();
    for _ in 0..50 {
        if after == zspages {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = zspages_outside_zram();
    }
    println!(
        "{cycles} cycles in {secs:.1} s; zsmalloc pages outside zram's pools before {zspages}, after {after}"
    );
    assert_eq!(after, zspages, "zsmalloc pages leaked");
    load_rzram();
    assert_eq!(sysfs_read("rzram1", "initstate"), "0\n");
}

/// Every rzram KUnit suite (they run when the module loads) passed,
/// including the suites added for issue 19 (plugs, reads ending writeback,
/// idle marking by age, pages copied in and out of bios).
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn every_kunit_suite_passes() {
    load_rzram();
    let mut suites: Vec<_> = std::fs::read_dir("/sys/kernel/debug/kunit")
        .expect("KUnit debugfs")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("rzram_"))
        .collect();
    suites.sort();
    assert!(suites.len() >= 4, "rzram suites: {suites:?}");
    for suite in &suites {
        let results =
            std::fs::read_to_string(format!("/sys/kernel/debug/kunit/{suite}/results")).unwrap();
        println!("{}", results.trim());
        assert!(!results.contains("not ok"), "{suite}:\n{results}");
        assert!(
            results.lines().any(|l| l.trim() == format!("ok 1 {suite}")),
            "{suite} did not pass:\n{results}"
        );
    }
}

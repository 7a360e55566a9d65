//! Where rzram must behave as upstream zram does, checked on zram1 and
//! rzram1 side by side: I/O accounting, a lockdep class for the slot locks,
//! the flags of reads from the backing device, `hot_remove` racing `reset`.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::MetadataExt as _,
    path::Path,
    time::Duration,
};

use zramctl_tests::{drop_caches, load_rzram, sh, sysfs_write};

use super::{LoopBacking, ensure_zram1};

/// `/sys/block/<dev>/stat` counts a device's I/O (`bio_start_io_acct` and
/// `bio_end_io_acct`): the same O_DIRECT writes and reads move the same
/// sector counts on rzram1 as on zram1 (before, rzram's stayed at 0).
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn io_is_accounted_in_disk_stat_as_on_zram() {
    load_rzram();
    let stat = |dev: &str| -> Vec<u64> {
        std::fs::read_to_string(format!("/sys/block/{dev}/stat"))
            .unwrap()
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect()
    };
    ensure_zram1();
    let mut moved = Vec::new();
    for dev in ["zram1", "rzram1"] {
        let _ = sysfs_write(dev, "reset", "1");
        sysfs_write(dev, "disksize", "16M").unwrap();
        let path = Path::new("/dev").join(dev);
        let before = stat(dev);
        zramctl_tests::write_pages_direct(&path, 5, 0, 64).unwrap();
        zramctl_tests::read_pages_direct(&path, 5, 0, 64).unwrap();
        let after = stat(dev);
        // Fields: 2 sectors read, 6 sectors written.
        let d = (after[2] - before[2], after[6] - before[6]);
        println!("{dev}: sectors read {}, written {}", d.0, d.1);
        moved.push(d);
        sysfs_write(dev, "reset", "1").unwrap();
    }
    assert_eq!(moved[0], (512, 512), "zram1 counts 64 pages each way");
    assert_eq!(moved[1], moved[0], "rzram1 counts its I/O as zram1 does");
}

/// Slot locks are lockdep locks, as zram's (`zram->table[index].lock`, one
/// class per device): an inversion between a slot lock and any other lock
/// is then reported. Needs a lockdep kernel (`cargo xtask vm-test
/// --debug-kernel hardening`); on others it says so and checks nothing.
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn slot_locks_have_a_lockdep_class_as_on_zram() {
    load_rzram();
    if !Path::new("/proc/lockdep").exists() {
        println!("kernel without lockdep: nothing to check (run with --debug-kernel)");
        return;
    }
    // A class lives as long as its device's table (reset unregisters its
    // key), so /proc/lockdep is read while the devices hold data. Its lines
    // end "...: <name>", with "#<n>" when a name was registered before.
    ensure_zram1();
    let mut found = Vec::new();
    for (dev, class) in [
        ("zram1", "zram->table[index].lock"),
        ("rzram1", "rzram->table[index].lock"),
    ] {
        let _ = sysfs_write(dev, "reset", "1");
        sysfs_write(dev, "disksize", "8M").unwrap();
        // Takes and releases slot locks.
        zramctl_tests::write_pages(&Path::new("/dev").join(dev), 3, 16).unwrap();
        let classes = std::fs::read_to_string("/proc/lockdep").unwrap();
        let has = classes.lines().any(|l| {
            l.rsplit_once(": ")
                .is_some_and(|(_, name)| name == class || name.starts_with(&format!("{class}#")))
        });
        println!(
            "{dev}: lockdep class {class:?} {}",
            if has { "present" } else { "absent" }
        );
        found.push(has);
        sysfs_write(dev, "reset", "1").unwrap();
    }
    assert!(
        found[0],
        "zram1's slot locks are not in /proc/lockdep: the oracle changed?"
    );
    assert!(
        found[1],
        "rzram1's slot locks are invisible to lockdep (zram1's are \"zram->table[index].lock\")"
    );
}

/// The kinds of bio that reach the backing device while written-back pages
/// are read, by their `rwbs` in the `block_bio_queue` tracepoint: a reader's
/// flags (readahead here) carry over to the backing read, as upstream's
/// `read_from_bdev_async` allocates it with the parent's `bi_opf`.
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn backing_reads_carry_the_readers_flags_as_on_zram() {
    load_rzram();
    ensure_zram1();
    let tracing = Path::new("/sys/kernel/tracing");
    if !tracing.join("events").exists() {
        sh("mount -t tracefs nodev /sys/kernel/tracing");
    }
    let t = |f: &str, v: &str| {
        std::fs::write(tracing.join(f), v).unwrap_or_else(|e| panic!("tracing/{f} <- {v}: {e}"))
    };
    let mut seen = Vec::new();
    for dev in ["zram1", "rzram1"] {
        let lo = LoopBacking::new(&format!("parity-{dev}"), 32);
        let rdev = std::fs::metadata(&lo.dev).unwrap().rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        let _ = sysfs_write(dev, "reset", "1");
        sysfs_write(dev, "backing_dev", &lo.dev).unwrap();
        sysfs_write(dev, "disksize", "16M").unwrap();
        let path = Path::new("/dev").join(dev);
        zramctl_tests::write_pages(&path, 23, 256).unwrap();
        sysfs_write(dev, "idle", "all").unwrap();
        sysfs_write(dev, "writeback", "idle").unwrap();
        drop_caches();
        t("tracing_on", "0");
        t("trace", "");
        t("events/block/block_bio_queue/enable", "1");
        t("tracing_on", "1");
        // A buffered read of the whole disk: the page cache reads ahead.
        let data = std::fs::read(&path).unwrap();
        t("tracing_on", "0");
        t("events/block/block_bio_queue/enable", "0");
        assert_eq!(data.len(), 16 << 20);
        let trace = std::fs::read_to_string(tracing.join("trace")).unwrap();
        let kinds: BTreeSet<String> = trace
            .lines()
            .filter_map(|l| {
                let mut f = l.split("block_bio_queue: ").nth(1)?.split_whitespace();
                (f.next()? == format!("{major},{minor}")).then(|| f.next().map(str::to_owned))?
            })
            .collect();
        println!("{dev}: backing reads (rwbs) {kinds:?}");
        seen.push(kinds);
        sysfs_write(dev, "reset", "1").unwrap();
    }
    assert!(
        !seen[0].is_empty(),
        "zram1 read nothing from its backing device"
    );
    assert_eq!(
        seen[1], seen[0],
        "rzram1's backing reads carry other flags than zram1's (rwbs)"
    );
}

/// A `hot_remove` racing a `reset` of the same closed disk succeeds, as on
/// zram (upstream's `zram_remove` takes over the reset's claim and
/// `del_gendisk` waits for the reset): never `EBUSY`.
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn hot_remove_racing_reset_succeeds_as_on_zram() {
    load_rzram();
    let mut tallies = Vec::new();
    for prefix in ["zram", "rzram"] {
        let control = Path::new("/sys/class").join(format!("{prefix}-control"));
        let mut tally = BTreeMap::<String, u32>::new();
        for round in 0..12u64 {
            let id: u32 = std::fs::read_to_string(control.join("hot_add"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let dev = format!("{prefix}{id}");
            sysfs_write(&dev, "disksize", "32M").unwrap();
            // 16 MiB to free: the reset takes a while.
            zramctl_tests::write_pages(&Path::new("/dev").join(&dev), round, 4096).unwrap();
            let d = dev.clone();
            let reset = std::thread::spawn(move || sysfs_write(&d, "reset", "1"));
            std::thread::sleep(Duration::from_micros(round * 400));
            let removed = std::fs::write(control.join("hot_remove"), id.to_string())
                .map_err(|e| e.raw_os_error().unwrap_or(-1));
            let reset = reset.join().unwrap();
            let key = |r: Result<(), i32>| match r {
                Ok(()) => "ok".to_string(),
                Err(e) => std::io::Error::from_raw_os_error(e).to_string(),
            };
            *tally
                .entry(format!("hot_remove {}, reset {}", key(removed), key(reset)))
                .or_default() += 1;
            if removed.is_err() {
                let _ = sysfs_write(&dev, "reset", "1");
                let _ = std::fs::write(control.join("hot_remove"), id.to_string());
            }
        }
        println!("{prefix}: {tally:?}");
        tallies.push((prefix, tally));
    }
    for (prefix, tally) in tallies {
        assert!(
            tally.keys().all(|k| k.starts_with("hot_remove ok")),
            "{prefix}: a hot_remove racing a reset failed: {tally:?}"
        );
    }
}

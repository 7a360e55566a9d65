//! Compression workspaces follow the online CPUs, as upstream's per-CPU
//! streams do (a CPU hotplug state): made when a CPU comes up, freed when
//! it goes, and none for a CPU that is not online.

use std::{
    path::Path,
    sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
};

use zramctl_tests::{
    load_rzram, pages_held, read_pages_direct, sysfs_write, verify_pages, write_pages_direct,
};

use crate::ensure_zram1;

/// Brings a CPU up or down.
fn set_online(cpu: u32, on: bool) {
    std::fs::write(
        format!("/sys/devices/system/cpu/cpu{cpu}/online"),
        if on { "1" } else { "0" },
    )
    .unwrap_or_else(|e| panic!("cpu{cpu} online={on}: {e}"));
}

/// Brings CPU 1 back up when the test ends, however it ends.
struct Cpu1Back;

impl Drop for Cpu1Back {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/devices/system/cpu/cpu1/online", "1");
    }
}

/// Runs the calling thread on `cpu` only.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity only read and write the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pinning to cpu{cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// With CPU 1 down, initialising a device makes workspaces for the online
/// CPU only: rzram's memory grows as zram's does, not by a workspace per
/// possible CPU. Then CPU 1 comes up, and a writer pinned to it uses the
/// workspace made for it; CPU 1 goes down and up under I/O from every
/// CPU, and no page is lost or changed.
#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn workspaces_follow_the_online_cpus_as_on_zram() {
    load_rzram();
    ensure_zram1();
    let _back = Cpu1Back;
    set_online(1, false);
    let mut grown = Vec::new();
    for dev in ["zram1", "rzram1"] {
        let _ = sysfs_write(dev, "reset", "1");
        // zstd: a stream is a few hundred KiB, far above the slot table's
        // 16 pages, so a workspace too many shows.
        sysfs_write(dev, "comp_algorithm", "zstd").unwrap();
        // Settle what the writes above allocated lazily.
        let _ = pages_held();
        let before = pages_held();
        sysfs_write(dev, "disksize", "16M").unwrap();
        let after = pages_held();
        println!(
            "{dev}: initialising with 1 of 2 CPUs online took {} pages",
            after - before
        );
        grown.push(after - before);
    }
    assert!(
        grown[0] > 32,
        "zram1 took only {} pages: the measure sees no stream",
        grown[0]
    );
    // Some slack for what the devices hold apart from their streams.
    assert!(
        grown[1] <= grown[0] + grown[0] / 4 + 16,
        "rzram1 took {} pages where zram1 took {}: workspaces for CPUs that are not online",
        grown[1],
        grown[0]
    );

    let path = Path::new("/dev/rzram1");
    set_online(1, true);
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to(1);
            write_pages_direct(path, 3, 0, 512).unwrap();
        });
    });
    let bad = verify_pages(path, 3, 512).unwrap();
    assert!(
        bad.is_empty(),
        "pages written on cpu1 read back wrong: {bad:?}"
    );

    // CPU 1 goes down and up while writers run everywhere, each reading
    // back what it wrote.
    let stop = AtomicBool::new(false);
    let done = [AtomicU64::new(0), AtomicU64::new(0)];
    let mut cycles = 0;
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let (stop, done) = (&stop, &done[t as usize]);
                s.spawn(move || {
                    let first = 1024 + t * 1024;
                    let mut round = 0u64;
                    while !stop.load(Relaxed) {
                        let seed = 100 + 2 * round + t;
                        write_pages_direct(path, seed, first, 256).unwrap();
                        let bad = read_pages_direct(path, seed, first, 256).unwrap();
                        assert!(bad.is_empty(), "round {round}: pages changed: {bad:?}");
                        round += 1;
                        done.store(round, Relaxed);
                    }
                })
            })
            .collect();
        // At least 20 cycles, and until each writer has done 10 rounds
        // (or 200 cycles, on a slow kernel).
        while cycles < 20 || (cycles < 200 && done.iter().any(|d| d.load(Relaxed) < 10)) {
            set_online(1, false);
            set_online(1, true);
            cycles += 1;
        }
        stop.store(true, Relaxed);
        for w in writers {
            w.join().unwrap();
        }
    });
    println!(
        "{cycles} hotplug cycles, writer rounds {:?}",
        done.iter().map(|d| d.load(Relaxed)).collect::<Vec<_>>()
    );
    let bad = verify_pages(path, 3, 512).unwrap();
    assert!(bad.is_empty(), "pages changed across CPU hotplug: {bad:?}");
    // Reset with CPU 1 down, then bring it up: the device's workspaces are
    // no longer an instance of the state.
    set_online(1, false);
    sysfs_write("rzram1", "reset", "1").unwrap();
    sysfs_write("zram1", "reset", "1").unwrap();
    set_online(1, true);
}

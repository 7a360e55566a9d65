//! VM tests of rzram, the Rust zram driver (kernel/drivers/block/rzram), in
//! our Linux 7.3: run inside the VM by `cargo xtask vm-test` (they need the
//! module and root, so they are `#[ignore]`d on the host).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use zramctl_tests::{
    drop_caches, load_rzram, sh, sysfs_read, sysfs_write, verify_pages, vmstat, write_pages,
    zramctl,
};

fn status(dev: &str) -> serde_json::Value {
    zramctl(&["status", dev, "--json"]).ok().json()[0].clone()
}

fn fresh(dev: &str, size: &str) -> PathBuf {
    load_rzram();
    let _ = sysfs_write(dev, "reset", "1");
    zramctl(&["setup", dev, "--size", size]).ok();
    PathBuf::from(format!("/dev/{dev}"))
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn abi_matches_upstream_zram_formats() {
    load_rzram();
    let _ = sysfs_write("rzram0", "reset", "1");
    assert_eq!(sysfs_read("rzram0", "initstate"), "0\n");
    assert_eq!(sysfs_read("rzram0", "disksize"), "0\n");
    assert_eq!(sysfs_read("rzram0", "comp_algorithm"), "[lz4] zstd \n");
    // Same layout as zram_drv.c's mm_stat_show: nine right-aligned fields.
    assert_eq!(
        sysfs_read("rzram0", "mm_stat"),
        format!("{}\n", ["       0"; 9].join(" "))
    );
    assert_eq!(
        sysfs_read("rzram0", "io_stat"),
        "       0        0 0        0\n"
    );
    assert_eq!(
        sysfs_read("rzram0", "debug_stat"),
        "version: 1\n0        0\n"
    );
    // memparse suffixes, rounded up to pages.
    sysfs_write("rzram0", "disksize", "1M").unwrap();
    assert_eq!(sysfs_read("rzram0", "disksize"), "1048576\n");
    assert_eq!(sysfs_read("rzram0", "initstate"), "1\n");
    assert_eq!(sh("blockdev --getsize64 /dev/rzram0").trim(), "1048576");
    sysfs_write("rzram0", "reset", "1").unwrap();
    sysfs_write("rzram0", "disksize", "5000").unwrap();
    assert_eq!(sysfs_read("rzram0", "disksize"), "8192\n");
    sysfs_write("rzram0", "reset", "1").unwrap();
    assert_eq!(sh("blockdev --getsize64 /dev/rzram0").trim(), "0");
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn bad_input_gets_upstream_errnos_and_the_device_keeps_working() {
    let dev = fresh("rzram0", "16M");
    write_pages(&dev, 11, 1024).unwrap();
    // Configuring a live device: EBUSY.
    assert_eq!(sysfs_write("rzram0", "disksize", "32M"), Err(libc::EBUSY));
    assert_eq!(
        sysfs_write("rzram0", "comp_algorithm", "lz4"),
        Err(libc::EBUSY)
    );
    // Garbage: EINVAL.
    for (attr, value) in [
        ("comp_algorithm", "nope"),
        ("idle", "yesterday"),
        ("reset", "0"),
        ("reset", "x"),
        ("mem_limit", "Q12"),
        ("mem_used_max", "5"),
    ] {
        assert_eq!(
            sysfs_write("rzram0", attr, value),
            Err(libc::EINVAL),
            "{attr} <- {value:?}"
        );
    }
    // Read-only attributes refuse writes, write-only refuse reads.
    assert_eq!(sysfs_write("rzram0", "mm_stat", "1"), Err(libc::EACCES));
    assert!(std::fs::read_to_string("/sys/block/rzram0/reset").is_err());
    // Binary junk.
    assert_eq!(
        sysfs_write("rzram0", "idle", "\u{0}\u{ff}"),
        Err(libc::EINVAL)
    );
    drop_caches();
    assert!(
        verify_pages(&dev, 11, 1024).unwrap().is_empty(),
        "data intact after bad input"
    );

    // Before init: disksize garbage and out-of-range.
    sysfs_write("rzram0", "reset", "1").unwrap();
    for value in ["abc", "0", "-1", "99999999999999999999"] {
        assert_eq!(
            sysfs_write("rzram0", "disksize", value),
            Err(libc::EINVAL),
            "disksize <- {value:?}"
        );
    }
    assert_eq!(
        sysfs_write("rzram0", "idle", "all"),
        Err(libc::EINVAL),
        "idle before init"
    );
    assert_eq!(
        sysfs_write("rzram0", "compact", "1"),
        Err(libc::EINVAL),
        "compact before init"
    );
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn pages_round_trip_with_stats_same_fill_and_partial_io() {
    let dev = fresh("rzram0", "64M");
    let pages = 8192;
    write_pages(&dev, 21, pages).unwrap();
    let s = status("rzram0");
    assert_eq!(s["mm_stat"]["orig_data_size"].as_u64(), Some(pages * 4096));
    let compr = s["mm_stat"]["compr_data_size"].as_u64().unwrap();
    assert!(compr > 0 && compr < pages * 4096, "compressed: {compr}");
    drop_caches();
    assert!(verify_pages(&dev, 21, pages).unwrap().is_empty());

    // Same-filled pages take no memory and read back exactly.
    sh("dd if=/dev/zero of=/dev/rzram0 bs=4096 count=16 seek=100 oflag=direct status=none");
    sh(
        "yes abcdefgh | tr -d '\\n' | head -c 65536 | dd of=/dev/rzram0 bs=4096 seek=200 oflag=direct status=none",
    );
    let s = status("rzram0");
    assert_eq!(s["mm_stat"]["same_pages"].as_u64(), Some(32));
    sh("cmp -n 65536 /dev/zero /dev/rzram0 --ignore-initial=0:409600");
    let pattern =
        sh("dd if=/dev/rzram0 bs=4096 skip=200 count=16 iflag=direct status=none | md5sum");
    let expect = sh("yes abcdefgh | tr -d '\\n' | head -c 65536 | md5sum");
    assert_eq!(pattern, expect);

    // Incompressible pages are stored whole.
    sh("dd if=/dev/urandom of=/dev/rzram0 bs=4096 count=64 seek=1000 oflag=direct status=none");
    assert!(status("rzram0")["mm_stat"]["huge_pages"].as_u64().unwrap() >= 64);

    // Sub-page I/O through the page cache of a 512-byte logical block is not
    // possible (4K blocks), but unaligned buffers split bios into partial
    // segments: write 3 pages from an odd offset of a bigger buffer.
    sh("dd if=/dev/urandom of=/tmp/odd bs=4096 count=3 status=none");
    sh("dd if=/tmp/odd of=/dev/rzram0 bs=4096 seek=3000 status=none conv=fsync");
    drop_caches();
    sh("cmp /tmp/odd /dev/rzram0 -n 12288 --ignore-initial=0:12288000");
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn ext4_on_rzram_survives_copy_fsck_and_remount() {
    let _ = fresh("rzram1", "256M");
    sh("mkfs.ext4 -q /dev/rzram1");
    sh("mkdir -p /tmp/mnt && mount /dev/rzram1 /tmp/mnt");
    sh("cp -a /usr/include/linux /tmp/mnt/linux");
    // Mounted: reset is refused.
    assert_eq!(sysfs_write("rzram1", "reset", "1"), Err(libc::EBUSY));
    sh("umount /tmp/mnt");
    let fsck = sh("fsck.ext4 -fn /dev/rzram1 2>&1");
    assert!(fsck.contains("files"), "{fsck}");
    sh("mount /dev/rzram1 /tmp/mnt");
    sh("diff -r /usr/include/linux /tmp/mnt/linux");
    sh("umount /tmp/mnt");
    let s = status("rzram1");
    assert!(s["mm_stat"]["orig_data_size"].as_u64().unwrap() > 4 << 20);
    sysfs_write("rzram1", "reset", "1").unwrap();
    assert_eq!(status("rzram1")["initialized"], false);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn reset_reinit_and_module_unload_are_clean() {
    for round in 0..3u64 {
        let dev = fresh("rzram0", "32M");
        write_pages(&dev, 100 + round, 2048).unwrap();
        drop_caches();
        assert!(
            verify_pages(&dev, 100 + round, 2048).unwrap().is_empty(),
            "round {round}"
        );
        sysfs_write("rzram0", "reset", "1").unwrap();
        assert_eq!(
            status("rzram0")["mm_stat"]["orig_data_size"].as_u64(),
            Some(0)
        );
    }
    // Unload with a device still initialised: everything is freed.
    let dev = fresh("rzram1", "16M");
    write_pages(&dev, 5, 512).unwrap();
    sh("rmmod rzram");
    assert!(!Path::new("/sys/block/rzram0").exists());
    load_rzram();
    assert_eq!(
        status("rzram1")["initialized"],
        false,
        "a fresh module has fresh devices"
    );
}

/// The memcheck helper binary, next to zramctl in the target dir.
fn memcheck_bin() -> PathBuf {
    zramctl_tests::zramctl_bin().with_file_name("memcheck")
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn swap_on_rzram_under_a_memory_limit_keeps_every_page() {
    let _ = fresh("rzram0", "512M");
    sh("mkswap /dev/rzram0 >/dev/null && swapon /dev/rzram0");
    sh("echo +memory > /sys/fs/cgroup/cgroup.subtree_control");
    sh("mkdir -p /sys/fs/cgroup/memcheck && echo 48M > /sys/fs/cgroup/memcheck/memory.max");
    let out_before = vmstat("pswpout");
    let in_before = vmstat("pswpin");
    // 160 MiB in a 48 MiB cgroup: most of it lives on rzram, twice over.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > /sys/fs/cgroup/memcheck/cgroup.procs && exec {} 160 2",
            memcheck_bin().display()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{}", stdout.trim());
    assert!(
        out.status.success(),
        "memcheck failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 words differ"), "{stdout}");
    let swapped_out = vmstat("pswpout") - out_before;
    let swapped_in = vmstat("pswpin") - in_before;
    println!("pswpout +{swapped_out}, pswpin +{swapped_in}");
    assert!(
        swapped_out > 20_000,
        "the workload really swapped: {swapped_out} pages out"
    );
    assert!(
        swapped_in > 20_000,
        "and read them back: {swapped_in} pages in"
    );
    let s = status("rzram0");
    // Freed swap slots reach rzram through swap_slot_free_notify or discard.
    assert!(s["io_stat"]["notify_free"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["io_stat"]["failed_reads"].as_u64(), Some(0));
    assert_eq!(s["io_stat"]["failed_writes"].as_u64(), Some(0));
    sh("swapoff /dev/rzram0");
    sh("rmdir /sys/fs/cgroup/memcheck");
    sysfs_write("rzram0", "reset", "1").unwrap();
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn kunit_suites_pass_at_module_load() {
    load_rzram();
    let mut total = 0;
    // Each suite with the number of cases it has at least.
    for (suite, cases) in [
        ("rzram_slots", 2),
        ("rzram_store", 2),
        ("rzram_sysfs", 2),
        ("rzram_writeback", 1),
        ("rzram_wb_select", 1),
    ] {
        let path = format!("/sys/kernel/debug/kunit/{suite}/results");
        let results = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!("{}", results.trim());
        assert!(
            !results.contains("not ok"),
            "{suite} has failures:\n{results}"
        );
        // KTAP: the suite's own plan ("    1..N", indented) and its verdict.
        let planned: u32 = results
            .lines()
            .filter(|l| l.starts_with("    1.."))
            .find_map(|l| l.trim().strip_prefix("1..")?.parse().ok())
            .unwrap_or_else(|| panic!("no test plan for {suite}:\n{results}"));
        assert!(
            results.lines().any(|l| l.trim() == format!("ok 1 {suite}")),
            "{suite} did not pass:\n{results}"
        );
        assert!(planned >= cases, "{suite} ran its tests: {planned}");
        let passed = planned;
        total += passed;
    }
    println!("KUnit: {total} rzram tests passed");
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn hot_add_and_hot_remove_like_zram_control() {
    load_rzram();
    let control = Path::new("/sys/class/rzram-control");
    let id: usize = std::fs::read_to_string(control.join("hot_add"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let name = format!("rzram{id}");
    assert!(
        Path::new("/sys/block").join(&name).exists(),
        "{name} created"
    );
    let dev = fresh(&name, "16M");
    write_pages(&dev, 31, 1024).unwrap();
    drop_caches();
    assert!(verify_pages(&dev, 31, 1024).unwrap().is_empty());

    let hot_remove = |v: &str| {
        std::fs::write(control.join("hot_remove"), v).map_err(|e| e.raw_os_error().unwrap())
    };
    {
        // An open device cannot go.
        let _open = std::fs::File::open(&dev).unwrap();
        assert_eq!(hot_remove(&id.to_string()), Err(libc::EBUSY));
    }
    assert_eq!(hot_remove("abc"), Err(libc::EINVAL));
    assert_eq!(hot_remove("-1"), Err(libc::EINVAL));
    assert_eq!(hot_remove("999"), Err(libc::ENODEV));
    hot_remove(&id.to_string()).unwrap();
    assert!(
        !Path::new("/sys/block").join(&name).exists(),
        "{name} removed"
    );
    assert_eq!(hot_remove(&id.to_string()), Err(libc::ENODEV));
    // The freed index is reused.
    let again: usize = std::fs::read_to_string(control.join("hot_add"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(again, id);
    hot_remove(&again.to_string()).unwrap();
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn zstd_round_trips_and_compresses_harder_than_lz4() {
    let mut compr = Vec::new();
    for algo in ["lz4", "zstd"] {
        load_rzram();
        let _ = sysfs_write("rzram0", "reset", "1");
        zramctl(&["setup", "rzram0", "--size", "64M", "--algorithm", algo]).ok();
        assert!(sysfs_read("rzram0", "comp_algorithm").contains(&format!("[{algo}]")));
        let dev = PathBuf::from("/dev/rzram0");
        write_pages(&dev, 41, 4096).unwrap();
        drop_caches();
        assert!(
            verify_pages(&dev, 41, 4096).unwrap().is_empty(),
            "{algo} round trip"
        );
        compr.push(
            status("rzram0")["mm_stat"]["compr_data_size"]
                .as_u64()
                .unwrap(),
        );
        sysfs_write("rzram0", "reset", "1").unwrap();
    }
    println!(
        "16 MiB of test data: lz4 {} bytes, zstd {} bytes",
        compr[0], compr[1]
    );
    assert!(
        compr[1] < compr[0],
        "zstd is the stronger algorithm: {compr:?}"
    );
    // Reset puts the default algorithm back, as zram does.
    assert_eq!(sysfs_read("rzram0", "comp_algorithm"), "[lz4] zstd \n");
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn random_read_write_with_verification_over_the_whole_disk() {
    let _ = fresh("rzram1", "64M");
    // fio writes every 4K block of the disk once, in random order, with a
    // crc32c header per block, then reads them all back and checks them.
    let out = sh(
        "fio --name=verify --thread --filename=/dev/rzram1 --rw=randwrite --bs=4k --size=64M \
         --direct=1 --iodepth=1 --numjobs=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
         --buffer_compress_percentage=50 --refill_buffers --output-format=terse 2>&1",
    );
    assert!(!out.contains("verify: bad"), "{out}");
    // Every page is stored; a second, mixed random pass verifies as it goes.
    assert_eq!(
        status("rzram1")["mm_stat"]["orig_data_size"].as_u64(),
        Some(64 << 20)
    );
    sh(
        "fio --name=mixed --thread --filename=/dev/rzram1 --rw=randrw --bs=4k --size=64M --direct=1 \
        --numjobs=1 --verify=crc32c --verify_fatal=1 --runtime=5 --output-format=terse",
    );
    let s = status("rzram1");
    assert_eq!(s["io_stat"]["failed_reads"].as_u64(), Some(0));
    assert_eq!(s["io_stat"]["failed_writes"].as_u64(), Some(0));
    sysfs_write("rzram1", "reset", "1").unwrap();
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn recompression_with_zstd_shrinks_idle_pages_and_keeps_data() {
    load_rzram();
    let _ = sysfs_write("rzram0", "reset", "1");
    // Upstream's ABI and errnos: before init only, known algorithm, 1..=3.
    assert_eq!(
        sysfs_write("rzram0", "recomp_algorithm", "algo=nope"),
        Err(libc::EINVAL)
    );
    assert_eq!(
        sysfs_write("rzram0", "recomp_algorithm", "algo=zstd priority=4"),
        Err(libc::EINVAL)
    );
    sysfs_write("rzram0", "recomp_algorithm", "algo=zstd").unwrap();
    assert_eq!(
        sysfs_read("rzram0", "recomp_algorithm"),
        "#1: lz4 [zstd] \n"
    );
    zramctl(&["setup", "rzram0", "--size", "64M", "--algorithm", "lz4"]).ok();
    assert_eq!(
        sysfs_write("rzram0", "recomp_algorithm", "algo=zstd"),
        Err(libc::EBUSY)
    );
    let dev = PathBuf::from("/dev/rzram0");
    write_pages(&dev, 43, 4096).unwrap();
    let compr = || {
        status("rzram0")["mm_stat"]["compr_data_size"]
            .as_u64()
            .unwrap()
    };
    let before = compr();
    // Nothing is idle yet: nothing changes.
    sysfs_write("rzram0", "recompress", "type=idle").unwrap();
    assert_eq!(compr(), before);
    assert_eq!(
        sysfs_write("rzram0", "recompress", "type=idle threshold=4096"),
        Err(libc::EINVAL)
    );
    assert_eq!(
        sysfs_write("rzram0", "recompress", "type=idle algo=lz4"),
        Err(libc::EINVAL)
    );
    sysfs_write("rzram0", "idle", "all").unwrap();
    sysfs_write("rzram0", "recompress", "type=idle algo=zstd").unwrap();
    let after = compr();
    println!("16 MiB of test data: lz4 {before} bytes, recompressed with zstd {after} bytes");
    assert!(
        after < before,
        "recompression saves memory: {before} -> {after}"
    );
    drop_caches();
    assert!(verify_pages(&dev, 43, 4096).unwrap().is_empty());
    // Recompressed pages are no longer idle, and already at priority 1.
    sysfs_write("rzram0", "idle", "all").unwrap();
    sysfs_write("rzram0", "recompress", "type=idle").unwrap();
    assert_eq!(compr(), after);
    sysfs_write("rzram0", "reset", "1").unwrap();
    assert_eq!(sysfs_read("rzram0", "recomp_algorithm"), "");
}

//! Host tests on this machine's real zram0 and its kernel's BPF: they run as
//! root when zram0 exists and is unused, and print why they skipped
//! otherwise. Both tests use zram0, so they take a lock.

use std::{path::Path, sync::Mutex};

use zramctl::{probes::BioCounter, sysfs::Sysfs};
use zramctl_tests::{
    PAGE, Zram0Reset, drop_caches, require_zram0, verify_pages, write_pages, zramctl,
};

static ZRAM0: Mutex<()> = Mutex::new(());

#[test]
fn real_zram0_setup_status_idle_writeback_reset() {
    let _guard = ZRAM0.lock().unwrap_or_else(|e| e.into_inner());
    require_zram0!();
    let _reset = Zram0Reset;
    let algos =
        zramctl(&["status", "zram0", "--json"]).ok().json()[0]["algorithms_available"].clone();
    let algo = if algos.as_array().unwrap().iter().any(|a| a == "lz4") {
        "lz4"
    } else {
        "lzo"
    };
    let out = zramctl(&["setup", "/dev/zram0", "--size", "64M", "--algorithm", algo]).ok();
    assert!(out.stdout.contains("zram0: 64M"), "{}", out.stdout);

    let pages = 2048; // 8 MiB
    write_pages(Path::new("/dev/zram0"), 7, pages).unwrap();
    let s = zramctl(&["status", "zram0", "--json"]).ok().json()[0].clone();
    assert_eq!(s["initialized"], true);
    assert_eq!(s["disksize"].as_u64(), Some(64 << 20));
    assert_eq!(s["algorithm"].as_str(), Some(algo));
    assert_eq!(
        s["mm_stat"]["orig_data_size"].as_u64(),
        Some(pages * PAGE as u64)
    );
    let compr = s["mm_stat"]["compr_data_size"].as_u64().unwrap();
    assert!(
        compr > 0 && compr < pages * PAGE as u64,
        "data compresses: {compr}"
    );
    assert!(s["ratio"].as_f64().unwrap() > 1.0);

    let table = zramctl(&["status"]).ok().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("zram0 ") && l.contains("64M") && l.contains("8M")),
        "{table}"
    );

    zramctl(&["idle", "zram0", "--all"]).ok();

    // This machine's zram has no writeback: a clear error, not a panic.
    if !Path::new("/sys/block/zram0/writeback").exists() {
        let r = zramctl(&["writeback", "zram0", "--idle"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("CONFIG_ZRAM_WRITEBACK"), "{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }

    drop_caches();
    assert_eq!(
        verify_pages(Path::new("/dev/zram0"), 7, pages).unwrap(),
        Vec::<u64>::new()
    );

    // Configuring it again is refused and changes nothing.
    let r = zramctl(&["setup", "zram0", "--size", "32M"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("reset it first"), "{}", r.stderr);

    zramctl(&["reset", "zram0"]).ok();
    let s = zramctl(&["status", "zram0", "--json"]).ok().json()[0].clone();
    assert_eq!(s["initialized"], false);
    assert_eq!(s["mm_stat"]["orig_data_size"].as_u64(), Some(0));
}

#[test]
fn ebpf_counts_bios_queued_to_zram0() {
    let _guard = ZRAM0.lock().unwrap_or_else(|e| e.into_inner());
    require_zram0!();
    let _reset = Zram0Reset;
    let sys = Sysfs::system();
    let dev = sys.device("zram0").unwrap();
    dev.set_disksize(16 << 20).unwrap();
    let (major, minor) = dev.dev_numbers().unwrap();
    let counter = match BioCounter::attach(major, minor) {
        Ok(c) => c,
        Err(e) => {
            // The message must say what is missing; on this project's machines BPF works.
            let msg = e.to_string();
            assert!(msg.contains("BPF") || msg.contains("BTF"), "{msg}");
            eprintln!("skipped: {msg}");
            return;
        }
    };
    let before = counter.counts().unwrap();
    let pages = 256u64;
    write_pages(Path::new("/dev/zram0"), 9, pages).unwrap();
    drop_caches();
    assert!(
        verify_pages(Path::new("/dev/zram0"), 9, pages)
            .unwrap()
            .is_empty()
    );
    let c = counter.counts().unwrap();
    let writes = c.writes - before.writes;
    let reads = c.reads - before.reads;
    assert!(writes > 0, "write bios counted: {c:?}");
    assert!(reads > 0, "read bios counted: {c:?}");
    // Writing and reading back `pages` pages moves at least that much each way.
    assert!(
        c.bytes - before.bytes >= 2 * pages * PAGE as u64,
        "bytes counted: {c:?}"
    );
}

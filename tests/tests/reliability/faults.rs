//! Suite 2: Faults of the backing device, on upstream zram and rzram.

use crate::common::*;

// ---------------------------------------------------------------------------
// 2. Faults of the backing device.

pub const FAULT_PAGES: u64 = 1024;

/// Reads every page once from a cold cache and checks it; returns how many
/// reads went to the backing disk (the written-back slots).
#[track_caller]
pub fn verify_and_count_wb(dev: &str, gen_: u64) -> u64 {
    drop_caches();
    let path = PathBuf::from(format!("/dev/{dev}"));
    let before = stats(dev);
    let gens = vec![gen_; FAULT_PAGES as usize];
    let bad = verify_gens(&path, &gens);
    assert!(
        bad.is_empty(),
        "{dev}: {} pages differ, first {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    stats(dev).bd_reads - before.bd_reads
}

pub fn candidates(gen_: u64) -> u64 {
    (0..FAULT_PAGES)
        .filter(|&i| !is_same_filled(gen_, i))
        .count() as u64
}

pub fn backing_faults(kind: Kind) {
    in_vm();
    let t0 = Instant::now();
    let dev = kind.dev();
    prepare(dev);
    let offset = if kind == Kind::Zram { 512 } else { 576 };
    let dm = DmSlice::linear(&format!("rel-fault-{dev}"), offset, 64);
    // Dropped before the dm device: the device lets go of it.
    let _reset = ResetOnDrop(dev);
    let path = PathBuf::from(format!("/dev/{dev}"));
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    let setup = |gen_: u64| {
        reset(dev);
        sysfs_write(dev, "backing_dev", dm.path.to_str().unwrap()).unwrap();
        sysfs_write(dev, "disksize", "16M").unwrap();
        write_gen(&path, gen_, 0, FAULT_PAGES);
    };

    // a. Writes fail (dm-flakey error_writes, dm error): EIO from write(2),
    // the pages stay in RAM, no block leaks, the limit is not charged;
    // rzram counts the failed writes in io_stat, upstream does not.
    setup(1);
    sysfs_write(dev, "writeback_limit_enable", "1").unwrap();
    sysfs_write(dev, "writeback_limit", "100000").unwrap();
    for (what, table) in [
        ("dm-flakey error_writes", dm.flakey_table("error_writes")),
        ("dm error", format!("0 {} error", dm.sectors())),
    ] {
        dm.load(&table);
        sysfs_write(dev, "idle", "all").unwrap();
        let before = stats(dev);
        assert_eq!(writeback(dev, "idle"), Err(libc::EIO), "{dev}: {what}");
        let after = stats(dev);
        zramctl_tests::assert_failed_writeback_kept_nothing(dev, what, &before, &after, 100000);
        let failed = after.failed_writes - before.failed_writes;
        match kind {
            Kind::Zram => assert_eq!(failed, 0, "upstream counts no writeback failures"),
            Kind::Rzram => assert_eq!(
                failed,
                candidates(1),
                "{dev}: {what}: every failed page counted"
            ),
        }
        *injected.entry(what.into()).or_default() += candidates(1);
        dm.load(&dm.linear_table());
        assert_eq!(verify_and_count_wb(dev, 1), 0, "{what}: nothing on disk");
    }
    sysfs_write(dev, "writeback_limit_enable", "0").unwrap();

    // b. fail_make_request on the backing device at 5, 30, 100 %: some
    // pages go, the rest stay in RAM; bd_count is exactly the written-back
    // slots; every page reads back.
    for (k, percent) in [5u32, 30, 100].into_iter().enumerate() {
        let g = 2 + k as u64;
        setup(g);
        sysfs_write(dev, "idle", "all").unwrap();
        let before = stats(dev);
        let r = {
            let _f = FailMakeRequest::new(&dm.kname(), percent);
            writeback(dev, "idle")
        };
        let after = stats(dev);
        let written = after.bd_writes - before.bd_writes;
        let failed = candidates(g) - written;
        println!(
            "{dev}: fail_make_request {percent}%: writeback -> {r:?}, {written} written, {failed} failed, {after:?}"
        );
        assert_eq!(after.bd_count, written, "{dev}: {percent}%");
        assert_eq!(r.is_err(), failed > 0, "{dev}: {percent}%: {r:?}");
        if failed > 0 {
            assert_eq!(r, Err(libc::EIO));
        }
        if percent == 100 {
            assert_eq!(written, 0);
        } else if percent >= 30 {
            assert!(
                written > 0 && failed > 0,
                "{dev}: {percent}%: {written}/{failed}"
            );
        }
        // At 5 % the odds are per request: rzram's 32-page bios make about
        // 28 requests of these 896 pages, so no failure at all is likely
        // (0.95^28 = 24 %); only the invariants above and below hold.
        match kind {
            Kind::Zram => assert_eq!(after.failed_writes, before.failed_writes),
            Kind::Rzram => assert_eq!(after.failed_writes - before.failed_writes, failed),
        }
        *injected
            .entry(format!("fail_make_request {percent}% writes"))
            .or_default() += failed;
        assert_eq!(
            verify_and_count_wb(dev, g),
            written,
            "{dev}: {percent}%: backing reads = written-back slots"
        );
        assert_eq!(stats(dev).bd_count, written);
    }

    // c. Reads of written-back pages fail: EIO to the reader (100 %), or
    // the right data or EIO page by page (30 %), never anything else; and
    // the data is all there once the disk is healthy again.
    let g = 5;
    setup(g);
    sysfs_write(dev, "idle", "all").unwrap();
    writeback(dev, "idle").unwrap();
    assert_eq!(stats(dev).bd_count, candidates(g));
    for percent in [100u32, 30] {
        drop_caches();
        let before = stats(dev);
        let (mut eio, mut ok) = (0u64, 0u64);
        {
            let _f = FailMakeRequest::new(&dm.kname(), percent);
            for i in 0..FAULT_PAGES {
                match read_bytes_direct(&path, i, 1) {
                    Ok(p) => {
                        assert!(p == page_of(g, i), "{dev}: {percent}%: page {i} is garbage");
                        ok += 1;
                    }
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{dev}: page {i}");
                        assert!(!is_same_filled(g, i), "{dev}: same-filled page {i} failed");
                        eio += 1;
                    }
                }
            }
        }
        let after = stats(dev);
        println!(
            "{dev}: reads with fail_make_request {percent}%: {eio} EIO, {ok} ok, failed_reads +{}",
            after.failed_reads - before.failed_reads
        );
        if percent == 100 {
            assert_eq!(eio, candidates(g));
        } else {
            assert!(eio > 0 && eio < candidates(g));
        }
        // Upstream counts no failed backing reads in io_stat (the error
        // goes to the reader through the chained bio); rzram does the same.
        assert_eq!(after.failed_reads, before.failed_reads, "{dev}");
        *injected
            .entry(format!("fail_make_request {percent}% reads"))
            .or_default() += eio;
    }
    assert_eq!(
        verify_and_count_wb(dev, g),
        candidates(g),
        "{dev}: all there"
    );

    // d. No leaks: discarding everything frees every block; reset takes
    // zsmalloc back to 0.
    discard_pages(&path, 0, FAULT_PAGES).unwrap();
    let s = stats(dev);
    assert_eq!(s.bd_count, 0, "{dev}: discard freed every block: {s:?}");
    reset(dev);
    let mm = fields(dev, "mm_stat");
    assert!(
        mm.iter().all(|v| *v == 0),
        "{dev}: mm_stat after reset: {mm:?}"
    );

    // e. Writes silently dropped (dm-flakey drop_writes): zram has no
    // checksums and trusts a completed write, so writeback "succeeds", the
    // RAM copy is freed, and reading the page returns whatever the disk
    // held (here zeros): the data is lost, and both drivers say so the
    // same way (no error anywhere). This is documented zram behaviour: the
    // backing device must be reliable.
    sh(&format!(
        "dd if=/dev/zero of={} bs=1M count=64 oflag=direct status=none",
        dm.path.display()
    ));
    let g = 6;
    setup(g);
    dm.load(&dm.flakey_table("drop_writes"));
    sysfs_write(dev, "idle", "all").unwrap();
    let before = stats(dev);
    assert_eq!(
        writeback(dev, "idle"),
        Ok(()),
        "{dev}: dropped writes succeed"
    );
    let after = stats(dev);
    assert_eq!(after.bd_count, candidates(g));
    assert_eq!(after.failed_writes, before.failed_writes);
    dm.load(&dm.linear_table());
    drop_caches();
    let mut zeros = 0;
    for i in 0..FAULT_PAGES {
        let p = read_bytes_direct(&path, i, 1).unwrap_or_else(|e| panic!("{dev}: page {i}: {e}"));
        if is_same_filled(g, i) {
            assert!(p == page_of(g, i), "{dev}: same-filled page {i}");
        } else {
            assert!(
                p.iter().all(|b| *b == 0),
                "{dev}: page {i} after a dropped write: not the disk's stale zeros"
            );
            zeros += 1;
        }
    }
    *injected.entry("dm-flakey drop_writes".into()).or_default() += zeros;
    println!("{dev}: drop_writes: {zeros} pages read back as the disk's stale zeros (no error)");
    reset(dev);
    assert_eq!(
        fields(dev, "bd_stat"),
        [0, 0, 0],
        "{dev}: bd_stat after reset"
    );
    assert_eq!(
        fields(dev, "mm_stat")[2],
        0,
        "{dev}: mem_used_total after reset"
    );
    drop(_reset);
    drop(dm);
    println!(
        "{dev}: faults injected {injected:?} ({:.1}s)",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
pub fn zram_backing_faults() {
    backing_faults(Kind::Zram);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
pub fn rzram_backing_faults() {
    load_rzram();
    backing_faults(Kind::Rzram);
}

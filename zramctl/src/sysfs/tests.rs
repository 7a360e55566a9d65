use super::{error::explain_write_errno, *};

// Formats exactly as zram_drv.c prints them (Linux 7.3 and older).
#[test]
fn mm_stat_current_and_old_kernels() {
    let s = "  1048576    16384    65536        0    65536        3        0        1        2\n";
    let m = MmStat::parse(s).unwrap();
    assert_eq!(m.orig_data_size, 1 << 20);
    assert_eq!(m.compr_data_size, 16384);
    assert_eq!(m.same_pages, 3);
    assert_eq!(m.huge_pages, Some(1));
    assert_eq!(m.huge_pages_since, Some(2));
    assert_eq!(m.ratio(), Some(64.0));
    // 4.x kernels: 7 fields, no huge page counts; tabs and odd spacing.
    let old = MmStat::parse("4096\t2048 8192 0  8192 0 0").unwrap();
    assert_eq!(old.huge_pages, None);
    assert_eq!(old.huge_pages_since, None);
    assert!(MmStat::parse("1 2 3").unwrap_err().0.contains("at least 7"));
    assert!(
        MmStat::parse("1 2 3 x 5 6 7")
            .unwrap_err()
            .0
            .contains("\"x\"")
    );
    assert_eq!(MmStat::default().ratio(), None);
}

#[test]
fn io_and_bd_stat() {
    // 6.x+ prints a literal 0 for invalid_io.
    let io = IoStat::parse("       1        2 0        7\n").unwrap();
    assert_eq!(
        (
            io.failed_reads,
            io.failed_writes,
            io.invalid_io,
            io.notify_free
        ),
        (1, 2, 0, 7)
    );
    let old = IoStat::parse("1 2 3").unwrap();
    assert_eq!(old.notify_free, 0);
    let bd = BdStat::parse("      12        3       40\n").unwrap();
    assert_eq!(
        bd,
        BdStat {
            bd_count: 12,
            bd_reads: 3,
            bd_writes: 40
        }
    );
    assert!(BdStat::parse("").is_err());
}

#[test]
fn debug_stat_versions() {
    let d = DebugStat::parse("version: 1\n0        5\n").unwrap();
    assert_eq!(
        d,
        DebugStat {
            version: 1,
            values: vec![0, 5]
        }
    );
    assert!(DebugStat::parse("0 5\n").is_err());
}

#[test]
fn comp_algorithm_brackets() {
    let c = CompAlgorithms::parse("lzo lzo-rle [lz4] lz4hc 842 zstd \n").unwrap();
    assert_eq!(c.current, "lz4");
    assert_eq!(
        c.available,
        ["lzo", "lzo-rle", "lz4", "lz4hc", "842", "zstd"]
    );
    assert!(CompAlgorithms::parse("lzo lz4").is_err());
    assert!(CompAlgorithms::parse("[lzo] [lz4]").is_err());
}

#[test]
fn device_names() {
    for (spec, name) in [
        ("zram0", "zram0"),
        ("/dev/zram1", "zram1"),
        ("/sys/block/zram12/", "zram12"),
        ("rzram3", "rzram3"),
        ("/dev/rzram0", "rzram0"),
    ] {
        assert_eq!(normalize_device_name(spec).unwrap(), name);
    }
    for bad in [
        "",
        "zram",
        "sda",
        "zram-1",
        "zram01",
        "/dev/loop0",
        "zram0/../sda",
        "xzram0",
    ] {
        let e = normalize_device_name(bad).unwrap_err();
        assert!(e.to_string().contains("expected zramN"), "{bad}: {e}");
    }
}

#[test]
fn writeback_tokens() {
    assert_eq!(WritebackMode::HugeIdle.sysfs_token(), "huge_idle");
    assert_eq!(
        WritebackMode::Pages { first: 5, last: 5 }.sysfs_token(),
        "page_index=5"
    );
    assert_eq!(
        WritebackMode::Pages {
            first: 1,
            last: 100
        }
        .sysfs_token(),
        "page_indexes=1-100"
    );
}

#[test]
fn recompression_formats() {
    let r =
        RecompAlgorithm::parse_all("#1: lzo lzo-rle lz4 [zstd] \n#2: lzo [lz4] zstd\n").unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].priority, r[0].algorithms.current.as_str()),
        (1, "zstd")
    );
    assert_eq!(
        (r[1].priority, r[1].algorithms.current.as_str()),
        (2, "lz4")
    );
    assert!(RecompAlgorithm::parse_all("").unwrap().is_empty());
    // Exactly what 7.3's upstream zram prints (NULs from its double count).
    let r = RecompAlgorithm::parse_all("#1: lz4 [zstd] \n\0\0\0\0").unwrap();
    assert_eq!((r.len(), r[0].algorithms.current.as_str()), (1, "zstd"));
    assert!(RecompAlgorithm::parse_all("zstd\n").is_err());
    let req = Recompress {
        kind: Some(RecompressType::Idle),
        threshold: Some(2000),
        priority: Some(1),
        ..Recompress::default()
    };
    assert_eq!(req.sysfs_value(), "type=idle threshold=2000 priority=1");
    let req = Recompress {
        kind: Some(RecompressType::HugeIdle),
        algo: Some("zstd".into()),
        max_pages: Some(42),
        ..Recompress::default()
    };
    assert_eq!(req.sysfs_value(), "type=huge_idle max_pages=42 algo=zstd");
}

#[test]
fn errno_meanings() {
    assert_eq!(
        explain_write_errno("disksize", Some(libc::EBUSY)),
        "device already initialised: reset it first"
    );
    assert!(explain_write_errno("reset", Some(libc::EBUSY)).contains("in use"));
    assert_eq!(
        explain_write_errno("disksize", Some(libc::EACCES)),
        "permission denied: run as root"
    );
    assert_eq!(errno_label(Some(libc::EINVAL)), "EINVAL");
    assert_eq!(errno_label(Some(4095)), "errno 4095");
}

use super::*;

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{Ebpf, EbpfLoader, maps::PerCpuArray, programs::RawTracePoint};
use zramctl_common::{
    GLOBAL_OFFSETS, GLOBAL_TARGET_DEV, GLOBAL_WATCH, KernelOffsets, LatHist, MAP_BIO_COUNTS,
    MAX_DEVS, PROG_BIO_QUEUE, RzramCounters, SlotState, WatchedDev, kernel_dev, map, prog, rz_hist,
    rz_hist_index, watch,
};

use super::{
    btf::{Btf, BtfBuilder, BtfError},
    error::classify,
    hist::{LatencyHistogram, RzramCounts},
    programs::{ACCESS_PROGS, BIO_LATENCY_PROGS, COST_FLOOR_PROG, RQ_LATENCY_PROGS, RZRAM_PROGS},
};

/// BTF with the structs the probes read, laid out like Linux 6.18's
/// (bi_iter inside struct bio, cmd_flags and part in struct request);
/// `with_part` false leaves `request.part` out.
fn block_btf(with_part: bool) -> Btf {
    let mut b = BtfBuilder::new();
    let u32_ = b.int("unsigned int", 4);
    let u64_ = b.int("long long unsigned int", 8);
    let bdev = b.record(
        "block_device",
        false,
        64,
        &[("bd_start_sect", u64_, 0), ("bd_dev", u32_, 52)],
    );
    let bdev_p = b.ptr(bdev);
    let iter = b.record(
        "bvec_iter",
        false,
        20,
        &[
            ("bi_sector", u64_, 0),
            ("bi_size", u32_, 8),
            ("bi_idx", u32_, 12),
        ],
    );
    // bi_opf inside an anonymous union, to exercise anonymous members.
    let opf = b.record("", true, 4, &[("bi_opf", u32_, 0)]);
    b.record(
        "bio",
        false,
        120,
        &[
            ("bi_next", u64_, 0),
            ("bi_bdev", bdev_p, 8),
            ("", opf, 16),
            ("bi_iter", iter, 32),
        ],
    );
    let mut rq: Vec<(&str, u32, u32)> = vec![("q", u64_, 0), ("cmd_flags", u32_, 24)];
    if with_part {
        rq.push(("part", bdev_p, 88));
    }
    b.record("request", false, 256, &rq);
    Btf::parse(&b.build()).unwrap()
}

#[test]
fn offsets_resolve_from_btf() {
    let o = kernel_offsets(&block_btf(true)).unwrap();
    assert_eq!(
        o,
        KernelOffsets {
            bio_bi_bdev: 8,
            bio_bi_opf: 16,
            bio_bi_sector: 32,
            bio_bi_size: 40,
            bdev_bd_dev: 52,
            rq_part: 88,
            rq_cmd_flags: 24,
            _pad: 0,
        }
    );
}

#[test]
fn a_missing_field_is_named() {
    let e = kernel_offsets(&block_btf(false)).unwrap_err();
    assert!(
        matches!(&e, BtfError::NoMember { strukt, member } if strukt == "request" && member == "part"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "struct request has no member part in the kernel's BTF"
    );
    // Through the loader's error type it still says what is missing.
    let p = ProbeError::from(e);
    assert!(p.to_string().contains("no member part"), "{p}");
}

/// Offsets of another kernel's BTF: the Linux 7.3 vmlinux built by
/// `cargo xtask kernel` (or $ZRAMCTL_VMLINUX), if present. 7.3 moved
/// bi_iter (a `bi_io_vec` pointer now precedes it); the probes only
/// work there because the offsets come from BTF.
#[test]
fn offsets_of_the_vm_kernel() {
    use object::{Object as _, ObjectSection as _};
    let path = std::env::var_os("ZRAMCTL_VMLINUX")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::Path::new(&h).join(".cache/zramctl/build/vmlinux"))
        });
    let Some(data) = path.as_ref().and_then(|p| std::fs::read(p).ok()) else {
        return eprintln!("skipped: no vmlinux at {path:?} (cargo xtask kernel builds one)");
    };
    // The kernel may be being rebuilt right now: skip on a partial file.
    let Some(btf) = object::File::parse(&*data)
        .ok()
        .and_then(|elf| elf.section_by_name(".BTF")?.data().ok().map(Btf::parse))
    else {
        return eprintln!("skipped: {path:?} is not (yet) an ELF file with .BTF");
    };
    let o = kernel_offsets(&btf.unwrap()).unwrap();
    eprintln!("{path:?}: {o:?}");
    assert_eq!(o.bio_bi_bdev, 8);
    assert_eq!(o.bio_bi_size, o.bio_bi_sector + 8);
    assert!(o.bio_bi_sector > o.bio_bi_opf, "{o:?}");
}

#[test]
fn watch_tables() {
    let d = |name: &str, minor, slots, latency| WatchSpec {
        name: name.into(),
        major: 253,
        minor,
        slots,
        latency,
        rzram: false,
    };
    let (t, total) = watch_table(&[
        d("zram0", 0, 100, Some(LatencyKind::Bio)),
        d("zram1", 1, 50, None),
        d("loop0", 2, 0, Some(LatencyKind::Request)),
    ])
    .unwrap();
    assert_eq!(total, 150);
    assert_eq!(t.count, 3);
    assert_eq!(
        t.devs[0],
        WatchedDev {
            dev: kernel_dev(253, 0),
            flags: watch::ACCESS | watch::BIO_LATENCY,
            slot_base: 0,
            slot_count: 100
        }
    );
    assert_eq!((t.devs[1].flags, t.devs[1].slot_base), (watch::ACCESS, 100));
    assert_eq!(
        (t.devs[2].flags, t.devs[2].slot_count),
        (watch::RQ_LATENCY, 0)
    );
    // An rzram device: its slots come from rzram's tracepoint.
    let rz = WatchSpec {
        rzram: true,
        ..d("rzram1", 7, 64, Some(LatencyKind::Bio))
    };
    let (t, _) = watch_table(std::slice::from_ref(&rz)).unwrap();
    assert_eq!(
        t.devs[0].flags,
        watch::ACCESS | watch::BIO_LATENCY | watch::RZRAM
    );
    // rzram events alone are something to watch.
    let (t, _) = watch_table(&[WatchSpec {
        slots: 0,
        latency: None,
        ..rz
    }])
    .unwrap();
    assert_eq!(t.devs[0].flags, watch::RZRAM);
    let err = |devs: &[WatchSpec]| watch_table(devs).unwrap_err().to_string();
    assert!(err(&[]).contains("no devices"));
    assert!(err(&[d("zram0", 0, 0, None)]).contains("neither"));
    assert!(err(&[d("a", 0, 1, None), d("b", 0, 1, None)]).contains("twice"));
    let many: Vec<_> = (0..=MAX_DEVS as u32).map(|i| d("z", i, 1, None)).collect();
    assert!(err(&many).contains("at most 8"));
    assert!(err(&[d("a", 0, u32::MAX, None), d("b", 1, 1, None)]).contains("2^32"));
}

#[test]
fn block_dev_info_from_sysfs() {
    let root = tempfile::tempdir().unwrap();
    let sys = root.path();
    let mk = |rel: &str| std::fs::create_dir_all(sys.join(rel)).unwrap();
    mk("devices/virtual/block/loop3/mq/0");
    mk("devices/pci/block/nvme0n1/mq/0");
    mk("devices/pci/block/nvme0n1/nvme0n1p2");
    std::fs::write(
        sys.join("devices/pci/block/nvme0n1/nvme0n1p2/partition"),
        "2",
    )
    .unwrap();
    mk("devices/virtual/block/zram0");
    mk("dev/block");
    for (link, target) in [
        ("7:3", "devices/virtual/block/loop3"),
        ("259:2", "devices/pci/block/nvme0n1/nvme0n1p2"),
        ("253:0", "devices/virtual/block/zram0"),
    ] {
        std::os::unix::fs::symlink(sys.join(target), sys.join("dev/block").join(link)).unwrap();
    }
    let info = |ma, mi| BlockDevInfo::from_numbers(sys, ma, mi).unwrap();
    assert_eq!(
        info(7, 3),
        BlockDevInfo {
            name: "loop3".into(),
            major: 7,
            minor: 3,
            blk_mq: true
        }
    );
    let p = info(259, 2);
    assert_eq!(p.name, "nvme0n1p2");
    assert_eq!(
        p.latency_kind(),
        LatencyKind::Request,
        "a partition of a blk-mq disk"
    );
    assert_eq!(info(253, 0).latency_kind(), LatencyKind::Bio);
    let e = BlockDevInfo::from_numbers(sys, 8, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("8:0"), "{e}");
}

/// `BPF_PROG_TEST_RUN` of a raw tracepoint program with `args` as its
/// tracepoint arguments; the program's return value.
fn test_run(ebpf: &Ebpf, name: &str, args: &[u64]) -> u32 {
    #[repr(C)]
    #[derive(Default)]
    struct TestRun {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }
    let p: &RawTracePoint = ebpf.program(name).unwrap().try_into().unwrap();
    let mut attr = TestRun {
        prog_fd: p.fd().unwrap().as_fd().as_raw_fd() as u32,
        ctx_size_in: (args.len() * 8) as u32,
        ctx_in: args.as_ptr() as u64,
        ..Default::default()
    };
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    // SAFETY: bpf(BPF_PROG_TEST_RUN) reads `attr` (its size given) and
    // `args` (ctx_size_in bytes), both alive for the call, and writes
    // only `attr.retval`/`duration`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &raw mut attr,
            size_of::<TestRun>(),
        )
    };
    assert_eq!(
        r,
        0,
        "test run of {name}: {}",
        std::io::Error::last_os_error()
    );
    attr.retval
}

/// rzram's programs on any kernel, without rzram: loaded (the verifier
/// accepts them) and run by `BPF_PROG_TEST_RUN` with tracepoint
/// arguments; what they count is checked and their cost per event
/// printed (kernel BPF stats; `--nocapture` shows it). As root only.
#[test]
fn rzram_programs_count_and_cost() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return eprintln!("skipped: not root");
    }
    let offsets = match Btf::from_sys_fs().map(|b| kernel_offsets(&b)) {
        Ok(Ok(o)) => o,
        e => return eprintln!("skipped: no kernel BTF: {e:?}"),
    };
    const SLOTS: u32 = 4096;
    let spec = WatchSpec {
        name: "rzram9".into(),
        major: 251,
        minor: 9,
        slots: SLOTS,
        latency: None,
        rzram: true,
    };
    let (table, total) = watch_table(&[spec]).unwrap();
    let mut ebpf = EbpfLoader::new()
        .override_global(GLOBAL_OFFSETS, &offsets, true)
        .override_global(GLOBAL_WATCH, &table, true)
        .map_max_entries(map::SLOTS, total)
        .map_max_entries(map::RZ_WB_TIME, total)
        .load(PROBES_OBJECT)
        .unwrap();
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).unwrap();
    for name in RZRAM_PROGS
        .iter()
        .map(|s| s.raw)
        .chain([prog::COST_FLOOR_RAW])
    {
        let p: &mut RawTracePoint = ebpf.program_mut(name).unwrap().try_into().unwrap();
        p.load()
            .unwrap_or_else(|e| panic!("{name}: {}", classify("load", e)));
    }
    let dev = u64::from(kernel_dev(251, 9));
    let other = u64::from(kernel_dev(251, 10));
    const N: u64 = 20_000;
    let eio = (-i64::from(libc::EIO)) as u64;
    for i in 0..N {
        // Random-ish slots, like a swap workload.
        let slot = i.wrapping_mul(2_654_435_761) % u64::from(SLOTS);
        test_run(&ebpf, prog::RZ_SLOT_ACCESS, &[dev, slot, i % 3]);
        test_run(&ebpf, prog::RZ_WB_SUBMIT, &[dev, slot, i]);
        let status = if i % 10 == 0 { eio } else { 0 };
        test_run(&ebpf, prog::RZ_WB_COMPLETE, &[dev, slot, i, 5000, status]);
        test_run(&ebpf, prog::RZ_BD_READ, &[dev, slot, i, 100_000, 0]);
        test_run(&ebpf, prog::COST_FLOOR_RAW, &[0]);
    }
    // Another device and a slot beyond the disk.
    test_run(&ebpf, prog::RZ_SLOT_ACCESS, &[other, 0, 0]);
    test_run(&ebpf, prog::RZ_SLOT_ACCESS, &[dev, u64::from(SLOTS), 1]);
    for name in RZRAM_PROGS
        .iter()
        .map(|s| s.raw)
        .chain([prog::COST_FLOOR_RAW])
    {
        let info = ebpf.program(name).unwrap().info().unwrap();
        let ns = info.run_time().as_nanos() as f64 / info.run_count().max(1) as f64;
        eprintln!(
            "cost [test run] {name}: {} runs, {ns:.0} ns/event",
            info.run_count()
        );
    }

    let m = ebpf.map(map::RZ_COUNTERS).unwrap();
    let a: PerCpuArray<_, RzramCounters> = PerCpuArray::try_from(m).unwrap();
    let c = RzramCounts::from_per_cpu(&a.get(&0, 0).unwrap());
    // The slot beyond the disk is an event, untracked.
    assert_eq!(c.slot_reads + c.slot_writes + c.slot_frees, N + 1, "{c:?}");
    // i % 3 == 1 in 0..N, and the one beyond the disk.
    assert_eq!(c.slot_writes, (N + 1) / 3 + 1, "ops 0 1 2 in turn: {c:?}");
    assert_eq!(c.untracked, 1, "{c:?}");
    assert_eq!((c.wb_submitted, c.wb_completed), (N, N), "{c:?}");
    assert_eq!(c.wb_errors, N / 10, "{c:?}");
    assert_eq!(c.refaults, N, "{c:?}");
    // A slot's first refault can come before its first good writeback.
    assert_eq!(c.refault_errors, 0);
    let m = ebpf.map(map::RZ_HIST).unwrap();
    let h: PerCpuArray<_, LatHist> = PerCpuArray::try_from(m).unwrap();
    let hist = |kind| LatencyHistogram::from_per_cpu(&h.get(&rz_hist_index(0, kind), 0).unwrap());
    let wb = hist(rz_hist::WB_LATENCY);
    assert_eq!((wb.count, wb.sum_ns), (N, N * 5000));
    assert_eq!(wb.buckets[zramctl_common::lat_bucket(5000)], N);
    assert_eq!(hist(rz_hist::BD_READ_LATENCY).count, N);
    let age = hist(rz_hist::REFAULT_AGE_US);
    assert_eq!(age.count + c.refaults_no_wb_time, N, "{c:?}");
    assert!(age.count > N / 2, "{age:?}");
    let m = ebpf.map(map::SLOTS).unwrap();
    let slots: aya::maps::Array<_, SlotState> = aya::maps::Array::try_from(m).unwrap();
    let touched = (0..SLOTS)
        .map(|i| slots.get(&i, 0).unwrap())
        .filter(|s| s.last_time != 0)
        .count();
    assert!(touched > SLOTS as usize / 2, "{touched} slots touched");
    let events: u64 = (0..SLOTS)
        .map(|i| slots.get(&i, 0).unwrap())
        .map(|s| u64::from(s.reads + s.writes + s.discards))
        .sum();
    assert_eq!(events, N, "per-slot counts sum to the events");
}

#[test]
fn embedded_object_has_program_map_and_globals() {
    let obj = aya_obj::Object::parse(PROBES_OBJECT).expect("embedded object parses");
    let prog = obj
        .programs
        .get(PROG_BIO_QUEUE)
        .expect("bio_queue program present");
    assert!(
        matches!(prog.section, aya_obj::ProgramSection::RawTracePoint),
        "bio_queue is a raw tracepoint: {:?}",
        prog.section
    );
    assert!(
        obj.maps.contains_key(MAP_BIO_COUNTS),
        "maps: {:?}",
        obj.maps.keys().collect::<Vec<_>>()
    );
    for spec in &RZRAM_PROGS {
        let p = &obj.programs[spec.raw];
        assert!(
            matches!(p.section, aya_obj::ProgramSection::RawTracePoint),
            "{} is raw_tp: {:?}",
            spec.raw,
            p.section
        );
        assert_eq!(spec.tp_btf, spec.raw, "rzram programs are raw_tp only");
        assert!(spec.raw.len() < 16, "{}: BPF names are 15 bytes", spec.raw);
    }
    let specs = ACCESS_PROGS
        .iter()
        .chain(&BIO_LATENCY_PROGS)
        .chain(&RQ_LATENCY_PROGS)
        .chain([&COST_FLOOR_PROG]);
    for spec in specs {
        let p = &obj.programs[spec.tp_btf];
        assert!(
            matches!(p.section, aya_obj::ProgramSection::BtfTracePoint),
            "{} is tp_btf: {:?}",
            spec.tp_btf,
            p.section
        );
        let p = &obj.programs[spec.raw];
        assert!(
            matches!(p.section, aya_obj::ProgramSection::RawTracePoint),
            "{} is raw_tp: {:?}",
            spec.raw,
            p.section
        );
    }
    for m in [
        map::SLOTS,
        map::DEV_COUNTERS,
        map::LAT_HIST,
        map::LAT_START,
        map::PROBE_STATS,
        map::RZ_COUNTERS,
        map::RZ_HIST,
        map::RZ_WB_TIME,
    ] {
        assert!(obj.maps.contains_key(m), "map {m} missing");
    }
    use object::{Object as _, ObjectSymbol as _};
    let elf = object::File::parse(PROBES_OBJECT).expect("ELF");
    for global in [GLOBAL_TARGET_DEV, GLOBAL_OFFSETS, GLOBAL_WATCH] {
        assert!(
            elf.symbols().any(|s| s.name() == Ok(global)),
            "global {global} missing"
        );
    }
    // A panic path (a failed bounds check) ends in an infinite loop or a
    // call that never returns; the verifier rejects both.
    let panics: Vec<_> = elf
        .symbols()
        .filter_map(|s| s.name().ok())
        .filter(|n| n.contains("panic"))
        .collect();
    assert!(panics.is_empty(), "panic paths linked in: {panics:?}");
}

/// A `backing_dev` set up from a sandboxed unit reads `/loop0` once the unit's
/// mount namespace is gone (its devtmpfs mount detached); the daemon must still
/// find the device to watch its latency (seen under systemd: "not watching
/// backing device /loop0").
#[test]
fn backing_dev_on_a_detached_dev_mount_is_found_under_dev() {
    use std::path::Path;
    if !Path::new("/dev/loop0").exists() || Path::new("/loop0").exists() {
        eprintln!("skipped: needs /dev/loop0 and no /loop0");
        return;
    }
    let via_dev = BlockDevInfo::from_path(Path::new("/dev/loop0")).unwrap();
    let detached = BlockDevInfo::from_path(Path::new("/loop0")).unwrap();
    assert_eq!(
        (detached.name, detached.major, detached.minor),
        (via_dev.name, via_dev.major, via_dev.minor)
    );
    // Only one component is taken for such a path.
    assert!(BlockDevInfo::from_path(Path::new("/no-such-dir/loop0")).is_err());
}

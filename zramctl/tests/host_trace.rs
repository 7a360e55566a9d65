//! Host test of the trace recorder (`zramctl::probes::trace`) on a zram
//! device of its own (hot_add, so it never meets another test's zram0):
//! a known pattern of O_DIRECT writes (a same-filled page, an
//! incompressible page, text pages), a read and a discard must come back as
//! exactly those slot events, with the compressed size zsmalloc stored for
//! each written page. Runs as root with zram-control; says why it skipped
//! otherwise. Prints the recorder's cost.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use zramctl::{
    probes::trace::{RecordOptions, record},
    swaptrace::{Op, Trace},
};
use zramctl_tests::{PAGE, discard_pages, is_root, read_bytes_direct, write_bytes_direct};

struct HotZram(u32);

impl Drop for HotZram {
    fn drop(&mut self) {
        let _ = std::fs::write(format!("/sys/block/zram{}/reset", self.0), "1");
        let _ = std::fs::write("/sys/class/zram-control/hot_remove", self.0.to_string());
    }
}

#[test]
fn records_slot_events_with_compressed_sizes() {
    if !is_root() || !Path::new("/sys/class/zram-control/hot_add").exists() {
        eprintln!("skipped: needs root and /sys/class/zram-control");
        return;
    }
    let id: u32 = std::fs::read_to_string("/sys/class/zram-control/hot_add")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let z = HotZram(id);
    let name = format!("zram{}", z.0);
    std::fs::write(format!("/sys/block/{name}/disksize"), "16M").unwrap();
    let dev = format!("/dev/{name}");
    let out = tempfile::NamedTempFile::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RecordOptions {
        device: name.clone(),
        output: out.path().to_path_buf(),
        cgroup: None,
        sample_every: Duration::from_millis(100),
        meta: vec![("workload".into(), "host-test".into())],
    };
    let s2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let rec = std::thread::spawn(move || {
        record(
            &opts,
            move || tx.send(()).unwrap(),
            || s2.load(Ordering::Relaxed),
        )
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let e = rec.join().unwrap().unwrap_err();
        if format!("{e:#}").contains("refused") || format!("{e:#}").contains("BTF") {
            eprintln!("skipped: {e:#}");
            return;
        }
        panic!("recording: {e:#}");
    }
    let mut data = vec![0u8; 4 * PAGE];
    // Page 1: incompressible.
    let mut x = 0x1234_5678_9abc_def0u64;
    for b in &mut data[PAGE..2 * PAGE] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    // Pages 2 and 3: text.
    for (k, b) in data[2 * PAGE..].iter_mut().enumerate() {
        *b = b"zram writeback policy lab "[k % 26] ^ ((k / 512) as u8 & 1);
    }
    write_bytes_direct(Path::new(&dev), 10, &data).unwrap();
    read_bytes_direct(Path::new(&dev), 11, 1).unwrap();
    discard_pages(Path::new(&dev), 12, 1).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let st = match rec.join().unwrap() {
        Ok(st) => st,
        Err(e) if format!("{e:#}").contains("refused") || format!("{e:#}").contains("BTF") => {
            eprintln!("skipped: {e:#}");
            return;
        }
        Err(e) => panic!("recording: {e:#}"),
    };
    eprintln!("recorder: {st:?}");
    let text = std::fs::read_to_string(out.path()).unwrap();
    let t = Trace::parse(text.as_bytes()).unwrap();
    assert_eq!(
        t.meta.get("device").map(String::as_str),
        Some(name.as_str())
    );
    assert_eq!(t.meta_u64("disksize"), Some(16 << 20));
    let slots: Vec<Op> = t
        .events
        .iter()
        .map(|e| e.op)
        .filter(|op| !matches!(op, Op::Mem { .. } | Op::Psi(_)))
        .collect();
    if st.sizes {
        let sizes: Vec<(u64, Option<u32>)> = slots
            .iter()
            .filter_map(|op| match *op {
                Op::Write { slot, size, .. } => Some((slot, size)),
                _ => None,
            })
            .collect();
        assert_eq!(sizes.len(), 4, "{text}");
        assert_eq!(sizes[0], (10, Some(0)), "same-filled: {text}");
        assert_eq!(sizes[1], (11, Some(4096)), "huge: {text}");
        for &(slot, size) in &sizes[2..] {
            let size = size.unwrap();
            assert!((1..3000).contains(&size), "slot {slot}: {size}: {text}");
        }
    } else {
        // This kernel refused the fentry size probes (the recorder said
        // why on stderr): the write comes through as one unsized event.
        eprintln!("compressed sizes not checked: the size probes did not load here");
        assert!(
            slots.contains(&Op::Write {
                slot: 10,
                pages: 4,
                size: None
            }),
            "{text}"
        );
    }
    assert!(slots.contains(&Op::Read { slot: 11, pages: 1 }), "{text}");
    assert!(
        slots.contains(&Op::Discard { slot: 12, pages: 1 }),
        "{text}"
    );
    assert_eq!(st.dropped, 0);
    assert!(text.contains("# recorder: "));
}

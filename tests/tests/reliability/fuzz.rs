//! Suite 3: Bad input: rzram's errno for each input must be upstream zram's.

use crate::{common::*, fuzz_inputs::*};

// ---------------------------------------------------------------------------
// 3. Bad input: rzram's errno for each input must be upstream zram's.

/// The state both devices are put in before an input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    /// Reset, no backing device.
    Fresh,
    /// recomp_algorithm zstd, backing device, 4 MiB, 16 pages written, idle.
    Live,
}

pub fn build_state(dev: &str, backing: &Path, st: State) {
    reset(dev);
    sysfs_write(dev, "writeback_limit_enable", "0").unwrap();
    sysfs_write(dev, "writeback_limit", "0").unwrap();
    sysfs_write(dev, "writeback_batch_size", "32").unwrap();
    sysfs_write(dev, "comp_algorithm", "lz4").unwrap();
    set_packed(dev);
    if st == State::Live {
        sysfs_write(dev, "recomp_algorithm", "algo=zstd").unwrap();
        sysfs_write(dev, "backing_dev", backing.to_str().unwrap()).unwrap();
        sysfs_write(dev, "disksize", "4M").unwrap();
        write_gen(&PathBuf::from(format!("/dev/{dev}")), 1, 0, 16);
        sysfs_write(dev, "idle", "all").unwrap();
    }
}

/// Writable attributes of both drivers that the fuzzer drives, and
/// read-only ones (a write must fail the same way).
pub const FUZZ_ATTRS: [&str; 19] = [
    "disksize",
    "reset",
    "comp_algorithm",
    "mem_limit",
    "mem_used_max",
    "idle",
    "compact",
    "recomp_algorithm",
    "recompress",
    "backing_dev",
    "writeback",
    "writeback_limit",
    "writeback_limit_enable",
    "writeback_batch_size",
    "initstate",
    "mm_stat",
    "io_stat",
    "bd_stat",
    "debug_stat",
];

pub const READ_ONLY: [&str; 5] = ["initstate", "mm_stat", "io_stat", "bd_stat", "debug_stat"];

/// Whether upstream's different answer is an accident of its C parsing
/// rather than an ABI: it reads up to the first NUL (`"1\0"` is `"1"`),
/// and `memparse()` (disksize, mem_limit) takes a numeric prefix, ignores
/// what follows and wraps around on overflow (`"1\xff"`, `"16E"` and
/// `"1111...1"` are accepted). rzram rejects those inputs with EINVAL.
pub fn upstream_accident(attr: &str, input: &[u8], rzram: &Result<usize, i32>) -> bool {
    if input.contains(&0) {
        return true;
    }
    matches!(attr, "disksize" | "mem_limit")
        && *rzram == Err(libc::EINVAL)
        && !memparse_clean(input)
}

/// `DIGITS[kKmMgGtTpPeE][\n]` whose value fits in 64 bits.
pub fn memparse_clean(input: &[u8]) -> bool {
    let s = input.strip_suffix(b"\n").unwrap_or(input);
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return false;
    }
    let shift = match &s[digits..] {
        b"" => 0,
        [c] => match c.to_ascii_lowercase() {
            b'k' => 10,
            b'm' => 20,
            b'g' => 30,
            b't' => 40,
            b'p' => 50,
            b'e' => 60,
            _ => return false,
        },
        _ => return false,
    };
    std::str::from_utf8(&s[..digits])
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .and_then(|v| v.checked_mul(1 << shift))
        .is_some()
}

#[derive(Debug)]
pub struct Mismatch {
    pub attr: String,
    pub state: State,
    pub input: Vec<u8>,
    pub zram: Result<usize, i32>,
    pub rzram: Result<usize, i32>,
}

pub fn printable(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    let e = format!("{s:?}");
    if e.len() > 60 {
        format!("{}...({} bytes)", &e[..e.floor_char_boundary(56)], v.len())
    } else {
        e
    }
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
pub fn sysfs_fuzz_errnos_match_upstream() {
    in_vm();
    load_rzram();
    let t0 = Instant::now();
    let devs = ["zram1", "rzram1"];
    for d in devs {
        prepare(d);
    }
    let zb = DmSlice::linear("rel-fuzz-zram1", 640, 32);
    let rb = DmSlice::linear("rel-fuzz-rzram1", 672, 32);
    let backings = [zb.path.clone(), rb.path.clone()];
    let _guard = FuzzGuard;

    // Attributes the fuzzer cannot compare (one side only).
    let attrs_of = |d: &str| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(format!("/sys/block/{d}"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let (za, ra) = (attrs_of("zram1"), attrs_of("rzram1"));
    println!(
        "fuzz: attributes only upstream has: {:?}; only rzram has: {:?}",
        za.difference(&ra).collect::<Vec<_>>(),
        ra.difference(&za).collect::<Vec<_>>()
    );

    let generic = generic_inputs();
    let mut tried = 0u64;
    let mut rebuilds = 0u64;
    let mut mismatches: Vec<Mismatch> = Vec::new();
    let mut accidents: Vec<Mismatch> = Vec::new();
    let mut by_result: BTreeMap<String, u64> = BTreeMap::new();
    for state in [State::Fresh, State::Live] {
        for (d, bk) in devs.iter().zip(&backings) {
            build_state(d, bk, state);
        }
        for attr in FUZZ_ATTRS {
            let ta = Instant::now();
            let tried_before = tried;
            // Same-meaning inputs for both: the backing path differs, so
            // each device gets its own slice's path in "its" position.
            // Read-only attributes fail at open(2): a few inputs do;
            // `compact` takes any input (each one a compaction and a rebuild).
            let n = if READ_ONLY.contains(&attr) {
                6
            } else if attr == "compact" {
                40
            } else {
                generic.len()
            };
            let mut inputs: Vec<(Vec<u8>, Vec<u8>)> = generic[..n]
                .iter()
                .map(|v| (v.clone(), v.clone()))
                .collect();
            let za = attr_inputs(attr, zb.path.to_str().unwrap());
            let ra = attr_inputs(attr, rb.path.to_str().unwrap());
            inputs.extend(za.into_iter().zip(ra));
            for (zin, rin) in inputs {
                let rz = write_once(&PathBuf::from(format!("/sys/block/zram1/{attr}")), &zin);
                let rr = write_once(&PathBuf::from(format!("/sys/block/rzram1/{attr}")), &rin);
                tried += 1;
                *by_result
                    .entry(format!("{attr}: {}", show(&rz)))
                    .or_default() += 1;
                // Successful writes report the whole input; an errno must be
                // upstream's.
                let same = match (&rz, &rr) {
                    (Ok(a), Ok(b)) => a == b || zin != rin,
                    (Err(a), Err(b)) => a == b,
                    _ => false,
                };
                let rebuild = [rz.is_ok(), rr.is_ok()];
                if !same {
                    let m = Mismatch {
                        attr: attr.into(),
                        state,
                        input: rin.clone(),
                        zram: rz,
                        rzram: rr,
                    };
                    if upstream_accident(attr, &rin, &m.rzram) {
                        accidents.push(m);
                    } else {
                        mismatches.push(m);
                    }
                }
                // A write that took effect changed the device: put it back.
                for ((d, bk), r) in devs.iter().zip(&backings).zip(rebuild) {
                    if r {
                        build_state(d, bk, state);
                        rebuilds += 1;
                    }
                }
            }
            println!(
                "fuzz: {state:?} {attr}: {} inputs in {:.1}s",
                tried - tried_before,
                ta.elapsed().as_secs_f64()
            );
        }
    }

    // The control classes: hot_add (read-only to writers) and hot_remove.
    let (zc, rc) = (
        Path::new("/sys/class/zram-control"),
        Path::new("/sys/class/rzram-control"),
    );
    let mut control_inputs = generic.clone();
    control_inputs.extend(attr_inputs("hot_remove", ""));
    for attr in ["hot_add", "hot_remove"] {
        for input in &control_inputs {
            // Never name a device that exists: those are other tests'.
            // (Upstream reads up to the first NUL: "1\0" is "1".)
            let c_str = input.split(|b| *b == 0).next().unwrap_or_default();
            if attr == "hot_remove"
                && let Ok(s) = std::str::from_utf8(c_str)
                && let Ok(id) = s.trim().parse::<i64>()
                && (0..64).contains(&id)
            {
                continue;
            }
            let rz = write_once(&zc.join(attr), input);
            let rr = write_once(&rc.join(attr), input);
            tried += 1;
            let same = match (&rz, &rr) {
                (Ok(_), Ok(_)) => true,
                (Err(a), Err(b)) => a == b,
                _ => false,
            };
            if !same {
                let m = Mismatch {
                    attr: format!("{attr} (control)"),
                    state: State::Fresh,
                    input: input.clone(),
                    zram: rz,
                    rzram: rr,
                };
                if upstream_accident(attr, input, &m.rzram) {
                    accidents.push(m);
                } else {
                    mismatches.push(m);
                }
            }
        }
    }
    // hot_add, then hot_remove of the new device: open (EBUSY), closed (ok),
    // gone (ENODEV), each the same on both.
    let add = |c: &Path| -> String { std::fs::read_to_string(c.join("hot_add")).unwrap() };
    let (zid, rid) = (add(zc), add(rc));
    let (zid, rid) = (zid.trim().to_string(), rid.trim().to_string());
    {
        let _zo = std::fs::File::open(format!("/dev/zram{zid}")).unwrap();
        let _ro = std::fs::File::open(format!("/dev/rzram{rid}")).unwrap();
        let rz = write_once(&zc.join("hot_remove"), zid.as_bytes());
        let rr = write_once(&rc.join("hot_remove"), rid.as_bytes());
        assert_eq!(rz, Err(libc::EBUSY), "zram{zid}: hot_remove while open");
        tried += 1;
        if rz != rr {
            mismatches.push(Mismatch {
                attr: "hot_remove (open device)".into(),
                state: State::Fresh,
                input: rid.clone().into_bytes(),
                zram: rz,
                rzram: rr,
            });
        }
    }
    for step in ["closed", "gone"] {
        let rz = write_once(&zc.join("hot_remove"), format!("{zid}\n").as_bytes());
        let rr = write_once(&rc.join("hot_remove"), format!("{rid}\n").as_bytes());
        tried += 1;
        if rz.is_ok() != rr.is_ok() || (rz.is_err() && rz != rr) {
            mismatches.push(Mismatch {
                attr: format!("hot_remove ({step} device)"),
                state: State::Fresh,
                input: rid.clone().into_bytes(),
                zram: rz,
                rzram: rr,
            });
        }
    }

    println!(
        "fuzz: {tried} inputs to each driver ({} attributes x 2 states + control), {rebuilds} state rebuilds, \
         {} mismatches, {} more where upstream's answer is an accident of C parsing ({:.1}s)",
        FUZZ_ATTRS.len(),
        mismatches.len(),
        accidents.len(),
        t0.elapsed().as_secs_f64()
    );
    for m in &accidents {
        println!(
            "accident {:<24} {:<5?} {:<64} zram {:<10} rzram {}",
            m.attr,
            m.state,
            printable(&m.input),
            show(&m.zram),
            show(&m.rzram)
        );
    }
    let mut per_attr: BTreeMap<&str, u64> = BTreeMap::new();
    for m in &mismatches {
        *per_attr.entry(&m.attr).or_default() += 1;
    }
    println!("fuzz: mismatches per attribute: {per_attr:?}");
    for m in &mismatches {
        println!(
            "MISMATCH {:<24} {:<5?} {:<64} zram {:<10} rzram {}",
            m.attr,
            m.state,
            printable(&m.input),
            show(&m.zram),
            show(&m.rzram)
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} of {tried} inputs got another result from rzram than from upstream zram (listed above)",
        mismatches.len()
    );
}

pub struct FuzzGuard;

impl Drop for FuzzGuard {
    fn drop(&mut self) {
        for d in ["zram1", "rzram1"] {
            for _ in 0..50 {
                if sysfs_write(d, "reset", "1").is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = sysfs_write(d, "writeback_limit_enable", "0");
            let _ = sysfs_write(d, "writeback_batch_size", "32");
            let _ = sysfs_write(d, "comp_algorithm", "lz4");
        }
    }
}

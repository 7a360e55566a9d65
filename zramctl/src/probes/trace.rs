//! `zramctl trace record`: per-slot events of one zram device from eBPF
//! (`zramctl-ebpf/src/trace.rs`) plus PSI and MemAvailable samples, into a
//! `zramctl-trace 2` file ([`crate::swaptrace`]).
//!
//! On upstream zram the events come from `block_bio_queue` (reads, writes,
//! discards), `zram_slot_free_notify` (swap freeing slots) and, for the
//! compressed size of each written page, `zs_malloc` and `slot_free` (7.3;
//! `zram_free_page` before): zram allocates the object, then frees the old
//! content of the slot it stores into, on the writing task ([`Pairer`]). A
//! written page with no allocation before its `slot_free` was same-filled
//! (size 0). On rzram the events are its `rzram_slot_access` tracepoint
//! (no sizes: `meta sizes none`).

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    EbpfLoader,
    maps::{PerCpuArray, RingBuf},
    programs::{FEntry, RawTracePoint},
};
use zramctl_common::{
    kernel_dev, rzram_tp,
    trace::{
        GLOBAL_DEV, GLOBAL_OFFSETS, RINGBUF_BYTES, TraceRecord, TraceStats, WRITERS_ENTRIES, kind,
        map, prog,
    },
};

use super::{PROBES_OBJECT, btf::Btf, error::classify, kernel_offsets};
use crate::{
    platform::monotonic_ns,
    swaptrace::{Event, Op, Writer},
};

/// Turns raw records into trace events. Pure.
#[derive(Debug, Default)]
pub struct Pairer {
    /// tid -> (first slot, pages, slots already stored, pending zs_malloc size).
    writers: HashMap<u32, WriteBio>,
    /// Whether sizes are paired (the size probes are attached).
    pub sizes: bool,
    /// Written pages whose size was not seen (flushed as unknown).
    pub unsized_writes: u64,
}

#[derive(Debug, Clone)]
struct WriteBio {
    t_us: u64,
    slot: u64,
    pages: u32,
    seen: Vec<bool>,
    malloc: Option<u32>,
}

impl Pairer {
    pub fn new(sizes: bool) -> Self {
        Pairer {
            sizes,
            ..Pairer::default()
        }
    }

    fn flush(&mut self, w: WriteBio, out: &mut Vec<Event>) {
        for (k, seen) in w.seen.iter().enumerate() {
            if !seen {
                self.unsized_writes += 1;
                out.push(Event {
                    t_us: w.t_us,
                    op: Op::Write {
                        slot: w.slot + k as u64,
                        pages: 1,
                        size: None,
                    },
                });
            }
        }
    }

    /// Feeds one record (time already relative, in µs); events go to `out`.
    pub fn push(&mut self, t_us: u64, r: &TraceRecord, rzram: bool, out: &mut Vec<Event>) {
        let ev = |op| Event { t_us, op };
        match r.kind {
            kind::READ if !rzram => out.push(ev(Op::Read {
                slot: r.slot,
                pages: r.arg.max(1),
            })),
            kind::DISCARD if !rzram => out.push(ev(Op::Discard {
                slot: r.slot,
                pages: r.arg.max(1),
            })),
            kind::WRITE if !rzram => {
                if !self.sizes {
                    out.push(ev(Op::Write {
                        slot: r.slot,
                        pages: r.arg.max(1),
                        size: None,
                    }));
                    return;
                }
                let w = WriteBio {
                    t_us,
                    slot: r.slot,
                    pages: r.arg.max(1),
                    seen: vec![false; r.arg.max(1) as usize],
                    malloc: None,
                };
                if let Some(old) = self.writers.insert(r.tid, w) {
                    self.flush(old, out);
                }
            }
            kind::MALLOC => {
                if let Some(w) = self.writers.get_mut(&r.tid) {
                    w.malloc = Some(r.arg);
                }
            }
            kind::FREE_PAGE => {
                let Some(w) = self.writers.get_mut(&r.tid) else {
                    return;
                };
                let Some(k) = r.slot.checked_sub(w.slot).filter(|&k| k < w.pages as u64) else {
                    return;
                };
                if std::mem::replace(&mut w.seen[k as usize], true) {
                    return;
                }
                let size = w.malloc.take().unwrap_or(0).min(4096);
                out.push(ev(Op::Write {
                    slot: r.slot,
                    pages: 1,
                    size: Some(size),
                }));
                if w.seen.iter().all(|&s| s) {
                    self.writers.remove(&r.tid);
                }
            }
            kind::FREE_NOTIFY if !rzram => out.push(ev(Op::Discard {
                slot: r.slot,
                pages: 1,
            })),
            kind::RZ_ACCESS if rzram => {
                let op = match r.arg {
                    rzram_tp::ACCESS_READ => Op::Read {
                        slot: r.slot,
                        pages: 1,
                    },
                    rzram_tp::ACCESS_WRITE => Op::Write {
                        slot: r.slot,
                        pages: 1,
                        size: None,
                    },
                    rzram_tp::ACCESS_FREE => Op::Discard {
                        slot: r.slot,
                        pages: 1,
                    },
                    _ => return,
                };
                out.push(ev(op));
            }
            _ => {}
        }
    }

    /// Flushes write bios still waiting for their pages.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let mut left: Vec<WriteBio> = self.writers.drain().map(|(_, w)| w).collect();
        left.sort_by_key(|w| w.t_us);
        for w in left {
            self.flush(w, out);
        }
    }
}

/// The compressed bytes a trace says the device stores, slot by slot: the
/// sum of the last size written to each slot not freed since (a huge page
/// counts 4096, a same-filled one 0), what the kernel's `mm_stat`
/// `compr_data_size` sums too. The recorder compares the two while it
/// records, so that a trace whose sizes are wrong says so. Pure.
#[derive(Debug, Default)]
pub struct SizeTally {
    sizes: HashMap<u64, u32>,
    bytes: u64,
}

impl SizeTally {
    pub fn apply(&mut self, op: &Op) {
        match *op {
            Op::Write { slot, pages, size } => {
                let s = size.unwrap_or(0).min(4096);
                for i in slot..slot.saturating_add(u64::from(pages)) {
                    let old = self.sizes.insert(i, s).unwrap_or(0);
                    self.bytes = self.bytes - u64::from(old) + u64::from(s);
                }
            }
            Op::Discard { slot, pages } => {
                for i in slot..slot.saturating_add(u64::from(pages)) {
                    if let Some(old) = self.sizes.remove(&i) {
                        self.bytes -= u64::from(old);
                    }
                }
            }
            _ => {}
        }
    }

    /// Compressed bytes of the slots the trace says hold data.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The trace's compressed sizes against `mm_stat` over a recording.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SizeCheck {
    /// mm_stat samples compared.
    pub samples: u64,
    /// compr_data_size when recording started (data from before the trace,
    /// which the trace cannot size).
    pub start_mm_bytes: u64,
    /// At the sample where the device held the most compressed data: the
    /// trace's sum and mm_stat's.
    pub peak_trace_bytes: u64,
    pub peak_mm_bytes: u64,
    /// Largest |trace - mm_stat| / mm_stat over the samples where mm_stat
    /// held at least 1 MiB.
    pub max_rel_err: f64,
}

impl SizeCheck {
    fn observe(&mut self, trace_bytes: u64, mm_bytes: u64) {
        if self.samples == 0 {
            self.start_mm_bytes = mm_bytes;
        }
        self.samples += 1;
        if mm_bytes >= self.peak_mm_bytes {
            self.peak_mm_bytes = mm_bytes;
            self.peak_trace_bytes = trace_bytes;
        }
        if mm_bytes >= 1 << 20 {
            let e = (trace_bytes as f64 - mm_bytes as f64).abs() / mm_bytes as f64;
            self.max_rel_err = self.max_rel_err.max(e);
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "trace vs mm_stat compr_data_size over {} samples: at the peak {:.2} MiB vs {:.2} MiB ({:+.2} %), largest difference {:.2} % (samples >= 1 MiB), {:.2} MiB stored before the recording",
            self.samples,
            self.peak_trace_bytes as f64 / 1048576.0,
            self.peak_mm_bytes as f64 / 1048576.0,
            self.peak_err_pct(),
            self.max_rel_err * 100.0,
            self.start_mm_bytes as f64 / 1048576.0
        )
    }

    /// (trace - mm_stat) / mm_stat at the peak, percent.
    pub fn peak_err_pct(&self) -> f64 {
        if self.peak_mm_bytes == 0 {
            return 0.0;
        }
        (self.peak_trace_bytes as f64 / self.peak_mm_bytes as f64 - 1.0) * 100.0
    }
}

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// `zram0`, `rzram0`, ... (a name under `/sys/block`).
    pub device: String,
    pub output: PathBuf,
    /// Memory cgroup (a directory under /sys/fs/cgroup) whose limit,
    /// usage and pressure stand for MemTotal, MemAvailable and PSI.
    pub cgroup: Option<PathBuf>,
    pub sample_every: Duration,
    /// Extra `meta` lines.
    pub meta: Vec<(String, String)>,
}

/// What a recording cost and saw.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordStats {
    pub secs: f64,
    pub records: u64,
    pub dropped: u64,
    pub events: u64,
    pub records_per_sec: f64,
    /// Mean BPF program run time per record-producing run (kernel stats).
    pub ns_per_run: Option<f64>,
    pub runs: u64,
    pub unsized_writes: u64,
    pub sizes: bool,
    /// The recorded sizes against mm_stat (with sizes only).
    pub size_check: Option<SizeCheck>,
}

/// `compr_data_size` (the second field of `mm_stat`).
fn compr_data_size(sys: &Path) -> Option<u64> {
    std::fs::read_to_string(sys.join("mm_stat"))
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn read_num(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some"))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

fn meminfo(field: &str) -> Option<u64> {
    let t = std::fs::read_to_string("/proc/meminfo").ok()?;
    t.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `mem` and `psi` samples: from the cgroup when given (limit as total,
/// limit - usage + its file pages as available), else the machine's.
fn samples(cgroup: Option<&Path>) -> Vec<Op> {
    let mut out = Vec::new();
    match cgroup {
        Some(cg) => {
            let max = read_num(&cg.join("memory.max"));
            let cur = read_num(&cg.join("memory.current"));
            let file = std::fs::read_to_string(cg.join("memory.stat"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("file ").map(|v| v.trim().parse().ok()))
                        .flatten()
                })
                .unwrap_or(0u64);
            if let (Some(max), Some(cur)) = (max, cur) {
                let avail = max.saturating_sub(cur).saturating_add(file).min(max);
                out.push(Op::Mem {
                    available_kb: avail / 1024,
                    total_kb: (max / 1024).max(1),
                });
            }
            if let Some(p) = std::fs::read_to_string(cg.join("memory.pressure"))
                .ok()
                .and_then(|t| some_avg10(&t))
            {
                out.push(Op::Psi(p.clamp(0.0, 100.0)));
            }
        }
        None => {
            if let (Some(a), Some(t)) = (meminfo("MemAvailable:"), meminfo("MemTotal:")) {
                out.push(Op::Mem {
                    available_kb: a.min(t),
                    total_kb: t.max(1),
                });
            }
            if let Some(p) = std::fs::read_to_string("/proc/pressure/memory")
                .ok()
                .and_then(|t| some_avg10(&t))
            {
                out.push(Op::Psi(p.clamp(0.0, 100.0)));
            }
        }
    }
    out
}

/// Records until `stop()` returns true (checked every 20 ms); `ready` is
/// called once the programs are attached.
pub fn record(
    opts: &RecordOptions,
    ready: impl FnOnce(),
    mut stop: impl FnMut() -> bool,
) -> anyhow::Result<RecordStats> {
    use anyhow::Context as _;
    let sys = PathBuf::from("/sys/block").join(&opts.device);
    let devnum = std::fs::read_to_string(sys.join("dev"))
        .with_context(|| format!("{}: no such block device", opts.device))?;
    let (ma, mi) = devnum
        .trim()
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .with_context(|| format!("{}/dev: {devnum:?} is not MAJOR:MINOR", sys.display()))?;
    let disksize = read_num(&sys.join("disksize")).unwrap_or(0);
    if disksize == 0 {
        anyhow::bail!("{}: disksize is 0: set the device up first", opts.device);
    }
    let rzram = opts.device.starts_with("rzram");
    let backing = std::fs::read_to_string(sys.join("backing_dev"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| s != "none" && !s.is_empty())
        .and_then(|b| {
            let name = Path::new(&b).file_name()?.to_string_lossy().into_owned();
            read_num(&Path::new("/sys/class/block").join(name).join("size")).map(|s| s * 512)
        });
    let offsets = kernel_offsets(&Btf::from_sys_fs()?)?;
    let dev = kernel_dev(ma, mi);
    let mut ebpf = EbpfLoader::new()
        .override_global(GLOBAL_DEV, &dev, true)
        .override_global(GLOBAL_OFFSETS, &offsets, true)
        .map_max_entries(map::EVENTS, RINGBUF_BYTES)
        .map_max_entries(map::WRITERS, WRITERS_ENTRIES)
        .load(PROBES_OBJECT)
        .map_err(|e| classify("loading the trace programs", e))?;
    let stats_fd = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
    let mut attached: Vec<&str> = Vec::new();
    let mut raw = |ebpf: &mut aya::Ebpf, name: &'static str, tp: &str| -> anyhow::Result<()> {
        let p: &mut RawTracePoint = ebpf
            .program_mut(name)
            .with_context(|| format!("{name} is not in the eBPF object"))?
            .try_into()?;
        p.load().with_context(|| format!("loading {name}"))?;
        p.attach(tp)
            .with_context(|| format!("attaching {name} to {tp}"))?;
        attached.push(name);
        Ok(())
    };
    let mut sizes = false;
    if rzram {
        raw(&mut ebpf, prog::RZ_ACCESS, rzram_tp::SLOT_ACCESS)?;
    } else {
        raw(&mut ebpf, prog::BIO, "block_bio_queue")?;
    }
    let btf = aya::Btf::from_sys_fs().context("reading kernel BTF")?;
    // fentry on the first of `funcs` the kernel's BTF has.
    let mut kprobe =
        |ebpf: &mut aya::Ebpf, name: &'static str, funcs: &[&str]| -> Result<String, String> {
            let p: &mut FEntry = ebpf
                .program_mut(name)
                .ok_or_else(|| format!("{name} is not in the eBPF object"))?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            let mut errs = Vec::new();
            for f in funcs {
                match p.load(f, &btf) {
                    Ok(()) => {
                        p.attach()
                            .map_err(|e| format!("attaching {name} to fentry/{f}: {e}"))?;
                        attached.push(name);
                        return Ok(f.to_string());
                    }
                    Err(e) => errs.push(format!("{f}: {e}")),
                }
            }
            Err(errs.join("; "))
        };
    let mut notes = Vec::new();
    if !rzram {
        match kprobe(&mut ebpf, prog::FREE_NOTIFY, &["zram_slot_free_notify"]) {
            Ok(_) => {}
            Err(e) => notes.push(format!("swap slot frees not traced ({e})")),
        }
        match (
            kprobe(&mut ebpf, prog::MALLOC, &["zs_malloc"]),
            kprobe(&mut ebpf, prog::FREE_PAGE, &["slot_free", "zram_free_page"]),
        ) {
            (Ok(_), Ok(f)) => {
                sizes = true;
                notes.push(format!("sizes from zs_malloc + {f}"));
            }
            (a, b) => notes.push(format!(
                "no compressed sizes ({})",
                [a.err(), b.err()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
    for n in &notes {
        eprintln!("zramctl trace: {n}");
    }
    let mut ring = RingBuf::try_from(
        ebpf.take_map(map::EVENTS)
            .context("the trace ring buffer is not in the eBPF object")?,
    )?;
    let file = std::fs::File::create(&opts.output)
        .with_context(|| format!("creating {}", opts.output.display()))?;
    let mut meta: Vec<(&str, String)> = vec![
        ("disksize", disksize.to_string()),
        ("driver", if rzram { "rzram" } else { "zram" }.to_string()),
        ("device", opts.device.clone()),
        ("sizes", if sizes { "exact" } else { "none" }.to_string()),
        ("clock", "CLOCK_MONOTONIC".to_string()),
        (
            "mem_source",
            match &opts.cgroup {
                Some(c) => format!("cgroup {}", c.display()),
                None => "/proc/meminfo".into(),
            },
        ),
    ];
    if let Some(b) = backing {
        meta.push(("backing", b.to_string()));
    }
    for (k, v) in &opts.meta {
        meta.push((k.as_str(), v.clone()));
    }
    let mut w = Writer::new(std::io::BufWriter::new(file), meta)?;
    ready();
    let mut pairer = Pairer::new(sizes);
    let t0 = monotonic_ns();
    let start = Instant::now();
    let mut st = RecordStats {
        sizes,
        ..RecordStats::default()
    };
    let mut out = Vec::new();
    let mut next_sample = Instant::now();
    let now_us = || monotonic_ns().saturating_sub(t0) / 1000;
    let mut tally = SizeTally::default();
    let mut check = SizeCheck::default();
    loop {
        let done = stop();
        // mm_stat now; compared once the ring buffer is drained (the
        // events up to now are in it).
        let mut mm = None;
        if Instant::now() >= next_sample {
            let t = now_us();
            for op in samples(opts.cgroup.as_deref()) {
                w.event(&Event { t_us: t, op })?;
            }
            next_sample += opts.sample_every;
            mm = compr_data_size(&sys);
        }
        while let Some(item) = ring.next() {
            if item.len() < std::mem::size_of::<TraceRecord>() {
                continue;
            }
            // SAFETY: the ring buffer item holds one TraceRecord written by
            // the eBPF programs (repr(C), integers only); read unaligned.
            let r: TraceRecord = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            st.records += 1;
            let t = r.time_ns.saturating_sub(t0) / 1000;
            pairer.push(t, &r, rzram, &mut out);
        }
        for e in out.drain(..) {
            st.events += 1;
            tally.apply(&e.op);
            w.event(&e)?;
        }
        if let Some(mm) = mm.filter(|_| sizes) {
            check.observe(tally.bytes(), mm);
        }
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pairer.finish(&mut out);
    for e in out.drain(..) {
        st.events += 1;
        w.event(&e)?;
    }
    st.secs = start.elapsed().as_secs_f64();
    st.unsized_writes = pairer.unsized_writes;
    st.size_check = (check.samples > 0).then_some(check);
    let stats: PerCpuArray<_, TraceStats> = PerCpuArray::try_from(
        ebpf.map(map::STATS)
            .context("the trace stats map is not in the object")?,
    )?;
    let per_cpu = stats.get(&0, 0)?;
    st.dropped = per_cpu.iter().map(|s| s.dropped).sum();
    let (mut runs, mut ns) = (0u64, 0u64);
    for name in &attached {
        if let Some(p) = ebpf.program(name)
            && let Ok(info) = p.info()
        {
            runs += info.run_count();
            ns += info.run_time().as_nanos() as u64;
        }
    }
    drop(stats_fd);
    st.runs = runs;
    st.ns_per_run = (runs > 0).then(|| ns as f64 / runs as f64);
    st.records_per_sec = st.records as f64 / st.secs.max(1e-9);
    let mut f = w.finish()?;
    writeln!(
        f,
        "# recorder: {:.1} s, {} records ({:.0}/s), {} dropped (ring buffer full), {} events, {} writes without a size, {} BPF runs at {} ns/run",
        st.secs,
        st.records,
        st.records_per_sec,
        st.dropped,
        st.events,
        st.unsized_writes,
        st.runs,
        st.ns_per_run.map_or("-".into(), |n| format!("{n:.0}"))
    )?;
    if let Some(c) = &st.size_check {
        writeln!(f, "# sizes: {}", c.summary())?;
    }
    f.flush()?;
    Ok(st)
}

/// Records while `cmd` runs (started once the probes are attached), or
/// for `secs` seconds without a command; SIGINT/SIGTERM end it early. The
/// command's exit status comes back with the stats.
pub fn record_while(
    opts: &RecordOptions,
    cmd: &[String],
    secs: Option<f64>,
) -> anyhow::Result<(RecordStats, Option<std::process::ExitStatus>)> {
    use anyhow::Context as _;
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    let term = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        signal_flag(sig, term.clone());
    }
    let child = std::cell::RefCell::new(None::<std::process::Child>);
    let status = std::cell::RefCell::new(None);
    let start = std::cell::Cell::new(None::<Instant>);
    let st = record(
        opts,
        || {
            start.set(Some(Instant::now()));
            if let Some((prog, args)) = cmd.split_first() {
                match std::process::Command::new(prog).args(args).spawn() {
                    Ok(c) => *child.borrow_mut() = Some(c),
                    Err(e) => {
                        eprintln!("zramctl trace: cannot start {prog}: {e}");
                        term.store(true, Ordering::Relaxed);
                    }
                }
            }
        },
        || {
            if term.load(Ordering::Relaxed) {
                return true;
            }
            if let Some(c) = child.borrow_mut().as_mut()
                && let Ok(Some(s)) = c.try_wait()
            {
                *status.borrow_mut() = Some(s);
                return true;
            }
            match (secs, start.get()) {
                (Some(s), Some(t0)) => t0.elapsed().as_secs_f64() >= s,
                _ => false,
            }
        },
    )
    .context("recording")?;
    if let Some(mut c) = child.into_inner()
        && status.borrow().is_none()
    {
        // Stopped by a signal: the command gets SIGTERM and is waited for.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        *status.borrow_mut() = c.wait().ok();
    }
    Ok((st, status.into_inner()))
}

/// Sets `flag` when `sig` arrives.
fn signal_flag(sig: libc::c_int, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::{OnceLock, atomic::Ordering};
    static FLAG: OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> = OnceLock::new();
    let _ = FLAG.set(flag);
    extern "C" fn on_signal(_: libc::c_int) {
        if let Some(f) = FLAG.get() {
            f.store(true, Ordering::Relaxed);
        }
    }
    // SAFETY: the handler only does an atomic store (async-signal-safe).
    unsafe {
        libc::signal(sig, on_signal as *const () as libc::sighandler_t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: u32, tid: u32, slot: u64, arg: u32) -> TraceRecord {
        TraceRecord {
            time_ns: 0,
            slot,
            tid,
            arg,
            kind,
            _pad: 0,
        }
    }

    #[test]
    fn pairs_sizes_with_the_slots_they_are_stored_in() {
        let mut p = Pairer::new(true);
        let mut out = Vec::new();
        // Task 7 writes slots 10..13: sizes 1000, same-filled, huge.
        p.push(1, &rec(kind::WRITE, 7, 10, 3), false, &mut out);
        // Another task frees a slot meanwhile (not part of the bio).
        p.push(2, &rec(kind::FREE_PAGE, 8, 11, 0), false, &mut out);
        p.push(3, &rec(kind::MALLOC, 7, 0, 1000), false, &mut out);
        p.push(4, &rec(kind::FREE_PAGE, 7, 10, 0), false, &mut out);
        p.push(5, &rec(kind::FREE_PAGE, 7, 11, 0), false, &mut out);
        p.push(6, &rec(kind::MALLOC, 7, 0, 4096), false, &mut out);
        p.push(7, &rec(kind::FREE_PAGE, 7, 12, 0), false, &mut out);
        p.push(8, &rec(kind::READ, 7, 10, 1), false, &mut out);
        p.push(9, &rec(kind::FREE_NOTIFY, 3, 10, 0), false, &mut out);
        let w = |slot, size| Op::Write {
            slot,
            pages: 1,
            size: Some(size),
        };
        let ops: Vec<Op> = out.iter().map(|e| e.op).collect();
        assert_eq!(
            ops,
            [
                w(10, 1000),
                w(11, 0),
                w(12, 4096),
                Op::Read { slot: 10, pages: 1 },
                Op::Discard { slot: 10, pages: 1 }
            ]
        );
        assert_eq!(p.unsized_writes, 0);
    }

    #[test]
    fn unpaired_pages_are_kept_without_a_size() {
        let mut p = Pairer::new(true);
        let mut out = Vec::new();
        p.push(1, &rec(kind::WRITE, 7, 10, 2), false, &mut out);
        p.push(2, &rec(kind::MALLOC, 7, 0, 900), false, &mut out);
        p.push(3, &rec(kind::FREE_PAGE, 7, 10, 0), false, &mut out);
        // A new bio on the task flushes slot 11 of the first as unknown.
        p.push(4, &rec(kind::WRITE, 7, 20, 1), false, &mut out);
        p.finish(&mut out);
        let ops: Vec<Op> = out.iter().map(|e| e.op).collect();
        assert_eq!(ops.len(), 3);
        assert_eq!(
            ops[1],
            Op::Write {
                slot: 11,
                pages: 1,
                size: None
            }
        );
        assert_eq!(p.unsized_writes, 2);
    }

    #[test]
    fn rzram_uses_its_tracepoint_only() {
        let mut p = Pairer::new(false);
        let mut out = Vec::new();
        p.push(1, &rec(kind::READ, 1, 5, 1), true, &mut out);
        p.push(
            2,
            &rec(kind::RZ_ACCESS, 1, 5, rzram_tp::ACCESS_WRITE),
            true,
            &mut out,
        );
        p.push(
            3,
            &rec(kind::RZ_ACCESS, 1, 5, rzram_tp::ACCESS_FREE),
            true,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].op, Op::Discard { slot: 5, pages: 1 });
    }

    #[test]
    fn the_size_tally_follows_writes_overwrites_and_frees() {
        let mut t = SizeTally::default();
        let w = |slot, pages, size| Op::Write { slot, pages, size };
        t.apply(&w(1, 1, Some(1000)));
        t.apply(&w(2, 2, Some(4096))); // huge, two pages
        t.apply(&w(4, 1, Some(0))); // same-filled
        assert_eq!(t.bytes(), 1000 + 2 * 4096);
        t.apply(&w(1, 1, Some(300))); // overwritten
        assert_eq!(t.bytes(), 300 + 2 * 4096);
        t.apply(&Op::Discard { slot: 2, pages: 3 });
        t.apply(&Op::Discard { slot: 9, pages: 1 }); // never written
        assert_eq!(t.bytes(), 300);
        t.apply(&w(1, 1, None)); // unknown size: counted as nothing
        t.apply(&Op::Read { slot: 1, pages: 1 });
        assert_eq!(t.bytes(), 0);
        let mut c = SizeCheck::default();
        c.observe(0, 4096);
        c.observe(2 << 20, 2 << 20);
        c.observe(3 << 20, 4 << 20);
        c.observe(1 << 20, 3 << 20);
        assert_eq!((c.samples, c.start_mm_bytes), (4, 4096));
        assert_eq!((c.peak_trace_bytes, c.peak_mm_bytes), (3 << 20, 4 << 20));
        assert_eq!(c.peak_err_pct(), -25.0);
        assert!((c.max_rel_err - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn psi_lines_parse() {
        assert_eq!(
            some_avg10("some avg10=1.25 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.00"),
            Some(1.25)
        );
    }
}

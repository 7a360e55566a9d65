//! `demo-workload` (in the VM): the demo's memory-hungry process.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct WorkloadArgs {
    pub mib: u64,
    pub hot_mib: u64,
    pub secs: u64,
}

pub(super) const PAGE: usize = 4096;

/// Words of a made-up vocabulary: text-like pages that lz4 compresses
/// about 2-4x, as swapped-out heaps often do.
const WORDS: [&str; 32] = [
    "zram ",
    "keeps ",
    "swapped ",
    "pages ",
    "compressed ",
    "in ",
    "RAM; ",
    "writeback ",
    "moves ",
    "cold ",
    "ones ",
    "to ",
    "a ",
    "backing ",
    "device ",
    "and ",
    "the ",
    "daemon ",
    "decides ",
    "which, ",
    "how ",
    "many ",
    "and ",
    "when. ",
    "rzram ",
    "is ",
    "zram ",
    "in ",
    "Rust, ",
    "with ",
    "async ",
    "bios.\n",
];

/// Pools the pages are cut from, built once: text from the vocabulary
/// and pseudo-random bytes. Copying slices keeps the fill fast even in a
/// debug build under TCG.
pub(super) struct Pools {
    text: Vec<u8>,
    random: Vec<u8>,
}

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

impl Pools {
    pub(super) fn new() -> Pools {
        let mut next = xorshift(42);
        let mut text = Vec::with_capacity(256 << 10);
        while text.len() < 256 << 10 {
            text.extend_from_slice(WORDS[(next() % 32) as usize].as_bytes());
        }
        let random = (0..(1 << 20) / 8)
            .flat_map(|_| next().to_le_bytes())
            .collect();
        Pools { text, random }
    }

    /// The content of page `i`: one in 8 zero (same-filled), one in 8
    /// pseudo-random (incompressible), the rest text; each non-zero page
    /// starts with its number, so no two are the same.
    pub(super) fn fill_page(&self, i: u64, page: &mut [u8]) {
        let h = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize;
        let pool = match i % 8 {
            0 => {
                page.fill(0);
                return;
            }
            1 => &self.random,
            _ => &self.text,
        };
        let at = h % (pool.len() - PAGE);
        page.copy_from_slice(&pool[at..at + PAGE]);
        page[..16].copy_from_slice(format!("page {i:010}\n").as_bytes());
    }
}

pub fn workload(args: &WorkloadArgs) -> Result<()> {
    let pages = (args.mib << 20) as usize / PAGE;
    let hot = ((args.hot_mib << 20) as usize / PAGE).min(pages);
    let warm = (hot..(hot * 3).min(pages)).step_by(2);
    let t = Instant::now();
    let pools = Pools::new();
    let mut mem = vec![0u8; pages * PAGE];
    for (i, p) in mem.chunks_mut(PAGE).enumerate() {
        pools.fill_page(i as u64, p);
    }
    println!(
        "workload: filled {} MiB in {:.1}s ({} MiB hot, re-read every 200 ms; the rest goes cold)",
        args.mib,
        t.elapsed().as_secs_f64(),
        args.hot_mib
    );
    let hold = Instant::now();
    let mut sum = 0u64;
    let mut warm_done = false;
    while hold.elapsed() < Duration::from_secs(args.secs) {
        for p in 0..hot {
            sum = sum.wrapping_add(u64::from(mem[p * PAGE + 17]));
        }
        if !warm_done && hold.elapsed() > Duration::from_secs(args.secs * 3 / 5) {
            let t = Instant::now();
            let n = warm.len();
            for p in warm.clone() {
                sum = sum.wrapping_add(u64::from(mem[p * PAGE + 5]));
            }
            println!(
                "workload: read back {n} cold pages ({} MiB) once in {:.1}s: written-back ones refault",
                (n * PAGE) >> 20,
                t.elapsed().as_secs_f64()
            );
            warm_done = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("workload: hold over, checking all {} MiB", args.mib);
    let t = Instant::now();
    let mut want = vec![0u8; PAGE];
    let mut bad = 0usize;
    for (i, p) in mem.chunks(PAGE).enumerate() {
        pools.fill_page(i as u64, &mut want);
        if p != want.as_slice() {
            bad += 1;
        }
    }
    std::hint::black_box(sum);
    println!(
        "workload: {} of {pages} pages differ (checked in {:.1}s)",
        bad,
        t.elapsed().as_secs_f64()
    );
    if bad > 0 {
        bail!("{bad} pages came back wrong");
    }
    Ok(())
}

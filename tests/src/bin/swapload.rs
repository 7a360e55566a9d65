//! `swapload MIB HOT_MIB SECS`: a process with a cold majority and a hot
//! minority of memory that verifies all of it.
//!
//! Allocates MIB MiB and fills every word with a value derived from its
//! address, then for SECS seconds keeps re-reading (and checking) the first
//! HOT_MIB MiB every 100 ms while the rest stays untouched, then checks
//! everything once more. Under a memory limit the cold part is swapped out
//! and stays out, so a writeback daemon sees it age; the final pass reads
//! it back from wherever it went. Prints one summary line; exits 1 on any
//! mismatch.

use std::time::{Duration, Instant};

fn expected(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC01D_5EED
}

fn check(mem: &[u64], range: std::ops::Range<usize>) -> usize {
    mem[range.clone()]
        .iter()
        .zip(range)
        .filter(|(w, i)| **w != expected(*i))
        .count()
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(u64::MAX))
        .collect();
    let [mib, hot_mib, secs] = args[..] else {
        eprintln!("usage: swapload MIB HOT_MIB SECS");
        std::process::exit(2)
    };
    if hot_mib > mib || mib == u64::MAX || secs == u64::MAX {
        eprintln!("usage: swapload MIB HOT_MIB SECS");
        std::process::exit(2)
    }
    let words = (mib as usize) << 17;
    let hot = (hot_mib as usize) << 17;
    let t = Instant::now();
    let mut mem = vec![0u64; words];
    for (i, w) in mem.iter_mut().enumerate() {
        *w = expected(i);
    }
    let filled = t.elapsed().as_secs_f64();
    let mut bad = 0;
    let mut passes = 0u64;
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(secs) {
        bad += check(&mem, 0..hot);
        passes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    bad += check(&mem, 0..words);
    println!(
        "swapload: {mib} MiB ({hot_mib} MiB hot, {passes} hot passes), filled in {filled:.1}s, {bad} words differ"
    );
    std::process::exit(if bad == 0 { 0 } else { 1 });
}

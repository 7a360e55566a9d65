//! `memcheck MIB [PASSES]`: a process that verifies its own memory.
//!
//! Allocates MIB MiB, fills every word with a value derived from its
//! address, then reads everything back PASSES times (default 2). Under a
//! memory limit most of it is swapped out and back in between, so this
//! checks that swap devices return every page intact. Exits 1 on any
//! mismatch, printing how many words differed.

fn expected(i: usize, pass_seed: u64) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ pass_seed
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: memcheck MIB [PASSES]");
        std::process::exit(2)
    });
    let passes: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let words = mib << 17;
    let seed = 0x5EED_u64;
    let mut mem = vec![0u64; words];
    for (i, w) in mem.iter_mut().enumerate() {
        *w = expected(i, seed);
    }
    let mut bad = 0usize;
    for _ in 0..passes {
        bad += mem
            .iter()
            .enumerate()
            .filter(|(i, w)| **w != expected(*i, seed))
            .count();
    }
    println!("memcheck: {mib} MiB, {passes} passes, {bad} words differ");
    std::process::exit(if bad == 0 { 0 } else { 1 });
}

// SPDX-License-Identifier: GPL-2.0

//! Parsers of what userspace writes to rzram's attributes, with upstream
//! zram's errnos (the kernel's `memparse()` and `kstrto*()`).

use crate::comp::{Algorithms, ALGORITHMS, MAX_COMPS};
use crate::{base::PAGE, store::RecompressMode};
use kernel::{
    prelude::*,
    sysfs::{CInput, KstrtoInt},
};

/// Longest algorithm name upstream takes, its NUL included.
const MAX_ALGO_NAME_SZ: usize = 128;

/// The kernel's `memparse()` of the input (a number with an optional
/// K/M/G/T/P/E suffix, the rest ignored, wrapping on overflow as in C);
/// `None` when no number was parsed.
pub(crate) fn memparse(input: &[u8]) -> Result<Option<u64>> {
    let (v, used) = CInput::new(input)?.memparse();
    Ok((used > 0).then_some(v))
}

/// A decimal (`base` 10) or prefixed (`base` 0) number, with the errors of
/// the kernel's `kstrto*` functions, which upstream zram's attributes use.
pub(crate) fn kstrto<T: KstrtoInt>(input: &[u8], base: u32) -> Result<T> {
    CInput::new(input)?.kstrto(base)
}

/// `PAGE_ALIGN()`, wrapping like C's.
pub(crate) fn page_align(n: u64) -> u64 {
    n.wrapping_add(PAGE as u64 - 1) & !(PAGE as u64 - 1)
}

/// The index in `ALGORITHMS` of a name as `__comp_algorithm_store` takes
/// it: `E2BIG` for a name that long, `EINVAL` for an unknown one; a trailing
/// newline is ignored (`sysfs_streq`).
pub(crate) fn algorithm_index(name: &[u8]) -> Result<usize> {
    if name.len() >= MAX_ALGO_NAME_SZ {
        return Err(E2BIG);
    }
    let name = name.strip_suffix(b"\n").unwrap_or(name);
    ALGORITHMS
        .iter()
        .position(|a| a.as_bytes() == name)
        .ok_or(EINVAL)
}

/// Parses a `recompress` write: (mode, threshold, priority by number or
/// algorithm name, max_pages).
pub(crate) fn parse_recompress(
    input: &[u8],
    algorithms: &Algorithms,
    huge_class_size: usize,
) -> Result<(RecompressMode, usize, usize, u64)> {
    let mut input = CInput::new(input)?;
    let mut mode = RecompressMode::default();
    let (mut threshold, mut max_pages) = (0u32, u64::MAX);
    let (mut algo, mut prio) = (None, None);
    for (key, val) in input.args()? {
        let Some(val) = val.filter(|v| !v.is_empty()) else {
            return Err(EINVAL);
        };
        match key {
            b"type" => {
                let (idle, huge) = match val {
                    b"idle" => (true, false),
                    b"huge" => (false, true),
                    b"huge_idle" => (true, true),
                    // Upstream keeps a mode set by an earlier `type=`.
                    _ => (mode.idle, mode.huge),
                };
                mode = RecompressMode { idle, huge };
                if mode == RecompressMode::default() {
                    return Err(EINVAL);
                }
            }
            b"max_pages" => max_pages = kstrto(val, 10)?,
            b"threshold" => threshold = kstrto(val, 10)?,
            b"algo" => algo = Some(val),
            b"priority" => prio = Some(kstrto::<i32>(val, 10)?),
            _ => {}
        }
    }
    if threshold as usize >= huge_class_size {
        return Err(EINVAL);
    }
    let prio = prio.map(|p| usize::try_from(p).unwrap_or(usize::MAX));
    let named = |p: usize| {
        algorithms.0[p].is_some_and(|i| algo.is_none_or(|a| ALGORITHMS[i].as_bytes() == a))
    };
    let prio = match prio {
        Some(p) if !(1..MAX_COMPS).contains(&p) => return Err(EINVAL),
        Some(p) if named(p) => p,
        Some(_) => return Err(EINVAL),
        None if algo.is_some() => (1..MAX_COMPS).find(|p| named(*p)).ok_or(EINVAL)?,
        None if named(1) => 1,
        None => return Err(EINVAL),
    };
    Ok((mode, threshold as usize, prio, max_pages))
}

/// A decimal number, as `kstrtoull(buf, 10, ...)` reads it.
/// Upstream's writeback attributes turn any `kstrto*` error into `EINVAL`.
pub(crate) fn parse_decimal<T: KstrtoInt>(input: &[u8]) -> Result<T> {
    kstrto(input, 10).map_err(|_| EINVAL)
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_sysfs)]
mod tests {
    use super::*;

    #[test]
    fn memparse_is_the_kernels() {
        assert_eq!(memparse(b"4096\n"), Ok(Some(4096)));
        assert_eq!(memparse(b"1M"), Ok(Some(1 << 20)));
        assert_eq!(memparse(b"2g"), Ok(Some(2 << 30)));
        assert_eq!(memparse(b"0x1000"), Ok(Some(4096)));
        assert_eq!(memparse(b"010"), Ok(Some(8)));
        assert_eq!(memparse(b"0"), Ok(Some(0)));
        // As C: trailing junk after the suffix is ignored, parsing stops at
        // a NUL, and there is no number in these.
        assert_eq!(memparse(b"12Q"), Ok(Some(12)));
        assert_eq!(memparse(b"7\x008"), Ok(Some(7)));
        assert_eq!(memparse(b"abc"), Ok(None));
        assert_eq!(memparse(b"-1"), Ok(None));
        assert_eq!(memparse(b""), Ok(None));
        assert_eq!(memparse(b" 1"), Ok(None));
    }

    #[test]
    fn numbers_parse_like_kstrto() {
        assert_eq!(kstrto::<u64>(b"42\n", 10), Ok(42));
        assert_eq!(kstrto::<u64>(b"+42", 10), Ok(42));
        // Only one trailing newline, no other space.
        assert_eq!(kstrto::<u64>(b" 42", 10), Err(EINVAL));
        assert_eq!(kstrto::<u64>(b"42 ", 10), Err(EINVAL));
        assert_eq!(kstrto::<u64>(b"42\n\n", 10), Err(EINVAL));
        assert_eq!(kstrto::<u64>(b"", 10), Err(EINVAL));
        assert_eq!(kstrto::<u64>(b"0x10", 10), Err(EINVAL));
        assert_eq!(kstrto::<u32>(b"0x10", 0), Ok(16));
        assert_eq!(kstrto::<u16>(b"65536", 10), Err(ERANGE));
        assert_eq!(kstrto::<i32>(b"-3", 10), Ok(-3));
        assert_eq!(kstrto::<u64>(b"18446744073709551616", 10), Err(ERANGE));
        assert_eq!(algorithm_index(b"zstd\n"), Ok(1));
        assert_eq!(algorithm_index(b" zstd"), Err(EINVAL));
        assert_eq!(algorithm_index(&[b'a'; 128]), Err(E2BIG));
    }

    #[test]
    fn recompress_requests_parse_like_upstream() {
        let mut algs = Algorithms::primary(0);
        // No secondary algorithm: nothing to recompress with.
        assert_eq!(
            parse_recompress(b"type=idle", &algs, 3000).err(),
            Some(EINVAL)
        );
        algs.0[1] = Some(1);
        let idle = RecompressMode {
            idle: true,
            huge: false,
        };
        assert_eq!(
            parse_recompress(b"type=idle\n", &algs, 3000),
            Ok((idle, 0, 1, u64::MAX))
        );
        assert_eq!(
            parse_recompress(
                b"type=huge_idle threshold=1000 max_pages=7 algo=zstd",
                &algs,
                3000
            ),
            Ok((
                RecompressMode {
                    idle: true,
                    huge: true
                },
                1000,
                1,
                7
            ))
        );
        // No type: every slot.
        assert_eq!(
            parse_recompress(b"priority=1", &algs, 3000),
            Ok((RecompressMode::default(), 0, 1, u64::MAX))
        );
        assert_eq!(
            parse_recompress(b"type=cold", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(parse_recompress(b"type", &algs, 3000).err(), Some(EINVAL));
        assert_eq!(
            parse_recompress(b"threshold=3000", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"algo=lz4", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"priority=2", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"priority=4", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"priority=0", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"algo=zstd priority=2", &algs, 3000).err(),
            Some(EINVAL)
        );
        assert_eq!(
            parse_recompress(b"max_pages=x", &algs, 3000).err(),
            Some(EINVAL)
        );
    }
}

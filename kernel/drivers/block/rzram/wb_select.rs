// SPDX-License-Identifier: GPL-2.0

//! What a `writeback` write selects: its parameters parsed as upstream's
//! `writeback_store` does (modes, page indexes and ranges), and the slots
//! they pick, marked `PP` and listed largest object first (upstream's size
//! buckets), for the engine in `writeback.rs`.

use crate::{slots::flag, store::Store};
use kernel::{alloc::KVVec, prelude::*, sysfs::CInput};

/// Which slots a writeback selects (upstream's modes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Mode(u32);

impl Mode {
    const ANY: Mode = Mode(0);
    const HUGE: u32 = 1;
    const IDLE: u32 = 2;
    const INCOMPRESSIBLE: u32 = 4;

    fn parse(s: &[u8]) -> Result<Mode> {
        match s {
            b"idle" => Ok(Mode(Self::IDLE)),
            b"huge" => Ok(Mode(Self::HUGE)),
            b"huge_idle" => Ok(Mode(Self::IDLE | Self::HUGE)),
            b"incompressible" => Ok(Mode(Self::INCOMPRESSIBLE)),
            _ => Err(EINVAL),
        }
    }
}

/// One scan of the slot range `lo..hi` for slots matching `mode`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Scan {
    mode: Mode,
    lo: usize,
    hi: usize,
}

/// A page index, as `kstrtoul(s, 10)` reads it (`EINVAL`, `ERANGE`).
fn parse_index(s: &[u8]) -> Result<usize> {
    let n: u64 = CInput::new(s)?.kstrto(10)?;
    usize::try_from(n).map_err(|_| ERANGE)
}

/// Parses a `writeback` write into the scans it asks for, as upstream's
/// `writeback_store`: space-separated `key=value` parameters (or a bare
/// mode, the legacy form); `page_index=N` and `page_indexes=A-B` (inclusive)
/// scan their range with the mode so far (any slot when none) and may
/// repeat; a mode (bare or `type=`) scans the last range (all when none)
/// and ends the list. Unknown keys are ignored, as upstream does.
pub(crate) fn parse_writeback(input: &[u8], nr_pages: usize) -> Result<KVec<Scan>> {
    let mut input = CInput::new(input)?;
    let mut scans = KVec::new();
    let (mut mode, mut lo, mut hi) = (Mode::ANY, 0, nr_pages);
    for (key, val) in input.args()? {
        let val = val.unwrap_or(b"");
        if val.is_empty() || key == b"type" {
            mode = Mode::parse(if val.is_empty() { key } else { val })?;
            scans.push(Scan { mode, lo, hi }, GFP_KERNEL)?;
            break;
        }
        match key {
            b"page_index" => {
                lo = parse_index(val)?;
                if lo >= nr_pages {
                    return Err(ERANGE);
                }
                hi = lo + 1;
            }
            b"page_indexes" => {
                let dash = val.iter().position(|c| *c == b'-').ok_or(EINVAL)?;
                lo = parse_index(&val[..dash])?;
                if lo >= nr_pages {
                    return Err(ERANGE);
                }
                let last = parse_index(&val[dash + 1..])?;
                if last >= nr_pages || lo > last {
                    return Err(ERANGE);
                }
                hi = last + 1;
            }
            _ => continue,
        }
        scans.push(Scan { mode, lo, hi }, GFP_KERNEL)?;
    }
    Ok(scans)
}

/// Objects of sizes within one bucket of this many bytes count as equally
/// large (upstream's `PP_BUCKET_SIZE_RANGE`).
const SIZE_BUCKET: usize = 64;

/// Marks the slots the scans select with `PP` and lists them largest
/// object first, as upstream's size buckets do: a writeback the limit cuts
/// short frees the most RAM. Within a bucket the highest index goes first
/// (upstream adds each slot at the head of its bucket's list).
///
/// The lists are kmalloc'ed while small (`KVVec`): a `page_index=` write,
/// the daemon's usual one, picks one slot and should not map and unmap two
/// vmalloc areas for its one-entry lists (upstream kmallocs its buckets).
pub(crate) fn select(store: &Store, scans: &[Scan]) -> Result<KVVec<u32>> {
    // (size bucket << 32 | index), sorted in descending order below.
    let mut keys: KVVec<u64> = KVVec::new();
    for scan in scans {
        for index in scan.lo..scan.hi.min(store.slots.len()) {
            let s = store.slots.lock(index);
            if !s.allocated() || s.test(flag::WB | flag::SAME | flag::PP) {
                continue;
            }
            let m = scan.mode.0;
            if (m & Mode::IDLE != 0 && !s.test(flag::IDLE))
                || (m & Mode::HUGE != 0 && !s.test(flag::HUGE))
                || (m & Mode::INCOMPRESSIBLE != 0 && !s.test(flag::INCOMPRESSIBLE))
            {
                continue;
            }
            let bucket = (s.size() / SIZE_BUCKET) as u64;
            s.set(flag::PP);
            drop(s);
            if let Err(e) = keys.push((bucket << 32) | index as u64, GFP_KERNEL) {
                store.slots.lock(index).clear(flag::PP);
                unselect(store, keys.iter().map(key_index));
                return Err(e.into());
            }
        }
    }
    keys.sort_unstable_by(|a, b| b.cmp(a));
    let mut picked = KVVec::with_capacity(keys.len(), GFP_KERNEL).inspect_err(|_| {
        unselect(store, keys.iter().map(key_index));
    })?;
    for k in keys.iter() {
        // Cannot fail: the capacity is reserved.
        picked.push(key_index(k) as u32, GFP_KERNEL)?;
    }
    Ok(picked)
}

/// The index of a key of `select` (its low 32 bits).
fn key_index(key: &u64) -> usize {
    *key as u32 as usize
}

/// Clears `PP` of selected slots that will not be written.
pub(crate) fn unselect(store: &Store, indices: impl IntoIterator<Item = usize>) {
    for index in indices {
        store.slots.lock(index).clear(flag::PP);
    }
}

#[cfg(CONFIG_BLK_DEV_RZRAM_KUNIT_TEST)]
#[kunit_tests(rzram_wb_select)]
mod tests {
    use super::*;

    #[test]
    fn writeback_requests_parse_like_upstream() {
        let all = |m| Scan {
            mode: Mode(m),
            lo: 0,
            hi: 100,
        };
        assert_eq!(
            parse_writeback(b"idle\n", 100).unwrap()[..],
            [all(Mode::IDLE)]
        );
        assert_eq!(
            parse_writeback(b"type=huge", 100).unwrap()[..],
            [all(Mode::HUGE)]
        );
        assert_eq!(
            parse_writeback(b"huge_idle", 100).unwrap()[..],
            [all(Mode::HUGE | Mode::IDLE)]
        );
        assert_eq!(
            parse_writeback(b"incompressible", 100).unwrap()[..],
            [all(Mode::INCOMPRESSIBLE)]
        );
        let one = |lo, hi| Scan {
            mode: Mode::ANY,
            lo,
            hi,
        };
        assert_eq!(
            parse_writeback(b"page_index=1 page_index=5", 100).unwrap()[..],
            [one(1, 2), one(5, 6)]
        );
        assert_eq!(
            parse_writeback(b"page_indexes=3-7", 100).unwrap()[..],
            [one(3, 8)]
        );
        // A range then a mode: the mode scans that range once.
        assert_eq!(
            parse_writeback(b"page_indexes=3-7 type=idle", 100).unwrap()[..],
            [
                one(3, 8),
                Scan {
                    mode: Mode(Mode::IDLE),
                    lo: 3,
                    hi: 8
                }
            ]
        );
        assert_eq!(parse_writeback(b"page_index=100", 100).err(), Some(ERANGE));
        assert_eq!(
            parse_writeback(b"page_indexes=7-3", 100).err(),
            Some(ERANGE)
        );
        assert_eq!(
            parse_writeback(b"page_indexes=3-100", 100).err(),
            Some(ERANGE)
        );
        assert_eq!(parse_writeback(b"page_indexes=37", 100).err(), Some(EINVAL));
        assert_eq!(parse_writeback(b"page_index=x", 100).err(), Some(EINVAL));
        assert_eq!(parse_writeback(b"sometimes", 100).err(), Some(EINVAL));
        assert_eq!(parse_writeback(b"type=\xff", 100).err(), Some(EINVAL));
        assert!(parse_writeback(b"", 100).unwrap().is_empty());
    }
}

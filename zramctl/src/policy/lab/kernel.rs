//! A model of Linux 7.3's zram (`drivers/block/zram/zram_drv.c`) as far as
//! writeback policies see it: the slot table with its flags, `idle` marking,
//! `writeback` with its modes and `writeback_limit`, `mm_stat` and `bd_stat`.
//!
//! What the model takes from the 7.3 source (the functions named):
//! - a write stores a page: same-filled pages (`ZRAM_SAME`) take no RAM and
//!   are never written back; a page that compresses to `huge_class_size` or
//!   more is stored uncompressed (`ZRAM_HUGE`, `write_incompressible_page`);
//!   writing over a written-back slot frees its block (`zram_free_page`);
//! - every read or write updates `ac_time` (boot time, so it counts suspended
//!   time) and clears `ZRAM_IDLE` (`zram_accessed`); a read of a written-back
//!   slot reads the block back (`bd_reads`) and the slot stays written back;
//! - `idle all` marks every allocated slot idle; `idle <secs>` marks slots
//!   whose `ac_time` is at least that old idle and clears the others
//!   (`mark_idle`; written-back and same-filled slots are skipped);
//! - `writeback idle|huge|huge_idle|page_index(es)=` collects the matching
//!   slots into post-processing buckets by compressed size
//!   (`scan_slots_for_writeback`, `place_pp_slot`) and writes the largest
//!   objects first (`select_pp_slot`); before each page it stops with `EIO`
//!   once `writeback_limit` is spent (`wb_limit_enable`) and with `ENOSPC`
//!   when the backing device has no free block (`zram_reserve_block`);
//!   pages written before the error stay written;
//! - `orig_data_size` is `pages_stored` pages, and a written-back slot still
//!   counts in `pages_stored`; `compr_data_size` and `mem_used_total` drop.
//!
//! zsmalloc's class rounding and fragmentation are not modelled: a slot
//! takes its compressed size in RAM (a huge slot a whole page).

use std::fmt;

/// Bytes per zram page (4 KiB pages, as writeback_limit and bd_stat count).
pub const PAGE: u64 = 4096;

/// zsmalloc's `huge_class_size` for 4 KiB pages on x86-64 (the smallest
/// size class that holds one object per zspage): objects this large or
/// larger are stored uncompressed.
pub const HUGE_CLASS_SIZE: u32 = 3264;

/// `PP_BUCKET_SIZE_RANGE` in zram_drv.c: the byte range of one
/// post-processing bucket.
pub const PP_BUCKET_SIZE_RANGE: u64 = 64;
/// `NUM_PP_BUCKETS`: `PAGE / PP_BUCKET_SIZE_RANGE + 1`.
pub const NUM_PP_BUCKETS: usize = (PAGE / PP_BUCKET_SIZE_RANGE) as usize + 1;

/// An errno the model returns from `writeback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Errno {
    /// `writeback_limit` exhausted (with `writeback_limit_enable`).
    Eio,
    /// No free block on the backing device.
    Enospc,
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Errno::Eio => "EIO",
            Errno::Enospc => "ENOSPC",
        })
    }
}

/// A `writeback` request as written to sysfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Idle,
    Huge,
    HugeIdle,
    /// `page_indexes=a-b` (inclusive ranges; `page_index=a` is `(a, a)`).
    Pages(Vec<(u64, u64)>),
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Idle => "idle",
            Request::Huge => "huge",
            Request::HugeIdle => "huge_idle",
            Request::Pages(_) => "page_indexes",
        }
    }
}

/// What one `writeback` call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub pages: u64,
    /// Compressed bytes freed from RAM.
    pub ram_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Empty,
    Same,
    Ram,
    Wb,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    state: State,
    idle: bool,
    /// Compressed size (`PAGE` for a huge slot) while in RAM, and the size
    /// it had when it was written back.
    size: u32,
    ac_ns: u64,
    wb_ns: u64,
}

impl Slot {
    fn huge(&self) -> bool {
        self.size as u64 >= PAGE
    }
}

/// `mm_stat` fields the policies read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmStat {
    pub orig_data_size: u64,
    pub compr_data_size: u64,
    pub mem_used_total: u64,
    pub same_pages: u64,
    pub huge_pages: u64,
}

/// `bd_stat`, in pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BdStat {
    pub bd_count: u64,
    pub bd_reads: u64,
    pub bd_writes: u64,
}

/// A page read back from the backing device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refault {
    pub slot: u64,
    /// When the page was written back (boot-time ns).
    pub wb_ns: u64,
    /// RAM the page had freed.
    pub size: u32,
}

/// The model of one zram device with a backing device.
#[derive(Clone, Debug)]
pub struct Zram {
    slots: Vec<Slot>,
    backing_pages: u64,
    wb_limit_enable: bool,
    wb_limit: u64,
    bd: BdStat,
    mm: MmStat,
    pages_stored: u64,
    /// Compressed bytes of the slots now on the backing device: the RAM
    /// writeback has freed and not given back.
    wb_ram_bytes: u64,
    /// Not kernel state: what the eBPF slot probes count per slot index
    /// (`SlotState::reads`, every read bio since the start; frees do not
    /// reset it).
    probe_reads: Vec<u32>,
}

impl Zram {
    /// A device of `disksize` bytes with `backing_bytes` of backing device.
    pub fn new(disksize: u64, backing_bytes: u64) -> Self {
        Zram {
            slots: vec![Slot::default(); (disksize / PAGE) as usize],
            backing_pages: backing_bytes / PAGE,
            wb_limit_enable: false,
            wb_limit: 0,
            bd: BdStat::default(),
            mm: MmStat::default(),
            pages_stored: 0,
            wb_ram_bytes: 0,
            probe_reads: vec![0; (disksize / PAGE) as usize],
        }
    }

    pub fn nr_slots(&self) -> u64 {
        self.slots.len() as u64
    }
    pub fn disksize(&self) -> u64 {
        self.nr_slots() * PAGE
    }
    pub fn backing_pages(&self) -> u64 {
        self.backing_pages
    }
    pub fn mm_stat(&self) -> MmStat {
        MmStat {
            orig_data_size: self.pages_stored * PAGE,
            ..self.mm
        }
    }
    pub fn bd_stat(&self) -> BdStat {
        self.bd
    }
    /// Compressed bytes now on the backing device (RAM freed by writeback).
    pub fn wb_ram_bytes(&self) -> u64 {
        self.wb_ram_bytes
    }

    /// `writeback_limit_enable` + `writeback_limit` (pages).
    pub fn set_writeback_limit(&mut self, pages: Option<u64>) {
        self.wb_limit_enable = pages.is_some();
        self.wb_limit = pages.unwrap_or(0);
    }
    pub fn writeback_limit(&self) -> u64 {
        self.wb_limit
    }

    fn slot_mut(&mut self, i: u64) -> Option<&mut Slot> {
        self.slots.get_mut(i as usize)
    }

    fn free(&mut self, i: u64) {
        let Some(s) = self.slots.get(i as usize).copied() else {
            return;
        };
        match s.state {
            State::Empty => return,
            State::Same => self.mm.same_pages -= 1,
            State::Ram => {
                self.mm.compr_data_size -= s.size as u64;
                self.mm.mem_used_total -= s.size as u64;
                if s.huge() {
                    self.mm.huge_pages -= 1;
                }
            }
            State::Wb => {
                self.bd.bd_count -= 1;
                self.wb_ram_bytes -= s.size as u64;
            }
        }
        self.pages_stored -= 1;
        self.slots[i as usize] = Slot::default();
    }

    /// A page written to slot `i` (a swap-out): `size` is its compressed
    /// size, 0 for a same-filled page, >= [`HUGE_CLASS_SIZE`] for one
    /// stored uncompressed. Out-of-range slots are ignored.
    pub fn write(&mut self, now_ns: u64, i: u64, size: u32) {
        if i >= self.nr_slots() {
            return;
        }
        self.free(i);
        let (state, size) = if size == 0 {
            self.mm.same_pages += 1;
            (State::Same, 0)
        } else {
            let size = if size >= HUGE_CLASS_SIZE {
                self.mm.huge_pages += 1;
                PAGE as u32
            } else {
                size
            };
            self.mm.compr_data_size += size as u64;
            self.mm.mem_used_total += size as u64;
            (State::Ram, size)
        };
        self.pages_stored += 1;
        if let Some(s) = self.slot_mut(i) {
            *s = Slot {
                state,
                idle: false,
                size,
                ac_ns: now_ns,
                wb_ns: 0,
            };
        }
    }

    /// A read of slot `i` (a swap-in); a refault when the slot is on the
    /// backing device.
    pub fn read(&mut self, now_ns: u64, i: u64) -> Option<Refault> {
        if let Some(n) = self.probe_reads.get_mut(i as usize) {
            *n = n.saturating_add(1);
        }
        let s = self.slot_mut(i)?;
        if s.state == State::Empty {
            return None;
        }
        s.ac_ns = now_ns;
        s.idle = false;
        if s.state == State::Wb {
            let r = Refault {
                slot: i,
                wb_ns: s.wb_ns,
                size: s.size,
            };
            self.bd.bd_reads += 1;
            return Some(r);
        }
        None
    }

    /// A discard of slot `i` (the swap slot freed).
    pub fn discard(&mut self, i: u64) {
        self.free(i);
    }

    /// `echo all > idle` (`age_ns` None) or `echo <secs> > idle` at
    /// `now_ns` (`idle_store`, `mark_idle`): with an age, the cutoff is
    /// `uptime - age` in whole seconds of boot time and slots whose
    /// `ac_time` (whole seconds) is before it become idle, the others not;
    /// an age at or beyond the uptime does nothing.
    pub fn mark_idle(&mut self, now_ns: u64, age_ns: Option<u64>) {
        let cutoff = match age_ns {
            None => None,
            Some(age) => {
                let (uptime, age) = (now_ns / 1_000_000_000, age / 1_000_000_000);
                if age >= uptime {
                    return;
                }
                Some(uptime - age)
            }
        };
        for s in &mut self.slots {
            if s.state != State::Ram {
                continue;
            }
            s.idle = cutoff.is_none_or(|c| c > s.ac_ns / 1_000_000_000);
        }
    }

    /// Slots in RAM (not same-filled, not written back) as
    /// `(index, last access ns, compressed size)`: what eBPF slot tracking
    /// and a size probe see.
    pub fn resident(&self) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == State::Ram)
            .map(|(i, s)| (i as u64, s.ac_ns, s.size))
    }

    /// Reads of slot `i` the eBPF slot probes counted (`SlotState::reads`).
    pub fn probe_reads(&self, i: u64) -> u32 {
        self.probe_reads.get(i as usize).copied().unwrap_or(0)
    }

    /// The last access of slot `i` (None: empty or out of range).
    pub fn ac_ns(&self, i: u64) -> Option<u64> {
        self.slots
            .get(i as usize)
            .filter(|s| s.state != State::Empty)
            .map(|s| s.ac_ns)
    }

    /// Slots holding compressed data in RAM or on the backing device as
    /// `(index, last access ns, on the backing device)`: what eBPF slot
    /// tracking sees (it does not know which slots a `writeback
    /// huge_idle` took).
    pub fn stored(&self) -> impl Iterator<Item = (u64, u64, bool)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.state, State::Ram | State::Wb))
            .map(|(i, s)| (i as u64, s.ac_ns, s.state == State::Wb))
    }

    /// `echo <req> > writeback` at `now_ns`.
    pub fn writeback(&mut self, now_ns: u64, req: &Request) -> (Written, Result<(), Errno>) {
        // scan_slots_for_writeback: candidates into size buckets.
        let mut buckets: Vec<Vec<u64>> = vec![Vec::new(); NUM_PP_BUCKETS];
        let bucket_of = |size: u32| -> usize { (size as u64 / PP_BUCKET_SIZE_RANGE) as usize };
        let mut place = |i: u64, s: &Slot| buckets[bucket_of(s.size)].push(i);
        match req {
            Request::Pages(ranges) => {
                for &(a, b) in ranges {
                    let b = b.min(self.nr_slots().saturating_sub(1));
                    for i in a..=b {
                        let s = &self.slots[i as usize];
                        if s.state == State::Ram {
                            place(i, s);
                        }
                    }
                }
            }
            _ => {
                for (i, s) in self.slots.iter().enumerate() {
                    if s.state != State::Ram {
                        continue;
                    }
                    let ok = match req {
                        Request::Idle => s.idle,
                        Request::Huge => s.huge(),
                        Request::HugeIdle => s.idle && s.huge(),
                        Request::Pages(_) => unreachable!(),
                    };
                    if ok {
                        place(i as u64, s);
                    }
                }
            }
        }
        // select_pp_slot: the largest bucket first; place_pp_slot adds at a
        // bucket's head (list_add), so the last placed goes first.
        let mut done = Written::default();
        for bucket in buckets.iter().rev() {
            for &i in bucket.iter().rev() {
                if self.wb_limit_enable && self.wb_limit == 0 {
                    return (done, Err(Errno::Eio));
                }
                if self.bd.bd_count >= self.backing_pages {
                    return (done, Err(Errno::Enospc));
                }
                let s = &mut self.slots[i as usize];
                let size = s.size as u64;
                self.mm.compr_data_size -= size;
                self.mm.mem_used_total -= size;
                if s.huge() {
                    self.mm.huge_pages -= 1;
                }
                s.state = State::Wb;
                s.idle = false;
                s.wb_ns = now_ns;
                self.wb_ram_bytes += size;
                self.bd.bd_count += 1;
                self.bd.bd_writes += 1;
                if self.wb_limit_enable {
                    self.wb_limit -= 1;
                }
                done.pages += 1;
                done.ram_bytes += size;
            }
        }
        (done, Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn dev() -> Zram {
        let mut z = Zram::new(64 * PAGE, 8 * PAGE);
        z.write(0, 0, 1000);
        z.write(0, 1, 4000); // huge
        z.write(0, 2, 0); // same-filled
        z.write(0, 3, 2000);
        z.write(10 * S, 4, 3000);
        z
    }

    #[test]
    fn stats_follow_writes_and_writeback() {
        let mut z = dev();
        let mm = z.mm_stat();
        assert_eq!(mm.orig_data_size, 5 * PAGE);
        assert_eq!(mm.compr_data_size, 1000 + 4096 + 2000 + 3000);
        assert_eq!((mm.same_pages, mm.huge_pages), (1, 1));
        // uptime 15 s, age 10 s: cutoff 5 s; slot 4 (10 s) is not idle.
        z.mark_idle(15 * S, Some(10 * S));
        let (w, r) = z.writeback(20 * S, &Request::Idle);
        assert_eq!(r, Ok(()));
        // Slots 0, 1, 3 are idle; 4 was touched at 10; 2 is same-filled.
        assert_eq!(w.pages, 3);
        assert_eq!(w.ram_bytes, 1000 + 4096 + 2000);
        let mm = z.mm_stat();
        // orig_data_size still counts written-back pages (as upstream does).
        assert_eq!(mm.orig_data_size, 5 * PAGE);
        assert_eq!(mm.compr_data_size, 3000);
        assert_eq!(mm.huge_pages, 0);
        assert_eq!(z.bd_stat().bd_count, 3);
        assert_eq!(z.wb_ram_bytes(), 7096);
    }

    #[test]
    fn largest_first_until_the_limit_then_eio() {
        let mut z = dev();
        z.mark_idle(20 * S, None);
        z.set_writeback_limit(Some(2));
        let (w, r) = z.writeback(20, &Request::Idle);
        assert_eq!(r, Err(Errno::Eio));
        assert_eq!(w.pages, 2);
        // The huge page (4096) and the 3000-byte one went first.
        assert_eq!(w.ram_bytes, 4096 + 3000);
        assert_eq!(z.writeback_limit(), 0);
    }

    #[test]
    fn backing_full_is_enospc_and_keeps_what_was_written() {
        let mut z = Zram::new(64 * PAGE, 2 * PAGE);
        for i in 0..5 {
            z.write(0, i, 100 * (i as u32 + 1));
        }
        z.mark_idle(20 * S, None);
        let (w, r) = z.writeback(1, &Request::Idle);
        assert_eq!((w.pages, r), (2, Err(Errno::Enospc)));
        assert_eq!(w.ram_bytes, 500 + 400);
        // Freeing a written-back slot frees its block.
        z.discard(4);
        z.mark_idle(20 * S, None);
        let (w, r) = z.writeback(2, &Request::Idle);
        assert_eq!((w.pages, r), (1, Err(Errno::Enospc)));
    }

    #[test]
    fn modes_select_their_slots() {
        let mut z = dev();
        let (w, _) = z.writeback(1, &Request::Huge);
        assert_eq!(w.pages, 1);
        let mut z = dev();
        let (w, _) = z.writeback(1, &Request::HugeIdle);
        assert_eq!(w.pages, 0, "nothing is idle yet");
        z.mark_idle(20 * S, None);
        let (w, _) = z.writeback(1, &Request::HugeIdle);
        assert_eq!((w.pages, w.ram_bytes), (1, 4096));
        let mut z = dev();
        let (w, _) = z.writeback(1, &Request::Pages(vec![(2, 3)]));
        assert_eq!(
            (w.pages, w.ram_bytes),
            (1, 2000),
            "same-filled slot 2 is skipped"
        );
    }

    #[test]
    fn reads_clear_idle_and_refault_from_the_backing_device() {
        let mut z = dev();
        z.mark_idle(20 * S, None);
        assert_eq!(z.read(5, 0), None);
        let (w, _) = z.writeback(6, &Request::Idle);
        assert_eq!(w.pages, 3, "slot 0 was read after the mark");
        let r = z.read(100, 1).expect("slot 1 was written back");
        assert_eq!((r.wb_ns, r.size), (6, 4096));
        assert_eq!(z.bd_stat().bd_reads, 1);
        // A rewrite of a written-back slot frees its block.
        z.write(101, 1, 500);
        assert_eq!(z.bd_stat().bd_count, 2);
        assert_eq!(z.mm_stat().orig_data_size, 5 * PAGE);
    }
}

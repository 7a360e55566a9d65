//! `cargo xtask bench packed`: rzram's `packed_writeback` (compressed
//! objects written back as one byte stream per bio, an object running on
//! into the next block where it does not fit) against rzram's unpacked
//! `compressed_writeback` (an object a 4 KiB block) and upstream zram, in
//! one VM run (issue 16's packed-writeback targets):
//!
//! 1. backing bytes written per page written back, after `echo all >
//!    idle; echo idle > writeback`, over the mean compressed size
//!    (`mm_stat` compr_data_size / pages before writeback): upstream zram
//!    plain and `compressed_writeback`, rzram unpacked and packed (target:
//!    packed <= 1.1x);
//! 2. that writeback's pages/s, rzram packed vs unpacked, both at
//!    `writeback_batch_size` 32 and 32-page bios (target >= 1.5x);
//! 3. read-back latency p50/p99 of 4K random reads (fio, O_DIRECT, psync,
//!    iodepth 1) of the written-back pages, packed vs unpacked;
//! 4. dead backing space after churn: 30 % of the written-back pages
//!    rewritten with new data (half) or discarded (half), then the part of
//!    the backing space in use (`bd_stat` count x 4096) that live objects
//!    do not hold, packed and unpacked;
//! 5. the cost of one `echo page_index=N > writeback` (200 of them, as the
//!    daemon issues them), upstream zram vs rzram in plain mode, the two
//!    devices side by side taking turns of 50 calls.
//!
//! The data is fio's (`--buffer_compress_percentage=60 --refill_buffers
//! --buffer_compress_chunk=512`, `--packed-mib`), the same for every row;
//! every row gets a fresh lz4 device on a dm-linear slice of the VM's
//! scratch disk. Rows run in `--rounds` interleaved rounds (odd rounds run
//! the list backwards); each round gives one ratio per measure, reported as
//! the median with its confidence interval (`stats`). The two rzram rows
//! run as a pair (rzram0 and rzram1 filled first, on slices of the same
//! size swapped every round, then timed back to back): a slow spell of the
//! host lasts seconds, longer than the writebacks (0.3-0.5 s), and with the
//! fills and read-back runs between them it once took two rounds' packed
//! rows and neither unpacked one.
//!
//! The live compressed bytes of row 4 are exact: before the rounds, the data
//! is written to an rzram device without backing device, its `mm_stat`
//! read, the churned pages discarded and `mm_stat` read again; lz4 is
//! deterministic, so what is left is the compressed size of exactly the
//! objects the churned devices still hold on the backing device (checked:
//! the reference's size before discarding must equal each device's). The
//! report also shows the estimate pages remaining x mean compressed size.

use anyhow::Result;

use super::{BenchArgs, publish, run_in_vm_with};
use crate::util::{progress, repo_root};

mod measure;
mod parse;
mod report;
mod script;

pub use report::report;
pub use script::script;

/// How a device writes back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Whole pages, decompressed (upstream's default).
    Plain,
    /// `compressed_writeback`: an object a block.
    Compressed,
    /// `packed_writeback` (rzram only): objects share blocks.
    Packed,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Compressed => "compressed",
            Mode::Packed => "packed",
        }
    }
}

/// One writeback configuration.
pub struct Row {
    pub id: &'static str,
    pub label: &'static str,
    pub dev: &'static str,
    pub mode: Mode,
}

/// The writeback rows, in the order they run in even rounds.
pub const ROWS: [Row; 4] = [
    Row {
        id: "zram-plain",
        label: "zram (C, upstream), plain",
        dev: "zram0",
        mode: Mode::Plain,
    },
    Row {
        id: "zram-compressed",
        label: "zram (C, upstream), compressed_writeback",
        dev: "zram0",
        mode: Mode::Compressed,
    },
    Row {
        id: "rzram-packed",
        label: "rzram (Rust), packed_writeback",
        dev: "rzram0",
        mode: Mode::Packed,
    },
    Row {
        id: "rzram-compressed",
        label: "rzram (Rust), compressed_writeback (unpacked)",
        dev: "rzram0",
        mode: Mode::Compressed,
    },
];

pub const PACKED: &str = "rzram-packed";
const UNPACKED: &str = "rzram-compressed";

/// One-page writeback calls timed per device and round, in turns of
/// `TURN` calls: both devices are set up side by side (each on its own
/// slice) and take turns, so that a drift of the host's load over the
/// seconds they take favours neither.
pub const CALLS: u32 = 200;
const TURN: u32 = 50;
/// MiB of the second slice (after the first), for the second device of the
/// one-page calls.
const SLICE2_MIB: u32 = 8;
/// `writeback_batch_size` and `writeback_bio_pages` of every row.
const BATCH: u32 = 32;
/// Random reads per read-back latency run (at most half the data's pages),
/// with `--runtime` seconds as a cap.
const LAT_IOS: u64 = 2000;
/// Issue 16's targets: packed bytes per page over the mean compressed size
/// (at most), packed over unpacked pages/s (at least).
pub const TARGET_BYTES: f64 = 1.1;
pub const TARGET_RATE: f64 = 1.5;

/// MiB of data each row writes (at least 2: the one-page calls write back
/// 200 of its first 400 pages).
fn data_mib(args: &BenchArgs) -> u32 {
    args.packed_mib.max(2)
}

/// MiB of the first backing slice: unpacked, every page takes a block;
/// the one-page calls take 200.
fn slice_mib(args: &BenchArgs) -> u32 {
    (data_mib(args) + 16).max(64)
}

/// The VM's scratch disk this part needs (the three slices: the first and
/// the third, of the same size, for the rzram pair), at least the default
/// 1 GiB.
pub fn disk_mib(args: &BenchArgs) -> u64 {
    (2 * u64::from(slice_mib(args)) + u64::from(SLICE2_MIB) + 64).max(1024)
}

/// Groups of 20 pages the churn touches: in each, pages 0-2 are rewritten
/// and 10-12 discarded (30 % of the pages, spread over the device).
fn churn_groups(pages: u64) -> u64 {
    pages / 20
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let results = repo_root().join("target/bench/packed");
    if !args.report_only {
        progress(&format!(
            "bench packed: {} rounds x {} writeback rows of {} MiB + 2 x {CALLS} one-page writebacks in one VM",
            args.rounds,
            ROWS.len(),
            data_mib(args),
        ));
        run_in_vm_with("packed", &script(args), disk_mib(args))?;
    }
    let (text, errors, _) = report(args, &results)?;
    publish("packed", &results, &text, &errors)
}

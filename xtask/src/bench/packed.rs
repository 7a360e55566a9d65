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
//! every row gets a fresh lz4 device on the same dm-linear slice of the VM's
//! scratch disk. Rows run in `--rounds` interleaved rounds (odd rounds run
//! the list backwards); each round gives one ratio per measure, reported as
//! the median and min-max of the rounds.
//!
//! The live compressed bytes of row 4 are exact: before the rounds, the data
//! is written to an rzram device without backing device, its `mm_stat`
//! read, the churned pages discarded and `mm_stat` read again; lz4 is
//! deterministic, so what is left is the compressed size of exactly the
//! objects the churned devices still hold on the backing device (checked:
//! the reference's size before discarding must equal each device's). The
//! report also shows the estimate pages remaining x mean compressed size.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result, bail};

use super::{
    BenchArgs, median, run_in_vm_with,
    stats::{self, Spread},
};
use crate::util::{progress, repo_root};

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

/// The VM's scratch disk this part needs (both slices), at least the
/// default 1 GiB.
pub fn disk_mib(args: &BenchArgs) -> u64 {
    (u64::from(slice_mib(args)) + u64::from(SLICE2_MIB) + 64).max(1024)
}

/// Groups of 20 pages the churn touches: in each, pages 0-2 are rewritten
/// and 10-12 discarded (30 % of the pages, spread over the device).
fn churn_groups(pages: u64) -> u64 {
    pages / 20
}

/// The guest script (bash); results in `$ZRAMCTL_RESULTS`.
pub fn script(args: &BenchArgs) -> String {
    let mib = data_mib(args);
    let pages = u64::from(mib) * 256;
    let groups = churn_groups(pages);
    let slice = slice_mib(args);
    let mut s = TEMPLATE
        .replace("@MIB@", &mib.to_string())
        .replace("@PAGES@", &pages.to_string())
        .replace("@DATA_KIB@", &(pages * 4).to_string())
        .replace("@GROUPS@", &groups.to_string())
        .replace("@GROUPS2@", &(groups * 2).to_string())
        .replace("@CHURN_KIB@", &(groups * 80).to_string())
        .replace("@TRIM_KIB@", &(groups * 80).saturating_sub(40).to_string())
        .replace("@SLICE@", &slice.to_string())
        .replace("@SECTORS@", &(u64::from(slice) * 2048).to_string())
        .replace("@DISKSIZE@", &(mib * 2).max(64).to_string())
        .replace("@BATCH@", &BATCH.to_string())
        .replace("@LAT_IOS@", &LAT_IOS.min(pages / 2).to_string())
        .replace("@RUNTIME@", &args.runtime.max(1).to_string())
        .replace("@CALLS@", &CALLS.to_string())
        .replace("@TURN@", &TURN.to_string())
        .replace(
            "@SLICE2_SECTORS@",
            &(u64::from(SLICE2_MIB) * 2048).to_string(),
        )
        .replace("@CALL_PAGES@", &(2 * CALLS).to_string());
    for round in 0..args.rounds {
        let order: Vec<&Row> = if round % 2 == 0 {
            ROWS.iter().collect()
        } else {
            ROWS.iter().rev().collect()
        };
        for r in order {
            let gate = match (r.dev, r.mode) {
                ("rzram0", _) => "[ $RZRAM = 1 ] && ",
                (_, Mode::Compressed) => "[ $ZCOMP = 1 ] && ",
                _ => "",
            };
            let _ = writeln!(
                s,
                "{gate}row {} {} {} {round}",
                r.id,
                r.dev,
                r.mode.as_str()
            );
        }
        let [a, b] = stats::ab_order("zram0", "rzram0", round);
        let _ = writeln!(s, "cost {round} $(avail {a} {b})");
    }
    s.push_str("dmsetup remove pkbench\ndmsetup remove pkbench2\n");
    s
}

const TEMPLATE: &str = r#"[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
R="$ZRAMCTL_RESULTS"
: > "$R/packed.txt"
: > "$R/errors.txt"
err() { echo "$*" >> "$R/errors.txt"; echo "error: $*"; }
[ -e /sys/module/rzram ] || insmod "$ZRAMCTL_MODROOT/lib/modules/$ZRAMCTL_KERNEL_RELEASE/kernel/drivers/block/rzram/rzram.ko" \
  || err "insmod rzram failed"
RZWB=0; [ -e /sys/block/rzram0/backing_dev ] && RZWB=1
RZRAM=0; [ -e /sys/block/rzram0/packed_writeback ] && RZRAM=1
ZCOMP=0; [ -e /sys/block/zram0/compressed_writeback ] && ZCOMP=1
{
  echo "rzram_packed $RZRAM"
  echo "rzram_writeback $RZWB"
  echo "zram_compressed_writeback $ZCOMP"
  echo "kernel $(uname -r)"
  echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cpus $(nproc)"
  echo "data_pages @PAGES@"
  echo "churn_groups @GROUPS@"
} > "$R/env.txt"
dmsetup remove pkbench 2>/dev/null
dmsetup remove pkbench2 2>/dev/null
dmsetup create pkbench --table "0 @SECTORS@ linear $ZRAMCTL_BACKING_DISK 0" || exit 1
dmsetup create pkbench2 --table "0 @SLICE2_SECTORS@ linear $ZRAMCTL_BACKING_DISK @SECTORS@" || exit 1
BD=/dev/$(dmsetup info -c --noheadings -o blkdevname pkbench)
BD2=/dev/$(dmsetup info -c --noheadings -o blkdevname pkbench2)
# Written once, so that no row pays for the host allocating blocks of the
# sparse disk image.
dd if=/dev/zero of="$BD" bs=1M count=@SLICE@ oflag=direct status=none || exit 1
dd if=/dev/zero of="$BD2" bs=1M oflag=direct status=none 2>/dev/null
DATA=/tmp/packed-data.bin
fio --name=gen --filename=$DATA --size=@MIB@M --rw=write --bs=4k --buffer_compress_percentage=60 \
  --refill_buffers --buffer_compress_chunk=512 --output=/dev/null || exit 1

setdev() { # DEV MODE [BACKING]: a fresh lz4 device on the (first) backing slice
  local S=/sys/block/$1 c=0 p=0 bd=${3:-$BD}
  case $2 in compressed) c=1 ;; packed) c=1; p=1 ;; esac
  echo 1 > $S/reset
  if [ -e $S/compressed_writeback ]; then echo $c > $S/compressed_writeback || return 1
  elif [ $c = 1 ]; then return 1; fi
  if [ -e $S/packed_writeback ]; then echo $p > $S/packed_writeback || return 1
  elif [ $p = 1 ]; then return 1; fi
  echo lz4 > $S/comp_algorithm || return 1
  echo "$bd" > $S/backing_dev || return 1
  echo @DISKSIZE@M > $S/disksize || return 1
  echo 0 > $S/writeback_limit_enable
  echo @BATCH@ > $S/writeback_batch_size || return 1
  if [ -e $S/writeback_bio_pages ]; then echo @BATCH@ > $S/writeback_bio_pages || return 1; fi
}

# Pages 20k..20k+2 rewritten with new data, 20k+10..20k+12 discarded, for
# k < @GROUPS@.
churn() { # DEV
  fio --name=rewrite --filename=/dev/$1 --rw=write:68k --bs=12k --size=@CHURN_KIB@k --number_ios=@GROUPS@ \
    --direct=1 --ioengine=psync --buffer_compress_percentage=60 --refill_buffers --buffer_compress_chunk=512 \
    --randseed=4242 --output=/dev/null \
  && fio --name=discard --filename=/dev/$1 --rw=trim:68k --bs=12k --offset=40k --size=@TRIM_KIB@k \
    --number_ios=@GROUPS@ --ioengine=psync --output=/dev/null
}

# The exact compressed size of the pages the churn leaves: the data on a
# device without backing device, before and after discarding those pages.
reference() {
  local S=/sys/block/rzram0 orig compr same orig2 compr2 same2
  echo 1 > $S/reset
  echo 0 > $S/compressed_writeback; echo 0 > $S/packed_writeback
  echo lz4 > $S/comp_algorithm
  echo @DISKSIZE@M > $S/disksize || { err "reference: disksize failed"; return; }
  dd if=$DATA of=/dev/rzram0 bs=1M oflag=direct status=none || { err "reference: writing the data failed"; return; }
  read -r orig compr _ _ _ same _ < $S/mm_stat
  fio --name=refdiscard --filename=/dev/rzram0 --rw=trim:28k --bs=12k --size=@CHURN_KIB@k \
    --number_ios=@GROUPS2@ --ioengine=psync --output=/dev/null || { err "reference: discard failed"; return; }
  read -r orig2 compr2 _ _ _ same2 _ < $S/mm_stat
  echo "ref $orig $compr $same $orig2 $compr2 $same2" >> "$R/packed.txt"
  echo "reference: $((orig / 4096 - same)) pages, $compr bytes; after the churn's discard $((orig2 / 4096 - same2)) pages, $compr2 bytes"
  echo 1 > $S/reset
}

row() { # ID DEV MODE ROUND
  local S=/sys/block/$2 orig compr same ok t0 t1 count reads writes after r2 c2 lat
  if ! setdev $2 $3; then err "$1 round $4: setting up $2 ($3) failed"; echo 1 > $S/reset; return; fi
  if ! dd if=$DATA of=/dev/$2 bs=1M oflag=direct status=none; then
    err "$1 round $4: writing the data failed"; echo 1 > $S/reset; return
  fi
  read -r orig compr _ _ _ same _ < $S/mm_stat
  echo all > $S/idle
  sync; sleep 0.2
  t0=${EPOCHREALTIME/./}
  if echo idle > $S/writeback; then ok=1; else ok=0; err "$1 round $4: writeback failed"; fi
  t1=${EPOCHREALTIME/./}
  read -r count reads writes < $S/bd_stat
  read -r _ after _ < $S/mm_stat
  echo "wb $1 $4 $orig $compr $same $(( (t1 - t0) * 1000 )) $ok $count $reads $writes $after" >> "$R/packed.txt"
  echo "round $4: $1: $((orig / 4096 - same)) pages ($compr bytes compressed) written back in $(( (t1 - t0) / 1000 )) ms, bd_stat $count $reads $writes"
  case $2 in rzram*)
    if [ $ok = 1 ]; then
      fio --name=readback --filename=/dev/$2 --rw=randread --bs=4k --size=@DATA_KIB@k --direct=1 --ioengine=psync \
        --iodepth=1 --number_ios=@LAT_IOS@ --runtime=@RUNTIME@ --randseed=16 --percentile_list=50:99 --continue_on_error=read \
        --output-format=json > "$R/lat-$1-$4.json" 2> "$R/lat-$1-$4.err"; lat=$?
      if [ $lat = 0 ]; then lat=1; else
        lat=0; err "$1 round $4: read-back fio failed: $(head -c 300 "$R/lat-$1-$4.err")"
        dmesg | tail -40 > "$R/dmesg-$1-$4.txt"
      fi
      read -r _ r2 _ < $S/bd_stat
      churn $2 || err "$1 round $4: churn failed"
      read -r c2 _ _ < $S/bd_stat
      echo "after $1 $4 $((r2 - reads)) $c2 $lat" >> "$R/packed.txt"
      echo "round $4: $1: $((r2 - reads)) blocks read by the read-back run; $c2 blocks in use after the churn"
    fi ;;
  esac
  echo 1 > $S/reset
}

avail() { # DEV...: those whose writeback this kernel has
  local d
  for d; do [ $d = rzram0 ] && [ $RZWB != 1 ] && continue; echo $d; done
}

cost() { # ROUND DEV...: one-page writeback calls, plain mode, the devices side by side taking turns
  local round=$1 dev S bd i b t0 t1 w n=0 devs=()
  local -A ns ok
  shift
  for dev; do
    S=/sys/block/$dev
    if [ $n = 0 ]; then bd=$BD; else bd=$BD2; fi
    n=$((n + 1))
    if ! setdev $dev plain $bd; then err "cost $dev round $round: setup failed"; echo 1 > $S/reset; continue; fi
    if ! dd if=$DATA of=/dev/$dev bs=4k count=@CALL_PAGES@ oflag=direct status=none; then
      err "cost $dev round $round: writing the data failed"; echo 1 > $S/reset; continue
    fi
    devs+=($dev); ns[$dev]=0; ok[$dev]=1
  done
  for ((b = 0; b < @CALLS@; b += @TURN@)); do
    for dev in "${devs[@]}"; do
      S=/sys/block/$dev
      t0=${EPOCHREALTIME/./}
      for ((i = b; i < b + @TURN@; i++)); do echo page_index=$i > $S/writeback || ok[$dev]=0; done
      t1=${EPOCHREALTIME/./}
      ns[$dev]=$(( ${ns[$dev]} + (t1 - t0) * 1000 ))
    done
  done
  for dev in "${devs[@]}"; do
    S=/sys/block/$dev
    [ ${ok[$dev]} = 1 ] || err "cost $dev round $round: a page_index writeback failed"
    read -r _ _ w < $S/bd_stat
    echo "cost $dev $round @CALLS@ ${ns[$dev]} ${ok[$dev]} $w" >> "$R/packed.txt"
    echo "round $round: $dev: @CALLS@ page_index writebacks in $(( ${ns[$dev]} / 1000000 )) ms, $w blocks written"
    echo 1 > $S/reset
  done
}

[ $RZRAM = 1 ] && reference
"#;

/// `wb`: one idle writeback (`mm_stat` before it: orig_data_size,
/// compr_data_size, same_pages; `bd_stat` and compr_data_size after it).
#[derive(Clone, Debug, PartialEq)]
struct Wb {
    id: String,
    round: u32,
    orig: u64,
    compr: u64,
    same: u64,
    ns: u64,
    ok: bool,
    count: u64,
    writes: u64,
    compr_after: u64,
}

/// `after`: an rzram row's backing blocks read by the read-back run, and in
/// use after the churn; whether the read-back run succeeded.
#[derive(Clone, Debug, PartialEq)]
struct After {
    id: String,
    round: u32,
    blocks_read: u64,
    count: u64,
    lat_ok: bool,
}

/// `ref`: `mm_stat` orig, compr and same of the data, and of what the
/// churn leaves (its pages discarded).
#[derive(Clone, Debug, PartialEq)]
struct Reference {
    orig: u64,
    compr: u64,
    same: u64,
    live_orig: u64,
    live_compr: u64,
    live_same: u64,
}

/// `cost`: one-page writeback calls on a device.
#[derive(Clone, Debug, PartialEq)]
struct Cost {
    dev: String,
    round: u32,
    calls: u64,
    ns: u64,
    ok: bool,
}

#[derive(Debug, Default)]
struct Lines {
    wb: Vec<Wb>,
    after: Vec<After>,
    reference: Option<Reference>,
    cost: Vec<Cost>,
}

/// The lines of `packed.txt`, each its kind then its fields:
/// `wb ID ROUND ORIG COMPR SAME NS OK COUNT READS WRITES COMPR_AFTER`,
/// `after ID ROUND BLOCKS_READ COUNT LAT_OK`, `ref ORIG COMPR SAME ORIG COMPR SAME`,
/// `cost DEV ROUND CALLS NS OK WRITES`.
fn parse(text: &str) -> Result<Lines> {
    let mut out = Lines::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let want = match f[0] {
            "wb" => 12,
            "after" => 6,
            "ref" => 7,
            "cost" => 7,
            _ => bail!("unknown line in packed.txt: {line:?}"),
        };
        if f.len() != want {
            bail!("{} fields, not {want}, in packed.txt: {line:?}", f.len());
        }
        let n = |i: usize| -> Result<u64> {
            f[i].parse::<u64>()
                .with_context(|| format!("field {i} of {line:?}"))
        };
        let round = |i: usize| -> Result<u32> {
            f[i].parse::<u32>()
                .with_context(|| format!("round in {line:?}"))
        };
        match f[0] {
            "wb" => out.wb.push(Wb {
                id: f[1].into(),
                round: round(2)?,
                orig: n(3)?,
                compr: n(4)?,
                same: n(5)?,
                ns: n(6)?,
                ok: n(7)? == 1,
                count: n(8)?,
                writes: n(10)?,
                compr_after: n(11)?,
            }),
            "after" => out.after.push(After {
                id: f[1].into(),
                round: round(2)?,
                blocks_read: n(3)?,
                count: n(4)?,
                lat_ok: n(5)? == 1,
            }),
            "ref" => {
                out.reference = Some(Reference {
                    orig: n(1)?,
                    compr: n(2)?,
                    same: n(3)?,
                    live_orig: n(4)?,
                    live_compr: n(5)?,
                    live_same: n(6)?,
                })
            }
            _ => {
                // The blocks written are checked by nothing: parsed only
                // so that junk is rejected.
                n(6)?;
                out.cost.push(Cost {
                    dev: f[1].into(),
                    round: round(2)?,
                    calls: n(3)?,
                    ns: n(4)?,
                    ok: n(5)? == 1,
                })
            }
        }
    }
    Ok(out)
}

/// One read-back run: p50 and p99 completion latency (µs), the reads done
/// and the reads that failed (`--continue_on_error=read`).
#[derive(Debug, PartialEq)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    ios: u64,
    failed: u64,
}

/// A fio JSON report with `--percentile_list=50:99`.
fn fio_latency(path: &Path) -> Result<Latency> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json = &text[text
        .find('{')
        .with_context(|| format!("no JSON in {}", path.display()))?..];
    let v: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("parsing {}", path.display()))?;
    let read = &v["jobs"][0]["read"];
    let p = |k: &str| {
        read["clat_ns"]["percentile"][k]
            .as_f64()
            .map(|ns| ns / 1e3)
            .with_context(|| format!("no clat_ns percentile {k} in {}", path.display()))
    };
    let ios = read["total_ios"]
        .as_u64()
        .with_context(|| format!("no total_ios in {}", path.display()))?;
    Ok(Latency {
        p50_us: p("50.000000")?,
        p99_us: p("99.000000")?,
        ios,
        failed: v["jobs"][0]["total_err"].as_u64().unwrap_or(0),
    })
}

fn env_value<'a>(env: &'a str, key: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
}

/// Per-round values: `(row or device id, measure)` -> round -> value.
/// Measures: `pages` (written back), `mean_compr` (bytes), `bytes_per_page`
/// (backing bytes written per page), `bytes_ratio` (bytes_per_page /
/// mean_compr), `pps`, `p50_us`, `p99_us`, `blocks_per_read`,
/// `count_after` (blocks in use after the churn), `dead` (exact live
/// bytes), `dead_est` (estimated), and per device `call_ms`.
#[derive(Default)]
pub struct Packed {
    values: BTreeMap<(String, &'static str), BTreeMap<u32, f64>>,
}

impl Packed {
    fn put(&mut self, id: &str, measure: &'static str, round: u32, v: f64) {
        if v.is_finite() {
            self.values
                .entry((id.to_string(), measure))
                .or_default()
                .insert(round, v);
        }
    }

    pub fn get(&self, id: &str, measure: &'static str) -> Option<&BTreeMap<u32, f64>> {
        self.values
            .get(&(id.to_string(), measure))
            .filter(|v| !v.is_empty())
    }

    pub fn median(&self, id: &str, measure: &'static str) -> Option<f64> {
        stats::median_of(self.get(id, measure)?)
    }

    /// The rounds' values of one measure as a spread (a ratio measure).
    pub fn spread(&self, id: &str, measure: &'static str) -> Option<Spread> {
        Spread::of(&self.get(id, measure)?.values().copied().collect::<Vec<_>>())
    }

    /// Per-round `a / b` of one measure.
    pub fn vs(&self, a: &str, b: &str, measure: &'static str) -> Option<Spread> {
        Spread::paired(self.get(a, measure)?, self.get(b, measure)?)
    }
}

/// "median (min-max)" of values that may be zero or negative (a fraction),
/// formatted by `f`.
fn range_cell(v: Option<&BTreeMap<u32, f64>>, f: impl Fn(f64) -> String) -> String {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return "-".into();
    };
    let all: Vec<f64> = v.values().copied().collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("**{}** ({}-{})", f(median(all)), f(lo), f(hi))
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// Whether an upper bound is met: by the high end (the worst round).
fn verdict_at_most(s: Option<&Spread>, target: f64) -> String {
    match s {
        None => "not measured".into(),
        Some(s) if s.max <= target => format!("met (high end {:.2}x ≤ {target:.1}x)", s.max),
        Some(s) if s.median <= target => format!(
            "**not met**: median {:.2}x but high end {:.2}x > {target:.1}x",
            s.median, s.max
        ),
        Some(s) => format!("**not met**: high end {:.2}x > {target:.1}x", s.max),
    }
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// The per-round measures of one run.
/// The measures, notes on samples left out, and failures found in the
/// results (reads that failed).
fn measure(results: &Path, lines: &Lines, groups: u64) -> (Packed, Vec<String>, Vec<String>) {
    let mut p = Packed::default();
    let mut notes = Vec::new();
    let mut failures = Vec::new();
    let churned = 6 * groups;
    let mut compr_by_round: BTreeMap<(String, u32), (u64, f64)> = BTreeMap::new();
    for w in &lines.wb {
        let Some(row) = ROWS.iter().find(|r| r.id == w.id) else {
            continue;
        };
        if !w.ok {
            continue;
        }
        let nonsame = (w.orig / 4096).saturating_sub(w.same);
        if nonsame == 0 {
            continue;
        }
        let mean = w.compr as f64 / nonsame as f64;
        p.put(row.id, "mean_compr", w.round, mean);
        // Unpacked, a block is a page; packed, every page stored (not
        // same-filled) went when no compressed byte is left in RAM.
        let pages = if row.mode != Mode::Packed {
            w.writes
        } else if w.compr_after == 0 {
            nonsame
        } else {
            notes.push(format!(
                "{} round {}: {} compressed bytes left in RAM after the writeback: pages written back unknown",
                w.id, w.round, w.compr_after
            ));
            continue;
        };
        if pages == 0 {
            continue;
        }
        compr_by_round.insert((w.id.clone(), w.round), (w.compr, mean));
        let bpp = w.writes as f64 * 4096.0 / pages as f64;
        p.put(row.id, "pages", w.round, pages as f64);
        p.put(row.id, "bytes_per_page", w.round, bpp);
        p.put(row.id, "bytes_ratio", w.round, bpp / mean);
        if w.ns > 0 {
            p.put(row.id, "pps", w.round, pages as f64 / (w.ns as f64 / 1e9));
        }
        if w.count != w.writes && row.mode != Mode::Packed {
            notes.push(format!(
                "{} round {}: bd_stat count {} != writes {} after one writeback",
                w.id, w.round, w.count, w.writes
            ));
        }
    }
    let live_pages = lines
        .reference
        .as_ref()
        .map(|r| (r.live_orig / 4096).saturating_sub(r.live_same));
    for a in &lines.after {
        let Some(&(compr, mean)) = compr_by_round.get(&(a.id.clone(), a.round)) else {
            continue;
        };
        let Some(pages) = p.get(&a.id, "pages").and_then(|v| v.get(&a.round)) else {
            continue;
        };
        let pages = *pages as u64;
        // A failed read-back run's figures are no sample (the error is
        // listed with the others); reads that failed in a run that went on
        // are listed as errors, the others timed.
        if a.lat_ok
            && let Ok(Latency {
                p50_us,
                p99_us,
                ios,
                failed,
            }) = fio_latency(&results.join(format!("lat-{}-{}.json", a.id, a.round)))
        {
            if failed > 0 {
                failures.push(format!(
                    "{} round {}: {failed} read-back reads failed (fio: {ios} reads done)",
                    a.id, a.round
                ));
            }
            p.put(&a.id, "p50_us", a.round, p50_us);
            p.put(&a.id, "p99_us", a.round, p99_us);
            if ios > 0 {
                p.put(
                    &a.id,
                    "blocks_per_read",
                    a.round,
                    a.blocks_read as f64 / ios as f64,
                );
            }
        }
        if a.count == 0 {
            continue;
        }
        let space = a.count as f64 * 4096.0;
        p.put(&a.id, "count_after", a.round, a.count as f64);
        let remaining = pages.saturating_sub(churned);
        p.put(
            &a.id,
            "dead_est",
            a.round,
            1.0 - remaining as f64 * mean / space,
        );
        // Exact when the reference compressed the same data to the same
        // size and keeps as many pages as the churn left.
        match &lines.reference {
            Some(r) if r.compr == compr && live_pages == Some(remaining) => {
                p.put(&a.id, "dead", a.round, 1.0 - r.live_compr as f64 / space);
            }
            Some(r) => notes.push(format!(
                "{} round {}: the reference ({} bytes, {:?} pages left) does not match this device ({compr} bytes, {remaining} pages left): no exact dead space",
                a.id, a.round, r.compr, live_pages
            )),
            None => {}
        }
    }
    for c in &lines.cost {
        if c.ok && c.calls > 0 && c.ns > 0 {
            p.put(
                &c.dev,
                "call_ms",
                c.round,
                c.ns as f64 / 1e6 / c.calls as f64,
            );
        }
    }
    (p, notes, failures)
}

pub fn report(args: &BenchArgs, results: &Path) -> Result<(String, Vec<String>, Packed)> {
    let env = fs::read_to_string(results.join("env.txt"))
        .with_context(|| format!("no env.txt in {}", results.display()))?;
    let lines = parse(
        &fs::read_to_string(results.join("packed.txt"))
            .with_context(|| format!("no packed.txt in {}", results.display()))?,
    )?;
    let mut errors: Vec<String> = fs::read_to_string(results.join("errors.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let num = |k: &str| env_value(&env, k).and_then(|v| v.parse::<u64>().ok());
    let pages_all = num("data_pages").unwrap_or(0);
    let groups = num("churn_groups").unwrap_or_else(|| churn_groups(pages_all));
    let (p, notes, failures) = measure(results, &lines, groups);
    errors.extend(failures);
    let cpu = env_value(&env, "cpu").unwrap_or("?");
    let accel = if cpu.contains("TCG") || !cpu.contains("KVM") {
        "under TCG (software emulation)"
    } else {
        "under KVM"
    };

    // The summary: one line per issue-16 measure.
    let mut t = String::from(
        "| measure | A (median) | B (median) | A / B: median (min-max of rounds) | target | met? |\n|---|---|---|---|---|---|\n",
    );
    let mean = p.median(PACKED, "mean_compr");
    for (id, what) in [
        (PACKED, "rzram packed_writeback"),
        (UNPACKED, "rzram compressed_writeback (unpacked)"),
        ("zram-compressed", "upstream zram compressed_writeback"),
        ("zram-plain", "upstream zram plain"),
    ] {
        let s = p.spread(id, "bytes_ratio");
        let (target, verdict) = if id == PACKED {
            (
                format!("≤ {TARGET_BYTES:.1}x"),
                verdict_at_most(s.as_ref(), TARGET_BYTES),
            )
        } else {
            ("-".into(), "-".into())
        };
        let _ = writeln!(
            t,
            "| backing bytes written per page written back: {what} (A) / the mean compressed size (B) | {} B | {} B | {} | {target} | {verdict} |",
            fmt(p.median(id, "bytes_per_page"), 0),
            fmt(p.median(id, "mean_compr").or(mean), 0),
            stats::cell(s.as_ref()),
        );
    }
    let rate = p.vs(PACKED, UNPACKED, "pps");
    let _ = writeln!(
        t,
        "| idle writeback pages/s, batch {BATCH}, {BATCH}-page bios: rzram packed (A) / rzram unpacked (B) | {} | {} | {} | ≥ {TARGET_RATE:.1}x | {} |",
        fmt(p.median(PACKED, "pps"), 0),
        fmt(p.median(UNPACKED, "pps"), 0),
        stats::cell(rate.as_ref()),
        stats::verdict(rate.as_ref(), Some(TARGET_RATE)),
    );
    for (m, what) in [("p50_us", "p50"), ("p99_us", "p99")] {
        let _ = writeln!(
            t,
            "| read-back latency {what}, 4K random O_DIRECT reads, µs: rzram packed (A) / rzram unpacked (B) (below 1: packed is faster) | {} | {} | {} | - | - |",
            fmt(p.median(PACKED, m), 0),
            fmt(p.median(UNPACKED, m), 0),
            stats::cell(p.vs(PACKED, UNPACKED, m).as_ref()),
        );
    }
    let _ = writeln!(
        t,
        "| dead backing space after churning 30 % of the pages (1 - live compressed bytes / (bd_stat count x 4096)): rzram packed (A), rzram unpacked (B); median (min-max) | {} | {} | - | - | - |",
        range_cell(p.get(PACKED, "dead"), pct),
        range_cell(p.get(UNPACKED, "dead"), pct),
    );
    let cost = p.vs("rzram0", "zram0", "call_ms");
    let _ = writeln!(
        t,
        "| one-page writeback call (`echo page_index=N > writeback`, {CALLS} calls), ms per call, plain: rzram (A) / upstream zram (B) (below 1: rzram is faster) | {} | {} | {} | - | - |",
        fmt(p.median("rzram0", "call_ms"), 2),
        fmt(p.median("zram0", "call_ms"), 2),
        stats::cell(cost.as_ref()),
    );

    // The details, per row.
    let mut d = String::from(
        "| row | pages written back | mean compressed size (B) | backing bytes per page | pages/s per round | read-back p50 / p99 µs | backing blocks read per page read | blocks in use after the churn | dead space, exact live bytes | dead space, estimated live bytes |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &ROWS {
        if p.get(r.id, "pages").is_none() {
            let why = match (r.dev, r.mode) {
                ("rzram0", _) if env_value(&env, "rzram_packed") != Some("1") => "unavailable",
                ("zram0", Mode::Compressed)
                    if env_value(&env, "zram_compressed_writeback") != Some("1") =>
                {
                    "unavailable"
                }
                _ if lines.wb.iter().any(|w| w.id == r.id) => "failed",
                _ => "not measured",
            };
            let _ = writeln!(d, "| {} | {why} | - | - | - | - | - | - | - | - |", r.label);
            continue;
        }
        let _ = writeln!(
            d,
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            r.label,
            fmt(p.median(r.id, "pages"), 0),
            fmt(p.median(r.id, "mean_compr"), 0),
            fmt(p.median(r.id, "bytes_per_page"), 0),
            p.get(r.id, "pps")
                .map_or("-".into(), |v| stats::rounds_list(v, 0)),
            fmt(p.median(r.id, "p50_us"), 0),
            fmt(p.median(r.id, "p99_us"), 0),
            fmt(p.median(r.id, "blocks_per_read"), 2),
            fmt(p.median(r.id, "count_after"), 0),
            range_cell(p.get(r.id, "dead"), pct),
            range_cell(p.get(r.id, "dead_est"), pct),
        );
    }
    for (dev, label) in [("zram0", "zram (C, upstream)"), ("rzram0", "rzram (Rust)")] {
        let _ = writeln!(
            d,
            "| {label}, {CALLS} one-page writeback calls, plain: ms per call per round | {} | - | - | - | - | - | - | - | - |",
            p.get(dev, "call_ms")
                .map_or("-".into(), |v| stats::rounds_list(v, 3)),
        );
    }

    let mib = pages_all / 256;
    let reference = match &lines.reference {
        Some(r) => format!(
            "before the rounds the data was written to an rzram device without backing device ({} pages, {} compressed bytes) \
             and the churned pages discarded there, leaving {} pages in {} compressed bytes: lz4 is deterministic, so those \
             are exactly the bytes of the objects the churned devices still hold (used only when that device compressed \
             the data to the same size)",
            (r.orig / 4096).saturating_sub(r.same),
            r.compr,
            (r.live_orig / 4096).saturating_sub(r.live_same),
            r.live_compr,
        ),
        None => "no reference run (rzram unavailable): no exact figure".into(),
    };
    let mut text = format!(
        "# bench packed\n\n\
         rzram's `packed_writeback` (compressed objects written back as one byte stream per bio, an object running on \
         into the next 4 KiB block where it does not fit; `bd_stat` then counts blocks) against rzram's unpacked \
         `compressed_writeback` (one object a block) and upstream zram (plain, `compressed_writeback`). The same \
         {mib} MiB of fio data (`--buffer_compress_percentage=60 --refill_buffers --buffer_compress_chunk=512`, \
         {pages_all} pages) is written with O_DIRECT to a fresh lz4 device per row on the same dm-linear slice of the \
         VM's virtio disk, then `echo all > idle; echo idle > writeback` at `writeback_batch_size` {BATCH} \
         ({BATCH}-page bios on rzram), timed. On rzram rows then: fio 4K random reads of the written-back pages \
         (O_DIRECT, psync, iodepth 1, {lat} reads or {rt} s, the same seeded sequence on both rows; completion \
         latency), and the churn: in every 20 pages, pages 0-2 rewritten with new fio data and 10-12 discarded \
         ({churned} pages, 30 %), after which `bd_stat` count gives the backing blocks in use. Pages written back: \
         `bd_stat` writes unpacked; packed, every page stored (not same-filled) once `mm_stat` shows no compressed \
         byte left in RAM. The one-page calls: upstream zram and rzram set up side by side (plain, each \
         on its own slice, {call_pages} pages each), then {CALLS} x `echo page_index=$i > writeback` on each, timed \
         with the shell's builtin echo in turns of {TURN} calls, so that the host's load drifting favours neither. {rounds} interleaved rounds (odd rounds \
         run the rows backwards); every ratio is per round, shown as the median and min-max of the rounds. Kernel {}, \
         {} CPUs, the guest runs {accel} (cpu: {cpu}): absolute numbers are far below hardware, ratios measured in \
         the same run are what this shows.\n\n\
         **Dead space**: live compressed bytes: {reference}. The estimate uses pages remaining (pages written back \
         minus the {churned} churned) x the mean compressed size. Unpacked, every remaining page holds a whole block, \
         so its dead space is 1 - mean compressed size / 4096.\n\n{t}\n{d}",
        env_value(&env, "kernel").unwrap_or("?"),
        env_value(&env, "cpus").unwrap_or("?"),
        lat = LAT_IOS.min(pages_all / 2),
        rt = args.runtime.max(1),
        churned = 6 * groups,
        call_pages = 2 * CALLS,
        rounds = args.rounds,
    );
    if env_value(&env, "rzram_packed") != Some("1") {
        text.push_str(
            "\nrzram's packed writeback is unavailable in this kernel (no /sys/block/rzram0/packed_writeback): \
             only upstream rows were measured.\n",
        );
    }
    if !notes.is_empty() {
        let _ = write!(text, "\nNotes:\n\n");
        for n in &notes {
            let _ = writeln!(text, "- {n}");
        }
    }
    if !errors.is_empty() {
        let _ = write!(text, "\nErrors in the VM:\n\n");
        for e in &errors {
            let _ = writeln!(text, "- {e}");
        }
    }
    Ok((text, errors, p))
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
    fs::write(results.join("packed.md"), &text)?;
    fs::write(repo_root().join("target/bench/packed.md"), &text)?;
    println!("{text}");
    progress(&format!(
        "report written to {} and target/bench/packed.md",
        results.join("packed.md").display()
    ));
    if !errors.is_empty() {
        bail!("{} error(s) in the VM (listed above)", errors.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rounds: u32) -> BenchArgs {
        BenchArgs {
            what: "packed".into(),
            runtime: 5,
            rounds,
            data_mib: 48,
            packed_mib: 32,
            report_only: true,
            seed_mib: 32,
            seed_runs: 5,
            footprint_secs: 30,
            footprint_sizes: Vec::new(),
            footprint_bin: None,
            footprint_out: "footprint".into(),
        }
    }

    #[test]
    fn parses_lines_and_rejects_junk() {
        let l = parse(
            "wb rzram-packed 1 33554432 14000000 0 800000000 1 3449 0 3449 0\n\
             after rzram-packed 1 2800 2400 1\n\
             ref 33554432 14000000 0 23502848 9800000 0\n\
             cost zram0 0 200 250000000 1 200\n",
        )
        .unwrap();
        assert_eq!(
            l.wb[0],
            Wb {
                id: "rzram-packed".into(),
                round: 1,
                orig: 33_554_432,
                compr: 14_000_000,
                same: 0,
                ns: 800_000_000,
                ok: true,
                count: 3449,
                writes: 3449,
                compr_after: 0,
            }
        );
        assert_eq!(l.after[0].blocks_read, 2800);
        assert_eq!(l.reference.as_ref().unwrap().live_compr, 9_800_000);
        assert_eq!(
            l.cost[0],
            Cost {
                dev: "zram0".into(),
                round: 0,
                calls: 200,
                ns: 250_000_000,
                ok: true
            }
        );
        assert!(parse("wb rzram-packed 1 2 3\n").is_err());
        assert!(parse("wb rzram-packed x 1 2 3 4 5 6 7 8 9\n").is_err());
        assert!(parse("cost zram0 0 200 x 1 200\n").is_err());
        assert!(parse("junk 1 2\n").is_err());
        assert!(parse("\n\n").unwrap().wb.is_empty());
    }

    #[test]
    fn report_measures_bytes_rate_and_dead_space() {
        let dir = std::env::temp_dir().join(format!("xtask-packed-report-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("env.txt"),
            "rzram_packed 1\nrzram_writeback 1\nzram_compressed_writeback 1\nkernel 7.3.4\n\
             cpu QEMU TCG CPU\ncpus 2\ndata_pages 2000\nchurn_groups 100\n",
        )
        .unwrap();
        // 2000 pages of 1024 compressed bytes; packed they take 500 blocks
        // (1.0x), unpacked 2000 (4.0x), twice as fast packed. The churn
        // leaves 1400 pages, 1_433_600 bytes: packed in 400 blocks, 12.5 %
        // dead; unpacked in 1400, 75 % dead.
        let wb = |id: &str, round: u32, ns: u64, blocks: u64| {
            format!("wb {id} {round} 8192000 2048000 0 {ns} 1 {blocks} 0 {blocks} 0\n")
        };
        let mut txt = String::from("ref 8192000 2048000 0 5734400 1433600 0\n");
        for round in 0..2 {
            txt += &wb("zram-plain", round, 1_000_000_000, 2000);
            txt += &wb("rzram-packed", round, 500_000_000, 500);
            txt += &wb("rzram-compressed", round, 1_000_000_000, 2000);
            txt += &format!(
                "after rzram-packed {round} 1500 400 1\nafter rzram-compressed {round} 1000 1400 {}\n",
                // Round 1's unpacked read-back run failed.
                u8::from(round == 0)
            );
            txt += &format!(
                "cost zram0 {round} 200 200000000 1 200\ncost rzram0 {round} 200 100000000 1 200\n"
            );
        }
        // A failed writeback is no sample.
        txt += "wb zram-compressed 0 8192000 2048000 0 1 0 0 0 0 2048000\n";
        fs::write(dir.join("packed.txt"), txt).unwrap();
        let lat = |p50: u64, p99: u64, failed: u64| {
            format!(
                "fio warning\n{{\"jobs\":[{{\"total_err\":{failed},\"read\":{{\"total_ios\":1000,\"clat_ns\":{{\"percentile\":{{\"50.000000\":{p50},\"99.000000\":{p99}}}}}}}}}]}}"
            )
        };
        for round in 0..2u64 {
            fs::write(
                dir.join(format!("lat-rzram-packed-{round}.json")),
                // Round 1's packed run had 2 reads failing, and went on.
                lat(300_000, 900_000, 2 * round),
            )
            .unwrap();
            fs::write(
                dir.join(format!("lat-rzram-compressed-{round}.json")),
                lat(400_000, 900_000, 0),
            )
            .unwrap();
        }
        let (text, errors, p) = report(&args(2), &dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            errors,
            ["rzram-packed round 1: 2 read-back reads failed (fio: 1000 reads done)"]
        );
        assert_eq!(p.get(PACKED, "p50_us").unwrap().len(), 2);
        assert_eq!(p.median(PACKED, "mean_compr"), Some(1024.0));
        assert_eq!(p.median(PACKED, "pages"), Some(2000.0));
        assert_eq!(p.median(PACKED, "bytes_ratio"), Some(1.0));
        assert_eq!(p.median(UNPACKED, "bytes_ratio"), Some(4.0));
        assert_eq!(p.vs(PACKED, UNPACKED, "pps").unwrap().median, 2.0);
        let lat = p.vs(PACKED, UNPACKED, "p50_us").unwrap();
        assert_eq!((lat.median, lat.n), (0.75, 1));
        assert_eq!(p.median(PACKED, "blocks_per_read"), Some(1.5));
        assert_eq!(p.median(PACKED, "dead"), Some(0.125));
        assert_eq!(p.median(UNPACKED, "dead"), Some(0.75));
        assert_eq!(p.median(PACKED, "dead_est"), Some(0.125));
        assert_eq!(p.vs("rzram0", "zram0", "call_ms").unwrap().median, 0.5);
        assert!(p.get("zram-compressed", "pages").is_none());
        assert!(text.contains("| zram (C, upstream), compressed_writeback | failed |"));
        assert!(text.contains("met (high end 1.00x ≤ 1.1x)"));
        assert!(text.contains("**12.5 %** (12.5 %-12.5 %)"));
    }

    #[test]
    fn script_interleaves_rows_and_churns_30_percent() {
        let mut a = args(2);
        a.packed_mib = 32;
        let s = script(&a);
        // No placeholder (@NAME@) is left.
        assert!(
            !s.as_bytes()
                .windows(2)
                .any(|w| w[0] == b'@' && w[1].is_ascii_uppercase()),
            "a placeholder is left"
        );
        assert_eq!(
            s.matches("\n[ $RZRAM = 1 ] && row rzram-packed rzram0 packed ")
                .count(),
            2
        );
        assert_eq!(
            s.matches("\n[ $ZCOMP = 1 ] && row zram-compressed zram0 compressed ")
                .count(),
            2
        );
        let first = |needle: &str| s.find(needle).unwrap();
        assert!(first("row zram-plain zram0 plain 0") < first("row rzram-packed rzram0 packed 0"));
        assert!(first("row rzram-packed rzram0 packed 1") < first("row zram-plain zram0 plain 1"));
        assert!(s.contains("\ncost 0 $(avail zram0 rzram0)\n"));
        assert!(s.contains("\ncost 1 $(avail rzram0 zram0)\n"));
        // 8192 pages: 409 groups of 20, 6 pages each churned.
        assert!(s.contains("--size=32720k --number_ios=409"));
        assert!(s.contains("--offset=40k --size=32680k"));
        assert!(s.contains("--number_ios=818"));
        assert!(s.contains("--number_ios=2000 --runtime=5"));
        // It parses as bash.
        let path = std::env::temp_dir().join(format!("xtask-packed-{}.sh", std::process::id()));
        fs::write(&path, &s).unwrap();
        let ok = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap()
            .success();
        fs::remove_file(&path).unwrap();
        assert!(ok, "bash -n failed on the script");
    }
}

//! The guest's lines in `packed.txt` and its fio read-back reports.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::bench::fio_json_file;

/// `wb`: one idle writeback (`mm_stat` before it: orig_data_size,
/// compr_data_size, same_pages; `bd_stat` and compr_data_size after it).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Wb {
    pub(super) id: String,
    pub(super) round: u32,
    pub(super) orig: u64,
    pub(super) compr: u64,
    pub(super) same: u64,
    pub(super) ns: u64,
    pub(super) ok: bool,
    pub(super) count: u64,
    pub(super) writes: u64,
    pub(super) compr_after: u64,
}

/// `after`: an rzram row's backing blocks read by the read-back run, and in
/// use after the churn; whether the read-back run succeeded.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct After {
    pub(super) id: String,
    pub(super) round: u32,
    pub(super) blocks_read: u64,
    pub(super) count: u64,
    pub(super) lat_ok: bool,
}

/// `ref`: `mm_stat` orig, compr and same of the data, and of what the
/// churn leaves (its pages discarded).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Reference {
    pub(super) orig: u64,
    pub(super) compr: u64,
    pub(super) same: u64,
    pub(super) live_orig: u64,
    pub(super) live_compr: u64,
    pub(super) live_same: u64,
}

/// `cost`: one-page writeback calls on a device.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Cost {
    pub(super) dev: String,
    pub(super) round: u32,
    pub(super) calls: u64,
    pub(super) ns: u64,
    pub(super) ok: bool,
}

#[derive(Debug, Default)]
pub(super) struct Lines {
    pub(super) wb: Vec<Wb>,
    pub(super) after: Vec<After>,
    pub(super) reference: Option<Reference>,
    pub(super) cost: Vec<Cost>,
}

/// The lines of `packed.txt`, each its kind then its fields:
/// `wb ID ROUND ORIG COMPR SAME NS OK COUNT READS WRITES COMPR_AFTER`,
/// `after ID ROUND BLOCKS_READ COUNT LAT_OK`, `ref ORIG COMPR SAME ORIG COMPR SAME`,
/// `cost DEV ROUND CALLS NS OK WRITES`.
pub(super) fn parse(text: &str) -> Result<Lines> {
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
pub(super) struct Latency {
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    pub(super) ios: u64,
    pub(super) failed: u64,
}

/// A fio JSON report with `--percentile_list=50:99`.
pub(super) fn fio_latency(path: &Path) -> Result<Latency> {
    let v = fio_json_file(path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

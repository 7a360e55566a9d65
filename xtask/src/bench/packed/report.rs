//! The Markdown report of one run: a summary against issue 16's targets,
//! then the details per row.

use std::{fmt::Write as _, path::Path};

use anyhow::Result;

use super::{
    BATCH, BenchArgs, CALLS, LAT_IOS, Mode, PACKED, ROWS, TARGET_BYTES, TARGET_RATE, TURN,
    UNPACKED, churn_groups,
    measure::{Packed, measure},
    parse::parse,
};
use crate::bench::{
    accel, env_value, push_list, read_errors, read_result,
    stats::{self, num, pct, range_cell, verdict_at_most},
};

pub fn report(args: &BenchArgs, results: &Path) -> Result<(String, Vec<String>, Packed)> {
    let env = read_result(results, "env.txt")?;
    let lines = parse(&read_result(results, "packed.txt")?)?;
    let mut errors = read_errors(results);
    let env_num = |k: &str| env_value(&env, k).and_then(|v| v.parse::<u64>().ok());
    let pages_all = env_num("data_pages").unwrap_or(0);
    let groups = env_num("churn_groups").unwrap_or_else(|| churn_groups(pages_all));
    let (p, notes, failures) = measure(results, &lines, groups);
    errors.extend(failures);
    let cpu = env_value(&env, "cpu").unwrap_or("?");
    let accel = accel(cpu);

    // The summary: one line per issue-16 measure.
    let mut t = String::from(
        "| measure | A (median) | B (median) | A / B: median (CI; min-max of rounds) | target | met? |\n|---|---|---|---|---|---|\n",
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
            num(p.median(id, "bytes_per_page"), 0),
            num(p.median(id, "mean_compr").or(mean), 0),
            stats::cell(s.as_ref()),
        );
    }
    let rate = p.vs(PACKED, UNPACKED, "pps");
    let _ = writeln!(
        t,
        "| idle writeback pages/s, batch {BATCH}, {BATCH}-page bios: rzram packed (A) / rzram unpacked (B) | {} | {} | {} | ≥ {TARGET_RATE:.1}x | {} |",
        num(p.median(PACKED, "pps"), 0),
        num(p.median(UNPACKED, "pps"), 0),
        stats::cell(rate.as_ref()),
        stats::verdict(rate.as_ref(), Some(TARGET_RATE)),
    );
    for (m, what) in [("p50_us", "p50"), ("p99_us", "p99")] {
        let _ = writeln!(
            t,
            "| read-back latency {what}, 4K random O_DIRECT reads, µs: rzram packed (A) / rzram unpacked (B) (below 1: packed is faster) | {} | {} | {} | - | - |",
            num(p.median(PACKED, m), 0),
            num(p.median(UNPACKED, m), 0),
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
        num(p.median("rzram0", "call_ms"), 2),
        num(p.median("zram0", "call_ms"), 2),
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
            num(p.median(r.id, "pages"), 0),
            num(p.median(r.id, "mean_compr"), 0),
            num(p.median(r.id, "bytes_per_page"), 0),
            p.get(r.id, "pps")
                .map_or("-".into(), |v| stats::rounds_list(v, 0)),
            num(p.median(r.id, "p50_us"), 0),
            num(p.median(r.id, "p99_us"), 0),
            num(p.median(r.id, "blocks_per_read"), 2),
            num(p.median(r.id, "count_after"), 0),
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
         {pages_all} pages) is written with O_DIRECT to a fresh lz4 device per row on a dm-linear slice of the \
         VM's virtio disk, then `echo all > idle; echo idle > writeback` at `writeback_batch_size` {BATCH} \
         ({BATCH}-page bios on rzram), timed. The upstream rows run one at a time on the first slice. The two rzram \
         rows run as a pair: rzram0 and rzram1 are set up and filled first, each on a slice of its own of the same \
         size (swapped every round), then their timed writebacks run back to back, so that a slow spell of the host \
         (they last seconds) falls on both rows of a round or neither. On rzram rows then: fio 4K random reads of the written-back pages \
         (O_DIRECT, psync, iodepth 1, {lat} reads or {rt} s, the same seeded sequence on both rows; completion \
         latency), and the churn: in every 20 pages, pages 0-2 rewritten with new fio data and 10-12 discarded \
         ({churned} pages, 30 %), after which `bd_stat` count gives the backing blocks in use. Pages written back: \
         `bd_stat` writes unpacked; packed, every page stored (not same-filled) once `mm_stat` shows no compressed \
         byte left in RAM. The one-page calls: upstream zram and rzram set up side by side (plain, each \
         on its own slice, {call_pages} pages each), then {CALLS} x `echo page_index=$i > writeback` on each, timed \
         with the shell's builtin echo in turns of {TURN} calls, so that the host's load drifting favours neither. {rounds} interleaved rounds (odd rounds \
         run the rows backwards); every ratio is per round, shown as the median with its confidence interval and the min-max of the rounds. Kernel {}, \
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
    push_list(&mut text, "Notes", &notes);
    push_list(&mut text, "Errors in the VM", &errors);
    Ok((text, errors, p))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

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
        let (text, errors, p) = report(&BenchArgs::for_test("packed", 2), &dir).unwrap();
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
}
